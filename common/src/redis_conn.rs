//! Where a Redis lives and how to connect to it: one fixed server (the
//! original `redis_host`/`redis_port`, or a `redis_url`), or the master of
//! a Redis Sentinel set-up, followed across failovers.
//!
//! Layout: this file holds [`RedisTarget`] (the parsed location, read by
//! `config::redis`); [`sentinel`] asks the sentinels which server is the
//! master and checks the answer with `ROLE`; [`failover`] holds
//! [`RedisConn`], the reconnecting handle for ordinary commands and
//! scripts, which asks the sentinels again when the master moved (redis-rs's
//! own `ConnectionManager` reconnects to one fixed address only).

pub mod durable;
pub mod failover;
pub mod sentinel;

use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;

pub use durable::{Unconfirmed, WriteMark};
pub use failover::RedisConn;
pub use sentinel::SentinelSet;

#[derive(Clone, Debug)]
enum Locator {
    /// One server, always the same address.
    Fixed(redis::ConnectionInfo),
    /// Whichever server the sentinels name as master right now.
    Sentinel(Arc<SentinelSet>),
}

/// What a write that must not be lost waits for (`redis_min_replicas`,
/// `redis_wait_timeout_ms`): see [`RedisConn::confirm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    /// Replicas that must have a write before it counts; 0: the master's
    /// reply is enough (the original behaviour).
    pub min_replicas: u32,
    /// How long one `WAIT` may block before the writer tries again.
    pub wait_timeout: Duration,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            min_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

/// One Redis as the config names it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    locator: Locator,
    /// Printable form, password never included.
    display: String,
    durability: Durability,
}

fn fixed_display(info: &redis::ConnectionInfo) -> String {
    format!("{} db {}", info.addr(), info.redis_settings().db())
}

impl RedisTarget {
    /// A fixed server.
    pub fn fixed(info: redis::ConnectionInfo) -> Self {
        let display = fixed_display(&info);
        RedisTarget {
            locator: Locator::Fixed(info),
            display,
            durability: Durability::default(),
        }
    }

    /// The master of `set`, asked for on every (re)connect.
    pub fn sentinel(set: SentinelSet) -> Self {
        let display = set.to_string();
        RedisTarget {
            locator: Locator::Sentinel(Arc::new(set)),
            display,
            durability: Durability::default(),
        }
    }

    /// For tests and tools: a plain `redis://` URL.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        Ok(Self::fixed(url.into_connection_info()?))
    }

    /// The same server (or master), with the database switched.
    pub fn with_db(&self, db: i64) -> Self {
        let t = match &self.locator {
            Locator::Fixed(info) => {
                let settings = info.redis_settings().clone().set_db(db);
                Self::fixed(info.clone().set_redis_settings(settings))
            }
            Locator::Sentinel(set) => Self::sentinel(set.with_db(db)),
        };
        t.with_durability(self.durability)
    }

    /// The same server, with writes confirmed on replicas as `d` says.
    pub fn with_durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// What a write that must not be lost waits for.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The sentinels, when this target is found through them.
    pub fn sentinels(&self) -> Option<&SentinelSet> {
        match &self.locator {
            Locator::Sentinel(s) => Some(s),
            Locator::Fixed(_) => None,
        }
    }

    /// Where to connect now: the fixed server, or the master the sentinels
    /// name (confirmed by its own `ROLE`).
    pub async fn current(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        match &self.locator {
            Locator::Fixed(info) => Ok(info.clone()),
            Locator::Sentinel(set) => set.master().await,
        }
    }

    /// True when both name the same server and database, so one Lua script
    /// can touch keys of both atomically.
    pub fn same_server(&self, other: &RedisTarget) -> bool {
        self.display == other.display
    }

    /// A reconnecting handle for ordinary commands and scripts; with
    /// sentinels it follows the master across failovers.
    pub async fn manager(&self) -> redis::RedisResult<RedisConn> {
        RedisConn::connect(self.clone()).await
    }

    /// A connection for blocking commands (BLMOVE): no client-side reply
    /// timeout, because the crate's default 500 ms would cut every block
    /// short. Callers race it against shutdown instead, and connect again
    /// (which asks the sentinels again) after any error.
    pub async fn blocking_connection(
        &self,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(None);
        redis::Client::open(self.current().await?)?
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }
}

/// The plain redis-rs manager for one address, as [`RedisConn`] uses it.
pub(crate) async fn manager_at(
    info: redis::ConnectionInfo,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(2);
    redis::Client::open(info)?
        .get_connection_manager_with_config(cfg)
        .await
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}
