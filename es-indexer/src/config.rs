//! The indexer's INI config: `[global]` and the optional `[business]` map.
//!
//! Parsed with the shared [`IniDoc`] (inline comments, Chinese text, line
//! numbers) and checked into [`IndexerConfig`]; every rejection names the
//! file, line, section and key and says what would be valid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ubackup_catalog::EsSettings;
use ubackup_common::config::catalog::{self, catalog_key, CatalogKey};
use ubackup_common::config::{cluster, logs, redis, ConfigError, SectionReader};
use ubackup_common::{IniDoc, RedisTarget};

/// Where the SQLite catalog lives unless `catalog` says otherwise.
pub use ubackup_common::config::catalog::DEFAULT_CATALOG;
/// The original keeps its `SERVER_ID:TYPE:INSTANCE` keys in db 9.
pub const DEFAULT_OVERDUE_DB: i64 = 9;
/// Seconds added to `interval` for the expiring key's TTL (the original's).
pub const DEFAULT_OVERDUE_GRACE_S: u64 = 3000;
pub const DEFAULT_BATCH_SIZE: usize = 500;
pub const DEFAULT_BATCH_MS: u64 = 1000;
/// The name results get when their `game_id` is not in `[business]`.
pub const UNKNOWN_GAME: &str = "unknown";

/// Every `[global]` key the indexer reads (others are warned about).
pub const GLOBAL_KEYS: &[&str] = ubackup_common::key_list!(
    redis::QUEUE_REDIS_KEYS,
    &[cluster::MESSAGE_QUEUE, cluster::KEY_PREFIX],
    catalog::KEYS,
    logs::KEYS,
    INDEXER_KEYS,
);

/// The keys only the indexer reads.
const INDEXER_KEYS: &[&str] = &[
    "batch_size",
    "batch_ms",
    "overdue_db",
    "overdue_grace",
    "indexer_id",
];

#[derive(Debug, Clone)]
pub struct IndexerConfig {
    pub file: PathBuf,
    /// The Redis holding `message_queue` (and the in-flight lists).
    pub redis: RedisTarget,
    pub message_queue: String,
    /// SQLite catalog path; `None` = off (only allowed with ES).
    pub catalog: Option<PathBuf>,
    /// `None` = Elasticsearch not configured.
    pub es: Option<EsSettings>,
    pub batch_size: usize,
    /// How long a batch waits to fill up after its first result.
    pub batch_wait: Duration,
    pub log: Option<PathBuf>,
    pub error_log: Option<PathBuf>,
    pub key_prefix: String,
    /// The Redis database of the `SERVER_ID:TYPE:INSTANCE` keys.
    pub overdue_db: i64,
    pub overdue_grace: Duration,
    pub indexer_id: String,
    /// `[business]`: game_id → name.
    pub games: BTreeMap<i64, String>,
    /// Keys present in `[global]` that the indexer does not know (typos).
    pub unknown_keys: Vec<String>,
}

