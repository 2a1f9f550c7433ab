//! The pull node's INI config: the original server `[global]` keys, read
//! unchanged, plus ubackup's additions (all optional, with defaults).
//!
//! Parse, then validate into [`ServerConfig`]; every rejection names the
//! file, line, section and key, and says what would be valid.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use ubackup_common::config::redis as redis_keys;
use ubackup_common::config::{cluster, logs};
use ubackup_common::{ConfigError, IniDoc, RedisTarget, SectionReader};

/// Every key `[global]` may hold; others are reported as probable typos.
/// The catalog keys (`ubackup_catalog::location::KEYS`) and `keeptime.<type>`
/// are known too.
pub const KNOWN_KEYS: &[&str] = ubackup_common::key_list!(
    SERVER_KEYS,
    redis_keys::QUEUE_REDIS_KEYS,
    redis_keys::MESSAGE_REDIS_KEYS,
    logs::KEYS,
    &[cluster::KEY_PREFIX, cluster::MESSAGE_QUEUE],
    crate::replica::config::KEYS,
    &ubackup_transport::tls_config::RSYNC_TLS.all(),
    &["encrypt_to"],
);

/// The keys only the server reads.
const SERVER_KEYS: &[&str] = &[
    // original
    "work_thread",
    "rsync_bwlimit",
    "server_root_path",
    "reserve",
    "interval",
    "redis_queue",
    "myip",
    "retry",
    "mysqlkeeptime",
    "rediskeeptime",
    "node_id",
    // ubackup
    "rsync_port",
    "rsync_timeout",
    "rsync_contimeout",
    "rsync_nodelay",
    "node_bwlimit",
    "allow_sources",
    "rsync_user",
    "rsync_password_file",
    "heartbeat_secs",
    "drain_secs",
    "queue_wait_ms",
    "retry_backoff_ms",
    "reserve_mb",
    "reserve_bytes",
    "batch_max",
    "batch_mb",
    // retention (prune.rs)
    "prune_interval",
    "quarantine_days",
];

fn default_work_thread() -> usize {
    4
}
fn default_retry() -> u32 {
    3
}
fn default_rsync_port() -> u16 {
    873
}
fn default_rsync_timeout() -> u64 {
    120
}
fn default_rsync_contimeout() -> u64 {
    20
}
fn default_reserve_gb() -> f64 {
    10.0
}
fn default_heartbeat_secs() -> f64 {
    30.0
}
fn default_drain_secs() -> f64 {
    60.0
}
fn default_queue_wait_ms() -> u64 {
    300
}
fn default_retry_backoff_ms() -> u64 {
    2000
}
fn default_batch_max() -> usize {
    64
}
fn default_batch_mb() -> u64 {
    64
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The validated config of one pull node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub file: PathBuf,
    /// Identifies the node in Redis keys and the temp area (`node_id`,
    /// falling back to `myip`). Two running nodes must never share it.
    pub node_id: String,
    /// `back_server_ip` of every result.
    pub myip: String,
    pub work_thread: usize,
    /// KB/s per transfer; 0 = unlimited.
    pub rsync_bwlimit: u64,
    /// KB/s shared by all active transfers of this node; 0 = unlimited.
    pub node_bwlimit: u64,
    pub server_root_path: PathBuf,
    /// Bytes that must stay free on the filesystem of `server_root_path`
    /// after the incoming file has landed.
    pub reserve_bytes: u64,
    /// Pause of a worker after each pull (the original's `interval`).
    pub interval: Duration,
    pub redis: RedisTarget,
    /// Source lists, highest priority first.
    pub queues: Vec<String>,
    pub message_redis: RedisTarget,
    pub message_queue: String,
    pub log: Option<PathBuf>,
    pub error_log: Option<PathBuf>,
    /// Attempts per pull (the original's `retry`), at least 1.
    pub retry: u32,
    pub retry_backoff: Duration,
    pub rsync_port: u16,
    pub rsync_timeout: Duration,
    pub rsync_contimeout: Duration,
    pub rsync_nodelay: bool,
    /// Empty = any source.
    pub allow_sources: Vec<IpNet>,
    pub rsync_user: Option<String>,
    pub rsync_password_file: Option<PathBuf>,
    /// Pulls through TLS (`rsync_tls*`): from the sources it names, and
    /// from the other nodes it names (replication). `None` = plain.
    pub rsync_tls: Option<ubackup_transport::tls_config::TlsPolicy>,
    /// Store landed files encrypted to these age recipients (`encrypt_to`);
    /// `None` = in plain, as before.
    pub encrypt_to: Option<ubackup_transport::at_rest::Recipients>,
    pub key_prefix: String,
    /// TTL of the node's heartbeat; a node silent this long is dead and its
    /// in-flight messages are re-queued by any live node.
    pub heartbeat: Duration,
    /// How long running pulls may finish after SIGTERM.
    pub drain: Duration,
    /// BLMOVE wait on the top list: the pickup latency of lower lists.
    pub queue_wait: Duration,
    /// Most messages of one rsync source pulled by one rsync call (1 = no
    /// batching).
    pub batch_max: usize,
    /// Only files this small are batched, and a batch holds at most this
    /// many bytes (`batch_mb`).
    pub batch_bytes: u64,
    /// Retention days, reserved in the original; kept for the retention job.
    pub mysqlkeeptime: Option<u32>,
    pub rediskeeptime: Option<u32>,
    /// Retention days per type: `keeptime.<type>`, else `mysqlkeeptime` /
    /// `rediskeeptime`, each whole days, at least 1. A type not here is
    /// never pruned.
    pub keep_days: BTreeMap<String, u32>,
    /// Copies, zones and repair (see `crate::replica`).
    pub replica: crate::replica::config::ReplicaConfig,
    /// The catalog prune and verify read and mark (`catalog` or `es_urls`).
    pub catalog: Option<ubackup_catalog::CatalogLocation>,
    /// With both `catalog` and `es_urls`: Elasticsearch, where copies are
    /// recorded too (SQLite is the one read), so Kibana sees them.
    pub catalog_mirror: Option<ubackup_catalog::CatalogLocation>,
    /// Run prune inside the server this often (`prune_interval`, seconds).
    pub prune_interval: Option<Duration>,
    /// prune removes a quarantined file this many days after it was put
    /// aside (`quarantine_days`, default 30).
    pub quarantine_days: u32,
    /// Keys present in the file that nothing reads (probable typos).
    pub unknown_keys: Vec<String>,
}

