//! Batched pulls: messages that share an rsync source (host, port, module)
//! are pulled by one rsync call (`--files-from`), while each message keeps
//! its own verification, landing, result and fenced ack.
//!
//! Why: a small file costs one rsync connection (handshake, file list,
//! exit) of 20-100 ms, whatever its size; a database host with many
//! instances queues many small files from the same module at once, and one
//! connection for all of them costs little more than one for a single file
//! (BENCHMARKS.md, "backlog").
//!
//! How:
//! 1. **claim** ([`claim_more`]): after a worker took one message, it reads
//!    the pop end of the same list (`LRANGE`: 16 items, and up to
//!    `4 × batch_max` when those hold messages of the same source; when
//!    they hold other hosts only, the node's deep window over the list,
//!    `super::window`), picks
//!    the valid messages of the same source (files up to `batch_mb`, at most
//!    `batch_max` in all, distinct final paths), and moves exactly those
//!    into its in-flight list with one step (the queue's `claim`); one another
//!    node took meanwhile is simply not claimed. Every claimed message is in
//!    the in-flight list like a taken one, so crash re-queue, drain and the
//!    reaper treat it the same.
//! 2. **pull** ([`pull_batch`]): one rsync into a per-attempt directory,
//!    each file at its path in the module. Then per message: lstat / size /
//!    blake3 / fsync (in parallel: concurrent fsyncs share journal commits),
//!    the zombie check, the atomic rename into the original layout; DEST
//!    directories are flushed once; one fenced ack script for all landed
//!    messages, each with its own result.
//! 3. **failures**: if nothing landed because the connection failed
//!    (transient rsync exit), the batch is retried with backoff up to
//!    `retry` attempts, then each message gets its failure result. Any
//!    other file that did not land (missing, vanished, wrong size or
//!    checksum, not a regular file) does not fail its neighbours: it is
//!    pulled again alone, by the single-message path with its own retries.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ubackup_common::{ResultRecord, Taken};
use ubackup_transport::rsync;
use ubackup_transport::{AttemptError, Retry};

use super::ctx::Ctx;
use super::outcome::{self, msg_span};
use super::{args, single};
use crate::config::ServerConfig;
use crate::failpoint;
use crate::intake::{intake, Intake, PullJob};
use crate::land::{self, Landed};
use crate::node::CountGuard;
use ubackup_transport::at_rest::Recipients;

/// How many files are verified at once (lstat, fsync, blake3): enough for
/// concurrent fsyncs to share journal commits, few enough threads.
const VERIFY_THREADS: usize = 8;

/// Messages waiting in `first`'s list that can share its rsync call,
/// claimed into this node's in-flight list (empty when batching is off,
/// `first` is too large, or nothing matches).
pub(super) async fn claim_more(ctx: &Ctx, cfg: &ServerConfig, first: &PullJob) -> Vec<PullJob> {
    // `interval` throttles per message: the operator wants one message per
    // worker per interval, which a batch would defeat
    if cfg.batch_max <= 1 || first.size > cfg.batch_bytes || !cfg.interval.is_zero() {
        return Vec::new();
    }
    let queue = &first.taken.queue;
    // A short look first: when the next messages are from other sources
    // (many hosts queueing at once), reading deep into the list for every
    // message would cost Redis more than it saves; a source with a backlog
    // shows up right at the pop end.
    let scan = (cfg.batch_max * 4) as isize;
    let probe = PROBE.min(scan);
    let Some(mut raw) = peek(ctx, queue, 0, probe).await else {
        return Vec::new();
    };
    let mut picked = pick(cfg, first, raw.clone());
    if picked.is_empty() && raw.len() as isize == probe {
        // the pop end holds other sources only, and the list goes on: many
        // hosts interleave (the hourly burst), so the node's deep window
        // over the list has this source's other messages (`window`)
        let source = super::window::source_key(&first.msg.game_server_ip, &first.msg.rsync_model);
        let (read, drawn) = ctx.lookahead.draw(&ctx.wq, queue, &source).await;
        picked = pick(cfg, first, drawn.clone());
        let rest: Vec<Vec<u8>> = drawn
            .into_iter()
            .filter(|b| {
                !picked
                    .iter()
                    .any(|j| j.taken.payload.as_bytes() == b.as_slice())
            })
            .collect();
        ctx.lookahead.put_back(queue, &source, rest, read).await;
    } else if !picked.is_empty() && scan > probe && picked.len() + 1 < cfg.batch_max {
        if let Some(mut deeper) = peek(ctx, queue, probe, scan - probe).await {
            deeper.append(&mut raw);
            picked = pick(cfg, first, deeper);
        }
    }
    if picked.is_empty() {
        return picked;
    }
    let taken: Vec<&Taken> = picked.iter().map(|j| &j.taken).collect();
    match ctx.wq.claim(&taken).await {
        Ok(flags) => picked
            .into_iter()
            .zip(flags)
            .filter(|(_, claimed)| *claimed)
            .map(|(j, _)| j)
            .collect(),
        Err(e) => {
            // whatever the script moved before the error was given back
            tracing::warn!("claiming more messages of the same source failed: {e}");
            Vec::new()
        }
    }
}

