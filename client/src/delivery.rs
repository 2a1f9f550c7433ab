//! Getting messages onto their Redis lists: push now, or spool and resend
//! on a later run, never twice.
//!
//! Every push (first try or resend) goes through the queue's
//! [`push_once`], which LPUSHes the message and sets an expiring marker for
//! its id in one atomic step, and does nothing if the marker exists. So:
//! * Redis down → the message is spooled; the next run resends it.
//! * The push was sent but the reply never came (timeout, connection cut) →
//!   it is spooled too, and the resend finds the marker if the first push
//!   had in fact landed.
//! * A crash after a resend succeeded but before its spool file was removed
//!   → the next resend finds the marker.
//!
//! The one remaining window: a resend later than `dedup_ttl` after a push
//! whose outcome was unknown. The marker has expired by then, so that
//! message could be queued twice. With the default of two days and hourly
//! cron runs this needs Redis to be unreachable for two days right after
//! an ambiguous push.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{error, info, warn};
use ubackup_common::queue::push::push_once;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::RedisConn;
use ubackup_common::{Keys, RedisTarget};

use crate::lock::{try_lock, LockError};
use crate::spool::{Envelope, Spool};

/// Pushes envelopes to one Redis. After a connection-level failure it stops
/// trying for the rest of the run, so twenty instances do not each wait out
/// a connect timeout: their messages go straight to the spool.
pub struct Sender {
    target: RedisTarget,
    keys: Keys,
    dedup_ttl: u64,
    conn: tokio::sync::Mutex<Conn>,
}

enum Conn {
    Untried,
    Up(RedisConn),
    Down(String),
}

impl Sender {
    pub fn new(target: RedisTarget, keys: Keys, dedup_ttl: u64) -> Sender {
        Sender {
            target,
            keys,
            dedup_ttl,
            conn: tokio::sync::Mutex::new(Conn::Untried),
        }
    }

    async fn connection(&self) -> Result<RedisConn, String> {
        // Held across the connect on purpose: the first caller connects,
        // the others wait for its result instead of connecting too.
        let mut g = self.conn.lock().await;
        match &*g {
            Conn::Up(c) => Ok(c.clone()),
            Conn::Down(e) => Err(e.clone()),
            Conn::Untried => match self.target.manager().await {
                Ok(c) => {
                    *g = Conn::Up(c.clone());
                    Ok(c)
                }
                Err(e) => {
                    let m = format!("Redis {} unreachable: {e}", self.target);
                    *g = Conn::Down(m.clone());
                    Err(m)
                }
            },
        }
    }

    /// Pushes `env` once. `Ok(true)`: pushed now; `Ok(false)`: an earlier
    /// attempt had already pushed it. `Err`: not known to be pushed.
    pub async fn push(&self, env: &Envelope) -> Result<bool, String> {
        let mut c = self.connection().await?;
        let res = push_once(
            &mut c,
            &self.keys,
            &env.id,
            &env.queue,
            &env.payload,
            self.dedup_ttl,
        )
        .await;
        match res {
            Ok(pushed) => Ok(pushed),
            Err(e) => {
                let connection_level = e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal();
                let m = format!(
                    "LPUSH onto `{}` at Redis {} failed: {e}",
                    env.queue, self.target
                );
                if connection_level {
                    *self.conn.lock().await = Conn::Down(m.clone());
                }
                Err(m)
            }
        }
    }
}

/// Where one message ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Pushed,
    /// A marker said an earlier attempt had pushed it.
    AlreadyQueued,
    /// Waiting in the spool for the next run.
    Spooled(PathBuf),
    /// Neither pushed nor spooled; the JSON is in the error log.
    Lost(String),
}

/// What draining the spool did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: usize,
    /// Resends that found their marker (an earlier push had landed).
    pub already: usize,
    /// Still in the spool (Redis failed again, or a stop signal).
    pub remaining: usize,
    pub quarantined: usize,
    /// Another client process was draining; this one left it alone.
    pub skipped: bool,
}

/// The Redis sender and the spool together.
pub struct Outbox {
    sender: Sender,
    spool: Spool,
    /// Set when older messages are still spooled: new ones then join the
    /// spool behind them instead of overtaking them.
    spool_first: AtomicBool,
}

