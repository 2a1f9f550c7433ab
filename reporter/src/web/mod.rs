//! The HTML pages `serve` adds at `/`: server-rendered, no script, no
//! front-end build step, nothing fetched from elsewhere (charts are inline
//! SVG, the style sheet is inline).
//!
//! Layout:
//! * [`overview`] (`/`): nodes, queues, the last 24 h: [`crate::ClusterStatus`],
//!   the same value `/api/status` serves;
//! * [`stats`] (`/stats`): backups per hour and bytes per day over 7 days,
//!   the largest and slowest backups, per business and type
//!   ([`ubackup_catalog::web_stats`]);
//! * [`alerts`] (`/alerts`): [`crate::AlertReport`] (as `/api/alerts`),
//!   grouped by kind, filterable by business;
//! * [`instance`] (`/instance/SERVER_ID/TYPE/INSTANCE`): the history of one
//!   instance with the `ubackup-client restore` command of each backup;
//! * [`control`] (`/control`): nodes' pause/resume and worker count, and
//!   the dead-letter lists; its write actions are in [`control`] too, the
//!   Redis side of dead letters in [`dead`];
//! * [`auth`]: `serve_token` (bearer header, or a login form and a cookie);
//! * [`html`]: the page frame, style, escaping rules and small formatters;
//!   [`svg`]: the charts; [`query`]: strict query-string and form parsing.
//!
//! Every value shown goes through maud's escaping (`(expr)`); the only
//! unescaped text is the static style sheet.

pub mod alerts;
pub mod auth;
pub mod control;
pub mod dead;
pub mod html;
pub mod instance;
pub mod overview;
pub mod query;
pub mod stats;
pub mod svg;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use redis::aio::ConnectionManager;
use ubackup_catalog::{Reports, SqliteCatalog};

use crate::serve::App;
use crate::snapshot::Sources;
use crate::ReporterError;

use auth::Auth;

/// What the page handlers share.
pub(crate) struct Web {
    pub(crate) app: Arc<App>,
    pub(crate) auth: Auth,
}

pub(crate) type WebState = Arc<Web>;

/// The pages and write actions, to be merged into `serve`'s router.
pub(crate) fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let token = app.cfg.serve_token().unwrap_or_else(|e| {
        // `run` checks the key before listening; a router built another
        // way falls back to read-only rather than to no protection
        tracing::warn!("web pages are read-only: {e}");
        None
    });
    if token.is_none() {
        tracing::info!("no serve_token: the web pages are read-only");
    }
    let web = Arc::new(Web {
        app,
        auth: Auth::new(token),
    });
    Router::new()
        .route("/", get(overview::page))
        .route("/stats", get(stats::page))
        .route("/alerts", get(alerts::page))
        .route(
            "/instance/{server_id}/{back_type}/{instance}",
            get(instance::page),
        )
        .route("/control", get(control::page))
        .route("/control/node/{node}/{action}", post(control::node_action))
        .route("/control/dead/{action}", post(control::dead_action))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .fallback(not_found)
        .layer(axum::middleware::map_response(html::security_headers))
        .with_state(web)
}

async fn not_found(uri: axum::http::Uri) -> WebError {
    WebError::not_found(format!(
        "there is no page at {}",
        query::percent_decode(uri.path())
    ))
}

/// A request that cannot be answered with its page: an HTML error page.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl WebError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            detail: detail.into(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
        }
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::CONFLICT,
            title: "Not possible",
            detail: detail.into(),
        }
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Unavailable",
            detail: detail.into(),
        }
    }
}

impl From<ReporterError> for WebError {
    fn from(e: ReporterError) -> Self {
        tracing::warn!("web page failed: {e}");
        WebError::unavailable(e.to_string())
    }
}

impl From<ubackup_catalog::CatalogError> for WebError {
    fn from(e: ubackup_catalog::CatalogError) -> Self {
        tracing::warn!("web page: catalog: {e}");
        WebError::unavailable(format!("catalog: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let body = html::error_page(self.status, self.title, &self.detail);
        let mut r = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"ubackup\""),
            );
        }
        r
    }
}

/// Handles cloned out of the shared [`Sources`], so a page does not hold
/// the lock while it queries.
#[derive(Clone)]
pub(crate) struct Handles {
    pub redis: ConnectionManager,
    /// The Redis holding `message_queue` (and its dead letters).
    pub message_redis: ConnectionManager,
    pub redis_target: String,
    pub store: Option<Arc<dyn Reports>>,
    pub sqlite: Option<SqliteCatalog>,
    pub store_error: Option<String>,
}

impl Handles {
    /// The store's name, or why there is none.
    pub fn store(&self) -> Result<&Arc<dyn Reports>, WebError> {
        self.store.as_ref().ok_or_else(|| {
            WebError::unavailable(format!(
                "no catalog: {}",
                self.store_error.as_deref().unwrap_or("none configured")
            ))
        })
    }
}

impl Web {
    /// Opens the sources if needed and clones what a page needs.
    pub(crate) async fn handles(&self) -> Result<Handles, WebError> {
        let mut guard = self.app.sources.lock().await;
        if guard.is_none() {
            *guard = Some(Sources::open(self.app.cfg.clone(), true).await?);
        }
        let s = guard.as_ref().expect("just set");
        Ok(Handles {
            redis: s.redis.clone(),
            message_redis: s.message_redis.clone().unwrap_or_else(|| s.redis.clone()),
            redis_target: s.redis_target.to_string(),
            store: s.query_store().cloned(),
            sqlite: s.sqlite.clone(),
            store_error: (!s.store_errors.is_empty()).then(|| s.store_errors.join("; ")),
        })
    }

    /// After a Redis error: reconnect on the next request.
    pub(crate) async fn reset(&self) {
        *self.app.sources.lock().await = None;
    }

    /// A Redis error as a 503 page (and a reconnect next time).
    pub(crate) async fn redis_error(&self, h: &Handles, e: redis::RedisError) -> WebError {
        self.reset().await;
        WebError::unavailable(format!("Redis {} unreachable: {e}", h.redis_target))
    }
}
