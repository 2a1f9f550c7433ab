//! Nodes that die or stall (cases 1, 2, 3, 7): kill -9 mid-rsync and at
//! each failpoint, a zombie's late ack, a poison message, a hung rsync
//! daemon.

use std::time::{Duration, Instant};

use ubackup_faults::ledger::Expect;
use ubackup_faults::sig::{self, Sig};
use ubackup_faults::{tally, NodeSpec, World};
use ubackup_testkit::wait_until;

use crate::helpers::{files, rows_of, wait_row};
use crate::{quiet, Opts, Outcome};

pub(crate) fn kill9_mid_rsync(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let m = w.source("mid-rsync.bin", 600_000, 6);
    // 600 kB at 150 kB/s: about 4 s in flight
    w.start_node("n1", NodeSpec::new().set("rsync_bwlimit", "150"));
    w.producer().push(&w.hi, &m, Expect::Landed).unwrap();
    wait_until("n1's transfer in progress", Duration::from_secs(20), || {
        w.tmp_bytes("n1") > 50_000
    });
    let groups: Vec<i32> = std::fs::read_dir(w.node_tmp("n1").join("pgid"))
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    w.kill9_node("n1");
    tally::fault(1);
    let orphans: usize = groups
        .iter()
        .map(|g| ubackup_transport::tmp::rsync_members(*g).len())
        .sum();
    assert!(
        orphans > 0,
        "the rsync of the killed node survives it (a real crash)"
    );
    // another node takes the work over once n1's heartbeat has expired
    w.start_node("n2", NodeSpec::new());
    let r = wait_row(&w, &m, Duration::from_secs(60));
    assert_eq!((r.node.as_str(), r.succeed), ("n2", 1), "{r:?}");
    // n1 comes back: kills its orphaned rsync, empties its temp area
    w.restart_node("n1", Some(NodeSpec::new()));
    let v = w.wait_quiet(quiet(30));
    let left: usize = groups
        .iter()
        .map(|g| ubackup_transport::tmp::rsync_members(*g).len())
        .sum();
    assert_eq!(left, 0, "the restarted node killed its orphaned rsync");
    println!("    orphaned rsync processes after kill -9: {orphans}; {v}");
    v.assert_ok(false);
    Ok(())
}

