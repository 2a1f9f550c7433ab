//! Redis and rsync-daemon outages (cases 5, 6): Redis kill -9 and a restart
//! on the same AOF, then stops by SIGSTOP, under a steady producer.

use std::time::{Duration, Instant};

use ubackup_faults::ledger::{Expect, MsgSpec};
use ubackup_faults::sig::{self, Sig};
use ubackup_faults::world::WorldOpts;
use ubackup_faults::{tally, NodeSpec, World};

use crate::{quiet, Opts, Outcome};

/// Pushes `n` messages, one every `every`, from a thread; a push Redis did
/// not acknowledge is not in the ledger and is replaced by a new message
/// (a retry of the same one would be a second message, which is what the
/// client's dedup marker prevents, not this producer).
fn produce(
    w: &World,
    tag: &str,
    n: usize,
    size: usize,
    every: Duration,
    queue: &str,
) -> std::thread::JoinHandle<usize> {
    let msgs: Vec<MsgSpec> = (0..n)
        .map(|i| w.source(&format!("{tag}-{i:04}.bin"), size + i * 7, 1000 + i as u64))
        .collect();
    let mut p = w.producer();
    let queue = queue.to_string();
    std::thread::spawn(move || {
        let mut failed = 0;
        for m in msgs {
            let mut m = m;
            let end = Instant::now() + Duration::from_secs(30);
            while p.push(&queue, &m, Expect::Landed).is_err() && Instant::now() < end {
                failed += 1;
                m = MsgSpec::new(&m.filename, m.size);
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(every);
        }
        failed
    })
}

pub(crate) fn redis_kill9(_: &Opts) -> Outcome {
    // everysec (the setting), then always: with always, Redis
    // writes before it answers, so every acknowledged push must survive
    for always in [false, true] {
        redis_kill9_once(always);
    }
    Ok(())
}

fn redis_kill9_once(fsync_always: bool) {
    let mut w = World::with(WorldOpts {
        fsync_always,
        ..Default::default()
    });
    w.start_indexer();
    for id in ["n1", "n2"] {
        w.start_node(id, NodeSpec::new().set("heartbeat_secs", "5"));
    }
    let producer = produce(
        &w,
        "aof",
        60,
        20_000,
        Duration::from_millis(100),
        &w.lo.clone(),
    );
    std::thread::sleep(Duration::from_secs(2));
    w.cluster.redis.kill9();
    tally::fault(1);
    let down = Instant::now();
    std::thread::sleep(Duration::from_millis(1500)); // the outage itself
    w.cluster
        .redis
        .restart()
        .expect("redis restart on the same AOF");
    let outage = down.elapsed();
    let restarted_ms = ubackup_common::message::now_ms();
    let unacked = producer.join().unwrap();
    let mut v = w.wait_quiet(quiet(60));
    // every process carried on after the restart: a node either logged its
    // reconnection or produced records after it (messages kept arriving)
    let rows = w.sqlite_rows();
    for id in ["n1", "n2"] {
        let after = rows
            .iter()
            .any(|r| r.node == id && r.rsync_time_ms > restarted_ms);
        let log = w.node_log(id);
        assert!(
            log.contains("reachable again") || after,
            "node {id} did not come back:\n{}",
            ubackup_faults::world::tail(&log, 3000)
        );
    }
    assert!(
        w.indexer_log().contains("available again") || !rows.is_empty(),
        "the indexer reconnected"
    );
    // With everysec, redis-server may answer a write it has not yet
    // written to the AOF (the write waits while a background fsync runs);
    // kill -9 then loses it. Such a message appears nowhere in the AOF, not
    // even in a later step of its processing: redis lost it, not ubackup.
    // Reported, and excluded from "lost"; with `always` it cannot happen.
    let mut lost_by_redis = Vec::new();
    if !fsync_always {
        v.lost.retain(|name| {
            let file = name.split(':').nth(1).unwrap_or("");
            let gone = !file.is_empty() && !w.aof_mentions(file);
            if gone {
                lost_by_redis.push(name.clone());
            }
            !gone
        });
    }
    let per = |node: &str| rows.iter().filter(|r| r.node == node).count();
    println!(
        "    appendfsync {}: redis down {:.1} s (kill -9, restart on the same AOF); pushes not acknowledged (not in the ledger): {unacked}; acknowledged but never written to the AOF by redis-server: {lost_by_redis:?}; records n1 {} n2 {}; {v}",
        if fsync_always { "always" } else { "everysec" },
        outage.as_secs_f64(),
        per("n1"),
        per("n2")
    );
    v.assert_ok(false);
}

pub(crate) fn outages(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    for id in ["n1", "n2"] {
        w.start_node(
            id,
            NodeSpec::new()
                .set("heartbeat_secs", "6")
                .set("rsync_timeout", "5"),
        );
    }
    let producer = produce(
        &w,
        "stop",
        40,
        30_000,
        Duration::from_millis(100),
        &w.lo.clone(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let rpid = w.cluster.redis.pid().unwrap();
    sig::signal(rpid, Sig::SIGSTOP);
    tally::fault(1);
    std::thread::sleep(Duration::from_secs(3)); // the outage itself
    sig::signal(rpid, Sig::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    w.rsyncd.pause();
    tally::fault(1);
    std::thread::sleep(Duration::from_secs(3)); // the outage itself
    w.rsyncd.resume();
    let unacked = producer.join().unwrap();
    let v = w.wait_quiet(quiet(90));
    // Not covered: a cut that drops packets (netns + an nft drop rule), where
    // even connect() hangs. SIGSTOP leaves the kernel accepting connections
    // and buffering requests that are never answered; the connect-timeout
    // path is covered by the stopped-daemon cases in server/tests/node.rs.
    println!("    outages injected by SIGSTOP (packet-dropping cuts are not simulated)");
    println!("    pushes not acknowledged during the Redis stop: {unacked}; {v}");
    v.assert_ok(false);
    Ok(())
}
