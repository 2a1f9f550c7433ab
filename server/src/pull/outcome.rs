//! How a pull ends, for the single and the batched path alike: the result
//! record (success or failure), the fenced ack that pushes it, the
//! dead-letter of an illegal message, the quarantine of a file that fails
//! its checksum, the wait before another attempt, and the retries of a
//! Redis step.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::Instrument;
use ubackup_common::backoff::Backoff;
use ubackup_common::{BackupMessage, ResultRecord, Taken};
use ubackup_transport::{AttemptError, Retry};

use super::ctx::Ctx;
use crate::config::ServerConfig;
use crate::failpoint;
use crate::intake::PullJob;
use crate::land::Landed;

/// The span every log line about one message carries.
pub(super) fn msg_span(job: &PullJob) -> tracing::Span {
    tracing::info_span!("msg", server_id = job.msg.server_id, r#type = %job.msg.back_type, instance = job.msg.instance, filename = %job.file_name, src = %job.source.ip)
}

/// An illegal message: dead-lettered, with its result pushed for the
/// indexer in the same step.
pub(super) async fn illegal(ctx: &Ctx, taken: &Taken, reason: &str, result: &ResultRecord) {
    let excerpt =
        ubackup_common::validate::printable(&taken.payload.chars().take(200).collect::<String>());
    tracing::warn!(%reason, payload = %excerpt, "illegal message: moved to the dead-letter list {}", ctx.wq.keys().dead(&taken.queue));
    let result = serde_json::to_string(result).expect("result serializes");
    retry_redis(ctx, "dead-letter", || {
        ctx.wq
            .dead_letter(taken, reason, Some(&result), &ctx.sink.ack_list)
    })
    .await;
    ctx.sink.notify();
}

/// The client reported a failed backup: its result, without a pull.
pub(super) async fn client_failure(
    ctx: &Ctx,
    cfg: &ServerConfig,
    taken: &Taken,
    msg: &BackupMessage,
) {
    let span = tracing::info_span!("msg", server_id = msg.server_id, r#type = %msg.back_type, instance = msg.instance, filename = msg.filename.as_deref().unwrap_or("-"));
    let log = msg
        .log
        .clone()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "the client reported a failed backup".into());
    tracing::info!(parent: &span, client_log = %log, "client reported a failed backup: result pushed without a pull");
    let result = ResultRecord::from_message(msg, &cfg.myip, &cfg.node_id, log);
    ack(ctx, taken, &result).instrument(span).await;
}

/// The message's result before the pull's outcome is added: the address
/// as intake parsed it (trimmed), and no checksum until a file landed.
fn pulled_result(job: &PullJob, myip: &str, node_id: &str) -> ResultRecord {
    let mut r = ResultRecord::from_message(&job.msg, myip, node_id, String::new());
    r.game_server_ip = job.msg.game_server_ip.trim().to_string();
    r.checksum = None;
    r
}

/// `file_path` is the DEST directory with a trailing `/`, as in the
/// original's `rsync IP::MODEL/FILENAME DEST/`.
pub(super) fn success_result(
    job: &PullJob,
    myip: &str,
    node_id: &str,
    landed: &Landed,
    attempts: u32,
    duration: Duration,
    bytes_per_sec: u64,
) -> ResultRecord {
    let mut r = pulled_result(job, myip, node_id);
    r.file_path = Some(format!("{}/", job.dest_dir.display()));
    r.succeed = 1;
    r.log = "ok".into();
    r.duration_ms = Some(duration.as_millis() as u64);
    r.attempts = Some(attempts);
    r.bytes_per_sec = Some(bytes_per_sec);
    r.verify = Some(landed.verify.clone());
    r.checksum = Some(landed.checksum.clone());
    r.encryption = landed.encryption.clone();
    r
}

pub(super) fn failure_result(
    job: &PullJob,
    myip: &str,
    node_id: &str,
    error: &AttemptError,
    attempts: u32,
    duration: Duration,
    stderr: &str,
) -> ResultRecord {
    let mut r = pulled_result(job, myip, node_id);
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
pub(super) async fn ack(ctx: &Ctx, taken: &Taken, result: &ResultRecord) {
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
            if let Some(rep) = &ctx.replica {
                crate::replica::after_first_copy(&ctx.cfg(), rep, &ctx.wq, result).await;
            }
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
pub(super) async fn ack_many(ctx: &Ctx, items: &[(PullJob, ResultRecord)]) {
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
    if let Some(rep) = &ctx.replica {
        let cfg = ctx.cfg();
        for ((_, result), ours) in items.iter().zip(&flags) {
            if *ours {
                crate::replica::after_first_copy(&cfg, rep, &ctx.wq, result).await;
            }
        }
    }
}

/// A failure result for every job (a batch used up its attempts, or
/// failed in a way no retry can fix), acknowledged together.
pub(super) async fn fail_all(
    ctx: &Ctx,
    cfg: &ServerConfig,
    jobs: Vec<PullJob>,
    err: Option<&AttemptError>,
    attempts: u32,
    started: Instant,
    stderr: &str,
) {
    let err = err
        .cloned()
        .unwrap_or_else(|| AttemptError::Local("no attempt made".into()));
    let results: Vec<(PullJob, ResultRecord)> = jobs
        .into_iter()
        .map(|j| {
            let r = failure_result(
                &j,
                &cfg.myip,
                &cfg.node_id,
                &err,
                attempts,
                started.elapsed(),
                stderr,
            );
            (j, r)
        })
        .collect();
    tracing::error!(attempts, %err, messages = results.len(), "batch pull failed: pushing a failure result per message");
    ack_many(ctx, &results).await;
}

/// Gives a message back to its list for another node (not enough space
/// here).
pub(super) async fn give_back(ctx: &Ctx, taken: &Taken) {
    retry_redis(ctx, "give back", || ctx.wq.release(taken)).await;
}

/// A pulled file whose checksum differs from the one the client claimed is
/// kept for inspection in `server_root_path/.ubackup-quarantine/<node_id>/`
/// (never in the destination tree, never in the catalog as a success), and
/// `why` says where, so the failure result names it.
pub(super) fn quarantine(cfg: &ServerConfig, job: &PullJob, attempt_dir: &Path, why: &mut String) {
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
pub(super) async fn before_retry(
    ctx: &Ctx,
    err: &AttemptError,
    attempt: u32,
) -> Result<(), String> {
    let cfg = ctx.cfg();
    let mut stop = ctx.stop.clone();
    if stop.is_triggered() {
        return Err("shutting down: no new attempt".into());
    }
    let delay = ubackup_transport::retry::backoff(cfg.retry_backoff, attempt);
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

/// Retries a Redis step until it succeeds or the pulls are aborted (then
/// the message stays in flight and is re-queued). Returns None if given up.
pub(crate) async fn retry_redis<T, F, Fut>(ctx: &Ctx, what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut abort = ctx.abort.clone();
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!("{what} failed, retrying in {delay:?}: {e}");
                if abort.sleep(delay).await {
                    tracing::warn!("{what} abandoned at shutdown; the message stays in flight and is re-queued at the next start");
                    return None;
                }
            }
        }
    }
}
