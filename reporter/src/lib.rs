//! ubackup-reporter: the disk and queue reporters, cluster status, health
//! alerts with webhook notifications, and an HTTP endpoint (JSON API and
//! Prometheus metrics).
//!
//! Layout:
//! * [`cli`]: the command line and a subcommand as `main` starts it;
//! * [`config`]: reads only the keys a subcommand needs from a node's or the
//!   indexer's INI, plus the thresholds (`[global]` or `[reporter]`);
//! * [`cluster`]: the nodes' state hashes/heartbeats and every list's depth;
//! * [`disk`], [`queue`]: the two cron reporters; [`record`] gets their
//!   samples into the catalog through a pending list in Redis;
//! * [`snapshot`]: one read of Redis and the catalog;
//! * [`alerts`]: the health rules → [`alerts::AlertReport`];
//!   [`webhook`]: notify only new/resolved alerts, tracked in a state file;
//! * [`status`]: the one-screen view → [`status::ClusterStatus`];
//! * [`redis_view`]: the Redis master, its replicas and the sentinels, for
//!   `status`;
//! * [`metrics`], [`serve`]: Prometheus text and the HTTP endpoint (its
//!   handlers share `shared::App`);
//!   [`web`]: its HTML pages (overview, statistics, alerts, instance
//!   history, cluster control with token-guarded write actions);
//! * [`format`]: human-readable sizes, durations and times;
//! * [`error`]: [`ReporterError`], why a subcommand could not find out.
//!
//! `status` and `alerts` are library functions returning serde structs, so
//! the CLI text, `--json`, the HTTP API and HTML pages show the same data.
//!
//! Exit codes (Nagios): 0 OK, 1 warning, 2 critical (alerts only), 3
//! unknown: bad config, Redis unreachable, catalog unreadable.

pub mod alerts;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod disk;
pub mod error;
pub mod format;
pub mod metrics;
pub mod queue;
pub mod record;
pub mod redis_view;
pub mod serve;
mod shared;
pub mod snapshot;
pub mod status;
pub mod tls;
pub mod web;
pub mod webhook;

use std::path::PathBuf;

use ubackup_common::message::now_ms;
use ubackup_common::shutdown::Shutdown;

use crate::config::ReporterConfig;
use crate::snapshot::Sources;

pub use alerts::{Alert, AlertKind, AlertReport, Severity};
pub use error::ReporterError;
pub use status::ClusterStatus;

/// Exit code for "could not find out" (Nagios UNKNOWN).
pub const EXIT_UNKNOWN: i32 = 3;

/// A subcommand and its options.
#[derive(Debug, Clone)]
pub enum Command {
    Disk,
    Queue,
    Status {
        json: bool,
    },
    Alerts {
        json: bool,
        webhook: Option<String>,
        state: Option<PathBuf>,
    },
    Serve {
        listen: String,
    },
    /// The config loaded: print what it names, exit 0.
    Check,
    /// Forget a decommissioned node or indexer.
    ForgetNode {
        node: String,
    },
}

/// What a run printed and how it should exit.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub code: i32,
}

