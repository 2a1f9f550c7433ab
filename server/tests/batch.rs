//! Batched pulls (`server/src/batch.rs`): several messages of one rsync
//! source in one rsync call, each still verified, landed, reported and
//! acknowledged on its own; a bad file does not fail its neighbours; a
//! crash mid-batch still gives each message exactly one file and one result.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::Value;
use ubackup_testkit::wait_until;

/// rsync transfers the daemon has served so far ("rsync on MODULE/PATH";
/// a bare TCP probe only logs "connect from").
fn connections(c: &Cluster) -> usize {
    c.rsyncd.log().matches("] rsync on ").count()
}

/// Results by filename; panics if a message got more than one.
fn one_result_each(results: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for r in results {
        let name = r["filename"].as_str().unwrap().to_string();
        assert!(
            out.insert(name.clone(), r.clone()).is_none(),
            "two results for {name}: {results:#?}"
        );
    }
    out
}

fn stop(mut node: Node) {
    node.proc.signal(libc::SIGTERM);
    assert_eq!(node.proc.wait_exit(Duration::from_secs(20)), Some(Some(0)));
}

#[test]
fn a_backlog_from_one_source_is_pulled_by_few_rsync_calls_with_a_result_per_message() {
    let c = Cluster::start();
    let n = 40;
    let mut names = Vec::new();
    for i in 0..n {
        // some in a sub-directory of the instance's directory: a batch lands
        // each file under its path in the module, then by basename
        let name = if i % 3 == 0 {
            format!("sub/b {i} #x.xb")
        } else {
            format!("b{i}.xb")
        };
        c.source_file(&name, 1000 + i * 37, i as u64);
        names.push(name);
    }
    for name in &names {
        c.push(&c.lo, &c.message(name));
    }
    let before = connections(&c);
    let node = c.spawn("n1", &[]);
    let results = c.wait_results(n, Duration::from_secs(60));
    let by_name = one_result_each(&results);
    assert_eq!(by_name.len(), n);
    for name in &names {
        let r = &by_name[name.as_str()];
        assert_eq!(r["succeed"], 1, "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        assert_eq!(r["verify"], "size", "{r}");
        let base = name.rsplit('/').next().unwrap();
        assert_eq!(
            std::fs::read(c.dest().join(base)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(name)).unwrap(),
            "{name} landed byte-identical"
        );
    }
    assert_eq!(files_in(&c.dest()).len(), n, "nothing but the files");
    // 2 workers: the first one claims the rest of the backlog
    let conns = connections(&c) - before;
    assert!(conns <= 3, "{conns} rsync connections for {n} messages");
    assert!(node.log_text().contains("pulling a batch of"));
    assert_eq!(c.inflight("n1"), 0);
    assert_eq!(c.llen(&c.lo), 0);
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
    stop(node);
    assert_eq!(c.results().len(), n, "no late extra result");
}

/// The hourly burst's shape: one host's messages far apart, other hosts'
/// messages between them (here failure reports, which need no pull, 24
/// between each two, more than the 16 items a batch first looks at). The
/// node's deep window still finds the host's other messages, so its 12
/// files come in very few rsync connections, each with its own result,
/// and every filler gets its own result too.
#[test]
fn a_host_whose_messages_are_far_apart_in_the_list_is_still_batched() {
    let c = Cluster::start();
    let (n, between) = (12, 24);
    let mut fillers = 0;
    for i in 0..n {
        let name = format!("far{i}.xb");
        c.source_file(&name, 2000 + i * 11, i as u64);
        c.push(&c.lo, &c.message(&name));
        for k in 0..between {
            let mut m = c.message(&format!("other_{i}_{k}.xb"));
            m["game_server_ip"] = format!("10.9.{}.{}", i, k + 1).into();
            m["success"] = false.into();
            m["filename"] = serde_json::Value::Null;
            m["log"] = "script exit 1".into();
            c.push(&c.lo, &m);
            fillers += 1;
        }
    }
    let before = connections(&c);
    let node = c.spawn("n1", &[("work_thread", "1")]);
    let results = c.wait_results(n + fillers, Duration::from_secs(60));
    let pulled: Vec<&Value> = results
        .iter()
        .filter(|r| r["game_server_ip"] == "127.0.0.1")
        .collect();
    assert_eq!(pulled.len(), n, "{pulled:#?}");
    let by_name = one_result_each(&pulled.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
    for i in 0..n {
        let name = format!("far{i}.xb");
        assert_eq!(by_name[&name]["succeed"], 1, "{}", by_name[&name]);
        assert_eq!(
            std::fs::read(c.dest().join(&name)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(&name)).unwrap()
        );
    }
    assert_eq!(
        results.iter().filter(|r| r["succeed"] == 0).count(),
        fillers,
        "one failure result per filler"
    );
    let conns = connections(&c) - before;
    assert!(
        conns <= 2,
        "{conns} rsync connections for {n} messages far apart"
    );
    assert!(node.log_text().contains("pulling a batch of"));
    assert_eq!(c.inflight("n1"), 0);
    assert_eq!(c.llen(&c.lo), 0);
    stop(node);
}

#[test]
fn batch_max_1_pulls_every_message_with_its_own_rsync() {
    let c = Cluster::start();
    for i in 0..5 {
        c.source_file(&format!("s{i}.xb"), 500, i);
        c.push(&c.lo, &c.message(&format!("s{i}.xb")));
    }
    let before = connections(&c);
    let node = c.spawn("n1", &[("batch_max", "1")]);
    let results = c.wait_results(5, Duration::from_secs(30));
    assert!(results.iter().all(|r| r["succeed"] == 1), "{results:#?}");
    assert_eq!(connections(&c) - before, 5, "{}", c.rsyncd.log());
    assert!(!node.log_text().contains("pulling a batch of"));
}

#[test]
fn a_file_failing_in_a_batch_does_not_fail_its_neighbours() {
    let c = Cluster::start();
    let good: Vec<String> = (0..6).map(|i| format!("g{i}.xb")).collect();
    for (i, g) in good.iter().enumerate() {
        c.source_file(g, 2000 + i, 100 + i as u64);
    }
    c.source_file("short.xb", 1000, 7);
    std::os::unix::fs::symlink(
        c.src.path().join("database_3306").join("g0.xb"),
        c.src.path().join("database_3306").join("link.xb"),
    )
    .unwrap();
    let mut short = c.message("short.xb");
    short["size"] = 2000.into();
    let mut gone = c.message("gone.xb");
    gone["size"] = 10.into();
    let mut link = c.message("link.xb");
    link["size"] = 2000.into();
    let order = [
        c.message(&good[0]),
        gone,
        c.message(&good[1]),
        short,
        c.message(&good[2]),
        link,
        c.message(&good[3]),
        c.message(&good[4]),
        c.message(&good[5]),
    ];
    for m in &order {
        c.push(&c.lo, m);
    }
    // one worker: the first message claims all the others into one batch
    let node = c.spawn("n1", &[("work_thread", "1")]);
    let results = c.wait_results(order.len(), Duration::from_secs(60));
    let by_name = one_result_each(&results);
    for g in &good {
        let r = &by_name[g.as_str()];
        assert_eq!(r["succeed"], 1, "{r}");
        assert_eq!(
            std::fs::read(c.dest().join(g)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(g)).unwrap()
        );
    }
    let gone = &by_name["gone.xb"];
    assert_eq!(gone["succeed"], 0);
    assert!(gone["log"].as_str().unwrap().contains("code 23"), "{gone}");
    let short = &by_name["short.xb"];
    assert_eq!(short["succeed"], 0);
    assert!(
        short["verify"]
            .as_str()
            .unwrap()
            .contains("size 1000 differs"),
        "{short}"
    );
    let link = &by_name["link.xb"];
    assert_eq!(link["succeed"], 0);
    assert!(link["illegal"].is_string(), "{link}");
    assert_eq!(files_in(&c.dest()), good, "only the good files landed");
    let log = node.log_text();
    assert!(log.contains("pulling a batch of 9 messages"), "{log}");
    assert_eq!(
        log.matches("not landed by the batch: pulling it again alone")
            .count(),
        3,
        "{log}"
    );
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
    assert_eq!(c.inflight("n1"), 0);
    stop(node);
    assert_eq!(c.results().len(), order.len());
}

#[test]
fn crash_after_a_batch_landed_but_before_its_ack_gives_one_file_and_one_result_each() {
    let c = Cluster::start();
    let n = 10;
    let names: Vec<String> = (0..n).map(|i| format!("k{i}.xb")).collect();
    for (i, name) in names.iter().enumerate() {
        let p = c.source_file(name, 3000 + i, 200 + i as u64);
        let mut m = c.message(name);
        if i % 2 == 0 {
            // with a checksum the landed file is recognised after the restart
            m["checksum"] = ubackup_common::fsutil::blake3_file(&p).unwrap().into();
        }
        c.push(&c.lo, &m);
    }
    let mut crashing = c.spawn_env(
        "n1",
        &[("work_thread", "1")],
        &[("UBACKUP_FAILPOINT", "after_land=exit")],
    );
    assert_eq!(
        crashing.proc.wait_exit(Duration::from_secs(30)),
        Some(None),
        "killed itself at the failpoint"
    );
    assert!(
        c.results().is_empty(),
        "nothing acknowledged before the crash"
    );
    assert_eq!(files_in(&c.dest()).len(), n, "the whole batch had landed");
    assert_eq!(c.inflight("n1"), n, "every message still in flight");

    let node = c.spawn("n1", &[("work_thread", "1")]);
    let results = c.wait_results(n, Duration::from_secs(60));
    let by_name = one_result_each(&results);
    for (i, name) in names.iter().enumerate() {
        let r = &by_name[name.as_str()];
        assert_eq!(r["succeed"], 1, "{r}");
        let want_attempts = if i % 2 == 0 { 0 } else { 1 };
        assert_eq!(r["attempts"], want_attempts, "{r}");
        assert_eq!(
            std::fs::read(c.dest().join(name)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(name)).unwrap()
        );
    }
    assert_eq!(files_in(&c.dest()), names, "exactly one file per message");
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
    stop(node);
    assert_eq!(c.results().len(), n, "still one result per message");
}

#[test]
fn kill9_mid_batch_transfer_then_restart_gives_one_file_and_one_result_each() {
    let c = Cluster::start();
    let n = 5;
    let names: Vec<String> = (0..n).map(|i| format!("m{i}.xb")).collect();
    for (i, name) in names.iter().enumerate() {
        c.source_file(name, 300_000, 300 + i as u64);
        c.push(&c.lo, &c.message(name));
    }
    // 1.5 MB at 200 KB/s in one rsync: the kill lands mid-batch
    let mut node = c.spawn("n1", &[("work_thread", "1"), ("rsync_bwlimit", "200")]);
    wait_until("batch transfer under way", Duration::from_secs(30), || {
        c.tmp_bytes("n1") > 100_000
    });
    let groups = c.recorded_groups("n1");
    assert_eq!(groups.len(), 1, "one rsync for the whole batch");
    node.proc.kill9();
    assert_eq!(c.inflight("n1"), n);
    assert!(c.results().is_empty());

    let node = c.spawn("n1", &[("work_thread", "1")]);
    let results = c.wait_results(n, Duration::from_secs(60));
    assert!(
        !rsync_alive_in_group(groups[0]),
        "the restart killed the orphaned rsync group"
    );
    let by_name = one_result_each(&results);
    for name in &names {
        assert_eq!(by_name[name.as_str()]["succeed"], 1);
        assert_eq!(
            std::fs::read(c.dest().join(name)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(name)).unwrap()
        );
    }
    assert_eq!(files_in(&c.dest()), names);
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
    stop(node);
    assert_eq!(c.results().len(), n);
}
