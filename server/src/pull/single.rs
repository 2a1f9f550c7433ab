//! One message pulled by its own rsync, start to finish: admit it against
//! the disk reserve, pull with retries (each attempt in a fresh directory
//! of the temp area, resuming the previous one's partial file), land it,
//! and acknowledge it with its result.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::Instrument;
use ubackup_transport::rsync;
use ubackup_transport::AttemptError;

use super::args;
use super::ctx::Ctx;
use super::outcome::{self, msg_span};
use crate::disk::Admission;
use crate::failpoint;
use crate::intake::PullJob;
use crate::land::{self, Landed};
use crate::node::CountGuard;

/// How a pull ended.
#[derive(Debug)]
enum Ending {
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

/// One message pulled by its own rsync, start to finish (result and ack).
pub(super) async fn pull(ctx: &Ctx, job: PullJob) {
    let span = msg_span(&job);
    pull_one(ctx, job).instrument(span).await
}

async fn pull_one(ctx: &Ctx, job: PullJob) {
    let cfg = ctx.cfg();
    let admission: Admission = match ctx.disk.admit(job.size, cfg.reserve_bytes) {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!(%reason, size = job.size, "not enough space above the reserve: giving the message back for another node");
            outcome::give_back(ctx, &job.taken).await;
            return;
        }
    };
    let started = Instant::now();
    let ended = match land::already_landed(&job).await {
        Some(landed) => {
            tracing::info!("already landed and verified by an earlier run: not pulled again");
            Ending::Landed {
                landed,
                attempts: 0,
                transfer: Duration::ZERO,
            }
        }
        None => pull_with_retries(ctx, &job).await,
    };
    drop(admission);
    let duration = started.elapsed();
    let result = match ended {
        Ending::Abandoned(why) => {
            tracing::info!("pull abandoned ({why}); the message stays in flight and is re-queued");
            return;
        }
        Ending::Landed {
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
            outcome::success_result(
                &job,
                &cfg.myip,
                &cfg.node_id,
                &landed,
                attempts,
                duration,
                bps,
            )
        }
        Ending::Failed {
            error,
            attempts,
            stderr,
        } => {
            tracing::error!(attempts, %error, rsync_stderr = %stderr, "pull failed: pushing a failure result");
            outcome::failure_result(
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
    outcome::ack(ctx, &job.taken, &result).await;
}

async fn pull_with_retries(ctx: &Ctx, job: &PullJob) -> Ending {
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
                return Ending::Abandoned("another node took the message over".into());
            }
            if let Err(why) = outcome::before_retry(ctx, err, attempt).await {
                return Ending::Abandoned(why);
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
            let args = args::single(&cfg, job, &dir, bw);
            let watchdog = args::watchdog(&cfg, job.size, bw);
            tracing::debug!(attempt, bwlimit_kbps = bw, ?args, "starting rsync");
            let follower = ubackup_transport::follow::Follow::start(
                &dir,
                job.size,
                ubackup_transport::follow::Mode::Node,
            );
            let (r, aborted) = rsync::run(&ctx.tmp, args, watchdog, &mut ctx.abort.clone()).await;
            (r, aborted, follower.finish().await)
        };
        if aborted {
            ctx.tmp.remove(&dir);
            return Ending::Abandoned("rsync killed at the end of the drain".into());
        }
        failpoint::hit("after_pull").await;
        let error = match run.result {
            Ok(()) => {
                let (j, d, to) = (job.clone(), dir.clone(), cfg.encrypt_to.clone());
                let verified = tokio::task::spawn_blocking(move || {
                    land::verify(&j, &d, &followed, to.as_ref())
                })
                .await
                .unwrap_or_else(|e| Err(AttemptError::Local(format!("verification task: {e}"))));
                // A node stopped past its heartbeat (a zombie) can wake up
                // here with a finished rsync after its message was re-queued
                // and done elsewhere: landing now would leave a second copy
                // that no record points at (found by the fault suite).
                if verified.is_ok() && matches!(ctx.wq.holds(&job.taken).await, Ok(false)) {
                    ctx.tmp.remove(&dir);
                    return Ending::Abandoned(
                        "another node took the message over while this one was pulling".into(),
                    );
                }
                match verified.and_then(|l| land::rename_into_place(job, &dir).map(|()| l)) {
                    Ok(landed) => {
                        failpoint::hit("after_land").await;
                        ctx.tmp.remove(&dir);
                        return Ending::Landed {
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
            outcome::quarantine(&ctx.cfg(), job, &prev, why);
        }
        ctx.tmp.remove(&prev);
    }
    let (error, stderr) =
        last.unwrap_or((AttemptError::Local("no attempt made".into()), String::new()));
    Ending::Failed {
        error,
        attempts: attempt,
        stderr,
    }
}
