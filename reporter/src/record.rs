//! Getting samples into the catalog, even from a host that has none.
//!
//! Every sample is first pushed onto the Redis list `Keys::samples` (capped
//! at [`PENDING_CAP`]). A reporter run that has catalog stores configured
//! then moves the oldest pending samples into every store and removes
//! exactly those elements (LREM), so a node's `disk` cron (no catalog
//! there) and the indexer host's `queue` cron (catalog there) together get
//! every node's samples into SQLite/ES. A store that fails leaves the
//! samples pending for the next run; stores upsert by (source, time), so a
//! sample handed over twice is kept once.

use std::sync::Arc;

use ubackup_catalog::{Reports, Sample};
use ubackup_common::Keys;
use ubackup_common::RedisConn;

/// Samples kept pending at most (about a week of 5-minute samples of 100
/// nodes and lists); the oldest are dropped beyond it.
pub const PENDING_CAP: isize = 200_000;
/// Samples moved per store call.
const BATCH: isize = 500;
/// Batches per run, so one run stays short after a long outage.
const MAX_BATCHES: usize = 100;

/// What happened to the samples of one run.
#[derive(Debug, Default)]
pub struct RecordOutcome {
    /// Moved from Redis into every configured store.
    pub stored: usize,
    /// Still pending in Redis after this run.
    pub pending: u64,
    /// Why a store refused them (they stay pending).
    pub error: Option<String>,
}

/// Pushes `samples` onto the pending list, then drains it into `stores`.
pub async fn record(
    conn: &mut RedisConn,
    keys: &Keys,
    samples: &[Sample],
    stores: &[Arc<dyn Reports>],
) -> redis::RedisResult<RecordOutcome> {
    if !samples.is_empty() {
        let mut p = redis::pipe();
        p.atomic();
        for s in samples {
            p.lpush(
                keys.samples(),
                serde_json::to_string(s).expect("sample serializes"),
            )
            .ignore();
        }
        p.ltrim(keys.samples(), 0, PENDING_CAP - 1).ignore();
        p.query_async::<()>(conn).await?;
    }
    drain(conn, keys, stores).await
}

/// Moves pending samples into every store.
pub async fn drain(
    conn: &mut RedisConn,
    keys: &Keys,
    stores: &[Arc<dyn Reports>],
) -> redis::RedisResult<RecordOutcome> {
    let mut out = RecordOutcome::default();
    if !stores.is_empty() {
        for _ in 0..MAX_BATCHES {
            let raw: Vec<String> = redis::cmd("LRANGE")
                .arg(keys.samples())
                .arg(-BATCH)
                .arg(-1)
                .query_async(conn)
                .await?;
            if raw.is_empty() {
                break;
            }
            let mut parsed = Vec::with_capacity(raw.len());
            for r in &raw {
                match serde_json::from_str::<Sample>(r) {
                    Ok(s) => parsed.push(s),
                    // would block the list forever: drop it, loudly
                    Err(e) => {
                        tracing::warn!(element = %r.chars().take(200).collect::<String>(), "dropping an unreadable pending sample: {e}")
                    }
                }
            }
            let mut failed = None;
            for st in stores {
                if let Err(e) = st.store_samples(&parsed).await {
                    failed = Some(format!("{}: {e}", st.describe()));
                    break;
                }
            }
            if let Some(e) = failed {
                tracing::warn!("samples stay pending in Redis ({}): {e}", keys.samples());
                out.error = Some(e);
                break;
            }
            let mut p = redis::pipe();
            for r in &raw {
                p.lrem(keys.samples(), -1, r).ignore();
            }
            p.query_async::<()>(conn).await?;
            out.stored += parsed.len();
            if (raw.len() as isize) < BATCH {
                break;
            }
        }
    }
    out.pending = redis::cmd("LLEN")
        .arg(keys.samples())
        .query_async(conn)
        .await?;
    Ok(out)
}
