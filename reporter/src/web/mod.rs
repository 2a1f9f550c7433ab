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
//!   [`login`]: its form and cookie; [`viewer`]: who a page is rendered for;
//! * [`state`]: what the handlers share; [`error`]: a page that cannot be
//!   shown, as an HTML error page;
//! * [`html`]: the page frame, style, escaping rules and small formatters;
//!   [`svg`]: the charts; [`query`]: strict query-string and form parsing.
//!
//! Every value shown goes through maud's escaping (`(expr)`); the only
//! unescaped text is the static style sheet. This module is only the
//! router: the pages import [`state`] and [`error`], never it.

pub mod alerts;
pub mod auth;
pub mod control;
pub mod dead;
pub mod error;
pub mod html;
pub mod instance;
pub mod login;
pub mod overview;
pub mod query;
pub mod state;
pub mod stats;
pub mod svg;
pub mod viewer;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::shared::App;

use auth::Auth;
use error::WebError;
use state::Web;

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
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
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
