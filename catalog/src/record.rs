//! What a catalog holds, independent of the store.

use std::fmt;

use serde_json::Value;
use ubackup_common::message::NO_FULL;
use ubackup_common::ResultRecord;

use crate::copies::{state as copy_state, CopyRecord};

/// One backup result as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// [`ResultRecord::record_id`]: the SQLite primary key and the ES `_id`,
    /// so a replayed result overwrites instead of duplicating.
    pub id: String,
    /// From the indexer's `[business]` map; `unknown` when the id is not there.
    pub game_name: String,
    pub result: ResultRecord,
    /// Columns the catalog owns (set by later tools, never by a replay).
    pub meta: RecordMeta,
}

/// Catalog-owned state of a record. A replay of the same result never
/// changes these (SQLite keeps them on conflict; ES writes them only when set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// Unix ms the record was first stored.
    pub indexed_at: Option<i64>,
    /// Unix ms the file was pruned from the node.
    pub deleted_at: Option<i64>,
    /// Pinned records are never pruned.
    pub pinned: bool,
    /// Unix ms of the last re-verification of the stored file.
    pub verified_at: Option<i64>,
    /// Outcome of that verification (`ok`, `missing`, `checksum mismatch`…).
    pub verify_state: Option<String>,
    /// Copies on other nodes (see [`crate::copies`]), in node order. Only
    /// the replicating nodes write them; a result never carries any.
    pub copies: Vec<CopyRecord>,
}

/// What happened to one record of a [`crate::Catalog::store`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// A transient failure of this item (ES 429/5xx): send it again.
    Retry(String),
    /// The store will never take this item (ES 4xx, e.g. a mapping
    /// conflict): dead-letter it with this reason.
    Rejected(String),
}

impl CatalogRecord {
    pub fn new(result: ResultRecord, game_name: impl Into<String>) -> Self {
        CatalogRecord {
            id: result.record_id(),
            game_name: game_name.into(),
            result,
            meta: RecordMeta::default(),
        }
    }

    /// The node that stored the file: `node_id`, or the node's IP for
    /// results of original (Python) nodes.
    pub fn node(&self) -> &str {
        self.result
            .node_id
            .as_deref()
            .unwrap_or(&self.result.back_server_ip)
    }

    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            server_id: self.result.server_id,
            back_type: self.result.back_type.clone(),
            instance: self.result.instance,
        }
    }

    /// A usable backup: pulled and verified, not flagged illegal.
    pub fn is_success(&self) -> bool {
        self.result.succeed == 1 && self.result.illegal.is_none()
    }

    /// The Elasticsearch document as a `Value`, built field by field: the
    /// reference the tests hold [`Self::es_document_json`] (what is
    /// actually sent) against. The node's result (the original's fields
    /// with their JSON types, plus the new optional ones), plus
    /// `game_name`, plus the catalog's own fields when they are set.
    #[cfg(test)]
    pub fn es_document(&self) -> Value {
        let mut doc = match serde_json::to_value(&self.result) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        doc.insert("game_name".into(), Value::String(self.game_name.clone()));
        let m = &self.meta;
        if let Some(v) = m.indexed_at {
            doc.insert("indexed_at".into(), v.into());
        }
        if let Some(v) = m.deleted_at {
            doc.insert("deleted_at".into(), v.into());
        }
        if m.pinned {
            doc.insert("pinned".into(), true.into());
        }
        if let Some(v) = m.verified_at {
            doc.insert("verified_at".into(), v.into());
        }
        if let Some(v) = &m.verify_state {
            doc.insert("verify_state".into(), v.clone().into());
        }
        Value::Object(doc)
    }

    /// [`Self::es_document`] as JSON text, serialized straight from the
    /// record: the indexer renders one per result for `_bulk` and one for
    /// the overdue key, and building a `Value` map first was most of its
    /// CPU per result (allocations and key comparisons, by perf).
    pub fn es_document_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            result: &'a ResultRecord,
            game_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            indexed_at: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            deleted_at: Option<i64>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            pinned: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            verified_at: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            verify_state: Option<&'a str>,
        }
        let m = &self.meta;
        serde_json::to_string(&Doc {
            result: &self.result,
            game_name: &self.game_name,
            indexed_at: m.indexed_at,
            deleted_at: m.deleted_at,
            pinned: m.pinned,
            verified_at: m.verified_at,
            verify_state: m.verify_state.as_deref(),
        })
        .expect("a record serializes")
    }

    /// Reads a document back. Documents written by the original indexer
    /// have no `interval` (0 here) and may carry `null` for
    /// `last_all_filename` (read as `None`, the original's text).
    pub fn from_es_document(id: &str, source: &Value) -> Result<Self, String> {
        let mut src = source
            .as_object()
            .cloned()
            .ok_or_else(|| format!("document {id} is not an object"))?;
        src.entry("interval").or_insert(Value::from(0));
        if matches!(src.get("last_all_filename"), None | Some(Value::Null)) {
            src.insert("last_all_filename".into(), NO_FULL.into());
        }
        for k in ["log", "back_server_ip", "game_server_ip"] {
            if matches!(src.get(k), None | Some(Value::Null)) {
                src.insert(k.into(), "".into());
            }
        }
        let game_name = src
            .get("game_name")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let int = |k: &str| src.get(k).and_then(Value::as_i64);
        let meta = RecordMeta {
            indexed_at: int("indexed_at"),
            deleted_at: int("deleted_at"),
            pinned: src.get("pinned").and_then(Value::as_bool).unwrap_or(false),
            verified_at: int("verified_at"),
            verify_state: src
                .get("verify_state")
                .and_then(Value::as_str)
                .map(str::to_string),
            copies: copies_of_document(src.get("copies")),
        };
        let result: ResultRecord = serde_json::from_value(Value::Object(src))
            .map_err(|e| format!("document {id} is not a backup result: {e}"))?;
        Ok(CatalogRecord {
            id: id.to_string(),
            game_name,
            result,
            meta,
        })
    }
}