impl Outbox {
    pub fn new(sender: Sender, spool: Spool) -> Outbox {
        Outbox {
            sender,
            spool,
            spool_first: AtomicBool::new(false),
        }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Pushes `env`, or spools it if that fails.
    pub async fn deliver(&self, env: Envelope) -> Delivery {
        if self.spool_first.load(Ordering::Relaxed) {
            return self.to_spool(
                env,
                "older spooled messages are still waiting for Redis".into(),
            );
        }
        match self.sender.push(&env).await {
            Ok(true) => Delivery::Pushed,
            Ok(false) => Delivery::AlreadyQueued,
            Err(e) => {
                warn!(step = "queue", queue = %env.queue, "{e}; spooling the message for the next run");
                self.to_spool(env, e)
            }
        }
    }

    fn to_spool(&self, mut env: Envelope, reason: String) -> Delivery {
        env.reason = reason;
        match self.spool.write(&env) {
            Ok(p) => {
                info!(step = "spool", queue = %env.queue, "message {} spooled to {}", env.id, p.display());
                Delivery::Spooled(p)
            }
            Err(e) => {
                let why = format!(
                    "cannot write a spool file in {}: {e}",
                    self.spool.outbox().display()
                );
                error!(
                    step = "spool",
                    queue = %env.queue,
                    "MESSAGE NOT QUEUED: {why}; push it by hand: redis-cli LPUSH {} '{}'",
                    env.queue,
                    env.payload
                );
                Delivery::Lost(why)
            }
        }
    }

    /// Resends spooled messages, oldest first. A file is removed only after
    /// its push succeeded; the first failure stops the drain, and then new
    /// messages of this run are spooled behind the old ones.
    pub async fn drain(&self, shutdown: &Shutdown) -> DrainReport {
        let mut report = DrainReport::default();
        let _lock = match try_lock(&self.spool.drain_lock_path()) {
            Ok(l) => l,
            Err(LockError::Busy { holder }) => {
                info!(step = "spool", "another ubackup-client ({holder}) is draining the spool; leaving it to that run");
                report.skipped = true;
                return report;
            }
            Err(LockError::Io(e)) => {
                warn!(
                    step = "spool",
                    "cannot take the drain lock ({e}); spooled messages stay for the next run"
                );
                report.remaining = self.spool.pending().map(|v| v.len()).unwrap_or(0);
                self.spool_first
                    .store(report.remaining > 0, Ordering::Relaxed);
                return report;
            }
        };
        let files = match self.spool.pending() {
            Ok(f) => f,
            Err(e) => {
                warn!(
                    step = "spool",
                    "cannot list {}: {e}",
                    self.spool.outbox().display()
                );
                return report;
            }
        };
        if files.is_empty() {
            return report;
        }
        info!(
            step = "spool",
            "{} spooled message(s) to resend, oldest first",
            files.len()
        );
        for (i, path) in files.iter().enumerate() {
            if shutdown.is_triggered() {
                report.remaining = files.len() - i;
                break;
            }
            let env = match Spool::read(path) {
                Ok(env) => env,
                Err(why) => {
                    report.quarantined += 1;
                    match self.spool.quarantine(path, &why) {
                        Ok(dest) => warn!(
                            step = "spool",
                            "{}: {why}; moved to {}",
                            path.display(),
                            dest.display()
                        ),
                        Err(e) => warn!(
                            step = "spool",
                            "{}: {why}; and it cannot be moved aside: {e}",
                            path.display()
                        ),
                    }
                    continue;
                }
            };
            match self.sender.push(&env).await {
                Ok(new) => {
                    if new {
                        report.sent += 1;
                        info!(step = "spool", section = %env.section, queue = %env.queue, "resent spooled message {}", env.id);
                    } else {
                        report.already += 1;
                        info!(
                            step = "spool",
                            section = %env.section,
                            queue = %env.queue,
                            "spooled message {} had already been queued (an earlier push landed); not sent again",
                            env.id
                        );
                    }
                    if let Err(e) = std::fs::remove_file(path) {
                        warn!(step = "spool", "{} was sent but cannot be removed ({e}); its marker stops a second send", path.display());
                    }
                }
                Err(e) => {
                    report.remaining = files.len() - i;
                    warn!(
                        step = "spool",
                        "{e}; {} spooled message(s) stay for the next run", report.remaining
                    );
                    break;
                }
            }
        }
        if report.remaining > 0 {
            self.spool_first.store(true, Ordering::Relaxed);
        }
        report
    }
}
