//! One case's cluster, everything under one temp directory (`base`) except
//! what testkit keeps in its own dirs (redis's AOF, rsyncd.conf):
//!
//! ```text
//! base/src/db/…            the database host's files (module `backup`, chroot)
//! base/nodes/<id>/root/    each node's server_root_path
//! base/etc, base/logs      configs, one log file per process start
//! base/catalog.db          the indexer's SQLite catalog
//! base/spy/                the rsync spy (every spawn's argument vector)
//! base/attack/             where a traversal or injection would write; must stay empty
//! ```
//!
//! The Redis, the directory, the names and the configs come from the
//! workspace's cluster builder (`ubackup_testkit::cluster`). Nodes and the
//! indexer are the real binaries, each in its own process group, killed by
//! PID.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::Commands;
use ubackup_common::Keys;
use ubackup_testkit::cluster::{Cluster, ClusterBuilder, Conf, Names};
use ubackup_testkit::es::EsStandIn;
use ubackup_testkit::{Proc, RsyncDaemon};

use crate::ledger::{Ledger, MsgSpec, Producer};
use crate::proxy::EsProxy;
use crate::spy::RsyncSpy;

/// How a case wants its world.
#[derive(Default, Clone)]
pub struct WorldOpts {
    /// Added to the rsync daemon's global section (e.g. `auth users`).
    pub rsyncd_global: String,
    /// Put a TCP proxy between the indexer and the ES stand-in.
    pub es_proxy: bool,
    /// Serve the module without chroot (default: chroot, as deploy/ ships).
    pub no_chroot: bool,
    /// `appendfsync always` instead of testkit's `everysec`.
    pub fsync_always: bool,
    /// A replica and three sentinels around the Redis; every process
    /// names the sentinels, and the producer waits for one replica.
    pub sentinel: bool,
    /// With `sentinel`: `redis_min_replicas` of every node and the indexer.
    pub min_replicas: u32,
}