impl ServerConfig {
    /// Where this node keeps pulled files that failed their checksum:
    /// `server_root_path/.ubackup-quarantine/<node_id>/`, outside the
    /// destination tree and the catalog.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.server_root_path
            .join(".ubackup-quarantine")
            .join(&self.node_id)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let doc = IniDoc::load(path)?;
        Self::from_doc(&doc)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let doc = IniDoc::parse(path, text)?;
        Self::from_doc(&doc)
    }

    pub fn from_doc(doc: &IniDoc) -> Result<Self, ConfigError> {
        let g = SectionReader::required(doc, "global")?;

        let myip = g.str(
            "myip",
            "this node's address, written as back_server_ip into every result",
        )?;
        let node_id = g.opt_str("node_id").unwrap_or_else(|| myip.clone());
        if ubackup_common::validate::check_relative("node_id", &node_id).is_err()
            || node_id.contains('/')
        {
            return Err(g.error(
                "node_id",
                format!("`{node_id}` is not usable as a name; expected letters, digits, `.`, `-` or `_` (no `/`)"),
            ));
        }

        let work_thread: usize = g.parse_in(
            "work_thread",
            "a number of pull workers, 1-256",
            default_work_thread(),
            1..=256,
            "1-256",
        )?;
        let rsync_bwlimit =
            g.parse_or("rsync_bwlimit", "KB/s per transfer, 0 = unlimited", 0u64)?;
        let node_bwlimit = g.parse_or(
            "node_bwlimit",
            "KB/s shared by all transfers of this node, 0 = unlimited",
            0u64,
        )?;
        let server_root_path: PathBuf = g
            .str(
                "server_root_path",
                "the directory backups are pulled into, e.g. /backup/uuzubackup/",
            )?
            .into();
        if !server_root_path.is_absolute() {
            return Err(g.error("server_root_path", "must be an absolute path"));
        }
        let reserve_bytes = reserve(&g)?;
        let interval = secs(&g, "interval", 0.0)?;

        let redis = redis_keys::QUEUE_REDIS.read(&g)?;
        let queues: Vec<String> = g
            .str(
                "redis_queue",
                "space-separated list names, highest priority first, e.g. `level1 uuzuback_f`",
            )?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if let Some(dup) = queues
            .iter()
            .enumerate()
            .find(|(i, q)| queues[..*i].contains(q))
            .map(|(_, q)| q)
        {
            return Err(g.error(
                "redis_queue",
                format!("`{dup}` is listed twice; each list once, highest priority first"),
            ));
        }
        let message_redis = redis_keys::MESSAGE_REDIS.read_or(&g, &redis)?;
        let message_queue = cluster::message_queue(&g);
        if queues.contains(&message_queue) && message_redis.same_server(&redis) {
            return Err(g.error(
                "message_queue",
                format!(
                    "`{message_queue}` is also in redis_queue; results would be pulled as backups"
                ),
            ));
        }

        let retry: u32 = g.parse_in(
            "retry",
            "the number of attempts per pull, 1-100",
            default_retry(),
            1..=100,
            "1-100 attempts",
        )?;
        let retry_backoff = Duration::from_millis(g.parse_or(
            "retry_backoff_ms",
            "milliseconds before the 2nd attempt (doubles each time)",
            default_retry_backoff_ms(),
        )?);
        let rsync_port = g.parse_or("rsync_port", "a TCP port 1-65535", default_rsync_port())?;
        if rsync_port == 0 {
            return Err(g.error("rsync_port", "0 is not a port; expected 1-65535"));
        }
        let rsync_timeout = whole_secs(&g, "rsync_timeout", default_rsync_timeout())?;
        let rsync_contimeout = whole_secs(&g, "rsync_contimeout", default_rsync_contimeout())?;
        let rsync_nodelay = g.opt_bool("rsync_nodelay")?.unwrap_or(true);
        let allow_sources = allow_sources(&g)?;

        let (rsync_user, rsync_password_file) =
            match ubackup_common::config::rsync_auth(&g, "rsync_user", "rsync_password_file")? {
                Some((u, p)) => (Some(u), Some(p)),
                None => (None, None),
            };
        if let Some(pf) = &rsync_password_file {
            check_password_file(&g, pf)?;
        }

        let key_prefix = cluster::key_prefix(&g);
        let heartbeat = secs(&g, "heartbeat_secs", default_heartbeat_secs())?;
        if heartbeat < Duration::from_millis(500) {
            return Err(g.error("heartbeat_secs", "must be at least 0.5 seconds"));
        }
        let drain = secs(&g, "drain_secs", default_drain_secs())?;
        let queue_wait = Duration::from_millis(g.parse_or(
            "queue_wait_ms",
            "milliseconds, 20-5000",
            default_queue_wait_ms(),
        )?);
        if !(Duration::from_millis(20)..=Duration::from_secs(5)).contains(&queue_wait) {
            return Err(g.error(
                "queue_wait_ms",
                "out of range; expected 20-5000 milliseconds",
            ));
        }
        let batch_max: usize = g.parse_in(
            "batch_max",
            "messages per rsync call, 1-1000 (1 = no batching)",
            default_batch_max(),
            1..=1000,
            "1-1000 messages per rsync call (1 = no batching)",
        )?;
        let batch_mb: u64 = g.parse_in(
            "batch_mb",
            "MiB: the largest file that is batched, and the most bytes in one batch",
            default_batch_mb(),
            1..=1_048_576,
            "1-1048576 MiB",
        )?;
        let (log, error_log) = logs::read(&g);

        let replica = replica_config(&g, &node_id)?;
        Ok(ServerConfig {
            file: doc.file.clone(),
            node_id,
            myip,
            work_thread,
            rsync_bwlimit,
            node_bwlimit,
            server_root_path,
            reserve_bytes,
            interval,
            redis,
            queues,
            message_redis,
            message_queue,
            log,
            error_log,
            retry,
            retry_backoff,
            rsync_port,
            rsync_timeout,
            rsync_contimeout,
            rsync_nodelay,
            allow_sources,
            rsync_user,
            rsync_password_file,
            rsync_tls: ubackup_transport::tls_config::read(
                &g,
                &ubackup_transport::tls_config::RSYNC_TLS,
            )?,
            encrypt_to: match g.opt_str("encrypt_to") {
                None => None,
                Some(v) => Some(
                    ubackup_transport::at_rest::Recipients::parse(&v)
                        .map_err(|e| g.error("encrypt_to", e))?,
                ),
            },
            key_prefix,
            heartbeat,
            drain,
            queue_wait,
            batch_max,
            batch_bytes: batch_mb << 20,
            mysqlkeeptime: keep_time(&g, "mysqlkeeptime")?,
            rediskeeptime: keep_time(&g, "rediskeeptime")?,
            keep_days: keep_days(&g)?,
            replica,
            catalog: ubackup_catalog::CatalogLocation::from_section(&g)?,
            catalog_mirror: catalog_mirror(&g)?,
            prune_interval: prune_interval(&g)?,
            quarantine_days: quarantine_days(&g)?,
            unknown_keys: g
                .unknown_keys(KNOWN_KEYS)
                .into_iter()
                .filter(|k| {
                    !ubackup_catalog::location::KEYS.contains(&k.as_str())
                        && !k.starts_with("keeptime.")
                        && !k.starts_with("copies.")
                })
                .collect(),
        })
    }

    /// Whether `ip` may be pulled from.
    pub fn source_allowed(&self, ip: IpAddr) -> bool {
        self.allow_sources.is_empty() || self.allow_sources.iter().any(|n| n.contains(&ip))
    }

    /// `server_root_path/.ubackup-tmp/<node_id>`: this node's temp area, on
    /// the same filesystem as the final paths so that landing is a rename.
    pub fn node_tmp_dir(&self) -> PathBuf {
        self.server_root_path
            .join(".ubackup-tmp")
            .join(&self.node_id)
    }

    /// Keys a SIGHUP cannot change (they name connections, lists or paths
    /// that running work depends on). Returns the names of those that differ.
    pub fn fixed_keys_changed(&self, new: &ServerConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.node_id != new.node_id {
            out.push("node_id");
        }
        if self.server_root_path != new.server_root_path {
            out.push("server_root_path");
        }
        if self.redis.to_string() != new.redis.to_string() {
            out.push("redis_host/redis_port/redis_url");
        }
        if self.queues != new.queues {
            out.push("redis_queue");
        }
        if self.message_redis.to_string() != new.message_redis.to_string()
            || self.message_queue != new.message_queue
        {
            out.push("message_redis_*/message_queue");
        }
        if self.key_prefix != new.key_prefix {
            out.push("key_prefix");
        }
        if self.log != new.log || self.error_log != new.error_log {
            out.push("log/error_log");
        }
        out
    }
}

