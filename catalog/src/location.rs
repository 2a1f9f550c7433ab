//! Where a tool finds the catalog, from the `[global]` keys of its own
//! config: `catalog` (the SQLite path), `catalog_url` (the catalog API of
//! `ubackup-reporter serve`, with `catalog_token_file` and `catalog_ca`) or
//! `es_urls` / `es_index` (plus the optional ES credentials). The client (list/restore/pin) and the server
//! (prune/verify) read the same keys, with the same errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ubackup_common::config::catalog::{catalog_key, not_absolute, CatalogKey};
use ubackup_common::{ConfigError, SectionReader};
use url::Url;

use crate::es::EsAuth;
use crate::retention::Retention;
use crate::{CatalogError, EsCatalog, EsSettings, HttpCatalog, HttpSettings, SqliteCatalog};

/// The `[global]` keys read here, and the index used when `es_index` is
/// not set (defined with the other shared config keys).
pub use ubackup_common::config::catalog::{DEFAULT_ES_INDEX, KEYS};

/// One configured catalog. With several keys set, the first of `catalog`,
/// `catalog_url`, `es_urls` is used.
#[derive(Debug, Clone)]
pub enum CatalogLocation {
    Sqlite(PathBuf),
    Http(HttpSettings),
    Es(EsSettings),
}

impl std::fmt::Display for CatalogLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogLocation::Sqlite(p) => write!(f, "sqlite {}", p.display()),
            CatalogLocation::Http(h) => write!(f, "catalog_url {}", h.url),
            CatalogLocation::Es(s) => {
                let urls: Vec<String> = s.urls.iter().map(|u| u.to_string()).collect();
                write!(f, "es {} at {}", s.index, urls.join(","))
            }
        }
    }
}

impl CatalogLocation {
    /// The configured catalog, or `None` when neither key is set.
    pub fn from_section(g: &SectionReader) -> Result<Option<CatalogLocation>, ConfigError> {
        const EXPECTED: &str = "the SQLite catalog file, e.g. /var/lib/ubackup/catalog.sqlite";
        match catalog_key(g, EXPECTED)? {
            CatalogKey::Path(p) => Ok(Some(CatalogLocation::Sqlite(p))),
            // no `off` here: a tool that was given a catalog needs one
            CatalogKey::Off(v) => Err(not_absolute(g, &v, EXPECTED)),
            CatalogKey::Absent => match http_settings(g)? {
                Some(h) => Ok(Some(CatalogLocation::Http(h))),
                None => Ok(es_settings(g)?.map(CatalogLocation::Es)),
            },
        }
    }

    /// Like [`from_section`](Self::from_section), but a missing catalog is
    /// an error naming both keys and what `needed_for` needs them.
    pub fn required(g: &SectionReader, needed_for: &str) -> Result<CatalogLocation, ConfigError> {
        Self::from_section(g)?.ok_or_else(|| {
            g.error(
                "catalog",
                format!("missing: {needed_for} needs the catalog; set `catalog` (the SQLite catalog path, e.g. /var/lib/ubackup/catalog.sqlite) `catalog_url` (the catalog API of `ubackup-reporter serve`, with catalog_token_file) or `es_urls` (and `es_index`, default {DEFAULT_ES_INDEX}) in [global]"),
            )
        })
    }

    /// Opens the store. SQLite is opened (and migrated) on a blocking
    /// thread; Elasticsearch is only checked when first asked.
    pub async fn open(&self) -> Result<Arc<dyn Retention>, CatalogError> {
        match self {
            CatalogLocation::Sqlite(p) => {
                let p = p.clone();
                let store = tokio::task::spawn_blocking(move || SqliteCatalog::open(&p))
                    .await
                    .map_err(|e| {
                        CatalogError::fatal(self.to_string(), e.to_string()).because(e)
                    })??;
                Ok(Arc::new(store))
            }
            CatalogLocation::Http(h) => Ok(Arc::new(HttpCatalog::new(h)?)),
            CatalogLocation::Es(s) => Ok(Arc::new(EsCatalog::new(s)?)),
        }
    }
}

