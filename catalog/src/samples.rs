//! Time series the reporter records next to the backups: the disk usage of
//! each node and the depth of each queue, one sample per cron run.
//!
//! SQLite keeps them in `disk_samples` / `queue_samples` (migration 2 in
//! [`crate::schema`]); Elasticsearch in `<index>-samples`, one document per
//! sample, for Kibana. Both writes are idempotent upserts keyed by (source,
//! time), so a sample handed over twice (a retry after a failed run) is
//! stored once.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::es::EsCatalog;
use crate::sqlite::SqliteCatalog;
use crate::CatalogError;

/// The SQL of schema migration 2 (see [`crate::schema::MIGRATIONS`]).
pub const MIGRATION_V2: &str = r#"
-- One row per `ubackup-reporter disk` run on a node. Bytes; unix ms.
CREATE TABLE IF NOT EXISTS disk_samples (
    node       TEXT    NOT NULL,
    time_ms    INTEGER NOT NULL,
    ip         TEXT    NOT NULL,
    path       TEXT    NOT NULL,   -- server_root_path
    total      INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    free       INTEGER NOT NULL,   -- available to unprivileged writers (f_bavail)
    mem_total  INTEGER,
    mem_used   INTEGER,
    load1      REAL,
    cpus       INTEGER,
    PRIMARY KEY (node, time_ms)
);
CREATE INDEX IF NOT EXISTS disk_samples_by_time ON disk_samples (time_ms);

-- One row per list per `ubackup-reporter queue` run.
CREATE TABLE IF NOT EXISTS queue_samples (
    list          TEXT    NOT NULL,   -- the Redis key
    time_ms       INTEGER NOT NULL,
    kind          TEXT    NOT NULL,   -- priority / results / inflight / dead
    queue         TEXT    NOT NULL,   -- the queue the list belongs to
    worker        TEXT,               -- for in-flight lists
    depth         INTEGER NOT NULL,
    oldest_age_ms INTEGER,            -- age of the oldest element, when known
    PRIMARY KEY (list, time_ms)
);
CREATE INDEX IF NOT EXISTS queue_samples_by_time ON queue_samples (time_ms);
"#;

/// Disk figures of one node at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSample {
    pub time_ms: i64,
    pub node: String,
    pub ip: String,
    /// The directory whose filesystem was measured (`server_root_path`).
    pub path: String,
    pub total: u64,
    pub used: u64,
    /// Bytes available to unprivileged writers (statvfs `f_bavail`).
    pub free: u64,
    #[serde(default)]
    pub mem_total: Option<u64>,
    #[serde(default)]
    pub mem_used: Option<u64>,
    #[serde(default)]
    pub load1: Option<f64>,
    #[serde(default)]
    pub cpus: Option<u32>,
}

/// What a sampled list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// A priority list clients push backup messages onto.
    Priority,
    /// `message_queue`, where nodes push results for the indexer.
    Results,
    /// A worker's in-flight list.
    Inflight,
    /// A `<queue>:dead` list.
    Dead,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Priority => "priority",
            QueueKind::Results => "results",
            QueueKind::Inflight => "inflight",
            QueueKind::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "priority" => QueueKind::Priority,
            "results" => QueueKind::Results,
            "inflight" => QueueKind::Inflight,
            "dead" => QueueKind::Dead,
            _ => return None,
        })
    }
}

/// Depth of one list at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSample {
    pub time_ms: i64,
    /// The Redis key of the list.
    pub list: String,
    pub kind: QueueKind,
    /// The queue it belongs to (the list itself for priority/results lists).
    pub queue: String,
    /// The worker holding an in-flight list.
    #[serde(default)]
    pub worker: Option<String>,
    pub depth: u64,
    /// Age of the oldest element (from its `create_time`), when readable.
    #[serde(default)]
    pub oldest_age_ms: Option<i64>,
}

/// One sample of either kind: the element of the reporter's pending list
/// in Redis (`Keys::samples`), JSON with a `sample` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sample", rename_all = "lowercase")]
pub enum Sample {
    Disk(DiskSample),
    Queue(QueueSample),
}

