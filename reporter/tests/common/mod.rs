//! A reporter test bench: its own redis-server, SQLite catalog, key prefix
//! and list names, and a config file pointing at them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ubackup_catalog::{Catalog, CatalogRecord, SqliteCatalog};
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::{Keys, ResultRecord};
use ubackup_reporter::config::ReporterConfig;
use ubackup_reporter::snapshot::Sources;
use ubackup_reporter::AlertReport;
use ubackup_testkit::{unique, RedisServer};

pub struct Bench {
    pub redis: RedisServer,
    pub dir: tempfile::TempDir,
    pub keys: Keys,
    pub prefix: String,
    /// Priority lists (highest first) and the results list.
    pub q1: String,
    pub q2: String,
    pub mq: String,
    pub catalog_path: PathBuf,
    pub catalog: SqliteCatalog,
    pub config: PathBuf,
}

impl Bench {
    /// `reporter` goes into a `[reporter]` section (thresholds).
    pub fn new(reporter: &str) -> Bench {
        let redis = RedisServer::start().expect("redis");
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique("rt:") + ":";
        let keys = Keys::new(&prefix);
        let catalog_path = dir.path().join("catalog.db");
        let catalog = SqliteCatalog::open(&catalog_path).unwrap();
        let mut b = Bench {
            q1: unique("level1_"),
            q2: unique("bulk_"),
            mq: unique("message_"),
            redis,
            keys,
            prefix,
            catalog_path,
            catalog,
            config: PathBuf::new(),
            dir,
        };
        b.config = b.write_config("indexer.conf", reporter);
        b
    }

    /// An indexer-style config (redis, message_queue, catalog) plus the
    /// priority lists, and `[reporter]` with `reporter`.
    pub fn write_config(&self, name: &str, reporter: &str) -> PathBuf {
        let text = format!(
            "[global]\nredis_host = 127.0.0.1\nredis_port = {}   # test redis\nredis_queue = {} {}\nmessage_queue = {}\nkey_prefix = {}\ncatalog = {}\n[reporter]\n{reporter}\n",
            self.redis.port,
            self.q1,
            self.q2,
            self.mq,
            self.prefix,
            self.catalog_path.display()
        );
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn cfg(&self) -> ReporterConfig {
        ReporterConfig::load(&self.config).unwrap()
    }

    pub fn conn(&self) -> redis::Connection {
        self.redis.conn()
    }

    pub async fn store(&self, recs: Vec<ResultRecord>) {
        let recs: Vec<CatalogRecord> = recs
            .into_iter()
            .map(|r| CatalogRecord::new(r, "mygame"))
            .collect();
        self.catalog.store(&recs).await.unwrap();
    }

    /// The report a run of `alerts` would give now.
    pub async fn alerts(&self) -> AlertReport {
        let mut src = Sources::open(self.cfg(), true).await.unwrap();
        ubackup_reporter::alerts_now(&mut src).await.unwrap()
    }

    pub async fn alert_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .alerts()
            .await
            .alerts
            .into_iter()
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    }

    /// Registers a worker with a state hash; `up` sets its heartbeat key.
    pub fn node(&self, id: &str, up: bool, fields: &[(&str, &str)]) {
        let mut c = self.conn();
        let mut all: Vec<(&str, String)> = vec![
            (state::KIND, "node".into()),
            (state::IP, "10.20.0.5".into()),
            (state::QUEUES, format!("{} {}", self.q1, self.q2)),
            (state::HEARTBEAT_MS, (now_ms() - 2000).to_string()),
            (state::PAUSED, "0".into()),
            (state::ACTIVE, "1".into()),
            (state::WORKERS, "4".into()),
            (state::DISK_TOTAL, (1u64 << 40).to_string()),
            (state::DISK_FREE, (1u64 << 39).to_string()),
        ];
        for (k, v) in fields {
            all.retain(|(x, _)| x != k);
            all.push((k, v.to_string()));
        }
        redis::cmd("SADD")
            .arg(self.keys.workers())
            .arg(id)
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("HSET")
            .arg(self.keys.state(id))
            .arg(&all)
            .query::<()>(&mut c)
            .unwrap();
        self.set_up(id, up);
    }

    pub fn set_up(&self, id: &str, up: bool) {
        let mut c = self.conn();
        if up {
            redis::cmd("SET")
                .arg(self.keys.alive(id))
                .arg(now_ms())
                .arg("PX")
                .arg(60_000)
                .query::<()>(&mut c)
                .unwrap();
        } else {
            redis::cmd("DEL")
                .arg(self.keys.alive(id))
                .query::<()>(&mut c)
                .unwrap();
        }
    }

    pub fn hgetall(&self, key: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }

