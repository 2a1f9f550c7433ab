//! One taken message, start to finish: validate, admit against the disk
//! reserve, pull with retries, land, and acknowledge with its result, or
//! dead-letter it. The message stays in this node's in-flight list until
//! the fenced ack or dead-letter removes it; every early return that does
//! neither leaves it there for the drain or restart re-queue.
//!
//! A pull whose source has more messages waiting is handed to [`batch`]
//! (one rsync for several messages); the pieces here (result records, the
//! fenced ack, the retry wait, the single pull) are shared with it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use ubackup_common::message::{now_ms, NO_FULL};
use ubackup_common::{ResultRecord, Taken};

use crate::batch;
use crate::disk::Admission;
use crate::failpoint;
use crate::intake::{intake, Intake, PullJob};
use crate::land::{self, Landed};
use crate::node::CountGuard;
use crate::retry::{backoff, AttemptError, Retry};
use crate::rsync;
use crate::worker::Ctx;

/// How a pull ended.
#[derive(Debug)]
enum Outcome {
    Landed {
        landed: Landed,
        attempts: u32,
        transfer: Duration,
    },
    Failed {
        error: AttemptError,
        attempts: u32,
        stderr: String,
    },
    /// Stopped without a result (shutdown, or the message was taken over by
    /// another node): the message stays in flight and is re-queued.
    Abandoned(String),
}

