//! Retention: `ubackup-server prune`, and the periodic run inside the
//! server when `prune_interval` is set.
//!
//! Rules, per instance (`server_id:type:instance`), over the catalog's
//! undeleted records of that instance on *every* node (a full may sit on
//! one node and its incrementals on another):
//! * a backup younger than the keep days of its type is kept
//!   (`ServerConfig::keep_days`: `keeptime.<type>`, else the original's
//!   `mysqlkeeptime` / `rediskeeptime`; a type with none is never pruned);
//! * a pinned backup is kept;
//! * the newest usable chain of the instance is kept, however old;
//! * whatever a kept backup needs to be restored (its full and the earlier
//!   incrementals of that full, [`chain::resolve`]) is kept;
//! * everything else goes, but only files that this node stored (records
//!   whose node is this node's `node_id` or `myip`), that lie under
//!   `server_root_path`, and that are regular files.
//!
//! A deletion removes the file, then sets `deleted_at` in the catalog, so
//! list and restore never offer it again. A crash in between leaves a
//! record whose file is gone; the next run finds it missing and marks it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ubackup_catalog::chain::{self, basename};
use ubackup_catalog::{BackupQuery, CatalogError, CatalogRecord, InstanceKey, Retention};
use ubackup_common::message::now_ms;
use ubackup_common::shutdown::Shutdown;

use crate::config::ServerConfig;

const DAY_MS: i64 = 86_400_000;

/// Exit codes of `ubackup-server prune` and `verify`.
pub mod exit {
    pub const OK: u8 = 0;
    /// The catalog could not be read or written; nothing more was done.
    pub const FATAL: u8 = 1;
    pub const CONFIG: u8 = 2;
    /// prune: some files could not be deleted or marked; verify: some
    /// files are missing or corrupt.
    pub const PROBLEMS: u8 = 3;
    /// Stopped by SIGTERM/SIGINT before the end.
    pub const INTERRUPTED: u8 = 4;
}

/// Why a backup stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    Young { days: u32 },
    Pinned,
    NewestChain,
    NeededBy(String),
    NoKeepTime,
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keep::Young { days } => write!(f, "younger than {days} days"),
            Keep::Pinned => write!(f, "pinned"),
            Keep::NewestChain => write!(f, "newest usable chain of the instance"),
            Keep::NeededBy(n) => write!(f, "needed to restore {n}"),
            Keep::NoKeepTime => write!(f, "no keep time for this type"),
        }
    }
}

/// The decision for one instance.
#[derive(Debug, Default)]
pub struct InstancePlan {
    /// Records of this node to delete, with the reason.
    pub delete: Vec<(CatalogRecord, String)>,
    /// Records kept (on any node), with the first reason found.
    pub keep: Vec<(CatalogRecord, Keep)>,
}

/// A record that points at a stored file.
fn has_file(r: &CatalogRecord) -> bool {
    r.result.succeed == 1 && r.result.file_path.is_some() && r.result.filename.is_some()
}

fn name(r: &CatalogRecord) -> String {
    r.result.filename.clone().unwrap_or_default()
}

