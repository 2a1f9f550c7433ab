//! Wakes the dispatcher as soon as any of its lists gets an item, so a
//! message on a lower list is picked up at once rather than after the
//! `queue_wait_ms` poll (which stays as the fallback when a watcher is down).
//!
//! Each list has a watcher with its own blocking connection, waiting with
//! [`watch::wait_for_item`] (which leaves the list exactly as it was), so a
//! watcher never holds or moves a message; taking stays the pop script's
//! job, in priority order.
//!
//! Watchers block only when the dispatcher arms them (it found nothing to
//! take and has a free slot), so a backlog does not make them spin.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;
use ubackup_common::queue::watch;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::RedisTarget;

/// Server-side block of one watch; a timeout only means "look again".
const BLOCK_SECS: f64 = 5.0;
/// Client-side bound on one watch (a silent network must not hang it).
const WATCH_GUARD: Duration = Duration::from_secs(10);

/// The watchers of one node's lists.
pub struct ListWatch {
    arms: Vec<Arc<Notify>>,
    wake: Arc<Notify>,
}

impl ListWatch {
    /// One watcher task per list, until `stop`.
    pub fn start(target: &RedisTarget, lists: &[String], stop: &Shutdown) -> ListWatch {
        let wake = Arc::new(Notify::new());
        let arms = lists
            .iter()
            .map(|list| {
                let arm = Arc::new(Notify::new());
                tokio::spawn(watch(
                    target.clone(),
                    list.clone(),
                    arm.clone(),
                    wake.clone(),
                    stop.clone(),
                ));
                arm
            })
            .collect();
        ListWatch { arms, wake }
    }

    /// Asks every watcher to wait (again) for its list to have an item.
    pub fn arm(&self) {
        for a in &self.arms {
            a.notify_one();
        }
    }

    /// Arms every watcher but the last list's: while the node's one
    /// replication slot is busy, a task waiting on its replication list
    /// (the last) is no reason to look again, and arming its watcher would
    /// wake the dispatcher at once, over and over, for as long as the copy
    /// runs (measured: first copies 1.4× slower with `copies = 2`).
    pub fn arm_above_last(&self) {
        let n = self.arms.len().saturating_sub(1).max(1);
        for a in &self.arms[..n] {
            a.notify_one();
        }
    }

    /// Arms only the watcher of the top list (the express slot's wait).
    pub fn arm_top(&self) {
        if let Some(a) = self.arms.first() {
            a.notify_one();
        }
    }

    /// Resolves once a watched list has had an item since it was armed.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

async fn watch(
    target: RedisTarget,
    list: String,
    arm: Arc<Notify>,
    wake: Arc<Notify>,
    mut stop: Shutdown,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = arm.notified() => {}
            _ = stop.wait() => return,
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match target.blocking_connection().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::debug!(%list, "list watcher cannot connect ({e}); the dispatcher polls meanwhile");
                    }
                    if stop.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    arm.notify_one();
                    continue;
                }
            },
        };
        let r = tokio::select! {
            r = tokio::time::timeout(WATCH_GUARD, watch::wait_for_item(c, &list, BLOCK_SECS)) => r,
            _ = stop.wait() => return,
        };
        match r {
            Ok(Ok(true)) => {
                failures = 0;
                wake.notify_one();
            }
            // the block timed out: wait until armed again
            Ok(Ok(false)) => failures = 0,
            Ok(Err(_)) | Err(_) => {
                // a new connection next time; the dispatcher's poll covers the gap
                conn = None;
                arm.notify_one();
            }
        }
    }
}
