//! `_bulk` requests and the sorting of their answers.
//!
//! ES answers a bulk request per item: the HTTP status of the request says
//! nothing about the documents. Each item is stored (2xx), worth retrying
//! (429 = back-pressure, 5xx = a shard's trouble) or refused for good (any
//! other 4xx: mapping conflict, malformed value…). These small functions
//! hold that logic so that it can be tested against canned responses.

use serde_json::{json, Value};

use crate::record::{CatalogRecord, StoreOutcome};

/// NDJSON lines (without the newlines, which the client adds) that store
/// each record under its deterministic id in the request's index.
///
/// An `update` with `doc_as_upsert`, not an `index`: a replayed result (the
/// indexer stopped between storing a batch and acknowledging it) must not
/// replace the whole document and so clear what the catalog wrote into it
/// meanwhile: `pinned` (prune would then delete a pinned backup),
/// `deleted_at`, `verified_at`, `verify_state`. An unchanged replay is a
/// `noop` (status 200); a new record is created (201).
pub fn index_lines(records: &[&CatalogRecord]) -> Vec<String> {
    let mut lines = Vec::with_capacity(records.len() * 2);
    for r in records {
        lines.push(json!({"update": {"_id": r.id}}).to_string());
        lines.push(format!(
            "{{\"doc\":{},\"doc_as_upsert\":true}}",
            r.es_document_json()
        ));
    }
    lines
}

/// What the status of a whole request means for its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// 2xx: read the items.
    Items,
    /// Try the same request again later (429, 5xx, 401/403 = credentials
    /// being fixed, 408/404 = proxy or node trouble).
    Unavailable,
    /// 413: the body is too large; split the batch.
    TooLarge,
    /// Any other 4xx: the request itself is refused.
    Rejected,
}

pub fn request_verdict(status: u16) -> RequestVerdict {
    match status {
        200..=299 => RequestVerdict::Items,
        413 => RequestVerdict::TooLarge,
        401 | 403 | 404 | 408 | 429 => RequestVerdict::Unavailable,
        400..=499 => RequestVerdict::Rejected,
        _ => RequestVerdict::Unavailable,
    }
}

/// `type: reason (caused by type: reason)` of an ES error object, or the
/// raw text if it is not one.
pub fn error_text(err: &Value) -> String {
    let one = |e: &Value| -> Option<String> {
        let ty = e.get("type")?.as_str()?;
        let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
        Some(format!("{ty}: {reason}"))
    };
    match one(err) {
        Some(mut s) => {
            let mut cause = err.get("caused_by");
            while let Some(c) = cause {
                if let Some(t) = one(c) {
                    s.push_str(&format!(" (caused by {t})"));
                }
                cause = c.get("caused_by");
            }
            s
        }
        None => err.to_string(),
    }
}

