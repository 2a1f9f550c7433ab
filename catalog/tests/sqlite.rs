//! The SQLite catalog against a real database file.

use crate::common;

use common::{failed, rec, result};
use ubackup_catalog::{BackupQuery, Catalog, InstanceKey, SqliteCatalog, StoreOutcome};
use ubackup_common::message::now_ms;

fn open() -> (tempfile::TempDir, SqliteCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(&dir.path().join("sub/catalog.db")).unwrap();
    (dir, cat)
}

fn key(instance: i64) -> InstanceKey {
    InstanceKey {
        server_id: 111111,
        back_type: "mysql".into(),
        instance,
    }
}

#[tokio::test]
async fn stored_records_read_back_exactly_newest_first() {
    let (_d, cat) = open();
    let batch = vec![
        rec(result(3306, 1_000)),
        rec(result(3306, 3_000)),
        rec(failed(3306, 2_000, "rsync: code 10")),
        rec(result(3307, 5_000)),
    ];
    assert_eq!(
        cat.store(&batch).await.unwrap(),
        vec![StoreOutcome::Stored; 4]
    );

    let got = cat.get(&batch[0].id).await.unwrap().expect("stored");
    assert_eq!(
        got.result, batch[0].result,
        "every result field survives the round trip"
    );
    assert_eq!(got.game_name, "mygame");
    assert!(got.meta.indexed_at.is_some());

    let list = cat
        .list_backups(&BackupQuery::for_instance(&key(3306)))
        .await
        .unwrap();
    let times: Vec<i64> = list.iter().map(|r| r.result.create_time).collect();
    assert_eq!(times, vec![3_000, 2_000, 1_000]);

    let q = BackupQuery {
        succeeded: Some(true),
        since_ms: Some(1_500),
        ..BackupQuery::for_instance(&key(3306))
    };
    let ok: Vec<i64> = cat
        .list_backups(&q)
        .await
        .unwrap()
        .iter()
        .map(|r| r.result.create_time)
        .collect();
    assert_eq!(ok, vec![3_000]);
    let q = BackupQuery {
        limit: 1,
        offset: 1,
        ..BackupQuery::for_instance(&key(3306))
    };
    assert_eq!(
        cat.list_backups(&q).await.unwrap()[0].result.create_time,
        2_000
    );
    let q = BackupQuery {
        node: Some("n1".into()),
        ..Default::default()
    };
    assert_eq!(cat.list_backups(&q).await.unwrap().len(), 4);
    assert!(cat.get("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn replay_overwrites_and_keeps_catalog_owned_columns() {
    let (_d, cat) = open();
    let mut r = rec(result(3306, 1_000));
    cat.store(std::slice::from_ref(&r)).await.unwrap();
    let id = r.id.clone();
    cat.with_writer(move |c| {
        c.execute(
            "UPDATE backups SET deleted_at = 42, pinned = 1 WHERE id = ?1",
            [id],
        )
    })
    .await
    .unwrap();
    // the same result again, with a different log text (a re-delivered message)
    r.result.log = "ok (replayed)".into();
    cat.store(std::slice::from_ref(&r)).await.unwrap();
    let rows = cat
        .list_backups(&BackupQuery {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "a replay creates no second row");
    assert_eq!(rows[0].result.log, "ok (replayed)");
    assert_eq!(
        rows[0].meta.deleted_at,
        Some(42),
        "a replay never un-deletes"
    );
    assert!(rows[0].meta.pinned);
    assert!(
        cat.list_backups(&BackupQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "deleted rows are hidden by default"
    );
}

#[tokio::test]
async fn registry_tracks_success_attempt_error_and_overdue() {
    let (_d, cat) = open();
    let now = now_ms();
    let hour = 3_600_000;
    // 3306: ok two hours ago, failed one hour ago -> overdue once interval (1 h) + grace passed
    // 3307: ok just now
    cat.store(&[rec(result(3306, now - 2 * hour))])
        .await
        .unwrap();
    cat.store(&[
        rec(failed(3306, now - hour, "script exited 2")),
        rec(result(3307, now - 1000)),
    ])
    .await
    .unwrap();
    // an older result arriving late must not move the registry backwards
    cat.store(&[rec(result(3306, now - 3 * hour))])
        .await
        .unwrap();

    let e = cat.instance(&key(3306)).await.unwrap().unwrap();
    assert_eq!(e.last_success_ms, Some(now - 2 * hour));
    assert_eq!(e.last_attempt_ms, now - hour);
    assert_eq!(e.first_seen_ms, now - 3 * hour);
    assert_eq!(e.last_error.as_deref(), Some("script exited 2"));
    assert_eq!(e.last_error_ms, Some(now - hour));
    assert_eq!(
        (
            e.game_id,
            e.game_name.as_str(),
            e.interval,
            e.last_node.as_str()
        ),
        (31, "mygame", 3600, "n1")
    );

    let overdue = cat.overdue(now, 0).await.unwrap();
    assert_eq!(
        overdue.iter().map(|e| e.key.instance).collect::<Vec<_>>(),
        vec![3306]
    );
    assert!(
        cat.overdue(now, 2 * hour).await.unwrap().is_empty(),
        "grace is honoured"
    );
    assert_eq!(cat.instances().await.unwrap().len(), 2);
    let nodes = cat.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].0.as_str(), nodes[0].4), ("n1", 4));
}

#[tokio::test]
async fn database_is_wal_versioned_and_readable_by_the_sqlite3_cli() {
    let (dir, cat) = open();
    let now = now_ms();
    cat.store(&[
        rec(result(3306, now - 5_000)),
        rec(failed(3306, now - 4_000, "rsync: code 23")),
        rec(result(3306, now - 10 * 3_600_000)),
    ])
    .await
    .unwrap();
    // a second instance, silent for 10 hours: overdue
    cat.store(&[rec(result(3308, now - 10 * 3_600_000))])
        .await
        .unwrap();
    assert_eq!(
        cat.schema_version().unwrap(),
        ubackup_catalog::sqlite::schema::latest()
    );
    let db = dir.path().join("sub/catalog.db");
    let sqlite3 = |sql: &str| -> String {
        let out = std::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 CLI");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(sqlite3("PRAGMA journal_mode;").trim(), "wal");
    // the example queries of docs/indexer.md
    let newest = sqlite3(
        "SELECT datetime(create_time/1000, 'unixepoch') AS created, node, file_path || '/' || filename AS path, size, succeed \
         FROM backups WHERE server_id = 111111 AND type = 'mysql' AND instance = 3306 AND deleted_at IS NULL \
         ORDER BY create_time DESC LIMIT 5;",
    );
    assert_eq!(newest.lines().count(), 3, "{newest}");
    let failures = sqlite3(
        "SELECT server_id, type, instance, datetime(create_time/1000, 'unixepoch'), log FROM backups \
         WHERE succeed = 0 AND create_time > (strftime('%s','now') - 86400) * 1000 ORDER BY create_time DESC;",
    );
    assert!(failures.contains("rsync: code 23"), "{failures}");
    let overdue = sqlite3(
        "SELECT server_id || ':' || type || ':' || instance, game_name, \
                datetime(COALESCE(last_success_ms, first_seen_ms)/1000, 'unixepoch') AS last_ok \
         FROM instances \
         WHERE COALESCE(last_success_ms, first_seen_ms) + interval*1000 + 3000*1000 < strftime('%s','now')*1000;",
    );
    assert!(
        overdue.starts_with("111111:mysql:3308|mygame|"),
        "{overdue}"
    );
    assert_eq!(overdue.lines().count(), 1, "{overdue}");
    let per_node = sqlite3("SELECT node, COUNT(*), SUM(size) FROM backups WHERE succeed = 1 AND deleted_at IS NULL GROUP BY node;");
    assert_eq!(per_node.trim(), "n1|3|3072");
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let cat = SqliteCatalog::open(&path).unwrap();
        rt.block_on(cat.store(&[rec(result(1, 1))])).unwrap();
    }
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_eq!(
        rt.block_on(cat.list_backups(&BackupQuery::default()))
            .unwrap()
            .len(),
        1
    );
    let versions: i64 = rt
        .block_on(
            cat.with_reader(|c| {
                c.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            }),
        )
        .unwrap();
    assert_eq!(versions, 1);
}

/// Every node and the indexer open one fresh catalog at the same moment on
/// a cluster's first start: all of them must come up (a race between the
/// version check and `ALTER TABLE` once failed the later openers with
/// "duplicate column name").
#[test]
fn openers_racing_on_a_fresh_file_all_succeed() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteCatalog::open(&path)
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                panic!("round {round}: an opener failed: {e}");
            }
        }
        let c = rusqlite::Connection::open(&path).unwrap();
        let rows: i64 = c
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "round {round}");
    }
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(SqliteCatalog::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE schema_version SET version = 999", [])
        .unwrap();
    drop(c);
    let err = SqliteCatalog::open(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("schema version 999 is newer"), "{err}");
}

#[tokio::test]
async fn an_encrypted_copy_keeps_the_ciphertext_figures_next_to_the_plaintext_ones() {
    let (_d, cat) = open();
    let mut r = result(3306, 7_000);
    r.encryption = Some(ubackup_common::message::Encryption {
        format: "age".into(),
        recipients: vec!["0123456789abcdef".into()],
        size: 1024 + 210,
        checksum: "blake3:aa55".into(),
    });
    let batch = vec![rec(r.clone()), rec(result(3306, 8_000))];
    cat.store(&batch).await.unwrap();
    let got = cat.get(&batch[0].id).await.unwrap().unwrap();
    assert_eq!(got.result, r, "encryption survives the round trip");
    assert_eq!(got.result.stored(), (1234, Some("blake3:aa55")));
    let plain = cat.get(&batch[1].id).await.unwrap().unwrap();
    assert_eq!(plain.result.encryption, None);
    assert_eq!(plain.result.stored(), (1024, Some("blake3:00ff")));
}
