//! Throughput measurement, not a test: `cargo test -p ubackup-indexer
//! --test tests -- throughput:: --ignored --nocapture`. Pushes 20,000 results,
//! then times the indexer draining them into SQLite only, into the ES
//! stand-in only, and into both; three runs each, prints the medians.

use crate::common;

use std::time::{Duration, Instant};

use common::{results, World};
use ubackup_testkit::wait_until_async;

const N: i64 = 20_000;

async fn one_run(mode: &str) -> f64 {
    let w = World::new();
    w.push(&results(N));
    let extra = match mode {
        "sqlite" => "es_urls =\nbatch_size = 500\nlog =",
        "es" => "catalog = off\nbatch_size = 500\nlog =",
        _ => "batch_size = 500\nlog =",
    };
    let cfg = w.config(extra);
    let t = Instant::now();
    let (stop, h) = w.start(cfg);
    wait_until_async("drained", Duration::from_secs(600), || async {
        w.queue_len() == 0 && w.inflight_len() == 0
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    stop.trigger();
    h.await.unwrap().unwrap();
    if mode != "es" {
        assert_eq!(w.sqlite_count(), N);
    }
    if mode != "sqlite" {
        assert_eq!(w.es.doc_count("uuzubackup") as i64, N);
    }
    assert!(w.dead().is_empty());
    N as f64 / secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn throughput_docs_per_second() {
    for mode in ["sqlite", "es", "both"] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(one_run(mode).await);
        }
        let mut sorted = runs.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "throughput {mode:>6}: median {:>7.0} docs/s  (runs: {})",
            sorted[1],
            runs.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
