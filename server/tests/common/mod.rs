//! A small cluster for process-level tests, from the workspace's cluster
//! builder (`ubackup_testkit::cluster`): a real redis-server, a real rsync
//! daemon serving module `backup`, a server_root_path, and the real
//! `ubackup-server` binary started with a generated config.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{json, Value};
use ubackup_common::{DeadLetter, Keys};
use ubackup_testkit::cluster::{ClusterBuilder, Names};
use ubackup_testkit::{wait_until, Proc, RedisServer, RsyncDaemon};

pub const SERVER_ID: i64 = 111111;

pub struct Cluster {
    pub rsyncd: RsyncDaemon,
    /// The `backup` module's directory (the database host's backups).
    pub src: tempfile::TempDir,
    /// server_root_path of every node of this cluster.
    pub root: tempfile::TempDir,
    /// Configs and logs.
    pub etc: tempfile::TempDir,
    pub prefix: String,
    pub keys: Keys,
    pub hi: String,
    pub lo: String,
    pub results: String,
    /// The Redis, the names and the directory the ones above live in.
    pub cluster: ubackup_testkit::cluster::Cluster,
}

pub struct Node {
    pub id: String,
    pub proc: Proc,
    pub conf: PathBuf,
    pub log: PathBuf,
}

impl Node {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn wait_log(&self, what: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if self.log_text().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "node {} never logged {what:?} within {deadline:?}; log:\n{}",
            self.id,
            self.log_text()
        );
    }
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with_rsyncd_global("")
    }

    /// `extra_global` goes into the daemon's global section (module defaults).
    pub fn start_with_rsyncd_global(extra_global: &str) -> Cluster {
        Self::build(ClusterBuilder::new("server-test"), extra_global)
    }

    /// A cluster on a Redis the test started itself (e.g. one with TLS).
    pub fn with_redis(redis: RedisServer, extra_global: &str) -> Cluster {
        Self::build(
            ClusterBuilder::new("server-test").redis(redis),
            extra_global,
        )
    }

    fn build(b: ClusterBuilder, extra_global: &str) -> Cluster {
        let bin = Path::new(env!("CARGO_BIN_EXE_ubackup-server"));
        let cluster = b
            .names(Names::unique("t:", "low"))
            .bin_dir(bin.parent().expect("the binary's directory"))
            .start()
            .expect("redis-server");
        let sub = |name: &str| {
            tempfile::Builder::new()
                .prefix(name)
                .tempdir_in(cluster.dir.path())
                .unwrap()
        };
        let src = sub("src");
        let rsyncd = cluster
            .test_dbhost(src.path(), false, extra_global)
            .expect("rsync daemon");
        let n = cluster.names.clone();
        Cluster {
            rsyncd,
            src,
            root: sub("root"),
            etc: sub("etc"),
            keys: cluster.keys.clone(),
            prefix: n.prefix,
            hi: n.hi,
            lo: n.lo,
            results: n.results,
            cluster,
        }
    }

    pub fn conn(&self) -> redis::Connection {
        self.cluster.conn()
    }

    /// The config of node `id`: small timeouts and heartbeat, `over`rides
    /// applied on top (an empty value removes the key).
    pub fn config(&self, id: &str, over: &[(&str, &str)]) -> PathBuf {
        let root = self.root.path().display().to_string();
        let log = self.etc.path().join(format!("{id}.log"));
        let conf = self
            .cluster
            .test_node_conf("the test", id, &root, &log)
            .apply(&self.cluster.message_redis_settings())
            .apply(&[
                ("rsync_port", self.rsyncd.port.to_string().as_str()),
                ("drain_secs", "5"),
            ])
            .apply(over);
        let path = self.etc.path().join(format!("{id}.conf"));
        conf.write(&path).unwrap();
        path
    }

    pub fn spawn(&self, id: &str, over: &[(&str, &str)]) -> Node {
        self.spawn_env(id, over, &[])
    }

    pub fn spawn_env(&self, id: &str, over: &[(&str, &str)], env: &[(&str, &str)]) -> Node {
        let conf = self.config(id, over);
        let mut cmd = self.cluster.command("ubackup-server", &conf);
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(id, cmd).unwrap();
        let node = Node {
            id: id.into(),
            proc,
            conf,
            log: self.etc.path().join(format!("{id}.log")),
        };
        // started = its heartbeat exists
        self.cluster
            .wait_alive(id, "node heartbeat", Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{e}"));
        node
    }

    /// Writes a file of `len` bytes into the module under `database_3306/`.
    pub fn source_file(&self, name: &str, len: usize, seed: u64) -> PathBuf {
        let p = self.src.path().join("database_3306").join(name);
        ubackup_testkit::write_file(&p, len, seed);
        p
    }

    /// A success message as our client sends it.
    pub fn message(&self, filename: &str) -> Value {
        let size = std::fs::metadata(self.src.path().join("database_3306").join(filename))
            .map(|m| m.len())
            .unwrap_or(1234);
        json!({
            "filename": filename, "last_all_filename": null, "size": size, "log": "ok",
            "create_time": 1763800000, "success": true, "server_id": SERVER_ID, "game_id": 31, "op_id": 1,
            "game_server_ip": "127.0.0.1", "back_type": "mysql", "instance": 3306,
            "rsync_model": "backup/database_3306", "last_all_time": 0, "interval": 3600,
        })
    }

    pub fn push(&self, list: &str, msg: &Value) {
        let _: () = self.conn().lpush(list, msg.to_string()).unwrap();
    }

    pub fn push_raw(&self, list: &str, raw: &str) {
        let _: () = self.conn().lpush(list, raw).unwrap();
    }

    /// Results, oldest first.
    pub fn results(&self) -> Vec<Value> {
        let raw: Vec<String> = self.conn().lrange(&self.results, 0, -1).unwrap();
        raw.iter()
            .rev()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    pub fn wait_results(&self, n: usize, deadline: Duration) -> Vec<Value> {
        let mut c = self.conn();
        let key = self.results.clone();
        wait_until(&format!("{n} result(s) on {key}"), deadline, || {
            c.llen::<_, usize>(&key).unwrap() >= n
        });
        self.results()
    }

    pub fn dead(&self, list: &str) -> Vec<DeadLetter> {
        let raw: Vec<String> = self.conn().lrange(self.keys.dead(list), 0, -1).unwrap();
        raw.iter()
            .rev()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    pub fn llen(&self, key: &str) -> usize {
        self.conn().llen(key).unwrap()
    }

    pub fn inflight(&self, node: &str) -> usize {
        self.llen(&self.keys.inflight(node, &self.hi))
            + self.llen(&self.keys.inflight(node, &self.lo))
    }

    pub fn state(&self, node: &str) -> std::collections::HashMap<String, String> {
        self.conn().hgetall(self.keys.state(node)).unwrap()
    }

    /// `server_root_path/mysql/127.0.0/1`: where 127.0.0.1's mysql files land.
    pub fn dest(&self) -> PathBuf {
        self.root.path().join("mysql").join("127.0.0").join("1")
    }

    pub fn tmp_dir(&self, node: &str) -> PathBuf {
        self.root.path().join(".ubackup-tmp").join(node)
    }

    /// Files (not the pgid directory) left in a node's temp area, and
    /// recorded rsync groups.
    pub fn tmp_leftovers(&self, node: &str) -> Vec<PathBuf> {
        let dir = self.tmp_dir(node);
        let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name() != Some("pgid".as_ref()))
                    .collect()
            })
            .unwrap_or_default();
        out.extend(
            std::fs::read_dir(dir.join("pgid"))
                .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        out
    }

    /// Process groups of rsyncs a node recorded as running.
    pub fn recorded_groups(&self, node: &str) -> Vec<i32> {
        std::fs::read_dir(self.tmp_dir(node).join("pgid"))
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes written so far in a node's temp area (a transfer in progress).
    pub fn tmp_bytes(&self, node: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        walk(&self.tmp_dir(node))
    }
}

/// Regular files directly in `dir`, sorted by name.
pub fn files_in(dir: &Path) -> Vec<String> {
    ubackup_testkit::fixtures::file_names(dir)
}

/// rsync processes in process group `pgid` (from /proc).
pub fn rsync_alive_in_group(pgid: i32) -> bool {
    ubackup_transport::tmp::rsync_members(pgid)
        .iter()
        .any(|_| true)
}

pub fn kill_group(pgid: i32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
