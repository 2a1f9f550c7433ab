//! [`RedisConn`]: the reconnecting handle every component sends ordinary
//! commands and scripts through.
//!
//! For a fixed server it is redis-rs's `ConnectionManager` and nothing more.
//! Under Sentinel that is not enough: the manager reconnects to the address
//! it was made with, so after a failover it keeps dialling the dead (or
//! demoted) master (`common/tests/failover.rs` pins this). So after an
//! error that says the master may have moved (a connection error,
//! `READONLY`, `MASTERDOWN`), the sentinels are asked again, and a new
//! manager for the new master replaces the old one for every clone.
//!
//! What is retried here, and what is not:
//! * `READONLY` / `MASTERDOWN`: the server refused the command without
//!   running it, so once a new master is found the command is sent there
//!   once more (a Lua script then gets `NOSCRIPT` on the new master, and
//!   `redis::Script` loads it again by itself);
//! * a connection error: the command may or may not have run, so the error
//!   goes back to the caller, whose own retry (with `crate::backoff`) is
//!   what it already does when Redis is down; the next command goes to the
//!   new master.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
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
    /// find its answer.
    follow: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Current {
    manager: ConnectionManager,
    /// `host:port` of the server `manager` talks to.
    addr: String,
    /// Bumped on every switch: a task that failed on an older connection
    /// finds the switch already made.
    generation: u64,
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

    fn snapshot(&self) -> Current {
        self.shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After `e` on the connection of `generation`: if the master may have
    /// moved, ask the sentinels and switch. True when commands now go to
    /// another server than the one that failed.
    async fn follow(&self, e: &redis::RedisError, generation: u64) -> bool {
        if self.target.sentinels().is_none() || !master_may_have_moved(e) {
            return false;
        }
        let mut last = self.shared.follow.lock().await;
        let now = self.snapshot();
        if now.generation != generation {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REASK) {
            return false;
        }
        *last = Some(Instant::now());
        let info = match self.target.current().await {
            Ok(info) => info,
            Err(asked) => {
                warn!(redis = %self.target, error = %e, %asked,
                    "Redis command failed and the sentinels named no usable master yet");
                return false;
            }
        };
        let addr = info.addr().to_string();
        if addr == now.addr {
            // Same master (a restart, a blip): its manager reconnects itself.
            return false;
        }
        match manager_at(info).await {
            Ok(manager) => {
                let mut cur = self
                    .shared
                    .current
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *cur = Current {
                    manager,
                    addr: addr.clone(),
                    generation: generation + 1,
                };
                drop(cur);
                info!(redis = %self.target, from = %now.addr, to = %addr, error = %e,
                    "Redis master moved (failover); following the sentinels to the new master");
                true
            }
            Err(c) => {
                warn!(redis = %self.target, to = %addr, error = %c,
                    "the sentinels name a new Redis master, but connecting to it failed");
                false
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let cur = self.snapshot();
            let mut m = cur.manager;
            let r = m.req_packed_command(cmd).await;
            if let Err(e) = &r {
                if self.follow(e, cur.generation).await && command_refused_by_replica(e) {
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
            let cur = self.snapshot();
            let mut m = cur.manager;
            let r = m.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                if self.follow(e, cur.generation).await && command_refused_by_replica(e) {
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
