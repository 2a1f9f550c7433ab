//! The reporter's samples on SQLite: `disk_samples` / `queue_samples`
//! (see [`super::schema`]), upserts keyed by (source, time).

use super::SqliteCatalog;
use crate::samples::{DiskSample, QueueKind, QueueSample, Sample, SampleQuery};
use crate::CatalogError;
use rusqlite::params;

impl SqliteCatalog {
    /// Upserts samples in one transaction.
    pub async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        if samples.is_empty() {
            return Ok(());
        }
        let owned = samples.to_vec();
        self.with_writer(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut disk = tx.prepare_cached(
                    "INSERT OR REPLACE INTO disk_samples (node, time_ms, ip, path, total, used, free, mem_total, mem_used, load1, cpus) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                let mut queue = tx.prepare_cached(
                    "INSERT OR REPLACE INTO queue_samples (list, time_ms, kind, queue, worker, depth, oldest_age_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for s in &owned {
                    match s {
                        Sample::Disk(d) => disk.execute(params![
                            d.node,
                            d.time_ms,
                            d.ip,
                            d.path,
                            i(d.total),
                            i(d.used),
                            i(d.free),
                            d.mem_total.map(i),
                            d.mem_used.map(i),
                            d.load1,
                            d.cpus,
                        ])?,
                        Sample::Queue(q) => queue.execute(params![
                            q.list,
                            q.time_ms,
                            q.kind.as_str(),
                            q.queue,
                            q.worker,
                            i(q.depth),
                            q.oldest_age_ms,
                        ])?,
                    };
                }
            }
            tx.commit()
        })
        .await
    }

    /// Disk samples, newest first.
    pub async fn disk_samples(&self, q: &SampleQuery) -> Result<Vec<DiskSample>, CatalogError> {
        let q = q.clone();
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(
                "SELECT node, time_ms, ip, path, total, used, free, mem_total, mem_used, load1, cpus FROM disk_samples \
                 WHERE (?1 IS NULL OR node = ?1) AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR time_ms <= ?3) \
                 ORDER BY time_ms DESC, node LIMIT ?4",
            )?;
            let rows = st.query_map(params![q.source, q.since_ms, q.until_ms, q.limit()], |r| {
                Ok(DiskSample {
                    node: r.get(0)?,
                    time_ms: r.get(1)?,
                    ip: r.get(2)?,
                    path: r.get(3)?,
                    total: r.get::<_, i64>(4)?.max(0) as u64,
                    used: r.get::<_, i64>(5)?.max(0) as u64,
                    free: r.get::<_, i64>(6)?.max(0) as u64,
                    mem_total: r.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
                    mem_used: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
                    load1: r.get(9)?,
                    cpus: r.get(10)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Queue samples, newest first.
    pub async fn queue_samples(&self, q: &SampleQuery) -> Result<Vec<QueueSample>, CatalogError> {
        let q = q.clone();
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(
                "SELECT list, time_ms, kind, queue, worker, depth, oldest_age_ms FROM queue_samples \
                 WHERE (?1 IS NULL OR list = ?1) AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR time_ms <= ?3) \
                 ORDER BY time_ms DESC, list LIMIT ?4",
            )?;
            let rows = st.query_map(params![q.source, q.since_ms, q.until_ms, q.limit()], |r| {
                let kind: String = r.get(2)?;
                Ok(QueueSample {
                    list: r.get(0)?,
                    time_ms: r.get(1)?,
                    kind: QueueKind::parse(&kind).unwrap_or(QueueKind::Priority),
                    queue: r.get(3)?,
                    worker: r.get(4)?,
                    depth: r.get::<_, i64>(5)?.max(0) as u64,
                    oldest_age_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Deletes samples older than `before_ms`; returns how many.
    pub async fn prune_samples(&self, before_ms: i64) -> Result<usize, CatalogError> {
        self.with_writer(move |c| {
            let a = c.execute("DELETE FROM disk_samples WHERE time_ms < ?1", [before_ms])?;
            let b = c.execute("DELETE FROM queue_samples WHERE time_ms < ?1", [before_ms])?;
            Ok(a + b)
        })
        .await
    }
}

/// SQLite integers are signed; sizes past i64 saturate.
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
