//! Pins, deletion marks, verification results and full scans, the same on
//! SQLite and on the Elasticsearch stand-in.

use crate::common;

use common::{rec, result};
use ubackup_catalog::retention::VERIFY_ILLEGAL_PREFIX;
use ubackup_catalog::{
    BackupQuery, Catalog, EsCatalog, EsSettings, InstanceKey, Retention, SqliteCatalog,
    VerifyOutcome,
};
use ubackup_testkit::es::EsStandIn;

fn key() -> InstanceKey {
    InstanceKey {
        server_id: 111111,
        back_type: "mysql".into(),
        instance: 3306,
    }
}

/// The same assertions against any store.
async fn exercise(cat: &dyn Retention, es_refresh: Option<&EsCatalog>) {
    cat.prepare().await.unwrap();
    let recs: Vec<_> = (0..5)
        .map(|i| rec(result(3306, 1_763_800_000_000 + i * 1000)))
        .collect();
    cat.store(&recs).await.unwrap();
    let mut other = result(6379, 1_763_800_000_000);
    other.back_type = "redis".into();
    other.node_id = Some("n2".into());
    cat.store(&[rec(other)]).await.unwrap();
    if let Some(es) = es_refresh {
        es.refresh().await.unwrap();
    }
    assert_eq!(cat.instances_on_node("n1").await.unwrap(), [key()]);
    assert_eq!(
        cat.instances_on_node("n2").await.unwrap()[0].back_type,
        "redis"
    );
    assert!(cat.instances_on_node("n9").await.unwrap().is_empty());

    // pin / unpin, and an unknown id
    assert!(cat.set_pinned(&recs[1].id, true).await.unwrap());
    assert!(cat.get(&recs[1].id).await.unwrap().unwrap().meta.pinned);
    // a replay of its result (the indexer stopped before its ack) keeps
    // the pin: in ES a whole-document `index` used to clear it
    cat.store(std::slice::from_ref(&recs[1])).await.unwrap();
    assert!(
        cat.get(&recs[1].id).await.unwrap().unwrap().meta.pinned,
        "a replay unpinned the backup"
    );
    assert!(!cat.set_pinned("no-such-id", true).await.unwrap());
    assert!(cat.set_pinned(&recs[1].id, false).await.unwrap());
    assert!(!cat.get(&recs[1].id).await.unwrap().unwrap().meta.pinned);

    // a deleted record is no longer listed, and a replay does not revive it
    cat.mark_deleted(&recs[0].id, 42).await.unwrap();
    cat.mark_deleted(&recs[0].id, 99).await.unwrap();
    assert_eq!(
        cat.get(&recs[0].id).await.unwrap().unwrap().meta.deleted_at,
        Some(42),
        "the first deletion time stays"
    );
    cat.store(std::slice::from_ref(&recs[0])).await.unwrap();
    assert_eq!(
        cat.get(&recs[0].id).await.unwrap().unwrap().meta.deleted_at,
        Some(42),
        "a replay of a deleted record's result keeps the deletion mark"
    );
    let listed = cat
        .scan_backups(&BackupQuery::for_instance(&key()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|r| r.id != recs[0].id));

    // verification: a failure makes the record illegal, a pass clears it
    let bad = VerifyOutcome::Corrupt("size 3, catalog says 1024".into());
    cat.record_verify(&recs[2].id, &bad, 1000).await.unwrap();
    let r = cat.get(&recs[2].id).await.unwrap().unwrap();
    assert_eq!(r.meta.verify_state.as_deref(), Some("corrupt"));
    assert_eq!(r.meta.verified_at, Some(1000));
    assert!(r
        .result
        .illegal
        .as_deref()
        .unwrap()
        .starts_with(VERIFY_ILLEGAL_PREFIX));
    assert!(!r.is_success(), "restore must not offer it");
    cat.store(std::slice::from_ref(&recs[2])).await.unwrap();
    let r = cat.get(&recs[2].id).await.unwrap().unwrap();
    assert!(
        r.meta.verify_state.as_deref() == Some("corrupt") && !r.is_success(),
        "a replay must not make a corrupt backup look good again"
    );
    let problems = cat.verify_problems(None).await.unwrap();
    assert_eq!(
        problems.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [recs[2].id.as_str()]
    );
    cat.record_verify(
        &recs[2].id,
        &VerifyOutcome::Ok {
            checked: "size+blake3".into(),
        },
        2000,
    )
    .await
    .unwrap();
    let r = cat.get(&recs[2].id).await.unwrap().unwrap();
    assert_eq!(
        (r.meta.verify_state.as_deref(), r.result.illegal.as_deref()),
        (Some("ok"), None)
    );
    assert!(cat.verify_problems(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_pins_deletions_and_verification() {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(&dir.path().join("c.sqlite")).unwrap();
    exercise(&cat, None).await;
    // a replay of a deleted record's result keeps the deletion mark
    let r = rec(result(3306, 1_763_800_000_000));
    cat.store(std::slice::from_ref(&r)).await.unwrap();
    assert_eq!(
        cat.get(&r.id).await.unwrap().unwrap().meta.deleted_at,
        Some(42)
    );
}

#[tokio::test]
async fn es_pins_deletions_and_verification() {
    let es = EsStandIn::start();
    let cat = EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap();
    exercise(&cat, Some(&cat)).await;
}

#[tokio::test]
async fn scan_pages_past_one_page_and_through_equal_times() {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(&dir.path().join("c.sqlite")).unwrap();
    // 2500 records: 1200 share one create_time (more than a page of 1000)
    let mut recs = Vec::new();
    for i in 0..2500i64 {
        let mut r = result(3306, if i < 1200 { 5_000 } else { 10_000 + i });
        r.filename = Some(format!("f{i}"));
        recs.push(rec(r));
    }
    cat.store(&recs).await.unwrap();
    let all = cat
        .scan_backups(&BackupQuery::for_instance(&key()))
        .await
        .unwrap();
    assert_eq!(all.len(), 2500);
    let ids: std::collections::HashSet<_> = all.iter().map(|r| &r.id).collect();
    assert_eq!(ids.len(), 2500, "no duplicates");
    assert!(all
        .windows(2)
        .all(|w| w[0].result.create_time >= w[1].result.create_time));
}
