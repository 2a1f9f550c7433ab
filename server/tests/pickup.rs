//! Pickup from every list is immediate (`server/src/listwatch.rs`): the
//! `queue_wait_ms` poll is only the fallback.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use redis::Commands;

#[test]
fn a_lower_list_message_is_picked_up_at_once_not_after_queue_wait_ms() {
    let c = Cluster::start();
    // the longest fallback poll: without the watchers a lower-list message
    // would wait up to 5 s
    let node = c.spawn("n1", &[("work_thread", "2"), ("queue_wait_ms", "5000")]);
    let mut conn = c.conn();
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let mut m = c.message("p.xb");
        m["success"] = false.into(); // no pull: the time is the pickup
        m["create_time"] = (1763800000 + i).into();
        // the node is idle and waiting when each one arrives
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        let _: () = conn.lpush(&c.lo, m.to_string()).unwrap();
        let got: Option<(String, String)> = conn.brpop(&c.results, 10.0).unwrap();
        assert!(got.is_some(), "no result within 10 s");
        worst = worst.max(t0.elapsed());
    }
    println!("lower-list pickup+result, worst of 5: {worst:?}");
    assert!(
        worst < Duration::from_millis(1500),
        "a lower-list message waited {worst:?} (the fallback poll is 5 s)"
    );
    // the watchers only looked: nothing left in flight, nothing on the lists
    assert_eq!(c.inflight("n1"), 0);
    assert_eq!(c.llen(&c.lo) + c.llen(&c.hi), 0);
    drop(node);
}

#[test]
fn watching_never_moves_or_reorders_a_backlog() {
    let c = Cluster::start();
    // paused: the watchers may be armed from before, but nothing is taken
    let node = c.spawn("n1", &[("work_thread", "1")]);
    let mut conn = c.conn();
    let _: () = conn.hset(c.keys.control("n1"), "paused", "1").unwrap();
    ubackup_testkit::wait_until("paused", Duration::from_secs(5), || {
        c.state("n1").get("paused").map(String::as_str) == Some("1")
    });
    let payloads: Vec<String> = (0..20)
        .map(|i| {
            let mut m = c.message("q.xb");
            m["success"] = false.into();
            m["create_time"] = (1763800000 + i).into();
            m.to_string()
        })
        .collect();
    for p in &payloads {
        let _: () = conn.lpush(&c.lo, p).unwrap();
    }
    // nothing is supposed to happen; give a watcher (blocked since the
    // node went idle) time to see the pushes and put the item back
    std::thread::sleep(Duration::from_millis(700));
    let now: Vec<String> = conn.lrange(&c.lo, 0, -1).unwrap();
    let mut pushed = payloads.clone();
    pushed.reverse(); // LPUSH: newest at the head
    assert_eq!(now, pushed, "the list is exactly as pushed");
    // resume: taken oldest first
    let _: () = conn.hset(c.keys.control("n1"), "paused", "0").unwrap();
    let results = c.wait_results(20, Duration::from_secs(20));
    let times: Vec<i64> = results
        .iter()
        .map(|r| r["create_time"].as_i64().unwrap() / 1000)
        .collect();
    assert_eq!(times, (1763800000..1763800020).collect::<Vec<i64>>());
    drop(node);
}

#[test]
fn a_level1_message_starts_in_the_express_slot_while_every_worker_is_busy() {
    let c = Cluster::start();
    c.source_file("slow.xb", 600_000, 1); // at 200 KB/s: about 3 s
    c.source_file("urgent.xb", 1000, 2);
    c.source_file("urgent2.xb", 1000, 3);
    let node = c.spawn("n1", &[("work_thread", "1"), ("rsync_bwlimit", "200")]);
    c.push(&c.lo, &c.message("slow.xb"));
    ubackup_testkit::wait_until("the slow pull under way", Duration::from_secs(20), || {
        c.tmp_bytes("n1") > 50_000
    });
    c.push(&c.hi, &c.message("urgent.xb"));
    let r = c.wait_results(1, Duration::from_secs(20));
    assert_eq!(
        r[0]["filename"], "urgent.xb",
        "the level1 message did not wait for the busy worker"
    );
    assert_eq!(r[0]["succeed"], 1, "{}", r[0]);
    // the express slot is free again: a second one starts too
    c.push(&c.hi, &c.message("urgent2.xb"));
    let r = c.wait_results(2, Duration::from_secs(20));
    assert_eq!(r[1]["filename"], "urgent2.xb");
    let r = c.wait_results(3, Duration::from_secs(30));
    assert_eq!(r[2]["filename"], "slow.xb");
    assert!(r.iter().all(|x| x["succeed"] == 1), "{r:#?}");
    drop(node);
}