/// Decides for one instance. `records`: its undeleted records on all
/// nodes; `keep_days`: of its type (`None`: never pruned); `nodes`: the
/// names this node's records carry.
pub fn plan_instance(
    records: &[CatalogRecord],
    keep_days: Option<u32>,
    now_ms: i64,
    nodes: &[String],
) -> InstancePlan {
    let files: Vec<&CatalogRecord> = records.iter().filter(|r| has_file(r)).collect();
    let Some(days) = keep_days else {
        return InstancePlan {
            delete: Vec::new(),
            keep: files
                .into_iter()
                .map(|r| (r.clone(), Keep::NoKeepTime))
                .collect(),
        };
    };
    let cutoff = now_ms - days as i64 * DAY_MS;
    let usable: Vec<CatalogRecord> = files
        .iter()
        .filter(|r| r.is_success())
        .map(|r| (*r).clone())
        .collect();
    let mut kept: HashMap<String, Keep> = HashMap::new();
    for r in &files {
        if r.meta.pinned {
            kept.insert(r.id.clone(), Keep::Pinned);
        } else if r.result.create_time >= cutoff {
            kept.insert(r.id.clone(), Keep::Young { days });
        }
    }
    if let Some(newest) = usable.iter().max_by(|a, b| {
        a.result
            .create_time
            .cmp(&b.result.create_time)
            .then_with(|| b.id.cmp(&a.id))
    }) {
        for m in chain::resolve(newest, &usable).unwrap_or_else(|_| vec![newest.clone()]) {
            kept.entry(m.id).or_insert(Keep::NewestChain);
        }
    }
    // What the kept backups need. One pass suffices: a chain's members
    // need only a part of the same chain.
    let roots: Vec<&CatalogRecord> = files
        .iter()
        .filter(|r| kept.contains_key(&r.id))
        .copied()
        .collect();
    for r in roots {
        if let Ok(members) = chain::resolve(r, &usable) {
            for m in members {
                kept.entry(m.id).or_insert_with(|| Keep::NeededBy(name(r)));
            }
        }
    }
    let mut plan = InstancePlan::default();
    for r in files {
        match kept.get(&r.id) {
            Some(k) => plan.keep.push((r.clone(), k.clone())),
            None if nodes.iter().any(|n| n == r.node()) => {
                let age = (now_ms - r.result.create_time) / DAY_MS;
                plan.delete.push((r.clone(), format!("{age} days old, keep time {days} days, not pinned, not needed by a kept backup")));
            }
            None => {}
        }
    }
    plan
}

/// The stored file of `r`, if it is one this node may touch: an absolute
/// `file_path` under `root` without `..`, a plain file name, and no
/// symlinked directory leading out of `root`.
pub fn stored_path(root: &Path, r: &CatalogRecord) -> Result<PathBuf, String> {
    let dir = PathBuf::from(r.result.file_path.as_deref().unwrap_or(""));
    let file = basename(r.result.filename.as_deref().unwrap_or(""));
    if file.is_empty() || file == "." || file == ".." {
        return Err(format!(
            "record has no usable file name ({:?})",
            r.result.filename
        ));
    }
    if !dir.is_absolute()
        || dir.components().any(|c| matches!(c, Component::ParentDir))
        || !dir.starts_with(root)
    {
        return Err(format!(
            "{} is not under server_root_path {}",
            dir.display(),
            root.display()
        ));
    }
    if let (Ok(real_dir), Ok(real_root)) = (dir.canonicalize(), root.canonicalize()) {
        if !real_dir.starts_with(&real_root) {
            return Err(format!(
                "{} leads out of server_root_path (to {})",
                dir.display(),
                real_dir.display()
            ));
        }
    }
    Ok(dir.join(file))
}

/// One line of what a run did or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deleted {
        path: PathBuf,
        bytes: u64,
        why: String,
    },
    WouldDelete {
        path: PathBuf,
        bytes: u64,
        why: String,
    },
    /// The file was already gone: only the record is marked.
    AlreadyGone { path: PathBuf, why: String },
    /// Not deleted: outside the root, not a regular file, an I/O error.
    Refused { what: String, problem: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Deleted { path, bytes, why } => {
                write!(f, "deleted {} ({bytes} bytes): {why}", path.display())
            }
            Action::WouldDelete { path, bytes, why } => {
                write!(f, "would delete {} ({bytes} bytes): {why}", path.display())
            }
            Action::AlreadyGone { path, why } => write!(
                f,
                "already gone {} (record marked deleted): {why}",
                path.display()
            ),
            Action::Refused { what, problem } => write!(f, "NOT deleted {what}: {problem}"),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub actions: Vec<Action>,
    pub kept: usize,
    pub instances: usize,
    pub interrupted: bool,
}

