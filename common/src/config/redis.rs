//! A Redis server named by config keys, one of two ways:
//! * fixed: `<p>_host` / `<p>_port` (the original keys, port 6379 by
//!   default) or `<p>_url` (`redis://` or, for TLS, `rediss://`, with its
//!   database);
//! * through Redis Sentinel: `<p>_sentinels = host:port,host:port,…` (port
//!   26379 by default), `<p>_master_name` (the name in `sentinel monitor`)
//!   and, when the sentinels have a `requirepass`, `<p>_sentinel_password`.
//!
//! `<p>_password` is the master's (and replicas') password either way. The
//! two ways exclude each other: a section naming both is an error that
//! names both keys.
//!
//! Either way, `<p>_min_replicas` (default 0) makes a write that must not
//! be lost (a push, an ack with its result) count as done only once `WAIT`
//! confirmed it on that many replicas, waiting up to `<p>_wait_timeout_ms`
//! (default 1000) per try; see `redis_conn::failover`.
//!
//! Two groups exist: the queue Redis (`redis_*`, read by every binary) and
//! the server's separate results Redis (`message_redis_*`, read by the
//! server and the reporter), which defaults to the queue Redis.

use redis::IntoConnectionInfo;

use super::{ConfigError, SectionReader};
use crate::redis_conn::{Durability, RedisTarget, SentinelSet};

/// The sentinels' own default port.
pub const SENTINEL_PORT: u16 = 26379;

/// The keys of one Redis server.
#[derive(Debug, Clone, Copy)]
pub struct RedisKeys {
    pub host: &'static str,
    pub port: &'static str,
    pub url: &'static str,
    pub password: &'static str,
    pub sentinels: &'static str,
    pub master_name: &'static str,
    pub sentinel_password: &'static str,
    pub min_replicas: &'static str,
    pub wait_timeout_ms: &'static str,
}

/// The cluster's queue Redis.
pub const QUEUE_REDIS: RedisKeys = RedisKeys {
    host: "redis_host",
    port: "redis_port",
    url: "redis_url",
    password: "redis_password",
    sentinels: "redis_sentinels",
    master_name: "redis_master_name",
    sentinel_password: "redis_sentinel_password",
    min_replicas: "redis_min_replicas",
    wait_timeout_ms: "redis_wait_timeout_ms",
};

/// The Redis holding `message_queue` when it is not the queue Redis.
pub const MESSAGE_REDIS: RedisKeys = RedisKeys {
    host: "message_redis_host",
    port: "message_redis_port",
    url: "message_redis_url",
    password: "message_redis_password",
    sentinels: "message_redis_sentinels",
    master_name: "message_redis_master_name",
    sentinel_password: "message_redis_sentinel_password",
    min_replicas: "message_redis_min_replicas",
    wait_timeout_ms: "message_redis_wait_timeout_ms",
};

pub const QUEUE_REDIS_KEYS: &[&str] = &QUEUE_REDIS.list();
pub const MESSAGE_REDIS_KEYS: &[&str] = &MESSAGE_REDIS.list();

impl RedisKeys {
    pub const fn list(&self) -> [&'static str; 9] {
        [
            self.host,
            self.port,
            self.url,
            self.password,
            self.sentinels,
            self.master_name,
            self.sentinel_password,
            self.min_replicas,
            self.wait_timeout_ms,
        ]
    }

    /// The keys that say where the server is (any one names it).
    pub const fn locators(&self) -> [&'static str; 3] {
        [self.host, self.url, self.sentinels]
    }

    /// Whether `r` names this server (a host, URL or sentinels key is present).
    pub fn is_set(&self, r: &SectionReader) -> bool {
        self.locators().iter().any(|k| r.has(k))
    }

    /// The server, database 0 unless the URL names another. Errors name
    /// the host key when nothing names it.
    pub fn read(&self, r: &SectionReader) -> Result<RedisTarget, ConfigError> {
        let target = self.read_location(r)?;
        Ok(target.with_durability(self.read_durability(r)?))
    }