pub async fn process(ctx: Arc<Ctx>, taken: Taken) {
    let _active = CountGuard::new(&ctx.status.active);
    let span = tracing::info_span!("job", queue = %taken.queue);
    async {
        failpoint::hit("after_take").await;
        let cfg = ctx.cfg();
        match intake(&taken, &cfg) {
            Intake::Illegal { reason, result } => {
                let excerpt = ubackup_common::validate::printable(&taken.payload.chars().take(200).collect::<String>());
                tracing::warn!(%reason, payload = %excerpt, "illegal message: moved to the dead-letter list {}", ctx.wq.keys().dead(&taken.queue));
                let result = serde_json::to_string(&result).expect("result serializes");
                retry_redis(&ctx, "dead-letter", || ctx.wq.dead_letter(&taken, &reason, Some(&result), &ctx.sink.ack_list)).await;
                ctx.sink.notify();
            }
            Intake::ClientFailure(msg) => {
                let span = tracing::info_span!("msg", server_id = msg.server_id, r#type = %msg.back_type, instance = msg.instance, filename = msg.filename.as_deref().unwrap_or("-"));
                let log = msg.log.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| "the client reported a failed backup".into());
                tracing::info!(parent: &span, client_log = %log, "client reported a failed backup: result pushed without a pull");
                let result = ResultRecord::not_pulled(&msg, &cfg.myip, &cfg.node_id, log);
                ack(&ctx, &taken, &result).instrument(span).await;
            }
            Intake::Pull(job) => {
                let more = batch::claim_more(&ctx, &cfg, &job).await;
                if more.is_empty() {
                    pull(&ctx, *job).await;
                } else {
                    let mut jobs = vec![*job];
                    jobs.extend(more);
                    let span = tracing::info_span!("batch", src = %jobs[0].source.ip, port = jobs[0].source.port, module = %jobs[0].source.module, files = jobs.len());
                    batch::pull_batch(&ctx, jobs).instrument(span).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
    // the original's `interval`: a pause after each message, holding the slot
    let pause = ctx.cfg().interval;
    if !pause.is_zero() {
        ctx.stop.clone().sleep(pause).await;
    }
}

/// The span every log line about one message carries.
pub(crate) fn msg_span(job: &PullJob) -> tracing::Span {
    tracing::info_span!("msg", server_id = job.msg.server_id, r#type = %job.msg.back_type, instance = job.msg.instance, filename = %job.file_name, src = %job.source.ip)
}

/// One message pulled by its own rsync, start to finish (result and ack).
pub(crate) async fn pull(ctx: &Ctx, job: PullJob) {
    let span = msg_span(&job);
    pull_one(ctx, job).instrument(span).await
}

async fn pull_one(ctx: &Ctx, job: PullJob) {
    let cfg = ctx.cfg();
    let admission: Admission = match ctx.disk.admit(job.size, cfg.reserve_bytes) {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!(%reason, size = job.size, "not enough space above the reserve: giving the message back for another node");
            retry_redis(ctx, "give back", || ctx.wq.release(&job.taken)).await;
            return;
        }
    };
    let started = Instant::now();
    let outcome = match already_landed(&job).await {
        Some(landed) => {
            tracing::info!("already landed and verified by an earlier run: not pulled again");
            Outcome::Landed {
                landed,
                attempts: 0,
                transfer: Duration::ZERO,
            }
        }
        None => pull_with_retries(ctx, &job).await,
    };
    drop(admission);
    let duration = started.elapsed();
    let result = match outcome {
        Outcome::Abandoned(why) => {
            tracing::info!("pull abandoned ({why}); the message stays in flight and is re-queued");
            return;
        }
        Outcome::Landed {
            landed,
            attempts,
            transfer,
        } => {
            let bps = if transfer.as_millis() > 0 {
                (landed.bytes as u128 * 1000 / transfer.as_millis()) as u64
            } else {
                0
            };
            tracing::info!(attempts, bytes = landed.bytes, duration_ms = duration.as_millis() as u64, bytes_per_sec = bps, verify = %landed.verify, "landed {}", job.final_path().display());
            success_result(
                &job,
                &cfg.myip,
                &cfg.node_id,
                &landed,
                attempts,
                duration,
                bps,
            )
        }
        Outcome::Failed {
            error,
            attempts,
            stderr,
        } => {
            tracing::error!(attempts, %error, rsync_stderr = %stderr, "pull failed: pushing a failure result");
            failure_result(
                &job,
                &cfg.myip,
                &cfg.node_id,
                &error,
                attempts,
                duration,
                &stderr,
            )
        }
    };
    failpoint::hit("before_ack").await;
    ack(ctx, &job.taken, &result).await;
}

/// A file landed by an earlier run (crash between landing and the ack) is
/// not pulled again when the message has a checksum that proves it.
/// Without a checksum it is re-pulled, using the landed file as rsync's
/// basis (`--copy-dest`), and renamed over it.
pub(crate) async fn already_landed(job: &PullJob) -> Option<Landed> {
    let want = job.checksum.clone()?;
    let path = job.final_path();
    let size = job.size;
    tokio::task::spawn_blocking(move || {
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() != size {
            return None;
        }
        let sum = ubackup_common::fsutil::blake3_file(&path).ok()?;
        (sum == want).then(|| Landed {
            verify: "size+blake3".into(),
            checksum: sum,
            bytes: size,
        })
    })
    .await
    .ok()
    .flatten()
}

async fn pull_with_retries(ctx: &Ctx, job: &PullJob) -> Outcome {
    let max = ctx.cfg().retry;
    let mut prev_dir: Option<PathBuf> = None;
    let mut last: Option<(AttemptError, String)> = None;
    let mut attempt = 0;
    while attempt < max {
        attempt += 1;
        let cfg = ctx.cfg();
        if let Some((err, _)) = &last {
            // a resumed zombie must not keep working on a message another
            // node has taken over
            if let Ok(false) = ctx.wq.holds(&job.taken).await {
                return Outcome::Abandoned("another node took the message over".into());
            }
            if let Err(why) = before_retry(ctx, err, attempt).await {
                return Outcome::Abandoned(why);
            }
        }
        let dir = match ctx.tmp.attempt_dir(&job.key, attempt) {
            Ok(d) => d,
            Err(e) => {
                let err = AttemptError::Local(format!(
                    "cannot create a temp dir in {}: {e}",
                    ctx.tmp.dir().display()
                ));
                tracing::warn!(attempt, "{err}");
                last = Some((err, String::new()));
                continue;
            }
        };
        if let Some(prev) = prev_dir.take() {
            land::carry_partial(&prev, &dir);
            ctx.tmp.remove(&prev);
        }
        let (run, aborted, followed) = {
            let _transfer = CountGuard::new(&ctx.status.transfers);
            let active = ctx
                .status
                .transfers
                .load(std::sync::atomic::Ordering::SeqCst);
            let bw = rsync::per_transfer_kbps(cfg.rsync_bwlimit, cfg.node_bwlimit, active);
            let args = rsync::rsync_args(&cfg, &[job], &dir, bw);
            let watchdog = rsync::watchdog(&cfg, job.size, bw);
            tracing::debug!(attempt, bwlimit_kbps = bw, ?args, "starting rsync");
            let follower = crate::follow::Follow::start(&dir, job.size);
            let (r, aborted) = rsync::run(&ctx.tmp, args, watchdog, &mut ctx.abort.clone()).await;
            (r, aborted, follower.finish().await)
        };
        if aborted {
            ctx.tmp.remove(&dir);
            return Outcome::Abandoned("rsync killed at the end of the drain".into());
        }
        failpoint::hit("after_pull").await;
        let error = match run.result {
            Ok(()) => {
                let (j, d) = (job.clone(), dir.clone());
                let verified =
                    tokio::task::spawn_blocking(move || land::verify(&j, &d, followed.as_ref()))
                        .await
                        .unwrap_or_else(|e| {
                            Err(AttemptError::Local(format!("verification task: {e}")))
                        });
                // A node stopped past its heartbeat (a zombie) can wake up
                // here with a finished rsync after its message was re-queued
                // and done elsewhere: landing now would leave a second copy
                // that no record points at (found by the fault suite).
                if verified.is_ok() && matches!(ctx.wq.holds(&job.taken).await, Ok(false)) {
                    ctx.tmp.remove(&dir);
                    return Outcome::Abandoned(
                        "another node took the message over while this one was pulling".into(),
                    );
                }
                match verified.and_then(|l| land::rename_into_place(job, &dir).map(|()| l)) {
                    Ok(landed) => {
                        failpoint::hit("after_land").await;
                        ctx.tmp.remove(&dir);
                        return Outcome::Landed {
                            landed,
                            attempts: attempt,
                            transfer: run.elapsed,
                        };
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        tracing::warn!(attempt, max_attempts = max, error = %error, rsync_stderr = %run.stderr_tail, "pull attempt failed");
        let retry = error.may_retry(attempt, max);
        last = Some((error, run.stderr_tail));
        prev_dir = Some(dir);
        if !retry {
            break;
        }
    }
    if let Some(prev) = prev_dir {
        if let Some((AttemptError::Verify(why), _)) = &mut last {
            quarantine(&ctx.cfg(), job, &prev, why);
        }
        ctx.tmp.remove(&prev);
    }
    let (error, stderr) =
        last.unwrap_or((AttemptError::Local("no attempt made".into()), String::new()));
    Outcome::Failed {
        error,
        attempts: attempt,
        stderr,
    }
}

/// A pulled file whose checksum differs from the one the client claimed is
/// kept for inspection in `server_root_path/.ubackup-quarantine/<node_id>/`
/// (never in the destination tree, never in the catalog as a success), and
/// `why` says where, so the failure result names it.
fn quarantine(
    cfg: &crate::config::ServerConfig,
    job: &PullJob,
    attempt_dir: &std::path::Path,
    why: &mut String,
) {
    let from = attempt_dir.join(&job.file_name);
    if !why.starts_with("checksum") || !from.is_file() {
        return;
    }
    let dir = cfg.quarantine_dir();
    let to = dir.join(format!("{}.{}", job.key, job.file_name));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::rename(&from, &to)) {
        Ok(()) => {
            tracing::warn!(quarantined = %to.display(), "the pulled file fails its checksum: kept aside for inspection");
            why.push_str(&format!(
                "; the pulled file is quarantined as {}",
                to.display()
            ));
        }
        Err(e) => tracing::warn!("cannot quarantine {}: {e}", from.display()),
    }
}

/// The wait before attempt `attempt` (> 1) after `err`: the backoff, and
/// after ENOSPC until the disk reserve is met again. `Err` (why) when
/// shutdown starts meanwhile: no new attempt, the message stays in flight.
pub(crate) async fn before_retry(
    ctx: &Ctx,
    err: &AttemptError,
    attempt: u32,
) -> Result<(), String> {
    let cfg = ctx.cfg();
    let mut stop = ctx.stop.clone();
    if stop.is_triggered() {
        return Err("shutting down: no new attempt".into());
    }
    let delay = backoff(cfg.retry_backoff, attempt);
    tracing::info!(
        attempt,
        delay_ms = delay.as_millis() as u64,
        "retrying after {err}"
    );
    if stop.sleep(delay).await {
        return Err("shutting down during the retry backoff".into());
    }
    if err.retry() == Retry::AfterSpace {
        while let Err(reason) = ctx.disk.may_pop(cfg.reserve_bytes) {
            tracing::info!(%reason, "rsync ran out of space: waiting for space before retrying");
            if stop.sleep(Duration::from_secs(2)).await {
                return Err("shutting down while waiting for space".into());
            }
        }
    }
    Ok(())
}

fn base_result(job: &PullJob, myip: &str, node_id: &str) -> ResultRecord {
    let m = &job.msg;
    ResultRecord {
        interval: m.interval,
        server_id: m.server_id,
        game_id: m.game_id,
        op_id: m.op_id,
        game_server_ip: m.game_server_ip.trim().to_string(),
        instance: m.instance,
        back_server_ip: myip.into(),
        file_path: None,
        filename: m.filename.clone(),
        create_time: m.create_time * 1000,
        rsync_time: now_ms(),
        size: m.size,
        last_all_filename: m
            .last_all_filename
            .clone()
            .unwrap_or_else(|| NO_FULL.into()),
        last_all_time: m.last_all_time * 1000,
        succeed: 0,
        log: String::new(),
        back_type: m.back_type.clone(),
        node_id: Some(node_id.into()),
        duration_ms: None,
        attempts: None,
        bytes_per_sec: None,
        verify: None,
        checksum: None,
        illegal: None,
        run_id: m.run_id.clone(),
    }
}

/// `file_path` is the DEST directory with a trailing `/`, as in the
/// original's `rsync IP::MODEL/FILENAME DEST/`.
pub fn success_result(
    job: &PullJob,
    myip: &str,
    node_id: &str,
    landed: &Landed,
    attempts: u32,
    duration: Duration,
    bytes_per_sec: u64,
) -> ResultRecord {
    let mut r = base_result(job, myip, node_id);
    r.file_path = Some(format!("{}/", job.dest_dir.display()));
    r.succeed = 1;
    r.log = "ok".into();
    r.duration_ms = Some(duration.as_millis() as u64);
    r.attempts = Some(attempts);
    r.bytes_per_sec = Some(bytes_per_sec);
    r.verify = Some(landed.verify.clone());
    r.checksum = Some(landed.checksum.clone());
    r
}

pub(crate) fn failure_result(
    job: &PullJob,
    myip: &str,
    node_id: &str,
    error: &AttemptError,
    attempts: u32,
    duration: Duration,
    stderr: &str,
) -> ResultRecord {
    let mut r = base_result(job, myip, node_id);
    r.log = if stderr.is_empty() {
        format!("pull failed after {attempts} attempt(s): {error}")
    } else {
        format!("pull failed after {attempts} attempt(s): {error}; rsync stderr: {stderr}")
    };
    r.duration_ms = Some(duration.as_millis() as u64);
    r.attempts = Some(attempts);
    r.verify = Some(format!("failed: {error}"));
    if matches!(error, AttemptError::NotRegular(_)) {
        r.illegal = Some(error.to_string());
    }
    r
}

/// The fenced ack. Logs (and pushes nothing) when the message was
/// re-queued meanwhile: this node was presumed dead, and another node owns it.
async fn ack(ctx: &Ctx, taken: &Taken, result: &ResultRecord) {
    let json = serde_json::to_string(result).expect("result serializes");
    let ours = retry_redis(ctx, "ack", || async {
        let v = ctx
            .wq
            .ack(&[(taken, Some(json.as_str()))], &ctx.sink.ack_list)
            .await?;
        Ok(v.first().copied().unwrap_or(false))
    })
    .await;
    match ours {
        Some(true) => {
            ctx.sink.notify();
            failpoint::hit("after_ack").await;
        }
        Some(false) => tracing::warn!(
            "ack fenced off: the message was re-queued while this node held it (heartbeat expired, e.g. a stopped process); result dropped, the new holder reports it"
        ),
        None => {}
    }
}

/// The fenced ack of several messages (a batch) in one script call: each
/// one is removed from the in-flight list and its result pushed only if it
/// is still this node's; the others are logged as fenced off.
pub(crate) async fn ack_many(ctx: &Ctx, items: &[(PullJob, ResultRecord)]) {
    if items.is_empty() {
        return;
    }
    failpoint::hit("before_ack").await;
    let json: Vec<String> = items
        .iter()
        .map(|(_, r)| serde_json::to_string(r).expect("result serializes"))
        .collect();
    let pairs: Vec<(&Taken, Option<&str>)> = items
        .iter()
        .zip(&json)
        .map(|((j, _), r)| (&j.taken, Some(r.as_str())))
        .collect();
    let Some(flags) = retry_redis(ctx, "ack", || ctx.wq.ack(&pairs, &ctx.sink.ack_list)).await
    else {
        return;
    };
    for ((job, _), ours) in items.iter().zip(&flags) {
        if !ours {
            tracing::warn!(parent: &msg_span(job), "ack fenced off: the message was re-queued while this node held it (heartbeat expired, e.g. a stopped process); result dropped, the new holder reports it");
        }
    }
    if flags.iter().any(|f| *f) {
        ctx.sink.notify();
        failpoint::hit("after_ack").await;
    }
}

/// Retries a Redis step until it succeeds or the pulls are aborted (then
/// the message stays in flight and is re-queued). Returns None if given up.
pub(crate) async fn retry_redis<T, F, Fut>(ctx: &Ctx, what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut delay = Duration::from_millis(200);
    let mut abort = ctx.abort.clone();
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!("{what} failed, retrying in {delay:?}: {e}");
                if abort.sleep(delay).await {
                    tracing::warn!("{what} abandoned at shutdown; the message stays in flight and is re-queued at the next start");
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