impl PruneReport {
    pub fn freed_bytes(&self) -> u64 {
        self.actions
            .iter()
            .map(|a| {
                if let Action::Deleted { bytes, .. } = a {
                    *bytes
                } else {
                    0
                }
            })
            .sum()
    }
    pub fn problems(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Refused { .. }))
            .count()
    }
    pub fn summary(&self) -> String {
        let count = |f: fn(&Action) -> bool| self.actions.iter().filter(|a| f(a)).count();
        format!(
            "{} instance(s): {} deleted ({} bytes freed), {} would be deleted, {} already gone, {} kept, {} not deleted because of a problem{}",
            self.instances,
            count(|a| matches!(a, Action::Deleted { .. })),
            self.freed_bytes(),
            count(|a| matches!(a, Action::WouldDelete { .. })),
            count(|a| matches!(a, Action::AlreadyGone { .. })),
            self.kept,
            self.problems(),
            if self.interrupted { "; interrupted before the end" } else { "" }
        )
    }
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            exit::INTERRUPTED
        } else if self.problems() > 0 {
            exit::PROBLEMS
        } else {
            exit::OK
        }
    }
}

/// The names this node's records carry: `node_id`, and `myip` for
/// records written when it ran the original server.
pub fn node_names(cfg: &ServerConfig) -> Vec<String> {
    let mut v = vec![cfg.node_id.clone()];
    if cfg.myip != cfg.node_id {
        v.push(cfg.myip.clone());
    }
    v
}

/// Instances with at least one undeleted stored file on this node.
pub async fn local_instances(
    cat: &dyn Retention,
    nodes: &[String],
) -> Result<Vec<InstanceKey>, CatalogError> {
    let mut keys = std::collections::BTreeSet::new();
    for n in nodes {
        keys.extend(cat.instances_on_node(n).await?);
    }
    Ok(keys.into_iter().collect())
}

/// One prune run over this node's files. `emit` gets every action as it
/// happens (stdout for the CLI, the log for the periodic run).
pub async fn prune(
    cfg: &ServerConfig,
    cat: &dyn Retention,
    dry_run: bool,
    stop: &Shutdown,
    emit: &mut (dyn FnMut(&Action) + Send),
) -> Result<PruneReport, CatalogError> {
    let nodes = node_names(cfg);
    let now = now_ms();
    let mut report = PruneReport::default();
    for key in local_instances(cat, &nodes).await? {
        if stop.is_triggered() {
            report.interrupted = true;
            break;
        }
        report.instances += 1;
        let records = cat.scan_backups(&BackupQuery::for_instance(&key)).await?;
        let plan = plan_instance(
            &records,
            cfg.keep_days.get(&key.back_type).copied(),
            now,
            &nodes,
        );
        report.kept += plan.keep.len();
        for (r, why) in plan.delete {
            let why = format!("{key} {}: {why}", name(&r));
            let action = match stored_path(&cfg.server_root_path, &r) {
                Err(problem) => Action::Refused {
                    what: format!("{key} {}", name(&r)),
                    problem,
                },
                Ok(path) => delete_one(cat, &r, path, why, dry_run).await?,
            };
            match &action {
                Action::Refused { .. } => tracing::warn!(instance = %key, "prune: {action}"),
                _ => tracing::info!(instance = %key, "prune: {action}"),
            }
            emit(&action);
            report.actions.push(action);
        }
    }
    if !report.interrupted {
        prune_copies(cfg, cat, dry_run, emit, &mut report).await?;
    }
    if !report.interrupted {
        for action in expire_quarantine(&cfg.quarantine_dir(), cfg.quarantine_days, now, dry_run) {
            match &action {
                Action::Refused { .. } => tracing::warn!("prune: {action}"),
                _ => tracing::info!("prune: {action}"),
            }
            emit(&action);
            report.actions.push(action);
        }
    }
    Ok(report)
}