/// Elasticsearch as well as SQLite: the second is where copies are
/// mirrored (see [`ServerConfig::catalog_mirror`]).
fn catalog_mirror(
    g: &SectionReader,
) -> Result<Option<ubackup_catalog::CatalogLocation>, ConfigError> {
    match ubackup_catalog::CatalogLocation::from_section(g)? {
        Some(ubackup_catalog::CatalogLocation::Sqlite(_)) => Ok(
            ubackup_catalog::location::es_settings(g)?.map(ubackup_catalog::CatalogLocation::Es),
        ),
        _ => Ok(None),
    }
}

/// The replication keys; a second copy needs the catalog (a copy is
/// verified against it and recorded in it).
fn replica_config(
    g: &SectionReader,
    node_id: &str,
) -> Result<crate::replica::config::ReplicaConfig, ConfigError> {
    let r = crate::replica::config::ReplicaConfig::from_section(g, node_id)?;
    if r.enabled() && ubackup_catalog::CatalogLocation::from_section(g)?.is_none() {
        return Err(g.error("copies", "asks for more than one copy but the server has no catalog to verify and record copies in; set `catalog` (the SQLite catalog path) or `es_urls`"));
    }
    Ok(r)
}

/// `prune_interval` (seconds, at least 1); it needs a catalog to prune.
fn prune_interval(g: &SectionReader) -> Result<Option<Duration>, ConfigError> {
    let Some(secs) = g.opt_parse::<u64>(
        "prune_interval",
        "a whole number of seconds between prune runs, e.g. 86400",
    )?
    else {
        return Ok(None);
    };
    if secs == 0 {
        return Err(g.error("prune_interval", "`0` is not valid; expected a whole number of seconds, at least 1 (remove the key to turn periodic pruning off)"));
    }
    if ubackup_catalog::CatalogLocation::from_section(g)?.is_none() {
        return Err(g.error("prune_interval", "is set but the server has no catalog to prune with; set `catalog` (the SQLite catalog path) or `es_urls`"));
    }
    Ok(Some(Duration::from_secs(secs)))
}