/// Items of the pop end looked at before reading deeper into a list.
const PROBE: isize = 16;

/// `count` raw items of `queue`'s pop end after the first `skip`; `None`
/// (logged) on an error.
async fn peek(ctx: &Ctx, queue: &str, skip: isize, count: isize) -> Option<Vec<Vec<u8>>> {
    match ctx.wq.peek(queue, skip as usize, count as usize).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("cannot look for more messages of the same source: {e}");
            None
        }
    }
}

/// The messages of `raw` (an LRANGE of the pop end, oldest last) that may
/// join `first`'s batch, oldest first.
fn pick(cfg: &ServerConfig, first: &PullJob, raw: Vec<Vec<u8>>) -> Vec<PullJob> {
    let ip = first.msg.game_server_ip.trim();
    let mut total = first.size;
    let mut finals: HashSet<PathBuf> = HashSet::from([first.final_path()]);
    let mut remotes: HashSet<String> = HashSet::from([first.remote_path.clone()]);
    let mut picked = Vec::new();
    for bytes in raw.into_iter().rev() {
        if picked.len() + 1 >= cfg.batch_max {
            break;
        }
        let Ok(payload) = String::from_utf8(bytes) else {
            continue;
        };
        // cheap filter before parsing: a miss only means "not batched"
        if payload == first.taken.payload
            || !payload.contains(ip)
            || !payload.contains(first.source.module.as_str())
        {
            continue;
        }
        let taken = Taken {
            queue: first.taken.queue.clone(),
            payload,
        };
        let Intake::Pull(job) = intake(&taken, cfg) else {
            continue;
        };
        if job.source != first.source
            || job.size > cfg.batch_bytes
            || total + job.size > cfg.batch_bytes
            || finals.contains(&job.final_path())
            || remotes.contains(&job.remote_path)
        {
            continue;
        }
        total += job.size;
        finals.insert(job.final_path());
        remotes.insert(job.remote_path.clone());
        picked.push(*job);
    }
    picked
}

