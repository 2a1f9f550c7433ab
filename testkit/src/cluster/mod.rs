//! One way to start a ubackup cluster on this machine, used by the server's
//! process tests, the end-to-end test, the fault suite and the quickstart:
//! a redis-server, database-host rsync daemons, pull nodes, the indexer and
//! reporter runs, all on ephemeral 127.0.0.x ports, in one temp directory,
//! under one key prefix, every process started by us and stopped by its PID.
//!
//! Layout:
//! * this module: [`ClusterBuilder`] → [`Cluster`] (the temp directory, the
//!   Redis, the list [`Names`] and [`Keys`], the tracked processes) and the
//!   config of each role ([`Cluster::node_conf`], [`Cluster::indexer_conf`]);
//! * [`ini`]: a config as a base text (a shipped example or a generated
//!   `[global]`) plus key edits;
//! * [`daemon`]: daemons from shipped config files (rsyncd on one or several
//!   addresses sharing a port), retried when a port was taken meanwhile;
//! * [`procs`]: the started processes, stopped newest first by PID, and a
//!   bounded run of a binary;
//! * [`sentinel`]: a master, replicas and three sentinels for failover
//!   tests ([`SentinelSetup`]);
//! * [`tls`]: a throwaway CA and `stunnel4` in front of an rsync daemon,
//!   for pulls over TLS.

pub mod daemon;
pub mod ini;
pub mod procs;
pub mod sentinel;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ubackup_common::keys::{Keys, DEFAULT_PREFIX};

pub use daemon::{
    current_ids, free_port_on, localhost, port_open, render_rsyncd, start_listening, start_rsyncd,
    Daemon,
};
pub use ini::{ini_del, ini_set, Conf};
pub use procs::{run_bin, Killed, Procs};
pub use sentinel::{MasterLocator, SentinelOpts, SentinelSetup};

use crate::{unique, workspace_bin, RedisOpts, RedisServer, RsyncDaemon, RsyncModule};

/// The node settings the process tests share: small timeouts, a 1 s
/// heartbeat, no bandwidth limit, no disk reserve.
pub const TEST_NODE: &[(&str, &str)] = &[
    ("work_thread", "2"),
    ("rsync_bwlimit", "0"),
    ("reserve_bytes", "0"),
    ("interval", "0"),
    ("retry", "3"),
    ("retry_backoff_ms", "100"),
    ("rsync_timeout", "5"),
    ("rsync_contimeout", "3"),
    ("heartbeat_secs", "1"),
];

/// The key prefix and the three lists of one cluster.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
    /// The high-priority list (first in the nodes' `redis_queue`).
    pub hi: String,
    /// The default list.
    pub lo: String,
    /// The results list (`message_queue`).
    pub results: String,
}

impl Names {
    /// Fresh names for one test: a unique prefix, and the lists under it
    /// (`<prefix>level1`, `<prefix><low>`, `<prefix>message`), so tests can
    /// share a Redis.
    pub fn unique(tag: &str, low: &str) -> Names {
        let prefix = unique(tag);
        Names {
            hi: format!("{prefix}level1"),
            lo: format!("{prefix}{low}"),
            results: format!("{prefix}message"),
            prefix,
        }
    }

    /// The names the shipped configs use.
    pub fn shipped() -> Names {
        Names {
            prefix: DEFAULT_PREFIX.into(),
            hi: "level1".into(),
            lo: "uuzuback".into(),
            results: "message".into(),
        }
    }

    pub fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }

    /// The nodes' `redis_queue`: highest priority first.
    pub fn queues(&self) -> String {
        format!("{} {}", self.hi, self.lo)
    }
}