/// `quarantine_days` (whole days, at least 1; default 30).
fn quarantine_days(g: &SectionReader) -> Result<u32, ConfigError> {
    g.nonzero_or(
        "quarantine_days",
        "a whole number of days, at least 1, that prune keeps a quarantined file",
        30,
    )
}

/// A retention time (`mysqlkeeptime`, `rediskeeptime`, `keeptime.<type>`):
/// whole days, at least 1. The one rule for all of them.
fn keep_time(g: &SectionReader, key: &str) -> Result<Option<u32>, ConfigError> {
    g.opt_nonzero(key, "a whole number of days, at least 1")
}

/// Days to keep per type, for prune: `keeptime.<type>`, else the original's
/// `mysqlkeeptime` / `rediskeeptime`.
fn keep_days(g: &SectionReader) -> Result<BTreeMap<String, u32>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, ty) in [("mysqlkeeptime", "mysql"), ("rediskeeptime", "redis")] {
        if let Some(d) = keep_time(g, key)? {
            out.insert(ty.to_string(), d);
        }
    }
    // keeptime.<type> wins over the original keys
    for (key, ty) in g.typed_keys("keeptime", "DAYS, such as keeptime.ssdb = 7")? {
        if let Some(d) = keep_time(g, &key)? {
            out.insert(ty, d);
        }
    }
    Ok(out)
}

