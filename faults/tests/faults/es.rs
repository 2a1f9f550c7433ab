//! Elasticsearch faults (case 9): per-item bulk statuses, whole-request
//! 503s, a reset mid-response and kill -9 of the indexer around the ES
//! write.

use std::time::Duration;

use serde_json::json;
use ubackup_common::ResultRecord;
use ubackup_faults::ledger::{next_create_time, Expect, INSTANCE, SERVER_ID};
use ubackup_faults::world::WorldOpts;
use ubackup_faults::{tally, World};
use ubackup_testkit::wait_until;

use crate::{quiet, Opts, Outcome};

/// A failure result as a node pushes it (no file), with a fresh id.
fn result_for(node: &str) -> ResultRecord {
    let ct = next_create_time();
    serde_json::from_value(json!({
        "interval": 3600, "server_id": SERVER_ID, "game_id": 31, "op_id": 1, "game_server_ip": "127.0.0.1",
        "instance": INSTANCE, "back_server_ip": "127.0.0.1", "file_path": null, "filename": format!("es-{ct}.bin"),
        "create_time": ct * 1000, "rsync_time": ct * 1000, "size": 10, "last_all_filename": "None",
        "last_all_time": 0, "succeed": 0, "log": "the client reported a failed backup", "type": "mysql", "node_id": node,
    }))
    .unwrap()
}

fn push_results(w: &World, n: usize) -> Vec<ResultRecord> {
    let mut p = w.producer();
    (0..n)
        .map(|_| {
            let r = result_for("nes");
            let json = serde_json::to_string(&r).unwrap();
            p.push_raw(
                &w.results,
                json.as_bytes(),
                Some(r.create_time / 1000),
                None,
                Expect::FailureResult,
            )
            .unwrap();
            r
        })
        .collect()
}

pub(crate) fn es_statuses(_: &Opts) -> Outcome {
    let mut w = World::new();
    // (a) one bulk answered 200 with items [201, 429, 400, 409, 503]
    let rs = push_results(&w, 5);
    for (r, status) in rs.iter().skip(1).zip([429u16, 400, 409, 503]) {
        w.es.fail_item_id(&r.record_id(), status, 1);
    }
    tally::fault(4);
    w.start_indexer();
    let v = w.wait_quiet(quiet(30));
    let five =
        w.es.requests()
            .iter()
            .filter(|q| q.path.ends_with("uuzubackup/_bulk") && q.bulk_items == 5)
            .count();
    assert!(five >= 1, "the five results went in one bulk request");
    let docs = w.es.docs(&w.es_index);
    let dead = w.dead_letters();
    for (r, want) in rs
        .iter()
        .zip(["stored", "stored", "dead", "dead", "stored"])
    {
        let id = r.record_id();
        match want {
            "stored" => assert!(docs.contains_key(&id), "{id} retried until stored"),
            _ => {
                assert!(!docs.contains_key(&id));
                assert!(
                    dead.iter().any(|d| d.id == Some(r.create_time / 1000)
                        && d.letter.reason.contains("refused")),
                    "{id} dead-lettered: {dead:?}"
                );
            }
        }
    }
    for d in &dead {
        println!(
            "    dead letter: {}",
            d.letter.reason.chars().take(150).collect::<String>()
        );
    }
    assert_eq!(
        w.sqlite_rows().len(),
        5,
        "SQLite (written first) has all five"
    );
    v.assert_clean(false);
    // (b) 503 on whole requests
    w.es.fail_requests(503, 3);
    tally::fault(1);
    let rs = push_results(&w, 5);
    let v = w.wait_quiet(quiet(30));
    let n503 = w.es.requests().iter().filter(|q| q.status == 503).count();
    assert!(n503 >= 3, "the stand-in answered 503 {n503} times");
    let docs = w.es.docs(&w.es_index);
    assert!(rs.iter().all(|r| docs.contains_key(&r.record_id())));
    println!("    whole-request 503 x{n503}, then stored; {v}");
    v.assert_ok(false);
    Ok(())
}

/// How many `_bulk` requests that reached the stand-in carried document `id`.
fn bulk_sends(w: &World, id: &str) -> usize {
    let path = format!("/{}/_bulk", w.es_index);
    let needle = format!("\"_id\":\"{id}\"");
    w.es.requests()
        .iter()
        .filter(|q| q.path == path && q.body.contains(&needle))
        .count()
}

pub(crate) fn es_wire(_: &Opts) -> Outcome {
    let mut w = World::with(WorldOpts {
        es_proxy: true,
        ..Default::default()
    });
    w.start_indexer();
    // (c) the connection is reset in the middle of the bulk response
    w.proxy.as_ref().unwrap().reset_bulk_responses(1);
    tally::fault(1);
    let rs = push_results(&w, 5);
    let v = w.wait_quiet(quiet(60));
    assert_eq!(w.proxy.as_ref().unwrap().resets_done(), 1);
    for r in &rs {
        let id = r.record_id();
        assert_eq!(
            bulk_sends(&w, &id),
            2,
            "applied, reset, sent again under the same id"
        );
        // update + doc_as_upsert: the identical replay is a noop, one document
        assert_eq!(w.es.doc_version(&w.es_index, &id), Some(1));
    }
    println!("    reset mid-response: 5 documents, each sent twice under one id and stored once (the replay a noop); {v}");
    v.assert_clean(false);

    // (d) kill -9 of the indexer after the ES write, before the ack
    let proxy = w.proxy.clone().unwrap();
    proxy.hold_bulk_responses(true);
    let rs = push_results(&w, 5);
    wait_until(
        "the bulk applied in ES, its answer held",
        Duration::from_secs(30),
        || {
            rs.iter()
                .all(|r| w.es.doc(&w.es_index, &r.record_id()).is_some())
                && proxy.responses_held() > 0
        },
    );
    assert_eq!(w.sqlite_rows().len(), 10, "SQLite committed before ES");
    w.kill9_indexer();
    tally::fault(1);
    proxy.hold_bulk_responses(false);
    w.start_indexer();
    let v = w.wait_quiet(quiet(60));
    for r in &rs {
        let id = r.record_id();
        assert_eq!(bulk_sends(&w, &id), 2, "replayed under the same id");
        assert_eq!(w.es.doc_version(&w.es_index, &id), Some(1));
    }
    println!("    kill -9 between ES write and ack: replayed under the same ids, 5 documents, each stored once; {v}");
    v.assert_clean(false);

    // (e) kill -9 of the indexer after the SQLite commit, before the ES write
    let proxy = w.proxy.clone().unwrap();
    proxy.hold_bulk_requests(true);
    let rs = push_results(&w, 5);
    wait_until(
        "SQLite committed, the bulk request held",
        Duration::from_secs(30),
        || w.sqlite_rows().len() == 15 && proxy.requests_held() > 0,
    );
    assert!(rs
        .iter()
        .all(|r| w.es.doc(&w.es_index, &r.record_id()).is_none()));
    w.kill9_indexer();
    tally::fault(1);
    w.start_indexer();
    // the dead indexer's held request may still reach ES when released:
    // either way each id is there once
    proxy.hold_bulk_requests(false);
    let v = w.wait_quiet(quiet(60));
    assert_eq!(w.es.doc_count(&w.es_index), 15);
    println!("    kill -9 between SQLite commit and ES write: replayed; {v}");
    v.assert_ok(false);
    Ok(())
}
