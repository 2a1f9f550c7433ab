//! The HTTP side every endpoint shares: the request as endpoints read it
//! ([`Call`]), the checks made before any path is looked at (injected
//! whole-request faults, credentials, Content-Type), the request log, and
//! the JSON reply. Query strings, JSON bodies and unknown parameters are
//! read here, the way ES reads them, never by axum's extractors.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::error::EsErr;
use super::state::{LoggedRequest, StandIn};

pub(super) type Shared = Arc<Mutex<StandIn>>;

/// `%XX` decoding; `plus_is_space` for query strings only.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b[i] == b'+' {
            b' '
        } else {
            b[i]
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
pub(super) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An endpoint's answer: a status, a JSON body, extra headers, and for the
/// log the number of bulk operations parsed.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
    pub(super) extra_headers: Vec<(&'static str, String)>,
    pub(super) bulk_items: usize,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
            extra_headers: Vec::new(),
            bulk_items: 0,
        }
    }
    pub(super) fn status(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            extra_headers: Vec::new(),
            bulk_items: 0,
        }
    }
    pub(super) fn err(e: EsErr) -> Reply {
        Reply::status(e.status, e.body())
    }
}

/// One request as an endpoint reads it.
pub(super) struct Call<'a> {
    pub(super) method: &'a str,
    /// The path as sent, without the query (ES quotes it in its messages).
    pub(super) path: &'a str,
    /// The path's non-empty segments, percent-decoded.
    segs: Vec<String>,
    pub(super) params: Vec<(String, String)>,
    pub(super) body: &'a [u8],
    /// When the request's turn came (bulk and search report `took`).
    pub(super) started: Instant,
}

impl Call<'_> {
    /// Segment `i` of the path; the route guarantees it is there.
    pub(super) fn seg(&self, i: usize) -> &str {
        self.segs.get(i).map(String::as_str).unwrap_or("")
    }

    /// Refuses query parameters outside `allowed` and [`COMMON_PARAMS`].
    pub(super) fn check_params(&self, allowed: &[&str]) -> Result<(), EsErr> {
        check_params(self.path, &self.params, allowed)
    }
}

/// ES's answer to a path and method it has no API for.
pub(super) fn no_handler(c: &Call) -> Reply {
    Reply::status(
        400,
        json!({"error": format!("no handler found for uri [{}] and method [{}]", c.path, c.method), "status": 400}),
    )
}

/// What an endpoint does with a request that passed the common checks.
pub(super) type Endpoint = fn(&mut StandIn, &Call) -> Result<Reply, EsErr>;

/// A path's non-empty segments, percent-decoded: ES reads `//a//b/` as
/// `/a/b`, and matches on decoded segments.
pub(super) fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|x| percent_decode(x, false))
        .collect()
}

/// Runs one request: the delay, then under the lock the whole-request
/// checks every path shares (injected faults, credentials, Content-Type),
/// the endpoint and the log entry. Every answer is JSON (HEAD: no body).
pub(super) async fn serve(
    shared: Shared,
    endpoint: Endpoint,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.lock().unwrap_or_else(|p| p.into_inner()).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let started = Instant::now();
    let path = uri.path();
    let reply = {
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        let r = match shared_checks(&mut st, path, &headers, &body) {
            Err(r) => r,
            Ok(()) => {
                let call = Call {
                    method: method.as_str(),
                    path,
                    segs: segments(path),
                    params: query_params(&uri),
                    body: &body,
                    started,
                };
                endpoint(&mut st, &call).unwrap_or_else(Reply::err)
            }
        };
        st.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: uri.query().unwrap_or("").to_string(),
            status: r.status,
            bulk_items: r.bulk_items,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        r
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match (&reply.body, method == Method::HEAD) {
        (Some(b), false) => (status, b.to_string()).into_response(),
        _ => status.into_response(),
    };
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in reply.extra_headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(k, v);
        }
    }
    resp
}

/// The checks ES makes before it looks at the path: an unreachable cluster
/// (an injected whole-request fault) answers nothing useful, then
/// credentials, then the Content-Type.
fn shared_checks(
    st: &mut StandIn,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Reply> {
    if let Some(status) = st.take_request_fault() {
        return Err(request_fault_reply(status));
    }
    if let Some(want) = &st.auth {
        let got = headers.get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            let reason = match got {
                None => format!("missing authentication credentials for REST request [{path}]"),
                Some(_) => format!("unable to authenticate user for REST request [{path}]"),
            };
            let mut r = Reply::err(
                EsErr::new(401, "security_exception", reason)
                    .with("header", json!({"WWW-Authenticate": ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]})),
            );
            r.extra_headers.push((
                "www-authenticate",
                "Basic realm=\"security\", charset=\"UTF-8\"".into(),
            ));
            r.extra_headers.push(("www-authenticate", "ApiKey".into()));
            return Err(r);
        }
    }
    check_content_type(headers, body)
}
/// Query parameters every endpoint accepts.
const COMMON_PARAMS: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "format",
    "source",
    "source_content_type",
];

fn check_params(path: &str, params: &[(String, String)], allowed: &[&str]) -> Result<(), EsErr> {
    let bad: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !COMMON_PARAMS.contains(k) && !allowed.contains(k))
        .collect();
    match bad.as_slice() {
        [] => Ok(()),
        [one] => Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!("request [{path}] contains unrecognized parameter: [{one}]"),
        )),
        many => Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!(
                "request [{path}] contains unrecognized parameters: [{}]",
                many.join("], [")
            ),
        )),
    }
}

fn check_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), Reply> {
    if body.is_empty() {
        return Ok(());
    }
    let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) else {
        return Err(Reply::status(
            406,
            json!({"error": "Content-Type header is missing", "status": 406}),
        ));
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = [
        "application/json",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    ]
    .contains(&media.as_str());
    if ok {
        Ok(())
    } else if ["application/yaml", "application/smile", "application/cbor"]
        .contains(&media.as_str())
    {
        Err(Reply::err(EsErr::new(
            400,
            "stand_in_unsupported_exception",
            format!("the stand-in only speaks JSON, not [{media}]"),
        )))
    } else {
        Err(Reply::status(
            406,
            json!({"error": format!("Content-Type header [{ct}] is not supported"), "status": 406}),
        ))
    }
}

pub(super) fn parse_json_body(body: &[u8]) -> Result<Option<Value>, EsErr> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        EsErr::new(
            400,
            "x_content_parse_exception",
            format!("[{}:{}] {}", e.line(), e.column(), e),
        )
    })
}

fn request_fault_reply(status: u16) -> Reply {
    let e = match status {
        503 => EsErr {
            status,
            ty: "master_not_discovered_exception".into(),
            reason: Value::Null,
            caused_by: None,
            extra: Map::new(),
        },
        429 => EsErr::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation (injected by the stand-in)",
        ),
        500 => EsErr::new(500, "exception", "injected internal error"),
        s => EsErr::new(
            s,
            "stand_in_injected_exception",
            format!("injected HTTP {s}"),
        ),
    };
    Reply::err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
