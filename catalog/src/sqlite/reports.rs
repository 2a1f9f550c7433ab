//! [`Reports`] on SQLite: each question in single SQL statements.

use super::{row_to_record, SqliteCatalog, SELECT_COLUMNS};
use crate::record::{CatalogRecord, InstanceKey};
use crate::reports::{pick_latest, NodeWindow, Reports, WindowStats};
use crate::samples::Sample;
use crate::CatalogError;
use async_trait::async_trait;
use rusqlite::params;

#[async_trait]
impl Reports for SqliteCatalog {
    async fn verify_failures(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        crate::Retention::verify_problems(self, None).await
    }

    async fn window_stats(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<WindowStats, CatalogError> {
        let by_node = self
            .with_reader(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT node, \
                       SUM(succeed = 1 AND illegal IS NULL), \
                       SUM(NOT (succeed = 1 AND illegal IS NULL)), \
                       SUM(illegal IS NOT NULL), \
                       SUM(CASE WHEN succeed = 1 AND illegal IS NULL THEN MAX(size, 0) ELSE 0 END) \
                     FROM backups WHERE create_time >= ?1 AND create_time < ?2 GROUP BY node ORDER BY node",
                )?;
                let rows = st.query_map(params![since_ms, until_ms], |r| {
                    Ok(NodeWindow {
                        node: r.get(0)?,
                        ok: r.get::<_, i64>(1)?.max(0) as u64,
                        failed: r.get::<_, i64>(2)?.max(0) as u64,
                        illegal: r.get::<_, i64>(3)?.max(0) as u64,
                        bytes: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(WindowStats::from_nodes(since_ms, until_ms, by_node, false))
    }

    async fn slowest_pulls(
        &self,
        since_ms: i64,
        until_ms: i64,
        n: usize,
    ) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM backups \
                 WHERE create_time >= ?1 AND create_time < ?2 AND succeed = 1 AND illegal IS NULL AND duration_ms IS NOT NULL \
                 ORDER BY duration_ms DESC, id LIMIT ?3"
            ))?;
            let rows = st.query_map(params![since_ms, until_ms, n as i64], row_to_record)?;
            rows.collect()
        })
        .await
    }

    async fn latest_records(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        let cols: String = SELECT_COLUMNS
            .split(',')
            .map(|c| format!("b.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let recs: Vec<CatalogRecord> = self
            .with_reader(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {cols} FROM instances i JOIN backups b \
                       ON b.server_id = i.server_id AND b.type = i.type AND b.instance = i.instance \
                      AND b.create_time = i.last_attempt_ms \
                     ORDER BY b.server_id, b.type, b.instance"
                ))?;
                let rows = st.query_map([], row_to_record)?;
                rows.collect()
            })
            .await?;
        // group the (rare) ties per instance
        let mut out: Vec<CatalogRecord> = Vec::with_capacity(recs.len());
        let mut group: Vec<CatalogRecord> = Vec::new();
        let mut key: Option<InstanceKey> = None;
        for r in recs {
            if key.as_ref() != Some(&r.key()) {
                out.extend(pick_latest(std::mem::take(&mut group)));
                key = Some(r.key());
            }
            group.push(r);
        }
        out.extend(pick_latest(group));
        Ok(out)
    }

    async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        SqliteCatalog::store_samples(self, samples).await
    }
}
