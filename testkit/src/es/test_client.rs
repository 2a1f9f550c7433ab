//! Clients for the stand-in's own tests: the official Elasticsearch client's
//! raw `send` (from [`super::client`], shared with other crates' tests), and
//! a bare HTTP/1.1 exchange for what no client sends (odd paths, methods and
//! headers).

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use super::EsStandIn;

pub(crate) use super::client::{client, raw};

pub(super) fn json_body(v: Value) -> Option<String> {
    Some(v.to_string())
}

/// One answer to [`exchange`].
pub(super) struct Answer {
    pub(super) status: u16,
    /// Lower-case names, in the order sent.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `method target` with `headers` and `body` (a Content-Length is
/// added when there is a body) on a fresh connection and reads the answer.
pub(super) fn exchange(
    es: &EsStandIn,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(es.addr()).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}
