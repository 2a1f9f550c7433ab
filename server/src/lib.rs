//! `ubackup-server`, the pull node: takes backup messages from prioritized
//! Redis lists, rsyncs each file from its database host into the original
//! layout, and pushes a result for the indexer. Crash-safe (at-least-once,
//! fenced acks, idempotent landing), under bandwidth and disk-reserve limits.
//!
//! Layout:
//! * [`cli`]: the command line and what each command runs (`main.rs`
//!   only parses it and starts the one it names);
//! * [`config`]: the server INI (original keys + additions);
//! * [`intake`]: raw list element → validated [`intake::PullJob`] or the
//!   reason it is illegal;
//! * `worker`: the dispatcher (popping, pause, worker count, drain); it
//!   hands each taken message to `pull`, and each replication task to
//!   `replica::copy`;
//! * `listwatch`: wakes the dispatcher when any of its lists gets an item;
//! * `pull`: one message start to finish, alone (`pull::single`) or
//!   batched with messages of the same rsync source (`pull::batch`), ending
//!   in `pull::outcome` (result, fenced ack, dead-letter, quarantine, the
//!   wait before a retry);
//! * `land`: lstat / size / blake3 checks (a large file hashed while rsync
//!   wrote it, `ubackup_transport::follow`) and the atomic rename;
//! * [`disk`]: the disk reserve (statvfs);
//! * `results`: where results go (direct, or outbox + forwarder);
//! * `node`: heartbeat/state hash, operator control hash, reaper;
//! * [`prune`], [`verify`]: retention and re-verification of stored files
//!   against the catalog (`ubackup-server prune` / `verify`, and the
//!   periodic prune when `prune_interval` is set);
//! * [`replica`]: the second and third copies (`copies`), on other nodes
//!   and zones: the task after a first copy, the copy itself, the repair
//!   sweep;
//! * `failpoint`: fault injection for tests (debug builds only).
//!
//! The rsync runner, its exit codes and retry policy, the temp area and
//! the storage layout are `ubackup-transport`'s, shared with restore.
//! Only what the binary and the tests use is public.

pub mod cli;
pub mod config;
pub mod disk;
mod failpoint;
pub mod intake;
mod land;
mod listwatch;
mod node;
pub mod prune;
mod pull;
pub mod replica;
mod results;
pub mod verify;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::queue::Requeue;
use ubackup_common::shutdown::{self, Shutdown};
use ubackup_common::{Keys, WorkQueue};

pub use config::ServerConfig;

use ubackup_transport::TempArea;

use crate::disk::DiskReserve;
use crate::node::{Control, NodeStatus};
use crate::pull::Ctx;
use crate::results::ResultSink;

