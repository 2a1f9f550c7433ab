//! The catalog keys: `catalog` (the SQLite catalog path) and the `es_*`
//! keys of Elasticsearch, with their defaults. The path's rules are here;
//! the `es_*` keys fill `ubackup_catalog::EsSettings` and are read there
//! (`ubackup_catalog::location::es_settings`), the one reader of them.

use std::path::PathBuf;

use super::{ConfigError, SectionReader};

/// Every catalog key.
pub const KEYS: &[&str] = &[
    "catalog",
    "es_urls",
    "es_index",
    "es_user",
    "es_password",
    "es_api_key",
    "es_ca_cert",
    "es_tls_verify",
    "es_timeout",
    "catalog_url",
    "catalog_token_file",
    "catalog_ca",
];

/// Where the indexer keeps the SQLite catalog unless `catalog` says
/// otherwise (the reporter looks there too).
pub const DEFAULT_CATALOG: &str = "/var/lib/ubackup/catalog.db";
/// The original indexer's index.
pub const DEFAULT_ES_INDEX: &str = "uuzubackup";

/// What the `catalog` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKey {
    /// Not set (or empty).
    Absent,
    /// `off`, `none`, `no` or `false` (in any case): no SQLite catalog. The
    /// value as written.
    Off(String),
    /// An absolute path.
    Path(PathBuf),
}

/// Reads `catalog`. A relative path is refused with "`v` is not an absolute
/// path; expected `expected`".
pub fn catalog_key(r: &SectionReader, expected: &str) -> Result<CatalogKey, ConfigError> {
    let Some(v) = r.opt_str("catalog") else {
        return Ok(CatalogKey::Absent);
    };
    if matches!(
        v.to_ascii_lowercase().as_str(),
        "off" | "none" | "no" | "false"
    ) {
        return Ok(CatalogKey::Off(v));
    }
    let p = PathBuf::from(&v);
    if !p.is_absolute() {
        return Err(not_absolute(r, &v, expected));
    }
    Ok(CatalogKey::Path(p))
}

/// The error for a `catalog` value that is not an absolute path.
pub fn not_absolute(r: &SectionReader, v: &str, expected: &str) -> ConfigError {
    r.error(
        "catalog",
        format!("`{v}` is not an absolute path; expected {expected}"),
    )
}