    /// Runs the real binary; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        run_bin(args)
    }
}

pub fn run_bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ubackup-reporter"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ubackup-reporter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A client's backup message as the client pushes it.
pub fn message(server_id: i64, instance: i64, create_time_s: i64) -> String {
    serde_json::json!({
        "filename": format!("db_{instance}.tar.gz"), "last_all_filename": null, "size": 1024, "log": "ok",
        "create_time": create_time_s, "success": true, "server_id": server_id, "game_id": 31, "op_id": 1,
        "game_server_ip": "10.0.0.5", "back_type": "mysql", "instance": instance,
        "rsync_model": "backup/db", "last_all_time": 0, "interval": 3600
    })
    .to_string()
}

/// A successful pull of `instance` (type mysql) created `age_s` seconds ago.
pub fn ok(instance: i64, age_s: i64, interval: i64) -> ResultRecord {
    let t = now_ms() - age_s * 1000;
    ResultRecord {
        interval,
        back_server_ip: "10.20.0.5".into(),
        file_path: Some("/backup/mysql/10.0.0/5/".into()),
        rsync_time: t + 3000,
        size: 50 << 20,
        duration_ms: Some(2500),
        bytes_per_sec: Some(20 << 20),
        checksum: Some("blake3:00".into()),
        ..ubackup_testkit::fixtures::result(instance, t)
    }
}

/// The client reported a failure (no pull).
pub fn client_failed(instance: i64, age_s: i64, log: &str) -> ResultRecord {
    let mut r = ok(instance, age_s, 3600);
    r.succeed = 0;
    r.log = log.into();
    r.file_path = None;
    r.duration_ms = None;
    r.attempts = None;
    r.bytes_per_sec = None;
    r.verify = None;
    r.checksum = None;
    r
}

/// The node tried and failed to pull.
pub fn pull_failed(instance: i64, age_s: i64) -> ResultRecord {
    let mut r = client_failed(
        instance,
        age_s,
        "pull failed after 3 attempt(s): rsync exit code 10 (error in socket I/O)",
    );
    r.attempts = Some(3);
    r.duration_ms = Some(9000);
    r.verify = Some("failed: rsync exit code 10 (error in socket I/O)".into());
    r
}

/// Debian's Chromium (`CHROMIUM=path` overrides). Panics, saying how to
/// install it, when it is missing: the browser tests fail, never skip.
pub fn chromium_bin() -> PathBuf {
    let bin = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        bin.exists(),
        "the browser test needs Chromium at {} (Debian: `apt-get install -y chromium`, or set CHROMIUM=/path/to/chromium); it does not skip",
        bin.display()
    );
    bin
}

/// `GET path` over HTTP/1.0 on 127.0.0.1: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Rows in a SQLite catalog's `backups` table (0 while it cannot be read).
pub fn catalog_rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM backups", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// The real `ubackup-indexer` binary with config `conf`.
pub fn spawn_indexer(conf: &Path) -> ubackup_testkit::Proc {
    let mut cmd = Command::new(ubackup_testkit::workspace_bin("ubackup-indexer"));
    cmd.args(["-c", p(conf)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    ubackup_testkit::Proc::spawn("ubackup-indexer", cmd).unwrap()
}

/// The real `ubackup-reporter serve` with config `conf` on a free port,
/// once it answers `/api/status`: (process, port).
pub fn spawn_serve(conf: &Path) -> (ubackup_testkit::Proc, u16) {
    let port = ubackup_testkit::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ubackup-reporter"));
    cmd.args([
        "serve",
        "-c",
        p(conf),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .env("RUST_LOG", "warn")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let serve = ubackup_testkit::Proc::spawn("ubackup-reporter serve", cmd).unwrap();
    ubackup_testkit::wait_until("serve answers", std::time::Duration::from_secs(30), || {
        matches!(http_get(port, "/api/status"), Ok((200, _)))
    });
    (serve, port)
}

/// A config for the real indexer binary: `redis_url`, the results list,
/// the key prefix, the SQLite catalog, its log file, and `[business]`
/// lines (`31 = name`).
pub fn write_indexer_conf(
    path: &Path,
    redis_url: &str,
    mq: &str,
    prefix: &str,
    catalog: &Path,
    log: &Path,
    business: &str,
) {
    std::fs::write(
        path,
        format!(
            "[global]\nredis_url = {redis_url}\nmessage_queue = {mq}\nkey_prefix = {prefix}\nindexer_id = indexer-1\ncatalog = {}\nbatch_ms = 50\nbatch_size = 500\nlog = {}\n[business]\n{business}",
            catalog.display(),
            log.display()
        ),
    )
    .unwrap();
}