/// A failure that stops the node (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot prepare {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the node until `stop` trips, then drains and re-queues. The config
/// comes through a watch channel so that SIGHUP (see [`reload_on_sighup`])
/// or a test can replace it while running.
pub async fn run(
    cfg_rx: watch::Receiver<Arc<ServerConfig>>,
    stop: Shutdown,
) -> Result<(), RunError> {
    let cfg = cfg_rx.borrow().clone();
    if !cfg.unknown_keys.is_empty() {
        tracing::warn!(keys = ?cfg.unknown_keys, "{}: [global] has keys ubackup-server does not know (typos?)", cfg.file.display());
    }
    if let Some(fp) = failpoint::describe() {
        tracing::warn!("UBACKUP_FAILPOINT: {fp}");
    }
    std::fs::create_dir_all(&cfg.server_root_path).map_err(|source| RunError::Storage {
        path: cfg.server_root_path.clone(),
        source,
    })?;
    let tmp_dir = cfg.node_tmp_dir();
    let (tmp, cleanup) =
        tokio::task::spawn_blocking(move || TempArea::prepare(&tmp_dir).map_err(|e| (tmp_dir, e)))
            .await
            .expect("temp area task")
            .map_err(|(path, source)| RunError::Storage { path, source })?;
    if cleanup.killed + cleanup.removed > 0 {
        tracing::warn!(
            killed_rsync = cleanup.killed,
            removed = cleanup.removed,
            "cleaned up after a previous run that did not stop cleanly"
        );
    }

    let keys = Keys::new(&cfg.key_prefix);
    // with copies, the replication list is the lowest-priority list
    let replica = match replica::open(&cfg, &keys, stop.clone()).await {
        Some(r) => r,
        None => return Ok(()),
    };
    let mut queues = cfg.queues.clone();
    if let Some(r) = &replica {
        queues.push(r.list.clone());
    }
    let Some(wq) = connect(&cfg, &keys, queues, stop.clone()).await else {
        return Ok(());
    };
    let sink = ResultSink::new(
        &cfg.redis,
        &cfg.message_redis,
        &cfg.message_queue,
        &keys,
        &cfg.node_id,
    );
    tracing::info!(
        node = %cfg.node_id, queues = ?cfg.queues, redis = %cfg.redis, results = %sink.ack_list,
        via_outbox = sink.via_outbox(), workers = cfg.work_thread, "ubackup-server {} started", env!("CARGO_PKG_VERSION")
    );

    // Own in-flight messages at start mean the previous run crashed.
    let mut stop_for_retry = stop.clone();
    loop {
        match wq.requeue_own(Requeue::Restart).await {
            Ok(o) => {
                if o.requeued + o.dead_lettered > 0 {
                    tracing::warn!(
                        requeued = o.requeued,
                        dead_lettered = o.dead_lettered,
                        "re-queued the messages a previous run left in flight"
                    );
                }
                break;
            }
            Err(e) => {
                tracing::warn!("cannot re-queue own in-flight messages yet: {e}");
                if stop_for_retry.sleep(Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
        }
    }

    let status = Arc::new(NodeStatus {
        started_ms: now_ms(),
        ..Default::default()
    });
    status
        .workers
        .store(cfg.work_thread, std::sync::atomic::Ordering::SeqCst);
    let disk = DiskReserve::new(&cfg.server_root_path);
    let (control_tx, control_rx) = watch::channel(Control::default());
    let (hb_trigger, hb_stop) = shutdown::channel();
    let (abort_trigger, abort) = shutdown::channel();
    let (fin_trigger, fin) = shutdown::channel();

    let heartbeat = tokio::spawn(node::heartbeat_loop(
        wq.clone(),
        status.clone(),
        disk.clone(),
        std::iter::once((state::IP, cfg.myip.clone()))
            .chain(replica::advertised(&cfg, replica.is_some()))
            .collect(),
        cfg.heartbeat,
        control_tx,
        hb_stop.clone(),
    ));
    let reaper = tokio::spawn(node::reaper_loop(
        wq.clone(),
        sink.clone(),
        cfg.heartbeat,
        stop.clone(),
    ));
    let pruner = prune::spawn_periodic(cfg.clone(), stop.clone());
    let repairer = replica.clone().map(|r| {
        tokio::spawn(replica::repair::sweep_loop(
            cfg.clone(),
            r,
            wq.clone(),
            stop.clone(),
        ))
    });
    let forwarder = tokio::spawn({
        let sink = sink.clone();
        let conn = wq.conn();
        async move { sink.forward_own(conn, fin).await }
    });

    let ctx = Arc::new(Ctx {
        cfg: cfg_rx,
        wq: wq.clone(),
        sink,
        disk,
        tmp,
        status,
        stop: stop.clone(),
        abort,
        replica,
        lookahead: Default::default(),
    });
    worker::dispatch(ctx.clone(), control_rx, move || abort_trigger.trigger()).await;

    // Every job has ended: what is still in flight was not finished.
    match wq.requeue_own(Requeue::Drain).await {
        Ok(o) if o.requeued > 0 => {
            tracing::info!(requeued = o.requeued, "re-queued unfinished messages")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "cannot re-queue unfinished messages now ({e}); the next start or another node will"
        ),
    }
    fin_trigger.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), forwarder).await;
    let _ = reaper.await;
    if let Some(p) = pruner {
        let _ = p.await;
    }
    if let Some(r) = repairer {
        let _ = r.await;
    }
    hb_trigger.trigger();
    let _ = heartbeat.await;
    // the last word for the reporter: not taking work, nothing running
    let final_state = redis::pipe()
        .hset(keys.state(&cfg.node_id), state::PAUSED, "1")
        .hset(keys.state(&cfg.node_id), state::PAUSE_REASON, "stopped")
        .hset(keys.state(&cfg.node_id), state::ACTIVE, "0")
        .query_async::<()>(&mut wq.conn())
        .await;
    if let Err(e) = final_state.and(wq.retire().await) {
        tracing::warn!("cannot remove the heartbeat: {e}");
    }
    let leftovers = ctx.tmp.leftovers();
    if !leftovers.is_empty() {
        tracing::warn!(
            ?leftovers,
            "temp entries left behind; removed at the next start"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connects to the queue Redis, retrying until it answers or `stop` trips.
async fn connect(
    cfg: &ServerConfig,
    keys: &Keys,
    queues: Vec<String>,
    mut stop: Shutdown,
) -> Option<WorkQueue> {
    let mut failures = 0u32;
    loop {
        match WorkQueue::connect(&cfg.redis, keys.clone(), &cfg.node_id, queues.clone()).await {
            Ok(wq) => return Some(wq),
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 30 == 0 {
                    tracing::warn!(redis = %cfg.redis, "cannot connect to the queue Redis yet ({failures} tries): {e}");
                }
                if stop
                    .sleep(Duration::from_secs(1).min(Duration::from_millis(200) * failures))
                    .await
                {
                    return None;
                }
            }
        }
    }
}

/// On SIGHUP, re-reads `path`. A broken file is reported and the running
/// config kept; keys that cannot change while running (connections,
/// lists, paths) keep their old values with a warning.
pub fn reload_on_sighup(
    path: PathBuf,
    tx: watch::Sender<Arc<ServerConfig>>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let old = tx.borrow().clone();
            match ServerConfig::load(&path) {
                Err(e) => {
                    tracing::error!("SIGHUP: config not reloaded, keeping the running one: {e}")
                }
                Ok(new) => {
                    let fixed = old.fixed_keys_changed(&new);
                    let mut merged = new;
                    if !fixed.is_empty() {
                        tracing::warn!(keys = ?fixed, "SIGHUP: these keys only change at a restart; keeping their running values");
                        merged.node_id = old.node_id.clone();
                        merged.server_root_path = old.server_root_path.clone();
                        merged.redis = old.redis.clone();
                        merged.queues = old.queues.clone();
                        merged.message_redis = old.message_redis.clone();
                        merged.message_queue = old.message_queue.clone();
                        merged.key_prefix = old.key_prefix.clone();
                        merged.log = old.log.clone();
                        merged.error_log = old.error_log.clone();
                    }
                    tracing::info!(
                        work_thread = merged.work_thread,
                        rsync_bwlimit = merged.rsync_bwlimit,
                        node_bwlimit = merged.node_bwlimit,
                        reserve_bytes = merged.reserve_bytes,
                        retry = merged.retry,
                        "SIGHUP: config reloaded from {}",
                        path.display()
                    );
                    let _ = tx.send(Arc::new(merged));
                }
            }
        }
    });
    Ok(())
}
