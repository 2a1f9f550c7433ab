//! The Elasticsearch catalog against the ES 8 stand-in.

use crate::common;

use common::{failed, rec, result};
use serde_json::json;
use ubackup_catalog::es::EsAuth;
use ubackup_catalog::{
    BackupQuery, Catalog, CatalogError, EsCatalog, EsSettings, InstanceKey, StoreOutcome,
};
use ubackup_testkit::es::EsStandIn;

fn catalog(es: &EsStandIn) -> EsCatalog {
    EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap()
}

#[tokio::test]
async fn documents_carry_the_original_fields_with_their_types() {
    let es = EsStandIn::start();
    let cat = catalog(&es);
    cat.prepare().await.unwrap();
    let r = rec(result(3306, 1_763_800_000_000));
    assert_eq!(
        cat.store(std::slice::from_ref(&r)).await.unwrap(),
        vec![StoreOutcome::Stored]
    );
    let doc = es
        .doc("uuzubackup", &r.id)
        .expect("indexed under the record id");
    assert_eq!(
        doc,
        json!({
            "interval": 3600, "server_id": 111111, "game_id": 31, "op_id": 1,
            "game_server_ip": "10.0.0.5", "instance": 3306, "back_server_ip": "10.0.9.1",
            "file_path": "/data/mysql/10.0.0/5", "filename": "db_3306_1763800000000.tar.gz",
            "create_time": 1_763_800_000_000i64, "rsync_time": 1_763_800_005_000i64, "size": 1024,
            "last_all_filename": "None", "last_all_time": 0, "succeed": 1, "log": "ok", "type": "mysql",
            "node_id": "n1", "duration_ms": 120, "attempts": 1, "bytes_per_sec": 8533,
            "verify": "size+blake3", "checksum": "blake3:00ff", "game_name": "mygame"
        })
    );
    // the mapping the documents were checked against: nothing was added dynamically
    let m = es.mapping("uuzubackup").unwrap();
    assert_eq!(m, ubackup_catalog::es::mapping::backup_mappings());
    assert_eq!(
        cat.get(&r.id).await.unwrap().unwrap().result,
        r.result,
        "real-time get"
    );
}