/// Removes the files in `dir` (this node's quarantine) that were put there
/// more than `days` days before `now_ms`. The time a file was quarantined
/// is its ctime: the rename into the quarantine sets it, while the mtime
/// is the source's (rsync --times). Without this the quarantine only grew.
pub fn expire_quarantine(dir: &Path, days: u32, now_ms: i64, dry_run: bool) -> Vec<Action> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new(); // none yet
    };
    let cutoff_s = now_ms / 1000 - i64::from(days) * 86_400;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => continue, // removed meanwhile
        };
        if !meta.file_type().is_file() || meta.ctime() > cutoff_s {
            continue;
        }
        let why = format!("quarantined more than {days} day(s) ago (quarantine_days)");
        let bytes = meta.len();
        out.push(if dry_run {
            Action::WouldDelete { path, bytes, why }
        } else {
            match std::fs::remove_file(&path) {
                Ok(()) => Action::Deleted { path, bytes, why },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Action::Refused {
                    what: path.display().to_string(),
                    problem: format!("cannot delete: {e}"),
                },
            }
        });
    }
    out
}

/// The copies this node holds of backups that were pruned (by the node
/// holding the first copy, which decides for the whole chain): deleted
/// here too, and their copy rows marked `deleted`.
async fn prune_copies(
    cfg: &ServerConfig,
    cat: &dyn Retention,
    dry_run: bool,
    emit: &mut (dyn FnMut(&Action) + Send),
    report: &mut PruneReport,
) -> Result<(), CatalogError> {
    let me = cfg.node_id.as_str();
    for r in cat.copies_on_node(me).await? {
        if r.meta.deleted_at.is_none() || r.node() == me {
            continue;
        }
        let Some(copy) = r.meta.copies.iter().find(|c| c.node == me).cloned() else {
            continue;
        };
        let path = PathBuf::from(&copy.file_path);
        let what = format!("{} {} (copy)", r.key(), name(&r));
        let action = if !path.is_absolute()
            || path.components().any(|c| matches!(c, Component::ParentDir))
            || !path.starts_with(&cfg.server_root_path)
        {
            Action::Refused {
                what,
                problem: format!(
                    "the copy's path {} is not under server_root_path",
                    path.display()
                ),
            }
        } else {
            let action = delete_file(path, format!("{what}: its backup was pruned"), dry_run);
            if matches!(action, Action::Deleted { .. } | Action::AlreadyGone { .. }) {
                let mut row = copy;
                row.state = ubackup_catalog::copies::state::DELETED.into();
                cat.record_copy(&r.id, &row).await?;
            }
            action
        };
        match &action {
            Action::Refused { .. } => tracing::warn!("prune: {action}"),
            _ => tracing::info!("prune: {action}"),
        }
        emit(&action);
        report.actions.push(action);
    }
    Ok(())
}

/// Deletes one file (a regular file only) and marks its record.
async fn delete_one(
    cat: &dyn Retention,
    r: &CatalogRecord,
    path: PathBuf,
    why: String,
    dry_run: bool,
) -> Result<Action, CatalogError> {
    let action = delete_file(path, why, dry_run);
    if matches!(action, Action::Deleted { .. } | Action::AlreadyGone { .. }) {
        cat.mark_deleted(&r.id, now_ms()).await?;
    }
    Ok(action)
}