/// `illegal` of a record whose stored file failed verification starts so
/// (see `crate::retention`).
pub const VERIFY_ILLEGAL_PREFIX: &str = "verify: ";

/// The copies of a record (see `crate::copies`).
impl CatalogRecord {
    /// The first copy as the result describes it, `None` for a result that
    /// stored no file.
    pub fn first_copy(&self) -> Option<CopyRecord> {
        let r = &self.result;
        if !self.is_pulled() {
            return None;
        }
        let dir = r.file_path.as_deref()?;
        let name = r.filename.as_deref()?;
        let state = if self.meta.deleted_at.is_some() {
            copy_state::DELETED
        } else {
            match self.meta.verify_state.as_deref() {
                Some("missing") => copy_state::MISSING,
                Some("corrupt") => copy_state::CORRUPT,
                _ => copy_state::OK,
            }
        };
        Some(CopyRecord {
            node: self.node().to_string(),
            ip: r.back_server_ip.trim().to_string(),
            zone: String::new(),
            file_path: format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                name.rsplit('/').next().unwrap_or(name)
            ),
            state: state.to_string(),
            recorded_at: r.rsync_time,
            verified_at: self.meta.verified_at,
        })
    }

    /// Every copy, the first one first: the first copy unless a copy record
    /// of its node overrides it, then the others in node order.
    pub fn copies(&self) -> Vec<CopyRecord> {
        let mut out = Vec::with_capacity(1 + self.meta.copies.len());
        if let Some(first) = self.first_copy() {
            match self.meta.copies.iter().find(|c| c.node == first.node) {
                Some(over) => out.push(over.clone()),
                None => out.push(first),
            }
        }
        let first_node = out.first().map(|c| c.node.clone());
        let mut rest: Vec<CopyRecord> = self
            .meta
            .copies
            .iter()
            .filter(|c| Some(&c.node) != first_node.as_ref())
            .cloned()
            .collect();
        rest.sort_by(|a, b| a.node.cmp(&b.node));
        out.extend(rest);
        out
    }

    /// The copies restore may use and repair may copy from.
    pub fn good_copies(&self) -> Vec<CopyRecord> {
        self.copies()
            .into_iter()
            .filter(CopyRecord::is_good)
            .collect()
    }

    /// Whether the node pulled a file for this result (successful, not
    /// illegal for a reason other than a verification of its first copy).
    fn is_pulled(&self) -> bool {
        let r = &self.result;
        r.succeed == 1
            && r.filename.as_deref().is_some_and(|f| !f.is_empty())
            && r.file_path.as_deref().is_some_and(|p| !p.is_empty())
            && r.illegal
                .as_deref()
                .is_none_or(|i| i.starts_with(VERIFY_ILLEGAL_PREFIX))
    }
}

