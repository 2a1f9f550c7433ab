//! One replication task on the node that makes the copy: check what the
//! catalog already has, pull from a good copy, verify against the catalog,
//! land, record, then the fenced ack. The task stays in this node's
//! in-flight list until that ack or a dead-letter removes it; an early
//! return without either (shutdown) leaves it for the drain or restart
//! re-queue, like a backup message.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::Instrument;
use ubackup_catalog::{CatalogRecord, CopyRecord};
use ubackup_common::backoff::Backoff;
use ubackup_common::message::now_ms;
use ubackup_common::Taken;
use ubackup_transport::rsync::{self, RsyncOptions};
use ubackup_transport::source::source_url;
use ubackup_transport::{AttemptError, RsyncSource};

use super::peers::Peer;
use super::task::ReplicaTask;
use super::Replication;
use crate::node::CountGuard;
use crate::pull::Ctx;

/// How long a task waits for the indexer to store the record it copies.
const RECORD_WAIT: Duration = Duration::from_secs(60);

/// How one task ended (for the log line and the tests' reading of it).
#[derive(Debug)]
enum Ending {
    /// The copy is on disk here and recorded.
    Copied { from: String, bytes: u64 },
    /// Nothing to do: this node already holds a good copy, or there are
    /// as many good copies as wanted, or the backup is gone.
    Nothing(String),
    /// No copy can be made from what exists now: dead-lettered with this.
    Impossible(String),
    /// Shutdown or fenced off: the task stays in flight.
    Abandoned(String),
    /// Cannot decide now (Redis did not answer): given back to the list
    /// after a pause, for this node or another to try again.
    Later(String),
}

