//! What the reporter's statistics page asks of a catalog: backups per hour
//! (ok / failed), bytes per day, and the largest and slowest backups of a
//! window, optionally for one business (`game_name`) and one type.
//!
//! [`scan_activity`] answers from [`Catalog::list_backups`] alone, so every
//! store can (Elasticsearch pages through at most [`GENERIC_SCAN_LIMIT`]
//! records and says so with `truncated`); `SqliteCatalog::activity`
//! answers the same with a few SQL statements. The counting rules are those
//! of [`crate::WindowStats`]: ok = pulled, verified and not illegal; failed
//! = everything else; bytes = bytes of the ok backups; pruned records count.

use serde::{Deserialize, Serialize};

use crate::record::{BackupQuery, CatalogRecord};
use crate::reports::{Reports, GENERIC_SCAN_LIMIT};
use crate::CatalogError;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// Which backups a statistics query counts. Unset = all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityFilter {
    /// The business name (`game_name`), exactly.
    pub game_name: Option<String>,
    /// The back_type (`mysql`, `redis`, …), exactly.
    pub back_type: Option<String>,
}

impl ActivityFilter {
    pub fn matches(&self, r: &CatalogRecord) -> bool {
        self.game_name.as_deref().is_none_or(|g| r.game_name == g)
            && self
                .back_type
                .as_deref()
                .is_none_or(|t| r.result.back_type == t)
    }
}

/// Backups created in one bucket (an hour or a UTC day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, unix ms (a multiple of its length).
    pub start_ms: i64,
    pub ok: u64,
    pub failed: u64,
    /// Bytes of the ok backups.
    pub bytes: u64,
}

/// The window `[since_ms, until_ms)` of one filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub since_ms: i64,
    pub until_ms: i64,
    /// Hours that had backups, oldest first (empty hours are left out).
    pub hours: Vec<Bucket>,
    /// UTC days that had backups, oldest first.
    pub days: Vec<Bucket>,
    /// The `top` largest ok backups, largest first.
    pub largest: Vec<CatalogRecord>,
    /// The `top` ok pulls that took longest (`duration_ms`), longest first.
    /// Original nodes record no duration and never appear here.
    pub slowest: Vec<CatalogRecord>,
    /// True when the store could only scan part of the window.
    pub truncated: bool,
}

fn add(buckets: &mut std::collections::BTreeMap<i64, Bucket>, len: i64, r: &CatalogRecord) {
    let start = r.result.create_time.div_euclid(len) * len;
    let b = buckets.entry(start).or_insert_with(|| Bucket {
        start_ms: start,
        ..Default::default()
    });
    if r.is_success() {
        b.ok += 1;
        b.bytes += r.result.size.max(0) as u64;
    } else {
        b.failed += 1;
    }
}

/// Largest first, then id (a total order, so stores agree on ties).
fn by_size(a: &CatalogRecord, b: &CatalogRecord) -> std::cmp::Ordering {
    b.result
        .size
        .cmp(&a.result.size)
        .then_with(|| a.id.cmp(&b.id))
}

fn by_duration(a: &CatalogRecord, b: &CatalogRecord) -> std::cmp::Ordering {
    b.result
        .duration_ms
        .cmp(&a.result.duration_ms)
        .then_with(|| a.id.cmp(&b.id))
}

/// [`Activity`] from `list_backups` pages (any store).
pub async fn scan_activity(
    store: &dyn Reports,
    since_ms: i64,
    until_ms: i64,
    filter: &ActivityFilter,
    top: usize,
) -> Result<Activity, CatalogError> {
    let mut hours = Default::default();
    let mut days = Default::default();
    let mut largest: Vec<CatalogRecord> = Vec::new();
    let mut slowest: Vec<CatalogRecord> = Vec::new();
    let page = 1000usize;
    let mut seen = 0usize;
    let truncated = loop {
        let q = BackupQuery {
            since_ms: Some(since_ms),
            until_ms: Some(until_ms - 1),
            back_type: filter.back_type.clone(),
            include_deleted: true,
            limit: page,
            offset: seen,
            ..Default::default()
        };
        let recs = store.list_backups(&q).await?;
        seen += recs.len();
        let last = recs.len() < page;
        for r in recs.into_iter().filter(|r| filter.matches(r)) {
            add(&mut hours, HOUR_MS, &r);
            add(&mut days, DAY_MS, &r);
            if r.is_success() {
                if r.result.duration_ms.is_some() {
                    slowest.push(r.clone());
                }
                largest.push(r);
            }
        }
        // keep memory bounded: only the top `top` of each can matter
        largest.sort_by(by_size);
        largest.truncate(top);
        slowest.sort_by(by_duration);
        slowest.truncate(top);
        if last {
            break false;
        }
        if seen >= GENERIC_SCAN_LIMIT {
            break true;
        }
    };
    Ok(Activity {
        since_ms,
        until_ms,
        hours: hours.into_values().collect(),
        days: days.into_values().collect(),
        largest,
        slowest,
        truncated,
    })
}
