//! The catalog's Elasticsearch requests (templates, indices, mappings) are
//! valid ES 8 syntax: the stand-in, which refuses what ES 8 refuses,
//! accepts every one of them. The stand-in's own tests sit next to it in
//! `ubackup-testkit`.

use elasticsearch::http::Method;
use serde_json::json;
use ubackup_catalog::es::mapping;
use ubackup_catalog::{Catalog, EsCatalog, EsSettings};
use ubackup_testkit::es::client::{client, raw};
use ubackup_testkit::es::EsStandIn;

#[tokio::test]
async fn our_mapping_request_is_valid_es8_syntax() {
    let es = EsStandIn::start();
    let cat = EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap();
    cat.prepare().await.unwrap();
    // every mapping-carrying request was accepted and carries no pre-ES-5 syntax
    let sent: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(
        sent.len(),
        4,
        "two templates, backups index, instances index: {sent:?}"
    );
    for r in &sent {
        assert_eq!(r.status, 200, "{} {}: {}", r.method, r.path, r.body);
        assert!(
            !r.body.contains("\"string\"") && !r.body.contains("not_analyzed"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        es.mapping("uuzubackup").unwrap(),
        mapping::backup_mappings()
    );
    assert_eq!(
        es.mapping("uuzubackup-instances").unwrap(),
        mapping::instance_mappings()
    );
    let t = es.template("ubackup-uuzubackup").unwrap();
    assert_eq!(t["index_patterns"], json!(["uuzubackup"]));
    assert_eq!(t["template"]["mappings"], mapping::backup_mappings());
    // a second start finds everything and creates nothing
    cat.prepare().await.unwrap();
    assert_eq!(
        es.requests().iter().filter(|r| r.method == "PUT").count(),
        4
    );
    let t = es.template("ubackup-uuzubackup-instances").unwrap();
    assert_eq!(t["index_patterns"], json!(["uuzubackup-instances"]));
    // the template alone gives a re-created index the mapping
    let c = client(&es);
    assert_eq!(raw(&c, Method::Delete, "/uuzubackup", None).await.0, 200);
    let (s, v, _) = raw(
        &c,
        Method::Post,
        "/uuzubackup/_bulk",
        Some("{\"index\":{\"_id\":\"1\"}}\n{\"game_server_ip\":\"10.0.0.1\"}\n".into()),
    )
    .await;
    assert_eq!((s, &v["errors"]), (200, &json!(false)), "{v}");
    assert_eq!(
        es.mapping("uuzubackup").unwrap()["properties"]["game_server_ip"]["type"],
        "ip"
    );
}