#[tokio::test]
async fn replays_are_noops_and_lists_are_newest_first() {
    let es = EsStandIn::start();
    let cat = catalog(&es);
    cat.prepare().await.unwrap();
    let batch = vec![
        rec(result(3306, 1_000)),
        rec(failed(3306, 3_000, "rsync: code 23")),
        rec(result(3306, 2_000)),
        rec(result(3307, 9_000)),
    ];
    cat.store(&batch).await.unwrap();
    cat.store(&batch[..2]).await.unwrap();
    assert_eq!(es.doc_count("uuzubackup"), 4, "replays add nothing");
    // an update with doc_as_upsert: an identical replay changes nothing
    // (an `index` would have replaced the document: version 2)
    assert_eq!(es.doc_version("uuzubackup", &batch[0].id), Some(1));
    cat.refresh().await.unwrap();
    let key = InstanceKey {
        server_id: 111111,
        back_type: "mysql".into(),
        instance: 3306,
    };
    let times: Vec<i64> = cat
        .list_backups(&BackupQuery::for_instance(&key))
        .await
        .unwrap()
        .iter()
        .map(|r| r.result.create_time)
        .collect();
    assert_eq!(times, vec![3_000, 2_000, 1_000]);
    let q = BackupQuery {
        succeeded: Some(true),
        until_ms: Some(1_500),
        ..BackupQuery::for_instance(&key)
    };
    assert_eq!(cat.list_backups(&q).await.unwrap().len(), 1);
    let q = BackupQuery {
        node: Some("10.0.9.1".into()),
        ..Default::default()
    };
    assert_eq!(
        cat.list_backups(&q).await.unwrap().len(),
        4,
        "node by IP queries the ip field"
    );

    let e = cat.instance(&key).await.unwrap().expect("registry entry");
    assert_eq!(
        (e.first_seen_ms, e.last_attempt_ms, e.last_success_ms),
        (1_000, 3_000, Some(2_000))
    );
    assert_eq!(e.last_error.as_deref(), Some("rsync: code 23"));
    let all = cat.instances().await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.key.instance).collect::<Vec<_>>(),
        vec![3306, 3307]
    );
    let overdue = cat.overdue(9_000 + 3_600_000 + 1, 0).await.unwrap();
    assert_eq!(
        overdue.iter().map(|e| e.key.instance).collect::<Vec<_>>(),
        vec![3306, 3307]
    );
    assert_eq!(
        cat.overdue(2_000 + 3_600_000 + 1, 0).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn per_item_failures_are_sorted_and_only_stored_items_reach_the_registry() {
    let es = EsStandIn::start();
    let cat = catalog(&es);
    cat.prepare().await.unwrap();
    let a = rec(result(1, 1_000));
    let b = rec(result(2, 1_000));
    let mut c = rec(result(3, 1_000));
    c.result.game_server_ip = "not-an-ip".into();
    c = rec(c.result);
    es.fail_item_id(&a.id, 429, 1);
    let out = cat.store(&[a.clone(), b.clone(), c.clone()]).await.unwrap();
    assert!(
        matches!(&out[0], StoreOutcome::Retry(r) if r.contains("es_rejected_execution_exception")),
        "{out:?}"
    );
    assert_eq!(out[1], StoreOutcome::Stored);
    match &out[2] {
        StoreOutcome::Rejected(r) => assert!(
            r.contains("'not-an-ip' is not an IP string literal."),
            "{r}"
        ),
        other => panic!("{other:?}"),
    }
    let key = |i| InstanceKey {
        server_id: 111111,
        back_type: "mysql".into(),
        instance: i,
    };
    assert!(cat.instance(&key(1)).await.unwrap().is_none());
    assert!(cat.instance(&key(2)).await.unwrap().is_some());
    assert!(cat.instance(&key(3)).await.unwrap().is_none());
    // the retried item goes through the second time
    assert_eq!(cat.store(&[a]).await.unwrap(), vec![StoreOutcome::Stored]);
    assert!(cat.instance(&key(1)).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unavailable_cluster_is_a_retryable_error() {
    let es = EsStandIn::start();
    let cat = catalog(&es);
    cat.prepare().await.unwrap();
    es.set_down(true);
    let err = cat.store(&[rec(result(1, 1))]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    es.set_down(false);
    // a closed port: no HTTP answer at all
    let gone = EsCatalog::new(&EsSettings::new(
        vec![format!("http://127.0.0.1:{}", ubackup_testkit::free_port())
            .parse()
            .unwrap()],
        "x",
    ))
    .unwrap();
    let err = gone.prepare().await.unwrap_err();
    assert!(matches!(err, CatalogError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn credentials_are_sent_and_missing_ones_are_retryable() {
    let es = EsStandIn::start();
    es.require_basic_auth("elastic", "s3cret");
    let mut s = EsSettings::new(vec![es.url().parse().unwrap()], "uuzubackup");
    let err = EsCatalog::new(&s).unwrap().prepare().await.unwrap_err();
    assert!(
        err.is_retryable() && err.to_string().contains("HTTP 401"),
        "{err}"
    );
    s.auth = Some(EsAuth::Basic {
        user: "elastic".into(),
        password: "s3cret".into(),
    });
    EsCatalog::new(&s).unwrap().prepare().await.unwrap();

    let es = EsStandIn::start();
    es.require_api_key("a2V5aWQ6c2VjcmV0");
    let mut s = EsSettings::new(vec![es.url().parse().unwrap()], "uuzubackup");
    s.auth = Some(EsAuth::ApiKey("keyid:secret".into()));
    EsCatalog::new(&s).unwrap().prepare().await.unwrap();
    s.auth = Some(EsAuth::ApiKey("a2V5aWQ6c2VjcmV0".into()));
    EsCatalog::new(&s).unwrap().prepare().await.unwrap();
}

#[tokio::test]
async fn requests_go_round_robin_over_several_urls() {
    let a = EsStandIn::start();
    let b = EsStandIn::start();
    let s = EsSettings::new(
        vec![a.url().parse().unwrap(), b.url().parse().unwrap()],
        "uuzubackup",
    );
    let cat = EsCatalog::new(&s).unwrap();
    for _ in 0..4 {
        cat.cluster_version().await.unwrap();
    }
    assert_eq!(a.request_count("GET", "/"), 2);
    assert_eq!(b.request_count("GET", "/"), 2);
}

/// HTTPS with a private CA (`es_ca_cert`), through a TLS front on the
/// stand-in: trusted with the CA, refused without it (a certificate error,
/// retryable, never "stored"), accepted again with `es_tls_verify = no`.
#[tokio::test]
async fn https_with_a_private_ca_and_without_verification() {
    let es = EsStandIn::start();
    let tls = ubackup_testkit::TlsProxy::start(es.addr().port()).unwrap();
    let url: url::Url = tls.url().parse().unwrap();
    let mut s = EsSettings::new(vec![url.clone()], "uuzubackup");
    s.ca_cert = Some(tls.ca.ca_pem.clone());
    let cat = EsCatalog::new(&s).unwrap();
    cat.prepare().await.unwrap();
    let r = rec(result(3306, 1_763_800_000_000));
    assert_eq!(
        cat.store(std::slice::from_ref(&r)).await.unwrap(),
        vec![StoreOutcome::Stored]
    );
    assert!(es.doc("uuzubackup", &r.id).is_some(), "arrived through TLS");

    // the same cluster without its CA: the handshake fails
    let untrusted = EsCatalog::new(&EsSettings::new(vec![url.clone()], "uuzubackup")).unwrap();
    let r2 = rec(result(3306, 1_763_800_001_000));
    let err = untrusted
        .store(std::slice::from_ref(&r2))
        .await
        .expect_err("an unknown CA must not be trusted");
    assert!(
        matches!(err, CatalogError::Unavailable { .. }),
        "a transport error is retried, not a refusal: {err}"
    );
    assert!(es.doc("uuzubackup", &r2.id).is_none());

    // es_tls_verify = no: any certificate
    let mut s = EsSettings::new(vec![url], "uuzubackup");
    s.tls_verify = false;
    let insecure = EsCatalog::new(&s).unwrap();
    assert_eq!(
        insecure.store(std::slice::from_ref(&r2)).await.unwrap(),
        vec![StoreOutcome::Stored]
    );
}

#[tokio::test]
async fn an_encrypted_copy_is_an_object_of_the_mapping_and_reads_back() {
    let es = EsStandIn::start();
    let cat = catalog(&es);
    cat.prepare().await.unwrap();
    let mut r = result(3306, 1_763_800_000_000);
    r.encryption = Some(ubackup_common::message::Encryption {
        format: "age".into(),
        recipients: vec!["0123456789abcdef".into(), "fedcba9876543210".into()],
        size: 1234,
        checksum: "blake3:aa55".into(),
    });
    let r = rec(r);
    cat.store(std::slice::from_ref(&r)).await.unwrap();
    let doc = es.doc("uuzubackup", &r.id).unwrap();
    assert_eq!(
        doc["encryption"],
        json!({"format": "age", "recipients": ["0123456789abcdef", "fedcba9876543210"], "size": 1234, "checksum": "blake3:aa55"})
    );
    // the original fields are untouched, and nothing was mapped dynamically
    assert_eq!(doc["size"], 1024);
    assert_eq!(doc["checksum"], "blake3:00ff");
    assert_eq!(
        es.mapping("uuzubackup").unwrap(),
        ubackup_catalog::es::mapping::backup_mappings()
    );
    assert_eq!(cat.get(&r.id).await.unwrap().unwrap().result, r.result);
}