/// Deletes the regular file at `path` (nothing else, and nothing with
/// `dry_run`), saying what happened.
fn delete_file(path: PathBuf, why: String, dry_run: bool) -> Action {
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Action::Refused {
                what: path.display().to_string(),
                problem: format!("lstat: {e}"),
            }
        }
    };
    let action = match meta {
        Some(m) if !m.file_type().is_file() => {
            return Action::Refused {
                what: path.display().to_string(),
                problem: format!(
                    "not a regular file ({:?}); only regular files are deleted",
                    m.file_type()
                ),
            }
        }
        Some(m) if dry_run => {
            return Action::WouldDelete {
                path,
                bytes: m.len(),
                why,
            }
        }
        None if dry_run => {
            return Action::WouldDelete {
                path,
                bytes: 0,
                why: format!("{why} (file already gone)"),
            }
        }
        Some(m) => match std::fs::remove_file(&path) {
            Ok(()) => Action::Deleted {
                path,
                bytes: m.len(),
                why,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::AlreadyGone { path, why },
            Err(e) => {
                return Action::Refused {
                    what: path.display().to_string(),
                    problem: format!("cannot delete: {e}"),
                }
            }
        },
        None => Action::AlreadyGone { path, why },
    };
    action
}

/// Opens the catalog named by the config.
pub async fn open_catalog(cfg: &ServerConfig, what: &str) -> Result<Arc<dyn Retention>, String> {
    let loc = cfg.catalog.as_ref().ok_or_else(|| {
        format!(
            "{}: [global] catalog: missing: {what} needs the catalog; set `catalog` (the SQLite catalog path) or `es_urls` (and `es_index`)",
            cfg.file.display()
        )
    })?;
    loc.open()
        .await
        .map_err(|e| format!("cannot open the catalog ({loc}): {e}"))
}

/// `ubackup-server prune`: prints every action on stdout and a summary.
pub async fn run_cli(cfg: Arc<ServerConfig>, dry_run: bool, stop: Shutdown) -> u8 {
    let cat = match open_catalog(&cfg, "prune").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ubackup-server prune: {e}");
            return if cfg.catalog.is_none() {
                exit::CONFIG
            } else {
                exit::FATAL
            };
        }
    };
    if cfg.keep_days.is_empty() {
        eprintln!("ubackup-server prune: no keep time is set (mysqlkeeptime, rediskeeptime or keeptime.<type>); nothing will be deleted");
    }
    let mut print = |a: &Action| println!("{a}");
    match prune(&cfg, cat.as_ref(), dry_run, &stop, &mut print).await {
        Ok(report) => {
            println!(
                "{}{}",
                if dry_run { "dry run: " } else { "" },
                report.summary()
            );
            report.exit_code()
        }
        Err(e) => {
            eprintln!("ubackup-server prune: catalog error, stopped: {e}");
            exit::FATAL
        }
    }
}

