//! The real `ubackup-indexer` binary: kill -9 mid-batch, SIGTERM, an
//! Elasticsearch outage, config errors and exit codes.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{results, World};
use ubackup_testkit::wait_until;

#[test]
fn kill9_mid_batch_then_restart_loses_and_duplicates_nothing() {
    let w = World::new();
    let all = results(2000);
    let expected: BTreeSet<String> = all.iter().map(|r| r.record_id()).collect();
    assert_eq!(expected.len(), 2000);
    w.push(&all);
    // slow ES replies keep every batch in flight for a while
    w.es.set_delay(Duration::from_millis(150));
    let cfg = w.write_config("batch_size = 100");
    let mut p = w.spawn_binary(&cfg);
    wait_until(
        "some batches stored, one in flight",
        Duration::from_secs(60),
        || w.es.doc_count("uuzubackup") >= 300 && w.inflight_len() > 0,
    );
    let inflight_at_kill = w.inflight_len();
    p.kill9();
    assert!(inflight_at_kill > 0, "killed mid-batch");
    let stored_at_kill = w.es.doc_count("uuzubackup");
    assert!(stored_at_kill < 2000, "killed before the end");

    w.es.set_delay(Duration::ZERO);
    let mut p = w.spawn_binary(&cfg);
    wait_until(
        "everything stored after the restart",
        Duration::from_secs(90),
        || {
            w.queue_len() == 0
                && w.inflight_len() == 0
                && w.es.doc_count("uuzubackup") == 2000
                && w.sqlite_count() == 2000
        },
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(Some(0)));

    let es_ids: BTreeSet<String> = w.es.docs("uuzubackup").into_keys().collect();
    assert_eq!(es_ids, expected, "ES: every result, once");
    let sql_ids: Vec<String> = w.sqlite_ids();
    assert_eq!(sql_ids.len(), 2000);
    assert_eq!(
        sql_ids.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "SQLite: every result, once"
    );
    assert!(w.dead().is_empty(), "nothing dead-lettered: {:?}", w.dead());
    let log = std::fs::read_to_string(w.log_path()).unwrap();
    assert!(
        log.contains("results left in flight by the previous run were put back"),
        "{log}"
    );
}

#[test]
fn sigterm_finishes_the_current_batch_then_exits_0() {
    let w = World::new();
    let mut p = w.spawn_binary(&w.write_config("batch_size = 50"));
    wait_until("stores prepared", Duration::from_secs(30), || {
        w.es.index_names().len() == 2
    });
    // each ES request now takes 0.7 s: bulk + registry read + registry write ≈ 2 s
    w.es.set_delay(Duration::from_millis(700));
    w.push(&results(50));
    wait_until("the batch is taken", Duration::from_secs(30), || {
        w.inflight_len() == 50
    });
    p.signal(libc::SIGTERM);
    let code = p.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(Some(0)));
    assert_eq!(
        w.es.doc_count("uuzubackup"),
        50,
        "the batch in progress was finished"
    );
    assert_eq!(w.sqlite_count(), 50);
    assert_eq!(
        (w.queue_len(), w.inflight_len()),
        (0, 0),
        "and acknowledged"
    );
    let log = std::fs::read_to_string(w.log_path()).unwrap();
    assert!(log.contains("SIGTERM received"), "{log}");
}

#[test]
fn an_elasticsearch_outage_holds_results_in_redis_and_is_logged_once() {
    let w = World::new();
    w.es.set_down(true);
    w.push(&results(30));
    let mut p = w.spawn_binary(&w.write_config(""));
    // several failed attempts with backoff (0.2 + 0.4 + 0.8 + 1.6 s)
    wait_until("5 failed attempts", Duration::from_secs(30), || {
        w.es.requests().iter().filter(|r| r.status == 503).count() >= 5
    });
    assert_eq!(
        w.queue_len() + w.inflight_len(),
        30,
        "nothing acknowledged while ES is down"
    );
    assert_eq!(w.es.doc_count("uuzubackup"), 0);
    w.es.set_down(false);
    wait_until("all results in ES", Duration::from_secs(60), || {
        w.es.doc_count("uuzubackup") == 30 && w.inflight_len() == 0 && w.queue_len() == 0
    });
    for (id, _) in w.es.docs("uuzubackup") {
        assert_eq!(
            w.es.doc_version("uuzubackup", &id),
            Some(1),
            "each result indexed once"
        );
    }
    assert_eq!(w.sqlite_count(), 30);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    let log = std::fs::read_to_string(w.log_path()).unwrap();
    let down = log
        .lines()
        .filter(|l| l.contains("es uuzubackup unavailable"))
        .count();
    let up = log
        .lines()
        .filter(|l| l.contains("es uuzubackup available again"))
        .count();
    assert_eq!(
        (down, up),
        (1, 1),
        "one line per state change, not per retry:\n{log}"
    );
    assert!(w.dead().is_empty());
}

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let w = World::new();
    let cfg = w.write_config("batch_size = lots");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-indexer"))
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:", cfg.display()))
            && err.contains("[global] batch_size: `lots` is not valid"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-indexer"))
        .arg("-c")
        .arg("/nonexistent/indexer.conf")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    // the Redis named both ways: one error naming both keys
    let cfg = w.write_config("redis_sentinels = 127.0.0.1:26379\nredis_master_name = ubackup");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-indexer"))
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[global] redis_sentinels: given together with redis_url"),
        "{err}"
    );
}

#[test]
fn an_unusable_catalog_is_fatal_exit_1() {
    let w = World::new();
    // a directory where the database file should be
    let db = w.dir.path().join("db-is-a-dir");
    std::fs::create_dir_all(&db).unwrap();
    let cfg = w.write_config(&format!("catalog = {}", db.display()));
    let mut p = w.spawn_binary(&cfg);
    let t = Instant::now();
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)),
        Some(Some(1)),
        "after {:?}",
        t.elapsed()
    );
}
