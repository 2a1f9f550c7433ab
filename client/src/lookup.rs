//! Finding one backup in the catalog, for `list`, `restore` and `pin`:
//! opening the catalog the config names, naming an instance, and the
//! newest usable backup (or a record by id) with errors that say what was
//! looked for and what was found.

use std::collections::BTreeSet;
use std::sync::Arc;

use ubackup_catalog::{BackupQuery, CatalogLocation, CatalogRecord, InstanceKey, Retention};
use ubackup_common::config::SectionReader;

use crate::at::show;
use crate::config::ClientConfig;
use crate::tool::ToolError;

/// Opens the catalog the client config names (`catalog` or `es_urls`).
pub async fn open_catalog(
    cfg: &ClientConfig,
    needed_for: &str,
) -> Result<Arc<dyn Retention>, ToolError> {
    let g = SectionReader::required(&cfg.doc, "global")
        .map_err(|e| ToolError::Config(e.to_string()))?;
    let loc =
        CatalogLocation::required(&g, needed_for).map_err(|e| ToolError::Config(e.to_string()))?;
    loc.open()
        .await
        .map_err(|e| ToolError::Catalog(format!("cannot open the catalog ({loc}): {e}")))
}

/// `server_id:type:instance` from the command line, the server id
/// defaulting to this host's.
pub fn instance_key(
    cfg: &ClientConfig,
    back_type: &str,
    instance: i64,
    server_id: Option<i64>,
) -> InstanceKey {
    InstanceKey {
        server_id: server_id.unwrap_or(cfg.global.server_id),
        back_type: back_type.to_string(),
        instance,
    }
}

/// `mysql/3306 of server 111111`: how messages name an instance.
pub fn describe(key: &InstanceKey) -> String {
    format!(
        "{}/{} of server {}",
        key.back_type, key.instance, key.server_id
    )
}

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
