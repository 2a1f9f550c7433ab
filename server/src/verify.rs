//! `ubackup-server verify`: re-checks the files this node stores against
//! the catalog (a regular file, its size, and its blake3 checksum when one
//! was recorded) and records each outcome (`verified_at`, `verify_state`).
//!
//! A missing or corrupt file becomes an illegal backup: `verify_state`
//! `missing` / `corrupt` and `illegal` = `verify: …` (see
//! `ubackup_catalog::retention`), which the reporter alerts on and which
//! restore no longer offers. A later pass (the file was put back) clears it.
//!
//! It also walks `server_root_path` for the reverse: files that no catalog
//! record of this node names ("unrecorded"). The known source is a node
//! killed between landing a file and acknowledging it, whose message another
//! node then finished: the first copy stays behind, recorded nowhere. Only
//! files landed more than [`UNRECORDED_AFTER_MS`] ago are reported, so a
//! result the indexer has not stored yet is not mistaken for one. They are
//! reported, never deleted: deciding that a file is garbage is the
//! operator's call.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
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
    // an encrypted file is checked as the ciphertext it is: no key needed
    let (size, want) = r.result.stored();
    if meta.len() as i64 != size {
        return VerifyOutcome::Corrupt(format!(
            "{} has {} bytes, the catalog says {size}",
            path.display(),
            meta.len(),
        ));
    }
    let Some(want) = want else {
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

/// A file this long after it landed (its ctime: the rename into place sets
/// it) with no record is reported as unrecorded.
pub const UNRECORDED_AFTER_MS: i64 = 86_400_000;

/// Regular files under `root` that are not in `recorded` and were landed
/// before `cutoff_ms`; the node's own hidden areas (`.ubackup-tmp`,
/// `.ubackup-quarantine`, a `.NAME.ubackup-landing` copy) are skipped.
/// Returns (path, bytes), sorted. Blocking.
pub fn unrecorded_files(
    root: &Path,
    recorded: &HashSet<PathBuf>,
    cutoff_ms: i64,
) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() && meta.ctime() * 1000 < cutoff_ms && !recorded.contains(&path)
            {
                out.push((path, meta.len()));
            }
        }
    }
    out.sort();
    out
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
    /// Files under server_root_path that no record of this node names.
    pub unrecorded: Vec<(PathBuf, u64)>,
    pub interrupted: bool,
}

