//! Which files restoring a backup takes: its chain, and the plan printed
//! before anything is pulled. Which backup is [`crate::lookup`]'s.

use std::path::Path;

use ubackup_catalog::api::{chain_of, ChainLookupError};
use ubackup_catalog::chain::is_full;
use ubackup_catalog::{BackupQuery, CatalogRecord, Retention};

use super::pull::Wanted;
use crate::at::{bytes, show};
use crate::lookup::describe;
use crate::tool::ToolError;

/// The records needed to restore `target`, full first.
pub async fn chain(
    cat: &dyn Retention,
    target: &CatalogRecord,
) -> Result<Vec<CatalogRecord>, ToolError> {
    let members = chain_of(cat, target).await.map_err(|e| match e {
        ChainLookupError::Catalog(e) => ToolError::from(e),
        ChainLookupError::Chain(e) => ToolError::NotFound(format!(
            "cannot restore {} of {}: {e}",
            target.result.filename.as_deref().unwrap_or("-"),
            describe(&target.key())
        )),
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
        let others: Vec<&str> = w.others.iter().map(|o| o.node.as_str()).collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (copies also on {})", others.join(", "))
        };
        s.push_str(&format!(
            "\n  {}  {:>10}  {}  from {}:{}{also}",
            show(w.record.result.create_time),
            bytes(w.size as i64),
            w.local,
            w.node,
            w.url
        ));
    }
    s
}
