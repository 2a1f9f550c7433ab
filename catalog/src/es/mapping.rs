//! The Elasticsearch mappings, in ES 7/8 syntax.
//!
//! The original's fields keep the types of CONTEXT.md (so existing Kibana
//! queries keep working); the new result fields and the catalog's own
//! fields are added next to them. `dynamic` stays at its default (`true`):
//! a newer node that sends a field this build does not know must not get its
//! results rejected.

use serde_json::{json, Value};

/// Keyword values longer than this are kept in `_source` but not indexed;
/// without it a long rsync error text (> 32766 bytes) would be rejected as
/// an "immense term" and its result dead-lettered.
pub const LOG_IGNORE_ABOVE: u32 = 8191;

fn epoch_millis() -> Value {
    json!({"type": "date", "format": "epoch_millis"})
}

/// `properties` of the backups index.
pub fn backup_properties() -> Value {
    json!({
        // the original document (CONTEXT.md)
        "server_id": {"type": "keyword"},
        "game_id": {"type": "integer"},
        "op_id": {"type": "integer"},
        "instance": {"type": "integer"},
        "succeed": {"type": "integer"},
        "game_server_ip": {"type": "ip"},
        "back_server_ip": {"type": "ip"},
        "file_path": {"type": "keyword"},
        "filename": {"type": "keyword"},
        "last_all_filename": {"type": "keyword"},
        "type": {"type": "keyword"},
        "log": {"type": "keyword", "ignore_above": LOG_IGNORE_ABOVE},
        "game_name": {"type": "keyword"},
        "create_time": epoch_millis(),
        "rsync_time": epoch_millis(),
        "last_all_time": epoch_millis(),
        "size": {"type": "long"},
        // new result fields
        "interval": {"type": "integer"},
        "node_id": {"type": "keyword"},
        "duration_ms": {"type": "long"},
        "attempts": {"type": "integer"},
        "bytes_per_sec": {"type": "long"},
        "verify": {"type": "keyword"},
        "checksum": {"type": "keyword"},
        "illegal": {"type": "keyword", "ignore_above": LOG_IGNORE_ABOVE},
        "run_id": {"type": "keyword"},
        // stored encrypted at rest (`encrypt_to`): the ciphertext's figures
        "encryption": {"properties": {
            "format": {"type": "keyword"},
            "recipients": {"type": "keyword"},
            "size": {"type": "long"},
            "checksum": {"type": "keyword"}
        }},
        // catalog-owned fields
        "indexed_at": epoch_millis(),
        "deleted_at": epoch_millis(),
        "pinned": {"type": "boolean"},
        "verified_at": epoch_millis(),
        "verify_state": {"type": "keyword"}
    })
}

/// The `mappings` object of the backups index.
pub fn backup_mappings() -> Value {
    json!({ "properties": backup_properties() })
}

/// A composable index template (`PUT _index_template/<name>`) that gives
/// `pattern` the mapping when the index is (re-)created, e.g. after a
/// delete or by a bulk request. `priority` is non-zero so that it does not
/// collide with a catch-all template of priority 0.
fn template(pattern: &str, mappings: Value, description: &str) -> Value {
    json!({
        "index_patterns": [pattern],
        "priority": 100,
        "template": { "mappings": mappings },
        "_meta": { "managed_by": "ubackup-indexer", "description": description }
    })
}

/// The template of the backups index.
pub fn backup_template(index: &str) -> Value {
    template(index, backup_mappings(), "ubackup backup results")
}

/// The template of the registry index.
pub fn instance_template(index: &str) -> Value {
    template(
        &instances_index(index),
        instance_mappings(),
        "ubackup instance registry",
    )
}

/// `mappings` of the instance registry index (`<index>-instances`).
pub fn instance_mappings() -> Value {
    json!({
        "properties": {
            "key": {"type": "keyword"},
            "server_id": {"type": "keyword"},
            "type": {"type": "keyword"},
            "instance": {"type": "integer"},
            "game_id": {"type": "integer"},
            "game_name": {"type": "keyword"},
            "interval": {"type": "integer"},
            "first_seen_ms": epoch_millis(),
            "last_attempt_ms": epoch_millis(),
            "last_success_ms": epoch_millis(),
            "last_error": {"type": "keyword", "ignore_above": LOG_IGNORE_ABOVE},
            "last_error_ms": epoch_millis(),
            "last_node": {"type": "keyword"}
        }
    })
}

/// Name of the registry index that goes with `index`.
pub fn instances_index(index: &str) -> String {
    format!("{index}-instances")
}

/// Name of the template that goes with index `index` (also used for the
/// registry index: `ubackup-<index>-instances`).
pub fn template_name(index: &str) -> String {
    format!("ubackup-{index}")
}

/// Name of the samples index that goes with `index`.
pub fn samples_index(index: &str) -> String {
    format!("{index}-samples")
}

/// `mappings` of `<index>-samples`.
pub fn samples_mappings() -> Value {
    let date = json!({"type": "date", "format": "epoch_millis"});
    json!({
        "properties": {
            "sample": {"type": "keyword"},
            "time_ms": date,
            "node": {"type": "keyword"},
            "ip": {"type": "keyword"},
            "path": {"type": "keyword"},
            "total": {"type": "long"},
            "used": {"type": "long"},
            "free": {"type": "long"},
            "mem_total": {"type": "long"},
            "mem_used": {"type": "long"},
            "load1": {"type": "double"},
            "cpus": {"type": "integer"},
            "list": {"type": "keyword"},
            "kind": {"type": "keyword"},
            "queue": {"type": "keyword"},
            "worker": {"type": "keyword"},
            "depth": {"type": "long"},
            "oldest_age_ms": {"type": "long"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a mapping and collects every `type` and every `index` value.
    fn walk(v: &Value, types: &mut Vec<String>, bad: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, x) in m {
                if k == "type" {
                    if let Some(t) = x.as_str() {
                        types.push(t.to_string());
                    }
                }
                if k == "index" && !x.is_boolean() {
                    bad.push(format!("index: {x}"));
                }
                walk(x, types, bad);
            }
        }
    }

    #[test]
    fn mappings_use_only_es8_types() {
        for m in [backup_mappings(), instance_mappings()] {
            let (mut types, mut bad) = (Vec::new(), Vec::new());
            walk(&m, &mut types, &mut bad);
            assert!(bad.is_empty(), "{bad:?}");
            for t in types {
                assert!(
                    ["keyword", "ip", "date", "long", "integer", "boolean"].contains(&t.as_str()),
                    "type {t}"
                );
            }
        }
        let p = backup_properties();
        assert_eq!(
            p["create_time"],
            json!({"type": "date", "format": "epoch_millis"})
        );
        assert_eq!(p["game_server_ip"]["type"], "ip");
        assert_eq!(p["size"]["type"], "long");
        assert_eq!(p["server_id"]["type"], "keyword");
    }
}
