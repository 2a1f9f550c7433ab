//! The live cluster as Redis shows it: every registered worker's state
//! hash and heartbeat, and the depth of every list ubackup uses.
//!
//! Read-only; all reads of one kind go in one pipeline.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ubackup_catalog::QueueKind;
use ubackup_common::keys::{control, state};
use ubackup_common::RedisConn;
use ubackup_common::{DeadLetter, Keys};

/// One worker (pull node or indexer) as it published itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    /// `node` or `indexer` (empty for a worker that never published it).
    pub kind: String,
    pub ip: String,
    /// The heartbeat key exists (absent = down: expired, or stopped).
    pub up: bool,
    pub heartbeat_ms: Option<i64>,
    pub heartbeat_age_ms: Option<i64>,
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// The operator's control hash says `paused`.
    pub control_paused: bool,
    pub disk_total: Option<u64>,
    pub disk_free: Option<u64>,
    pub disk_used_pct: Option<f64>,
    pub active: Option<u64>,
    pub workers: Option<u64>,
    pub version: Option<String>,
    pub started_ms: Option<i64>,
    /// The lists it takes from.
    pub queues: Vec<String>,
    /// From `ubackup-reporter disk`.
    pub disk_sample_ms: Option<i64>,
    pub mem_total: Option<u64>,
    pub mem_used: Option<u64>,
    pub load1: Option<f64>,
    pub cpus: Option<u64>,
}

impl NodeView {
    fn from_hash(
        id: &str,
        h: &HashMap<String, String>,
        up: bool,
        ctl: &HashMap<String, String>,
        now_ms: i64,
    ) -> Self {
        let s = |k: &str| {
            h.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let n = |k: &str| s(k).and_then(|v| v.parse::<u64>().ok());
        let i = |k: &str| s(k).and_then(|v| v.parse::<i64>().ok());
        let disk_total = n(state::DISK_TOTAL);
        let disk_free = n(state::DISK_FREE);
        let disk_used_pct = match (disk_total, disk_free) {
            (Some(t), Some(f)) if t > 0 => Some(100.0 * (t.saturating_sub(f)) as f64 / t as f64),
            _ => None,
        };
        let heartbeat_ms = i(state::HEARTBEAT_MS);
        NodeView {
            id: id.to_string(),
            kind: s(state::KIND).unwrap_or_default(),
            ip: s(state::IP).unwrap_or_default(),
            up,
            heartbeat_ms,
            heartbeat_age_ms: heartbeat_ms.map(|t| (now_ms - t).max(0)),
            paused: s(state::PAUSED).as_deref() == Some("1"),
            pause_reason: s(state::PAUSE_REASON),
            control_paused: ctl
                .get(control::PAUSED)
                .is_some_and(|v| matches!(v.trim(), "1" | "yes" | "true" | "on")),
            disk_total,
            disk_free,
            disk_used_pct,
            active: n(state::ACTIVE),
            workers: n(state::WORKERS),
            version: s(state::VERSION),
            started_ms: i(state::STARTED_MS),
            queues: s(state::QUEUES)
                .map(|q| q.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            disk_sample_ms: i(state::DISK_SAMPLE_MS),
            mem_total: n(state::MEM_TOTAL),
            mem_used: n(state::MEM_USED),
            load1: s(state::LOAD1).and_then(|v| v.parse().ok()),
            cpus: n(state::CPUS),
        }
    }

    pub fn is_indexer(&self) -> bool {
        self.kind == "indexer"
    }

    /// Free space in percent of the total, when known.
    pub fn disk_free_pct(&self) -> Option<f64> {
        self.disk_used_pct.map(|u| 100.0 - u)
    }
}

/// Every registered worker, sorted by id.
pub async fn read_nodes(
    conn: &mut RedisConn,
    keys: &Keys,
    now_ms: i64,
) -> redis::RedisResult<Vec<NodeView>> {
    let mut ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.workers())
        .query_async(conn)
        .await?;
    ids.sort();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    for id in &ids {
        p.hgetall(keys.state(id))
            .exists(keys.alive(id))
            .hgetall(keys.control(id));
    }
    let replies: Vec<redis::Value> = p.query_async(conn).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, chunk) in ids.iter().zip(replies.chunks(3)) {
        let h: HashMap<String, String> = redis::from_redis_value(chunk[0].clone())?;
        let up: bool = redis::from_redis_value(chunk[1].clone())?;
        let ctl: HashMap<String, String> = redis::from_redis_value(chunk[2].clone())?;
        out.push(NodeView::from_hash(id, &h, up, &ctl, now_ms));
    }
    Ok(out)
}