impl Sample {
    /// The Elasticsearch `_id`: one document per (source, time).
    pub fn doc_id(&self) -> String {
        match self {
            Sample::Disk(d) => format!("disk:{}:{}", d.node, d.time_ms),
            Sample::Queue(q) => format!("queue:{}:{}", q.list, q.time_ms),
        }
    }

    pub fn time_ms(&self) -> i64 {
        match self {
            Sample::Disk(d) => d.time_ms,
            Sample::Queue(q) => q.time_ms,
        }
    }

    /// The Elasticsearch document: the sample's fields plus `sample`
    /// (`disk`/`queue`), with `time_ms` mapped as a date.
    pub fn es_document(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Which samples to read back; unset = all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleQuery {
    /// A node (disk) or a list key (queue).
    pub source: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// At most this many, newest first (0 = 1000).
    pub limit: usize,
}

impl SampleQuery {
    fn limit(&self) -> i64 {
        if self.limit == 0 {
            1000
        } else {
            self.limit as i64
        }
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteCatalog {
    /// Upserts samples in one transaction.
    pub async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        if samples.is_empty() {
            return Ok(());
        }
        let owned = samples.to_vec();
        self.with_writer(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut disk = tx.prepare_cached(
                    "INSERT OR REPLACE INTO disk_samples (node, time_ms, ip, path, total, used, free, mem_total, mem_used, load1, cpus) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                let mut queue = tx.prepare_cached(
                    "INSERT OR REPLACE INTO queue_samples (list, time_ms, kind, queue, worker, depth, oldest_age_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for s in &owned {
                    match s {
                        Sample::Disk(d) => disk.execute(params![
                            d.node,
                            d.time_ms,
                            d.ip,
                            d.path,
                            i(d.total),
                            i(d.used),
                            i(d.free),
                            d.mem_total.map(i),
                            d.mem_used.map(i),
                            d.load1,
                            d.cpus,
                        ])?,
                        Sample::Queue(q) => queue.execute(params![
                            q.list,
                            q.time_ms,
                            q.kind.as_str(),
                            q.queue,
                            q.worker,
                            i(q.depth),
                            q.oldest_age_ms,
                        ])?,
                    };
                }
            }
            tx.commit()
        })
        .await
    }

    /// Disk samples, newest first.
    pub async fn disk_samples(&self, q: &SampleQuery) -> Result<Vec<DiskSample>, CatalogError> {
        let q = q.clone();
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(
                "SELECT node, time_ms, ip, path, total, used, free, mem_total, mem_used, load1, cpus FROM disk_samples \
                 WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR time_ms <= ?3) \
                 ORDER BY time_ms DESC, node LIMIT ?4",
            )?;
            let rows = st.query_map(params![q.source, q.since_ms, q.until_ms, q.limit()], |r| {
                Ok(DiskSample {
                    node: r.get(0)?,
                    time_ms: r.get(1)?,
                    ip: r.get(2)?,
                    path: r.get(3)?,
                    total: r.get::<_, i64>(4)?.max(0) as u64,
                    used: r.get::<_, i64>(5)?.max(0) as u64,
                    free: r.get::<_, i64>(6)?.max(0) as u64,
                    mem_total: r.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
                    mem_used: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
                    load1: r.get(9)?,
                    cpus: r.get(10)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Queue samples, newest first.
    pub async fn queue_samples(&self, q: &SampleQuery) -> Result<Vec<QueueSample>, CatalogError> {
        let q = q.clone();
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(
                "SELECT list, time_ms, kind, queue, worker, depth, oldest_age_ms FROM queue_samples \
                 WHERE (?1 IS NULL OR list = ?1) AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR time_ms <= ?3) \
                 ORDER BY time_ms DESC, list LIMIT ?4",
            )?;
            let rows = st.query_map(params![q.source, q.since_ms, q.until_ms, q.limit()], |r| {
                let kind: String = r.get(2)?;
                Ok(QueueSample {
                    list: r.get(0)?,
                    time_ms: r.get(1)?,
                    kind: QueueKind::parse(&kind).unwrap_or(QueueKind::Priority),
                    queue: r.get(3)?,
                    worker: r.get(4)?,
                    depth: r.get::<_, i64>(5)?.max(0) as u64,
                    oldest_age_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Deletes samples older than `before_ms`; returns how many.
    pub async fn prune_samples(&self, before_ms: i64) -> Result<usize, CatalogError> {
        self.with_writer(move |c| {
            let a = c.execute("DELETE FROM disk_samples WHERE time_ms < ?1", [before_ms])?;
            let b = c.execute("DELETE FROM queue_samples WHERE time_ms < ?1", [before_ms])?;
            Ok(a + b)
        })
        .await
    }
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

impl EsCatalog {
    /// Indexes samples into `<index>-samples` (created with its mapping if
    /// missing). Any item ES refuses fails the call, so the caller keeps
    /// the samples and hands them over again next time.
    pub async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts};
        use elasticsearch::BulkParts;
        if samples.is_empty() {
            return Ok(());
        }
        let index = samples_index(self.index());
        let store = format!("es {index}");
        let unavailable = |reason: String| CatalogError::Unavailable {
            store: store.clone(),
            reason,
        };
        let exists = self
            .client()
            .indices()
            .exists(IndicesExistsParts::Index(&[&index]))
            .send()
            .await
            .map_err(|e| unavailable(format!("HEAD /{index}: {e}")))?;
        match exists.status_code().as_u16() {
            200 => {}
            404 => {
                let resp = self
                    .client()
                    .indices()
                    .create(IndicesCreateParts::Index(&index))
                    .body(json!({ "mappings": samples_mappings() }))
                    .send()
                    .await
                    .map_err(|e| unavailable(format!("PUT /{index}: {e}")))?;
                let status = resp.status_code().as_u16();
                let text = resp.text().await.unwrap_or_default();
                if !(200..300).contains(&status)
                    && !text.contains("resource_already_exists_exception")
                {
                    return Err(unavailable(format!(
                        "PUT /{index}: HTTP {status}: {}",
                        head(&text)
                    )));
                }
            }
            s => return Err(unavailable(format!("HEAD /{index}: HTTP {s}"))),
        }
        let mut lines: Vec<String> = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            lines.push(json!({"index": {"_id": s.doc_id()}}).to_string());
            lines.push(s.es_document().to_string());
        }
        let resp = self
            .client()
            .bulk(BulkParts::Index(&index))
            .body(lines)
            .send()
            .await
            .map_err(|e| unavailable(format!("POST /{index}/_bulk: {e}")))?;
        let status = resp.status_code().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| unavailable(format!("POST /{index}/_bulk: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(unavailable(format!(
                "POST /{index}/_bulk: HTTP {status}: {}",
                head(&text)
            )));
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| unavailable(format!("POST /{index}/_bulk: unreadable answer ({e})")))?;
        if body["errors"].as_bool() == Some(true) {
            let first = body["items"]
                .as_array()
                .and_then(|items| items.iter().find(|it| it["index"]["error"].is_object()))
                .map(|it| it["index"]["error"].to_string())
                .unwrap_or_default();
            return Err(unavailable(format!(
                "POST /{index}/_bulk: some samples were refused: {}",
                head(&first)
            )));
        }
        Ok(())
    }
}

fn head(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_json_is_tagged_and_round_trips() {
        let s = Sample::Queue(QueueSample {
            time_ms: 5,
            list: "level1".into(),
            kind: QueueKind::Priority,
            queue: "level1".into(),
            worker: None,
            depth: 3,
            oldest_age_ms: Some(10),
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["sample"], "queue");
        assert_eq!(v["kind"], "priority");
        assert_eq!(serde_json::from_value::<Sample>(v).unwrap(), s);
        assert_eq!(s.doc_id(), "queue:level1:5");
    }
}