/// Pulls `jobs` (all of one source, all in this node's in-flight list) and
/// acknowledges each with its own result; see the module doc.
pub(super) async fn pull_batch(ctx: &Ctx, jobs: Vec<PullJob>) {
    let cfg = ctx.cfg();
    let total: u64 = jobs.iter().map(|j| j.size).sum();
    let admission = match ctx.disk.admit(total, cfg.reserve_bytes) {
        Ok(a) => a,
        Err(reason) => {
            // the extra messages go back; the first takes the single path,
            // which admits it on its own or gives it back too
            tracing::info!(%reason, "the batch does not fit above the disk reserve: giving back all but the first message");
            let mut it = jobs.into_iter();
            let first = it.next();
            for j in it {
                outcome::give_back(ctx, &j.taken).await;
            }
            if let Some(f) = first {
                single::pull(ctx, f).await;
            }
            return;
        }
    };
    let started = Instant::now();
    tracing::info!(
        bytes = total,
        "pulling a batch of {} messages with one rsync",
        jobs.len()
    );
    let mut pending = skip_landed(ctx, &cfg, jobs).await;
    let mut alone: Vec<PullJob> = Vec::new();
    let mut last: Option<AttemptError> = None;
    let mut attempt = 0u32;
    while !pending.is_empty() {
        attempt += 1;
        let cfg = ctx.cfg();
        if let Some(err) = &last {
            if let Err(why) = outcome::before_retry(ctx, err, attempt).await {
                tracing::info!(
                    "batch abandoned ({why}); its messages stay in flight and are re-queued"
                );
                return;
            }
            pending = still_held(ctx, pending).await;
            if pending.is_empty() {
                break;
            }
        }
        match one_attempt(ctx, &cfg, pending, attempt, started).await {
            Step::Done => break,
            Step::Retry { jobs, error } => {
                pending = jobs;
                last = Some(error);
            }
            Step::Alone(jobs) => {
                alone = jobs;
                break;
            }
        }
    }
    drop(admission);
    for j in alone {
        if ctx.stop.is_triggered() {
            tracing::info!(parent: &msg_span(&j), "shutting down: not pulled alone; the message stays in flight and is re-queued");
            continue;
        }
        single::pull(ctx, j).await;
    }
}

/// What follows one attempt of a batch.
enum Step {
    /// Every message has its result, or the batch was abandoned (its
    /// messages stay in flight).
    Done,
    /// The whole batch failed in a way another attempt may fix.
    Retry {
        jobs: Vec<PullJob>,
        error: AttemptError,
    },
    /// These did not land with the others: each is pulled again alone.
    Alone(Vec<PullJob>),
}

/// Acknowledges the jobs an earlier run already landed and verified (see
/// [`land::already_landed`]); returns the others.
async fn skip_landed(ctx: &Ctx, cfg: &ServerConfig, jobs: Vec<PullJob>) -> Vec<PullJob> {
    let mut pending = Vec::with_capacity(jobs.len());
    let mut done = Vec::new();
    for j in jobs {
        match land::already_landed(&j).await {
            Some(landed) => {
                tracing::info!(parent: &msg_span(&j), "already landed and verified by an earlier run: not pulled again");
                let r = outcome::success_result(
                    &j,
                    &cfg.myip,
                    &cfg.node_id,
                    &landed,
                    0,
                    Duration::ZERO,
                    0,
                );
                done.push((j, r));
            }
            None => pending.push(j),
        }
    }
    outcome::ack_many(ctx, &done).await;
    pending
}

