//! The catalog as JSON: the one place a backup becomes the JSON object
//! `ubackup-client list --json` prints and the catalog API
//! (`ubackup-reporter serve`, `/api/backups`) answers, the way that object
//! is read back into a [`CatalogRecord`] (the `catalog_url` client,
//! [`crate::http`]), and the query string of `/api/backups` in both
//! directions.
//!
//! A row keeps the fields `list --json` always had (`id`, `time`, `kind`,
//! `path`, `status`, `copies`, …) and adds what is needed to rebuild the
//! record: `game_name`, `indexed_at`, `deleted_at` and `result` (the
//! node's result as the catalog stores it).

use serde_json::{json, Value};

use crate::chain::{basename, is_full, ChainError};
use crate::record::{BackupQuery, CatalogRecord, RecordMeta};
use crate::retention::Retention;
use crate::time::{parse_at, show};
use crate::CatalogError;

/// Most records one `/api/backups` request returns.
pub const MAX_LIMIT: usize = 1000;

/// `ok`, `failed` or `illegal`.
pub fn status(r: &CatalogRecord) -> &'static str {
    if r.result.illegal.is_some() {
        "illegal"
    } else if r.result.succeed == 1 {
        "ok"
    } else {
        "failed"
    }
}

/// Where the file is on its node, or `(not stored) NAME`, or `-`.
pub fn path(r: &CatalogRecord) -> String {
    match (&r.result.file_path, &r.result.filename) {
        (Some(d), Some(f)) => format!("{}/{}", d.trim_end_matches('/'), basename(f)),
        (None, Some(f)) => format!("(not stored) {f}"),
        _ => "-".into(),
    }
}

/// One backup as `list --json` prints it and `/api/backups` serves it.
pub fn row(r: &CatalogRecord) -> Value {
    json!({
        "id": r.id,
        "time": show(r.result.create_time),
        "create_time": r.result.create_time,
        "server_id": r.result.server_id,
        "type": r.result.back_type,
        "instance": r.result.instance,
        "kind": if is_full(r) { "full" } else { "incremental" },
        "full": if is_full(r) { None } else { Some(&r.result.last_all_filename) },
        "filename": r.result.filename,
        "size": r.result.size,
        "node": r.node(),
        "node_ip": r.result.back_server_ip,
        "path": path(r),
        "status": status(r),
        "log": r.result.log,
        "illegal": r.result.illegal,
        "checksum": r.result.checksum,
        "verify": r.result.verify,
        "verify_state": r.meta.verify_state,
        "verified_at": r.meta.verified_at,
        "pinned": r.meta.pinned,
        "copies": r.copies(),
        "game_name": r.game_name,
        "indexed_at": r.meta.indexed_at,
        "deleted_at": r.meta.deleted_at,
        "result": r.result,
    })
}

/// Rows as the pretty JSON array `list --json` prints (with a newline).
pub fn rows_text(recs: &[CatalogRecord]) -> String {
    let rows: Vec<Value> = recs.iter().map(row).collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
}

/// Reads a [`row`] back. Every copy it lists becomes a copy record, the
/// first one included: [`CatalogRecord::copies`] gives the same list.
pub fn record_from_row(v: &Value) -> Result<CatalogRecord, String> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or("a backup without an `id`")?;
    let result = serde_json::from_value(v.get("result").cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("backup {id}: `result` is not a backup result: {e}"))?;
    let int = |k: &str| v.get(k).and_then(Value::as_i64);
    let copies = serde_json::from_value(v.get("copies").cloned().unwrap_or(json!([])))
        .map_err(|e| format!("backup {id}: `copies`: {e}"))?;
    Ok(CatalogRecord {
        id: id.to_string(),
        game_name: v
            .get("game_name")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string(),
        result,
        meta: RecordMeta {
            indexed_at: int("indexed_at"),
            deleted_at: int("deleted_at"),
            pinned: v.get("pinned").and_then(Value::as_bool).unwrap_or(false),
            verified_at: int("verified_at"),
            verify_state: v
                .get("verify_state")
                .and_then(Value::as_str)
                .map(str::to_string),
            copies,
        },
    })
}