/// The `copies` object of a document (node → copy). An entry that does not
/// read as a copy is skipped: the document stays readable.
fn copies_of_document(v: Option<&Value>) -> Vec<CopyRecord> {
    let Some(Value::Object(m)) = v else {
        return Vec::new();
    };
    let mut out: Vec<CopyRecord> = m
        .iter()
        .filter_map(|(node, c)| {
            let mut c = c.clone();
            c.as_object_mut()?
                .insert("node".into(), node.clone().into());
            serde_json::from_value(c).ok()
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// One backed-up instance: the original's `SERVER_ID:TYPE:INSTANCE`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    pub server_id: i64,
    pub back_type: String,
    pub instance: i64,
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.server_id, self.back_type, self.instance)
    }
}

/// The registry entry of one instance, derived from its results.
///
/// Built by [`InstanceEntry::from_record`] and combined with
/// [`InstanceEntry::merge`], which takes maxima and "the newer one wins",
/// so applying the same results twice or in another order gives the same
/// entry: replays after a crash cannot move the registry backwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    pub key: InstanceKey,
    pub game_id: i64,
    pub game_name: String,
    /// Seconds between backups, from the newest result.
    pub interval: i64,
    /// Unix ms (create_time) of the oldest result seen.
    pub first_seen_ms: i64,
    /// Unix ms (create_time) of the newest result, success or not.
    pub last_attempt_ms: i64,
    pub last_success_ms: Option<i64>,
    /// The newest failure's text (`log`, or why it is illegal).
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// The node of the newest result.
    pub last_node: String,
}

impl InstanceEntry {
    pub fn from_record(r: &CatalogRecord) -> Self {
        let t = r.result.create_time;
        let ok = r.is_success();
        let error = if ok {
            None
        } else {
            Some(
                r.result
                    .illegal
                    .clone()
                    .unwrap_or_else(|| r.result.log.clone()),
            )
        };
        InstanceEntry {
            key: r.key(),
            game_id: r.result.game_id,
            game_name: r.game_name.clone(),
            interval: r.result.interval,
            first_seen_ms: t,
            last_attempt_ms: t,
            last_success_ms: ok.then_some(t),
            last_error_ms: error.as_ref().map(|_| t),
            last_error: error,
            last_node: r.node().to_string(),
        }
    }

    /// Folds `other` (same key) into `self`.
    pub fn merge(&mut self, other: &InstanceEntry) {
        debug_assert_eq!(self.key, other.key);
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        if other.last_attempt_ms > self.last_attempt_ms {
            self.last_attempt_ms = other.last_attempt_ms;
            self.game_id = other.game_id;
            self.game_name = other.game_name.clone();
            self.interval = other.interval;
            self.last_node = other.last_node.clone();
        }
        self.last_success_ms = self.last_success_ms.max(other.last_success_ms);
        if other.last_error_ms > self.last_error_ms {
            self.last_error_ms = other.last_error_ms;
            self.last_error = other.last_error.clone();
        }
    }

    /// No success (or, before the first success, no sighting) within
    /// `interval` seconds plus `grace_ms` at `now_ms`.
    pub fn is_overdue(&self, now_ms: i64, grace_ms: i64) -> bool {
        let since = self.last_success_ms.unwrap_or(self.first_seen_ms);
        since + self.interval.max(0) * 1000 + grace_ms < now_ms
    }