/// One rsync for every job of `pending`, then each landed file acknowledged
/// with its result; what is left decides the next [`Step`].
async fn one_attempt(
    ctx: &Ctx,
    cfg: &ServerConfig,
    pending: Vec<PullJob>,
    attempt: u32,
    started: Instant,
) -> Step {
    let key = format!("b{}", pending[0].key);
    let (dir, list) = match prepare_attempt(ctx, &key, attempt, &pending) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(attempt, "{e}");
            if attempt >= cfg.retry {
                outcome::fail_all(ctx, cfg, pending, Some(&e), attempt, started, "").await;
                return Step::Done;
            }
            return Step::Retry {
                jobs: pending,
                error: e,
            };
        }
    };
    let (run, aborted) = run_rsync(ctx, cfg, &pending, &list, &dir, attempt).await;
    let _ = std::fs::remove_file(&list);
    if aborted {
        ctx.tmp.remove(&dir);
        tracing::info!("batch abandoned (rsync killed at the end of the drain); its messages stay in flight and are re-queued");
        return Step::Done;
    }
    failpoint::hit("after_pull").await;

    let (landed_now, left) = land_all(ctx, pending, &dir).await;
    let elapsed = started.elapsed();
    let bps = if run.elapsed.as_millis() > 0 {
        (landed_now.iter().map(|(_, l)| l.bytes).sum::<u64>() as u128 * 1000
            / run.elapsed.as_millis()) as u64
    } else {
        0
    };
    let results: Vec<(PullJob, ResultRecord)> = landed_now
        .into_iter()
        .map(|(j, l)| {
            let r = outcome::success_result(&j, &cfg.myip, &cfg.node_id, &l, attempt, elapsed, bps);
            (j, r)
        })
        .collect();
    let landed_count = results.len();
    if landed_count > 0 {
        tracing::info!(
            attempt,
            landed = landed_count,
            not_landed = left.len(),
            "batch landed"
        );
    }
    outcome::ack_many(ctx, &results).await;
    if left.is_empty() {
        return Step::Done;
    }

    let rsync_err = run.result.err();
    let whole_batch = landed_count == 0 && rsync_err.is_some();
    match rsync_err.as_ref().map(AttemptError::retry) {
        Some(Retry::Transient | Retry::AfterSpace) if whole_batch => {
            let err = rsync_err.expect("matched");
            tracing::warn!(attempt, max_attempts = cfg.retry, error = %err, rsync_stderr = %run.stderr_tail, "batch pull attempt failed");
            let pending: Vec<PullJob> = left.into_iter().map(|(j, _)| j).collect();
            if attempt >= cfg.retry {
                outcome::fail_all(
                    ctx,
                    cfg,
                    pending,
                    Some(&err),
                    attempt,
                    started,
                    &run.stderr_tail,
                )
                .await;
                return Step::Done;
            }
            Step::Retry {
                jobs: pending,
                error: err,
            }
        }
        Some(Retry::Never) if whole_batch => {
            // auth or usage: the same for every file of the source
            let err = rsync_err.expect("matched");
            tracing::error!(error = %err, rsync_stderr = %run.stderr_tail, "batch pull failed and cannot be retried: pushing a failure result per message");
            let pending = left.into_iter().map(|(j, _)| j).collect();
            outcome::fail_all(
                ctx,
                cfg,
                pending,
                Some(&err),
                attempt,
                started,
                &run.stderr_tail,
            )
            .await;
            Step::Done
        }
        _ => {
            // a file failing in a batch must not fail its neighbours
            for (j, e) in &left {
                tracing::info!(parent: &msg_span(j), error = %e, rsync_exit = ?rsync_err, "not landed by the batch: pulling it again alone");
            }
            Step::Alone(left.into_iter().map(|(j, _)| j).collect())
        }
    }
}

/// The batch's rsync call: the bandwidth share, the watchdog (the
/// single-file allowance, plus a little per file), counted as a transfer.
async fn run_rsync(
    ctx: &Ctx,
    cfg: &ServerConfig,
    pending: &[PullJob],
    list: &Path,
    dir: &Path,
    attempt: u32,
) -> (rsync::RsyncRun, bool) {
    let n = pending.len();
    let bytes: u64 = pending.iter().map(|j| j.size).sum();
    let _transfer = CountGuard::new(&ctx.status.transfers);
    let active = ctx
        .status
        .transfers
        .load(std::sync::atomic::Ordering::SeqCst);
    let bw = rsync::per_transfer_kbps(cfg.rsync_bwlimit, cfg.node_bwlimit, active);
    let args = args::batch(cfg, &pending[0].source, list, dir, bw);
    let watchdog = args::watchdog(cfg, bytes, bw) + Duration::from_millis(200) * n as u32;
    tracing::debug!(
        attempt,
        files = n,
        bwlimit_kbps = bw,
        ?args,
        "starting rsync"
    );
    rsync::run(&ctx.tmp, args, watchdog, &mut ctx.abort.clone()).await
}

