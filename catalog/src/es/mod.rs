//! Elasticsearch as a catalog, through the official `elasticsearch` crate.
//!
//! Backups go to `index` (default `uuzubackup`, the original's), one
//! document per result with `_id` = the record id. The instance registry
//! goes to `<index>-instances`, one document per instance; it is updated by
//! read (real-time `_mget`) → merge → write, which is exact for one indexer
//! and "newest write wins" if several indexers touch the same instance at
//! the same moment.
//!
//! The crate's `send()` returns `Ok` for any HTTP status; every call here
//! checks the status itself.
//!
//! Layout: this module is the client and its [`Catalog`] queries;
//! [`mapping`] every mapping and template, [`bulk`] the `_bulk` bodies and
//! answers; `retention`, `reports`, `samples` the other traits and the
//! reporter's samples index.

pub mod bulk;
pub mod mapping;

mod reports;
mod retention;
mod samples;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesExistsIndexTemplateParts, IndicesExistsParts,
    IndicesPutIndexTemplateParts, IndicesRefreshParts,
};
use elasticsearch::{BulkParts, Elasticsearch, GetParts, MgetParts, SearchParts};
use serde_json::{json, Value};
use url::Url;

use crate::record::{BackupQuery, CatalogRecord, InstanceEntry, InstanceKey, StoreOutcome};
use crate::{Catalog, CatalogError};
use bulk::RequestVerdict;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// One or more nodes; requests go round-robin.
    pub urls: Vec<Url>,
    pub index: String,
    pub auth: Option<EsAuth>,
    /// A PEM CA certificate to trust (self-signed clusters).
    pub ca_cert: Option<PathBuf>,
    /// `false` accepts any certificate (testing only).
    pub tls_verify: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl EsSettings {
    pub fn new(urls: Vec<Url>, index: &str) -> Self {
        EsSettings {
            urls,
            index: index.to_string(),
            auth: None,
            ca_cert: None,
            tls_verify: true,
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub enum EsAuth {
    Basic {
        user: String,
        password: String,
    },
    /// `id:key`, or the base64 "encoded" form Kibana shows.
    ApiKey(String),
}

impl std::fmt::Debug for EsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EsAuth::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            EsAuth::ApiKey(_) => write!(f, "ApiKey(***)"),
        }
    }
}

/// The Elasticsearch store. Cheap to clone.
#[derive(Clone)]
pub struct EsCatalog {
    client: Elasticsearch,
    index: String,
    instances_index: String,
}

impl EsCatalog {
    pub fn new(s: &EsSettings) -> Result<Self, CatalogError> {
        let fatal = |reason: String| CatalogError::fatal(format!("es {}", s.index), reason);
        let builder = match s.urls.as_slice() {
            [] => return Err(fatal("no Elasticsearch URL given".into())),
            [one] => TransportBuilder::new(SingleNodeConnectionPool::new(one.clone())),
            many => {
                TransportBuilder::new(MultiNodeConnectionPool::round_robin(many.to_vec(), None))
            }
        };
        let mut builder = builder.timeout(s.timeout);
        builder = match &s.auth {
            None => builder,
            Some(EsAuth::Basic { user, password }) => {
                builder.auth(Credentials::Basic(user.clone(), password.clone()))
            }
            Some(EsAuth::ApiKey(k)) => match k.split_once(':') {
                Some((id, key)) => builder.auth(Credentials::ApiKey(id.into(), key.into())),
                None => builder.auth(Credentials::EncodedApiKey(k.clone())),
            },
        };
        if !s.tls_verify {
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(ca) = &s.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| {
                fatal(format!("cannot read CA certificate {}: {e}", ca.display())).because(e)
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                fatal(format!("{} is not a PEM certificate: {e}", ca.display())).because(e)
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| fatal(format!("cannot build the HTTP client: {e}")).because(e))?;
        Ok(EsCatalog {
            client: Elasticsearch::new(transport),
            index: s.index.clone(),
            instances_index: mapping::instances_index(&s.index),
        })
    }

    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    pub fn index(&self) -> &str {
        &self.index
    }

    pub fn instances_index(&self) -> &str {
        &self.instances_index
    }

    fn unavailable(&self, reason: impl Into<String>) -> CatalogError {
        CatalogError::unavailable(self.describe(), reason.into())
    }

    /// Maps a transport error (no HTTP answer at all) to "try later".
    fn transport(&self, what: &str, e: elasticsearch::Error) -> CatalogError {
        self.unavailable(format!("{what}: {e}")).because(e)
    }

    /// Reads a response; a non-2xx status becomes the matching error.
    async fn json_ok(&self, what: &str, resp: Response) -> Result<Value, CatalogError> {
        let status = resp.status_code().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(what, e))?;
        match bulk::request_verdict(status) {
            RequestVerdict::Items => serde_json::from_str(&text).map_err(|e| {
                self.unavailable(format!(
                    "{what}: unreadable answer ({e}): {}",
                    text.chars().take(200).collect::<String>()
                ))
                .because(e)
            }),
            RequestVerdict::Rejected | RequestVerdict::TooLarge => Err(CatalogError::rejected(
                self.describe(),
                format!("{what}: {}", bulk::request_error_text(status, &text)),
            )),
            RequestVerdict::Unavailable => Err(self.unavailable(format!(
                "{what}: {}",
                bulk::request_error_text(status, &text)
            ))),
        }
    }