/// The periodic prune inside a running server (`prune_interval`). Runs
/// once right away, then every interval, until `stop`.
pub fn spawn_periodic(
    cfg: Arc<ServerConfig>,
    mut stop: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval: Duration = cfg.prune_interval?;
    Some(tokio::spawn(async move {
        let mut cat: Option<Arc<dyn Retention>> = None;
        loop {
            if cat.is_none() {
                match open_catalog(&cfg, "prune_interval").await {
                    Ok(c) => cat = Some(c),
                    Err(e) => tracing::warn!("periodic prune skipped: {e}"),
                }
            }
            if let Some(c) = &cat {
                let mut quiet = |_: &Action| {};
                match prune(&cfg, c.as_ref(), false, &stop, &mut quiet).await {
                    Ok(r) => tracing::info!("periodic prune: {}", r.summary()),
                    Err(e) => tracing::warn!(
                        "periodic prune stopped by a catalog error (next try in {interval:?}): {e}"
                    ),
                }
            }
            if stop.sleep(interval).await {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ubackup_common::ResultRecord;

    fn rec(name: &str, days_ago: i64, full: Option<(&str, i64)>, node: &str) -> CatalogRecord {
        let t = NOW - days_ago * DAY_MS;
        let r = ResultRecord {
            interval: 3600,
            server_id: 1,
            game_id: 1,
            op_id: 1,
            game_server_ip: "10.0.0.5".into(),
            instance: 3306,
            back_server_ip: "10.0.9.1".into(),
            file_path: Some("/b/mysql/10.0.0/5".into()),
            filename: Some(name.into()),
            create_time: t,
            rsync_time: t,
            size: 1,
            last_all_filename: full
                .map(|f| f.0.to_string())
                .unwrap_or_else(|| "None".into()),
            last_all_time: full.map(|f| NOW - f.1 * DAY_MS).unwrap_or(0),
            succeed: 1,
            log: "ok".into(),
            back_type: "mysql".into(),
            node_id: Some(node.into()),
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            verify: None,
            checksum: None,
            illegal: None,
            run_id: None,
            encryption: None,
        };
        CatalogRecord::new(r, "g")
    }

    const NOW: i64 = 1_800_000_000_000;

    fn deleted(p: &InstancePlan) -> Vec<String> {
        let mut v: Vec<String> = p.delete.iter().map(|(r, _)| name(r)).collect();
        v.sort();
        v
    }

    #[test]
    fn a_full_on_another_node_is_still_needed_and_other_nodes_are_not_touched() {
        let all = vec![
            rec("f", 20, None, "n2"),
            rec("i1", 19, Some(("f", 20)), "n1"),
            rec("i2", 2, Some(("f", 20)), "n1"),
            rec("old", 30, None, "n2"),
        ];
        let p = plan_instance(&all, Some(7), NOW, &["n1".into()]);
        assert!(deleted(&p).is_empty(), "{:?}", deleted(&p));
        // from n2's point of view, only its own stale full goes
        let p = plan_instance(&all, Some(7), NOW, &["n2".into()]);
        assert_eq!(deleted(&p), ["old"]);
    }

    #[test]
    fn newest_chain_stays_however_old_and_no_keep_time_keeps_all() {
        let all = vec![
            rec("f", 50, None, "n1"),
            rec("i", 40, Some(("f", 50)), "n1"),
            rec("g", 60, None, "n1"),
        ];
        let p = plan_instance(&all, Some(7), NOW, &["n1".into()]);
        assert_eq!(deleted(&p), ["g"]);
        assert!(plan_instance(&all, None, NOW, &["n1".into()])
            .delete
            .is_empty());
    }

    #[test]
    fn a_corrupt_newest_backup_does_not_count_as_the_newest_chain() {
        let mut bad = rec("new", 20, None, "n1");
        bad.result.illegal = Some("verify: corrupt: x".into());
        let all = vec![
            bad,
            rec("good", 30, None, "n1"),
            rec("older", 40, None, "n1"),
        ];
        let p = plan_instance(&all, Some(7), NOW, &["n1".into()]);
        assert_eq!(deleted(&p), ["new", "older"]);
    }

    #[test]
    fn quarantined_files_expire_after_quarantine_days() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        std::fs::create_dir_all(q.join("sub")).unwrap();
        std::fs::write(q.join("k1.db.xb"), b"bad copy").unwrap();
        let now = now_ms();
        // younger than the limit: kept
        assert!(expire_quarantine(&q, 30, now, false).is_empty());
        assert!(expire_quarantine(&q, 30, now + 29 * DAY_MS, false).is_empty());
        // older: a dry run names it and leaves it
        let dry = expire_quarantine(&q, 30, now + 31 * DAY_MS, true);
        assert!(
            matches!(&dry[..], [Action::WouldDelete { bytes: 8, .. }]),
            "{dry:?}"
        );
        assert!(q.join("k1.db.xb").exists());
        let done = expire_quarantine(&q, 30, now + 31 * DAY_MS, false);
        assert!(
            matches!(&done[..], [Action::Deleted { bytes: 8, .. }]),
            "{done:?}"
        );
        assert!(!q.join("k1.db.xb").exists());
        assert!(q.join("sub").is_dir(), "only regular files are removed");
        // no quarantine directory yet: nothing to do
        assert!(expire_quarantine(&dir.path().join("none"), 30, now, false).is_empty());
    }
}
