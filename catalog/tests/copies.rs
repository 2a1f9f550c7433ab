//! Copies of a backup on other nodes, the same on SQLite and on the
//! Elasticsearch stand-in: recorded next to the record, read back with
//! it, kept through a replayed result, and found by node.

use crate::common;

use common::{rec, result};
use ubackup_catalog::copies::state;
use ubackup_catalog::{CopyRecord, EsCatalog, EsSettings, Retention, SqliteCatalog};
use ubackup_testkit::es::EsStandIn;

fn copy(node: &str, st: &str) -> CopyRecord {
    CopyRecord {
        node: node.into(),
        ip: "10.20.0.9".into(),
        zone: "dc2".into(),
        file_path: format!("/store/{node}/mysql/10.0.0/5/full_1.xb"),
        state: st.into(),
        recorded_at: 1_763_800_100_000,
        verified_at: None,
    }
}

async fn exercise(cat: &dyn Retention, es: Option<&EsCatalog>) {
    cat.prepare().await.unwrap();
    let recs: Vec<_> = (0..3)
        .map(|i| rec(result(3306, 1_763_800_000_000 + i * 1000)))
        .collect();
    cat.store(&recs).await.unwrap();
    let refresh = || async {
        if let Some(es) = es {
            es.refresh().await.unwrap();
        }
    };
    refresh().await;
    let id = &recs[1].id;

    // no copies yet: only the first one, read from the result
    let r = cat.get(id).await.unwrap().unwrap();
    assert!(r.meta.copies.is_empty());
    assert_eq!(r.copies().len(), 1);

    // a copy of an unknown record is refused, nothing written
    assert!(!cat
        .record_copy("no-such-id", &copy("n2", state::OK))
        .await
        .unwrap());

    assert!(cat.record_copy(id, &copy("n3", state::OK)).await.unwrap());
    assert!(cat.record_copy(id, &copy("n2", state::OK)).await.unwrap());
    refresh().await;
    let r = cat.get(id).await.unwrap().unwrap();
    assert_eq!(
        r.meta.copies,
        vec![copy("n2", state::OK), copy("n3", state::OK)]
    );
    let good: Vec<String> = r.good_copies().into_iter().map(|c| c.node).collect();
    assert_eq!(good, [r.node().to_string(), "n2".into(), "n3".into()]);

    // the same node again replaces its copy (verify found it corrupt)
    let mut bad = copy("n2", state::CORRUPT);
    bad.verified_at = Some(1_763_800_200_000);
    assert!(cat.record_copy(id, &bad).await.unwrap());
    refresh().await;
    let r = cat.get(id).await.unwrap().unwrap();
    assert_eq!(r.meta.copies, vec![bad.clone(), copy("n3", state::OK)]);
    assert_eq!(r.good_copies().len(), 2);

    // a replayed result keeps the copies
    cat.store(std::slice::from_ref(&recs[1])).await.unwrap();
    refresh().await;
    assert_eq!(cat.get(id).await.unwrap().unwrap().meta.copies.len(), 2);

    // found by node; a deleted copy is not
    let on_n3: Vec<String> = cat
        .copies_on_node("n3")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(on_n3, std::slice::from_ref(id));
    assert!(cat
        .record_copy(id, &copy("n3", state::DELETED))
        .await
        .unwrap());
    refresh().await;
    assert!(cat.copies_on_node("n3").await.unwrap().is_empty());
    assert_eq!(cat.copies_on_node("n2").await.unwrap().len(), 1);
    assert!(cat.copies_on_node("n9").await.unwrap().is_empty());

    // lists carry them too
    let listed = cat.scan_backups(&Default::default()).await.unwrap();
    let r = listed.iter().find(|r| &r.id == id).unwrap();
    assert_eq!(r.meta.copies.len(), 2);
    assert!(listed
        .iter()
        .filter(|r| &r.id != id)
        .all(|r| r.meta.copies.is_empty()));
}

#[tokio::test]
async fn sqlite_records_copies() {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(&dir.path().join("c.sqlite")).unwrap();
    exercise(&cat, None).await;
}

#[tokio::test]
async fn es_records_copies_as_fields_of_the_original_document() {
    let es = EsStandIn::start();
    let cat = EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap();
    exercise(&cat, Some(&cat)).await;
    // the original's fields are untouched: the document still reads as
    // the result it was, with `copies` beside them
    let id = rec(result(3306, 1_763_800_001_000)).id;
    let doc: serde_json::Value = cat
        .client()
        .get(elasticsearch::GetParts::IndexId("uuzubackup", &id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["_source"]["instance"], 3306);
    assert_eq!(doc["_source"]["type"], "mysql");
    assert_eq!(doc["_source"]["copies"]["n2"]["state"], "corrupt");
    assert!(doc["_source"]["copies"]["n2"].get("node").is_none());
}
