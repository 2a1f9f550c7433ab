//! A Redis server named by config keys: `<p>_host` / `<p>_port` (the
//! original keys, port 6379 by default) or `<p>_url` (`redis://` or, for
//! TLS, `rediss://`, with its database), plus `<p>_password`.
//!
//! Two groups exist: the queue Redis (`redis_*`, read by every binary) and
//! the server's separate results Redis (`message_redis_*`, read by the
//! server and the reporter), which defaults to the queue Redis.

use super::{ConfigError, SectionReader};
use crate::redis_conn::RedisTarget;

/// The keys of one Redis server.
#[derive(Debug, Clone, Copy)]
pub struct RedisKeys {
    pub host: &'static str,
    pub port: &'static str,
    pub url: &'static str,
    pub password: &'static str,
}

/// The cluster's queue Redis.
pub const QUEUE_REDIS: RedisKeys = RedisKeys {
    host: "redis_host",
    port: "redis_port",
    url: "redis_url",
    password: "redis_password",
};

/// The Redis holding `message_queue` when it is not the queue Redis.
pub const MESSAGE_REDIS: RedisKeys = RedisKeys {
    host: "message_redis_host",
    port: "message_redis_port",
    url: "message_redis_url",
    password: "message_redis_password",
};

pub const QUEUE_REDIS_KEYS: &[&str] = &QUEUE_REDIS.list();
pub const MESSAGE_REDIS_KEYS: &[&str] = &MESSAGE_REDIS.list();

impl RedisKeys {
    pub const fn list(&self) -> [&'static str; 4] {
        [self.host, self.port, self.url, self.password]
    }

    /// The keys that say where the server is (either one names it).
    pub const fn locators(&self) -> [&'static str; 2] {
        [self.host, self.url]
    }

    /// Whether `r` names this server (the host or the URL key is present).
    pub fn is_set(&self, r: &SectionReader) -> bool {
        r.has(self.host) || r.has(self.url)
    }

    /// The server, database 0 unless the URL names another. Errors name
    /// the host key when neither is set.
    pub fn read(&self, r: &SectionReader) -> Result<RedisTarget, ConfigError> {
        RedisTarget::from_section(r, self.host, self.port, self.url, self.password, 0)
    }

    /// This server if `r` names it, else `fallback`.
    pub fn read_or(
        &self,
        r: &SectionReader,
        fallback: &RedisTarget,
    ) -> Result<RedisTarget, ConfigError> {
        if self.is_set(r) {
            self.read(r)
        } else {
            Ok(fallback.clone())
        }
    }
}
