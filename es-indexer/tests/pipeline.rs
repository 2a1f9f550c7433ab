//! The indexer's pipeline (indexer.rs `main_loop`, sinks.rs `write`): every
//! store is written side by side, the next batch is taken while one is
//! written, and the overdue keys and acks of a stored batch run beside the
//! next write. What must not change: a result leaves Redis only once every
//! store has it, nothing is lost, and an outage holds a bounded amount.

use crate::common;

use std::time::Duration;

use common::{results, World};
use ubackup_testkit::wait_until_async;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_es_outage_holds_at_most_two_batches_and_nothing_is_acked_before_every_store_has_it() {
    let w = World::new();
    w.es.set_down(true);
    w.push(&results(1000));
    let cfg = w.config("batch_size = 100\nbatch_ms = 0");
    let (stop, h) = w.start(cfg);

    // SQLite, written beside ES, has the first batch; ES keeps refusing it
    wait_until_async(
        "retries against the ES outage",
        Duration::from_secs(30),
        || async { w.es.requests().iter().filter(|r| r.status == 503).count() >= 4 },
    )
    .await;
    assert_eq!(w.sqlite_count(), 100, "the first batch only");
    assert_eq!(w.es.doc_count("uuzubackup"), 0);
    // the batch being written and the one taken early, nothing more
    assert_eq!(w.inflight_len(), 200);
    assert_eq!(w.queue_len(), 800);

    w.es.set_down(false);
    wait_until_async("drained", Duration::from_secs(60), || async {
        w.queue_len() == 0 && w.inflight_len() == 0
    })
    .await;
    assert_eq!(w.sqlite_count(), 1000);
    assert_eq!(w.es.doc_count("uuzubackup"), 1000);
    assert!(w.dead().is_empty());
    stop.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backlog_hands_the_early_taken_batch_back() {
    let w = World::new();
    // slow ES replies: the stop lands while a batch is being written and
    // the next one has already been taken
    w.es.set_delay(Duration::from_millis(300));
    w.push(&results(600));
    let cfg = w.config("batch_size = 100\nbatch_ms = 0");
    let (stop, h) = w.start(cfg);
    wait_until_async(
        "a batch being written, the next taken",
        Duration::from_secs(30),
        || async { w.inflight_len() == 200 },
    )
    .await;
    stop.trigger();
    h.await.unwrap().unwrap();
    // everything is either stored and acknowledged, or back on the queue
    assert_eq!(w.inflight_len(), 0);
    let stored = w.sqlite_count() as u64;
    assert_eq!(stored % 100, 0, "whole batches only: {stored}");
    assert_eq!(stored + w.queue_len(), 600, "nothing lost");
    assert_eq!(w.es.doc_count("uuzubackup") as u64, stored);

    // a restart finishes the rest, without duplicates (same ids)
    let (stop, h) = w.start(w.config("batch_size = 100\nbatch_ms = 0"));
    wait_until_async("drained", Duration::from_secs(60), || async {
        w.queue_len() == 0 && w.inflight_len() == 0
    })
    .await;
    assert_eq!(w.sqlite_count(), 600);
    assert_eq!(w.es.doc_count("uuzubackup"), 600);
    stop.trigger();
    h.await.unwrap().unwrap();
}