/// A wait that ran out.
#[derive(Debug)]
pub struct TimedOut {
    pub what: String,
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {}s waiting for: {}",
            self.after.as_secs_f64(),
            self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `cond` every 20 ms until it is true or `deadline` passes.
pub fn wait_for(
    what: &str,
    deadline: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(TimedOut {
                what: what.into(),
                after: deadline,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How to start a [`Cluster`].
pub struct ClusterBuilder {
    tag: String,
    dir: Option<tempfile::TempDir>,
    names: Option<Names>,
    password: Option<String>,
    redis: RedisOpts,
    redis_log: Option<String>,
    redis_dir: Option<String>,
    redis_server: Option<RedisServer>,
    sentinel: Option<SentinelOpts>,
    bin_dir: Option<PathBuf>,
}

impl ClusterBuilder {
    /// `tag` names the temp directory (`ubackup-<tag>-…`) and the key prefix.
    pub fn new(tag: &str) -> ClusterBuilder {
        ClusterBuilder {
            tag: tag.into(),
            dir: None,
            names: None,
            password: None,
            redis: RedisOpts::default(),
            redis_log: None,
            redis_dir: None,
            redis_server: None,
            sentinel: None,
            bin_dir: None,
        }
    }

    /// Lives in `dir` instead of a fresh temp directory.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The prefix and lists (default: [`Names::unique`] with `<tag>:` and
    /// `uuzuback`).
    pub fn names(mut self, names: Names) -> Self {
        self.names = Some(names);
        self
    }

    /// Redis with `requirepass`; every config below authenticates.
    pub fn redis_password(mut self, pw: &str) -> Self {
        self.password = Some(pw.into());
        self
    }

    /// Start redis-server from this redis.conf (the shipped one) instead of
    /// the test defaults.
    pub fn redis_conf(mut self, conf: &Path) -> Self {
        self.redis.conf = Some(conf.into());
        self
    }

    /// More `--key value` arguments for redis-server.
    pub fn redis_args(mut self, args: &[&str]) -> Self {
        self.redis.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// redis-server's log file, relative to the cluster's directory.
    pub fn redis_log(mut self, rel: &str) -> Self {
        self.redis_log = Some(rel.into());
        self
    }

    /// redis-server's data directory as `<cluster dir>/<rel>` (default: a
    /// temp directory of its own).
    pub fn redis_dir(mut self, rel: &str) -> Self {
        self.redis_dir = Some(rel.into());
        self
    }

    /// Use a redis-server the caller started (e.g. one with TLS).
    pub fn redis(mut self, server: RedisServer) -> Self {
        self.redis_server = Some(server);
        self
    }

    /// Replicas and sentinels around the cluster's Redis (see
    /// [`SentinelSetup::around`]); every config then names the sentinels
    /// (`redis_sentinels`, `redis_master_name`) instead of the host, and
    /// [`Cluster::conn`] goes to the master of the moment.
    pub fn sentinel(mut self, opts: SentinelOpts) -> Self {
        self.sentinel = Some(opts);
        self
    }

    /// Where the ubackup binaries are (default: this build's target dir).
    pub fn bin_dir(mut self, dir: &Path) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    pub fn start(self) -> Result<Cluster> {
        let dir = match self.dir {
            Some(d) => d,
            None => tempfile::Builder::new()
                .prefix(&format!("ubackup-{}-", self.tag))
                .tempdir()?,
        };
        let names = self
            .names
            .unwrap_or_else(|| Names::unique(&format!("{}:", self.tag), "uuzuback"));
        let redis = match self.redis_server {
            Some(r) => r,
            None => {
                let mut opts = self.redis;
                if let Some(pw) = &self.password {
                    opts.args.extend(["--requirepass".into(), pw.clone()]);
                    if self.sentinel.is_some() {
                        // to rejoin as a replica after a failover
                        opts.args.extend(["--masterauth".into(), pw.clone()]);
                    }
                }
                let data = self.redis_dir.as_ref().map(|rel| dir.path().join(rel));
                if let Some(rel) = &self.redis_log {
                    let log = dir.path().join(rel);
                    // (the data directory is made with the server)
                    if let Some(parent) = log.parent().filter(|p| Some(*p) != data.as_deref()) {
                        std::fs::create_dir_all(parent)?;
                    }
                    opts.args
                        .extend(["--logfile".into(), log.display().to_string()]);
                }
                opts.dir = data;
                RedisServer::start_opts(&opts)?
            }
        };
        let sentinel = match self.sentinel {
            Some(mut o) => {
                o.password = self.password.clone();
                Some(SentinelSetup::around(&redis, o)?)
            }
            None => None,
        };
        Ok(Cluster {
            sentinel,
            keys: names.keys(),
            names,
            password: self.password,
            redis,
            dir,
            procs: Procs::default(),
            bin_dir: self.bin_dir,
        })
    }
}

/// A running cluster. Dropping it stops every tracked process (kill -9 by
/// PID, process group included) and redis-server, and removes the directory.
pub struct Cluster {
    // (fields drop in this order: the processes, then Redis, then the
    // directory they live in)
    /// Daemons, nodes and the indexer started through [`Cluster::spawn`]
    /// (callers that drive a process themselves keep its `Proc`).
    pub procs: Procs,
    /// With [`ClusterBuilder::sentinel`]: the replicas and the sentinels
    /// (stopped before `redis`, so they do not fail over during teardown).
    pub sentinel: Option<SentinelSetup>,
    /// The Redis the cluster started with (the first master with sentinels).
    pub redis: RedisServer,
    /// Everything of this cluster lives below this directory.
    pub dir: tempfile::TempDir,
    pub password: Option<String>,
    pub names: Names,
    pub keys: Keys,
    bin_dir: Option<PathBuf>,
}

impl Cluster {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A ubackup binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => workspace_bin(name),
        }
    }

    /// `redis://[:password@]127.0.0.1:<port>/` of the master of the moment.
    pub fn redis_url(&self) -> String {
        let port = self
            .sentinel
            .as_ref()
            .and_then(|s| s.master_port())
            .unwrap_or(self.redis.port);
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/"),
            None => format!("redis://127.0.0.1:{port}/"),
        }
    }

    /// kill -9 the master of the moment (the cluster's first Redis or one
    /// of the sentinel set-up's replicas, promoted); returns its port.
    pub fn kill9_master(&mut self) -> Result<u16> {
        let s = self
            .sentinel
            .as_mut()
            .context("a cluster without sentinels")?;
        let port = s.master_port().context("no sentinel names a master")?;
        if port == self.redis.port {
            self.redis.kill9();
        } else {
            let i = s.server_on(port).context("the master is not one of ours")?;
            s.servers[i].kill9();
        }
        Ok(port)
    }

    /// A synchronous connection (authenticated).
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.redis_url())
            .and_then(|c| c.get_connection())
            .expect("connect to the cluster's redis")
    }

