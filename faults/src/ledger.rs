//! Backup messages with unique ids, and the ledger of those Redis
//! acknowledged.
//!
//! Every message gets its own `create_time` (and normally its own file
//! name): the record id the indexer stores is a hash of server_id, type,
//! instance, filename, create_time and node, so `create_time` names the
//! message in the SQLite catalog, in ES and in a dead letter alike.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use ubackup_testkit::cluster::MasterLocator;

pub const SERVER_ID: i64 = 111111;
pub const GAME_ID: i64 = 31;
pub const INSTANCE: i64 = 3306;
/// `rsync_model` of every well-formed message: module `backup`, subdir `db`.
pub const MODEL: &str = "backup/db";

/// A fresh `create_time` (unix seconds), unique in this process.
pub fn next_create_time() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(1_763_800_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a case expects to become of a message; checked with the invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A success record and a verified file.
    Landed,
    /// A failure record (`succeed: 0`), no file.
    FailureResult,
    /// A dead letter with a reason (a result may accompany it).
    DeadLetter,
    /// Landed, or dead-lettered (poison after repeated kills).
    LandedOrDead,
    /// Anything that is not lost or duplicated.
    Any,
}

/// A well-formed success message for `filename` of `size` bytes.
#[derive(Debug, Clone)]
pub struct MsgSpec {
    pub filename: String,
    pub size: u64,
    pub checksum: Option<String>,
    pub create_time: i64,
}

impl MsgSpec {
    pub fn new(filename: &str, size: u64) -> MsgSpec {
        MsgSpec {
            filename: filename.into(),
            size,
            checksum: None,
            create_time: next_create_time(),
        }
    }

    pub fn with_checksum(mut self, sum: String) -> MsgSpec {
        self.checksum = Some(sum);
        self
    }

    /// The message as our client sends it.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "filename": self.filename, "last_all_filename": null, "size": self.size, "log": "ok",
            "create_time": self.create_time, "success": true, "server_id": SERVER_ID, "game_id": GAME_ID,
            "op_id": 1, "game_server_ip": "127.0.0.1", "back_type": "mysql", "instance": INSTANCE,
            "rsync_model": MODEL, "last_all_time": 0, "interval": 3600,
        });
        if let Some(c) = &self.checksum {
            v["checksum"] = c.clone().into();
        }
        v
    }
}

/// One acknowledged LPUSH.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The message's `create_time`, if the payload has one (a non-JSON bad
    /// input has none and is found by its payload).
    pub id: Option<i64>,
    pub queue: String,
    pub payload: Vec<u8>,
    pub expect: Expect,
    /// The file name a success record must point at.
    pub filename: Option<String>,
}

/// The messages Redis acknowledged, shared with background producers.
#[derive(Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Ledger {
    pub fn record(&self, e: Entry) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Pushes messages and records each one only after Redis acknowledged it.
pub struct Producer {
    client: redis::Client,
    conn: Option<redis::Connection>,
    ledger: Ledger,
    /// With sentinels: the master of the moment, asked on every reconnect.
    follow: Option<MasterLocator>,
    /// A push counts as acknowledged only once `WAIT n` confirmed it on
    /// this many replicas (0: the master's reply is enough).
    wait_replicas: i64,
}

impl Producer {
    pub fn new(url: &str, ledger: Ledger) -> Producer {
        Producer {
            client: redis::Client::open(url).expect("redis url"),
            conn: None,
            ledger,
            follow: None,
            wait_replicas: 0,
        }
    }

    /// A producer for a Sentinel set-up: it reconnects to whichever server
    /// the sentinels name, and records a push only after `WAIT` confirmed
    /// it on `wait_replicas` replicas, so "acknowledged" means "survives a
    /// failover" (what `redis_min_replicas` would promise a client).
    pub fn following(locator: MasterLocator, wait_replicas: i64, ledger: Ledger) -> Producer {
        let url = locator
            .master_url()
            .unwrap_or_else(|| "redis://127.0.0.1:1/".into());
        let mut p = Producer::new(&url, ledger);
        p.follow = Some(locator);
        p.wait_replicas = wait_replicas;
        p
    }

    /// LPUSH `payload` onto `queue`; on an acknowledged push the message is
    /// in the ledger. An error (Redis down) records nothing: the caller may
    /// try again, like the client's spool.
    pub fn push_raw(
        &mut self,
        queue: &str,
        payload: &[u8],
        id: Option<i64>,
        filename: Option<&str>,
        expect: Expect,
    ) -> redis::RedisResult<()> {
        if self.conn.is_none() {
            if let Some(url) = self.follow.as_ref().and_then(MasterLocator::master_url) {
                self.client = redis::Client::open(url)?;
            }
            let c = self
                .client
                .get_connection_with_timeout(std::time::Duration::from_secs(2))?;
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected");
        let mut r: redis::RedisResult<i64> =
            redis::cmd("LPUSH").arg(queue).arg(payload).query(conn);
        if r.is_ok() && self.wait_replicas > 0 {
            r = redis::cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(1000)
                .query::<i64>(conn)
                .and_then(|n| {
                    if n >= self.wait_replicas {
                        Ok(n)
                    } else {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "push not confirmed on enough replicas",
                        )))
                    }
                });
        }
        match r {
            Ok(_) => {
                self.ledger.record(Entry {
                    id,
                    queue: queue.into(),
                    payload: payload.to_vec(),
                    expect,
                    filename: filename.map(str::to_string),
                });
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    pub fn push(&mut self, queue: &str, m: &MsgSpec, expect: Expect) -> redis::RedisResult<()> {
        self.push_raw(
            queue,
            m.json().to_string().as_bytes(),
            Some(m.create_time),
            Some(&m.filename),
            expect,
        )
    }

    /// A JSON value with a `create_time` (bad inputs built from a message).
    pub fn push_value(&mut self, queue: &str, v: &Value, expect: Expect) -> redis::RedisResult<()> {
        let id = v.get("create_time").and_then(Value::as_i64);
        let filename = v
            .get("filename")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.push_raw(
            queue,
            v.to_string().as_bytes(),
            id,
            filename.as_deref(),
            expect,
        )
    }

    /// Pushes until acknowledged, or gives up after `deadline`.
    pub fn push_until_acked(
        &mut self,
        queue: &str,
        m: &MsgSpec,
        expect: Expect,
        deadline: std::time::Duration,
    ) -> bool {
        let end = std::time::Instant::now() + deadline;
        loop {
            if self.push(queue, m, expect).is_ok() {
                return true;
            }
            if std::time::Instant::now() > end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
