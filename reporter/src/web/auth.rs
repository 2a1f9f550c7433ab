//! Who may change things: the holder of `serve_token`.
//!
//! * Scripts send `Authorization: Bearer <token>` with each write.
//! * Browsers log in once (`/login`, the token in a form) and get an
//!   HttpOnly, SameSite=Strict cookie. The cookie is not the token but a
//!   keyed hash of it under a secret drawn at start, so it is worthless
//!   after a restart and never reveals the token. Every write form also
//!   carries a second keyed hash (`csrf`), checked with the cookie.
//!
//! Without a configured token the pages are read-only. A write without
//! credentials is 401; with a wrong token (or a stale form) 403; in both
//! cases nothing is changed.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::error::WebError;
use super::viewer::{Access, Viewer};

/// The session cookie's name.
pub const COOKIE: &str = "ubackup_session";

/// The configured token and this process's secret.
pub struct Auth {
    token: Option<String>,
    /// blake3 of the token: compared as a `blake3::Hash`, whose `==` is
    /// constant-time.
    token_hash: Option<blake3::Hash>,
    secret: [u8; 32],
}

/// A write action's author, for the log line.
#[derive(Debug, Clone)]
pub struct Operator {
    pub via: &'static str,
    pub peer: String,
}

impl Auth {
    pub fn new(token: Option<String>) -> Self {
        Auth {
            token_hash: token.as_deref().map(|t| blake3::hash(t.as_bytes())),
            token,
            secret: random_secret(),
        }
    }

    /// True when a token is configured (write actions exist).
    pub fn configured(&self) -> bool {
        self.token.is_some()
    }

    fn mac(&self, purpose: &str) -> Option<String> {
        let t = self.token.as_deref()?;
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(purpose.as_bytes())
            .update(b"\0")
            .update(t.as_bytes());
        Some(h.finalize().to_hex().to_string())
    }

    pub(crate) fn token_matches(&self, presented: &str) -> bool {
        self.token_hash
            .is_some_and(|want| blake3::hash(presented.as_bytes()) == want)
    }

    /// The cookie value of a logged-in browser.
    pub(crate) fn session_value(&self) -> Option<String> {
        self.mac("session")
    }

    fn cookie_matches(&self, presented: &str) -> bool {
        // compare as hashes, in constant time
        self.session_value()
            .is_some_and(|want| blake3::hash(presented.as_bytes()) == blake3::hash(want.as_bytes()))
    }

    fn csrf_matches(&self, presented: &str) -> bool {
        self.mac("csrf")
            .is_some_and(|want| blake3::hash(presented.as_bytes()) == blake3::hash(want.as_bytes()))
    }

    /// Who is looking (for rendering; never a reason to refuse a read).
    pub fn viewer(&self, headers: &HeaderMap) -> Viewer {
        if self.token.is_none() {
            return Viewer {
                access: Access::ReadOnly,
                csrf: None,
                via: None,
            };
        }
        if let Some(t) = bearer(headers) {
            if self.token_matches(t) {
                return Viewer {
                    access: Access::Operator,
                    csrf: None,
                    via: Some("bearer"),
                };
            }
        }
        if cookie(headers, COOKIE).is_some_and(|c| self.cookie_matches(c)) {
            return Viewer {
                access: Access::Operator,
                csrf: self.mac("csrf"),
                via: Some("cookie"),
            };
        }
        Viewer {
            access: Access::LoggedOut,
            csrf: None,
            via: None,
        }
    }

    /// Checks a write request; `form_csrf` is the form's `csrf` field.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        form_csrf: Option<&str>,
        peer: &Peer,
    ) -> Result<Operator, WebError> {
        let refuse = |status: StatusCode, title: &'static str, detail: String| {
            tracing::warn!(peer = %peer.0, "web: write refused: {detail}");
            Err(WebError {
                status,
                title,
                detail,
            })
        };
        if self.token.is_none() {
            return refuse(
                StatusCode::FORBIDDEN,
                "Read-only",
                "these pages are read-only: set serve_token in the config ([reporter] section) to enable write actions".into(),
            );
        }
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            return match v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
                Some(t) if self.token_matches(t.trim()) => Ok(Operator {
                    via: "bearer token",
                    peer: peer.0.clone(),
                }),
                Some(_) => refuse(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "the bearer token is wrong; nothing was changed".into(),
                ),
                None => refuse(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "the Authorization header must be `Bearer <serve_token>`; nothing was changed"
                        .into(),
                ),
            };
        }
        match cookie(headers, COOKIE) {
            Some(c) if self.cookie_matches(c) => {
                if form_csrf.is_some_and(|f| self.csrf_matches(f)) {
                    Ok(Operator {
                        via: "login session",
                        peer: peer.0.clone(),
                    })
                } else {
                    refuse(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        "the form's csrf field is missing or stale (reload the page and try again); nothing was changed".into(),
                    )
                }
            }
            Some(_) => refuse(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the login session has expired (the reporter restarted): log in again at /login; nothing was changed".into(),
            ),
            None => refuse(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "write actions need the serve_token: log in at /login, or send `Authorization: Bearer <token>`; nothing was changed".into(),
            ),
        }
    }
}

/// The client's address, for the log lines of write actions.
#[derive(Debug, Clone)]
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of cookie `name`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random_secret() -> [u8; 32] {
    let mut key = [0u8; 32];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
    {
        Ok(()) => key,
        Err(e) => {
            // still unguessable enough from outside: time, pid and an address
            tracing::warn!(
                "cannot read /dev/urandom ({e}); session keys derived from time and pid"
            );
            let seed = format!(
                "{:?}{}{:p}",
                std::time::SystemTime::now(),
                std::process::id(),
                &key
            );
            *blake3::hash(seed.as_bytes()).as_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_and_tokens() {
        let a = Auth::new(Some("0123456789abcdef0123".into()));
        assert!(a.token_matches("0123456789abcdef0123"));
        assert!(!a.token_matches("0123456789abcdef012"));
        let s = a.session_value().unwrap();
        assert!(
            !s.contains("0123456789abcdef0123"),
            "the cookie is not the token"
        );
        // another process (another secret) does not accept this cookie
        let b = Auth::new(Some("0123456789abcdef0123".into()));
        assert!(a.cookie_matches(&s) && !b.cookie_matches(&s));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={s}")).unwrap(),
        );
        assert_eq!(a.viewer(&h).access, Access::Operator);
        assert_eq!(b.viewer(&h).access, Access::LoggedOut);
        assert_eq!(Auth::new(None).viewer(&h).access, Access::ReadOnly);
    }
}