/// Verifies every job's file in `dir` and renames the good ones into
/// place (not one a zombie no longer holds), with their DEST directories
/// flushed before anything is acknowledged; then empties `dir`. Returns
/// the landed jobs and the others with why they did not land.
async fn land_all(
    ctx: &Ctx,
    pending: Vec<PullJob>,
    dir: &Path,
) -> (Vec<(PullJob, Landed)>, Vec<(PullJob, AttemptError)>) {
    let checks = verify_all(&pending, dir, ctx.cfg().encrypt_to.as_ref()).await;
    let held = held_flags(ctx, &pending).await;
    let mut landed_now: Vec<(PullJob, Landed)> = Vec::new();
    let mut left: Vec<(PullJob, AttemptError)> = Vec::new();
    let mut dests: BTreeSet<PathBuf> = BTreeSet::new();
    for ((j, check), held) in pending.into_iter().zip(checks).zip(held) {
        if !held {
            // a zombie must not land a copy of a message another node
            // took over (see single.rs)
            tracing::info!(parent: &msg_span(&j), "another node took the message over while this one was pulling: not landed");
            continue;
        }
        let landed = check.and_then(|l| {
            land::rename_path_into_place(&j, &dir.join(&j.remote_path), false).map(|()| l)
        });
        match landed {
            Ok(l) => {
                dests.insert(j.dest_dir.clone());
                landed_now.push((j, l));
            }
            Err(e) => left.push((j, e)),
        }
    }
    // the renames are durable before any ack says so
    let _ = tokio::task::spawn_blocking(move || dests.iter().for_each(|d| land::sync_dir(d))).await;
    for _ in &landed_now {
        failpoint::hit("after_land").await;
    }
    ctx.tmp.remove(dir);
    (landed_now, left)
}

/// A fresh attempt directory and the `--files-from` list (NUL separated
/// remote paths) next to it, inside the temp area.
fn prepare_attempt(
    ctx: &Ctx,
    key: &str,
    attempt: u32,
    jobs: &[PullJob],
) -> Result<(PathBuf, PathBuf), AttemptError> {
    let dir = ctx.tmp.attempt_dir(key, attempt).map_err(|e| {
        AttemptError::Local(format!(
            "cannot create a temp dir in {}: {e}",
            ctx.tmp.dir().display()
        ))
    })?;
    let list = ctx.tmp.dir().join(format!("{key}.{attempt}.files"));
    let mut text: Vec<u8> = Vec::new();
    for j in jobs {
        text.extend_from_slice(j.remote_path.as_bytes());
        text.push(0);
    }
    std::fs::write(&list, text)
        .map_err(|e| AttemptError::Local(format!("cannot write {}: {e}", list.display())))?;
    Ok((dir, list))
}

/// [`land::verify_path`] for every job's file in `dir`, on a few blocking
/// threads at once; one result per job, in order.
async fn verify_all(
    jobs: &[PullJob],
    dir: &Path,
    encrypt: Option<&Recipients>,
) -> Vec<Result<Landed, AttemptError>> {
    let mut set = tokio::task::JoinSet::new();
    let threads = VERIFY_THREADS.min(jobs.len()).max(1);
    for t in 0..threads {
        let mine: Vec<(usize, PullJob)> = jobs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % threads == t)
            .map(|(i, j)| (i, j.clone()))
            .collect();
        let dir = dir.to_path_buf();
        let to = encrypt.cloned();
        set.spawn_blocking(move || {
            mine.into_iter()
                .map(|(i, j)| {
                    (
                        i,
                        land::verify_path(&j, &dir.join(&j.remote_path), to.as_ref()),
                    )
                })
                .collect::<Vec<_>>()
        });
    }
    let mut out: Vec<Result<Landed, AttemptError>> = (0..jobs.len())
        .map(|_| Err(AttemptError::Local("verification task failed".into())))
        .collect();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            for (i, res) in v {
                out[i] = res;
            }
        }
    }
    out
}

/// Whether each job is still in this node's in-flight list (one pipelined
/// LPOS per job). On a Redis error, all are assumed held: the fenced ack
/// still keeps a zombie's result out.
async fn held_flags(ctx: &Ctx, jobs: &[PullJob]) -> Vec<bool> {
    let taken: Vec<&Taken> = jobs.iter().map(|j| &j.taken).collect();
    match ctx.wq.holds_each(&taken).await {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("cannot check the in-flight list: {e}");
            vec![true; jobs.len()]
        }
    }
}