/// The PEM CA certificate file `key` names, checked to be readable and
/// to hold a certificate; `None` when the key is not set.
fn pem_ca(g: &SectionReader, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(ca) = g.opt_path(key) else {
        return Ok(None);
    };
    let pem = std::fs::read(&ca).map_err(|e| {
        g.error(
            key,
            format!(
                "cannot read {}: {e}; expected a PEM CA certificate file",
                ca.display()
            ),
        )
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(g.error(
            key,
            format!(
                "{} is not a PEM certificate (no BEGIN CERTIFICATE line)",
                ca.display()
            ),
        ));
    }
    Ok(Some(ca))
}

/// `catalog_url`, `catalog_token_file` (the token alone; required with the
/// URL) and `catalog_ca` (a PEM CA for https). `None` without `catalog_url`.
pub fn http_settings(g: &SectionReader) -> Result<Option<HttpSettings>, ConfigError> {
    let Some(raw) = g.opt_str("catalog_url") else {
        for k in ["catalog_token_file", "catalog_ca"] {
            if g.opt_str(k).is_some() {
                return Err(g.error(k, "is set but catalog_url is not; set catalog_url (e.g. https://10.0.0.9:9187) or remove it"));
            }
        }
        return Ok(None);
    };
    const EXPECTED: &str = "expected http(s)://host:port of `ubackup-reporter serve`";
    let url = Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| g.error("catalog_url", format!("`{raw}` is not a URL; {EXPECTED}")))?;
    let token_file = g.opt_path("catalog_token_file").ok_or_else(|| {
        g.error(
            "catalog_token_file",
            "missing: catalog_url needs the file holding this host's API token (one line, the token alone)",
        )
    })?;
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| {
            g.error(
                "catalog_token_file",
                format!("cannot read {}: {e}", token_file.display()),
            )
        })?
        .trim()
        .to_string();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(g.error(
            "catalog_token_file",
            format!(
                "{} must hold the token alone (one word, no spaces)",
                token_file.display()
            ),
        ));
    }
    let ca = pem_ca(g, "catalog_ca")?;
    Ok(Some(HttpSettings {
        url,
        token,
        token_file,
        ca,
        timeout: Duration::from_secs(60),
    }))
}

