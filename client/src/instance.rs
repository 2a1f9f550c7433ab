//! One instance from start to end: lock, script, logs, file checks,
//! message, delivery. Every failure becomes a message with `success:
//! false` and a `log` saying which step failed and what was found.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{error, info, warn};
use ubackup_common::fsutil::blake3_file;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::validate::check_relative;
use ubackup_common::BackupMessage;

use crate::backlog::{self, BackupKind, FullRecord};
use crate::config::{Checksum, ClientConfig, GlobalConfig, InstanceConfig};
use crate::delivery::{Delivery, Outbox};
use crate::lock::{try_lock, LockError};
use crate::script;
use crate::spool::Envelope;

/// What one run needs, shared by all instance tasks.
pub struct Shared {
    pub cfg: Arc<ClientConfig>,
    pub outbox: Outbox,
    /// Unix seconds of the run's start: every message's `create_time`, and
    /// the time appended to `last_all_log`, as in the original.
    pub create_time: i64,
    pub shutdown: Shutdown,
}

/// The outcome of one instance.
#[derive(Debug, Clone)]
pub struct InstanceReport {
    pub section: String,
    pub queue: String,
    pub success: bool,
    /// The message's `log`.
    pub log: String,
    pub filename: Option<String>,
    pub delivery: Delivery,
}

/// A failed step: its name (for the log line) and the message's `log`.
struct Failure {
    step: &'static str,
    log: String,
}

fn fail(step: &'static str, log: impl Into<String>) -> Failure {
    Failure {
        step,
        log: log.into(),
    }
}

/// A per-run id (16 hex digits): the section, the time, this process and a
/// counter, hashed. Unique per run without a clock finer than a second or
/// a random source; it only has to differ between runs of one instance.
fn run_id(section: &str, create_time: i64) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(section.as_bytes());
    h.update(&create_time.to_le_bytes());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(
        &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    h.finalize().to_hex()[..16].to_string()
}

/// The message before anything is known: the original's defaults.
pub fn base_message(g: &GlobalConfig, inst: &InstanceConfig, create_time: i64) -> BackupMessage {
    BackupMessage {
        filename: None,
        last_all_filename: None,
        size: 0,
        log: None,
        create_time,
        success: false,
        server_id: g.server_id,
        game_id: g.game_id,
        op_id: g.op_id,
        game_server_ip: g.my_ip.clone(),
        back_type: inst.back_type.clone(),
        instance: inst.instance,
        rsync_model: inst.rsync_model.clone(),
        last_all_time: 0,
        interval: g.interval,
        rsync_port: g.rsync_port,
        checksum: None,
        run_id: Some(run_id(&inst.section, create_time)),
    }
}

/// Runs one instance and delivers its message. Call inside a span that
/// names the section.
pub async fn run(shared: Arc<Shared>, inst: InstanceConfig, queue: String) -> InstanceReport {
    let mut msg = base_message(&shared.cfg.global, &inst, shared.create_time);
    let lock_path = shared.outbox.spool().lock_path(&inst.section);
    // Held until the message is delivered.
    let (lock, outcome) = match try_lock(&lock_path) {
        Ok(lock) => {
            let outcome = backup(&shared, &inst, &mut msg).await;
            (Some(lock), outcome)
        }
        Err(LockError::Busy { holder }) => (
            None,
            Err(fail(
                "lock",
                format!(
                    "previous backup run still running: lock {} is held by {holder}; this run did not start the script",
                    lock_path.display()
                ),
            )),
        ),
        Err(LockError::Io(e)) => (None, Err(fail("lock", format!("cannot take the instance lock: {e}; check spool_dir")))),
    };
    match outcome {
        Ok(()) => {
            msg.success = true;
            msg.log = Some("ok".into());
            info!(
                step = "done",
                "backup ok: {} ({} bytes)",
                msg.filename.as_deref().unwrap_or("-"),
                msg.size
            );
        }
        Err(f) => {
            msg.success = false;
            error!(step = f.step, "backup failed: {}", f.log);
            msg.log = Some(f.log);
        }
    }
    let payload = serde_json::to_string(&msg).expect("a BackupMessage always serializes");
    let delivery = shared
        .outbox
        .deliver(Envelope::new(&inst.section, &queue, payload))
        .await;
    match &delivery {
        Delivery::Pushed => info!(step = "queue", queue = %queue, "message queued"),
        Delivery::AlreadyQueued => {
            info!(step = "queue", queue = %queue, "message was already queued")
        }
        Delivery::Spooled(_) | Delivery::Lost(_) => {}
    }
    drop(lock);
    InstanceReport {
        section: inst.section,
        queue,
        success: msg.success,
        log: msg.log.unwrap_or_default(),
        filename: msg.filename,
        delivery,
    }
}

