//! The reporter reads a node's config (server INI) or the indexer's, and
//! only the keys the subcommand at hand needs: a missing key is reported
//! when a subcommand asks for it, naming file, section and key.
//!
//! Reporter-specific keys (thresholds) may sit in `[global]` or in a
//! `[reporter]` section; `[reporter]` wins, so one file can serve a node and
//! its reporter without touching the original keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ubackup_catalog::EsSettings;
use ubackup_common::config::catalog::{self, catalog_key, CatalogKey};
use ubackup_common::config::redis::{MESSAGE_REDIS, QUEUE_REDIS, QUEUE_REDIS_KEYS};
use ubackup_common::config::{cluster, logs};
use ubackup_common::keys::{DEFAULT_MESSAGE_QUEUE, DEFAULT_PREFIX};
use ubackup_common::{ConfigError, IniDoc, Keys, RedisTarget, SectionReader};

/// The indexer's default SQLite catalog.
pub use ubackup_common::config::catalog::DEFAULT_CATALOG;

/// Keys `[reporter]` may hold (others are warned about as typos).
pub const REPORTER_KEYS: &[&str] = ubackup_common::key_list!(
    QUEUE_REDIS_KEYS,
    &["redis_queue", cluster::MESSAGE_QUEUE, cluster::KEY_PREFIX],
    catalog::KEYS,
    THRESHOLD_KEYS,
    logs::KEYS,
);

/// The reporter's own keys.
const THRESHOLD_KEYS: &[&str] = &[
    "overdue_factor",
    "overdue_grace_secs",
    "default_interval_secs",
    "backlog_threshold",
    "backlog_age_mins",
    "disk_low_pct",
    "disk_critical_pct",
    "slowest_pulls",
    "samples_keep_days",
    "serve_token",
    "api_tokens_file",
    "serve_tls_cert",
    "serve_tls_key",
];

/// Alert thresholds, all with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `overdue`: no success within `interval × overdue_factor + grace`.
    pub overdue_factor: f64,
    pub overdue_grace: Duration,
    /// The interval of instances that report none (results of original
    /// nodes read back from Elasticsearch carry no `interval`).
    pub default_interval: Duration,
    /// `queue_backlog` when a priority or results list holds more than this.
    pub backlog_threshold: u64,
    /// … or when its oldest message is older than this (zero: off).
    pub backlog_age: Duration,
    /// `node_disk_low` warning below this % free, critical below the next.
    pub disk_low_pct: f64,
    pub disk_critical_pct: f64,
    /// `illegal` when a backup of this type is smaller (bytes).
    pub min_size: BTreeMap<String, u64>,
    /// How many slow pulls `status` lists.
    pub slowest_pulls: usize,
    /// SQLite samples older than this are pruned by `queue` (0: never).
    pub samples_keep: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            overdue_factor: 1.5,
            overdue_grace: Duration::from_secs(300),
            default_interval: Duration::from_secs(3600),
            backlog_threshold: 1000,
            backlog_age: Duration::from_secs(3600),
            disk_low_pct: 10.0,
            disk_critical_pct: 5.0,
            min_size: BTreeMap::new(),
            slowest_pulls: 5,
            samples_keep: Duration::from_secs(90 * 86400),
        }
    }
}

/// The reporter's view of a config file.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    pub file: PathBuf,
    doc: IniDoc,
    pub thresholds: Thresholds,
    pub keys: Keys,
    /// `[reporter]` keys nothing reads (probable typos).
    pub unknown_keys: Vec<String>,
}

/// Where the catalog is, as far as the config says.
#[derive(Debug, Clone)]
pub struct CatalogTargets {
    pub sqlite: Option<PathBuf>,
    pub es: Option<EsSettings>,
}

