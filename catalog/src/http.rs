//! The catalog over HTTP (`catalog_url`): the catalog API of
//! `ubackup-reporter serve` as a [`Retention`] store, so `list`, `restore`,
//! `pin` and `unpin` run on a database host that has neither the SQLite
//! file nor Elasticsearch credentials, unchanged.
//!
//! It reads (`/api/backups`, `/api/backups/{id}`) and pins
//! (`/api/backups/{id}/pin`, `/unpin`); everything else a store does
//! (indexing, prune marks, verification) is refused: those tools run where
//! the catalog is. Every request carries `Authorization: Bearer <token>`
//! (the `catalog_token_file`); the answer's JSON is [`crate::api`]'s.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::api::{query_pairs, record_from_row};
use crate::copies::CopyRecord;
use crate::record::{BackupQuery, CatalogRecord, InstanceEntry, InstanceKey, StoreOutcome};
use crate::retention::{Retention, VerifyOutcome};
use crate::{Catalog, CatalogError};

/// Where the catalog API is and how to reach it.
#[derive(Clone)]
pub struct HttpSettings {
    /// `http(s)://host:port` (a path prefix is kept).
    pub url: Url,
    /// The bearer token (the content of `catalog_token_file`).
    pub token: String,
    /// Where the token came from, for messages (never the token itself).
    pub token_file: PathBuf,
    /// A PEM CA certificate to trust for `https` (`catalog_ca`).
    pub ca: Option<PathBuf>,
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("url", &self.url.as_str())
            .field("token_file", &self.token_file)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// The catalog API client.
pub struct HttpCatalog {
    settings: HttpSettings,
    client: reqwest::Client,
}

impl HttpCatalog {
    pub fn new(settings: &HttpSettings) -> Result<Self, CatalogError> {
        let store = format!("catalog_url {}", settings.url);
        let mut b = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)));
        if let Some(ca) = &settings.ca {
            let pem = std::fs::read(ca).map_err(|e| {
                CatalogError::fatal(
                    &store,
                    format!("cannot read catalog_ca {}: {e}", ca.display()),
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CatalogError::fatal(&store, format!("catalog_ca {}: {e}", ca.display()))
            })?;
            b = b.add_root_certificate(cert);
        }
        let client = b
            .build()
            .map_err(|e| CatalogError::fatal(&store, e.to_string()).because(e))?;
        Ok(HttpCatalog {
            settings: settings.clone(),
            client,
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.as_str().trim_end_matches('/'))
    }

    /// Sends `req`; `Ok(None)` for 404. The error carries the server's
    /// `error` text.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Option<Value>, CatalogError> {
        let store = self.describe();
        let resp = req
            .bearer_auth(&self.settings.token)
            .send()
            .await
            .map_err(|e| send_error(&store, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CatalogError::unavailable(&store, e.to_string()).because(e))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.map(Some).ok_or_else(|| {
                CatalogError::fatal(&store, format!("the answer is not JSON: {text:.200}"))
            });
        }
        let said = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{text:.200}"));
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(CatalogError::rejected(
                store,
                format!(
                    "HTTP {status}: {said} (token from {})",
                    self.settings.token_file.display()
                ),
            )),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Err(
                CatalogError::unavailable(store, format!("HTTP {s}: {said}")),
            ),
            s => Err(CatalogError::rejected(store, format!("HTTP {s}: {said}"))),
        }
    }

    fn refused(&self, what: &str) -> CatalogError {
        CatalogError::rejected(
            self.describe(),
            format!("{what} is not available over catalog_url; run it where the catalog is (catalog or es_urls)"),
        )
    }

    fn record(&self, v: &Value) -> Result<CatalogRecord, CatalogError> {
        record_from_row(v).map_err(|e| CatalogError::fatal(self.describe(), e))
    }
}

#[async_trait]
impl Catalog for HttpCatalog {
    fn describe(&self) -> String {
        format!("catalog_url {}", self.settings.url)
    }

    async fn prepare(&self) -> Result<(), CatalogError> {
        Ok(())
    }

    async fn store(&self, _: &[CatalogRecord]) -> Result<Vec<StoreOutcome>, CatalogError> {
        Err(self.refused("indexing"))
    }

    async fn get(&self, id: &str) -> Result<Option<CatalogRecord>, CatalogError> {
        let mut u = Url::parse(&self.endpoint("/api/backups"))
            .map_err(|e| CatalogError::fatal(self.describe(), e.to_string()))?;
        u.path_segments_mut()
            .map_err(|_| CatalogError::fatal(self.describe(), "catalog_url cannot have a path"))?
            .push(id);
        match self.send(self.client.get(u)).await? {
            None => Ok(None),
            Some(v) => self.record(&v).map(Some),
        }
    }

    async fn list_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError> {
        let req = self
            .client
            .get(self.endpoint("/api/backups"))
            .query(&query_pairs(q));
        let Some(v) = self.send(req).await? else {
            return Err(CatalogError::fatal(
                self.describe(),
                "no /api/backups here: is catalog_url the address of `ubackup-reporter serve` with api_tokens_file set?",
            ));
        };
        let rows = v.as_array().ok_or_else(|| {
            CatalogError::fatal(self.describe(), "/api/backups did not answer a JSON array")
        })?;
        rows.iter().map(|r| self.record(r)).collect()
    }

    async fn instance(&self, _: &InstanceKey) -> Result<Option<InstanceEntry>, CatalogError> {
        Err(self.refused("the instance registry"))
    }

    async fn instances(&self) -> Result<Vec<InstanceEntry>, CatalogError> {
        Err(self.refused("the instance registry"))
    }
}

#[async_trait]
impl Retention for HttpCatalog {
    async fn set_pinned(&self, id: &str, pinned: bool) -> Result<bool, CatalogError> {
        let mut u = Url::parse(&self.endpoint("/api/backups"))
            .map_err(|e| CatalogError::fatal(self.describe(), e.to_string()))?;
        u.path_segments_mut()
            .map_err(|_| CatalogError::fatal(self.describe(), "catalog_url cannot have a path"))?
            .push(id)
            .push(if pinned { "pin" } else { "unpin" });
        Ok(self.send(self.client.post(u)).await?.is_some())
    }

    async fn mark_deleted(&self, _: &str, _: i64) -> Result<(), CatalogError> {
        Err(self.refused("prune"))
    }

    async fn record_verify(&self, _: &str, _: &VerifyOutcome, _: i64) -> Result<(), CatalogError> {
        Err(self.refused("verify"))
    }

    async fn record_copy(&self, _: &str, _: &CopyRecord) -> Result<bool, CatalogError> {
        Err(self.refused("replication"))
    }
}

/// A request that got no answer. A certificate the client refused (not
/// from `catalog_ca`, expired, another name) will be refused again, so it
/// is `Rejected` with what to check, not a retryable outage; everything
/// else (refused connection, timeout, reset) is `Unavailable`.
fn send_error(store: &str, e: reqwest::Error) -> CatalogError {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    if chain.contains("certificate") {
        CatalogError::rejected(
            store,
            format!("TLS: the catalog server's certificate was refused ({chain}); catalog_ca must name the CA that signed it"),
        )
        .because(e)
    } else {
        CatalogError::unavailable(store, chain).because(e)
    }
}