/// `reserve` (GB, the original's unit; fractions allowed), or one of the
/// finer overrides `reserve_mb` / `reserve_bytes`. Only one may be set.
fn reserve(g: &SectionReader) -> Result<u64, ConfigError> {
    let set: Vec<&str> = ["reserve", "reserve_mb", "reserve_bytes"]
        .into_iter()
        .filter(|k| g.has(k))
        .collect();
    if set.len() > 1 {
        return Err(g.error(
            set[1],
            format!(
                "conflicts with `{}`; set only one of reserve (GB), reserve_mb, reserve_bytes",
                set[0]
            ),
        ));
    }
    if let Some(b) = g.opt_parse::<u64>("reserve_bytes", "a number of bytes")? {
        return Ok(b);
    }
    if let Some(mb) = g.opt_parse::<f64>("reserve_mb", "a number of megabytes (MiB)")? {
        if !(mb.is_finite() && mb >= 0.0) {
            return Err(g.error("reserve_mb", "expected a non-negative number of megabytes"));
        }
        return Ok((mb * 1024.0 * 1024.0) as u64);
    }
    let gb: f64 = g.parse_or(
        "reserve",
        "a number of gigabytes (GiB) to keep free, e.g. 1000",
        default_reserve_gb(),
    )?;
    if !(gb.is_finite() && gb >= 0.0) {
        return Err(g.error("reserve", "expected a non-negative number of gigabytes"));
    }
    Ok((gb * GIB) as u64)
}

fn secs(g: &SectionReader, key: &str, default: f64) -> Result<Duration, ConfigError> {
    let v: f64 = g.parse_in(
        key,
        "a number of seconds",
        default,
        0.0..=86400.0 * 7.0,
        "0 to 604800 seconds",
    )?;
    Ok(Duration::from_secs_f64(v))
}

fn whole_secs(g: &SectionReader, key: &str, default: u64) -> Result<Duration, ConfigError> {
    let v: u64 = g.parse_in(
        key,
        "a whole number of seconds, 1-86400",
        default,
        1..=86400,
        "1-86400 seconds (rsync treats 0 as no timeout)",
    )?;
    Ok(Duration::from_secs(v))
}

/// CIDRs or single addresses, separated by spaces or commas.
fn allow_sources(g: &SectionReader) -> Result<Vec<IpNet>, ConfigError> {
    let Some(v) = g.opt_str("allow_sources") else {
        return Ok(Vec::new());
    };
    v.split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                g.error("allow_sources", format!("`{s}` is not a CIDR or address; expected e.g. `10.20.0.0/16, 192.168.1.7`"))
            })
        })
        .collect()
}