/// Depth of one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDepth {
    /// The Redis key.
    pub list: String,
    pub kind: QueueKind,
    /// The queue it belongs to.
    pub queue: String,
    /// The worker, for in-flight lists.
    pub worker: Option<String>,
    pub depth: u64,
    /// Age of the oldest element, when its time is readable.
    pub oldest_age_ms: Option<i64>,
    /// Dead lists: the reason of the newest dead letter.
    pub newest_reason: Option<String>,
}

/// Every list, grouped by kind in this order: priority, results, in-flight, dead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    pub lists: Vec<ListDepth>,
}

impl QueueView {
    pub fn of_kind(&self, kind: QueueKind) -> impl Iterator<Item = &ListDepth> {
        self.lists.iter().filter(move |l| l.kind == kind)
    }
}

/// Where the lists are: the priority lists (config first, then those the
/// nodes announce) and the results list, on their Redis servers.
pub struct QueueSources<'a> {
    pub configured: &'a [String],
    pub message_queue: &'a str,
    /// Set when `message_queue` lives on another Redis than the cluster's.
    pub message_conn: Option<&'a mut RedisConn>,
}

/// Reads every list's depth (and the oldest element's age).
pub async fn read_queues(
    conn: &mut RedisConn,
    keys: &Keys,
    nodes: &[NodeView],
    src: QueueSources<'_>,
    now_ms: i64,
) -> redis::RedisResult<QueueView> {
    let mut priority: Vec<String> = src.configured.to_vec();
    for n in nodes.iter().filter(|n| !n.is_indexer()) {
        for q in &n.queues {
            if !priority.contains(q) && q != src.message_queue {
                priority.push(q.clone());
            }
        }
    }
    let mq = src.message_queue.to_string();
    let mut lists: Vec<(String, QueueKind, String, Option<String>)> = Vec::new();
    for q in &priority {
        lists.push((q.clone(), QueueKind::Priority, q.clone(), None));
    }
    for n in nodes {
        for q in &n.queues {
            lists.push((
                keys.inflight(&n.id, q),
                QueueKind::Inflight,
                q.clone(),
                Some(n.id.clone()),
            ));
        }
    }
    for q in &priority {
        lists.push((keys.dead(q), QueueKind::Dead, q.clone(), None));
    }
    // The results list and its dead letters may be on the message Redis.
    let results = [
        (mq.clone(), QueueKind::Results, mq.clone(), None),
        (keys.dead(&mq), QueueKind::Dead, mq.clone(), None),
    ];
    let mut out = depths(conn, &lists, now_ms).await?;
    let res = match src.message_conn {
        Some(mc) => depths(mc, &results, now_ms).await?,
        None => depths(conn, &results, now_ms).await?,
    };
    // order: priority, results, in-flight, dead
    let (dead_res, res): (Vec<_>, Vec<_>) =
        res.into_iter().partition(|l| l.kind == QueueKind::Dead);
    let split = priority.len();
    let rest = out.split_off(split);
    out.extend(res);
    out.extend(rest);
    out.extend(dead_res);
    Ok(QueueView { lists: out })
}

