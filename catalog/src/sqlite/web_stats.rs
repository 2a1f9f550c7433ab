//! [`Activity`] on SQLite: a few SQL statements over the `create_time`
//! index, the same counts as [`scan_activity`].

use super::{row_to_record, SqliteCatalog, SELECT_COLUMNS};
use crate::record::CatalogRecord;
use crate::web_stats::{Activity, ActivityFilter, Bucket, DAY_MS, HOUR_MS};
use crate::CatalogError;
use rusqlite::types::Value as SqlValue;

impl SqliteCatalog {
    /// [`Activity`] in four SQL statements over the `create_time` index.
    pub async fn activity(
        &self,
        since_ms: i64,
        until_ms: i64,
        filter: &ActivityFilter,
        top: usize,
    ) -> Result<Activity, CatalogError> {
        let filter = filter.clone();
        self.with_reader(move |c| {
            // ?1 since, ?2 until, ?3 game_name or NULL, ?4 type or NULL, ?5 bucket length / limit
            let base = "create_time >= ?1 AND create_time < ?2 \
                        AND (?3 IS NULL OR game_name = ?3) AND (?4 IS NULL OR type = ?4)";
            let ok = "succeed = 1 AND illegal IS NULL";
            let args = |fifth: i64| -> Vec<SqlValue> {
                vec![
                    since_ms.into(),
                    until_ms.into(),
                    filter
                        .game_name
                        .clone()
                        .map_or(SqlValue::Null, SqlValue::Text),
                    filter
                        .back_type
                        .clone()
                        .map_or(SqlValue::Null, SqlValue::Text),
                    fifth.into(),
                ]
            };
            let buckets = |len: i64| -> rusqlite::Result<Vec<Bucket>> {
                // create_time is positive here, so integer division floors
                let mut st = c.prepare_cached(&format!(
                    "SELECT (create_time / ?5) * ?5 AS b, SUM({ok}), SUM(NOT ({ok})), \
                       SUM(CASE WHEN {ok} THEN MAX(size, 0) ELSE 0 END) \
                     FROM backups WHERE {base} GROUP BY b ORDER BY b"
                ))?;
                let rows = st.query_map(rusqlite::params_from_iter(args(len)), |r| {
                    Ok(Bucket {
                        start_ms: r.get(0)?,
                        ok: r.get::<_, i64>(1)?.max(0) as u64,
                        failed: r.get::<_, i64>(2)?.max(0) as u64,
                        bytes: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?;
                rows.collect()
            };
            let top_by = |order: &str, extra: &str| -> rusqlite::Result<Vec<CatalogRecord>> {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {SELECT_COLUMNS} FROM backups WHERE {base} AND {ok}{extra} \
                     ORDER BY {order}, id LIMIT ?5"
                ))?;
                let rows =
                    st.query_map(rusqlite::params_from_iter(args(top as i64)), row_to_record)?;
                rows.collect()
            };
            Ok(Activity {
                since_ms,
                until_ms,
                hours: buckets(HOUR_MS)?,
                days: buckets(DAY_MS)?,
                largest: top_by("size DESC", "")?,
                slowest: top_by("duration_ms DESC", " AND duration_ms IS NOT NULL")?,
                truncated: false,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CatalogRecord;
    use crate::web_stats::scan_activity;
    use crate::Catalog;
    use ubackup_common::ResultRecord;

    fn rec(i: i64, t: i64, game: &str, ty: &str, succeed: u8) -> CatalogRecord {
        let r = ResultRecord {
            interval: 3600,
            server_id: 7,
            game_id: 1,
            op_id: 1,
            game_server_ip: "10.0.0.5".into(),
            instance: 3300 + i % 3,
            back_server_ip: "10.0.9.1".into(),
            file_path: Some("/b/".into()),
            filename: Some(format!("f{i}.tar.gz")),
            create_time: t,
            rsync_time: t + 10,
            size: 1000 + (i * 7919) % 5000,
            last_all_filename: "None".into(),
            last_all_time: 0,
            succeed,
            log: if succeed == 1 { "ok" } else { "boom" }.into(),
            back_type: ty.into(),
            node_id: Some("n1".into()),
            duration_ms: (i % 4 != 0).then_some(((i * 104_729) % 9000) as u64),
            attempts: Some(1),
            bytes_per_sec: None,
            verify: None,
            checksum: None,
            illegal: (i % 11 == 0).then(|| "size mismatch".to_string()),
            run_id: None,
            encryption: None,
        };
        CatalogRecord::new(r, game)
    }

    #[tokio::test]
    async fn sqlite_activity_matches_the_generic_scan() {
        let dir = tempfile::tempdir().unwrap();
        let cat = SqliteCatalog::open(&dir.path().join("c.db")).unwrap();
        let t0 = 1_763_800_000_000i64;
        let recs: Vec<CatalogRecord> = (0..400)
            .map(|i| {
                let game = ["a", "b<script>"][(i % 2) as usize];
                let ty = ["mysql", "redis", "mysql"][(i % 3) as usize];
                rec(i, t0 + i * 1_234_567, game, ty, (i % 5 != 0) as u8)
            })
            .collect();
        cat.store(&recs).await.unwrap();
        let until = t0 + 300 * 1_234_567;
        for f in [
            ActivityFilter::default(),
            ActivityFilter {
                game_name: Some("b<script>".into()),
                back_type: None,
            },
            ActivityFilter {
                game_name: Some("a".into()),
                back_type: Some("mysql".into()),
            },
            ActivityFilter {
                game_name: Some("nobody".into()),
                back_type: None,
            },
        ] {
            let sql = cat.activity(t0 + 1, until, &f, 5).await.unwrap();
            let generic = scan_activity(&cat, t0 + 1, until, &f, 5).await.unwrap();
            assert_eq!(sql, generic, "filter {f:?}");
            // the expected totals, counted by hand
            let want: Vec<&CatalogRecord> = recs
                .iter()
                .filter(|r| {
                    r.result.create_time > t0 && r.result.create_time < until && f.matches(r)
                })
                .collect();
            let ok = want.iter().filter(|r| r.is_success()).count() as u64;
            let total: u64 = sql.hours.iter().map(|b| b.ok + b.failed).sum();
            assert_eq!(total, want.len() as u64);
            assert_eq!(sql.days.iter().map(|b| b.ok).sum::<u64>(), ok);
            assert!(sql.hours.iter().all(|b| b.start_ms % HOUR_MS == 0));
            if f.game_name.as_deref() == Some("nobody") {
                assert!(sql.hours.is_empty() && sql.largest.is_empty());
            } else {
                assert_eq!(sql.largest.len(), 5);
                let max = want
                    .iter()
                    .filter(|r| r.is_success())
                    .map(|r| r.result.size)
                    .max();
                assert_eq!(Some(sql.largest[0].result.size), max);
                assert!(sql.slowest.iter().all(|r| r.result.duration_ms.is_some()));
            }
        }
    }
}
