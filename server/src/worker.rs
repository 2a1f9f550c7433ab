//! The dispatcher: takes a message whenever a worker slot is free and the
//! node is not paused, and runs each as a job task. Popping, pausing and
//! the worker count all live here, so "stop popping" is one place.
//!
//! Only the dispatcher takes from Redis (the pop script, strict priority).
//! When there is nothing to take it sleeps until a list watcher
//! ([`crate::listwatch`]) sees an item on any list, or `queue_wait_ms`
//! passes (the fallback poll), so a message on any list wakes it at once
//! and an idle node costs one pop script per `queue_wait_ms` whatever the
//! number of workers.
//!
//! While every worker is busy, one **express slot** stays open for the top
//! list only (with two lists or more): a `level1` message starts at once
//! instead of waiting for a worker to finish (a batch of small files can
//! take a while), so at most `workers + 1` pulls run, the extra one always
//! from the top list.
//!
//! With `copies` > 1 a replication task (the node's lowest-priority list)
//! runs in a slot of its own, one at a time: it is taken only when no
//! backup message waits and a worker is free, and once running it does
//! not count against the workers, so at most `workers + 2` jobs run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::listwatch::ListWatch;
use crate::node::Control;
use crate::pull::{self, Ctx};

/// Why the node is not popping, as a short category for "log once".
fn category(reason: &Option<String>) -> &'static str {
    match reason.as_deref() {
        None => "running",
        Some(r) if r.starts_with("operator") => "operator",
        Some(_) => "disk",
    }
}

