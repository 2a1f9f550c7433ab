//! What restore, pin, prune and verify ask of a catalog: pins, deletion
//! marks, verification results, and complete scans.
//!
//! [`Retention`] extends [`Catalog`] like [`crate::Reports`] does. All of
//! it writes only catalog-owned columns (`pinned`, `deleted_at`,
//! `verified_at`, `verify_state`), which a replayed result never
//! overwrites, plus `illegal` for a failed verification (see
//! [`VerifyOutcome`]).
//!
//! The contract with the reporter: a stored file that `ubackup-server
//! verify` found missing or corrupt has `verify_state` `missing` /
//! `corrupt` and `illegal` = `verify: <state>: <detail>`
//! ([`VERIFY_ILLEGAL_PREFIX`]). Such a record no longer counts as a usable
//! backup ([`CatalogRecord::is_success`]), so restore skips it, and every
//! query that counts `illegal` sees it. [`Retention::verify_problems`] lists
//! them for the `illegal` alert.

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;

use crate::copies::CopyRecord;
use crate::record::{BackupQuery, CatalogRecord, InstanceKey};
use crate::{Catalog, CatalogError};

pub use crate::record::VERIFY_ILLEGAL_PREFIX;

/// Records one page of a scan reads.
const SCAN_PAGE: usize = 1000;

/// What re-checking one stored file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// Size (and checksum, when recorded) match the catalog.
    Ok { checked: String },
    /// No file at the recorded path.
    Missing(String),
    /// Not a regular file, wrong size, or wrong checksum.
    Corrupt(String),
}

impl VerifyOutcome {
    /// `verify_state`: `ok`, `missing` or `corrupt`.
    pub fn state(&self) -> &'static str {
        match self {
            VerifyOutcome::Ok { .. } => "ok",
            VerifyOutcome::Missing(_) => "missing",
            VerifyOutcome::Corrupt(_) => "corrupt",
        }
    }

    /// The `illegal` text this outcome sets (`None` for ok).
    pub fn illegal(&self) -> Option<String> {
        match self {
            VerifyOutcome::Ok { .. } => None,
            VerifyOutcome::Missing(d) | VerifyOutcome::Corrupt(d) => {
                Some(format!("{VERIFY_ILLEGAL_PREFIX}{}: {d}", self.state()))
            }
        }
    }
}

/// The new `illegal` of a record after a verification: a failure sets it
/// (unless the record was already illegal for another reason); a pass
/// clears only what an earlier verification set.
pub fn illegal_after(current: Option<&str>, outcome: &VerifyOutcome) -> Option<String> {
    match (current, outcome.illegal()) {
        (Some(cur), _) if !cur.starts_with(VERIFY_ILLEGAL_PREFIX) => Some(cur.to_string()),
        (_, new) => new,
    }
}

#[async_trait]
pub trait Retention: Catalog {
    /// Pins or unpins record `id`. `Ok(false)`: no such record.
    async fn set_pinned(&self, id: &str, pinned: bool) -> Result<bool, CatalogError>;

    /// Marks record `id` as pruned at `at_ms` (its file is gone from the node).
    async fn mark_deleted(&self, id: &str, at_ms: i64) -> Result<(), CatalogError>;

    /// Stores the outcome of re-checking record `id`'s file.
    async fn record_verify(
        &self,
        id: &str,
        outcome: &VerifyOutcome,
        at_ms: i64,
    ) -> Result<(), CatalogError>;

    /// Records (adds or replaces) the copy of record `id` on `copy.node`.
    /// `Ok(false)`: there is no record `id` (yet: the indexer may not
    /// have stored the result), nothing was written.
    async fn record_copy(&self, id: &str, copy: &CopyRecord) -> Result<bool, CatalogError>;

    /// Every record matching `q` (its `limit`/`offset` are ignored), newest
    /// first. Pages by `create_time` rather than by offset, so it also
    /// works past Elasticsearch's 10 000-hit window.
    async fn scan_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError> {
        let mut out = Vec::new();
        scan_each(self, q, |r| out.push(r)).await?;
        Ok(out)
    }