    fn read_durability(&self, r: &SectionReader) -> Result<Durability, ConfigError> {
        let min_replicas: u32 = r.parse_in(
            self.min_replicas,
            "a number of replicas 0-16 (0: a write counts when the master has it)",
            0,
            0..=16,
            "a number of replicas 0-16",
        )?;
        let ms: u64 = r.parse_in(
            self.wait_timeout_ms,
            "milliseconds 1-5000 that one WAIT may block",
            1000,
            1..=5_000,
            "milliseconds 1-5000 (a Redis reply is given up on after 10 s)",
        )?;
        Ok(Durability {
            min_replicas,
            wait_timeout: std::time::Duration::from_millis(ms),
        })
    }

    fn read_location(&self, r: &SectionReader) -> Result<RedisTarget, ConfigError> {
        if r.has(self.sentinels) {
            return self.read_sentinel(r);
        }
        for k in [self.master_name, self.sentinel_password] {
            if r.has(k) {
                return Err(r.error(
                    k,
                    format!("needs {} (host:port,host:port,… of the sentinels); without it {} is not used", self.sentinels, k),
                ));
            }
        }
        self.read_fixed(r)
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

    fn read_fixed(&self, r: &SectionReader) -> Result<RedisTarget, ConfigError> {
        let mut info = if let Some(url) = r.opt_str(self.url) {
            url.as_str().into_connection_info().map_err(|e| {
                r.error(self.url, format!("`{url}` is not a Redis URL ({e}); expected redis://host:port/db or rediss://…"))
            })?
        } else {
            let host = r.str(self.host, "the Redis host name or address")?;
            let port: u16 = r.parse_or(self.port, "a TCP port 1-65535", 6379)?;
            (host.as_str(), port)
                .into_connection_info()
                .map_err(|e| r.error(self.host, format!("`{host}`: {e}")))?
        };
        if let Some(pw) = r.opt_str(self.password) {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        Ok(RedisTarget::fixed(info))
    }

    fn read_sentinel(&self, r: &SectionReader) -> Result<RedisTarget, ConfigError> {
        if let Some(other) = [self.host, self.port, self.url]
            .into_iter()
            .find(|k| r.has(k))
        {
            return Err(r.error(
                self.sentinels,
                format!(
                    "given together with {other}; name the Redis either by {} + {} (Sentinel) or by {}/{} or {}, not both",
                    self.sentinels, self.master_name, self.host, self.port, self.url
                ),
            ));
        }
        let list = r.str(self.sentinels, "host:port,host:port,… of the sentinels")?;
        let sentinels = parse_sentinels(&list).map_err(|bad| {
            r.error(
                self.sentinels,
                format!("`{bad}` is not valid; expected host:port,host:port,… (port 1-65535, {SENTINEL_PORT} when left out)"),
            )
        })?;
        let master_name = r.str(
            self.master_name,
            "the master's name as the sentinels monitor it (`sentinel monitor NAME …`)",
        )?;
        if master_name.chars().any(char::is_whitespace) {
            return Err(r.error(
                self.master_name,
                format!("`{master_name}` is not valid; expected a name without spaces"),
            ));
        }
        let mut data = redis::RedisConnectionInfo::default();
        if let Some(pw) = r.opt_str(self.password) {
            data = data.set_password(pw);
        }
        Ok(RedisTarget::sentinel(SentinelSet {
            sentinels,
            master_name,
            sentinel_password: r.opt_str(self.sentinel_password),
            data,
        }))
    }
}

/// `host:port,host:port,…` (spaces around commas allowed; `[v6]:port` for
/// IPv6). Err: the entry that is not valid.
pub fn parse_sentinels(list: &str) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim) {
        let (host, port) = if let Some(rest) = item.strip_prefix('[') {
            let (h, tail) = rest.split_once(']').ok_or_else(|| item.to_string())?;
            match tail.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if tail.is_empty() => (h, None),
                None => return Err(item.to_string()),
            }
        } else {
            match item.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (item, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(item.to_string());
        }
        let port = match port {
            None => SENTINEL_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(item.to_string()),
            },
        };
        out.push((host.to_string(), port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ini::IniDoc;
    use std::path::Path;

    fn read(text: &str) -> Result<RedisTarget, String> {
        let doc = IniDoc::parse(Path::new("/etc/ubackup/x.conf"), text).unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        QUEUE_REDIS.read(&g).map_err(|e| e.to_string())
    }

    #[test]
    fn the_original_keys_still_name_a_fixed_server() {
        let t = read("[global]\nredis_host = 10.0.0.5\nredis_port = 6380\n").unwrap();
        assert!(t.sentinels().is_none());
        assert_eq!(t.to_string(), "10.0.0.5:6380 db 0");
    }

    #[test]
    fn sentinel_keys_name_the_master_of_a_sentinel_set() {
        let t = read(
            "[global]\nredis_sentinels = 10.0.0.1:26379, 10.0.0.2 ,[::1]:26380\nredis_master_name = ubackup\nredis_sentinel_password = s3\nredis_password = p\n",
        )
        .unwrap();
        let s = t.sentinels().expect("sentinel target");
        assert_eq!(
            s.sentinels,
            vec![
                ("10.0.0.1".to_string(), 26379),
                ("10.0.0.2".to_string(), SENTINEL_PORT),
                ("::1".to_string(), 26380)
            ]
        );
        assert_eq!(s.master_name, "ubackup");
        assert_eq!(s.sentinel_password.as_deref(), Some("s3"));
        assert_eq!(s.data.password(), Some("p"));
    }

    #[test]
    fn sentinels_and_a_host_together_is_an_error_naming_both_keys() {
        let e =
            read("[global]\nredis_host = a\nredis_sentinels = b:26379\nredis_master_name = m\n")
                .unwrap_err();
        assert_eq!(
            e,
            "/etc/ubackup/x.conf:3: [global] redis_sentinels: given together with redis_host; name the Redis either by redis_sentinels + redis_master_name (Sentinel) or by redis_host/redis_port or redis_url, not both"
        );
    }

    #[test]
    fn min_replicas_defaults_to_zero_and_is_checked() {
        let t = read("[global]\nredis_host = a\n").unwrap();
        assert_eq!(t.durability().min_replicas, 0);
        let t =
            read("[global]\nredis_host = a\nredis_min_replicas = 1\nredis_wait_timeout_ms = 250\n")
                .unwrap();
        assert_eq!(t.durability().min_replicas, 1);
        assert_eq!(t.durability().wait_timeout.as_millis(), 250);
        // kept when the database is switched
        assert_eq!(t.with_db(3).durability().min_replicas, 1);
        let e = read("[global]\nredis_host = a\nredis_min_replicas = 17\n").unwrap_err();
        assert!(e.ends_with("[global] redis_min_replicas: `17` is out of range; expected a number of replicas 0-16"), "{e}");
        let e = read("[global]\nredis_host = a\nredis_min_replicas = two\n").unwrap_err();
        assert!(e.contains("[global] redis_min_replicas:"), "{e}");
        let e = read("[global]\nredis_host = a\nredis_wait_timeout_ms = 0\n").unwrap_err();
        assert!(e.ends_with("[global] redis_wait_timeout_ms: `0` is out of range; expected milliseconds 1-5000 (a Redis reply is given up on after 10 s)"), "{e}");
    }

    #[test]
    fn bad_sentinel_keys_say_what_is_valid() {
        let e = read("[global]\nredis_sentinels = a:1,b:notaport\nredis_master_name = m\n")
            .unwrap_err();
        assert!(
            e.ends_with("redis_sentinels: `b:notaport` is not valid; expected host:port,host:port,… (port 1-65535, 26379 when left out)"),
            "{e}"
        );
        let e = read("[global]\nredis_sentinels = a:1,,b:2\nredis_master_name = m\n").unwrap_err();
        assert!(e.contains("`` is not valid"), "{e}");
        let e = read("[global]\nredis_sentinels = a:1\n").unwrap_err();
        assert!(
            e.contains("[global] redis_master_name: missing; expected the master's name"),
            "{e}"
        );
        let e = read("[global]\nredis_host = a\nredis_master_name = m\n").unwrap_err();
        assert!(
            e.contains("[global] redis_master_name: needs redis_sentinels"),
            "{e}"
        );
    }
}