/// Runs one subcommand. Errors (exit 3) are returned for the caller to print.
pub async fn run(
    cmd: Command,
    cfg: ReporterConfig,
    shutdown: Shutdown,
) -> Result<Outcome, ReporterError> {
    for k in &cfg.unknown_keys {
        tracing::warn!(file = %cfg.file.display(), "[reporter] key `{k}` is not used by the reporter (typo?)");
    }
    match cmd {
        Command::Check => Ok(Outcome {
            stdout: format!(
                "{}: OK (key_prefix {}{})\n",
                cfg.file.display(),
                cfg.keys.prefix(),
                if cfg.unknown_keys.is_empty() {
                    String::new()
                } else {
                    format!(", unused [reporter] keys: {}", cfg.unknown_keys.join(" "))
                }
            ),
            code: 0,
        }),
        Command::Disk => run_disk(cfg).await,
        Command::ForgetNode { node } => run_forget(cfg, &node).await,
        Command::Queue => run_queue(cfg).await,
        Command::Status { json } => {
            let mut src = Sources::open(cfg, true).await?;
            let st = status_now(&mut src).await?;
            let stdout = if json {
                serde_json::to_string_pretty(&st).expect("status serializes") + "\n"
            } else {
                st.text()
            };
            Ok(Outcome {
                stdout,
                code: st.exit_code(),
            })
        }
        Command::Alerts {
            json,
            webhook,
            state,
        } => {
            let mut src = Sources::open(cfg, true).await?;
            let report = alerts_now(&mut src).await?;
            let mut stdout = if json {
                serde_json::to_string_pretty(&report).expect("report serializes") + "\n"
            } else {
                report.text()
            };
            if let (Some(url), Some(state)) = (webhook, state) {
                match webhook::notify(&url, &state, &report).await {
                    Ok(d) => {
                        if d.error.is_some() && !json {
                            stdout.push_str(&format!(
                                "webhook: {} sent, {} pending (retried next run)\n",
                                d.sent, d.pending
                            ));
                        }
                    }
                    // the state file cannot be trusted: say so, exit unknown
                    Err(e) => return Err(ReporterError::Other(format!("webhook: {e}"))),
                }
            }
            Ok(Outcome {
                stdout,
                code: report.exit_code(),
            })
        }
        Command::Serve { listen } => {
            // config mistakes stop the start; Redis may come later
            cfg.redis()?;
            cfg.message_redis()?;
            cfg.require_catalog()?;
            cfg.serve_token()?;
            cfg.api_tokens()?;
            cfg.serve_tls()?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| ReporterError::Other(format!("cannot listen on {listen}: {e}")))?;
            serve::serve(cfg, listener, shutdown)
                .await
                .map_err(|e| ReporterError::Other(format!("HTTP server: {e}")))?;
            Ok(Outcome {
                stdout: String::new(),
                code: 0,
            })
        }
    }
}

/// The current alerts.
pub async fn alerts_now(src: &mut Sources) -> Result<AlertReport, ReporterError> {
    let snap = src.snapshot().await?;
    Ok(alerts::evaluate(&snap, &src.cfg.thresholds))
}

/// The current status.
pub async fn status_now(src: &mut Sources) -> Result<ClusterStatus, ReporterError> {
    let snap = src.snapshot().await?;
    let report = alerts::evaluate(&snap, &src.cfg.thresholds);
    Ok(ClusterStatus::build(&snap, &report))
}

async fn run_disk(cfg: ReporterConfig) -> Result<Outcome, ReporterError> {
    let root = cfg.server_root_path()?;
    let node = cfg.node_id()?;
    let ip = cfg.node_ip();
    let mut src = Sources::open_with(cfg, false, false).await?;
    let sample = {
        let (r, n, i) = (root.clone(), node.clone(), ip.clone());
        tokio::task::spawn_blocking(move || disk::measure(&r, &n, &i))
            .await
            .map_err(|e| ReporterError::Other(format!("disk measurement failed: {e}")))?
            .map_err(|e| {
                ReporterError::Other(format!(
                    "node {node}: cannot measure {}: {e}",
                    root.display()
                ))
            })?
    };
    let keys = src.cfg.keys.clone();
    let target = src.redis_target.to_string();
    disk::publish(&mut src.redis, &keys, &sample)
        .await
        .map_err(|e| ReporterError::Redis {
            target: target.clone(),
            source: e,
        })?;
    let rec = record::record(
        &mut src.redis,
        &keys,
        &[ubackup_catalog::Sample::Disk(sample.clone())],
        &src.stores,
    )
    .await
    .map_err(|e| ReporterError::Redis { target, source: e })?;
    // the same percentage `status`, the web overview and the disk alerts
    // show: the share of the filesystem the node can no longer write
    // (reserved blocks count as used), not df's used/(used+avail)
    let used_pct = if sample.total > 0 {
        100.0 * sample.total.saturating_sub(sample.free) as f64 / sample.total as f64
    } else {
        0.0
    };
    let mut stdout = format!(
        "disk node {}: {} used of {} ({used_pct:.1}% not available to the node), {} free at {}\n",
        sample.node,
        format::bytes(sample.used),
        format::bytes(sample.total),
        format::bytes(sample.free),
        sample.path
    );
    Ok(finish_recording(&mut stdout, &src, &rec))
}

