//! ubackup-client: runs each instance's backup script and queues one JSON
//! message per instance on a Redis list, as the original UBackup client
//! does, with all instances at once, time limits, per-instance locks, and a
//! disk spool so that a Redis outage loses nothing.
//!
//! Layout:
//! * [`cli`]: the command line (subcommands live in [`cli::Command`]);
//! * [`config`]: the original INI config plus the new keys;
//! * [`check`]: `ubackup-client check`, a readable summary of a config;
//! * [`instance`]: one instance, lock → script → logs → file → message;
//! * [`script`]: `sh -c` in its own process group, output tails, timeouts;
//! * [`backlog`]: `back_log` / `last_all_log` with the original's semantics;
//! * [`lock`]: one run per instance at a time (flock);
//! * [`delivery`]: push-once to Redis (the queue's `push_once`), spool fallback,
//!   draining the spool;
//! * [`spool`]: the spool directory's files;
//! * [`restore`], [`list`], [`pin`]: `restore` / `list` / `pin` / `unpin`
//!   over the catalog and the nodes' read-only rsync module (docs/restore.md);
//! * [`tool`]: what those four share (exit codes, error type, start-up);
//! * [`lookup`]: opening the catalog and finding one backup in it;
//! * [`at`]: `--at` parsing and the local-time display.
//!
//! [`run`] is the whole run and [`command`] the run as `main` starts it;
//! each subcommand module has its own `command`. `main.rs` only parses
//! arguments and hands them to [`BINARY`] (config → logging → runtime →
//! signals → exit code, [`exit`]).

pub mod at;
pub mod backlog;
pub mod check;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod instance;
pub mod list;
pub mod lock;
pub mod lookup;
pub mod pin;
pub mod restore;
pub mod script;
pub mod spool;
pub mod tool;

use std::sync::Arc;

use tracing::{error, info, warn, Instrument};
use ubackup_common::app::Binary;
use ubackup_common::config::{ConfigError, SectionReader};
use ubackup_common::shutdown::Shutdown;

pub use config::ClientConfig;
use delivery::{Delivery, DrainReport, Outbox, Sender};
use instance::{InstanceReport, Shared};
use spool::Spool;

/// Exit codes, for cron and monitoring. The worst outcome wins.
pub mod exit {
    /// Every instance succeeded and its message is on its Redis list.
    pub const OK: u8 = 0;
    /// At least one instance failed; its failure message is queued.
    pub const INSTANCE_FAILED: u8 = 1;
    /// The config (or the command line) is wrong; nothing ran.
    pub const CONFIG: u8 = 2;
    /// Redis could not be reached: messages wait in the spool and are sent
    /// by the next run.
    pub const SPOOLED: u8 = 3;
    /// A message could neither be pushed nor spooled; its JSON is in the
    /// error log, to push by hand.
    pub const NOT_QUEUED: u8 = 4;
}

/// How `main` starts: config errors exit [`exit::CONFIG`].
pub const BINARY: Binary = Binary {
    prefix: "ubackup-client: ",
    config_exit: exit::CONFIG,
    worker_threads: None,
};

/// Options from the command line that shape a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-q`: the list every message goes to, instead of `redis_queue`.
    pub queue: Option<String>,
    /// `--only`: the instance sections to run (all when empty).
    pub only: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// In config order.
    pub instances: Vec<InstanceReport>,
    pub drain: DrainReport,
}

impl RunReport {
    pub fn exit_code(&self) -> u8 {
        let d = |f: fn(&Delivery) -> bool| self.instances.iter().any(|i| f(&i.delivery));
        if d(|d| matches!(d, Delivery::Lost(_))) {
            exit::NOT_QUEUED
        } else if d(|d| matches!(d, Delivery::Spooled(_))) || self.drain.remaining > 0 {
            exit::SPOOLED
        } else if self.instances.iter().any(|i| !i.success) {
            exit::INSTANCE_FAILED
        } else {
            exit::OK
        }
    }
}