/// How to start a node: config overrides (`key`, `value`; empty value
/// removes the key) and extra environment.
#[derive(Default, Clone)]
pub struct NodeSpec {
    pub over: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    pub fn new() -> NodeSpec {
        NodeSpec::default()
    }
    pub fn set(mut self, k: &str, v: &str) -> NodeSpec {
        self.over.push((k.into(), v.into()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> NodeSpec {
        self.env.push((k.into(), v.into()));
        self
    }
}

pub struct Node {
    pub id: String,
    pub proc: Option<Proc>,
    pub spec: NodeSpec,
    pub root: PathBuf,
    /// One log file per start.
    pub logs: Vec<PathBuf>,
    pub starts: u32,
}

pub struct World {
    pub rsyncd: RsyncDaemon,
    pub es: EsStandIn,
    pub proxy: Option<std::sync::Arc<EsProxy>>,
    pub prefix: String,
    pub keys: Keys,
    /// The priority lists, highest first, and the results list.
    pub hi: String,
    pub lo: String,
    pub results: String,
    pub es_index: String,
    pub spy: RsyncSpy,
    pub nodes: BTreeMap<String, Node>,
    pub indexer: Option<Proc>,
    pub indexer_id: String,
    indexer_starts: u32,
    pub ledger: Ledger,
    /// Nodes lost with their disk on purpose ([`World::lose_node`]): the
    /// check no longer expects their files.
    pub lost: std::collections::BTreeSet<String>,
    /// The Redis (`cluster.redis`) and the directory (`cluster.dir`, the
    /// `base` above); last, so it goes after what lives in it.
    pub cluster: Cluster,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World::with(WorldOpts::default())
    }

    pub fn with(opts: WorldOpts) -> World {
        let mut b = ClusterBuilder::new("faults")
            .names(Names::unique("f:", "uuzuback"))
            .redis_log("logs/redis.log");
        if opts.fsync_always {
            b = b.redis_args(&["--appendfsync", "always"]);
        }
        if opts.sentinel {
            b = b.sentinel(ubackup_testkit::cluster::SentinelOpts {
                min_replicas: opts.min_replicas,
                ..Default::default()
            });
        }
        let cluster = b.start().expect("redis-server");
        for d in ["src/db", "nodes", "etc", "logs", "attack"] {
            std::fs::create_dir_all(cluster.path(d)).expect("world dirs");
        }
        let rsyncd = cluster
            .test_dbhost(&cluster.path("src"), !opts.no_chroot, &opts.rsyncd_global)
            .expect("rsync daemon");
        let es = EsStandIn::start();
        let proxy = opts
            .es_proxy
            .then(|| std::sync::Arc::new(EsProxy::start(es.addr())));
        let spy = RsyncSpy::install(&cluster.path("spy")).expect("rsync spy");
        let n = cluster.names.clone();
        World {
            keys: cluster.keys.clone(),
            hi: n.hi,
            lo: n.lo,
            results: n.results,
            es_index: "uuzubackup".into(),
            indexer_id: "ix".into(),
            indexer_starts: 0,
            prefix: n.prefix,
            cluster,
            rsyncd,
            es,
            proxy,
            spy,
            nodes: BTreeMap::new(),
            indexer: None,
            ledger: Ledger::default(),
            lost: Default::default(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.cluster.path(rel)
    }

    pub fn conn(&self) -> redis::Connection {
        self.cluster.conn()
    }

    pub fn producer(&self) -> Producer {
        match &self.cluster.sentinel {
            Some(s) => Producer::following(s.locator(), 1, self.ledger.clone()),
            None => Producer::new(&self.cluster.redis_url(), self.ledger.clone()),
        }
    }

    /// The source files directory (module `backup`, subdir `db`).
    pub fn src_dir(&self) -> PathBuf {
        self.path("src/db")
    }

    /// Writes a source file of `len` bytes and returns its message.
    pub fn source(&self, name: &str, len: usize, seed: u64) -> MsgSpec {
        ubackup_testkit::write_file(&self.src_dir().join(name), len, seed);
        MsgSpec::new(name, len as u64)
    }

    /// The same, with the file's true blake3 in the message.
    pub fn source_with_checksum(&self, name: &str, len: usize, seed: u64) -> MsgSpec {
        let m = self.source(name, len, seed);
        let sum = ubackup_common::fsutil::blake3_file(&self.src_dir().join(name)).expect("hash");
        m.with_checksum(sum)
    }

    // ---- nodes ----

    pub fn node_root(&self, id: &str) -> PathBuf {
        self.path(&format!("nodes/{id}/root"))
    }

    /// Where 127.0.0.1's mysql files land on node `id`.
    pub fn dest(&self, id: &str) -> PathBuf {
        self.node_root(id).join("mysql").join("127.0.0").join("1")
    }

    pub fn node_tmp(&self, id: &str) -> PathBuf {
        self.node_root(id).join(".ubackup-tmp").join(id)
    }

    fn node_config(&self, id: &str, spec: &NodeSpec, log: &Path) -> PathBuf {
        let root = self.node_root(id).display().to_string();
        let rsync_port = self.rsyncd.port.to_string();
        let conf = self
            .cluster
            .test_node_conf("the fault suite", id, &root, log)
            .apply(&[
                ("rsync_port", rsync_port.as_str()),
                ("drain_secs", "3"),
                ("queue_wait_ms", "100"),
                ("allow_sources", "127.0.0.0/8"),
            ])
            .apply(&spec.over);
        let path = self.path(&format!("etc/{id}.conf"));
        conf.write(&path).expect("node config");
        path
    }

    /// Starts node `id` and waits until it has connected (logged "started").
    pub fn start_node(&mut self, id: &str, spec: NodeSpec) {
        self.spawn_node(id, spec);
        self.wait_node_log(id, "started", Duration::from_secs(20));
    }

    /// Starts node `id` without waiting (a failpoint may kill it at once).
    pub fn spawn_node(&mut self, id: &str, spec: NodeSpec) {
        let starts = self.nodes.get(id).map(|n| n.starts).unwrap_or(0) + 1;
        let log = self.path(&format!("logs/{id}.{starts}.log"));
        let conf = self.node_config(id, &spec, &log);
        let mut cmd = self.cluster.command("ubackup-server", &conf);
        cmd.env("RUST_LOG", "info")
            .env("PATH", self.spy.path_env())
            .env_remove("UBACKUP_FAILPOINT");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(id, cmd).expect("spawn ubackup-server");
        let root = self.node_root(id);
        let node = self.nodes.entry(id.to_string()).or_insert_with(|| Node {
            id: id.into(),
            proc: None,
            spec: spec.clone(),
            root,
            logs: Vec::new(),
            starts: 0,
        });
        node.proc = Some(proc);
        node.spec = spec;
        node.logs.push(log);
        node.starts = starts;
    }

    /// Starts node `id` again with the spec it had (or a new one).
    pub fn restart_node(&mut self, id: &str, spec: Option<NodeSpec>) {
        let spec = spec.unwrap_or_else(|| self.nodes[id].spec.clone());
        self.spawn_node(id, spec);
        self.wait_node_log_of_start(id, "started", Duration::from_secs(20));
    }

    /// A node and its disk gone for good: kill -9, then its
    /// `server_root_path` deleted. The check skips the records and copies
    /// that named it; what matters is what the other nodes still hold.
    pub fn lose_node(&mut self, id: &str) {
        self.kill9_node(id);
        let _ = std::fs::remove_dir_all(self.node_root(id));
        self.lost.insert(id.to_string());
    }

    /// kill -9 of the node process only: its rsync (in a group of its own)
    /// survives as an orphan, as after a real crash.
    pub fn kill9_node(&mut self, id: &str) {
        if let Some(mut p) = self.nodes.get_mut(id).and_then(|n| n.proc.take()) {
            p.kill9();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop_node(&mut self, id: &str) -> Option<i32> {
        let mut p = self.nodes.get_mut(id).and_then(|n| n.proc.take())?;
        p.signal(libc::SIGTERM);
        let code = p.wait_exit(Duration::from_secs(30)).flatten();
        drop(p);
        code
    }

    pub fn node_pid(&self, id: &str) -> u32 {
        self.nodes
            .get(id)
            .and_then(|n| n.proc.as_ref())
            .map(|p| p.pid())
            .unwrap_or(0)
    }

    /// Waits for the node process to exit by itself (a failpoint's SIGKILL).
    pub fn wait_node_exit(&mut self, id: &str, deadline: Duration) -> bool {
        let Some(n) = self.nodes.get_mut(id) else {
            return false;
        };
        let Some(p) = n.proc.as_mut() else {
            return true;
        };
        let pid = p.pid();
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if p.wait_exit(Duration::from_millis(50)).is_some() || !crate::sig::alive(pid) {
                n.proc = None;
                return true;
            }
        }
        false
    }

    pub fn node_log(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .map(|n| {
                n.logs
                    .iter()
                    .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    fn current_node_log(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .and_then(|n| n.logs.last())
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until any of the node's logs so far contains `what`.
    pub fn wait_node_log(&self, id: &str, what: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if self.node_log(id).contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "node {id} never logged {what:?} within {deadline:?}; log:\n{}",
            tail(&self.node_log(id), 4000)
        );
    }

    /// Waits until the log of the node's latest start contains `what`.
    pub fn wait_node_log_of_start(&self, id: &str, what: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if self.current_node_log(id).contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "node {id} (start {}) never logged {what:?} within {deadline:?}; log:\n{}",
            self.nodes.get(id).map(|n| n.starts).unwrap_or(0),
            tail(&self.current_node_log(id), 4000)
        );
    }

    /// Bytes in a node's temp area (a transfer in progress writes there).
    pub fn tmp_bytes(&self, id: &str) -> u64 {
        walk_bytes(&self.node_tmp(id))
    }

    pub fn inflight(&self, id: &str) -> usize {
        let mut c = self.conn();
        let a: usize = c.llen(self.keys.inflight(id, &self.hi)).unwrap_or(0);
        let b: usize = c.llen(self.keys.inflight(id, &self.lo)).unwrap_or(0);
        a + b
    }

    // ---- indexer ----

    pub fn es_url(&self) -> String {
        match &self.proxy {
            Some(p) => p.url(),
            None => self.es.url(),
        }
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.path("catalog.db")
    }

    /// Every log line (nodes, indexer, redis-server) that mentions `needle`,
    /// to diagnose a violation.
    pub fn trace(&self, needle: &str) -> String {
        let mut out = String::new();
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.path("logs"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        for l in logs {
            let text = std::fs::read_to_string(&l).unwrap_or_default();
            for line in text.lines().filter(|x| x.contains(needle)) {
                out.push_str(&format!(
                    "{}: {}\n",
                    l.file_name().unwrap_or_default().to_string_lossy(),
                    line
                ));
            }
        }
        out
    }

    /// True if any of redis-server's AOF files mentions `needle`: whether a
    /// write naming it was ever persisted.
    pub fn aof_mentions(&self, needle: &str) -> bool {
        let mut stack = vec![self.cluster.redis.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        return true;
                    }
                }
            }
        }
        false
    }

    pub fn indexer_log(&self) -> String {
        (1..=self.indexer_starts)
            .map(|n| {
                std::fs::read_to_string(self.path(&format!("logs/indexer.{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts the indexer (SQLite + ES) and waits until it is taking results.
    pub fn start_indexer(&mut self) {
        self.indexer_starts += 1;
        let log = self.path(&format!("logs/indexer.{}.log", self.indexer_starts));
        let text = self
            .cluster
            .indexer_conf(
                Conf::generated("the fault suite"),
                &self.indexer_id,
                &self.catalog_path(),
                &log,
            )
            .apply(&[
                ("es_urls", self.es_url().as_str()),
                ("es_index", self.es_index.as_str()),
                ("es_timeout", "10"),
            ])
            .append("[business]\n31 = 大话西游\n");
        let conf = self.path("etc/indexer.conf");
        text.write(&conf).expect("indexer config");
        let mut cmd = self.cluster.command("ubackup-indexer", &conf);
        cmd.env("RUST_LOG", "info");
        self.indexer = Some(Proc::spawn("ubackup-indexer", cmd).expect("spawn ubackup-indexer"));
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("store ready")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "indexer not ready; log:\n{}",
            tail(&self.indexer_log(), 4000)
        );
    }

    pub fn kill9_indexer(&mut self) {
        if let Some(mut p) = self.indexer.take() {
            p.kill9_group();
        }
    }

    // ---- lists ----

    pub fn llen(&self, key: &str) -> usize {
        self.conn().llen(key).unwrap_or(0)
    }

    pub fn wait_llen(&self, key: &str, n: usize, deadline: Duration) {
        let mut c = self.conn();
        ubackup_testkit::wait_until(&format!("{n} element(s) on {key}"), deadline, || {
            c.llen::<_, usize>(key).unwrap_or(0) >= n
        });
    }

    /// Pauses (or resumes) a node through the operator control hash.
    pub fn set_paused(&self, id: &str, paused: bool) {
        let _: () = self
            .conn()
            .hset(
                self.keys.control(id),
                "paused",
                if paused { "1" } else { "0" },
            )
            .expect("control hash");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The nodes' rsyncs run in process groups of their own, which a
        // kill of the node's group does not reach: kill the groups each
        // node recorded (only rsync members, as the node's own start-up
        // cleanup does), after the nodes themselves.
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in &ids {
            self.kill9_node(id);
        }
        for id in &ids {
            if let Ok(rd) = std::fs::read_dir(self.node_tmp(id).join("pgid")) {
                for e in rd.flatten() {
                    if let Some(pgid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                        ubackup_transport::tmp::kill_rsync_group(pgid, Duration::from_secs(2));
                    }
                }
            }
        }
        self.kill9_indexer();
    }
}

pub fn walk_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

pub fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}