impl ReporterConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_doc(IniDoc::load(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::from_doc(IniDoc::parse(path, text)?)
    }

    pub fn from_doc(doc: IniDoc) -> Result<Self, ConfigError> {
        if doc.section("global").is_none() && doc.section("reporter").is_none() {
            SectionReader::required(&doc, "global")?;
        }
        let mut cfg = ReporterConfig {
            file: doc.file.clone(),
            doc,
            thresholds: Thresholds::default(),
            keys: Keys::default(),
            unknown_keys: Vec::new(),
        };
        cfg.thresholds = cfg.read_thresholds()?;
        cfg.keys = Keys::new(
            &cfg.reader(cluster::KEY_PREFIX)
                .map(|r| cluster::key_prefix(&r))
                .unwrap_or_else(|| DEFAULT_PREFIX.into()),
        );
        if let Some(s) = cfg.doc.section("reporter") {
            let r = SectionReader::new(&cfg.doc, s);
            cfg.unknown_keys = r
                .unknown_keys(REPORTER_KEYS)
                .into_iter()
                .filter(|k| !k.starts_with("min_size."))
                .collect();
        }
        Ok(cfg)
    }

    /// The section a key is read from: `[reporter]` if it sets the key,
    /// else `[global]` (None when the file has neither).
    fn reader(&self, key: &str) -> Option<SectionReader<'_>> {
        let rep = self
            .doc
            .section("reporter")
            .map(|s| SectionReader::new(&self.doc, s));
        if let Some(r) = rep.filter(|r| r.has(key)) {
            return Some(r);
        }
        self.doc
            .section("global")
            .map(|s| SectionReader::new(&self.doc, s))
            .or_else(|| {
                self.doc
                    .section("reporter")
                    .map(|s| SectionReader::new(&self.doc, s))
            })
    }

    /// The section that holds the first of `keys` found, for multi-key
    /// settings (a Redis target is read from one section, never mixed).
    fn reader_any(&self, keys: &[&str]) -> Option<SectionReader<'_>> {
        let rep = self
            .doc
            .section("reporter")
            .map(|s| SectionReader::new(&self.doc, s));
        if let Some(r) = rep.filter(|r| keys.iter().any(|k| r.has(k))) {
            return Some(r);
        }
        self.reader(keys[0])
    }

    fn section_missing(&self) -> ConfigError {
        ConfigError::file(&self.file, "section [global] is missing".into())
    }

    /// The cluster Redis (node state, priority lists, in-flight lists).
    pub fn redis(&self) -> Result<RedisTarget, ConfigError> {
        let r = self
            .reader_any(&QUEUE_REDIS.locators())
            .ok_or_else(|| self.section_missing())?;
        QUEUE_REDIS.read(&r)
    }

    /// The Redis holding `message_queue`: a node's `message_redis_*`, or
    /// the cluster Redis.
    pub fn message_redis(&self) -> Result<RedisTarget, ConfigError> {
        match self.reader_any(&MESSAGE_REDIS.locators()) {
            Some(r) if MESSAGE_REDIS.is_set(&r) => MESSAGE_REDIS.read(&r),
            _ => self.redis(),
        }
    }

    /// Priority lists named in the config (`redis_queue`; none in an
    /// indexer config). The reporter adds those the nodes announce.
    pub fn queues(&self) -> Vec<String> {
        self.reader("redis_queue")
            .and_then(|r| r.opt_str("redis_queue"))
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub fn message_queue(&self) -> String {
        self.reader(cluster::MESSAGE_QUEUE)
            .map(|r| cluster::message_queue(&r))
            .unwrap_or_else(|| DEFAULT_MESSAGE_QUEUE.into())
    }

    /// `disk`: the node's id (`node_id`, else `myip`, as the server does).
    pub fn node_id(&self) -> Result<String, ConfigError> {
        let r = self
            .reader("node_id")
            .ok_or_else(|| self.section_missing())?;
        if let Some(id) = r.opt_str("node_id") {
            return Ok(id);
        }
        let r = self.reader("myip").ok_or_else(|| self.section_missing())?;
        r.str(
            "myip",
            "this node's address (the server's myip), or node_id; disk reports under that node id",
        )
    }

    /// `disk`: the node's address (`myip`), empty when not set.
    pub fn node_ip(&self) -> String {
        self.reader("myip")
            .and_then(|r| r.opt_str("myip"))
            .unwrap_or_default()
    }

    /// `disk`: the directory whose filesystem is measured.
    pub fn server_root_path(&self) -> Result<PathBuf, ConfigError> {
        let r = self
            .reader("server_root_path")
            .ok_or_else(|| self.section_missing())?;
        let p: PathBuf = r
            .str(
                "server_root_path",
                "the directory the node pulls backups into, e.g. /backup/uuzubackup/",
            )?
            .into();
        if !p.is_absolute() {
            return Err(r.error("server_root_path", "must be an absolute path"));
        }
        Ok(p)
    }

    /// The catalog stores. `catalog`: a path, or `off`; absent = the
    /// indexer's default path, if that file exists. A configured path must
    /// exist: the reporter never creates an empty catalog.
    pub fn catalog_targets(&self) -> Result<CatalogTargets, ConfigError> {
        let sqlite = match self.reader("catalog") {
            None => None,
            Some(r) => match catalog_key(
                &r,
                &format!("the indexer's SQLite catalog, e.g. {DEFAULT_CATALOG}"),
            )? {
                CatalogKey::Absent => Some(PathBuf::from(DEFAULT_CATALOG)).filter(|p| p.exists()),
                CatalogKey::Off(_) => None,
                CatalogKey::Path(p) if !p.exists() => {
                    return Err(r.error(
                        "catalog",
                        format!("{} does not exist; expected the SQLite catalog the indexer writes (the indexer creates it)", p.display()),
                    ));
                }
                CatalogKey::Path(p) => Some(p),
            },
        };
        Ok(CatalogTargets {
            sqlite,
            es: self.es_settings()?,
        })
    }

    /// `status`/`alerts`/`serve`: a catalog is required.
    pub fn require_catalog(&self) -> Result<CatalogTargets, ConfigError> {
        let t = self.catalog_targets()?;
        if t.sqlite.is_none() && t.es.is_none() {
            let r = self
                .reader("catalog")
                .ok_or_else(|| self.section_missing())?;
            return Err(r.error(
                "catalog",
                format!("missing (and {DEFAULT_CATALOG} does not exist), and no es_urls; expected the path of the indexer's SQLite catalog or es_urls"),
            ));
        }
        Ok(t)
    }

    fn es_settings(&self) -> Result<Option<EsSettings>, ConfigError> {
        let Some(g) = self.reader_any(&["es_urls"]) else {
            return Ok(None);
        };
        ubackup_catalog::location::es_settings(&g)
    }

    /// `serve`: the token that unlocks the web pages' write actions
    /// (`serve_token`). None: the pages are read-only.
    pub fn serve_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(r) = self.reader("serve_token") else {
            return Ok(None);
        };
        let Some(t) = r.opt_str("serve_token") else {
            return Ok(None);
        };
        if t.chars().count() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(r.error(
                "serve_token",
                "too short or contains spaces; expected at least 16 characters without spaces, e.g. the output of `openssl rand -hex 24`",
            ));
        }
        Ok(Some(t))
    }

    /// `serve`: the catalog API's tokens (`api_tokens_file`, see
    /// [`crate::api::tokens`]). None: the API is off.
    pub fn api_tokens(&self) -> Result<Option<crate::api::tokens::ApiTokens>, ConfigError> {
        let Some(r) = self.reader("api_tokens_file") else {
            return Ok(None);
        };
        let Some(p) = r.opt_path("api_tokens_file") else {
            return Ok(None);
        };
        crate::api::tokens::ApiTokens::load(&p)
            .map(Some)
            .map_err(|e| {
                r.error(
                    "api_tokens_file",
                    format!("{e}; expected lines `TOKEN SERVER_IDS [pin]`"),
                )
            })
    }

    /// `serve`: HTTPS with `serve_tls_cert` (a PEM chain) and
    /// `serve_tls_key` (its PEM key), both or neither. None: plain HTTP.
    pub fn serve_tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, ConfigError> {
        let cert = self
            .reader("serve_tls_cert")
            .and_then(|r| r.opt_path("serve_tls_cert").map(|p| (r, p)));
        let key = self
            .reader("serve_tls_key")
            .and_then(|r| r.opt_path("serve_tls_key").map(|p| (r, p)));
        match (cert, key) {
            (None, None) => Ok(None),
            (Some((r, _)), None) => Err(r.error(
                "serve_tls_key",
                "missing: serve_tls_cert needs serve_tls_key (the PEM private key of the certificate)",
            )),
            (None, Some((r, _))) => Err(r.error(
                "serve_tls_cert",
                "missing: serve_tls_key needs serve_tls_cert (the PEM certificate chain)",
            )),
            (Some((r, cert)), Some((_, key))) => crate::tls::acceptor(&cert, &key)
                .map(Some)
                .map_err(|e| r.error("serve_tls_cert", e)),
        }
    }

    pub fn log_paths(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        // The reporter logs to stderr only unless [reporter] names files:
        // a node's `log` belongs to the node.
        match self
            .doc
            .section("reporter")
            .map(|s| SectionReader::new(&self.doc, s))
        {
            Some(r) => logs::read(&r),
            None => (None, None),
        }
    }

    fn read_thresholds(&self) -> Result<Thresholds, ConfigError> {
        let d = Thresholds::default();
        let num = |key: &str,
                   what: &str,
                   default: f64,
                   range: std::ops::RangeInclusive<f64>|
         -> Result<f64, ConfigError> {
            let Some(r) = self.reader(key) else {
                return Ok(default);
            };
            r.parse_in(key, what, default, range, what)
        };
        let overdue_factor = num(
            "overdue_factor",
            "a factor of each instance's interval, 1-100 (e.g. 1.5)",
            d.overdue_factor,
            1.0..=100.0,
        )?;
        let grace = num(
            "overdue_grace_secs",
            "seconds, 0-604800",
            d.overdue_grace.as_secs_f64(),
            0.0..=604800.0,
        )?;
        let default_interval = num(
            "default_interval_secs",
            "seconds, 1-31536000",
            d.default_interval.as_secs_f64(),
            1.0..=31_536_000.0,
        )?;
        let backlog_threshold = num(
            "backlog_threshold",
            "a number of messages, 1-1000000000",
            d.backlog_threshold as f64,
            1.0..=1e9,
        )?;
        let backlog_age = num(
            "backlog_age_mins",
            "minutes, 0 (off) to 100000",
            d.backlog_age.as_secs_f64() / 60.0,
            0.0..=100_000.0,
        )?;
        let disk_low_pct = num(
            "disk_low_pct",
            "a percentage of free space, 0-100",
            d.disk_low_pct,
            0.0..=100.0,
        )?;
        let disk_critical_pct = num(
            "disk_critical_pct",
            "a percentage of free space, 0-100",
            d.disk_critical_pct,
            0.0..=100.0,
        )?;
        if disk_critical_pct > disk_low_pct {
            let r = self.reader("disk_critical_pct").expect("read above");
            return Err(r.error("disk_critical_pct", format!("{disk_critical_pct} is above disk_low_pct {disk_low_pct}; expected critical <= low")));
        }
        let slowest = num(
            "slowest_pulls",
            "a count, 0-100",
            d.slowest_pulls as f64,
            0.0..=100.0,
        )?;
        let keep_days = num(
            "samples_keep_days",
            "days, 0 (keep forever) to 36500",
            90.0,
            0.0..=36500.0,
        )?;
        let mut min_size = BTreeMap::new();
        for name in ["global", "reporter"] {
            // [reporter] is read second, so its values win
            let Some(s) = self.doc.section(name) else {
                continue;
            };
            let r = SectionReader::new(&self.doc, s);
            for (k, v) in r.keys() {
                if let Some(t) = k.strip_prefix("min_size.") {
                    let bytes = parse_size(v).ok_or_else(|| {
                        r.error(k, format!("`{v}` is not a size; expected bytes, optionally with K, M, G or T (1024-based), e.g. 10M"))
                    })?;
                    min_size.insert(t.to_string(), bytes);
                }
            }
        }
        Ok(Thresholds {
            overdue_factor,
            overdue_grace: Duration::from_secs_f64(grace),
            default_interval: Duration::from_secs_f64(default_interval),
            backlog_threshold: backlog_threshold as u64,
            backlog_age: Duration::from_secs_f64(backlog_age * 60.0),
            disk_low_pct,
            disk_critical_pct,
            min_size,
            slowest_pulls: slowest as usize,
            samples_keep: Duration::from_secs_f64(keep_days * 86400.0),
        })
    }
}