/// `forget-node`: 0 forgotten, 1 refused (alive, or still holding
/// messages or results: try again later), 3 unknown node or Redis error.
async fn run_forget(cfg: ReporterConfig, node: &str) -> Result<Outcome, ReporterError> {
    use ubackup_common::queue::{forget_worker, Forget};
    let target = cfg.redis()?;
    let mut conn = target.manager().await.map_err(|e| ReporterError::Redis {
        target: target.to_string(),
        source: e,
    })?;
    let outcome = forget_worker(&mut conn, &cfg.keys, node)
        .await
        .map_err(|e| ReporterError::Redis {
            target: target.to_string(),
            source: e,
        })?;
    let (code, line) = match outcome {
        Forget::Forgotten => (0, format!("forgot {node}: removed from the workers set, its state and control hashes deleted")),
        Forget::Unknown => {
            return Err(ReporterError::Other(format!(
                "no worker `{node}` is registered at {target} (key prefix `{}`)",
                cfg.keys.prefix()
            )))
        }
        Forget::Alive => (1, format!("not forgotten: {node} is alive (its heartbeat is live); stop it first")),
        Forget::InFlight(n) => (1, format!("not forgotten: {node} still holds {n} message(s) in flight; a live node re-queues them once its heartbeat has expired, then try again")),
        Forget::Outbox(n) => (1, format!("not forgotten: {n} result(s) of {node} wait in its outbox for the message Redis; a live node forwards them, then try again")),
    };
    tracing::info!(node, ?outcome, "forget-node");
    Ok(Outcome {
        stdout: line + "\n",
        code,
    })
}

async fn run_queue(cfg: ReporterConfig) -> Result<Outcome, ReporterError> {
    let mut src = Sources::open(cfg, false).await?;
    let now = now_ms();
    let (_, view) = src.cluster(now).await?;
    let keys = src.cfg.keys.clone();
    let target = src.redis_target.to_string();
    queue::publish(&mut src.redis, &keys, &view, now)
        .await
        .map_err(|e| ReporterError::Redis {
            target: target.clone(),
            source: e,
        })?;
    let rec = record::record(
        &mut src.redis,
        &keys,
        &queue::samples(&view, now),
        &src.stores,
    )
    .await
    .map_err(|e| ReporterError::Redis { target, source: e })?;
    let keep = src.cfg.thresholds.samples_keep;
    if !keep.is_zero() {
        if let Some(sqlite) = &src.sqlite {
            if let Err(e) = sqlite.prune_samples(now - keep.as_millis() as i64).await {
                tracing::warn!("cannot prune old samples: {e}");
            }
        }
    }
    let mut stdout = String::new();
    for l in &view.lists {
        stdout.push_str(&format!("{} {} {}\n", l.kind.as_str(), l.list, l.depth));
    }
    Ok(finish_recording(&mut stdout, &src, &rec))
}

/// Exit 1 when a configured store could not take the samples (they stay
/// pending in Redis and go in on a later run).
fn finish_recording(stdout: &mut String, src: &Sources, rec: &record::RecordOutcome) -> Outcome {
    let mut code = 0;
    for e in &src.store_errors {
        stdout.push_str(&format!(
            "catalog unavailable: {e}; samples stay pending in Redis\n"
        ));
        code = 1;
    }
    if let Some(e) = &rec.error {
        stdout.push_str(&format!(
            "catalog refused the samples: {e}; {} pending in Redis\n",
            rec.pending
        ));
        code = 1;
    } else if src.stores.is_empty() {
        stdout.push_str(&format!(
            "no catalog here: {} sample(s) pending in Redis until a reporter with a catalog runs `queue`\n",
            rec.pending
        ));
    }
    Outcome {
        stdout: std::mem::take(stdout),
        code,
    }
}