/// The jobs this node still holds (a resumed zombie stops working on the
/// others).
async fn still_held(ctx: &Ctx, jobs: Vec<PullJob>) -> Vec<PullJob> {
    let held = held_flags(ctx, &jobs).await;
    jobs.into_iter()
        .zip(held)
        .filter_map(|(j, h)| {
            if !h {
                tracing::info!(parent: &msg_span(&j), "another node took the message over: no further attempt");
            }
            h.then_some(j)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn cfg(extra: &str) -> ServerConfig {
        ServerConfig::parse(
            Path::new("/t.conf"),
            &format!("[global]\nserver_root_path=/nonexistent-root/\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.9.9.9\n{extra}"),
        )
        .unwrap()
    }

    fn payload(ip: &str, model: &str, filename: &str, size: i64) -> String {
        json!({"filename": filename, "last_all_filename": null, "size": size, "log": "ok",
            "create_time": 1, "success": true, "server_id": 7, "game_id": 1, "op_id": 1,
            "game_server_ip": ip, "back_type": "mysql", "instance": 3306, "rsync_model": model,
            "last_all_time": 0, "interval": 3600})
        .to_string()
    }

    fn job(c: &ServerConfig, p: String) -> PullJob {
        match intake(
            &Taken {
                queue: "q".into(),
                payload: p,
            },
            c,
        ) {
            Intake::Pull(j) => *j,
            other => panic!("{other:?}"),
        }
    }

    fn names(v: &[PullJob]) -> Vec<&str> {
        v.iter().map(|j| j.remote_path.as_str()).collect()
    }

    #[test]
    fn picks_only_valid_messages_of_the_same_source_oldest_first() {
        let c = cfg("batch_mb = 1");
        let first = job(&c, payload("10.1.2.3", "backup/db_3306", "a.xb", 10));
        // LRANGE order: newest first, the pop end (oldest) last
        let raw: Vec<Vec<u8>> = [
            payload("10.1.2.3", "backup/db_3307", "newest.xb", 10),
            payload("10.1.2.3", "backup/db_3306", "a.xb", 10), // same final path as first
            payload("10.1.2.3", "other/db_3306", "m.xb", 10),  // other module
            payload("10.1.2.4", "backup/db_3306", "h.xb", 10), // other host
            payload("10.1.2.3", "backup/db_3306", "big.xb", 2 << 20), // over batch_mb
            payload("10.1.2.3", "backup/db_3306", "../x.xb", 10), // illegal: left for intake
            "not json 10.1.2.3 backup".to_string(),
            payload("10.1.2.3", "backup/db_3306", "sub/b.xb", 10),
            payload("10.1.2.3", "backup", "db_3308/c.xb", 10),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        let picked = pick(&c, &first, raw);
        assert_eq!(
            names(&picked),
            ["db_3308/c.xb", "db_3306/sub/b.xb", "db_3307/newest.xb"]
        );
    }

    #[test]
    fn stops_at_batch_max_and_batch_mb() {
        let raw = |n: usize, size: i64| -> Vec<Vec<u8>> {
            (0..n)
                .map(|i| payload("10.1.2.3", "backup/d", &format!("f{i}.xb"), size).into_bytes())
                .collect()
        };
        let c = cfg("batch_max = 4");
        let first = job(&c, payload("10.1.2.3", "backup/d", "first.xb", 10));
        assert_eq!(pick(&c, &first, raw(10, 10)).len(), 3, "the first plus 3");
        let c = cfg("batch_mb = 1");
        let first = job(&c, payload("10.1.2.3", "backup/d", "first.xb", 400_000));
        assert_eq!(pick(&c, &first, raw(10, 300_000)).len(), 2, "1 MiB in all");
        let c = cfg("batch_max = 1");
        assert!(pick(&c, &first, raw(10, 10)).is_empty(), "batching off");
    }
}