/// Checks that a run can start: the selected instances, their lists, the
/// `-q` name. Returns each instance with its list.
pub fn plan(
    cfg: &ClientConfig,
    opts: &RunOptions,
) -> Result<Vec<(config::InstanceConfig, String)>, ConfigError> {
    if let Some(q) = &opts.queue {
        if q.is_empty() || q.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::file(
                &cfg.file,
                format!("-q `{q}` is not valid; expected one Redis list name without spaces, such as level1"),
            ));
        }
    }
    cfg.select(&opts.only)?
        .into_iter()
        .map(|i| Ok((i.clone(), cfg.queue_for(i, opts.queue.as_deref())?)))
        .collect()
}

/// `ubackup-client [run]` as `main` starts it: the config's warnings to
/// the log, the run, its exit code.
pub async fn command(cfg: ClientConfig, opts: RunOptions, stop: Shutdown) -> u8 {
    for w in &cfg.warnings {
        warn!("config: {w}");
    }
    match run(Arc::new(cfg), &opts, stop).await {
        Ok(report) => report.exit_code(),
        Err(e) => {
            error!("config error: {e}");
            exit::CONFIG
        }
    }
}

/// The whole run: resend what is spooled, then run every selected instance
/// concurrently, each delivering its own message as soon as it is done.
pub async fn run(
    cfg: Arc<ClientConfig>,
    opts: &RunOptions,
    shutdown: Shutdown,
) -> Result<RunReport, ConfigError> {
    let plan = plan(&cfg, opts)?;
    let spool = Spool::open(&cfg.global.spool_dir).map_err(|e| {
        let problem = format!(
            "cannot create {}: {e}; expected a directory this user can write (default {})",
            cfg.global.spool_dir.display(),
            config::DEFAULT_SPOOL_DIR
        );
        match SectionReader::required(&cfg.doc, "global") {
            Ok(g) => g.error("spool_dir", problem),
            Err(e) => e,
        }
    })?;
    let create_time = ubackup_common::message::now_secs();
    let sender = Sender::new(cfg.global.redis.clone(), cfg.keys(), cfg.global.dedup_ttl);
    let outbox = Outbox::new(sender, spool);
    info!(
        "ubackup-client {} starting: {} instance(s), Redis {}, spool {}",
        env!("CARGO_PKG_VERSION"),
        plan.len(),
        cfg.global.redis,
        cfg.global.spool_dir.display()
    );
    let drain = outbox.drain(&shutdown).await;

    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        outbox,
        create_time,
        shutdown,
    });
    // All at once: the original started one thread every 2 s.
    let handles: Vec<_> = plan
        .into_iter()
        .map(|(inst, queue)| {
            // ERROR level so that every layer keeps the span, including the
            // error_log file, which filters out spans below WARN: each line
            // there must still name its instance.
            let span = tracing::error_span!("instance", section = %inst.section);
            let section = inst.section.clone();
            let q = queue.clone();
            (
                section,
                q,
                tokio::spawn(instance::run(shared.clone(), inst, queue).instrument(span)),
            )
        })
        .collect();
    let mut instances = Vec::with_capacity(handles.len());
    for (section, queue, h) in handles {
        match h.await {
            Ok(r) => instances.push(r),
            Err(e) => {
                // A panic is a bug; say loudly that this instance sent nothing.
                error!(section = %section, "internal error, no message was sent for this instance: {e}");
                instances.push(InstanceReport {
                    section,
                    queue,
                    success: false,
                    log: format!("internal error: {e}"),
                    filename: None,
                    delivery: Delivery::Lost(format!("internal error: {e}")),
                });
            }
        }
    }
    let report = RunReport { instances, drain };
    let ok = report.instances.iter().filter(|i| i.success).count();
    let spooled = report
        .instances
        .iter()
        .filter(|i| matches!(i.delivery, Delivery::Spooled(_)))
        .count();
    let line = format!(
        "run finished: {ok} ok, {} failed, {spooled} spooled, {} resent from the spool ({} still spooled); exit code {}",
        report.instances.len() - ok,
        report.drain.sent,
        report.drain.remaining,
        report.exit_code()
    );
    if report.exit_code() == exit::OK {
        info!("{line}");
    } else {
        warn!("{line}");
    }
    Ok(report)
}
