//! Full + incremental chains, computed from catalog records alone.
//!
//! A record is a *full* when its `last_all_filename` is absent (the
//! original writes the text `None`); plain backups of schemes without
//! incrementals are fulls too. An *incremental* names its full by
//! `last_all_filename` (the full's `filename`) and `last_all_time` (the
//! time the client recorded for that full: ours writes the full's
//! `create_time`, the original the moment its script finished, a little
//! later). Restoring an incremental needs its full and every incremental
//! of that full up to it, in order: restore uses [`resolve`], and prune
//! keeps whatever [`resolve`] of a retained record names.
//!
//! Every function here is pure: callers pass the records of one instance
//! (usually the usable ones, see [`CatalogRecord::is_success`]).

use std::collections::BTreeSet;

use crate::record::CatalogRecord;

/// True for a full (or a stand-alone) backup.
pub fn is_full(r: &CatalogRecord) -> bool {
    let f = r.result.last_all_filename.trim();
    f.is_empty() || f == ubackup_common::message::NO_FULL || f == "null"
}

/// `filename` as it is stored on a node: the server lands
/// `basename(filename)` (server/src/intake.rs).
pub fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Why a chain cannot be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "incremental {incremental} needs its full {full} (recorded at {full_time_ms} ms), which is not in the catalog as a usable, undeleted backup"
    )]
    FullMissing {
        incremental: String,
        full: String,
        full_time_ms: i64,
    },
}

/// The records needed to restore `target`, oldest first (the full first,
/// `target` last), chosen among `records` (the instance's candidates; they
/// may or may not contain `target` itself).
pub fn resolve(
    target: &CatalogRecord,
    records: &[CatalogRecord],
) -> Result<Vec<CatalogRecord>, ChainError> {
    if is_full(target) {
        return Ok(vec![target.clone()]);
    }
    let full = find_full(target, records).ok_or_else(|| ChainError::FullMissing {
        incremental: target.result.filename.clone().unwrap_or_default(),
        full: target.result.last_all_filename.clone(),
        full_time_ms: target.result.last_all_time,
    })?;
    let mut incs: Vec<&CatalogRecord> = records
        .iter()
        .filter(|r| {
            !is_full(r)
                && r.id != target.id
                && same_full(r, target)
                && r.result.create_time < target.result.create_time
        })
        .collect();
    incs.sort_by(|a, b| {
        a.result
            .create_time
            .cmp(&b.result.create_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    // The same file pulled twice (two nodes after a crash, a re-sent
    // message) is needed once.
    let mut names: BTreeSet<&str> = BTreeSet::new();
    names.insert(basename(target.result.filename.as_deref().unwrap_or("")));
    names.insert(basename(full.result.filename.as_deref().unwrap_or("")));
    let mut out = vec![full.clone()];
    for r in incs {
        if names.insert(basename(r.result.filename.as_deref().unwrap_or(""))) {
            out.push(r.clone());
        }
    }
    out.push(target.clone());
    Ok(out)
}

/// Two incrementals hang off the same full.
fn same_full(a: &CatalogRecord, b: &CatalogRecord) -> bool {
    a.result.last_all_filename == b.result.last_all_filename
        && a.result.last_all_time == b.result.last_all_time
}

/// The full an incremental names: a full of that filename created no later
/// than the incremental, the one whose time is nearest `last_all_time`.
pub fn find_full<'a>(
    inc: &CatalogRecord,
    records: &'a [CatalogRecord],
) -> Option<&'a CatalogRecord> {
    let want = inc.result.last_all_filename.as_str();
    records
        .iter()
        .filter(|r| {
            is_full(r)
                && r.id != inc.id
                && r.result.create_time <= inc.result.create_time
                && r.result
                    .filename
                    .as_deref()
                    .is_some_and(|f| f == want || basename(f) == basename(want))
        })
        .min_by_key(|r| {
            (
                (r.result.create_time - inc.result.last_all_time).abs(),
                std::cmp::Reverse(r.result.create_time),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ubackup_common::ResultRecord;

    pub(crate) fn rec(name: &str, t: i64, full: Option<(&str, i64)>) -> CatalogRecord {
        let r = ResultRecord {
            server_id: 1,
            game_id: 1,
            file_path: Some("/b/mysql/10.0.0/5".into()),
            filename: Some(name.into()),
            rsync_time: t + 1,
            size: 1,
            last_all_filename: full
                .map(|f| f.0.to_string())
                .unwrap_or_else(|| "None".into()),
            last_all_time: full.map(|f| f.1).unwrap_or(0),
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            verify: None,
            checksum: None,
            ..ubackup_testkit::fixtures::result(3306, t)
        };
        CatalogRecord::new(r, "g")
    }

    fn names(v: &[CatalogRecord]) -> Vec<&str> {
        v.iter()
            .map(|r| r.result.filename.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn incremental_needs_its_full_and_earlier_incrementals_only() {
        let all = vec![
            rec("f1", 100, None),
            rec("i1a", 110, Some(("f1", 100))),
            rec("f2", 200, None),
            rec("i2a", 210, Some(("f2", 200))),
            rec("i2b", 220, Some(("f2", 200))),
            rec("i2c", 230, Some(("f2", 200))),
        ];
        assert_eq!(
            names(&resolve(&all[4], &all).unwrap()),
            ["f2", "i2a", "i2b"]
        );
        assert_eq!(names(&resolve(&all[2], &all).unwrap()), ["f2"]);
        assert_eq!(names(&resolve(&all[1], &all).unwrap()), ["f1", "i1a"]);
    }

    #[test]
    fn reused_full_name_is_told_apart_by_time() {
        // the script names every full `full.xb`: the incremental belongs to
        // the one recorded at (or nearest) its last_all_time
        let all = vec![
            rec("full.xb", 100_000, None),
            rec("full.xb", 200_000, None),
            rec("inc.xb", 230_000, Some(("full.xb", 200_004))),
            rec("old_inc.xb", 150_000, Some(("full.xb", 100_002))),
        ];
        let c = resolve(&all[2], &all).unwrap();
        assert_eq!(c[0].result.create_time, 200_000);
        assert_eq!(c.len(), 2, "the other full's incremental is not part of it");
    }

    #[test]
    fn missing_full_is_an_error_naming_it() {
        let all = vec![rec("i", 110, Some(("gone.xb", 100)))];
        let e = resolve(&all[0], &all).unwrap_err().to_string();
        assert!(e.contains("gone.xb") && e.contains("incremental i"), "{e}");
    }
}
