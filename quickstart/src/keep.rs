//! The `--keep` ending: a `stop.sh` that stops the same PIDs, and how to use
//! the cluster that is left running.

use std::path::Path;

use anyhow::Result;
use ubackup_testkit::cluster::Cluster;

use crate::Ctx;

/// Writes `<dir>/stop.sh`.
pub fn write_stop_sh(ctx: &Ctx) -> Result<()> {
    let cluster = ctx.cluster();
    let dir = cluster.dir.path().display().to_string();
    let procs = cluster.procs.list();
    let mut names = vec!["redis-server".to_string()];
    names.extend(procs.iter().map(|(_, n)| n.clone()));
    let newest_first: String = procs.iter().rev().map(|(p, _)| format!(" {p}")).collect();
    let text = format!(
        r#"#!/bin/sh
# Stops the quickstart cluster in {dir} by PID: SIGTERM to the
# ubackup processes and rsync daemons, then to redis-server once they
# are gone (SIGKILL whatever is left after 15 s). It waits, so
# 'stop.sh && rm -rf {dir}' cannot pull the directory away from a
# redis-server still writing its final save.
stop() {{
    kill "$@" 2>/dev/null
    n=0
    while [ $n -lt 150 ]; do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return
        sleep 0.1; n=$((n + 1))
    done
    kill -9 "$@" 2>/dev/null || true
}}
stop{newest_first}
stop {redis} # redis-server
echo 'stopped: {names}'
"#,
        redis = cluster.redis.pid().unwrap_or(0),
        names = names.join(" "),
    );
    let path = cluster.path("stop.sh");
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(())
}

/// What to try with the cluster left running.
pub fn print_usage(ctx: &Ctx, cluster: &Cluster, dir: &Path) {
    let d = dir.display();
    let b = ctx.bin.display();
    let pw = cluster.password.as_deref().unwrap_or("");
    let port = cluster.redis.port;
    let keys = &cluster.keys;
    println!(
        r#"
The cluster is still running (--keep). Everything is in {d}:
  redis:     REDISCLI_AUTH={pw} redis-cli -p {port}
             (e.g. LRANGE {hi} 0 -1, HGETALL {state}, KEYS '*')
  configs:   {d}/host1/client.conf  {d}/host2/client.conf
             {d}/node1/server.conf  {d}/node2/server.conf  {d}/indexer/indexer.conf
  logs:      {d}/node1/server.log  {d}/node2/server.log  {d}/indexer/indexer.log  {d}/host*/log/
  catalog:   {d}/indexer/catalog.db   (sqlite3 -readonly …)
Try:
  {b}/ubackup-client -c {d}/host1/client.conf                   # another backup run
  {b}/ubackup-client -c {d}/host1/client.conf list --all
  {b}/ubackup-client -c {d}/host1/client.conf restore --type redis --instance 6379 --dest {d}/restore/redis6379
  {b}/ubackup-reporter status -c {d}/indexer/indexer.conf
  {b}/ubackup-reporter alerts -c {d}/indexer/indexer.conf
  {b}/ubackup-reporter serve -c {d}/indexer/indexer.conf --listen 127.0.0.1:9187   # web pages, /metrics
  REDISCLI_AUTH={pw} redis-cli -p {port} HSET {control} paused 1   # pause node1
Stop it:  {d}/stop.sh && rm -rf {d}"#,
        hi = cluster.names.hi,
        state = keys.state("node1"),
        control = keys.control("node1"),
    );
}
