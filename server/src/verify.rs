//! `ubackup-server verify`: re-checks the files this node stores against
//! the catalog (a regular file, its size, and its blake3 checksum when one
//! was recorded) and records each outcome (`verified_at`, `verify_state`).
//!
//! A missing or corrupt file becomes an illegal backup: `verify_state`
//! `missing` / `corrupt` and `illegal` = `verify: …` (see
//! `ubackup_catalog::retention`), which the reporter alerts on and which
//! restore no longer offers. A later pass (the file was put back) clears it.

use std::path::Path;
use std::sync::Arc;

use ubackup_catalog::{BackupQuery, CatalogError, CatalogRecord, Retention, VerifyOutcome};
use ubackup_common::fsutil::blake3_file;
use ubackup_common::message::now_ms;
use ubackup_common::shutdown::Shutdown;

use crate::config::ServerConfig;
use crate::prune::{exit, local_instances, node_names, open_catalog, stored_path};

/// Checks one stored file; blocking (hashes it).
pub fn check_file(path: &Path, r: &CatalogRecord) -> VerifyOutcome {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return VerifyOutcome::Missing(format!("no file at {}", path.display()))
        }
        Err(e) => return VerifyOutcome::Missing(format!("cannot lstat {}: {e}", path.display())),
    };
    if !meta.file_type().is_file() {
        return VerifyOutcome::Corrupt(format!(
            "{} is not a regular file ({:?})",
            path.display(),
            meta.file_type()
        ));
    }
    if meta.len() as i64 != r.result.size {
        return VerifyOutcome::Corrupt(format!(
            "{} has {} bytes, the catalog says {}",
            path.display(),
            meta.len(),
            r.result.size
        ));
    }
    let Some(want) = r.result.checksum.as_deref() else {
        return VerifyOutcome::Ok {
            checked: "size".into(),
        };
    };
    match blake3_file(path) {
        Ok(got) if got == want => VerifyOutcome::Ok {
            checked: "size+blake3".into(),
        },
        Ok(got) => VerifyOutcome::Corrupt(format!(
            "{} has checksum {got}, the catalog says {want}",
            path.display()
        )),
        Err(e) => VerifyOutcome::Missing(format!("cannot read {}: {e}", path.display())),
    }
}

/// What a verify run found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub ok: usize,
    /// (record label, outcome) of every missing or corrupt file.
    pub problems: Vec<(String, VerifyOutcome)>,
    /// Verified recently enough (`--older-than`).
    pub skipped_recent: usize,
    /// Records whose path this node may not touch (outside the root…).
    pub refused: Vec<(String, String)>,
    pub interrupted: bool,
}

impl VerifyReport {
    pub fn summary(&self) -> String {
        format!(
            "{} ok, {} missing or corrupt, {} verified recently and skipped, {} not checked (path outside server_root_path){}",
            self.ok,
            self.problems.len(),
            self.skipped_recent,
            self.refused.len(),
            if self.interrupted { "; interrupted before the end" } else { "" }
        )
    }
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            exit::INTERRUPTED
        } else if !self.problems.is_empty() {
            exit::PROBLEMS
        } else {
            exit::OK
        }
    }
}

/// Verifies this node's stored files. With `older_than_days`, only files
/// not verified within that many days (never-verified files always).
pub async fn verify(
    cfg: &ServerConfig,
    cat: &dyn Retention,
    older_than_days: Option<f64>,
    stop: &Shutdown,
    emit: &mut (dyn FnMut(&str) + Send),
) -> Result<VerifyReport, CatalogError> {
    let nodes = node_names(cfg);
    let now = now_ms();
    let fresh_after = older_than_days.map(|d| now - (d * 86_400_000.0) as i64);
    let mut report = VerifyReport::default();
    for key in local_instances(cat, &nodes).await? {
        let q = BackupQuery {
            succeeded: Some(true),
            ..BackupQuery::for_instance(&key)
        };
        for r in cat.scan_backups(&q).await? {
            if !nodes.iter().any(|n| n == r.node()) || r.result.file_path.is_none() {
                continue;
            }
            if stop.is_triggered() {
                report.interrupted = true;
                return Ok(report);
            }
            let label = format!("{key} {}", r.result.filename.as_deref().unwrap_or("-"));
            if let (Some(after), Some(at)) = (fresh_after, r.meta.verified_at) {
                if at >= after {
                    report.skipped_recent += 1;
                    continue;
                }
            }
            let path = match stored_path(&cfg.server_root_path, &r) {
                Ok(p) => p,
                Err(why) => {
                    emit(&format!("NOT checked {label}: {why}"));
                    report.refused.push((label, why));
                    continue;
                }
            };
            let rec = r.clone();
            let outcome = tokio::task::spawn_blocking(move || check_file(&path, &rec))
                .await
                .unwrap_or_else(|e| VerifyOutcome::Missing(format!("check failed: {e}")));
            cat.record_verify(&r.id, &outcome, now_ms()).await?;
            match &outcome {
                VerifyOutcome::Ok { .. } => report.ok += 1,
                VerifyOutcome::Missing(d) | VerifyOutcome::Corrupt(d) => {
                    tracing::error!(instance = %key, file = %label, "verify: {}: {d}", outcome.state());
                    emit(&format!("{} {label}: {d}", outcome.state().to_uppercase()));
                    report.problems.push((label, outcome.clone()));
                }
            }
        }
    }
    Ok(report)
}

/// `ubackup-server verify`: problems on stdout, then a summary.
pub async fn run_cli(cfg: Arc<ServerConfig>, older_than_days: Option<f64>, stop: Shutdown) -> u8 {
    let cat = match open_catalog(&cfg, "verify").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ubackup-server verify: {e}");
            return if cfg.catalog.is_none() {
                exit::CONFIG
            } else {
                exit::FATAL
            };
        }
    };
    let mut print = |line: &str| println!("{line}");
    match verify(&cfg, cat.as_ref(), older_than_days, &stop, &mut print).await {
        Ok(report) => {
            println!("{}", report.summary());
            report.exit_code()
        }
        Err(e) => {
            eprintln!("ubackup-server verify: catalog error, stopped: {e}");
            exit::FATAL
        }
    }
}