async fn depths(
    conn: &mut RedisConn,
    lists: &[(String, QueueKind, String, Option<String>)],
    now_ms: i64,
) -> redis::RedisResult<Vec<ListDepth>> {
    if lists.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    for (key, kind, _, _) in lists {
        p.llen(key);
        // oldest = the pop end (right); for dead lists also the newest (left)
        p.cmd("LINDEX").arg(key).arg(-1);
        if *kind == QueueKind::Dead {
            p.cmd("LINDEX").arg(key).arg(0);
        }
    }
    let replies: Vec<redis::Value> = p.query_async(conn).await?;
    let mut it = replies.into_iter();
    let mut out = Vec::with_capacity(lists.len());
    for (key, kind, queue, worker) in lists {
        let depth: u64 = redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil))?;
        let oldest: Option<String> =
            redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil)).unwrap_or(None);
        let newest: Option<String> = if *kind == QueueKind::Dead {
            redis::from_redis_value(it.next().unwrap_or(redis::Value::Nil)).unwrap_or(None)
        } else {
            None
        };
        let oldest_age_ms = if *kind == QueueKind::Inflight {
            None
        } else {
            oldest
                .as_deref()
                .and_then(element_time_ms)
                .map(|t| (now_ms - t).max(0))
        };
        let newest_reason = newest
            .and_then(|raw| serde_json::from_str::<DeadLetter>(&raw).ok())
            .map(|d| d.reason);
        out.push(ListDepth {
            list: key.clone(),
            kind: *kind,
            queue: queue.clone(),
            worker: worker.clone(),
            depth,
            oldest_age_ms,
            newest_reason,
        });
    }
    Ok(out)
}

/// When a list element was made, in unix ms: a client message's
/// `create_time` (seconds), a result's `rsync_time` (ms), a dead letter's
/// `time` (ms). None for anything else.
pub fn element_time_ms(raw: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(raw).ok()?;
    if v.get("payload").is_some() && v.get("reason").is_some() {
        return v.get("time")?.as_i64();
    }
    if v.get("succeed").is_some() {
        return v.get("rsync_time")?.as_i64();
    }
    if v.get("success").is_some() {
        return v.get("create_time")?.as_i64().map(|s| s * 1000);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_times() {
        assert_eq!(
            element_time_ms(r#"{"success":true,"create_time":100}"#),
            Some(100_000)
        );
        assert_eq!(
            element_time_ms(r#"{"succeed":1,"create_time":5,"rsync_time":7000}"#),
            Some(7000)
        );
        assert_eq!(
            element_time_ms(r#"{"payload":"x","reason":"r","time":42,"node":"n","queue":"q"}"#),
            Some(42)
        );
        assert_eq!(element_time_ms("not json"), None);
    }
}

/// The nodes' repair sweep as it last published itself
/// (`ubackup_common::keys::replication`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationView {
    pub under_replicated: u64,
    pub oldest_ms: i64,
    pub checked: u64,
    pub backlog: u64,
    pub queued: u64,
    pub sweep_ms: i64,
    pub sweep_node: String,
}

/// `None` when no sweep ever ran (no node asks for copies).
pub async fn read_replication(
    conn: &mut RedisConn,
    keys: &Keys,
) -> redis::RedisResult<Option<ReplicationView>> {
    use ubackup_common::keys::replication as f;
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.replication())
        .query_async(conn)
        .await?;
    if h.is_empty() {
        return Ok(None);
    }
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Ok(Some(ReplicationView {
        under_replicated: num(f::UNDER_REPLICATED).max(0) as u64,
        oldest_ms: num(f::OLDEST_MS),
        checked: num(f::CHECKED).max(0) as u64,
        backlog: num(f::BACKLOG).max(0) as u64,
        queued: num(f::QUEUED).max(0) as u64,
        sweep_ms: num(f::SWEEP_MS),
        sweep_node: h.get(f::SWEEP_NODE).cloned().unwrap_or_default(),
    }))
}
