//! The repair sweep: every `repair_interval_secs`, on one node at a time
//! (an expiring Redis lock), every stored backup whose type wants more
//! than one copy is counted: good copies on nodes that are up, or down for
//! less than `repair_after_secs`. One short gets a task to the node that
//! should hold the next copy, from a good copy on a live node. The counts
//! go to the replication hash for the reporter (`under_replicated`).
//!
//! A task already queued for the same (backup, node) is not queued again
//! for a while (the push marker), so a slow copy is not duplicated; the
//! target checks again before pulling, so a late duplicate does nothing.

use std::sync::Arc;
use std::time::Duration;

use ubackup_catalog::{BackupQuery, CopyRecord};
use ubackup_common::keys::replication as field;
use ubackup_common::message::now_ms;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::WorkQueue;

use super::copy::{counts, forgotten};
use super::peers::choose_target;
use super::task::{push, rel_path, ReplicaTask};
use super::Replication;
use crate::config::ServerConfig;

/// What one sweep found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub checked: u64,
    pub under_replicated: u64,
    pub oldest_ms: i64,
    pub queued: u64,
    pub backlog: u64,
}

/// Sweeps until `stop`; the first sweep after one interval, so a node
/// that just started has heard its peers' heartbeats.
pub(crate) async fn sweep_loop(
    cfg: Arc<ServerConfig>,
    rep: Arc<Replication>,
    wq: WorkQueue,
    mut stop: Shutdown,
) {
    let every = cfg.replica.repair_interval;
    loop {
        if stop.sleep(every).await {
            return;
        }
        match take_lock(&wq, &cfg.node_id, every).await {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("repair sweep: cannot take the lock: {e}");
                continue;
            }
        }
        match sweep(&cfg, &rep, &wq).await {
            Ok(s) => {
                if s.under_replicated > 0 || s.queued > 0 {
                    tracing::info!(
                        checked = s.checked,
                        under_replicated = s.under_replicated,
                        queued = s.queued,
                        backlog = s.backlog,
                        "repair sweep"
                    );
                } else {
                    tracing::debug!(
                        checked = s.checked,
                        "repair sweep: every backup has its copies"
                    );
                }
            }
            Err(e) => tracing::warn!("repair sweep failed (next one in {every:?}): {e}"),
        }
    }
}

/// The sweep lock, held for most of one interval: another node's sweep
/// may start only when this one's interval is nearly over.
async fn take_lock(wq: &WorkQueue, node: &str, every: Duration) -> redis::RedisResult<bool> {
    let ttl = every
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(500));
    ubackup_common::lock::take(&mut wq.conn(), &wq.keys().repair_lock(), node, ttl).await
}

/// One sweep over the catalog.
pub(crate) async fn sweep(
    cfg: &ServerConfig,
    rep: &Replication,
    wq: &WorkQueue,
) -> anyhow::Result<Sweep> {
    let peers = super::peers::nodes(&mut wq.conn(), wq.keys()).await?;
    let records = rep
        .catalog
        .scan_backups(&BackupQuery {
            succeeded: Some(true),
            ..Default::default()
        })
        .await?;
    let mut s = Sweep::default();
    let mut conn = wq.conn();
    for r in &records {
        let wanted = cfg.replica.copies_for(&r.result.back_type) as usize;
        if wanted < 2 || r.meta.deleted_at.is_some() || r.first_copy().is_none() {
            continue;
        }
        s.checked += 1;
        // the copies of a forgotten node are marked lost, so restore and
        // list no longer offer them
        for c in r
            .copies()
            .into_iter()
            .filter(|c| c.is_good() && forgotten(c, r, &peers))
        {
            let lost = CopyRecord {
                state: ubackup_catalog::copies::state::LOST.into(),
                ..c
            };
            for cat in std::iter::once(&rep.catalog).chain(&rep.mirrors) {
                if let Err(e) = cat.record_copy(&r.id, &lost).await {
                    tracing::warn!(id = %r.id, node = %lost.node, catalog = %cat.describe(), "cannot mark the copy of a forgotten node lost: {e}");
                }
            }
        }
        let good: Vec<_> = r
            .good_copies()
            .into_iter()
            .filter(|c| counts(c, r, &peers, &cfg.replica))
            .collect();
        if good.len() >= wanted {
            continue;
        }
        s.under_replicated += 1;
        if s.oldest_ms == 0 || r.result.create_time < s.oldest_ms {
            s.oldest_ms = r.result.create_time;
        }
        // the source: a good copy on a live node (or an original node)
        let Some(from) = good.iter().find(|c| {
            peers
                .iter()
                .find(|p| p.node == c.node)
                .is_none_or(|p| p.alive)
        }) else {
            tracing::warn!(id = %r.id, file = ?r.result.filename, "under-replicated, and no good copy is on a node that is up");
            continue;
        };
        let Some(rel) = rel_path(&r.result) else {
            continue;
        };
        let holders: Vec<&str> = good.iter().map(|c| c.node.as_str()).collect();
        let zones: Vec<String> = good
            .iter()
            .map(|c| {
                peers
                    .iter()
                    .find(|p| p.node == c.node)
                    .map(|p| p.zone.clone())
                    .unwrap_or_else(|| c.zone.clone())
            })
            .collect();
        let zones: Vec<&str> = zones.iter().map(String::as_str).collect();
        let Some(target) = choose_target(&r.id, &peers, &holders, &zones) else {
            continue;
        };
        let task = ReplicaTask {
            id: r.id.clone(),
            back_type: r.result.back_type.clone(),
            rel_path: rel,
            from: from.node.clone(),
            why: format!("repair: {} of {wanted} good copies", good.len()),
            queued_ms: now_ms(),
        };
        if push(&mut conn, wq.keys(), &target.node, &task).await? {
            s.queued += 1;
            tracing::info!(id = %r.id, file = %task.rel_path, to = %target.node, from = %from.node, "repair: copy queued ({})", task.why);
        }
    }
    let mut p = redis::pipe();
    for peer in &peers {
        p.llen(wq.keys().replica(&peer.node));
    }
    let lens: Vec<u64> = p.query_async(&mut conn).await?;
    s.backlog = lens.iter().sum();
    redis::pipe()
        .hset(
            wq.keys().replication(),
            field::UNDER_REPLICATED,
            s.under_replicated,
        )
        .hset(wq.keys().replication(), field::OLDEST_MS, s.oldest_ms)
        .hset(wq.keys().replication(), field::CHECKED, s.checked)
        .hset(wq.keys().replication(), field::BACKLOG, s.backlog)
        .hset(wq.keys().replication(), field::QUEUED, s.queued)
        .hset(wq.keys().replication(), field::SWEEP_MS, now_ms())
        .hset(wq.keys().replication(), field::SWEEP_NODE, &cfg.node_id)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(s)
}
