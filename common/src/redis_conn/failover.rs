//! [`RedisConn`]: the reconnecting handle every component sends ordinary
//! commands and scripts through.
//!
//! For a fixed server it is redis-rs's `ConnectionManager` and nothing more.
//! Under Sentinel that is not enough: the manager reconnects to the address
//! it was made with, so after a failover it keeps dialling the dead master
//! (`common/tests/failover.rs` pins this), and when that server comes back
//! it would write to it in the seconds before the sentinels turn it into a
//! replica: writes a later resync throws away. So under Sentinel an error
//! that says the master may have moved (a connection error, `READONLY`,
//! `MASTERDOWN`) marks the connection stale, and a stale connection is never
//! used again: the next command first asks the sentinels, checks the answer
//! with `ROLE`, and connects a new manager there (for every clone). Until a
//! master is confirmed, commands fail at once, as they do while a fixed
//! Redis is down.
//!
//! What is retried here, and what is not:
//! * `READONLY` / `MASTERDOWN`: the server refused the command without
//!   running it, so once a master is confirmed the command is sent there
//!   once more (a Lua script then gets `NOSCRIPT` on the new master, and
//!   `redis::Script` loads it again by itself);
//! * a connection error: the command may or may not have run, so the error
//!   goes back to the caller, whose own retry (with `crate::backoff`) is
//!   what it already does when Redis is down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tracing::{info, warn};

use super::sentinel::{command_refused_by_replica, master_may_have_moved};
use super::{manager_at, RedisTarget};

/// A re-ask of the sentinels this soon after the last one is skipped: many
/// workers fail at the same moment and one answer serves them all.
const MIN_REASK: Duration = Duration::from_millis(200);

/// Cheap to clone; clones share the current master's connection, so one
/// failover is followed once for all of them.
#[derive(Clone)]
pub struct RedisConn {
    target: RedisTarget,
    shared: Arc<Shared>,
    db: i64,
}

struct Shared {
    current: Mutex<Current>,
    /// Held while the sentinels are asked, so one task asks and the others
    /// find its answer; holds when the last ask ended.
    follow: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Current {
    manager: ConnectionManager,
    /// `host:port` of the server `manager` talks to.
    addr: String,
    /// Bumped on every new manager: a task that failed on an older one
    /// finds the new one already made.
    generation: u64,
    /// Under Sentinel: an error said the master may have moved, so this
    /// manager is not used until the sentinels confirmed a master.
    stale: bool,
}

impl RedisConn {
    pub(super) async fn connect(target: RedisTarget) -> RedisResult<RedisConn> {
        let info = target.current().await?;
        let addr = info.addr().to_string();
        let db = info.redis_settings().db();
        let manager = manager_at(info).await?;
        Ok(RedisConn {
            target,
            shared: Arc::new(Shared {
                current: Mutex::new(Current {
                    manager,
                    addr,
                    generation: 0,
                    stale: false,
                }),
                follow: tokio::sync::Mutex::new(None),
            }),
            db,
        })
    }

    /// `host:port` of the server commands go to now.
    pub fn current_addr(&self) -> String {
        self.snapshot().addr
    }

    /// Bumped each time the handle follows the master to a new connection
    /// (under Sentinel): a write made at one generation and confirmed at
    /// another may have been on the old master only.
    pub(super) fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// What writes through this handle wait for before they count.
    pub fn durability(&self) -> super::Durability {
        self.target.durability()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Current {
        self.lock().clone()
    }

    /// The connection to send on: the current one, or, when it is stale, a
    /// new one to the master the sentinels confirm now.
    async fn usable(&self) -> RedisResult<Current> {
        let cur = self.snapshot();
        if !cur.stale {
            return Ok(cur);
        }
        self.reconnect().await?;
        Ok(self.snapshot())
    }

    /// After `e` on the connection of `generation`: under Sentinel, when the
    /// master may have moved, marks it stale and asks the sentinels. True
    /// when a master is confirmed and connected again.
    async fn after_error(&self, e: &RedisError, generation: u64) -> bool {
        if self.target.sentinels().is_none() || !master_may_have_moved(e) {
            return false;
        }
        {
            let mut cur = self.lock();
            if cur.generation == generation {
                cur.stale = true;
            }
        }
        match self.reconnect().await {
            Ok(()) => true,
            Err(asked) => {
                warn!(redis = %self.target, error = %e, %asked,
                    "Redis command failed and the sentinels confirm no master yet");
                false
            }
        }
    }

    /// Asks the sentinels (at most once per [`MIN_REASK`] for all clones),
    /// confirms the master with `ROLE` and replaces the stale manager.
    async fn reconnect(&self) -> RedisResult<()> {
        let mut last = self.shared.follow.lock().await;
        let old = self.snapshot();
        if !old.stale {
            return Ok(()); // another clone reconnected meanwhile
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REASK) {
            return Err(RedisError::from((
                ErrorKind::Io,
                "Redis master not confirmed by the sentinels yet",
                self.target.to_string(),
            )));
        }
        let asked = async {
            let info = self.target.current().await?;
            let addr = info.addr().to_string();
            Ok::<_, RedisError>((manager_at(info).await?, addr))
        }
        .await;
        *last = Some(Instant::now());
        let (manager, addr) = asked?;
        {
            let mut cur = self.lock();
            *cur = Current {
                manager,
                addr: addr.clone(),
                generation: old.generation + 1,
                stale: false,
            };
        }
        if addr == old.addr {
            info!(redis = %self.target, master = %addr, "Redis master confirmed by the sentinels again; reconnected");
        } else {
            info!(redis = %self.target, from = %old.addr, to = %addr,
                "Redis master moved (failover); following the sentinels to the new master");
        }
        Ok(())
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let cur = self.usable().await?;
            let mut m = cur.manager;
            let r = m.req_packed_command(cmd).await;
            if let Err(e) = &r {
                if self.after_error(e, cur.generation).await && command_refused_by_replica(e) {
                    return self.snapshot().manager.req_packed_command(cmd).await;
                }
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let cur = self.usable().await?;
            let mut m = cur.manager;
            let r = m.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                if self.after_error(e, cur.generation).await && command_refused_by_replica(e) {
                    return self
                        .snapshot()
                        .manager
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                }
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}