async fn backup(
    shared: &Shared,
    inst: &InstanceConfig,
    msg: &mut BackupMessage,
) -> Result<(), Failure> {
    // 1. the script
    let mut env: Vec<(&str, String)> = vec![
        ("UBACKUP_SECTION", inst.section.clone()),
        ("UBACKUP_BACK_TYPE", inst.back_type.clone()),
        ("UBACKUP_INSTANCE", inst.instance.to_string()),
        ("UBACKUP_BACK_DIR", inst.back_dir.display().to_string()),
        ("UBACKUP_BACK_LOG", inst.back_log.display().to_string()),
    ];
    if let Some(l) = &inst.last_all_log {
        env.push(("UBACKUP_LAST_ALL_LOG", l.display().to_string()));
    }
    let started = SystemTime::now();
    info!(step = "script", "running `{}`", inst.script);
    let run = script::run(&inst.script, &env, inst.timeout, shared.shutdown.clone()).await;
    if let Some(why) = run.failure() {
        return Err(fail("script", why));
    }
    info!(
        step = "script",
        "script finished in {:.1} s",
        run.elapsed.as_secs_f64()
    );

    // 2. back_log / last_all_log, with the original's semantics
    if let Ok(m) = std::fs::metadata(&inst.back_log).and_then(|m| m.modified()) {
        if m + std::time::Duration::from_secs(1) < started {
            warn!(
                step = "back_log",
                "{} was not rewritten by this run of the script; reporting what it says anyway (the original does the same)",
                inst.back_log.display()
            );
        }
    }
    let reported = backlog::interpret(
        &inst.back_log,
        inst.last_all_log.as_deref(),
        shared.create_time,
    )
    .map_err(|log| fail("back_log", log))?;
    check_relative("the file name", &reported.filename).map_err(|why| {
        fail(
            "file",
            format!(
                "illegal file name: {why} (from back_log {} line 2)",
                inst.back_log.display()
            ),
        )
    })?;
    msg.filename = Some(reported.filename.clone());
    match reported.kind {
        BackupKind::Single => {}
        BackupKind::Full(FullRecord::Appended(t)) => {
            info!(step = "back_log", "full backup: time {t} appended to {}", path_of(&inst.last_all_log))
        }
        BackupKind::Full(FullRecord::AlreadyRecorded(t)) => warn!(
            step = "back_log",
            "back_log names the full that {} already recorded at {t}; the script may not have run a new backup",
            path_of(&inst.last_all_log)
        ),
        BackupKind::Full(FullRecord::AppendFailed(e)) => error!(
            step = "back_log",
            "full backup is shipped, but its time cannot be appended to {}: {e}; incrementals will fail with `last all back faile` until it is",
            path_of(&inst.last_all_log)
        ),
        BackupKind::Incremental { last_all_filename, last_all_time } => {
            check_relative("the full's file name", &last_all_filename).map_err(|why| {
                fail("last_all_log", format!("last all back faile: illegal file name in {}: {why}", path_of(&inst.last_all_log)))
            })?;
            msg.last_all_filename = Some(last_all_filename);
            msg.last_all_time = last_all_time;
        }
    }

    // 3. the file itself
    let path = inst.back_dir.join(&reported.filename);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| {
        fail(
            "stat",
            format!("get file size faile: {}: {e}", path.display()),
        )
    })?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else if meta.file_type().is_symlink() {
            "a symlink (rsync would copy the link, not the data)"
        } else {
            "not a regular file"
        };
        return Err(fail(
            "stat",
            format!(
                "get file size faile: {} is {kind}; expected a regular file",
                path.display()
            ),
        ));
    }
    msg.size = meta.len() as i64;

    // 4. checksum, off the async threads: a backup can be hundreds of GB
    if inst.checksum == Checksum::Blake3 {
        let p = path.clone();
        let sum = tokio::task::spawn_blocking(move || blake3_file(&p))
            .await
            .map_err(|e| {
                fail(
                    "checksum",
                    format!("checksum failed: {}: {e}", path.display()),
                )
            })?
            .map_err(|e| {
                fail(
                    "checksum",
                    format!("checksum failed: cannot read {}: {e}", path.display()),
                )
            })?;
        msg.checksum = Some(sum);
    }
    Ok(())
}

fn path_of(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
