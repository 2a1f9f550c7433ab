//! `serve --listen ADDR`: `/api/alerts` (and the original's `/api/alert`),
//! `/api/status`, `/metrics`, the catalog API of [`crate::api`] (with
//! `api_tokens_file`), and the HTML pages of [`crate::web`]. Each
//! request reads a fresh snapshot; Redis and the catalog are (re)connected
//! on demand, so the endpoint starts and answers (503 / `ubackup_redis_up
//! 0`) while Redis is down.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Mutex;
use ubackup_common::shutdown::Shutdown;

use crate::config::ReporterConfig;
use crate::error::ReporterError;
use crate::metrics;
use crate::shared::App;
use crate::status::ClusterStatus;

fn unavailable(e: &ReporterError) -> Response {
    tracing::warn!("request failed: {e}");
    let body = json!({"status": "unknown", "errors": [e.to_string()]});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn api_alerts(State(app): State<Arc<App>>) -> Response {
    match app.read().await {
        Ok((_, report)) => Json(report).into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn api_status(State(app): State<Arc<App>>) -> Response {
    match app.read().await {
        Ok((snap, report)) => Json(ClusterStatus::build(&snap, &report)).into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn prometheus(State(app): State<Arc<App>>) -> Response {
    let body = match app.read().await {
        Ok((snap, report)) => metrics::render(&snap, &report),
        Err(e) => {
            tracing::warn!("scrape without Redis: {e}");
            metrics::render_down()
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub fn router(cfg: ReporterConfig) -> Router {
    let app = Arc::new(App {
        cfg,
        sources: Mutex::new(None),
    });
    let api = Router::new()
        .route("/api/alerts", get(api_alerts))
        .route("/api/alert", get(api_alerts))
        .route("/api/status", get(api_status))
        .route("/metrics", get(prometheus))
        // a browser extension polls this from another origin (the HTML
        // pages do not get this header: they carry the write-action forms)
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                r
            },
        ));
    api.merge(crate::api::routes(app.cfg.clone()))
        .merge(crate::web::routes(app.clone()))
        .with_state(app)
}

/// Serves until `shutdown`: HTTPS with `serve_tls_cert`/`serve_tls_key`,
/// else plain HTTP.
pub async fn serve(
    cfg: ReporterConfig,
    listener: tokio::net::TcpListener,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let tls = cfg
        .serve_tls()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %listener.local_addr()?, "serving {scheme}: /api/alerts, /api/status, /metrics, the catalog API and the web pages at /");
    // the peer address goes into the log line of every write action
    let app = router(cfg).into_make_service_with_connect_info::<SocketAddr>();
    let stop = async move { shutdown.wait().await };
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(acceptor) => {
            // tap_io: axum gives the peer address to listeners it wraps so
            let tls = crate::tls::TlsListener::new(listener, acceptor)?.tap_io(|_| {});
            axum::serve(tls, app).with_graceful_shutdown(stop).await
        }
    }
}