    /// The instances with at least one undeleted, successfully pulled file
    /// on `node` (prune and verify start from these). Keeps only the keys,
    /// not the records: a node holds millions of files.
    async fn instances_on_node(&self, node: &str) -> Result<Vec<InstanceKey>, CatalogError> {
        let q = BackupQuery {
            node: Some(node.to_string()),
            succeeded: Some(true),
            ..Default::default()
        };
        let mut keys = BTreeSet::new();
        scan_each(self, &q, |r| {
            keys.insert(r.key());
        })
        .await?;
        Ok(keys.into_iter().collect())
    }

    /// Records with a copy on `node` that is not marked deleted, pruned
    /// records included (their copies are still to delete), newest first.
    /// Verify and prune of that node start from these, besides its first
    /// copies. The default scans everything; a store may do better.
    async fn copies_on_node(&self, node: &str) -> Result<Vec<CatalogRecord>, CatalogError> {
        let q = BackupQuery {
            include_deleted: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        scan_each(self, &q, |r| {
            if r.meta
                .copies
                .iter()
                .any(|c| c.node == node && c.state != crate::copies::state::DELETED)
            {
                out.push(r);
            }
        })
        .await?;
        Ok(out)
    }

    /// Undeleted records whose stored file failed verification, newest
    /// first: what the reporter raises `illegal` for.
    async fn verify_problems(
        &self,
        since_ms: Option<i64>,
    ) -> Result<Vec<CatalogRecord>, CatalogError> {
        let q = BackupQuery {
            since_ms,
            ..Default::default()
        };
        Ok(self
            .scan_backups(&q)
            .await?
            .into_iter()
            .filter(|r| matches!(r.meta.verify_state.as_deref(), Some("missing" | "corrupt")))
            .collect())
    }
}

/// Feeds every record matching `q` to `f`, newest first, one page at a
/// time. The next page starts at the oldest time seen so far; records at
/// exactly that time that were already fed are skipped, and a page made
/// entirely of one time is stepped through by offset.
async fn scan_each<C: Catalog + ?Sized>(
    cat: &C,
    q: &BackupQuery,
    mut f: impl FnMut(CatalogRecord) + Send,
) -> Result<(), CatalogError> {
    let mut until = q.until_ms;
    let mut offset = 0usize;
    // ids already fed whose create_time is the oldest fed so far
    let mut boundary: HashSet<String> = HashSet::new();
    let mut oldest_fed = i64::MAX;
    loop {
        let page = BackupQuery {
            until_ms: until,
            limit: SCAN_PAGE,
            offset,
            ..q.clone()
        };
        let recs = cat.list_backups(&page).await?;
        let full = recs.len() == SCAN_PAGE;
        let oldest = recs.last().map(|r| r.result.create_time);
        for r in recs {
            let t = r.result.create_time;
            if t == oldest_fed && boundary.contains(&r.id) {
                continue;
            }
            if t < oldest_fed {
                boundary.clear();
                oldest_fed = t;
            }
            if t == oldest_fed {
                boundary.insert(r.id.clone());
            }
            f(r);
        }
        match oldest {
            Some(t) if full => {
                if until == Some(t) {
                    offset += SCAN_PAGE;
                } else {
                    until = Some(t);
                    offset = 0;
                }
            }
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_sets_and_clears_only_its_own_illegal_text() {
        let bad = VerifyOutcome::Corrupt("size 3, catalog says 4".into());
        let ok = VerifyOutcome::Ok {
            checked: "size".into(),
        };
        assert_eq!(
            illegal_after(None, &bad).as_deref(),
            Some("verify: corrupt: size 3, catalog says 4")
        );
        assert_eq!(illegal_after(Some("verify: missing: x"), &ok), None);
        assert_eq!(
            illegal_after(Some("dead-lettered: bad ip"), &ok).as_deref(),
            Some("dead-lettered: bad ip")
        );
        assert_eq!(
            illegal_after(Some("dead-lettered: bad ip"), &bad).as_deref(),
            Some("dead-lettered: bad ip")
        );
        assert_eq!(VerifyOutcome::Missing("m".into()).state(), "missing");
    }
}
