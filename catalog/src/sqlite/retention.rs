//! [`Retention`] on SQLite: one statement per question, writes off the
//! async runtime.

use super::{row_to_record, SqliteCatalog, SELECT_COLUMNS};
use crate::record::{CatalogRecord, InstanceKey};
use crate::retention::{illegal_after, Retention, VerifyOutcome};
use crate::CatalogError;
use async_trait::async_trait;
use rusqlite::params;

#[async_trait]
impl Retention for SqliteCatalog {
    async fn instances_on_node(&self, node: &str) -> Result<Vec<InstanceKey>, CatalogError> {
        let node = node.to_string();
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT server_id, type, instance FROM backups \
                 WHERE node = ?1 AND succeed = 1 AND deleted_at IS NULL ORDER BY server_id, type, instance",
            )?;
            let rows = st.query_map([node], |r| Ok(InstanceKey { server_id: r.get(0)?, back_type: r.get(1)?, instance: r.get(2)? }))?;
            rows.collect()
        })
        .await
    }

    async fn set_pinned(&self, id: &str, pinned: bool) -> Result<bool, CatalogError> {
        let id = id.to_string();
        self.with_writer(move |c| {
            c.execute(
                "UPDATE backups SET pinned = ?2 WHERE id = ?1",
                params![id, pinned as i64],
            )
        })
        .await
        .map(|n| n > 0)
    }

    async fn mark_deleted(&self, id: &str, at_ms: i64) -> Result<(), CatalogError> {
        let id = id.to_string();
        self.with_writer(move |c| {
            c.execute(
                "UPDATE backups SET deleted_at = COALESCE(deleted_at, ?2) WHERE id = ?1",
                params![id, at_ms],
            )
        })
        .await
        .map(|_| ())
    }

    async fn record_verify(
        &self,
        id: &str,
        outcome: &VerifyOutcome,
        at_ms: i64,
    ) -> Result<(), CatalogError> {
        let id = id.to_string();
        let outcome = outcome.clone();
        self.with_writer(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let cur: Option<String> = tx.query_row("SELECT illegal FROM backups WHERE id = ?1", [&id], |r| r.get(0))?;
            tx.execute(
                "UPDATE backups SET verified_at = ?2, verify_state = ?3, illegal = ?4 WHERE id = ?1",
                params![id, at_ms, outcome.state(), illegal_after(cur.as_deref(), &outcome)],
            )?;
            tx.commit()
        })
        .await
    }

    async fn verify_problems(
        &self,
        since_ms: Option<i64>,
    ) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM backups WHERE deleted_at IS NULL \
                 AND verify_state IN ('missing', 'corrupt') AND create_time >= ?1 \
                 ORDER BY create_time DESC, id"
            ))?;
            let rows = st.query_map([since_ms.unwrap_or(i64::MIN)], row_to_record)?;
            rows.collect()
        })
        .await
    }
}
