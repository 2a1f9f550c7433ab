//! The indexer in-process against a real redis-server, the ES stand-in and
//! a real SQLite file.

use crate::common;

use std::time::Duration;

use common::{result, results, World};
use redis::Commands;
use serde_json::{json, Value};
use ubackup_catalog::{Catalog, CatalogRecord, InstanceKey, SqliteCatalog};
use ubackup_testkit::wait_until_async;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_both_stores_with_names_registry_and_expiring_keys() {
    let w = World::new();
    let ok = result(3306, 1);
    let mut other_game = result(3307, 2);
    other_game.game_id = 99;
    let mut failed = result(3306, 3);
    failed.succeed = 0;
    failed.log = "rsync failed: exit 23 (file vanished)".into();
    failed.file_path = None;
    w.push(&[ok.clone(), other_game.clone(), failed.clone()]);
    let (stop, h) = w.start(w.config(""));
    wait_until_async(
        "3 rows in SQLite and 3 docs in ES",
        Duration::from_secs(20),
        || async {
            w.sqlite_count() == 3 && w.es.doc_count("uuzubackup") == 3 && w.inflight_len() == 0
        },
    )
    .await;

    // SQLite: every field, with SQLite types an operator's query relies on
    let cat = SqliteCatalog::open(&w.db_path()).unwrap();
    for (r, name) in [
        (&ok, "大话西游"),
        (&other_game, "unknown"),
        (&failed, "大话西游"),
    ] {
        let got = cat.get(&r.record_id()).await.unwrap().expect("row");
        assert_eq!(&got.result, r);
        assert_eq!(got.game_name, name, "[business] map, unknown id -> unknown");
    }
    let types: (String, String, String, String, String) = w
        .sqlite()
        .query_row(
            "SELECT typeof(server_id), typeof(create_time), typeof(game_server_ip), typeof(succeed), typeof(file_path) FROM backups WHERE id = ?1",
            [failed.record_id()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        types,
        (
            "integer".into(),
            "integer".into(),
            "text".into(),
            "integer".into(),
            "null".into()
        )
    );

    // ES: the original document's fields and JSON types, plus game_name and the new fields
    let doc =
        w.es.doc("uuzubackup", &ok.record_id())
            .expect("doc under the record id");
    let mut expected = serde_json::to_value(&ok).unwrap();
    expected["game_name"] = json!("大话西游");
    assert_eq!(doc, expected);
    for (k, kind) in [
        ("server_id", "number"),
        ("create_time", "number"),
        ("game_server_ip", "string"),
        ("succeed", "number"),
        ("type", "string"),
        ("size", "number"),
    ] {
        let is = match &doc[k] {
            Value::Number(_) => "number",
            Value::String(_) => "string",
            _ => "other",
        };
        assert_eq!(is, kind, "{k}");
    }
    let fdoc = w.es.doc("uuzubackup", &failed.record_id()).unwrap();
    assert_eq!(
        (fdoc["succeed"].clone(), fdoc["file_path"].clone()),
        (json!(0), Value::Null)
    );

    // registry, in both stores
    let key = InstanceKey {
        server_id: 111111,
        back_type: "mysql".into(),
        instance: 3306,
    };
    let e = cat.instance(&key).await.unwrap().unwrap();
    assert_eq!(e.last_success_ms, Some(ok.create_time));
    assert_eq!(e.last_attempt_ms, failed.create_time);
    assert_eq!(
        e.last_error.as_deref(),
        Some("rsync failed: exit 23 (file vanished)")
    );
    let reg =
        w.es.doc("uuzubackup-instances", "111111:mysql:3306")
            .expect("ES registry doc");
    assert_eq!(reg["last_success_ms"], json!(ok.create_time));
    assert_eq!(
        reg["last_error"],
        json!("rsync failed: exit 23 (file vanished)")
    );

    // the original's expiring keys, in db 9
    let mut db9 = redis::Client::open(format!("{}9", w.redis.url()))
        .unwrap()
        .get_connection()
        .unwrap();
    for inst in [3306, 3307] {
        let k = format!("111111:mysql:{inst}");
        let ttl: i64 = db9.ttl(&k).unwrap();
        assert!(
            (3600 + 3000 - 10..=3600 + 3000).contains(&ttl),
            "{k} ttl {ttl}"
        );
    }
    let v: String = db9.get("111111:mysql:3306").unwrap();
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(
        v["create_time"],
        json!(failed.create_time),
        "newest result of the instance wins"
    );
    let in_db0: bool = w.conn().exists("111111:mysql:3306").unwrap();
    assert!(
        !in_db0,
        "the key lives in overdue_db, not in the queue's db"
    );

    // heartbeat state for the reporter
    let kind: String = w
        .conn()
        .hget(w.keys().state(&w.indexer_id), "kind")
        .unwrap();
    assert_eq!(kind, "indexer");
    stop.trigger();
    h.await.unwrap().unwrap();
    assert!(w.dead().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_are_not_results_go_to_the_dead_letter_list_with_the_reason() {
    let w = World::new();
    w.push_raw("this is not json");
    w.push_raw(r#"{"server_id": 1, "type": "mysql"}"#);
    let mut bad = serde_json::to_value(result(1, 1)).unwrap();
    bad["succeed"] = json!(7);
    w.push_raw(&bad.to_string());
    w.push(&[result(3306, 4)]);
    let (stop, h) = w.start(w.config(""));
    wait_until_async(
        "dead letters and the good result",
        Duration::from_secs(20),
        || async { w.dead().len() == 3 && w.sqlite_count() == 1 && w.inflight_len() == 0 },
    )
    .await;
    let dead = w.dead();
    let payloads: Vec<&str> = dead.iter().map(|d| d.payload.as_str()).collect();
    assert!(
        payloads.contains(&"this is not json"),
        "the raw payload is kept byte for byte"
    );
    for d in &dead {
        assert!(d.reason.starts_with("not a valid result:"), "{}", d.reason);
        assert_eq!(d.queue, w.queue);
        assert_eq!(d.node, w.indexer_id);
    }
    assert!(
        dead.iter().any(|d| d.reason.contains("missing field")),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|d| d.reason.contains("succeed is 7")),
        "{dead:?}"
    );
    assert_eq!(w.es.doc_count("uuzubackup"), 1);
    stop.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_bulk_failure_retries_429_items_and_dead_letters_400_items() {
    let w = World::new();
    let rs = results(6);
    let busy = rs[1].record_id();
    let refused = rs[4].record_id();
    w.es.fail_item_id(&busy, 429, 3);
    w.es.fail_item_id(&refused, 400, u32::MAX);
    w.push(&rs);
    let (stop, h) = w.start(w.config("batch_size = 100\nbatch_ms = 300"));
    wait_until_async("everything settled", Duration::from_secs(30), || async {
        w.queue_len() == 0 && w.inflight_len() == 0 && w.es.doc_count("uuzubackup") == 5
    })
    .await;
    let docs = w.es.docs("uuzubackup");
    assert!(
        docs.contains_key(&busy),
        "the 429 item was retried until stored"
    );
    assert!(!docs.contains_key(&refused));
    assert_eq!(
        w.es.doc_version("uuzubackup", &busy),
        Some(1),
        "stored once"
    );
    let dead = w.dead();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        serde_json::from_str::<ubackup_common::ResultRecord>(&dead[0].payload)
            .unwrap()
            .record_id(),
        refused
    );
    assert!(
        dead[0]
            .reason
            .contains("es uuzubackup refused the result: status 400: document_parsing_exception"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[0].reason.contains("injected rejection"),
        "{}",
        dead[0].reason
    );
    // only the bounced item was sent again
    let bulks: Vec<usize> =
        w.es.requests()
            .iter()
            .filter(|r| r.path == "/uuzubackup/_bulk")
            .map(|r| r.bulk_items)
            .collect();
    assert_eq!(bulks, vec![6, 1, 1, 1], "{bulks:?}");
    // SQLite is written first and keeps the refused result: it is a real backup
    assert_eq!(w.sqlite_count(), 6);
    stop.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es_only_mode_and_an_sqlite_only_mode() {
    let w = World::new();
    let (stop, h) = w.start(w.config("catalog = off"));
    w.push(&results(20));
    wait_until_async("20 docs", Duration::from_secs(20), || async {
        w.es.doc_count("uuzubackup") == 20 && w.inflight_len() == 0
    })
    .await;
    assert!(!w.db_path().exists(), "catalog = off creates no database");
    stop.trigger();
    h.await.unwrap().unwrap();

    // the same world without es_urls: SQLite only, ES never contacted
    let requests_before = w.es.requests().len();
    let (stop, h) = w.start(w.config("es_urls ="));
    w.push(&results(20));
    wait_until_async("20 rows", Duration::from_secs(20), || async {
        w.sqlite_count() == 20 && w.inflight_len() == 0
    })
    .await;
    assert_eq!(w.es.requests().len(), requests_before);
    stop.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_result_does_not_refresh_the_expiring_key() {
    let w = World::new();
    let mut old = result(4000, 1);
    old.create_time -= (3600 + 3000 + 60) * 1000;
    let fresh = result(4001, 2);
    w.push(&[old.clone(), fresh]);
    let (stop, h) = w.start(w.config("overdue_db = 3"));
    wait_until_async("stored", Duration::from_secs(20), || async {
        w.sqlite_count() == 2 && w.inflight_len() == 0
    })
    .await;
    let mut db3 = redis::Client::open(format!("{}3", w.redis.url()))
        .unwrap()
        .get_connection()
        .unwrap();
    assert!(db3.exists::<_, bool>("111111:mysql:4001").unwrap());
    assert!(
        !db3.exists::<_, bool>("111111:mysql:4000").unwrap(),
        "a result older than interval + 3000 s must not look fresh"
    );
    // it is still recorded
    let cat = SqliteCatalog::open(&w.db_path()).unwrap();
    assert!(cat
        .get(&CatalogRecord::new(old, "x").id)
        .await
        .unwrap()
        .is_some());
    stop.trigger();
    h.await.unwrap().unwrap();
}

/// Two client failures of one instance in the same second (no filename,
/// the same create_time) are two catalog rows and two ES documents when
/// their messages carry run_ids; before run_id they collapsed into one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failures_in_one_second_are_two_records() {
    let w = World::new();
    let mut a = result(3306, 0);
    a.succeed = 0;
    a.filename = None;
    a.file_path = None;
    a.log = "backup script exited 1".into();
    let mut b = a.clone();
    b.log = "backup script exited 2".into();
    a.run_id = Some("0123456789abcdef".into());
    b.run_id = Some("fedcba9876543210".into());
    w.push(&[a.clone(), b.clone()]);
    let (stop, h) = w.start(w.config("batch_size = 100\nbatch_ms = 100"));
    wait_until_async("both stored", Duration::from_secs(20), || async {
        w.sqlite_count() == 2 && w.es.doc_count("uuzubackup") == 2 && w.inflight_len() == 0
    })
    .await;
    let mut ids = w.sqlite_ids();
    ids.sort();
    let mut want = vec![a.record_id(), b.record_id()];
    want.sort();
    assert_eq!(ids, want);
    let docs = w.es.docs("uuzubackup");
    assert_eq!(docs[&a.record_id()]["run_id"], "0123456789abcdef");
    stop.trigger();
    h.await.unwrap().unwrap();
}