    /// Folds the registry entries of `records`, one per instance.
    pub fn fold(records: &[&CatalogRecord]) -> Vec<InstanceEntry> {
        let mut by_key: std::collections::BTreeMap<InstanceKey, InstanceEntry> = Default::default();
        for r in records {
            let e = InstanceEntry::from_record(r);
            match by_key.get_mut(&e.key) {
                Some(cur) => cur.merge(&e),
                None => {
                    by_key.insert(e.key.clone(), e);
                }
            }
        }
        by_key.into_values().collect()
    }
}

/// A catalog lookup. Everything unset matches everything; results are
/// newest `create_time` first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupQuery {
    pub server_id: Option<i64>,
    pub back_type: Option<String>,
    pub instance: Option<i64>,
    pub game_id: Option<i64>,
    pub node: Option<String>,
    pub filename: Option<String>,
    /// `Some(true)`: only `succeed = 1`; `Some(false)`: only failures.
    pub succeeded: Option<bool>,
    /// `create_time >= since_ms`.
    pub since_ms: Option<i64>,
    /// `create_time <= until_ms`.
    pub until_ms: Option<i64>,
    /// Pruned records (`deleted_at` set) are left out unless this is true.
    pub include_deleted: bool,
    /// At most this many (0 = [`BackupQuery::DEFAULT_LIMIT`]).
    pub limit: usize,
    pub offset: usize,
}

impl BackupQuery {
    pub const DEFAULT_LIMIT: usize = 100;

    /// The backups of one instance, newest first.
    pub fn for_instance(key: &InstanceKey) -> Self {
        BackupQuery {
            server_id: Some(key.server_id),
            back_type: Some(key.back_type.clone()),
            instance: Some(key.instance),
            ..Default::default()
        }
    }

    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            Self::DEFAULT_LIMIT
        } else {
            self.limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn result(instance: i64, create_time: i64, succeed: u8) -> ResultRecord {
        ResultRecord {
            instance,
            filename: Some(format!("db_{instance}_{create_time}.tar.gz")),
            create_time,
            rsync_time: create_time + 5000,
            succeed,
            log: if succeed == 1 {
                "ok".into()
            } else {
                "rsync failed: code 10".into()
            },
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            verify: None,
            checksum: None,
            ..ubackup_testkit::fixtures::result(instance, create_time)
        }
    }

    #[test]
    fn merge_is_order_independent_and_idempotent() {
        let recs: Vec<CatalogRecord> = vec![
            CatalogRecord::new(result(3306, 1_000, 1), "g"),
            CatalogRecord::new(result(3306, 3_000, 0), "g"),
            CatalogRecord::new(result(3306, 2_000, 1), "g"),
        ];
        let fwd: Vec<&CatalogRecord> = recs.iter().collect();
        let rev: Vec<&CatalogRecord> = recs.iter().rev().collect();
        let a = InstanceEntry::fold(&fwd);
        let b = InstanceEntry::fold(&rev);
        assert_eq!(a, b);
        let e = &a[0];
        assert_eq!(
            (e.first_seen_ms, e.last_attempt_ms, e.last_success_ms),
            (1_000, 3_000, Some(2_000))
        );
        assert_eq!(e.last_error.as_deref(), Some("rsync failed: code 10"));
        let mut twice = e.clone();
        twice.merge(e);
        assert_eq!(&twice, e);
    }

    #[test]
    fn overdue_counts_from_last_success_or_first_sighting() {
        let e = InstanceEntry::from_record(&CatalogRecord::new(result(1, 10_000, 0), "g"));
        // interval 3600 s, never succeeded: overdue once first sighting + 3600 s + grace passed
        assert!(!e.is_overdue(10_000 + 3_600_000, 0));
        assert!(e.is_overdue(10_000 + 3_600_001, 0));
        assert!(!e.is_overdue(10_000 + 3_600_001, 5));
    }

    #[test]
    fn the_json_document_is_the_value_document() {
        let mut r = CatalogRecord::new(result(3306, 1_763_800_000_000, 1), "g");
        let same = |r: &CatalogRecord| {
            let text: Value = serde_json::from_str(&r.es_document_json()).unwrap();
            assert_eq!(text, r.es_document());
        };
        same(&r);
        r.meta = RecordMeta {
            indexed_at: Some(1),
            deleted_at: Some(2),
            pinned: true,
            verified_at: Some(3),
            verify_state: Some("ok".into()),
            copies: Vec::new(),
        };
        r.result.illegal = Some("x".into());
        r.result.run_id = Some("r".into());
        same(&r);
        r.result.filename = None;
        r.result.file_path = None;
        same(&r);
    }

    #[test]
    fn es_document_round_trips_and_reads_original_documents() {
        let mut r = CatalogRecord::new(result(3306, 1_763_800_000_000, 1), "mygame");
        r.meta.deleted_at = Some(5);
        let doc = r.es_document();
        assert_eq!(doc["type"], "mysql");
        assert_eq!(doc["game_name"], "mygame");
        assert_eq!(doc["deleted_at"], 5);
        assert!(doc.get("pinned").is_none());
        assert_eq!(CatalogRecord::from_es_document(&r.id, &doc).unwrap(), r);
        // as the original to_es.py indexed it: no interval, server_id as text
        let old = serde_json::json!({"server_id": "111111", "game_id": 31, "op_id": 1,
            "game_server_ip": "10.0.0.5", "instance": 3306, "back_server_ip": "10.0.9.1",
            "file_path": null, "filename": "f", "create_time": 1, "rsync_time": 2, "size": 3,
            "last_all_filename": null, "last_all_time": 0, "succeed": 0, "log": "x",
            "type": "mysql", "game_name": "g"});
        let back = CatalogRecord::from_es_document("abc", &old).unwrap();
        assert_eq!(back.result.server_id, 111111);
        assert_eq!(back.result.last_all_filename, "None");
        assert_eq!(back.result.interval, 0);
    }
}

