//! Where a Redis lives, read from config keys, and how to connect to it.

use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::config::{ConfigError, SectionReader};

/// One Redis server: from `<p>_host`/`<p>_port` (the original keys) or from
/// `<p>_url` (`redis://` / `rediss://`), plus `<p>_password`.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    info: redis::ConnectionInfo,
    /// Printable form, password never included.
    display: String,
}

impl RedisTarget {
    /// Reads `{host_key}`, `{port_key}`, `redis_url`, `redis_password`.
    /// `url_key`/`password_key` let the server read `message_redis_*` too.
    pub fn from_section(
        r: &SectionReader,
        host_key: &str,
        port_key: &str,
        url_key: &str,
        password_key: &str,
        db: i64,
    ) -> Result<Self, ConfigError> {
        let mut info = if let Some(url) = r.opt_str(url_key) {
            url.as_str().into_connection_info().map_err(|e| {
                r.error(url_key, format!("`{url}` is not a Redis URL ({e}); expected redis://host:port/db or rediss://…"))
            })?
        } else {
            let host = r.str(host_key, "the Redis host name or address")?;
            let port: u16 = r.parse_or(port_key, "a TCP port 1-65535", 6379)?;
            let info = (host.as_str(), port)
                .into_connection_info()
                .map_err(|e| r.error(host_key, format!("`{host}`: {e}")))?;
            let settings = info.redis_settings().clone().set_db(db);
            info.set_redis_settings(settings)
        };
        if let Some(pw) = r.opt_str(password_key) {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let display = format!("{} db {}", info.addr(), info.redis_settings().db());
        Ok(RedisTarget { info, display })
    }

    /// For tests and tools: a plain `redis://` URL.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let info = url.into_connection_info()?;
        let display = format!("{} db {}", info.addr(), info.redis_settings().db());
        Ok(RedisTarget { info, display })
    }

    /// The same server and database, with the database switched.
    pub fn with_db(&self, db: i64) -> Self {
        let settings = self.info.redis_settings().clone().set_db(db);
        let info = self.info.clone().set_redis_settings(settings);
        let display = format!("{} db {}", info.addr(), db);
        RedisTarget { info, display }
    }

    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.info.clone())
    }

    /// True when both name the same server and database, so one Lua script
    /// can touch keys of both atomically.
    pub fn same_server(&self, other: &RedisTarget) -> bool {
        self.display == other.display
    }

    /// A reconnecting handle for ordinary commands and scripts.
    pub async fn manager(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        self.client()?.get_connection_manager_with_config(cfg).await
    }

    /// A connection for blocking commands (BLMOVE): no client-side reply
    /// timeout, because the crate's default 500 ms would cut every block
    /// short (CRATES.md). Callers race it against shutdown instead.
    pub async fn blocking_connection(
        &self,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(None);
        self.client()?
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}
