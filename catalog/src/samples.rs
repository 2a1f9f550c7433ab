//! Time series the reporter records next to the backups: the disk usage of
//! each node and the depth of each queue, one sample per cron run.
//!
//! SQLite keeps them in `disk_samples` / `queue_samples` (migration 2 in
//! `crate::sqlite::schema`); Elasticsearch in `<index>-samples`, one document per
//! sample, for Kibana. Both writes are idempotent upserts keyed by (source,
//! time), so a sample handed over twice (a retry after a failed run) is
//! stored once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub(crate) fn limit(&self) -> i64 {
        if self.limit == 0 {
            1000
        } else {
            self.limit as i64
        }
    }
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