#[cfg(test)]
mod copies_tests {
    use super::*;
    use crate::copies::state;

    fn record() -> CatalogRecord {
        let r: ResultRecord = serde_json::from_value(serde_json::json!({
            "interval": 3600, "server_id": 1, "game_id": 2, "op_id": 3,
            "game_server_ip": "10.0.0.5", "instance": 3306, "back_server_ip": "10.20.0.7",
            "file_path": "/backup/mysql/10.0.0/5/", "filename": "full_1.xb",
            "create_time": 1000, "rsync_time": 2000, "size": 10, "last_all_filename": "None",
            "last_all_time": 0, "succeed": 1, "log": "ok", "type": "mysql", "node_id": "n1"
        }))
        .unwrap();
        CatalogRecord::new(r, "g")
    }

    fn copy(node: &str, state: &str) -> CopyRecord {
        CopyRecord {
            node: node.into(),
            ip: "10.20.0.8".into(),
            zone: "b".into(),
            file_path: "/store/mysql/10.0.0/5/full_1.xb".into(),
            state: state.into(),
            recorded_at: 3000,
            verified_at: None,
        }
    }

    #[test]
    fn the_first_copy_comes_from_the_result_and_a_copy_row_overrides_it() {
        let mut r = record();
        let c = r.copies();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].node, "n1");
        assert_eq!(c[0].file_path, "/backup/mysql/10.0.0/5/full_1.xb");
        assert!(c[0].is_good());

        r.meta.copies = vec![
            copy("n3", state::OK),
            copy("n1", state::LOST),
            copy("n2", state::OK),
        ];
        let c = r.copies();
        let nodes: Vec<&str> = c.iter().map(|c| c.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2", "n3"]);
        assert_eq!(c[0].state, state::LOST);
        let good: Vec<String> = r.good_copies().into_iter().map(|c| c.node).collect();
        assert_eq!(good, ["n2", "n3"]);
    }

    #[test]
    fn failed_and_pruned_results_have_no_good_first_copy() {
        let mut r = record();
        r.result.succeed = 0;
        assert!(r.copies().is_empty());
        let mut r = record();
        r.meta.deleted_at = Some(5);
        assert_eq!(r.copies()[0].state, state::DELETED);
        let mut r = record();
        r.meta.verify_state = Some("corrupt".into());
        r.result.illegal = Some("verify: corrupt: size".into());
        assert_eq!(r.copies()[0].state, state::CORRUPT);
    }
}
