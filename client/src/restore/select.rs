//! Which backup to restore, and which files that takes.

use std::collections::BTreeSet;
use std::path::Path;

use ubackup_catalog::chain::{self, is_full};
use ubackup_catalog::{BackupQuery, CatalogRecord, InstanceKey, Retention};

use super::at::{bytes, show};
use super::pull::Wanted;
use super::{describe, ToolError};

/// A usable record by id (pin/restore `--id`).
pub async fn by_id(cat: &dyn Retention, id: &str) -> Result<CatalogRecord, ToolError> {
    match cat.get(id).await? {
        None => Err(ToolError::NotFound(format!(
            "no backup with id {id} in the catalog ({})",
            cat.describe()
        ))),
        Some(r) if r.meta.deleted_at.is_some() => Err(ToolError::NotFound(format!(
            "backup {id} ({}) was pruned at {}; its file is gone",
            r.result.label(),
            show(r.meta.deleted_at.unwrap_or(0))
        ))),
        Some(r) if !r.is_success() => Err(ToolError::NotFound(format!(
            "backup {id} ({}) is not usable: {}",
            r.result.label(),
            r.result
                .illegal
                .clone()
                .unwrap_or_else(|| format!("failed: {}", r.result.log))
        ))),
        Some(r) => Ok(r),
    }
}

/// One line about a record, for error messages: time, file, state.
fn brief(r: &CatalogRecord) -> String {
    let state = if let Some(i) = &r.result.illegal {
        format!("illegal: {i}")
    } else if r.result.succeed == 1 {
        "ok".into()
    } else {
        format!("failed: {}", r.result.log)
    };
    format!(
        "{} ({}, {state})",
        show(r.result.create_time),
        r.result.filename.as_deref().unwrap_or("-")
    )
}

/// The newest successful, not illegal, not pruned backup of `key` created
/// at or before `at_ms`. The error says what exists instead.
pub async fn newest_usable(
    cat: &dyn Retention,
    key: &InstanceKey,
    at_ms: Option<i64>,
) -> Result<CatalogRecord, ToolError> {
    let q = BackupQuery {
        until_ms: at_ms,
        succeeded: Some(true),
        limit: 100,
        ..BackupQuery::for_instance(key)
    };
    let mut page = cat.list_backups(&q).await?;
    if page.len() == 100 && !page.iter().any(|r| r.is_success()) {
        page = cat.scan_backups(&q).await?;
    }
    if let Some(r) = page.into_iter().find(|r| r.is_success()) {
        return Ok(r);
    }
    // Nothing: say what was looked for and what there is.
    let looked = match at_ms {
        Some(t) => format!(
            "no successful backup of {} at or before {}",
            describe(key),
            show(t)
        ),
        None => format!("no successful backup of {}", describe(key)),
    };
    let newest_any = cat
        .list_backups(&BackupQuery {
            limit: 1,
            ..BackupQuery::for_instance(key)
        })
        .await?;
    let newest_ok = cat
        .list_backups(&BackupQuery {
            limit: 1,
            succeeded: Some(true),
            ..BackupQuery::for_instance(key)
        })
        .await?;
    let mut found = match (newest_any.first(), newest_ok.first()) {
        (None, _) => "the catalog has no undeleted backup of this instance at all".to_string(),
        (Some(any), Some(ok)) if any.id != ok.id => {
            format!(
                "newest is {}; newest successful is {}",
                brief(any),
                brief(ok)
            )
        }
        (Some(any), _) => format!("newest is {}", brief(any)),
    };
    if newest_any.is_empty() {
        // perhaps the operator means another host's backup (migration)
        let others = cat
            .list_backups(&BackupQuery {
                back_type: Some(key.back_type.clone()),
                instance: Some(key.instance),
                limit: 200,
                ..Default::default()
            })
            .await?;
        let ids: BTreeSet<i64> = others.iter().map(|r| r.result.server_id).collect();
        if !ids.is_empty() {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            found.push_str(&format!(
                "; {}/{} has backups of server(s) {}: pass --server-id to restore one of those",
                key.back_type,
                key.instance,
                ids.join(", ")
            ));
        }
    }
    Err(ToolError::NotFound(format!(
        "{looked}; {found} (catalog {})",
        cat.describe()
    )))
}

/// The records needed to restore `target`, full first.
pub async fn chain(
    cat: &dyn Retention,
    target: &CatalogRecord,
) -> Result<Vec<CatalogRecord>, ToolError> {
    if is_full(target) {
        return Ok(vec![target.clone()]);
    }
    let q = BackupQuery {
        until_ms: Some(target.result.create_time),
        succeeded: Some(true),
        ..BackupQuery::for_instance(&target.key())
    };
    let candidates: Vec<CatalogRecord> = cat
        .scan_backups(&q)
        .await?
        .into_iter()
        .filter(|r| r.is_success())
        .collect();
    let members = chain::resolve(target, &candidates).map_err(|e| {
        ToolError::NotFound(format!(
            "cannot restore {} of {}: {e}",
            target.result.filename.as_deref().unwrap_or("-"),
            describe(&target.key())
        ))
    })?;
    // an incremental whose pull failed breaks what follows it; say so
    let failed = cat
        .list_backups(&BackupQuery {
            since_ms: Some(members[0].result.create_time),
            until_ms: Some(target.result.create_time),
            succeeded: Some(false),
            limit: 20,
            ..BackupQuery::for_instance(&target.key())
        })
        .await?;
    for f in failed
        .iter()
        .filter(|f| f.result.last_all_filename == target.result.last_all_filename)
    {
        tracing::warn!(
            "a backup of this chain failed at {} ({}); if the backup tool based later incrementals on it, the restore may not apply cleanly",
            show(f.result.create_time),
            f.result.log
        );
    }
    Ok(members)
}

/// What restore is about to do, for stdout (and `--dry-run`).
pub fn plan_text(target: &CatalogRecord, wanted: &[Wanted], dest: &Path) -> String {
    let total: u64 = wanted.iter().map(|w| w.size).sum();
    let mut s = format!(
        "restore {} backup of {} taken {} ({} file(s), {}) into {}:",
        if is_full(target) {
            "full"
        } else {
            "incremental"
        },
        describe(&target.key()),
        show(target.result.create_time),
        wanted.len(),
        bytes(total as i64),
        dest.display()
    );
    for w in wanted {
        s.push_str(&format!(
            "\n  {}  {:>10}  {}  from {}:{}",
            show(w.record.result.create_time),
            bytes(w.size as i64),
            w.local,
            w.record.node(),
            w.url
        ));
    }
    s
}