    /// `GET /`: the cluster's version number (e.g. `8.15.0`).
    pub async fn cluster_version(&self) -> Result<String, CatalogError> {
        let resp = self
            .client
            .info()
            .send()
            .await
            .map_err(|e| self.transport("GET /", e))?;
        let v = self.json_ok("GET /", resp).await?;
        v["version"]["number"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.unavailable(format!("GET / answered without version.number: {v}")))
    }

    /// Makes everything written so far visible to searches (tests, tools).
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        let idx = [self.index.as_str(), self.instances_index.as_str()];
        let resp = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&idx))
            .send()
            .await
            .map_err(|e| self.transport("refresh", e))?;
        self.json_ok("refresh", resp).await.map(|_| ())
    }

    async fn index_exists(&self, index: &str) -> Result<bool, CatalogError> {
        let resp = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[index]))
            .send()
            .await
            .map_err(|e| self.transport("HEAD index", e))?;
        match resp.status_code().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(self.unavailable(format!("HEAD /{index}: HTTP {s}"))),
        }
    }

    /// Creates `index` with `mappings`; an index that appeared meanwhile
    /// (another indexer) is fine.
    async fn create_index(&self, index: &str, mappings: Value) -> Result<(), CatalogError> {
        let resp = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(index))
            .body(json!({ "mappings": mappings }))
            .send()
            .await
            .map_err(|e| self.transport("create index", e))?;
        match self.json_ok(&format!("PUT /{index}"), resp).await {
            Ok(_) => {
                tracing::info!(index, "created Elasticsearch index");
                Ok(())
            }
            Err(CatalogError::Rejected { reason, .. })
                if reason.contains("resource_already_exists_exception") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates template `name` with `body` unless it exists (an existing
    /// one is left as the operator may have changed it).
    async fn ensure_template(&self, name: &str, body: Value) -> Result<(), CatalogError> {
        let resp = self
            .client
            .indices()
            .exists_index_template(IndicesExistsIndexTemplateParts::Name(name))
            .send()
            .await
            .map_err(|e| self.transport("HEAD index template", e))?;
        match resp.status_code().as_u16() {
            200 => return Ok(()),
            404 => {}
            s => return Err(self.unavailable(format!("HEAD /_index_template/{name}: HTTP {s}"))),
        }
        let resp = self
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(name))
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport("put index template", e))?;
        self.json_ok(&format!("PUT /_index_template/{name}"), resp)
            .await?;
        tracing::info!(template = %name, "created Elasticsearch index template");
        Ok(())
    }

    /// One `_bulk` of index operations into `index`. 413 splits the batch.
    async fn bulk_index(
        &self,
        index: &str,
        lines: Vec<String>,
        n: usize,
    ) -> Result<Vec<StoreOutcome>, CatalogError> {
        // borrowed: the lines are only kept for a 413 split, and copying
        // every document of every batch for that rare case cost CPU
        let body: Vec<&str> = lines.iter().map(String::as_str).collect();
        let resp = self
            .client
            .bulk(BulkParts::Index(index))
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport("bulk", e))?;
        let status = resp.status_code().as_u16();
        if bulk::request_verdict(status) == RequestVerdict::TooLarge && n > 1 {
            // Two halves; each may split again.
            let half = n / 2;
            let (a, b) = lines.split_at(half * 2);
            let mut out = Box::pin(self.bulk_index(index, a.to_vec(), half)).await?;
            out.extend(Box::pin(self.bulk_index(index, b.to_vec(), n - half)).await?);
            return Ok(out);
        }
        let body = self.json_ok(&format!("POST /{index}/_bulk"), resp).await?;
        bulk::outcomes(&body, n).map_err(|e| self.unavailable(e))
    }

    /// Real-time read of registry documents by key.
    async fn read_instances(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<InstanceEntry>>, CatalogError> {
        let resp = self
            .client
            .mget(MgetParts::Index(&self.instances_index))
            .body(json!({ "ids": keys }))
            .send()
            .await
            .map_err(|e| self.transport("mget", e))?;
        let body = self.json_ok("mget instances", resp).await?;
        let docs = body["docs"].as_array().cloned().unwrap_or_default();
        if docs.len() != keys.len() {
            return Err(self.unavailable(format!(
                "mget answered {} docs for {} ids",
                docs.len(),
                keys.len()
            )));
        }
        Ok(docs
            .iter()
            .map(|d| {
                if d["found"].as_bool() == Some(true) {
                    instance_from_doc(&d["_source"])
                } else {
                    None
                }
            })
            .collect())
    }

    /// Merges the registry entries of `stored` into `<index>-instances`.
    async fn update_registry(&self, stored: &[&CatalogRecord]) -> Result<(), CatalogError> {
        let fresh = InstanceEntry::fold(stored);
        if fresh.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = fresh.iter().map(|e| e.key.to_string()).collect();
        let current = self.read_instances(&keys).await?;
        let mut lines = Vec::with_capacity(fresh.len() * 2);
        for (mut e, cur) in fresh.into_iter().zip(current) {
            if let Some(mut cur) = cur {
                cur.merge(&e);
                e = cur;
            }
            lines.push(json!({"index": {"_id": e.key.to_string()}}).to_string());
            lines.push(instance_to_doc(&e).to_string());
        }
        let n = keys.len();
        let out = self
            .bulk_index(&self.instances_index.clone(), lines, n)
            .await?;
        for (k, o) in keys.iter().zip(out) {
            match o {
                StoreOutcome::Stored => {}
                StoreOutcome::Retry(why) => {
                    return Err(self.unavailable(format!("registry {k}: {why}")))
                }
                // The backups themselves are stored; a registry document
                // ES refuses must not hold them back.
                StoreOutcome::Rejected(why) => {
                    tracing::warn!(instance = %k, "Elasticsearch refused the registry entry: {why}")
                }
            }
        }
        Ok(())
    }

    async fn search(
        &self,
        index: &str,
        body: Value,
    ) -> Result<Vec<(String, Value, Value)>, CatalogError> {
        let resp = self
            .client
            .search(SearchParts::Index(&[index]))
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport("search", e))?;
        let v = self
            .json_ok(&format!("POST /{index}/_search"), resp)
            .await?;
        Ok(v["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|h| {
                        (
                            h["_id"].as_str().unwrap_or("").to_string(),
                            h["_source"].clone(),
                            h["sort"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn instance_to_doc(e: &InstanceEntry) -> Value {
    json!({
        "key": e.key.to_string(),
        "server_id": e.key.server_id,
        "type": e.key.back_type,
        "instance": e.key.instance,
        "game_id": e.game_id,
        "game_name": e.game_name,
        "interval": e.interval,
        "first_seen_ms": e.first_seen_ms,
        "last_attempt_ms": e.last_attempt_ms,
        "last_success_ms": e.last_success_ms,
        "last_error": e.last_error,
        "last_error_ms": e.last_error_ms,
        "last_node": e.last_node,
    })
}

fn instance_from_doc(d: &Value) -> Option<InstanceEntry> {
    let server_id = match &d["server_id"] {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(InstanceEntry {
        key: InstanceKey {
            server_id,
            back_type: d["type"].as_str()?.to_string(),
            instance: d["instance"].as_i64()?,
        },
        game_id: d["game_id"].as_i64().unwrap_or(0),
        game_name: d["game_name"].as_str().unwrap_or("unknown").to_string(),
        interval: d["interval"].as_i64().unwrap_or(0),
        first_seen_ms: d["first_seen_ms"].as_i64()?,
        last_attempt_ms: d["last_attempt_ms"].as_i64()?,
        last_success_ms: d["last_success_ms"].as_i64(),
        last_error: d["last_error"].as_str().map(str::to_string),
        last_error_ms: d["last_error_ms"].as_i64(),
        last_node: d["last_node"].as_str().unwrap_or("").to_string(),
    })
}

/// The bool filter of a [`BackupQuery`].
pub fn query_body(q: &BackupQuery) -> Value {
    let mut filter: Vec<Value> = Vec::new();
    if let Some(v) = q.server_id {
        // keyword field: match the text form, as ES stores it
        filter.push(json!({"term": {"server_id": v.to_string()}}));
    }
    if let Some(v) = &q.back_type {
        filter.push(json!({"term": {"type": v}}));
    }
    if let Some(v) = q.instance {
        filter.push(json!({"term": {"instance": v}}));
    }
    if let Some(v) = q.game_id {
        filter.push(json!({"term": {"game_id": v}}));
    }
    if let Some(v) = &q.node {
        // original nodes are known by IP only (an `ip` field, which
        // refuses a term that is not an address)
        if v.parse::<std::net::IpAddr>().is_ok() {
            filter.push(json!({"term": {"back_server_ip": v}}));
        } else {
            filter.push(json!({"term": {"node_id": v}}));
        }
    }
    if let Some(v) = &q.filename {
        filter.push(json!({"term": {"filename": v}}));
    }
    if let Some(v) = q.succeeded {
        filter.push(json!({"term": {"succeed": if v { 1 } else { 0 }}}));
    }
    if q.since_ms.is_some() || q.until_ms.is_some() {
        let mut r = serde_json::Map::new();
        if let Some(v) = q.since_ms {
            r.insert("gte".into(), v.into());
        }
        if let Some(v) = q.until_ms {
            r.insert("lte".into(), v.into());
        }
        filter.push(json!({"range": {"create_time": r}}));
    }
    let mut b = serde_json::Map::new();
    b.insert("filter".into(), filter.into());
    if !q.include_deleted {
        b.insert(
            "must_not".into(),
            json!([{"exists": {"field": "deleted_at"}}]),
        );
    }
    json!({
        "query": {"bool": b},
        // _id cannot be sorted on in ES 8; filename breaks ties of one instance
        "sort": [{"create_time": {"order": "desc"}}, {"filename": {"order": "asc"}}],
        "size": q.effective_limit(),
        "from": q.offset,
        "track_total_hits": false
    })
}

#[async_trait]
impl Catalog for EsCatalog {
    fn describe(&self) -> String {
        format!("es {}", self.index)
    }

    async fn prepare(&self) -> Result<(), CatalogError> {
        let version = self.cluster_version().await?;
        if !version.starts_with("8.") {
            tracing::warn!(%version, "this indexer is built for Elasticsearch 8; check the mapping works on this version");
        }
        self.ensure_template(
            &mapping::template_name(&self.index),
            mapping::backup_template(&self.index),
        )
        .await?;
        self.ensure_template(
            &mapping::template_name(&self.instances_index),
            mapping::instance_template(&self.index),
        )
        .await?;
        if !self.index_exists(&self.index).await? {
            self.create_index(&self.index, mapping::backup_mappings())
                .await?;
        }
        if !self.index_exists(&self.instances_index).await? {
            self.create_index(&self.instances_index, mapping::instance_mappings())
                .await?;
        }
        Ok(())
    }

    async fn store(&self, batch: &[CatalogRecord]) -> Result<Vec<StoreOutcome>, CatalogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&CatalogRecord> = batch.iter().collect();
        let out = self
            .bulk_index(&self.index, bulk::index_lines(&refs), refs.len())
            .await?;
        let stored: Vec<&CatalogRecord> = batch
            .iter()
            .zip(&out)
            .filter(|(_, o)| **o == StoreOutcome::Stored)
            .map(|(r, _)| r)
            .collect();
        self.update_registry(&stored).await?;
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<Option<CatalogRecord>, CatalogError> {
        let resp = self
            .client
            .get(GetParts::IndexId(&self.index, id))
            .send()
            .await
            .map_err(|e| self.transport("get", e))?;
        if resp.status_code().as_u16() == 404 {
            return Ok(None);
        }
        let v = self
            .json_ok(&format!("GET /{}/_doc/{id}", self.index), resp)
            .await?;
        if v["found"].as_bool() != Some(true) {
            return Ok(None);
        }
        CatalogRecord::from_es_document(id, &v["_source"])
            .map(Some)
            .map_err(|e| CatalogError::fatal(self.describe(), e))
    }

    async fn list_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError> {
        let hits = self.search(&self.index.clone(), query_body(q)).await?;
        hits.into_iter()
            .map(|(id, src, _)| {
                CatalogRecord::from_es_document(&id, &src)
                    .map_err(|e| CatalogError::fatal(self.describe(), e))
            })
            .collect()
    }

    async fn instance(&self, key: &InstanceKey) -> Result<Option<InstanceEntry>, CatalogError> {
        Ok(self
            .read_instances(&[key.to_string()])
            .await?
            .pop()
            .flatten())
    }

    async fn instances(&self) -> Result<Vec<InstanceEntry>, CatalogError> {
        // search_after pages: a site has tens of thousands of instances,
        // more than one search may return (10000).
        const PAGE: usize = 5000;
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "query": {"match_all": {}},
                "sort": [{"key": {"order": "asc"}}],
                "size": PAGE,
                "track_total_hits": false
            });
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let hits = self.search(&self.instances_index.clone(), body).await?;
            let n = hits.len();
            for (_, src, sort) in hits {
                if let Some(e) = instance_from_doc(&src) {
                    out.push(e);
                }
                after = Some(sort);
            }
            if n < PAGE {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
