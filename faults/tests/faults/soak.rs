//! The soak (case 4): random kill -9 of nodes, alone or with their process
//! group, while messages keep arriving.

use std::time::{Duration, Instant};

use ubackup_faults::ledger::{Expect, MsgSpec};
use ubackup_faults::{tally, NodeSpec, World};

use crate::helpers::Rng;
use crate::{quiet, Opts, Outcome};

pub(crate) fn soak_case(o: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let ids = ["n1", "n2", "n3"];
    // 150 kB/s per transfer: a pull takes 0.05-0.8 s, so most kills hit
    // transfers in progress and a backlog builds up
    let spec = NodeSpec::new()
        .set("heartbeat_secs", "2")
        .set("rsync_bwlimit", "150");
    for id in ids {
        w.start_node(id, spec.clone());
    }
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ubackup_common::message::now_ms() as u64 | 1);
    println!(
        "    variant: {}, {} messages, kills for {} s, seed {seed} (FAULTS_SEED replays it)",
        if o.soak { "--soak" } else { "short" },
        o.soak_messages,
        o.soak_secs
    );
    let mut rng = Rng(seed);
    let n = o.soak_messages;
    let kill_for = Duration::from_secs(o.soak_secs);
    // messages arrive over ~3/4 of the kill phase, so kills hit work in progress
    let every = Duration::from_millis((kill_for.as_millis() as u64 * 3 / 4) / n.max(1) as u64);
    let msgs: Vec<MsgSpec> = (0..n)
        .map(|i| {
            let len = rng.range(8_000, 120_000) as usize;
            w.source(&format!("soak-{i:05}.bin"), len, i as u64)
        })
        .collect();
    let mut p = w.producer();
    let queues = [w.hi.clone(), w.lo.clone()];
    let producer = std::thread::spawn(move || {
        let mut unacked = 0;
        for (i, m) in msgs.into_iter().enumerate() {
            let q = &queues[usize::from(i % 5 == 0)];
            if !p.push_until_acked(q, &m, Expect::LandedOrDead, Duration::from_secs(30)) {
                unacked += 1;
            }
            std::thread::sleep(every);
        }
        unacked
    });
    let started = Instant::now();
    let mut kills = 0u64;
    let mut group_kills = 0u64;
    let mut busy_kills = 0u64;
    while started.elapsed() < kill_for {
        std::thread::sleep(Duration::from_millis(rng.range(2000, 5000)));
        let id = ids[rng.range(0, 3) as usize];
        if w.inflight(id) > 0 {
            busy_kills += 1;
        }
        // half the time the node alone (its rsync is orphaned, as after a
        // real crash), half the time its whole process group
        if rng.next() % 2 == 0 {
            w.kill9_node(id);
        } else {
            if let Some(mut pr) = w.nodes.get_mut(id).and_then(|n| n.proc.take()) {
                pr.kill9_group();
            }
            group_kills += 1;
        }
        kills += 1;
        tally::fault(1);
        std::thread::sleep(Duration::from_millis(rng.range(200, 1500)));
        w.restart_node(id, None);
    }
    let unacked = producer.join().unwrap();
    let drain = Instant::now();
    let v = w.wait_quiet(quiet(240));
    let dead = w.dead_letters();
    println!(
        "    soak: seed {seed}, messages {}, nodes 3, kill -9 x{kills} ({busy_kills} with work in flight, {group_kills} of the whole group) over {:.0} s, lost {}, duplicated {}, dead-lettered {} ({}), unrecorded copies {}, landed {}, drain {:.1} s, elapsed {:.1} s, unacknowledged pushes {unacked}",
        v.messages,
        kill_for.as_secs_f64(),
        v.lost.len(),
        v.duplicated.len(),
        v.dead_with_reason,
        dead.first().map(|d| d.letter.reason.as_str()).unwrap_or("-"),
        v.unrecorded_copies.len(),
        v.landed,
        drain.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    v.assert_ok(true);
    Ok(())
}