pub(crate) fn kill9_failpoints(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let mut p = w.producer();
    // (failpoint, message has a checksum)
    let points = [
        ("after_take", false),
        ("after_pull", false),
        ("after_land", true),
        ("after_land", false),
        ("before_ack", true),
    ];
    let mut msgs = Vec::new();
    for (i, (point, sum)) in points.iter().enumerate() {
        let name = format!("fp-{i}-{point}.bin");
        let m = if *sum {
            w.source_with_checksum(&name, 20_000, 10 + i as u64)
        } else {
            w.source(&name, 20_000, 10 + i as u64)
        };
        w.spawn_node(
            "n1",
            NodeSpec::new().env("UBACKUP_FAILPOINT", &format!("{point}=exit")),
        );
        p.push(&w.lo, &m, Expect::Landed).unwrap();
        if !w.wait_node_exit("n1", Duration::from_secs(20)) {
            let log = w.node_log("n1");
            if log.contains("no failpoints") {
                return Err(
                    "this build has no failpoints (release without --features failpoints)".into(),
                );
            }
            panic!("failpoint {point} did not kill the node; log:\n{log}");
        }
        tally::fault(1);
        // the crash left the message in flight, unacknowledged, unreported
        assert_eq!(
            w.inflight("n1"),
            1,
            "{point}: the message is still held; queue {}: {}; node log:\n{}",
            w.lo,
            w.llen(&w.lo),
            w.node_log("n1")
        );
        assert_eq!(w.llen(&w.results), 0, "{point}: no result was pushed");
        assert!(rows_of(&w, &m).is_empty());
        w.restart_node("n1", Some(NodeSpec::new()));
        let r = wait_row(&w, &m, Duration::from_secs(30));
        assert_eq!(r.succeed, 1, "{point}: {r:?}");
        if *point == "after_land" && *sum {
            assert_eq!(
                r.attempts,
                Some(0),
                "a landed file proven by its checksum is not pulled again: {r:?}"
            );
        }
        w.stop_node("n1");
        msgs.push((point, r.attempts));
    }
    let v = w.wait_quiet(quiet(30));
    println!("    (failpoint, attempts after restart): {msgs:?}; {v}");
    v.assert_ok(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. zombie
// ---------------------------------------------------------------------------

pub(crate) fn zombie(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let m = w.source("zombie.bin", 500_000, 7);
    w.start_node("n1", NodeSpec::new().set("rsync_bwlimit", "100"));
    w.producer().push(&w.hi, &m, Expect::Landed).unwrap();
    wait_until("n1's transfer in progress", Duration::from_secs(20), || {
        w.tmp_bytes("n1") > 20_000
    });
    let pid = w.node_pid("n1");
    sig::signal(pid, Sig::SIGSTOP);
    tally::fault(1);
    w.start_node("n2", NodeSpec::new());
    let r = wait_row(&w, &m, Duration::from_secs(60));
    assert_eq!(r.node, "n2", "{r:?}");
    sig::signal(pid, Sig::SIGCONT);
    // n1 wakes up with an rsync that finished meanwhile (or soon does)
    w.wait_node_log(
        "n1",
        "another node took the message over",
        Duration::from_secs(30),
    );
    let v = w.wait_quiet(quiet(30));
    let rows = rows_of(&w, &m);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        files(&w.dest("n1")).is_empty(),
        "the zombie landed a copy: {:?}",
        files(&w.dest("n1"))
    );
    println!("    {v}");
    v.assert_ok(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. poison
// ---------------------------------------------------------------------------

pub(crate) fn poison(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let m = w.source("poison.bin", 1000, 8);
    w.producer().push(&w.lo, &m, Expect::DeadLetter).unwrap();
    let spec = NodeSpec::new().env("UBACKUP_FAILPOINT", "after_take=exit");
    // supervisord restarts the crashing node with the same command
    for crash in 1..=3 {
        w.spawn_node("n1", spec.clone());
        if !w.wait_node_exit("n1", Duration::from_secs(20)) {
            if w.node_log("n1").contains("no failpoints") {
                return Err("this build has no failpoints".into());
            }
            panic!("crash {crash} did not happen; log:\n{}", w.node_log("n1"));
        }
        tally::fault(1);
    }
    w.spawn_node("n1", spec);
    let dead_key = w.keys.dead(&w.lo);
    w.wait_llen(&dead_key, 1, Duration::from_secs(20));
    let d = w.dead_letters();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].letter
            .reason
            .contains("poison message: interrupted 3 times"),
        "{:?}",
        d[0].letter
    );
    // it no longer crashes the node
    w.wait_node_log_of_start("n1", "started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sig::alive(w.node_pid("n1")),
        "the node survives once the poison is dead-lettered"
    );
    let v = w.wait_quiet(quiet(20));
    println!("    reason: {}; {v}", d[0].letter.reason);
    v.assert_ok(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. hung rsync daemon
// ---------------------------------------------------------------------------

pub(crate) fn hung_daemon(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    w.start_node(
        "n1",
        NodeSpec::new()
            .set("rsync_timeout", "2")
            .set("rsync_contimeout", "2")
            .set("retry", "2"),
    );
    let m = w.source("hung.bin", 10_000, 9);
    w.rsyncd.pause();
    tally::fault(1);
    let t = Instant::now();
    w.producer().push(&w.lo, &m, Expect::FailureResult).unwrap();
    let r = wait_row(&w, &m, Duration::from_secs(60));
    let took = t.elapsed();
    w.rsyncd.resume();
    assert!(
        r.log.contains("exit code 30") || r.log.contains("exit code 35"),
        "rsync's own timeout: {}",
        r.log
    );
    assert!(!r.log.contains("watchdog"), "{}", r.log);
    // watchdog: contimeout + 2 x timeout + 30 s = 36 s per attempt
    assert!(
        took < Duration::from_secs(36),
        "failed by rsync's timeouts, well before the watchdog: {took:?}"
    );
    assert_eq!(r.attempts, Some(2));
    let m2 = w.source("after-resume.bin", 10_000, 10);
    w.producer().push(&w.lo, &m2, Expect::Landed).unwrap();
    let v = w.wait_quiet(quiet(30));
    println!(
        "    failure after {:.1} s: {}; {v}",
        took.as_secs_f64(),
        r.log.chars().take(140).collect::<String>()
    );
    v.assert_ok(false);
    Ok(())
}
