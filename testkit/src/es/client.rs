//! The official Elasticsearch client pointed at a stand-in, and its raw
//! `send` (what the catalog and the indexer use) with the answer read as
//! status, JSON and headers: for tests that talk to the stand-in directly.
//! Behind the `es-client` feature, so only crates whose tests need it build
//! the client into testkit.

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::Transport;
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::Value;

use super::EsStandIn;

/// A client for `es`'s URL, no credentials.
pub fn client(es: &EsStandIn) -> Elasticsearch {
    Elasticsearch::new(Transport::single_node(&es.url()).unwrap())
}

/// Sends `method path` with `body`; an empty answer is `Null`, one that is
/// not JSON a string.
pub async fn raw(
    c: &Elasticsearch,
    method: Method,
    path: &str,
    body: Option<String>,
) -> (u16, Value, HeaderMap) {
    let resp = c
        .send(method, path, HeaderMap::new(), None::<&()>, body, None)
        .await
        .unwrap();
    let status = resp.status_code().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v, headers)
}