    /// `redis_host`, `redis_port` (and `redis_password`) of this Redis;
    /// with sentinels `redis_sentinels` and `redis_master_name` instead
    /// (and the host keys removed).
    pub fn redis_settings(&self) -> Vec<(String, String)> {
        self.redis_keys("redis")
    }

    /// The same Redis as the nodes' result Redis (`message_redis_*`).
    pub fn message_redis_settings(&self) -> Vec<(String, String)> {
        self.redis_keys("message_redis")
    }

    fn redis_keys(&self, p: &str) -> Vec<(String, String)> {
        if let Some(s) = &self.sentinel {
            let mut v = vec![
                (format!("{p}_host"), String::new()),
                (format!("{p}_port"), String::new()),
            ];
            v.extend(s.settings(p));
            return v;
        }
        let mut v = vec![
            (format!("{p}_host"), "127.0.0.1".to_string()),
            (format!("{p}_port"), self.redis.port.to_string()),
        ];
        if let Some(pw) = &self.password {
            v.push((format!("{p}_password"), pw.clone()));
        }
        v
    }

    /// A node's config: `base` with this cluster's Redis, lists and prefix,
    /// and the node's own id, `server_root_path`, log and address.
    pub fn node_conf(&self, base: Conf, id: &str, root: &str, log: &Path, myip: &str) -> Conf {
        base.apply(&self.redis_settings())
            .set("redis_queue", self.names.queues())
            .set("message_queue", &self.names.results)
            .set("key_prefix", &self.names.prefix)
            .set("server_root_path", root)
            .set("log", log.display().to_string())
            .set("myip", myip)
            .set("node_id", id)
    }

    /// A generated node config with [`TEST_NODE`]'s settings.
    pub fn test_node_conf(&self, by: &str, id: &str, root: &str, log: &Path) -> Conf {
        self.node_conf(
            Conf::generated(by).apply(TEST_NODE),
            id,
            root,
            log,
            "127.0.0.1",
        )
    }

    /// The indexer's config: `base` with this cluster's Redis, results list
    /// and prefix, its id, catalog and log, and 100 ms batches.
    pub fn indexer_conf(&self, base: Conf, id: &str, catalog: &Path, log: &Path) -> Conf {
        base.apply(&self.redis_settings())
            .set("message_queue", &self.names.results)
            .set("key_prefix", &self.names.prefix)
            .set("indexer_id", id)
            .set("catalog", catalog.display().to_string())
            .set("batch_ms", "100")
            .set("log", log.display().to_string())
    }