impl VerifyReport {
    pub fn summary(&self) -> String {
        format!(
            "{} ok, {} missing or corrupt, {} verified recently and skipped, {} not checked (path outside server_root_path), {} unrecorded file(s) ({} bytes){}",
            self.ok,
            self.problems.len(),
            self.skipped_recent,
            self.refused.len(),
            self.unrecorded.len(),
            self.unrecorded.iter().map(|u| u.1).sum::<u64>(),
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
    let mut recorded: HashSet<PathBuf> = HashSet::new();
    for key in local_instances(cat, &nodes).await? {
        for r in cat.scan_backups(&BackupQuery::for_instance(&key)).await? {
            if !nodes.iter().any(|n| n == r.node()) || r.result.file_path.is_none() {
                continue;
            }
            // every undeleted record of this node names a file, successful
            // or not (a corrupt-marked one still has its file here); only
            // the successful ones are checked
            let path = stored_path(&cfg.server_root_path, &r);
            if let Ok(p) = &path {
                recorded.insert(p.clone());
            }
            if r.result.succeed != 1 {
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
            let path = match path {
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
            record_first(cfg, cat, &r, &outcome).await?;
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
    verify_copies(
        cfg,
        cat,
        fresh_after,
        stop,
        emit,
        &mut report,
        &mut recorded,
    )
    .await?;
    let root = cfg.server_root_path.clone();
    let cutoff = now - UNRECORDED_AFTER_MS;
    report.unrecorded =
        tokio::task::spawn_blocking(move || unrecorded_files(&root, &recorded, cutoff))
            .await
            .unwrap_or_default();
    for (path, bytes) in &report.unrecorded {
        tracing::warn!(file = %path.display(), bytes, "verify: no catalog record of this node names this file (landed over a day ago); left in place");
        emit(&format!(
            "UNRECORDED {} ({bytes} bytes): no catalog record of this node names it; left in place",
            path.display()
        ));
    }
    Ok(report)
}

/// Records the outcome for a first copy on this node. Alone, a bad first
/// copy makes the backup illegal, as it always did. With another good
/// copy elsewhere (or a copy row of this node already), the outcome is
/// this node's copy row instead: the backup stays usable from the good
/// copy, restore skips this one, and the repair sweep replaces it.
async fn record_first(
    cfg: &ServerConfig,
    cat: &dyn Retention,
    r: &CatalogRecord,
    outcome: &VerifyOutcome,
) -> Result<(), CatalogError> {
    let node = r.node().to_string();
    let others = r.good_copies().iter().any(|c| c.node != node);
    let has_row = r.meta.copies.iter().any(|c| c.node == node);
    if !others && !has_row {
        return cat.record_verify(&r.id, outcome, now_ms()).await;
    }
    let mut copy = r.first_copy().expect("a verified first copy names a file");
    if let Some(row) = r.meta.copies.iter().find(|c| c.node == node) {
        copy = row.clone();
    }
    copy.state = outcome.state().to_string();
    copy.verified_at = Some(now_ms());
    if copy.zone.is_empty() {
        copy.zone = cfg.replica.zone.clone();
    }
    cat.record_copy(&r.id, &copy).await?;
    if matches!(outcome, VerifyOutcome::Ok { .. }) {
        // clears what an earlier verification of the first copy set
        cat.record_verify(&r.id, outcome, now_ms()).await?;
    }
    Ok(())
}

/// Verifies the copies this node holds of backups another node pulled
/// (`copies` > 1), each recorded in its copy row.
async fn verify_copies(
    cfg: &ServerConfig,
    cat: &dyn Retention,
    fresh_after: Option<i64>,
    stop: &Shutdown,
    emit: &mut (dyn FnMut(&str) + Send),
    report: &mut VerifyReport,
    recorded: &mut HashSet<PathBuf>,
) -> Result<(), CatalogError> {
    let me = cfg.node_id.as_str();
    for r in cat.copies_on_node(me).await? {
        if r.node() == me || r.meta.deleted_at.is_some() {
            continue; // a first copy (checked above), or prune's to delete
        }
        let Some(copy) = r.meta.copies.iter().find(|c| c.node == me) else {
            continue;
        };
        let path = PathBuf::from(&copy.file_path);
        let label = format!(
            "{} {} (copy)",
            r.key(),
            r.result.filename.as_deref().unwrap_or("-")
        );
        if !path.is_absolute() || !path.starts_with(&cfg.server_root_path) {
            let why = format!(
                "the copy's path {} is not under server_root_path",
                path.display()
            );
            emit(&format!("NOT checked {label}: {why}"));
            report.refused.push((label, why));
            continue;
        }
        recorded.insert(path.clone());
        if stop.is_triggered() {
            report.interrupted = true;
            return Ok(());
        }
        if let (Some(after), Some(at)) = (fresh_after, copy.verified_at.or(Some(copy.recorded_at)))
        {
            if at >= after {
                report.skipped_recent += 1;
                continue;
            }
        }
        let rec = r.clone();
        let p = path.clone();
        let outcome = tokio::task::spawn_blocking(move || check_file(&p, &rec))
            .await
            .unwrap_or_else(|e| VerifyOutcome::Missing(format!("check failed: {e}")));
        let mut row = copy.clone();
        row.state = outcome.state().to_string();
        row.verified_at = Some(now_ms());
        cat.record_copy(&r.id, &row).await?;
        match &outcome {
            VerifyOutcome::Ok { .. } => report.ok += 1,
            VerifyOutcome::Missing(d) | VerifyOutcome::Corrupt(d) => {
                tracing::error!(instance = %r.key(), file = %label, "verify: {}: {d}", outcome.state());
                emit(&format!("{} {label}: {d}", outcome.state().to_uppercase()));
                report.problems.push((label, outcome.clone()));
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrecorded_files_are_the_old_ones_no_record_names() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mysql/10.0.0/5");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["recorded.xb", "orphan.xb"] {
            std::fs::write(dir.join(name), b"data").unwrap();
        }
        for hidden in [
            ".ubackup-tmp/n1/k.1/x",
            ".ubackup-quarantine/n1/k.x",
            "mysql/10.0.0/5/.x.ubackup-landing",
        ] {
            let p = root.path().join(hidden);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"tmp").unwrap();
        }
        let recorded: HashSet<PathBuf> = [root.path().join("mysql/10.0.0/5/recorded.xb")]
            .into_iter()
            .collect();
        // landed just now: not yet reported (the indexer may be behind)
        assert!(
            unrecorded_files(root.path(), &recorded, now_ms() - UNRECORDED_AFTER_MS).is_empty()
        );
        // a day later
        let later = now_ms() + UNRECORDED_AFTER_MS + 1000;
        assert_eq!(
            unrecorded_files(root.path(), &recorded, later - UNRECORDED_AFTER_MS),
            vec![(dir.join("orphan.xb"), 4)]
        );
    }
}
