//! A test world for the indexer: a real redis-server, the ES stand-in, a
//! temp dir for the SQLite catalog and config, and a unique key prefix and
//! queue name per test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use redis::Commands;
use ubackup_common::shutdown::{channel, ShutdownTrigger};
use ubackup_common::{DeadLetter, Keys, ResultRecord};
use ubackup_indexer::IndexerConfig;
use ubackup_testkit::es::EsStandIn;
use ubackup_testkit::{unique, wait_until, Proc, RedisServer};

pub struct World {
    pub redis: RedisServer,
    pub es: EsStandIn,
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub queue: String,
    pub indexer_id: String,
}

impl World {
    pub fn new() -> World {
        World {
            redis: RedisServer::start().unwrap(),
            es: EsStandIn::start(),
            dir: tempfile::tempdir().unwrap(),
            prefix: unique("t:"),
            queue: unique("message"),
            indexer_id: unique("ix"),
        }
    }

    pub fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("indexer.log")
    }

    /// A config with SQLite and ES on. `extra` holds `key = value` lines
    /// that replace (or add to) the [global] defaults; `key =` removes one.
    pub fn config_text(&self, extra: &str) -> String {
        let mut global: Vec<(String, String)> = vec![
            ("redis_url".into(), self.redis.url()),
            ("message_queue".into(), self.queue.clone()),
            ("key_prefix".into(), self.prefix.clone()),
            ("indexer_id".into(), self.indexer_id.clone()),
            ("catalog".into(), self.db_path().display().to_string()),
            ("es_urls".into(), self.es.url()),
            ("batch_ms".into(), "50".into()),
            ("log".into(), self.log_path().display().to_string()),
        ];
        for line in extra.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').expect("key = value");
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            global.retain(|(x, _)| *x != k);
            if !v.is_empty() {
                global.push((k, v));
            }
        }
        let mut text = String::from("[global]\n");
        for (k, v) in global {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text.push_str("[business]\n31 = 大话西游 #a game\n");
        text
    }

    pub fn write_config(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join("indexer.conf");
        std::fs::write(&p, self.config_text(extra)).unwrap();
        p
    }

    pub fn config(&self, extra: &str) -> IndexerConfig {
        IndexerConfig::load(&self.write_config(extra)).unwrap()
    }

    /// Runs the indexer in this process until the trigger fires.
    pub fn start(
        &self,
        cfg: IndexerConfig,
    ) -> (
        ShutdownTrigger,
        tokio::task::JoinHandle<Result<(), ubackup_indexer::IndexerError>>,
    ) {
        let (trigger, shutdown) = channel();
        let h = tokio::spawn(ubackup_indexer::run(cfg, shutdown));
        (trigger, h)
    }

    /// The real binary, in its own process group.
    pub fn spawn_binary(&self, config: &PathBuf) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ubackup-indexer"));
        cmd.arg("-c")
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Proc::spawn("ubackup-indexer", cmd).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.redis.conn()
    }

    /// LPUSHes results onto message_queue, as nodes do.
    pub fn push(&self, results: &[ResultRecord]) {
        let mut c = self.conn();
        for chunk in results.chunks(1000) {
            let payloads: Vec<String> = chunk
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
            let _: () = c.lpush(&self.queue, payloads).unwrap();
        }
    }

    pub fn push_raw(&self, payload: &str) {
        let _: () = self.conn().lpush(&self.queue, payload).unwrap();
    }

    pub fn queue_len(&self) -> u64 {
        self.conn().llen(&self.queue).unwrap()
    }

    pub fn inflight_len(&self) -> u64 {
        self.conn()
            .llen(self.keys().inflight(&self.indexer_id, &self.queue))
            .unwrap()
    }

    pub fn dead(&self) -> Vec<DeadLetter> {
        let raw: Vec<String> = self
            .conn()
            .lrange(self.keys().dead(&self.queue), 0, -1)
            .unwrap();
        raw.iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    pub fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    pub fn sqlite_count(&self) -> i64 {
        if !self.db_path().exists() {
            return 0;
        }
        self.sqlite()
            .query_row("SELECT COUNT(*) FROM backups", [], |r| r.get(0))
            .unwrap_or(0)
    }

    pub fn sqlite_ids(&self) -> Vec<String> {
        let c = self.sqlite();
        let mut st = c.prepare("SELECT id FROM backups ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Waits until nothing is queued or in flight.
    pub fn wait_drained(&self, deadline: Duration) {
        wait_until("message_queue and in-flight list empty", deadline, || {
            self.queue_len() == 0 && self.inflight_len() == 0
        });
    }
}

/// A successful result of `instance` created `age_s` seconds ago.
pub fn result(instance: i64, n: i64) -> ResultRecord {
    let create_time = ubackup_common::message::now_ms() - 60_000 + n;
    ResultRecord {
        filename: Some(format!("db_{instance}_{n}.tar.gz")),
        size: 1024 + n,
        bytes_per_sec: None,
        verify: Some("size".into()),
        checksum: None,
        ..ubackup_testkit::fixtures::result(instance, create_time)
    }
}

/// `n` results spread over 50 instances.
pub fn results(n: i64) -> Vec<ResultRecord> {
    (0..n).map(|i| result(3000 + i % 50, i)).collect()
}