/// Runs until `ctx.stop`, then drains: running jobs get `drain` to finish,
/// after which `abort_now` kills the rest. Returns once every job ended.
pub(crate) async fn dispatch(
    ctx: Arc<Ctx>,
    mut control: watch::Receiver<Control>,
    abort_now: impl FnOnce(),
) {
    let mut jobs: JoinSet<()> = JoinSet::new();
    // jobs running in the express slot (0 or 1), counted inside `jobs`
    let express = Arc::new(AtomicUsize::new(0));
    let watch = ListWatch::start(ctx.wq.target(), ctx.wq.queues(), &ctx.stop);
    let mut stop = ctx.stop.clone();
    let mut cfg_rx = ctx.cfg.clone();
    let mut last_category = "running";
    let mut redis_failures = 0u32;
    loop {
        while let Some(r) = jobs.try_join_next() {
            report_join(r);
        }
        if stop.is_triggered() {
            break;
        }
        let cfg = ctx.cfg();
        let ctl = control.borrow_and_update().clone();
        let desired = ctl.workers.unwrap_or(cfg.work_thread);
        ctx.status.workers.store(desired, Ordering::SeqCst);

        let reason = if ctl.paused {
            Some("operator: paused via the control hash".to_string())
        } else {
            match ctx.disk.may_pop(cfg.reserve_bytes) {
                Ok(sp) => {
                    *ctx.status.disk.lock().expect("status lock") = Some(sp);
                    None
                }
                Err(r) => Some(r),
            }
        };
        let cat = category(&reason);
        if cat != last_category {
            match &reason {
                Some(r) => tracing::warn!(reason = %r, "pausing: not taking new messages"),
                None => tracing::info!("resuming: taking messages again"),
            }
            *ctx.status.pause_reason.lock().expect("status lock") = reason.clone();
            ctx.status.publish.notify_one();
            last_category = cat;
        } else {
            *ctx.status.pause_reason.lock().expect("status lock") = reason.clone();
        }

        // the express slot and the replication slot are extra: a running
        // copy never takes a worker from backup messages
        let replicating = ctx
            .replica
            .as_ref()
            .map_or(0, |r| r.running.load(Ordering::SeqCst));
        let normal = jobs
            .len()
            .saturating_sub(express.load(Ordering::SeqCst) + replicating);
        if reason.is_some() || normal >= desired {
            let may_express =
                reason.is_none() && cfg.queues.len() > 1 && express.load(Ordering::SeqCst) == 0;
            if may_express {
                match ctx.wq.try_take_top(1).await {
                    Ok(items) if !items.is_empty() => {
                        for t in items {
                            tracing::debug!(
                                "all workers busy: a top-list message starts in the express slot"
                            );
                            let guard = Express::new(&express);
                            let c = ctx.clone();
                            jobs.spawn(async move {
                                let _guard = guard;
                                pull::process(c, t).await
                            });
                        }
                        continue;
                    }
                    _ => watch.arm_top(),
                }
            }
            // wait for a reason to look again: a job ending, the operator,
            // a reload, shutdown, (for the disk) time, or (for the express
            // slot) a message on the top list
            tokio::select! {
                r = jobs.join_next(), if !jobs.is_empty() => { if let Some(r) = r { report_join(r) } }
                _ = watch.woken(), if may_express => {}
                _ = changed(&mut control) => {}
                _ = changed(&mut cfg_rx) => {}
                _ = tokio::time::sleep(Duration::from_secs(1)), if reason.is_some() => {}
                _ = stop.wait() => {}
            }
            continue;
        }

        // one replication task at a time, and only when no backup message
        // waits (its list is the last one, so strict priority does that)
        let replica_busy = ctx
            .replica
            .as_ref()
            .is_some_and(|r| r.running.load(Ordering::SeqCst) > 0);
        let taken = tokio::select! {
            r = ctx.wq.try_take_above_last(1), if replica_busy => r,
            r = ctx.wq.try_take(1), if !replica_busy => r,
            // a message moved by an abandoned pop script is in our
            // in-flight list: the drain re-queues it
            _ = stop.wait() => break,
        };
        match taken {
            Ok(items) if items.is_empty() => {
                if redis_failures > 0 {
                    tracing::info!("queue Redis {} reachable again", ctx.wq.target());
                    redis_failures = 0;
                }
                // nothing to take: sleep until a list gets an item, the
                // fallback poll, the operator, a reload or shutdown; with
                // the replication slot busy, until a list above it gets an
                // item or a job (that copy among them) ends
                if replica_busy {
                    watch.arm_above_last();
                } else {
                    watch.arm();
                }
                tokio::select! {
                    r = jobs.join_next(), if replica_busy => { if let Some(r) = r { report_join(r) } }
                    _ = watch.woken() => {}
                    _ = tokio::time::sleep(cfg.queue_wait) => {}
                    _ = changed(&mut control) => {}
                    _ = changed(&mut cfg_rx) => {}
                    _ = stop.wait() => {}
                }
            }
            Ok(items) => {
                if redis_failures > 0 {
                    tracing::info!("queue Redis {} reachable again", ctx.wq.target());
                    redis_failures = 0;
                }
                for t in items {
                    // the replication slot is counted from the take on, so
                    // the next turn of this loop already sees it busy
                    let rep = ctx.replica.clone().filter(|r| r.list == t.queue);
                    let c = ctx.clone();
                    match rep {
                        // a replication task, not a backup message
                        Some(rep) => {
                            let slot = Express::new(&rep.running);
                            jobs.spawn(async move {
                                let _slot = slot;
                                crate::replica::copy::run(&c, &rep, t).await
                            });
                        }
                        None => {
                            jobs.spawn(pull::process(c, t));
                        }
                    }
                }
            }
            Err(e) => {
                redis_failures += 1;
                let delay = Duration::from_millis(250 * u64::from(redis_failures.min(20)));
                if redis_failures == 1 || redis_failures % 20 == 0 {
                    tracing::warn!(
                        failures = redis_failures,
                        "cannot take from {}: {e}",
                        ctx.wq.target()
                    );
                }
                if stop.sleep(delay).await {
                    break;
                }
            }
        }
    }

    let drain = ctx.cfg().drain;
    if !jobs.is_empty() {
        tracing::info!(
            running = jobs.len(),
            "draining: letting running pulls finish for up to {drain:?}"
        );
    }
    let finished = tokio::time::timeout(drain, async {
        while let Some(r) = jobs.join_next().await {
            report_join(r);
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            running = jobs.len(),
            "drain deadline passed: killing the remaining pulls; their messages are re-queued"
        );
        abort_now();
        let killed = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(r) = jobs.join_next().await {
                report_join(r);
            }
        })
        .await;
        if killed.is_err() {
            jobs.abort_all();
            while jobs.join_next().await.is_some() {}
        }
    }
}

/// Counts a job in the express slot, or the replication slot, while it
/// runs (also if it panics).
struct Express(Arc<AtomicUsize>);

impl Express {
    fn new(count: &Arc<AtomicUsize>) -> Express {
        count.fetch_add(1, Ordering::SeqCst);
        Express(count.clone())
    }
}

impl Drop for Express {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves on a change; never, once the sender is gone (instead of
/// resolving at once, which would spin the loop).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn report_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        if e.is_panic() {
            tracing::error!("a job panicked: {e}; its message stays in flight and is re-queued at the next start");
        }
    }
}
