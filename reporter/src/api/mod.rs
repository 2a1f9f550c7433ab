//! The catalog API of `serve` (with `api_tokens_file`): what a database
//! host's `ubackup-client list/restore/pin/unpin` needs when it has no
//! catalog of its own (`catalog_url` in its config).
//!
//! * `GET /api/backups?server_id=&type=&instance=&at=&all=…`: the rows of
//!   `ubackup-client list --json` ([`ubackup_catalog::api`] builds both);
//! * `GET /api/backups/{id}`: one row;
//! * `GET /api/backups/{id}/chain[?module=&port=]`: what restoring it pulls,
//!   full first, each file with the nodes holding a good copy and its
//!   rsync URL in the nodes' read-only module (default `ubackup` on 873);
//! * `POST /api/backups/{id}/pin`, `/unpin`: for tokens with `pin`.
//!
//! Every request needs `Authorization: Bearer TOKEN` ([`tokens`]): 401
//! without one or with an unknown one, 403 for another host's backup or a
//! pin without `pin`; errors are `{"error": "…"}`. Without
//! `api_tokens_file` these paths answer 404 (the API is off).

pub mod tokens;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use ubackup_catalog::api::{chain_of, parse_query, row, ChainLookupError};
use ubackup_catalog::{CatalogRecord, EsCatalog, Retention, SqliteCatalog};
use ubackup_transport::source::{
    dest_dir, source_url, RsyncSource, DEFAULT_NODE_MODULE, DEFAULT_NODE_PORT,
};

use crate::config::ReporterConfig;
use crate::web::auth::Peer;
use tokens::{ApiTokens, Grant, Hosts};

/// What the API handlers share.
struct Api {
    cfg: ReporterConfig,
    tokens: Option<ApiTokens>,
    /// Opened on the first request (the SQLite catalog if configured,
    /// else Elasticsearch), kept for the next.
    catalog: Mutex<Option<Arc<dyn Retention>>>,
}

/// A refused or failed request: `{"error": …}` with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"ubackup catalog\""),
            );
        }
        r
    }
}

type Reply = Result<Response, ApiError>;

impl Api {
    fn grant(&self, headers: &HeaderMap) -> Result<&Grant, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "the catalog API is off: set api_tokens_file in the reporter's config".into(),
            ));
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "missing `Authorization: Bearer <token>` (a token of api_tokens_file)".into(),
                )
            })?;
        tokens.find(presented).ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "the token is not in api_tokens_file".into(),
            )
        })
    }

    async fn catalog(&self) -> Result<Arc<dyn Retention>, ApiError> {
        let mut guard = self.catalog.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let unavailable = |e: String| {
            tracing::warn!("api: catalog: {e}");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("catalog: {e}"))
        };
        let targets = self
            .cfg
            .require_catalog()
            .map_err(|e| unavailable(e.to_string()))?;
        let cat: Arc<dyn Retention> = match (targets.sqlite, targets.es) {
            (Some(p), _) => Arc::new(
                tokio::task::spawn_blocking(move || SqliteCatalog::open(&p))
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                    .map_err(|e| unavailable(e.to_string()))?,
            ),
            (None, Some(es)) => {
                Arc::new(EsCatalog::new(&es).map_err(|e| unavailable(e.to_string()))?)
            }
            (None, None) => return Err(unavailable("no catalog configured".into())),
        };
        *guard = Some(cat.clone());
        Ok(cat)
    }

    /// Record `id`, if `grant` may see it.
    async fn record(&self, grant: &Grant, id: &str) -> Result<CatalogRecord, ApiError> {
        let r = self
            .catalog()
            .await?
            .get(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no backup with id {id}")))?;
        if !grant.allows(r.result.server_id) {
            return Err(forbidden(grant, r.result.server_id));
        }
        Ok(r)
    }
}

fn failed(e: ubackup_catalog::CatalogError) -> ApiError {
    tracing::warn!("api: {e}");
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn forbidden(grant: &Grant, server_id: i64) -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        format!(
            "{} does not allow the backups of server {server_id}",
            grant.describe()
        ),
    )
}

