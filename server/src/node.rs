//! The node as others see it: its state hash and heartbeat (for the
//! reporter and for other nodes' reapers), the operator's control hash, and
//! the reaper that re-queues the in-flight work of dead nodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use ubackup_common::keys::{control, state};
use ubackup_common::shutdown::Shutdown;
use ubackup_common::WorkQueue;

use crate::disk::{DiskReserve, DiskSpace};
use crate::results::ResultSink;

/// Live counters, shared by the dispatcher, the jobs and the heartbeat.
#[derive(Debug, Default)]
pub struct NodeStatus {
    /// Jobs in progress (validated, pulling, landing or acking).
    pub active: AtomicUsize,
    /// rsync processes running, for the `node_bwlimit` share.
    pub transfers: AtomicUsize,
    /// Worker count in force (`work_thread` or the control hash).
    pub workers: AtomicUsize,
    /// Why the node is not popping, if it is not.
    pub pause_reason: Mutex<Option<String>>,
    pub disk: Mutex<Option<DiskSpace>>,
    pub started_ms: i64,
    /// Wakes the heartbeat loop to publish a change (pause/resume) at once.
    pub publish: tokio::sync::Notify,
}

/// Decrements a counter when dropped, so a panicking job cannot leak one.
pub struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    pub fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        CountGuard(c)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the operator asked for in the control hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    pub paused: bool,
    pub workers: Option<usize>,
}

impl Control {
    fn from_hash(h: &HashMap<String, String>) -> Control {
        let paused = h
            .get(control::PAUSED)
            .is_some_and(|v| matches!(v.trim(), "1" | "yes" | "true" | "on"));
        let workers = h
            .get(control::WORKERS)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map(|n| n.min(256));
        Control { paused, workers }
    }
}

/// How often the control hash is read: the latency of pause/resume/weight.
pub const CONTROL_POLL: Duration = Duration::from_millis(500);

/// Publishes the state hash and the heartbeat (TTL `heartbeat`, refreshed
/// every third of it), and reads the control hash, until `stop`.
pub async fn heartbeat_loop(
    wq: WorkQueue,
    status: Arc<NodeStatus>,
    disk: DiskReserve,
    // fixed fields of the state hash: the address, the zone, the module
    published: Vec<(&'static str, String)>,
    heartbeat: Duration,
    control_tx: watch::Sender<Control>,
    mut stop: Shutdown,
) {
    let refresh = (heartbeat / 3).max(Duration::from_millis(100));
    let mut last_beat: Option<tokio::time::Instant> = None;
    let mut failures = 0u32;
    let mut publish_now = false;
    let control_key = wq.keys().control(wq.worker());
    loop {
        let mut conn = wq.conn();
        match redis::cmd("HGETALL")
            .arg(&control_key)
            .query_async::<HashMap<String, String>>(&mut conn)
            .await
        {
            Ok(h) => {
                control_tx.send_if_modified(|c| {
                    let new = Control::from_hash(&h);
                    let changed = *c != new;
                    if changed {
                        tracing::info!(paused = new.paused, workers = ?new.workers, "operator control changed");
                        *c = new;
                    }
                    changed
                });
            }
            Err(e) => tracing::debug!("cannot read {control_key}: {e}"),
        }
        if publish_now || last_beat.is_none_or(|t| t.elapsed() >= refresh) {
            match beat(&wq, &status, &disk, &published, heartbeat).await {
                Ok(()) => {
                    failures = 0;
                    last_beat = Some(tokio::time::Instant::now());
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!("cannot refresh the heartbeat ({failures} tries): {e}");
                    }
                }
            }
        }
        publish_now = tokio::select! {
            _ = tokio::time::sleep(CONTROL_POLL.min(refresh)) => false,
            _ = status.publish.notified() => true,
            _ = stop.wait() => return,
        };
    }
}

async fn beat(
    wq: &WorkQueue,
    status: &NodeStatus,
    disk: &DiskReserve,
    published: &[(&'static str, String)],
    ttl: Duration,
) -> redis::RedisResult<()> {
    let space = disk.space().ok();
    if let Some(sp) = space {
        *status.disk.lock().expect("status lock") = Some(sp);
    }
    let reason = status.pause_reason.lock().expect("status lock").clone();
    let mut fields: Vec<(&str, String)> = vec![
        (state::KIND, "node".into()),
        (
            state::PAUSED,
            if reason.is_some() { "1" } else { "0" }.into(),
        ),
        (state::PAUSE_REASON, reason.unwrap_or_default()),
        (
            state::DISK_FREE,
            space.map(|s| s.free.to_string()).unwrap_or_default(),
        ),
        (
            state::DISK_TOTAL,
            space.map(|s| s.total.to_string()).unwrap_or_default(),
        ),
        (
            state::ACTIVE,
            status.active.load(Ordering::SeqCst).to_string(),
        ),
        (
            state::WORKERS,
            status.workers.load(Ordering::SeqCst).to_string(),
        ),
        (state::VERSION, env!("CARGO_PKG_VERSION").into()),
        (state::STARTED_MS, status.started_ms.to_string()),
    ];
    fields.extend(published.iter().cloned());
    wq.heartbeat(ttl, &fields).await
}

/// Every half heartbeat: re-queues the in-flight messages of nodes whose
/// heartbeat expired, and forwards their unsent results.
pub async fn reaper_loop(wq: WorkQueue, sink: ResultSink, heartbeat: Duration, mut stop: Shutdown) {
    let every = (heartbeat / 2).max(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait() => return,
        }
        match wq.reap_expired().await {
            Ok(reaped) => {
                for (node, o) in reaped {
                    tracing::warn!(dead_node = %node, requeued = o.requeued, dead_lettered = o.dead_lettered, "took over the in-flight messages of a node whose heartbeat expired");
                }
            }
            Err(e) => tracing::warn!("reaper: {e}"),
        }
        if sink.via_outbox() {
            if let Err(e) = forward_dead_outboxes(&wq, &sink).await {
                tracing::warn!("reaper: forwarding dead nodes' results: {e}");
            }
        }
    }
}

async fn forward_dead_outboxes(wq: &WorkQueue, sink: &ResultSink) -> redis::RedisResult<()> {
    let mut conn = wq.conn();
    let workers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(wq.keys().workers())
        .query_async(&mut conn)
        .await?;
    for w in workers.into_iter().filter(|w| w != wq.worker()) {
        let alive: bool = redis::cmd("EXISTS")
            .arg(wq.keys().alive(&w))
            .query_async(&mut conn)
            .await?;
        if alive {
            continue;
        }
        let outbox = wq.keys().outbox(&w);
        let n = sink.forward_other(&conn, &outbox).await?;
        if n > 0 {
            tracing::warn!(dead_node = %w, results = n, "forwarded the unsent results of a dead node");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_hash_parsing() {
        let h: HashMap<String, String> = [
            ("paused".to_string(), "1".to_string()),
            ("workers".to_string(), " 3 ".to_string()),
        ]
        .into();
        assert_eq!(
            Control::from_hash(&h),
            Control {
                paused: true,
                workers: Some(3)
            }
        );
        let h: HashMap<String, String> = [
            ("paused".to_string(), "0".to_string()),
            ("workers".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(Control::from_hash(&h), Control::default());
    }
}
