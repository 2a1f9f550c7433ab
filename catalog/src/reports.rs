//! What the reporter asks a catalog: activity over a time window, the
//! slowest pulls, the newest result of each instance, and where to keep its
//! disk/queue samples.
//!
//! [`Reports`] extends [`Catalog`]. Its default methods are built on the
//! `Catalog` queries alone (so any store answers them); SQLite overrides
//! them with single SQL statements. Elasticsearch uses the defaults, which
//! page through at most [`GENERIC_SCAN_LIMIT`] records per window and say so
//! with `truncated`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::record::{BackupQuery, CatalogRecord};
use crate::samples::Sample;
use crate::{Catalog, CatalogError};

/// Records the generic (non-SQL) window scan reads at most.
pub const GENERIC_SCAN_LIMIT: usize = 10_000;

/// Activity of one node in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWindow {
    /// `node_id`, or the node's IP for original nodes.
    pub node: String,
    /// Pulled, verified and not illegal.
    pub ok: u64,
    /// Everything else (client failures, failed pulls, illegal backups).
    pub failed: u64,
    /// Of `failed`: flagged illegal (dead-lettered, not a regular file…).
    pub illegal: u64,
    /// Bytes of the `ok` backups.
    pub bytes: u64,
}

/// Backups whose `create_time` lies in `[since_ms, until_ms)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    pub since_ms: i64,
    pub until_ms: i64,
    pub ok: u64,
    pub failed: u64,
    pub illegal: u64,
    pub bytes: u64,
    pub by_node: Vec<NodeWindow>,
    /// True when the store could only scan part of the window.
    pub truncated: bool,
}

impl WindowStats {
    /// Sums the per-node rows into the totals.
    pub fn from_nodes(
        since_ms: i64,
        until_ms: i64,
        by_node: Vec<NodeWindow>,
        truncated: bool,
    ) -> Self {
        let mut w = WindowStats {
            since_ms,
            until_ms,
            truncated,
            ..Default::default()
        };
        for n in &by_node {
            w.ok += n.ok;
            w.failed += n.failed;
            w.illegal += n.illegal;
            w.bytes += n.bytes;
        }
        w.by_node = by_node;
        w
    }

    fn add(by_node: &mut std::collections::BTreeMap<String, NodeWindow>, r: &CatalogRecord) {
        let n = by_node
            .entry(r.node().to_string())
            .or_insert_with(|| NodeWindow {
                node: r.node().into(),
                ..Default::default()
            });
        if r.is_success() {
            n.ok += 1;
            n.bytes += r.result.size.max(0) as u64;
        } else {
            n.failed += 1;
            if r.result.illegal.is_some() {
                n.illegal += 1;
            }
        }
    }
}

/// The reporter's queries. Implemented by every store.
#[async_trait]
pub trait Reports: Catalog {
    /// Totals and per-node counts of the backups created in the window.
    async fn window_stats(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<WindowStats, CatalogError> {
        let mut by_node = Default::default();
        let mut seen = 0usize;
        let page = 1000usize;
        loop {
            let q = BackupQuery {
                since_ms: Some(since_ms),
                until_ms: Some(until_ms - 1),
                include_deleted: true,
                limit: page,
                offset: seen,
                ..Default::default()
            };
            let recs = self.list_backups(&q).await?;
            for r in &recs {
                WindowStats::add(&mut by_node, r);
            }
            seen += recs.len();
            if recs.len() < page {
                return Ok(WindowStats::from_nodes(
                    since_ms,
                    until_ms,
                    by_node.into_values().collect(),
                    false,
                ));
            }
            if seen >= GENERIC_SCAN_LIMIT {
                return Ok(WindowStats::from_nodes(
                    since_ms,
                    until_ms,
                    by_node.into_values().collect(),
                    true,
                ));
            }
        }
    }

    /// The `n` successful pulls of the window that took longest
    /// (`duration_ms`), longest first. Original nodes record no duration
    /// and never appear here.
    async fn slowest_pulls(
        &self,
        since_ms: i64,
        until_ms: i64,
        n: usize,
    ) -> Result<Vec<CatalogRecord>, CatalogError> {
        let mut all = Vec::new();
        let page = 1000usize;
        loop {
            let q = BackupQuery {
                since_ms: Some(since_ms),
                until_ms: Some(until_ms - 1),
                succeeded: Some(true),
                include_deleted: true,
                limit: page,
                offset: all.len(),
                ..Default::default()
            };
            let recs = self.list_backups(&q).await?;
            let more = recs.len() == page && all.len() + recs.len() < GENERIC_SCAN_LIMIT;
            all.extend(recs);
            if !more {
                break;
            }
        }
        all.retain(|r| r.result.duration_ms.is_some());
        all.sort_by(|a, b| {
            b.result
                .duration_ms
                .cmp(&a.result.duration_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        all.truncate(n);
        Ok(all)
    }

    /// The newest result (by `create_time`) of every registered instance,
    /// ordered by instance. When two results share that time (the same
    /// message handled twice after a crash), a successful one is preferred.
    async fn latest_records(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        let mut out = Vec::new();
        for e in self.instances().await? {
            let mut q = BackupQuery::for_instance(&e.key);
            q.include_deleted = true;
            q.since_ms = Some(e.last_attempt_ms);
            q.limit = 10;
            let recs = self.list_backups(&q).await?;
            if let Some(r) = pick_latest(recs) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Keeps the reporter's disk/queue samples (idempotent per source and time).
    async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError>;

    /// Stored files a `ubackup-server verify` run found missing or corrupt
    /// (not deleted since). Restore no longer offers them; the reporter
    /// raises an `illegal` alert for each, because such a file is usually
    /// not its instance's newest record.
    async fn verify_failures(&self) -> Result<Vec<CatalogRecord>, CatalogError>;
}

/// Of several records of one instance, the newest, preferring a success
/// among those with the newest time.
pub(crate) fn pick_latest(recs: Vec<CatalogRecord>) -> Option<CatalogRecord> {
    recs.into_iter().max_by(|a, b| {
        a.result
            .create_time
            .cmp(&b.result.create_time)
            .then_with(|| a.is_success().cmp(&b.is_success()))
            .then_with(|| b.id.cmp(&a.id))
    })
}
