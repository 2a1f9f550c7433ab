//! `/login` and `/logout`: the form that trades the `serve_token` for a
//! session cookie, and the way out.

use super::auth::{Peer, COOKIE};
use super::error::WebError;
use super::html::{frame, Nav};
use super::query::Params;
use super::state::WebState;
use super::viewer::{Access, Viewer};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

fn login_body(viewer: &Viewer, error: Option<&str>) -> Markup {
    html! {
        h1 { "Log in" }
        @if viewer.access == Access::ReadOnly {
            div.note { "These pages are read-only: no serve_token is configured. Set serve_token in the [reporter] section of the config and restart serve to enable the write actions." }
        } @else {
            @if let Some(e) = error {
                div.err { (e) }
            }
            @if viewer.is_operator() {
                p { "You are logged in. " a href="/control" { "Cluster control" } }
            }
            form.card method="post" action="/login" {
                p { "The token is the config's " code { "serve_token" } ". Logging in enables the write actions of " a href="/control" { "Cluster control" } "." }
                label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                " "
                button.act type="submit" { "Log in" }
            }
        }
    }
}

pub(crate) async fn login_form(
    State(web): State<WebState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    Params::parse(q.as_deref(), &[])?;
    let viewer = web.auth.viewer(&headers);
    Ok(frame("Log in", Nav::None, &viewer, login_body(&viewer, None)).into_response())
}

pub(crate) async fn login(
    State(web): State<WebState>,
    headers: HeaderMap,
    peer: Peer,
    body: Bytes,
) -> Result<Response, WebError> {
    let p = Params::form(&body, &["token"])?;
    let viewer = web.auth.viewer(&headers);
    if viewer.access == Access::ReadOnly {
        return Ok((
            StatusCode::FORBIDDEN,
            frame("Log in", Nav::None, &viewer, login_body(&viewer, None)),
        )
            .into_response());
    }
    let presented = p.text("token").unwrap_or("");
    if !web.auth.token_matches(presented) {
        tracing::warn!(peer = %peer.0, "web: failed login (wrong token)");
        return Ok((
            StatusCode::FORBIDDEN,
            frame(
                "Log in",
                Nav::None,
                &viewer,
                login_body(&viewer, Some("Wrong token.")),
            ),
        )
            .into_response());
    }
    tracing::info!(peer = %peer.0, "web: operator logged in");
    let session = web.auth.session_value().expect("token configured");
    // 12 h, and void anyway when serve restarts (a new secret)
    let cookie = format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/control")]).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex cookie"),
    );
    Ok(r)
}

pub(crate) async fn logout(peer: Peer) -> Response {
    tracing::info!(peer = %peer.0, "web: logged out");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ubackup_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}