impl IndexerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let doc = IniDoc::load(path)?;
        Self::from_doc(&doc)
    }

    pub fn from_doc(doc: &IniDoc) -> Result<Self, ConfigError> {
        let g = SectionReader::required(doc, "global")?;
        let redis = redis::QUEUE_REDIS.read(&g)?;
        let message_queue = g.str(
            cluster::MESSAGE_QUEUE,
            "the Redis list nodes push results to (the server's message_queue)",
        )?;
        if message_queue.contains(char::is_whitespace) {
            return Err(g.error(
                "message_queue",
                format!("`{message_queue}` contains spaces; expected one list name"),
            ));
        }

        let es = ubackup_catalog::location::es_settings(&g)?;
        let catalog = match catalog_key(&g, &format!("e.g. {DEFAULT_CATALOG}, or off"))? {
            CatalogKey::Absent => Some(PathBuf::from(DEFAULT_CATALOG)),
            CatalogKey::Off(v) if es.is_none() => {
                return Err(g.error(
                    "catalog",
                    format!("`{v}` turns the SQLite catalog off, but no es_urls are set: results would have nowhere to go; set es_urls or give catalog a path (default {DEFAULT_CATALOG})"),
                ));
            }
            CatalogKey::Off(_) => None,
            CatalogKey::Path(p) => Some(p),
        };

        let batch_size: usize = g.parse_in(
            "batch_size",
            "a number of results per batch, 1-10000",
            DEFAULT_BATCH_SIZE,
            1..=10_000,
            "1-10000",
        )?;
        let batch_ms: u64 = g.parse_in(
            "batch_ms",
            "milliseconds to wait for a batch to fill, 0-60000",
            DEFAULT_BATCH_MS,
            0..=60_000,
            "0-60000",
        )?;
        let overdue_db: i64 = g.parse_or(
            "overdue_db",
            "a Redis database number (0-15 on a default Redis)",
            DEFAULT_OVERDUE_DB,
        )?;
        if overdue_db < 0 {
            return Err(g.error(
                "overdue_db",
                format!("`{overdue_db}` is negative; expected a Redis database number"),
            ));
        }
        let grace: u64 = g.parse_or(
            "overdue_grace",
            "seconds added to interval for the expiring key",
            DEFAULT_OVERDUE_GRACE_S,
        )?;
        let key_prefix = cluster::key_prefix(&g);
        let (log, error_log) = logs::read(&g);
        let indexer_id = match g.opt_str("indexer_id") {
            Some(id) if id.contains(char::is_whitespace) || id.contains(':') => {
                return Err(g.error(
                    "indexer_id",
                    format!(
                        "`{id}` contains a space or ':'; expected a plain name such as indexer-1"
                    ),
                ))
            }
            Some(id) => id,
            None => format!("indexer-{}", hostname()),
        };

        let games = match doc.section("business") {
            None => BTreeMap::new(),
            Some(s) => {
                let b = SectionReader::new(doc, s);
                let mut games = BTreeMap::new();
                for (k, v) in b.keys() {
                    let id: i64 = k.parse().map_err(|_| {
                        b.error(
                            k,
                            format!(
                                "`{k}` is not a game id; expected `<integer game_id> = <name>`"
                            ),
                        )
                    })?;
                    games.insert(id, v.clone());
                }
                games
            }
        };

        Ok(IndexerConfig {
            file: doc.file.clone(),
            redis,
            message_queue,
            catalog,
            es,
            batch_size,
            batch_wait: Duration::from_millis(batch_ms),
            log,
            error_log,
            key_prefix,
            overdue_db,
            overdue_grace: Duration::from_secs(grace),
            indexer_id,
            games,
            unknown_keys: g.unknown_keys(GLOBAL_KEYS),
        })
    }

    /// The `[business]` name of `game_id`, or `unknown`.
    pub fn game_name(&self, game_id: i64) -> &str {
        self.games
            .get(&game_id)
            .map(String::as_str)
            .unwrap_or(UNKNOWN_GAME)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IndexerConfig, ConfigError> {
        IndexerConfig::from_doc(
            &IniDoc::parse(Path::new("/etc/ubackup/indexer.conf"), text).unwrap(),
        )
    }

    const MIN: &str = "[global]\nredis_host = 127.0.0.1\nmessage_queue = message\n";

    #[test]
    fn defaults() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.catalog.as_deref(), Some(Path::new(DEFAULT_CATALOG)));
        assert!(c.es.is_none());
        assert_eq!(
            (c.batch_size, c.batch_wait, c.overdue_db),
            (500, Duration::from_millis(1000), 9)
        );
        assert_eq!(c.overdue_grace, Duration::from_secs(3000));
        assert_eq!(c.key_prefix, "ubackup:");
        assert!(c.indexer_id.starts_with("indexer-"));
        assert_eq!(c.game_name(31), "unknown");
    }

    #[test]
    fn business_map_and_es_settings() {
        let c = parse(&format!(
            "{MIN}es_urls = 10.0.0.9:9200, https://es2:9200 #两个节点\nes_user = elastic\nes_password = pw#1\n[business]\n31 = 大话西游\n32 = other\n"
        ))
        .unwrap();
        assert_eq!(c.game_name(31), "大话西游");
        let es = c.es.unwrap();
        assert_eq!(es.urls[0].as_str(), "http://10.0.0.9:9200/");
        assert_eq!(es.urls[1].as_str(), "https://es2:9200/");
        assert_eq!(es.index, "uuzubackup");
        assert!(
            matches!(es.auth, Some(ubackup_catalog::es::EsAuth::Basic { ref password, .. }) if password == "pw#1")
        );
    }

    #[test]
    fn rejections_name_the_key_and_what_is_valid() {
        let cases = [
            (
                "[global]\nredis_host = h\n",
                "[global] message_queue: missing",
            ),
            (
                &format!("{MIN}catalog = off\n") as &str,
                "[global] catalog: `off` turns the SQLite catalog off, but no es_urls",
            ),
            (
                &format!("{MIN}catalog = rel/path.db\n"),
                "is not an absolute path",
            ),
            (
                &format!("{MIN}es_urls = ftp://x\n"),
                "[global] es_urls: `ftp://x` is not a URL",
            ),
            (
                &format!("{MIN}es_urls = http://x:9200\nes_index = UUZU\n"),
                "not a valid Elasticsearch index name",
            ),
            (
                &format!("{MIN}es_urls = http://x:9200\nes_user = u\n"),
                "[global] es_password: missing",
            ),
            (
                &format!("{MIN}es_user = u\nes_password = p\n"),
                "es_urls is not",
            ),
            (
                &format!("{MIN}batch_size = 0\n"),
                "[global] batch_size: `0` is out of range; expected 1-10000",
            ),
            (
                &format!("{MIN}batch_ms = soon\n"),
                "[global] batch_ms: `soon` is not valid",
            ),
            (
                &format!("{MIN}[business]\nabc = x\n"),
                "[business] abc: `abc` is not a game id",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with("/etc/ubackup/indexer.conf:"), "{err}");
            assert!(err.contains(want), "{text:?}\n  got: {err}\n  want: {want}");
        }
    }

    #[test]
    fn catalog_off_with_es_is_es_only() {
        let c = parse(&format!("{MIN}catalog = none\nes_urls = http://x:9200\n")).unwrap();
        assert!(c.catalog.is_none() && c.es.is_some());
    }
}