pub(crate) async fn run(ctx: &Ctx, rep: &Replication, taken: Taken) {
    let _active = CountGuard::new(&ctx.status.active);
    let task: ReplicaTask = match serde_json::from_str(&taken.payload) {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("not a replication task: {e}");
            tracing::error!(list = %taken.queue, "{reason}");
            dead_letter(ctx, &taken, &reason).await;
            return;
        }
    };
    let span =
        tracing::info_span!("replica", id = %task.id, file = %task.rel_path, from = %task.from);
    async {
        let me = ctx.cfg().node_id.clone();
        let lock = ctx.wq.keys().replica_lock(&task.id);
        // held while the copy runs, refreshed every heartbeat: a node that
        // dies mid-copy frees it within a few heartbeats
        let ttl = ctx.cfg().heartbeat * 3;
        let ended = match ubackup_common::lock::take(&mut ctx.wq.conn(), &lock, &me, ttl).await {
            Ok(true) => {
                let keep = tokio::spawn({
                    let (mut conn, lock, me) = (ctx.wq.conn(), lock.clone(), me.clone());
                    let every = ctx.cfg().heartbeat;
                    async move {
                        loop {
                            tokio::time::sleep(every).await;
                            if let Ok(false) = ubackup_common::lock::refresh(&mut conn, &lock, &me, ttl).await {
                                return;
                            }
                        }
                    }
                });
                let ended = copy(ctx, rep, &taken, &task).await;
                keep.abort();
                let _ = ubackup_common::lock::release(&mut ctx.wq.conn(), &lock, &me).await;
                ended
            }
            Ok(false) => Ending::Later("another node is copying this backup now".into()),
            Err(e) => Ending::Later(format!("cannot take the copy lock: {e}")),
        };
        if !matches!(ended, Ending::Abandoned(_) | Ending::Later(_)) {
            if let Err(e) = super::task::clear_marker(&mut ctx.wq.conn(), ctx.wq.keys(), &task.id, &me).await {
                tracing::debug!("cannot clear the push marker: {e}");
            }
        }
        match ended {
            Ending::Copied { from, bytes } => {
                tracing::info!(source = %from, bytes, why = %task.why, "copy landed, verified and recorded");
                ack(ctx, &taken).await;
            }
            Ending::Nothing(why) => {
                tracing::info!("no copy needed: {why}");
                ack(ctx, &taken).await;
            }
            Ending::Impossible(why) => {
                tracing::warn!("cannot make the copy: {why}");
                dead_letter(ctx, &taken, &why).await;
            }
            Ending::Abandoned(why) => {
                tracing::info!("replication stopped ({why}); the task stays queued");
            }
            Ending::Later(why) => {
                tracing::warn!("{why}; giving the task back");
                if !ctx.stop.clone().sleep(Duration::from_secs(1)).await {
                    let _ = crate::pull::retry_redis(ctx, "give back", || ctx.wq.release(&taken)).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn copy(ctx: &Ctx, rep: &Replication, taken: &Taken, task: &ReplicaTask) -> Ending {
    let cfg = ctx.cfg();
    let me = cfg.node_id.as_str();
    let Some(record) = (match wait_for_record(ctx, rep, &task.id).await {
        Ok(r) => r,
        Err(e) => return e,
    }) else {
        return Ending::Impossible(format!(
            "the catalog has no record {} after {RECORD_WAIT:?} (is the indexer running?); the repair sweep queues the copy again once it has",
            task.id
        ));
    };
    if !record.is_success() && record.first_copy().is_none() {
        return Ending::Nothing("the backup is not a stored file (failed or illegal)".into());
    }
    if record.meta.deleted_at.is_some() {
        return Ending::Nothing("the backup was pruned".into());
    }
    let wanted = cfg.replica.copies_for(&record.result.back_type) as usize;
    let good = record.good_copies();
    if good.iter().any(|c| c.node == me) {
        return Ending::Nothing("this node already holds a good copy".into());
    }
    // read now, not from the cache: a node that just went down must not
    // count (the repair sweep that queued this task did not count it)
    let peers = match super::peers::nodes(&mut ctx.wq.conn(), ctx.wq.keys()).await {
        Ok(p) => p,
        Err(e) => return Ending::Later(format!("cannot read the other nodes: {e}")),
    };
    let counted = good
        .iter()
        .filter(|c| counts(c, &record, &peers, &cfg.replica))
        .count();
    if counted >= wanted {
        return Ending::Nothing(format!("{counted} good copies already, {wanted} wanted"));
    }
    // the task's source first, then the other good copies on live nodes
    let mut sources: Vec<&CopyRecord> = good.iter().collect();
    sources.sort_by_key(|c| c.node != task.from);
    let final_path = cfg.server_root_path.join(&task.rel_path);
    // a copy of an encrypted file is the same ciphertext, checked as such
    let (size, checksum) = record.result.stored();
    let (size, checksum) = (size.max(0) as u64, checksum.map(str::to_string));

    // a copy landed by a run that died before recording it
    if let Ok(()) = check_file(&final_path, size, checksum.as_deref(), Vec::new()).await {
        return match record_copy(ctx, rep, &task.id, &cfg, &final_path).await {
            Some(()) => Ending::Copied {
                from: "(landed by an earlier run)".into(),
                bytes: size,
            },
            None => Ending::Abandoned("shutdown while recording".into()),
        };
    }

    let mut problems = Vec::new();
    for src in sources {
        let Some(from) = source_of(src, &record, &peers, &cfg.replica) else {
            problems.push(format!("{}: node is not up", src.node));
            continue;
        };
        match pull_from(
            ctx,
            &cfg,
            task,
            &from,
            &final_path,
            size,
            checksum.as_deref(),
        )
        .await
        {
            Ok(()) => {
                if matches!(ctx.wq.holds(taken).await, Ok(false)) {
                    return Ending::Abandoned("another node took the task over".into());
                }
                return match record_copy(ctx, rep, &task.id, &cfg, &final_path).await {
                    Some(()) => Ending::Copied {
                        from: src.node.clone(),
                        bytes: size,
                    },
                    None => Ending::Abandoned("shutdown while recording".into()),
                };
            }
            Err(PullError::Stopped) => return Ending::Abandoned("shutdown".into()),
            Err(PullError::Failed(why)) => problems.push(format!("from {}: {why}", src.node)),
        }
    }
    if problems.is_empty() {
        problems.push("no good copy to pull from".into());
    }
    Ending::Impossible(problems.join("; "))
}

/// The record, waiting a while for the indexer (`Ok(None)`: still none).
async fn wait_for_record(
    ctx: &Ctx,
    rep: &Replication,
    id: &str,
) -> Result<Option<CatalogRecord>, Ending> {
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut stop = ctx.stop.clone();
    loop {
        match rep.catalog.get(id).await {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) if tokio::time::Instant::now() >= deadline => return Ok(None),
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot read the catalog yet: {e}"),
        }
        if stop.sleep(backoff.next_delay()).await {
            return Err(Ending::Abandoned(
                "shutdown while waiting for the catalog".into(),
            ));
        }
    }
}

/// Whether a good copy of `r` counts toward `copies`: its node is up or
/// has not been down for `repair_after_secs`. A node that is not
/// registered counts only as the first copy of an original node's result
/// (no `node_id`): original nodes never register, and nothing says it is
/// gone. One of ours that is not registered was forgotten.
pub(crate) fn counts(
    c: &CopyRecord,
    r: &CatalogRecord,
    peers: &[Peer],
    rc: &super::config::ReplicaConfig,
) -> bool {
    match peers.iter().find(|p| p.node == c.node) {
        Some(p) => p.holds_copies(rc.repair_after),
        None => is_original_first(c, r),
    }
}

/// A copy on one of our nodes that is no longer registered: it was
/// forgotten (`ubackup-reporter forget-node`), its copies are gone.
pub(crate) fn forgotten(c: &CopyRecord, r: &CatalogRecord, peers: &[Peer]) -> bool {
    !peers.iter().any(|p| p.node == c.node) && !is_original_first(c, r)
}

fn is_original_first(c: &CopyRecord, r: &CatalogRecord) -> bool {
    r.result.node_id.is_none() && c.node == r.node()
}

/// The module to pull a copy from: the one its node publishes, or (an
/// original node) this node's own `node_rsync_module` / `node_rsync_port`
/// at the copy's address.
fn source_of(
    c: &CopyRecord,
    r: &CatalogRecord,
    peers: &[Peer],
    rc: &super::config::ReplicaConfig,
) -> Option<(RsyncSource, u16)> {
    match peers.iter().find(|p| p.node == c.node) {
        Some(p) if p.alive && p.replicates => Some((
            RsyncSource {
                ip: p.ip.parse().ok()?,
                port: p.module_port,
                module: p.module.clone(),
            },
            p.module_tls_port,
        )),
        Some(_) => None,
        None if is_original_first(c, r) => Some((
            RsyncSource {
                ip: c.ip.parse().ok()?,
                port: rc.module_port,
                module: rc.module.clone(),
            },
            rc.module_tls_port,
        )),
        None => None,
    }
}

enum PullError {
    Stopped,
    Failed(String),
}

/// Pulls `task.rel_path` from `from` into the temp area, verifies it, and
/// renames it to `final_path` (file and directory flushed).
async fn pull_from(
    ctx: &Ctx,
    cfg: &crate::config::ServerConfig,
    task: &ReplicaTask,
    (from, tls_port): &(RsyncSource, u16),
    final_path: &Path,
    size: u64,
    checksum: Option<&str>,
) -> Result<(), PullError> {
    // `rsync_tls` covers the other nodes too: a peer it names is reached
    // through its published TLS port, never in plain
    let tls = cfg
        .rsync_tls
        .as_ref()
        .and_then(|p| p.for_source(from.ip))
        .map(|o| ubackup_transport::TlsOptions {
            port: *tls_port,
            ..o.clone()
        });
    let opts = RsyncOptions {
        contimeout: cfg.rsync_contimeout,
        timeout: cfg.rsync_timeout,
        nodelay: cfg.rsync_nodelay,
        password_file: None,
        tls,
    };
    let key = format!("replica.{}", &task.id[..task.id.len().min(16)]);
    let name = final_path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let max = cfg.retry.max(1);
    let mut last = String::new();
    for attempt in 1..=max {
        if attempt > 1 {
            let wait = ubackup_transport::retry::backoff(cfg.retry_backoff, attempt);
            if ctx.stop.clone().sleep(wait).await {
                return Err(PullError::Stopped);
            }
        }
        let dir = ctx
            .tmp
            .attempt_dir(&key, attempt)
            .map_err(|e| PullError::Failed(format!("cannot create a temp dir: {e}")))?;
        let url = source_url(from, None, &task.rel_path);
        let (run, aborted, followed) = {
            let _t = CountGuard::new(&ctx.status.transfers);
            let active = ctx.status.transfers.load(Ordering::SeqCst);
            let node_share = rsync::per_transfer_kbps(cfg.rsync_bwlimit, cfg.node_bwlimit, active);
            let bw = match (node_share, cfg.replica.bwlimit) {
                (0, r) => r,
                (n, 0) => n,
                (n, r) => n.min(r),
            };
            let args = rsync::pull_args(&opts, bw, None, std::slice::from_ref(&url), &dir);
            let watchdog = rsync::watchdog(&opts, size, bw);
            tracing::debug!(
                attempt,
                bwlimit_kbps = bw,
                ?args,
                "starting rsync (replica)"
            );
            // below first copies on a busy node (rsync::Priority), and a
            // large file hashed as it arrives, as a first copy is
            let follower = ubackup_transport::follow::Follow::start(
                &dir,
                size,
                ubackup_transport::follow::Mode::Node,
            );
            let (r, aborted) = rsync::run_as(
                rsync::Priority::Background,
                &ctx.tmp,
                args,
                watchdog,
                &mut ctx.abort.clone(),
            )
            .await;
            (r, aborted, follower.finish().await)
        };
        if aborted {
            ctx.tmp.remove(&dir);
            return Err(PullError::Stopped);
        }
        let got = dir.join(&name);
        if run.result.is_ok() {
            crate::failpoint::hit("replica_pulled").await;
        }
        let outcome = match run.result {
            Ok(()) => match check_file(&got, size, checksum, followed).await {
                Ok(()) => land(&got, final_path).map_err(|e| (e, false)),
                Err(e) => Err((e, true)),
            },
            Err(e) => {
                let permanent = matches!(e, AttemptError::Exit(23 | 24 | 5));
                Err((format!("{e}; rsync said: {}", run.stderr_tail), !permanent))
            }
        };
        ctx.tmp.remove(&dir);
        match outcome {
            Ok(()) => return Ok(()),
            Err((why, again)) => {
                tracing::warn!(attempt, max_attempts = max, source = %url, "replica pull failed: {why}");
                last = why;
                if !again {
                    break;
                }
            }
        }
    }
    Err(PullError::Failed(last))
}

/// Size, regular file, and blake3 when the catalog has one (taken from
/// `followed` when the landed file is the inode followed during the pull).
async fn check_file(
    p: &Path,
    size: u64,
    checksum: Option<&str>,
    followed: Vec<ubackup_transport::follow::Followed>,
) -> Result<(), String> {
    let (p, want) = (p.to_path_buf(), checksum.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        let m = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !m.file_type().is_file() {
            return Err(format!("{} is not a regular file", p.display()));
        }
        if m.len() != size {
            return Err(format!("{} bytes, the catalog says {size}", m.len()));
        }
        if let Some(want) = want {
            let got = match ubackup_transport::follow::Followed::find(&followed, &m) {
                Some(f) => f.checksum.clone(),
                None => ubackup_common::fsutil::blake3_file(&p)
                    .map_err(|e| format!("cannot hash: {e}"))?,
            };
            if got != want {
                return Err(format!("checksum {got}, the catalog says {want}"));
            }
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| Err(format!("check task: {e}")))
}

/// Flushes the verified file, renames it into place, flushes the directory.
fn land(from: &Path, to: &Path) -> Result<(), String> {
    let dir = to.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("flush {}: {e}", from.display()))?;
    std::fs::rename(from, to).map_err(|e| format!("rename into {}: {e}", to.display()))?;
    crate::land::sync_dir(dir);
    Ok(())
}

/// Records this node's copy, retrying while the catalog is unavailable.
/// `None`: stopped first (the file stays; the re-queued task records it).
async fn record_copy(
    ctx: &Ctx,
    rep: &Replication,
    id: &str,
    cfg: &crate::config::ServerConfig,
    path: &Path,
) -> Option<()> {
    let copy = CopyRecord {
        node: cfg.node_id.clone(),
        ip: cfg.myip.clone(),
        zone: cfg.replica.zone.clone(),
        file_path: path.display().to_string(),
        state: ubackup_catalog::copies::state::OK.into(),
        recorded_at: now_ms(),
        verified_at: None,
    };
    crate::failpoint::hit("before_record_copy").await;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut stop = ctx.abort.clone();
    loop {
        match rep.catalog.record_copy(id, &copy).await {
            Ok(_) => break,
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!("cannot record the copy yet, retrying in {d:?}: {e}");
                if stop.sleep(d).await {
                    return None;
                }
            }
        }
    }
    for m in &rep.mirrors {
        mirror_copy(m.as_ref(), id, &copy, &mut stop).await?;
    }
    Some(())
}

/// Records the copy in a mirror (Elasticsearch next to SQLite), waiting a
/// while for the indexer to have written the document there.
async fn mirror_copy(
    m: &dyn ubackup_catalog::Retention,
    id: &str,
    copy: &CopyRecord,
    stop: &mut ubackup_common::shutdown::Shutdown,
) -> Option<()> {
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match m.record_copy(id, copy).await {
            Ok(true) => return Some(()),
            Ok(false) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(mirror = %m.describe(), "the mirror has no document {id} after {RECORD_WAIT:?}; the copy is recorded in the main catalog only");
                return Some(());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(mirror = %m.describe(), "cannot record the copy in the mirror yet: {e}")
            }
        }
        if stop.sleep(backoff.next_delay()).await {
            return None;
        }
    }
}

async fn ack(ctx: &Ctx, taken: &Taken) {
    let sink = ctx.sink.ack_list.clone();
    if let Some(false) = crate::pull::retry_redis(ctx, "ack", || async {
        Ok(ctx
            .wq
            .ack(&[(taken, None)], &sink)
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    })
    .await
    {
        tracing::warn!("ack fenced off: the task was re-queued while this node held it");
    }
}

async fn dead_letter(ctx: &Ctx, taken: &Taken, reason: &str) {
    let sink = ctx.sink.ack_list.clone();
    let _ = crate::pull::retry_redis(ctx, "dead-letter", || {
        ctx.wq.dead_letter(taken, reason, None, &sink)
    })
    .await;
}