async fn list(State(api): State<Arc<Api>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Reply {
    let grant = api.grant(&headers)?;
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut q = parse_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    match (&grant.hosts, q.server_id) {
        (_, Some(id)) if !grant.allows(id) => return Err(forbidden(grant, id)),
        (Hosts::Only(ids), None) if ids.len() == 1 => q.server_id = ids.first().copied(),
        _ => {}
    }
    let recs = api
        .catalog()
        .await?
        .list_backups(&q)
        .await
        .map_err(failed)?;
    let rows: Vec<Value> = recs
        .iter()
        .filter(|r| grant.allows(r.result.server_id))
        .map(row)
        .collect();
    Ok(Json(rows).into_response())
}

async fn one(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Reply {
    let grant = api.grant(&headers)?;
    Ok(Json(row(&api.record(grant, &id).await?)).into_response())
}

/// Where each file of the chain is: the good copies, each with its URL.
fn pull_sources(r: &CatalogRecord, module: &str, port: u16) -> Value {
    let res = &r.result;
    let name = ubackup_catalog::chain::basename(res.filename.as_deref().unwrap_or(""));
    let host: Option<IpAddr> = res.game_server_ip.trim().parse().ok();
    let copies: Vec<Value> = r
        .good_copies()
        .into_iter()
        .map(|c| {
            let url = match (c.ip.trim().parse::<IpAddr>(), host) {
                (Ok(ip), Some(host)) => {
                    let src = RsyncSource {
                        ip,
                        port,
                        module: module.to_string(),
                    };
                    let rel = dest_dir(Path::new(""), &res.back_type, host);
                    Some(source_url(&src, None, &format!("{}/{name}", rel.display())))
                }
                _ => None,
            };
            json!({ "node": c.node, "ip": c.ip, "file_path": c.file_path, "url": url })
        })
        .collect();
    Value::Array(copies)
}

async fn chain(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let grant = api.grant(&headers)?;
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let module = params
        .get("module")
        .cloned()
        .unwrap_or_else(|| DEFAULT_NODE_MODULE.into());
    let port = match params.get("port") {
        None => DEFAULT_NODE_PORT,
        Some(p) => p.parse().map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("`port={p}`: expected 1-65535"),
            )
        })?,
    };
    let target = api.record(grant, &id).await?;
    let cat = api.catalog().await?;
    let members = chain_of(cat.as_ref(), &target).await.map_err(|e| match e {
        ChainLookupError::Catalog(e) => failed(e),
        ChainLookupError::Chain(e) => ApiError(StatusCode::CONFLICT, e.to_string()),
    })?;
    let files: Vec<Value> = members
        .iter()
        .map(|r| {
            let mut v = row(r);
            v["sources"] = pull_sources(r, &module, port);
            v
        })
        .collect();
    Ok(Json(json!({ "backup": row(&target), "chain": files })).into_response())
}

async fn set_pin(api: &Api, headers: &HeaderMap, peer: &Peer, id: &str, pinned: bool) -> Reply {
    let grant = api.grant(headers)?;
    if !grant.pin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{} does not allow pin/unpin (add `pin` to its line)",
                grant.describe()
            ),
        ));
    }
    let r = api.record(grant, id).await?;
    let cat = api.catalog().await?;
    if !cat.set_pinned(&r.id, pinned).await.map_err(failed)? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no backup with id {id}"),
        ));
    }
    tracing::info!(
        peer = %peer.0,
        "api: {} {id} ({}) with {}",
        if pinned { "pinned" } else { "unpinned" },
        r.result.label(),
        grant.describe()
    );
    let now = cat.get(&r.id).await.map_err(failed)?.unwrap_or(r);
    Ok(Json(row(&now)).into_response())
}

async fn pin(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    peer: Peer,
    UrlPath(id): UrlPath<String>,
) -> Reply {
    set_pin(&api, &headers, &peer, &id, true).await
}

async fn unpin(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    peer: Peer,
    UrlPath(id): UrlPath<String>,
) -> Reply {
    set_pin(&api, &headers, &peer, &id, false).await
}

/// The API's routes, to merge into `serve`'s router. `serve` checks
/// `api_tokens_file` before listening; a router built another way with a
/// bad file serves no API rather than an open one.
pub fn routes<S: Clone + Send + Sync + 'static>(cfg: ReporterConfig) -> Router<S> {
    let tokens = cfg.api_tokens().unwrap_or_else(|e| {
        tracing::warn!("catalog API off: {e}");
        None
    });
    if let Some(t) = &tokens {
        tracing::info!("catalog API on /api/backups ({} token(s))", t.len());
    }
    let api = Arc::new(Api {
        cfg,
        tokens,
        catalog: Mutex::new(None),
    });
    Router::new()
        .route("/api/backups", get(list))
        .route("/api/backups/{id}", get(one))
        .route("/api/backups/{id}/chain", get(chain))
        .route("/api/backups/{id}/pin", post(pin))
        .route("/api/backups/{id}/unpin", post(unpin))
        .with_state(api)
}