    /// `<bin> -c <conf>`, with no terminal: stdin, stdout, stderr null.
    pub fn command(&self, bin: &str, conf: &Path) -> Command {
        let mut c = Command::new(self.bin(bin));
        c.arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Starts `cmd` (in its own process group) and tracks it; returns its PID.
    pub fn spawn(&mut self, name: &str, cmd: Command) -> Result<u32> {
        let p = crate::Proc::spawn(name, cmd)?;
        Ok(self.procs.track(p))
    }

    /// Tracks daemons started from a config file.
    pub fn track_daemons(&mut self, daemons: Vec<Daemon>) -> Vec<(u32, std::net::IpAddr, u16)> {
        daemons
            .into_iter()
            .map(|d| (self.procs.track(d.proc), d.addr, d.port))
            .collect()
    }

    /// A database host's rsync daemon from a shipped rsyncd.conf (`template`)
    /// serving `module_path`, its files in `dir`, on 127.0.0.1; tracked as
    /// `name`. Returns (PID, port).
    pub fn dbhost_rsyncd(
        &mut self,
        name: &str,
        template: &str,
        dir: &Path,
        module_path: &Path,
        hosts_allow: &str,
    ) -> Result<(u32, u16)> {
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            render_rsyncd(template, dir, module_path, hosts_allow),
        )
        .with_context(|| format!("write {}", conf.display()))?;
        let mut d = start_rsyncd(&conf, &[localhost()])?;
        d.iter_mut().for_each(|d| d.proc.name = name.into());
        let (pid, _, port) = self.track_daemons(d)[0];
        Ok((pid, port))
    }

    /// A database host's rsync daemon with a generated config: module
    /// `backup` over `path` (chroot as deploy/ ships it, or not), `extra`
    /// in the global section. The caller owns it.
    pub fn test_dbhost(&self, path: &Path, chroot: bool, extra: &str) -> Result<RsyncDaemon> {
        let module = RsyncModule {
            name: "backup".into(),
            path: path.into(),
            chroot,
        };
        RsyncDaemon::start_with(&[module], extra)
    }

    /// Waits until worker `id` (a node or the indexer) has a heartbeat.
    pub fn wait_alive(&self, id: &str, what: &str, deadline: Duration) -> Result<(), TimedOut> {
        let mut c = self.conn();
        let key = self.keys.alive(id);
        wait_for(what, deadline, || {
            redis::cmd("EXISTS")
                .arg(&key)
                .query::<bool>(&mut c)
                .unwrap_or(false)
        })
    }

    /// Items not yet through the pipeline: waiting on the lists, in flight at
    /// one of `workers`, in their outboxes, or results not yet indexed.
    pub fn pending(&self, workers: &[&str]) -> redis::RedisResult<i64> {
        let mut c = self.conn();
        let n = &self.names;
        let mut keys = vec![n.hi.clone(), n.lo.clone(), n.results.clone()];
        for w in workers {
            for q in [&n.hi, &n.lo, &n.results] {
                keys.push(self.keys.inflight(w, q));
            }
            keys.push(self.keys.outbox(w));
        }
        let mut total = 0;
        for k in keys {
            total += redis::cmd("LLEN").arg(&k).query::<i64>(&mut c)?;
        }
        Ok(total)
    }

    /// Runs a ubackup binary to completion (a reporter or client command).
    pub fn run(
        &self,
        bin: &str,
        args: &[&str],
        deadline: Duration,
    ) -> (Option<i32>, String, String) {
        run_bin(&self.bin(bin), args, deadline)
    }

    /// Stops every tracked process newest first (SIGTERM, SIGKILL after
    /// `grace`), then redis-server. Returns what needed SIGKILL.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<Killed> {
        let mut killed = self.procs.stop_all(grace);
        // sentinels and replicas first (kill -9 by PID), so that stopping
        // the master does not start a failover
        self.sentinel = None;
        if !self.redis.stop(grace) {
            killed.push(Killed {
                name: "redis-server".into(),
                pid: self.redis.pid().unwrap_or(0),
            });
        }
        killed
    }

    /// Leaves everything running and the directory in place; returns the
    /// directory.
    pub fn keep(self) -> PathBuf {
        let Cluster {
            dir,
            redis,
            procs,
            sentinel,
            ..
        } = self;
        procs.detach();
        if let Some(s) = sentinel {
            s.detach();
        }
        redis.detach();
        dir.keep()
    }
}
