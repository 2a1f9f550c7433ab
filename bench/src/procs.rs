//! The processes of a run: one redis-server for everything, rsync daemons,
//! and ubackup's release binaries started with generated configs. Each is
//! stopped by the PID we started.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Commands;
use ubackup_common::Keys;
use ubackup_testkit::{unique, Proc, RedisServer};

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Bins {
    pub server: PathBuf,
    pub indexer: PathBuf,
    pub client: PathBuf,
}

impl Bins {
    pub fn in_dir(dir: &Path) -> Result<Bins> {
        let b = Bins {
            server: dir.join("ubackup-server"),
            indexer: dir.join("ubackup-indexer"),
            client: dir.join("ubackup-client"),
        };
        for p in [&b.server, &b.indexer, &b.client] {
            if !p.exists() {
                bail!(
                    "{} not found (build with `cargo build --release`)",
                    p.display()
                );
            }
        }
        Ok(b)
    }
}

/// What every workload shares.
pub struct Env {
    pub bins: Bins,
    pub redis: RedisServer,
    /// Scratch space: sources, server roots, configs, logs.
    pub work: PathBuf,
}

impl Env {
    pub fn conn(&self) -> redis::Connection {
        self.redis.conn()
    }

    /// A fresh, empty directory under the scratch space.
    pub fn fresh_dir(&self, tag: &str) -> PathBuf {
        let d = self.work.join(unique(tag));
        std::fs::create_dir_all(&d).expect("create scratch dir");
        d
    }
}

/// (VmHWM, VmRSS) of `pid` in KiB, from /proc/<pid>/status.
/// CPU seconds the whole machine has spent busy since boot (all cores:
/// user, nice, system, irq, softirq, steal; not idle or iowait), from
/// /proc/stat. The difference across a run is what that run cost, rsync's
/// daemon-side processes and the kernel's writeback included.
pub fn cpu_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    // USER_HZ is 100 on every Linux this runs on
    Some((total - idle) as f64 / 100.0)
}

pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Polls `cond` every `every` until true or `deadline`; Err on timeout.
pub fn wait_for(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<()> {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// A node's config, lists and root, before it runs (so that a backlog can
/// be queued before the node starts).
pub struct ServerSetup {
    pub id: String,
    pub root: PathBuf,
    pub keys: Keys,
    /// The top list (`level1`).
    pub hi: String,
    /// The normal list.
    pub lo: String,
    pub results: String,
    pub conf: PathBuf,
    prefix: String,
}

impl ServerSetup {
    /// The shipped defaults, except paths, lists and the `extra` overrides.
    pub fn new(env: &Env, workers: usize, extra: &[(&str, &str)]) -> Result<ServerSetup> {
        let prefix = format!("{}:", unique("b"));
        Self::with_prefix(env, workers, extra, prefix)
    }

    /// Another node (own id and root) on the same lists as `self`.
    pub fn sibling(
        &self,
        env: &Env,
        workers: usize,
        extra: &[(&str, &str)],
    ) -> Result<ServerSetup> {
        Self::with_prefix(env, workers, extra, self.prefix.clone())
    }

    fn with_prefix(
        env: &Env,
        workers: usize,
        extra: &[(&str, &str)],
        prefix: String,
    ) -> Result<ServerSetup> {
        let id = unique("node");
        let dir = env.fresh_dir("srv");
        let root = dir.join("root");
        let keys = Keys::new(&prefix);
        let hi = format!("{prefix}level1");
        let lo = format!("{prefix}uuzuback");
        let results = format!("{prefix}message");
        let mut kv: Vec<(String, String)> = vec![
            ("work_thread".into(), workers.to_string()),
            ("server_root_path".into(), root.display().to_string()),
            ("reserve_bytes".into(), "0".into()),
            ("redis_host".into(), "127.0.0.1".into()),
            ("redis_port".into(), env.redis.port.to_string()),
            ("redis_queue".into(), format!("{hi} {lo}")),
            ("message_queue".into(), results.clone()),
            ("myip".into(), "127.0.0.1".into()),
            ("node_id".into(), id.clone()),
            ("key_prefix".into(), prefix.clone()),
            ("log".into(), dir.join("server.log").display().to_string()),
        ];
        for (k, v) in extra {
            kv.retain(|(x, _)| x != k);
            kv.push((k.to_string(), v.to_string()));
        }
        let mut text = String::from("[global]\n");
        for (k, v) in kv {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let conf = dir.join("server.conf");
        std::fs::write(&conf, text)?;
        Ok(ServerSetup {
            id,
            root,
            keys,
            hi,
            lo,
            results,
            conf,
            prefix,
        })
    }

    /// Starts the node. With `wait_alive` it returns once the node's
    /// heartbeat exists (it is taking messages).
    pub fn spawn(self, env: &Env, wait_alive: bool) -> Result<Server> {
        let mut cmd = Command::new(&env.bins.server);
        cmd.arg("-c")
            .arg(&self.conf)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn("ubackup-server", cmd)?;
        let s = Server { proc, setup: self };
        if wait_alive {
            let mut c = env.conn();
            let alive = s.keys.alive(&s.id);
            wait_for(
                "the node's heartbeat",
                Duration::from_secs(20),
                Duration::from_millis(5),
                || c.exists::<_, bool>(&alive).unwrap_or(false),
            )?;
        }
        Ok(s)
    }

    /// The key prefix of this node's lists (shared with its siblings).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of results pushed so far.
    pub fn result_count(&self, c: &mut redis::Connection) -> usize {
        c.llen(&self.results).unwrap_or(0)
    }

    /// Waits (polling every 2 ms) for `n` results. The caller takes the time.
    pub fn wait_results(
        &self,
        c: &mut redis::Connection,
        n: usize,
        deadline: Duration,
    ) -> Result<()> {
        wait_for(
            &format!("{n} results on {}", self.results),
            deadline,
            Duration::from_millis(2),
            || self.result_count(c) >= n,
        )
    }

    /// (successes, failures, the first failure's log) among the results.
    pub fn tally(&self, c: &mut redis::Connection) -> Result<(usize, usize, Option<String>)> {
        let raw: Vec<String> = c.lrange(&self.results, 0, -1)?;
        let (mut ok, mut bad, mut why) = (0, 0, None);
        for r in raw {
            let v: serde_json::Value = serde_json::from_str(&r)?;
            if v["succeed"] == 1 {
                ok += 1;
            } else {
                bad += 1;
                why.get_or_insert_with(|| v["log"].as_str().unwrap_or("").to_string());
            }
        }
        Ok((ok, bad, why))
    }

    /// Fails unless exactly `n` results arrived and all succeeded.
    pub fn check_all_ok(&self, c: &mut redis::Connection, n: usize) -> Result<()> {
        let (ok, bad, why) = self.tally(c)?;
        if ok != n || bad != 0 {
            bail!(
                "expected {n} successful results, got {ok} ok and {bad} failed (first failure: {})",
                why.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// A running `ubackup-server`.
pub struct Server {
    proc: Proc,
    pub setup: ServerSetup,
}

impl std::ops::Deref for Server {
    type Target = ServerSetup;
    fn deref(&self) -> &ServerSetup {
        &self.setup
    }
}

impl Server {
    pub fn spawn(env: &Env, workers: usize, extra: &[(&str, &str)]) -> Result<Server> {
        ServerSetup::new(env, workers, extra)?.spawn(env, true)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Peak RSS so far, MiB.
    pub fn peak_mib(&self) -> f64 {
        rss_kib(self.pid())
            .map(|(h, _)| h as f64 / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// SIGKILL to the node's process group: a lost node (no drain, no
    /// deregistration). Its store is the caller's to delete.
    pub fn kill9(mut self) {
        self.proc.kill9_group();
    }

    /// SIGTERM, wait for a clean exit, then delete the node's root.
    pub fn stop(mut self) -> Result<()> {
        self.proc.signal(libc::SIGTERM);
        let r = match self.proc.wait_exit(Duration::from_secs(60)) {
            Some(Some(0)) => Ok(()),
            other => Err(anyhow::anyhow!(
                "ubackup-server did not stop cleanly: {other:?}"
            )),
        };
        let _ = std::fs::remove_dir_all(&self.setup.root);
        r
    }
}

/// Which stores the indexer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    Sqlite,
    Es,
    Both,
}

impl Stores {
    pub fn name(self) -> &'static str {
        match self {
            Stores::Sqlite => "sqlite",
            Stores::Es => "es",
            Stores::Both => "both",
        }
    }
}

/// An indexer's config on a fresh queue, before it runs.
pub struct IndexerSetup {
    pub id: String,
    pub queue: String,
    pub keys: Keys,
    pub db: PathBuf,
    pub conf: PathBuf,
}

impl IndexerSetup {
    /// A config for `stores` with the shipped defaults (batch_size 500,
    /// batch_ms 1000).
    pub fn new(
        env: &Env,
        stores: Stores,
        es_url: Option<&str>,
        es_index: &str,
    ) -> Result<IndexerSetup> {
        let dir = env.fresh_dir("ix");
        let prefix = format!("{}:", unique("b"));
        let id = unique("indexer");
        let queue = format!("{prefix}message");
        let db = dir.join("catalog.db");
        let mut text = format!(
            "[global]\nredis_url = {}\nmessage_queue = {queue}\nkey_prefix = {prefix}\nindexer_id = {id}\nlog = {}\n",
            env.redis.url(),
            dir.join("indexer.log").display()
        );
        if stores == Stores::Es {
            text.push_str("catalog = off\n");
        } else {
            text.push_str(&format!("catalog = {}\n", db.display()));
        }
        if stores != Stores::Sqlite {
            let url = es_url.context("ES url")?;
            text.push_str(&format!("es_urls = {url}\nes_index = {es_index}\n"));
        }
        text.push_str("[business]\n31 = bench\n");
        let conf = dir.join("indexer.conf");
        std::fs::write(&conf, text)?;
        Ok(IndexerSetup {
            id,
            queue,
            keys: Keys::new(&prefix),
            db,
            conf,
        })
    }

    /// Results still queued or in flight.
    pub fn backlog(&self, c: &mut redis::Connection) -> u64 {
        let q: u64 = c.llen(&self.queue).unwrap_or(u64::MAX / 4);
        let f: u64 = c
            .llen(self.keys.inflight(&self.id, &self.queue))
            .unwrap_or(u64::MAX / 4);
        q + f
    }

    pub fn spawn(&self, env: &Env) -> Result<Indexer> {
        let mut cmd = Command::new(&env.bins.indexer);
        cmd.arg("-c")
            .arg(&self.conf)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(Indexer {
            proc: Proc::spawn("ubackup-indexer", cmd)?,
        })
    }
}

/// A running `ubackup-indexer`.
pub struct Indexer {
    proc: Proc,
}

impl Indexer {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn stop(mut self) -> Result<()> {
        self.proc.signal(libc::SIGTERM);
        match self.proc.wait_exit(Duration::from_secs(60)) {
            Some(Some(0)) => Ok(()),
            other => bail!("ubackup-indexer did not stop cleanly: {other:?}"),
        }
    }
}