/// The error text of a failed whole request (`{"error": {...}, "status": N}`
/// or anything else a proxy may send).
pub fn request_error_text(status: u16, body: &str) -> String {
    let detail = match serde_json::from_str::<Value>(body) {
        Ok(v) => match v.get("error") {
            Some(e) if e.is_object() => error_text(e),
            Some(Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        Err(_) => body.chars().take(300).collect(),
    };
    format!("HTTP {status}: {detail}")
}

/// The outcome of one bulk response item (`{"index": {...}}`).
pub fn item_outcome(item: &Value) -> StoreOutcome {
    let Some(op) = item.as_object().and_then(|o| o.values().next()) else {
        return StoreOutcome::Retry(format!("unreadable bulk item {item}"));
    };
    let status = op.get("status").and_then(Value::as_u64).unwrap_or(0);
    let why = || match op.get("error") {
        Some(e) => format!("status {status}: {}", error_text(e)),
        None => format!("status {status}"),
    };
    match status {
        200..=299 => StoreOutcome::Stored,
        429 => StoreOutcome::Retry(why()),
        400..=499 => StoreOutcome::Rejected(why()),
        _ => StoreOutcome::Retry(why()),
    }
}

/// The outcomes of a 2xx bulk response with `expected` items, in order.
/// A response that does not have one item per request is unusable; the
/// caller retries the whole batch (index ops with ids are idempotent).
pub fn outcomes(body: &Value, expected: usize) -> Result<Vec<StoreOutcome>, String> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| "bulk response has no items".to_string())?;
    if items.len() != expected {
        return Err(format!(
            "bulk response has {} items for {expected} requests",
            items.len()
        ));
    }
    let out: Vec<StoreOutcome> = items.iter().map(item_outcome).collect();
    // `errors: false` with a failed item (or the reverse) would mean we read
    // the response wrong: do not trust it.
    if let Some(errors) = body.get("errors").and_then(Value::as_bool) {
        let any_failed = out.iter().any(|o| *o != StoreOutcome::Stored);
        if errors != any_failed {
            return Err(format!(
                "bulk response says errors={errors} but its items disagree"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response shaped like ES 8.x's for four index ops: created, updated,
    /// 429 back-pressure, 400 mapping failure.
    const MIXED: &str = r#"{"took":7,"errors":true,"items":[
      {"index":{"_index":"uuzubackup","_id":"a","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
      {"index":{"_index":"uuzubackup","_id":"b","_version":2,"result":"updated","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":200}},
      {"index":{"_index":"uuzubackup","_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
      {"index":{"_index":"uuzubackup","_id":"d","status":400,"error":{"type":"document_parsing_exception","reason":"[1:40] failed to parse field [game_server_ip] of type [ip] in document with id 'd'. Preview of field's value: 'x'","caused_by":{"type":"illegal_argument_exception","reason":"'x' is not an IP string literal."}}}},
      {"index":{"_index":"uuzubackup","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
    ]}"#;

    #[test]
    fn items_are_sorted_into_stored_retry_rejected() {
        let body: Value = serde_json::from_str(MIXED).unwrap();
        let out = outcomes(&body, 5).unwrap();
        assert_eq!(out[0], StoreOutcome::Stored);
        assert_eq!(out[1], StoreOutcome::Stored);
        assert!(
            matches!(&out[2], StoreOutcome::Retry(r) if r.contains("es_rejected_execution_exception"))
        );
        match &out[3] {
            StoreOutcome::Rejected(r) => {
                assert!(
                    r.starts_with("status 400: document_parsing_exception"),
                    "{r}"
                );
                assert!(
                    r.contains(
                        "caused by illegal_argument_exception: 'x' is not an IP string literal."
                    ),
                    "{r}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[4], StoreOutcome::Retry(_)));
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_not_trusted() {
        let body: Value = serde_json::from_str(MIXED).unwrap();
        assert!(outcomes(&body, 4).unwrap_err().contains("5 items for 4"));
        let lying = json!({"errors": false, "items": [{"index": {"status": 429}}]});
        assert!(outcomes(&lying, 1).is_err());
    }

    #[test]
    fn whole_request_statuses() {
        assert_eq!(request_verdict(200), RequestVerdict::Items);
        assert_eq!(request_verdict(503), RequestVerdict::Unavailable);
        assert_eq!(request_verdict(429), RequestVerdict::Unavailable);
        assert_eq!(request_verdict(401), RequestVerdict::Unavailable);
        assert_eq!(request_verdict(413), RequestVerdict::TooLarge);
        assert_eq!(request_verdict(400), RequestVerdict::Rejected);
        let t = request_error_text(
            400,
            r#"{"error":{"root_cause":[],"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}"#,
        );
        assert_eq!(t, "HTTP 400: illegal_argument_exception: The bulk request must be terminated by a newline [\\n]");
        assert_eq!(
            request_error_text(502, "<html>bad gateway</html>"),
            "HTTP 502: <html>bad gateway</html>"
        );
    }
}