/// `123`, `10K`, `5M`, `1.5G`, `2T` (1024-based; a trailing `B` is allowed).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_suffix(['B', 'b']).unwrap_or(v);
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        't' | 'T' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ReporterConfig, ConfigError> {
        ReporterConfig::parse(Path::new("/etc/ubackup/x.conf"), text)
    }

    #[test]
    fn reporter_section_overrides_global_and_min_sizes_parse() {
        let c = parse(
            "[global]\nredis_host = 127.0.0.1\noverdue_factor = 3\nmin_size.mysql = 1K\n[reporter]\noverdue_factor = 2  # tighter\nmin_size.redis = 1.5M\nmin_size.mysql = 10M\n",
        )
        .unwrap();
        assert_eq!(c.thresholds.overdue_factor, 2.0);
        assert_eq!(c.thresholds.min_size["mysql"], 10 << 20);
        assert_eq!(c.thresholds.min_size["redis"], 3 << 19);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[global]\nredis_host = h\n[reporter]\ndisk_low_pct = 120\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[reporter] disk_low_pct") && e.contains("0-100"),
            "{e}"
        );
        let e = parse("[global]\nmin_size.mysql = lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_size.mysql") && e.contains("10M"), "{e}");
        let c = parse("[global]\nredis_host = h\n").unwrap();
        let e = c.server_root_path().unwrap_err().to_string();
        assert!(e.contains("[global] server_root_path: missing"), "{e}");
        let e = c.node_id().unwrap_err().to_string();
        assert!(e.contains("myip"), "{e}");
        let c = parse("[global]\nmyip = 10.0.0.1\n").unwrap();
        let e = c.redis().unwrap_err().to_string();
        assert!(e.contains("redis_host"), "{e}");
        assert_eq!(c.node_id().unwrap(), "10.0.0.1");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1"), None);
    }
}