/// The `es_*` keys of a section (`es_urls`, `es_index`, `es_user`/`es_password`
/// or `es_api_key`, `es_ca_cert`, `es_tls_verify`, `es_timeout`): one reading
/// shared by the indexer, the reporter and the client's restore. `None` when
/// `es_urls` is absent.
pub fn es_settings(g: &SectionReader) -> Result<Option<EsSettings>, ConfigError> {
    let Some(list) = g.opt_str("es_urls") else {
        for k in ["es_user", "es_password", "es_api_key", "es_ca_cert"] {
            if g.has(k) && g.opt_str(k).is_some() {
                return Err(g.error(k, "is set but es_urls is not; set es_urls (e.g. http://10.0.0.9:9200) or remove it"));
            }
        }
        return Ok(None);
    };
    let mut urls = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // the original took host:port; accept it as http://host:port
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let u = Url::parse(&with_scheme)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                g.error(
                    "es_urls",
                    format!("`{raw}` is not a URL; expected http(s)://host:port, comma-separated"),
                )
            })?;
        urls.push(u);
    }
    if urls.is_empty() {
        return Err(g.error(
            "es_urls",
            "is empty; expected http(s)://host:port, comma-separated",
        ));
    }
    let index = g.str_or("es_index", DEFAULT_ES_INDEX);
    if index != index.to_lowercase()
        || index.starts_with(['_', '-', '+'])
        || index.contains(|c: char| "\\/*?\"<>| ,#:".contains(c))
    {
        return Err(g.error(
            "es_index",
            format!("`{index}` is not a valid Elasticsearch index name; expected lowercase, no spaces or \\/*?\"<>|,#:, not starting with _ - +"),
        ));
    }
    let mut s = EsSettings::new(urls, &index);
    s.auth = match (
        g.opt_str("es_user"),
        g.opt_str("es_password"),
        g.opt_str("es_api_key"),
    ) {
        (None, None, None) => None,
        (Some(user), Some(password), None) => Some(EsAuth::Basic { user, password }),
        (None, None, Some(k)) => Some(EsAuth::ApiKey(k)),
        (Some(_), None, _) => {
            return Err(g.error("es_password", "missing; es_user needs es_password"))
        }
        (None, Some(_), _) => return Err(g.error("es_user", "missing; es_password needs es_user")),
        (_, _, Some(_)) => {
            return Err(g.error(
                "es_api_key",
                "set together with es_user/es_password; use one or the other",
            ))
        }
    };
    s.ca_cert = pem_ca(g, "es_ca_cert")?;
    s.tls_verify = g.opt_bool("es_tls_verify")?.unwrap_or(true);
    let timeout: u64 = g.parse_or("es_timeout", "seconds per Elasticsearch request, 1-600", 60)?;
    if !(1..=600).contains(&timeout) {
        return Err(g.error(
            "es_timeout",
            format!("`{timeout}` is out of range; expected 1-600"),
        ));
    }
    s.timeout = Duration::from_secs(timeout);
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use ubackup_common::IniDoc;

    fn loc(text: &str) -> Result<Option<CatalogLocation>, ConfigError> {
        let doc = IniDoc::parse(Path::new("/etc/x.conf"), text).unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        CatalogLocation::from_section(&g)
    }

    #[test]
    fn catalog_url_needs_its_token_file_and_takes_the_token_alone() {
        let d = tempfile::tempdir().unwrap();
        let tok = d.path().join("t");
        std::fs::write(&tok, "  abcdefghijklmnopqrstuvwx\n").unwrap();
        let conf = |extra: &str| format!("[global]\ncatalog_url = https://10.0.0.9:9187\n{extra}");
        match loc(&conf(&format!("catalog_token_file = {}\n", tok.display()))).unwrap() {
            Some(CatalogLocation::Http(h)) => {
                assert_eq!(h.token, "abcdefghijklmnopqrstuvwx");
                assert_eq!(h.url.as_str(), "https://10.0.0.9:9187/");
                assert!(
                    !format!("{h:?}").contains("abcdefgh"),
                    "Debug shows the token"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = loc(&conf("")).unwrap_err().to_string();
        assert!(e.contains("[global] catalog_token_file: missing"), "{e}");
        let e = loc("[global]\ncatalog_url = 10.0.0.9:9187\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[global] catalog_url: `10.0.0.9:9187` is not a URL"),
            "{e}"
        );
        std::fs::write(&tok, "two words\n").unwrap();
        let e = loc(&conf(&format!("catalog_token_file = {}\n", tok.display())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must hold the token alone"), "{e}");
        let e = loc(&format!("[global]\ncatalog_ca = {}\n", tok.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[global] catalog_ca: is set but catalog_url is not"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_es_and_errors_name_the_key() {
        assert!(matches!(
            loc("[global]\ncatalog = /var/lib/c.sqlite\n").unwrap(),
            Some(CatalogLocation::Sqlite(_))
        ));
        match loc("[global]\nes_urls = 10.0.0.9:9200, https://es2:9200\n").unwrap() {
            Some(CatalogLocation::Es(s)) => {
                assert_eq!(s.urls.len(), 2);
                assert_eq!(s.index, "uuzubackup");
            }
            other => panic!("{other:?}"),
        }
        assert!(loc("[global]\nx = 1\n").unwrap().is_none());
        let e = loc("[global]\ncatalog = rel.sqlite\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[global] catalog: `rel.sqlite` is not an absolute path"),
            "{e}"
        );
        let e = loc("[global]\nes_urls = http://e:9200\nes_index = Big\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[global] es_index"), "{e}");
        let doc = IniDoc::parse(Path::new("/etc/x.conf"), "[global]\nx = 1\n").unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        let e = CatalogLocation::required(&g, "restore")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[global] catalog: missing: restore needs the catalog")
                && e.contains("es_urls"),
            "{e}"
        );
    }
}