/// The query string of `/api/backups` for `q`: `server_id`, `type`,
/// `instance`, `at` (unix ms), `since` (unix ms), `all=1` (failed and
/// illegal too) or `failed=1` (only those), `deleted=1`, `node`,
/// `limit`, `offset`.
pub fn query_pairs(q: &BackupQuery) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    put("server_id", q.server_id.map(|v| v.to_string()));
    put("type", q.back_type.clone());
    put("instance", q.instance.map(|v| v.to_string()));
    put("at", q.until_ms.map(|v| format!("{v:013}")));
    put("since", q.since_ms.map(|v| v.to_string()));
    put("node", q.node.clone());
    match q.succeeded {
        None => put("all", Some("1".into())),
        Some(false) => put("failed", Some("1".into())),
        Some(true) => {}
    }
    put("deleted", q.include_deleted.then(|| "1".into()));
    put(
        "limit",
        Some(q.effective_limit().min(MAX_LIMIT).to_string()),
    );
    put("offset", (q.offset > 0).then(|| q.offset.to_string()));
    out
}

/// The query of `/api/backups?…` ([`query_pairs`], read strictly):
/// without `all`/`failed`, only successful backups, as `list` without
/// `--all`. `at` takes every form `--at` does. The error names the
/// parameter and what is valid.
pub fn parse_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BackupQuery, String> {
    fn int<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
        v.trim()
            .parse()
            .map_err(|_| format!("`{k}={v}`: expected a whole number"))
    }
    fn flag(k: &str, v: &str) -> Result<bool, String> {
        match v {
            "" | "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(format!("`{k}={v}`: expected 1 or 0")),
        }
    }
    let mut q = BackupQuery {
        succeeded: Some(true),
        ..Default::default()
    };
    let (mut all, mut failed) = (false, false);
    for (k, v) in pairs {
        match k {
            "server_id" => q.server_id = Some(int(k, v)?),
            "type" => q.back_type = Some(v.to_string()).filter(|s| !s.is_empty()),
            "instance" => q.instance = Some(int(k, v)?),
            "at" => q.until_ms = Some(parse_at(v).map_err(|e| format!("`at`: {e}"))?),
            "since" => q.since_ms = Some(int(k, v)?),
            "node" => q.node = Some(v.to_string()).filter(|s| !s.is_empty()),
            "all" => all = flag(k, v)?,
            "failed" => failed = flag(k, v)?,
            "deleted" => q.include_deleted = flag(k, v)?,
            "limit" => q.limit = int(k, v)?,
            "offset" => q.offset = int(k, v)?,
            _ => return Err(format!(
                "unknown parameter `{k}`; expected server_id, type, instance, at, since, node, all, failed, deleted, limit, offset"
            )),
        }
    }
    q.succeeded = match (all, failed) {
        (_, true) => Some(false),
        (true, false) => None,
        (false, false) => Some(true),
    };
    if q.limit > MAX_LIMIT {
        return Err(format!("`limit={}`: at most {MAX_LIMIT}", q.limit));
    }
    Ok(q)
}

/// Why [`chain_of`] found no chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainLookupError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// The records restoring `target` needs, full first (restore pulls these;
/// `/api/backups/{id}/chain` shows them): the usable backups of its
/// instance up to it, resolved by [`crate::chain::resolve`].
pub async fn chain_of(
    cat: &dyn Retention,
    target: &CatalogRecord,
) -> Result<Vec<CatalogRecord>, ChainLookupError> {
    if is_full(target) {
        return Ok(vec![target.clone()]);
    }
    let q = BackupQuery {
        until_ms: Some(target.result.create_time),
        succeeded: Some(true),
        ..BackupQuery::for_instance(&target.key())
    };
    let candidates: Vec<CatalogRecord> = cat
        .scan_backups(&q)
        .await?
        .into_iter()
        .filter(|r| r.is_success())
        .collect();
    Ok(crate::chain::resolve(target, &candidates)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_survives_the_query_string() {
        let q = BackupQuery {
            server_id: Some(7),
            back_type: Some("mysql".into()),
            instance: Some(3306),
            until_ms: Some(1_763_800_000_123),
            since_ms: Some(5),
            succeeded: Some(false),
            include_deleted: true,
            limit: 1000,
            offset: 2000,
            ..Default::default()
        };
        let pairs = query_pairs(&q);
        let back = parse_query(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, q);
        let all = parse_query([("all", "1")]).unwrap();
        assert_eq!(all.succeeded, None);
        assert_eq!(parse_query([]).unwrap().succeeded, Some(true));
        assert!(parse_query([("limit", "5000")])
            .unwrap_err()
            .contains("limit"));
        assert!(parse_query([("bogus", "1")]).unwrap_err().contains("bogus"));
        assert!(parse_query([("instance", "x")])
            .unwrap_err()
            .contains("instance=x"));
    }
}