/// rsync refuses a password file others can read; say so at start rather
/// than as exit code 5 on every pull.
fn check_password_file(g: &SectionReader, pf: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(pf).map_err(|e| {
        g.error(
            "rsync_password_file",
            format!("cannot read {}: {e}", pf.display()),
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(g.error(
            "rsync_password_file",
            format!(
                "{} is readable by group or others; rsync refuses it. Run chmod 600 on it",
                pf.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse(Path::new("/etc/ubackup/server.conf"), text)
    }

    const MIN: &str = "[global]\nserver_root_path=/b\nredis_host=127.0.0.1\nredis_queue=level1 low\nmyip=10.0.0.9\n";

    #[test]
    fn defaults() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.node_id, "10.0.0.9");
        assert_eq!(c.work_thread, 4);
        assert_eq!(c.rsync_port, 873);
        assert_eq!(c.retry, 3);
        assert_eq!(c.message_queue, "message");
        assert!(c.message_redis.same_server(&c.redis));
        assert_eq!(c.reserve_bytes, 10 * 1024 * 1024 * 1024);
        assert_eq!(c.queues, ["level1", "low"]);
        assert!(c.rsync_nodelay);
        assert!(c.source_allowed("192.0.2.1".parse().unwrap()));
        assert_eq!(c.batch_max, 64);
        assert_eq!(c.batch_bytes, 64 << 20);
    }

    #[test]
    fn allow_sources_cidrs_and_addresses() {
        let c = parse(&format!(
            "{MIN}allow_sources = 10.20.0.0/16, 192.0.2.7  # nodes\n"
        ))
        .unwrap();
        assert!(c.source_allowed("10.20.3.4".parse().unwrap()));
        assert!(c.source_allowed("192.0.2.7".parse().unwrap()));
        assert!(!c.source_allowed("192.0.2.8".parse().unwrap()));
        let err = parse(&format!("{MIN}allow_sources = 10.20.0.0/16 nonsense\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[global] allow_sources")
                && err.contains("`nonsense`")
                && err.contains(":6"),
            "{err}"
        );
    }

    #[test]
    fn reserve_units_and_conflicts() {
        assert_eq!(
            parse(&format!("{MIN}reserve_mb = 1.5\n"))
                .unwrap()
                .reserve_bytes,
            1572864
        );
        assert_eq!(
            parse(&format!("{MIN}reserve_bytes = 7\n"))
                .unwrap()
                .reserve_bytes,
            7
        );
        assert_eq!(
            parse(&format!("{MIN}reserve = 0.5\n"))
                .unwrap()
                .reserve_bytes,
            512 * 1024 * 1024
        );
        let err = parse(&format!("{MIN}reserve = 1\nreserve_bytes = 7\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reserve_bytes") && err.contains("set only one"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_valid_range() {
        for (extra, key, hint) in [
            ("work_thread = 0", "work_thread", "1-256"),
            ("retry = many", "retry", "attempts per pull"),
            ("rsync_port = 0", "rsync_port", "1-65535"),
            ("batch_max = 0", "batch_max", "1-1000"),
            ("batch_mb = 0", "batch_mb", "1-1048576"),
            ("rsync_timeout = 0", "rsync_timeout", "1-86400"),
            ("node_id = a/b", "node_id", "no `/`"),
            (
                "rsync_user = backup",
                "rsync_password_file",
                "password file",
            ),
            ("rsync_nodelay = maybe", "rsync_nodelay", "yes/no"),
            ("heartbeat_secs = 0.1", "heartbeat_secs", "0.5"),
            (
                "message_queue = low",
                "message_queue",
                "also in redis_queue",
            ),
        ] {
            let err = parse(&format!("{MIN}{extra}\n")).unwrap_err().to_string();
            assert!(
                err.contains(&format!("[global] {key}")) && err.contains(hint),
                "{extra}: {err}"
            );
        }
        let err = parse("[global]\nserver_root_path=/b\nredis_host=h\nredis_queue=q\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("myip: missing"), "{err}");
    }

    #[test]
    fn separate_message_redis_is_detected() {
        let c = parse(&format!(
            "{MIN}message_redis_host = 127.0.0.2\nmessage_redis_port=6380\n"
        ))
        .unwrap();
        assert!(!c.message_redis.same_server(&c.redis));
    }

    #[test]
    fn fixed_keys_are_reported_on_reload() {
        let a = parse(MIN).unwrap();
        let b = parse(&MIN.replace("level1 low", "level1")).unwrap();
        assert_eq!(a.fixed_keys_changed(&b), vec!["redis_queue"]);
        let c = parse(&format!("{MIN}work_thread = 9\n")).unwrap();
        assert!(a.fixed_keys_changed(&c).is_empty());
    }
}
