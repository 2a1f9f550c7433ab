//! The pull node as a process: real redis-server, real rsync daemon, the
//! real `ubackup-server` binary.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use redis::Commands;
use serde_json::Value;
use ubackup_testkit::wait_until;

const ORIGINAL_RESULT_KEYS: &[&str] = &[
    "interval",
    "server_id",
    "game_id",
    "op_id",
    "game_server_ip",
    "instance",
    "back_server_ip",
    "file_path",
    "filename",
    "create_time",
    "rsync_time",
    "size",
    "last_all_filename",
    "last_all_time",
    "succeed",
    "log",
    "type",
];

fn by_filename<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["filename"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:#?}"))
}

#[test]
fn pulls_land_byte_identical_in_the_original_layout_with_original_result_fields() {
    let c = Cluster::start();
    let full = c.source_file("db_3306_full.xb", 300_000, 1);
    let inc = c.source_file("2026/inc 1 #x 备份.xb", 70_000, 2);
    let node = c.spawn("n1", &[]);

    let mut m1 = c.message("db_3306_full.xb");
    m1["checksum"] = ubackup_common::fsutil::blake3_file(&full).unwrap().into();
    let mut m2 = c.message("2026/inc 1 #x 备份.xb");
    m2["last_all_filename"] = "db_3306_full.xb".into();
    m2["last_all_time"] = 1763790000.into();
    m2["create_time"] = 1763800100.into();
    let mut m3 = c.message("never-made.xb");
    m3["success"] = false.into();
    m3["filename"] = Value::Null;
    m3["log"] = "backup script exited 1: mysqldump: Got error 2002".into();
    for m in [&m1, &m2, &m3] {
        c.push(&c.lo, m);
    }
    let results = c.wait_results(3, Duration::from_secs(30));

    // files: byte-identical, basename in server_root_path/TYPE/A.B.C/D/
    assert_eq!(files_in(&c.dest()), ["db_3306_full.xb", "inc 1 #x 备份.xb"]);
    assert_eq!(
        std::fs::read(c.dest().join("db_3306_full.xb")).unwrap(),
        std::fs::read(&full).unwrap()
    );
    assert_eq!(
        std::fs::read(c.dest().join("inc 1 #x 备份.xb")).unwrap(),
        std::fs::read(&inc).unwrap()
    );

    let r1 = by_filename(&results, "db_3306_full.xb");
    for k in ORIGINAL_RESULT_KEYS {
        assert!(r1.get(*k).is_some(), "result lacks `{k}`: {r1}");
    }
    assert_eq!(r1["succeed"], 1);
    assert_eq!(r1["server_id"], SERVER_ID);
    assert_eq!(r1["type"], "mysql");
    assert_eq!(r1["instance"], 3306);
    assert_eq!(r1["game_server_ip"], "127.0.0.1");
    assert_eq!(r1["back_server_ip"], "127.0.0.1");
    assert_eq!(r1["file_path"], format!("{}/", c.dest().display()));
    assert_eq!(r1["size"], 300_000);
    assert_eq!(r1["create_time"], 1763800000i64 * 1000, "create_time in ms");
    assert_eq!(r1["last_all_filename"], "None");
    assert_eq!(r1["last_all_time"], 0);
    assert_eq!(r1["interval"], 3600);
    let rsync_time = r1["rsync_time"].as_i64().unwrap();
    assert!(
        rsync_time > 1_700_000_000_000,
        "rsync_time in ms: {rsync_time}"
    );
    assert_eq!(r1["node_id"], "n1");
    assert_eq!(r1["attempts"], 1);
    assert_eq!(r1["verify"], "size+blake3");
    assert_eq!(r1["checksum"], m1["checksum"]);
    assert!(r1["duration_ms"].as_u64().is_some() && r1["bytes_per_sec"].as_u64().unwrap() > 0);

    let r2 = by_filename(&results, "2026/inc 1 #x 备份.xb");
    assert_eq!(r2["succeed"], 1);
    assert_eq!(r2["last_all_filename"], "db_3306_full.xb");
    assert_eq!(r2["last_all_time"], 1763790000i64 * 1000);
    assert_eq!(r2["verify"], "size");

    // the client's failure: no pull, succeed 0 with the client's log
    let r3 = results.iter().find(|r| r["succeed"] == 0).unwrap();
    assert_eq!(
        r3["log"],
        "backup script exited 1: mysqldump: Got error 2002"
    );
    assert_eq!(r3["file_path"], Value::Null);
    for k in ORIGINAL_RESULT_KEYS {
        assert!(r3.get(*k).is_some(), "failure result lacks `{k}`: {r3}");
    }

    assert_eq!(c.llen(&c.lo), 0);
    assert_eq!(c.inflight("n1"), 0);
    assert!(
        c.tmp_leftovers("n1").is_empty(),
        "{:?}",
        c.tmp_leftovers("n1")
    );
    let st = c.state("n1");
    assert_eq!(st["kind"], "node");
    assert_eq!(st["paused"], "0");
    assert!(st["disk_total"].parse::<u64>().unwrap() > 0);
    drop(node);
}

/// A large file is hashed while rsync writes it (server/src/follow.rs):
/// the landed file is the source, the recorded checksum is the file's,
/// and a message claiming another checksum still fails verification.
#[test]
fn a_large_file_hashed_during_the_transfer_lands_verified() {
    let c = Cluster::start();
    let src = c.source_file("big_full.xb", 24 << 20, 7);
    c.source_file("big_other.xb", 20 << 20, 8);
    // 8 MiB/s: about 3 s each, so the follower sees the files grow
    let node = c.spawn_env("n1", &[("rsync_bwlimit", "8192")], &[("RUST_LOG", "debug")]);
    let want = ubackup_common::fsutil::blake3_file(&src).unwrap();
    let mut good = c.message("big_full.xb");
    good["checksum"] = want.clone().into();
    let mut bad = c.message("big_other.xb");
    bad["checksum"] = want.clone().into();
    c.push(&c.lo, &good);
    c.push(&c.lo, &bad);
    let results = c.wait_results(2, Duration::from_secs(60));
    let r = by_filename(&results, "big_full.xb");
    assert_eq!(r["succeed"], 1, "{r}");
    assert_eq!(r["verify"], "size+blake3");
    assert_eq!(r["checksum"], want.as_str());
    assert_eq!(
        ubackup_common::fsutil::blake3_file(&c.dest().join("big_full.xb")).unwrap(),
        want
    );
    let r = by_filename(&results, "big_other.xb");
    assert_eq!(r["succeed"], 0, "{r}");
    assert!(r["log"].as_str().unwrap().contains("checksum"), "{r}");
    assert_eq!(files_in(&c.dest()), ["big_full.xb"]);
    assert!(
        node.log_text().contains("hashed while rsync wrote it"),
        "the follower's hash was not used: {}",
        node.log_text()
    );
}

/// `redis_url = rediss://…`: the node pops, pulls and acknowledges over TLS,
/// trusting the server's CA through SSL_CERT_FILE (rustls reads the system
/// roots, or that file). The test itself watches the plain port of the
/// same redis-server.
#[test]
fn a_node_works_against_redis_over_tls() {
    let tls = ubackup_testkit::TlsRedis::start().expect("redis-server with TLS");
    let url = tls.url(0);
    let ca = tls.ca_pem.clone();
    let ubackup_testkit::TlsRedis { server, certs, .. } = tls;
    let c = Cluster::with_redis(server, "");
    let src = c.source_file("db_tls.xb", 10_000, 3);
    let node = c.spawn_env(
        "n1",
        &[("redis_url", url.as_str())],
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    c.push(&c.lo, &c.message("db_tls.xb"));
    let results = c.wait_results(1, Duration::from_secs(30));
    assert_eq!(results[0]["succeed"], 1, "{}", results[0]);
    assert_eq!(
        std::fs::read(c.dest().join("db_tls.xb")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    assert_eq!(c.inflight("n1"), 0, "acknowledged over TLS");
    assert!(
        node.log_text().contains("127.0.0.1:"),
        "{}",
        node.log_text()
    );
    drop(node);
    drop(certs);
}

#[test]
fn original_python_client_dict_is_accepted() {
    let c = Cluster::start();
    c.source_file("db_3306_2026.tar.gz", 1024, 3);
    let _node = c.spawn("n1", &[]);
    // exactly the original client's dict: server_id as text, no new fields,
    // the rsync port from the node's config
    let raw = r#"{"filename": "db_3306_2026.tar.gz", "last_all_filename": null, "size": 1024, "log": "ok", "create_time": 1763800000, "success": true, "server_id": "111111", "game_id": 31, "op_id": 1, "game_server_ip": "127.0.0.1", "back_type": "mysql", "instance": 3306, "rsync_model": "backup/database_3306", "last_all_time": 0, "interval": 3600}"#;
    c.push_raw(&c.lo, raw);
    let r = c.wait_results(1, Duration::from_secs(20)).remove(0);
    assert_eq!(r["succeed"], 1, "{r}");
    assert_eq!(r["server_id"], 111111);
    assert!(c.dest().join("db_3306_2026.tar.gz").is_file());
}

#[test]
fn kill9_mid_bwlimited_transfer_then_restart_gives_one_file_one_result_no_leftovers() {
    let c = Cluster::start();
    let src = c.source_file("big.xb", 3_000_000, 4);
    // 3 MB at 200 KB/s: ~15 s, so the kill lands mid-transfer
    let mut node = c.spawn("n1", &[("rsync_bwlimit", "200")]);
    c.push(&c.lo, &c.message("big.xb"));
    wait_until("transfer under way", Duration::from_secs(20), || {
        c.tmp_bytes("n1") > 50_000
    });
    let groups = c.recorded_groups("n1");
    assert_eq!(groups.len(), 1, "one rsync group recorded");
    node.proc.kill9(); // the node only: its rsync keeps running, as after a real crash
    assert!(
        rsync_alive_in_group(groups[0]),
        "the orphaned rsync survived the node's kill -9"
    );
    assert_eq!(c.inflight("n1"), 1, "the message is still held in flight");
    assert!(c.results().is_empty());

    // restart (unlimited now, to be quick): kills the orphan, cleans, re-queues, pulls
    let node = c.spawn("n1", &[]);
    let results = c.wait_results(1, Duration::from_secs(30));
    assert!(
        !rsync_alive_in_group(groups[0]),
        "the restart killed the orphaned rsync group"
    );
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["succeed"], 1, "{}", results[0]);
    assert_eq!(files_in(&c.dest()), ["big.xb"], "exactly one file");
    assert_eq!(
        std::fs::read(c.dest().join("big.xb")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
    assert_eq!(c.inflight("n1"), 0);
    assert_eq!(c.llen(&c.lo), 0);
    // nothing else arrives: still one result once the node has stopped
    node.proc.signal(libc::SIGTERM);
    let mut node = node;
    assert_eq!(node.proc.wait_exit(Duration::from_secs(15)), Some(Some(0)));
    assert_eq!(c.results().len(), 1);
    assert!(
        node.log_text()
            .contains("re-queued the messages a previous run left in flight"),
        "{}",
        node.log_text()
    );
}

#[test]
fn sigterm_lets_short_pulls_finish_and_requeues_long_ones() {
    let c = Cluster::start();
    c.source_file("short.xb", 400_000, 5);
    c.source_file("long.xb", 6_000_000, 6);
    // 300 KB/s each: short ~1.3 s, long ~20 s; drain allows 4 s
    let mut node = c.spawn("n1", &[("rsync_bwlimit", "300"), ("drain_secs", "4")]);
    let long = c.message("long.xb");
    c.push(&c.lo, &long);
    c.push(&c.lo, &c.message("short.xb"));
    wait_until("both transfers running", Duration::from_secs(20), || {
        c.recorded_groups("n1").len() == 2
    });
    let groups = c.recorded_groups("n1");
    let t0 = Instant::now();
    node.proc.signal(libc::SIGTERM);
    let code = node.proc.wait_exit(Duration::from_secs(30));
    let took = t0.elapsed();
    assert_eq!(code, Some(Some(0)), "clean stop; log:\n{}", node.log_text());
    assert!(took < Duration::from_secs(12), "drain took {took:?}");
    let results = c.results();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["filename"], "short.xb");
    assert_eq!(results[0]["succeed"], 1);
    // the long one is back on its list, unchanged, and nothing is in flight
    let back: Vec<String> = c.conn().lrange(&c.lo, 0, -1).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&back[0]).unwrap(), long);
    assert_eq!(c.inflight("n1"), 0);
    for g in groups {
        assert!(!rsync_alive_in_group(g), "rsync group {g} was killed");
    }
    assert!(
        c.tmp_leftovers("n1").is_empty(),
        "{:?}",
        c.tmp_leftovers("n1")
    );
    assert!(
        !c.conn().exists::<_, bool>(c.keys.alive("n1")).unwrap(),
        "heartbeat removed at a clean stop"
    );
    let st = c.state("n1");
    let last = (
        st["paused"].as_str(),
        st["pause_reason"].as_str(),
        st["active"].as_str(),
    );
    assert_eq!(last, ("1", "stopped", "0"), "final state for the reporter");
    // a drain is not an interruption of the message's fault
    let counts: std::collections::HashMap<String, String> =
        c.conn().hgetall(c.keys.attempts()).unwrap();
    assert!(counts.is_empty(), "{counts:?}");
}

#[test]
fn zombie_node_stopped_past_its_heartbeat_does_not_produce_a_second_result() {
    let c = Cluster::start();
    let src = c.source_file("z.xb", 1_200_000, 7);
    // A is slow (300 KB/s, ~4 s); B is fast
    let a = c.spawn("a", &[("rsync_bwlimit", "300")]);
    c.push(&c.lo, &c.message("z.xb"));
    wait_until("A is pulling", Duration::from_secs(20), || {
        c.tmp_bytes("a") > 10_000
    });
    a.proc.signal(libc::SIGSTOP);
    let b = c.spawn("b", &[]);
    let results = c.wait_results(1, Duration::from_secs(30));
    assert_eq!(
        results[0]["node_id"], "b",
        "B took the message over: {}",
        results[0]
    );
    assert_eq!(results[0]["succeed"], 1);
    b.wait_log("took over the in-flight messages", Duration::from_secs(5));
    a.proc.signal(libc::SIGCONT);
    // A's rsync finishes; A sees it no longer holds the message and neither
    // lands a second copy nor acks (a late ack would be fenced off anyway)
    a.wait_log(
        "another node took the message over",
        Duration::from_secs(30),
    );
    assert_eq!(c.results().len(), 1, "{:#?}", c.results());
    assert_eq!(files_in(&c.dest()), ["z.xb"]);
    assert_eq!(
        std::fs::read(c.dest().join("z.xb")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    assert_eq!(c.inflight("a") + c.inflight("b") + c.llen(&c.lo), 0);
}

#[test]
fn a_dead_nodes_in_flight_work_is_taken_over() {
    let c = Cluster::start();
    c.source_file("d.xb", 1_500_000, 8);
    let mut a = c.spawn("a", &[("rsync_bwlimit", "200")]);
    c.push(&c.lo, &c.message("d.xb"));
    wait_until("A is pulling", Duration::from_secs(20), || {
        c.tmp_bytes("a") > 10_000
    });
    // the machine is gone: the node and its rsync
    let groups = c.recorded_groups("a");
    a.proc.kill9();
    groups.iter().for_each(|&g| kill_group(g));
    assert_eq!(c.inflight("a"), 1);
    let b = c.spawn("b", &[]);
    let results = c.wait_results(1, Duration::from_secs(30));
    assert_eq!(results[0]["node_id"], "b");
    assert_eq!(results[0]["succeed"], 1);
    assert_eq!(c.inflight("a"), 0);
    assert_eq!(files_in(&c.dest()), ["d.xb"]);
    b.wait_log("took over the in-flight messages", Duration::from_secs(5));
}

#[test]
fn a_pull_completed_before_a_crash_is_not_landed_twice() {
    let c = Cluster::start();
    let f1 = c.source_file("c1.xb", 200_000, 9);
    c.source_file("c2.xb", 200_000, 10);
    let crash = [("UBACKUP_FAILPOINT", "after_land=exit")];

    // with a checksum: the landed file is recognised, not pulled again
    let mut m1 = c.message("c1.xb");
    m1["checksum"] = ubackup_common::fsutil::blake3_file(&f1).unwrap().into();
    c.push(&c.lo, &m1);
    let mut n = c.spawn_env("n1", &[], &crash);
    assert_eq!(
        n.proc.wait_exit(Duration::from_secs(20)),
        Some(None),
        "killed itself at the failpoint"
    );
    assert!(c.dest().join("c1.xb").is_file() && c.results().is_empty());
    let mut n = c.spawn("n1", &[]);
    let r = c.wait_results(1, Duration::from_secs(20));
    assert_eq!(r[0]["succeed"], 1);
    assert_eq!(
        r[0]["attempts"], 0,
        "recognised as already landed: {}",
        r[0]
    );
    n.proc.signal(libc::SIGTERM);
    assert_eq!(n.proc.wait_exit(Duration::from_secs(15)), Some(Some(0)));

    // without one: pulled again and renamed over the same name
    c.push(&c.lo, &c.message("c2.xb"));
    let mut n = c.spawn_env("n1", &[], &crash);
    assert_eq!(n.proc.wait_exit(Duration::from_secs(20)), Some(None));
    let _n = c.spawn("n1", &[]);
    let r = c.wait_results(2, Duration::from_secs(20));
    assert_eq!(r[1]["filename"], "c2.xb");
    assert_eq!(r[1]["attempts"], 1);
    assert_eq!(
        files_in(&c.dest()),
        ["c1.xb", "c2.xb"],
        "one file per message"
    );
    wait_until("temp area empty", Duration::from_secs(5), || {
        c.tmp_leftovers("n1").is_empty()
    });
}

#[test]
fn each_kind_of_invalid_input_is_dead_lettered_with_a_reason_and_no_command_runs() {
    let c = Cluster::start();
    c.source_file("ok.xb", 1000, 11);
    let marker = std::env::temp_dir().join(format!("ubackup-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let m = marker.display().to_string();
    let _node = c.spawn("n1", &[("allow_sources", "127.0.0.0/8")]);
    let with = |k: &str, v: Value| {
        let mut msg = c.message("ok.xb");
        msg[k] = v;
        msg.to_string()
    };
    let mut missing = c.message("ok.xb");
    missing.as_object_mut().unwrap().remove("rsync_model");
    let cases: Vec<(String, &str)> = vec![
        (with("filename", "../../etc/passwd".into()), "`..`"),
        (
            with("filename", "--rsh=sh -c id".into()),
            "option injection",
        ),
        (
            with("filename", format!("$(touch {m})").into()),
            "shell metacharacter `$`",
        ),
        (
            with("filename", format!("x; touch {m}").into()),
            "shell metacharacter `;`",
        ),
        (
            with("filename", format!("`touch {m}`").into()),
            "shell metacharacter `` ` ``",
        ),
        (
            with("rsync_model", format!("backup/$(touch {m})").into()),
            "shell metacharacter",
        ),
        (
            with("game_server_ip", "db1.example.com".into()),
            "not an IP address",
        ),
        (
            with("game_server_ip", "192.0.2.10".into()),
            "outside allow_sources",
        ),
        (with("filename", "*.xb".into()), "wildcard"),
        (missing.to_string(), "missing field `rsync_model`"),
        ("this is not json {".to_string(), "not JSON"),
    ];
    for (payload, _) in &cases {
        c.push_raw(&c.lo, payload);
    }
    let results = c.wait_results(cases.len(), Duration::from_secs(30));
    let dead = c.dead(&c.lo);
    assert_eq!(dead.len(), cases.len(), "{dead:#?}");
    for (payload, why) in &cases {
        let d = dead
            .iter()
            .find(|d| &d.payload == payload)
            .unwrap_or_else(|| panic!("not dead-lettered: {payload}"));
        let why = why.replace("`` ` ``", "`");
        assert!(
            d.reason.contains(&why),
            "{payload}: reason {:?} lacks {why:?}",
            d.reason
        );
        assert_eq!(d.node, "n1");
        assert!(d.time > 0);
    }
    assert!(
        results
            .iter()
            .all(|r| r["succeed"] == 0 && r["illegal"].is_string()),
        "{results:#?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r["server_id"] == SERVER_ID)
            .count(),
        cases.len() - 1,
        "non-JSON yields zeros"
    );
    assert!(!marker.exists(), "a command from a message ran");
    assert!(files_in(&c.dest()).is_empty());
    assert_eq!(c.llen(&c.lo) + c.inflight("n1"), 0);
}

#[test]
fn level1_is_done_next_despite_a_backlog_of_200_on_the_low_list() {
    let c = Cluster::start();
    c.source_file("small.xb", 2000, 12);
    c.source_file("urgent.xb", 2000, 13);
    for i in 0..200 {
        let mut m = c.message("small.xb");
        m["create_time"] = (1763800000 + i).into();
        c.push(&c.lo, &m);
    }
    let _node = c.spawn("n1", &[("work_thread", "1")]);
    c.wait_results(3, Duration::from_secs(30));
    // atomically: how many results exist, how many low messages the node
    // has already taken (a batch may hold several), and the urgent message
    // arrives
    let (before, low_left, taken): (usize, usize, usize) = redis::pipe()
        .atomic()
        .llen(&c.results)
        .llen(&c.lo)
        .llen(c.keys.inflight("n1", &c.lo))
        .lpush(&c.hi, c.message("urgent.xb").to_string())
        .ignore()
        .query(&mut c.conn())
        .unwrap();
    assert!(low_left >= 150, "the backlog is still there: {low_left}");
    let mut conn = c.conn();
    wait_until("urgent result", Duration::from_secs(30), || {
        let all: Vec<String> = conn.lrange(&c.results, 0, -1).unwrap();
        all.iter().any(|r| r.contains("urgent.xb"))
    });
    let results = c.results();
    let pos = results
        .iter()
        .position(|r| r["filename"] == "urgent.xb")
        .unwrap();
    // Only these may finish before urgent: the low messages the node had
    // already taken when urgent arrived (a batch may hold several), and one
    // more. With its one worker busy, the node starts urgent at once in the
    // express slot. When the worker frees up, it takes the next low message
    // (the top list is empty by then), and that small pull can finish before
    // urgent's: seen twice in CI. Without priority, urgent would come after
    // most of the 200.
    assert!(
        pos - before <= taken.max(1) + 1,
        "urgent was result #{pos}, {} after it was pushed, with {taken} low message(s) taken at that moment",
        pos - before
    );
    assert!(c.llen(&c.lo) >= 140);
}

#[test]
fn rsync_daemon_down_then_up_is_retried() {
    let mut c = Cluster::start();
    c.source_file("r.xb", 5000, 14);
    let port = c.rsyncd.port;
    let conf = c.rsyncd.dir.path().join("rsyncd.conf");
    c.rsyncd.stop();
    let node = c.spawn("n1", &[("retry", "6"), ("retry_backoff_ms", "300")]);
    c.push(&c.lo, &c.message("r.xb"));
    node.wait_log("rsync exit code 10", Duration::from_secs(20));
    // the daemon comes back on the same port
    let mut daemon = std::process::Command::new("rsync")
        .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", conf.display()))
        .spawn()
        .unwrap();
    let r = c.wait_results(1, Duration::from_secs(30)).remove(0);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(r["succeed"], 1, "{r}");
    assert!(r["attempts"].as_u64().unwrap() >= 2, "{r}");
    assert!(c.dest().join("r.xb").is_file());
}

#[test]
fn a_missing_file_gets_only_the_bounded_retry_then_a_failure_result() {
    let c = Cluster::start();
    let node = c.spawn("n1", &[("retry", "5")]);
    c.push(&c.lo, &c.message("not-there.xb"));
    let r = c.wait_results(1, Duration::from_secs(30)).remove(0);
    assert_eq!(r["succeed"], 0);
    assert_eq!(r["attempts"], 2, "bounded below retry=5: {r}");
    let log = r["log"].as_str().unwrap();
    assert!(
        log.contains("exit code 23") && log.contains("No such file"),
        "{log}"
    );
    assert_eq!(r["file_path"], Value::Null);
    // the log file is written by a background appender: the line may land
    // just after the result (this raced once under load)
    wait_until(
        "the failure in the node's log",
        Duration::from_secs(10),
        || node.log_text().contains("pull failed"),
    );
    assert_eq!(c.llen(&c.lo) + c.inflight("n1"), 0);
}

/// Waits until the node has published `n` more heartbeats: time in which it
/// would have acted, measured by the node itself rather than a sleep.
fn wait_beats(c: &Cluster, node: &str, n: i64) {
    let hb = |c: &Cluster| {
        c.state(node)
            .get("heartbeat_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let start = hb(c);
    let mut seen = 0;
    let mut last = start;
    wait_until(
        &format!("{n} heartbeats of {node}"),
        Duration::from_secs(15),
        || {
            let now = hb(c);
            if now != last {
                seen += 1;
                last = now;
            }
            seen >= n
        },
    );
}

#[test]
fn disk_reserve_pauses_and_resumes_and_counts_the_incoming_size() {
    let c = Cluster::start();
    c.source_file("space.xb", 10_000, 15);
    let free = ubackup_server::disk::space(c.root.path()).unwrap().free;
    let huge = (free + (1 << 40)).to_string();
    let mut node = c.spawn("n1", &[("reserve_bytes", &huge)]);
    let mut conn = c.conn();
    let state_key = c.keys.state("n1");
    wait_until(
        "paused for the disk reserve",
        Duration::from_secs(10),
        || {
            let st: std::collections::HashMap<String, String> = conn.hgetall(&state_key).unwrap();
            st.get("paused").map(String::as_str) == Some("1")
                && st
                    .get("pause_reason")
                    .is_some_and(|r| r.contains("disk reserve"))
        },
    );
    c.push(&c.lo, &c.message("space.xb"));
    wait_beats(&c, "n1", 3);
    assert_eq!(
        c.llen(&c.lo),
        1,
        "a paused node leaves messages for other nodes"
    );
    assert!(c.results().is_empty());
    let log = node.log_text();
    assert_eq!(
        log.matches("pausing: not taking new messages").count(),
        1,
        "logged once:\n{log}"
    );

    // space "returns": the operator lowers the reserve and sends SIGHUP
    c.config("n1", &[]);
    node.proc.signal(libc::SIGHUP);
    let r = c.wait_results(1, Duration::from_secs(20));
    assert_eq!(r[0]["succeed"], 1);
    wait_until("state shows running", Duration::from_secs(2), || {
        c.state("n1")["paused"] == "0"
    });
    node.wait_log("resuming: taking messages again", Duration::from_secs(2));

    // a message whose size would not fit above the reserve is given back
    let mut big = c.message("space.xb");
    big["size"] = (free * 4).into();
    c.push(&c.lo, &big);
    node.wait_log(
        "giving the message back for another node",
        Duration::from_secs(20),
    );
    wait_until("given back", Duration::from_secs(5), || {
        c.llen(&c.lo) == 1 && c.inflight("n1") == 0
    });
    wait_until("paused for that size", Duration::from_secs(5), || {
        c.state("n1")
            .get("pause_reason")
            .is_some_and(|r| r.contains("needs"))
    });
    assert_eq!(c.results().len(), 1, "no result for a message given back");
    let counts: std::collections::HashMap<String, String> =
        c.conn().hgetall(c.keys.attempts()).unwrap();
    assert!(counts.is_empty(), "giving back is not an interruption");
    node.proc.signal(libc::SIGTERM);
    assert_eq!(node.proc.wait_exit(Duration::from_secs(15)), Some(Some(0)));
}

#[test]
fn operator_pauses_resumes_and_sets_workers_through_the_control_hash() {
    let c = Cluster::start();
    let _node = c.spawn("n1", &[]);
    let ctl = c.keys.control("n1");
    let _: () = c.conn().hset(&ctl, "paused", "1").unwrap();
    wait_until("paused by operator", Duration::from_secs(5), || {
        let st = c.state("n1");
        st.get("paused").map(String::as_str) == Some("1")
            && st
                .get("pause_reason")
                .is_some_and(|r| r.starts_with("operator"))
    });
    let mut m = c.message("x.xb");
    m["success"] = false.into();
    c.push(&c.lo, &m);
    wait_beats(&c, "n1", 3);
    assert_eq!(c.llen(&c.lo), 1, "paused: nothing taken");
    let _: () = c.conn().hset(&ctl, "paused", "0").unwrap();
    c.wait_results(1, Duration::from_secs(5));
    let _: () = c.conn().hset(&ctl, "workers", "7").unwrap();
    wait_until("workers = 7", Duration::from_secs(5), || {
        c.state("n1").get("workers").map(String::as_str) == Some("7")
    });
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn pickup_latency_per_list_and_idle_cost() {
    let c = Cluster::start();
    let node = c.spawn("n1", &[("work_thread", "4"), ("queue_wait_ms", "300")]);
    let mut conn = c.conn();
    let mut measure = |list: &str, i: usize| -> Duration {
        let mut m = c.message("lat.xb");
        m["success"] = false.into();
        m["create_time"] = (1763800000 + i as i64).into();
        let t0 = Instant::now();
        let _: () = conn.lpush(list, m.to_string()).unwrap();
        let got: Option<(String, String)> = conn.brpop(&c.results, 5.0).unwrap();
        assert!(got.is_some(), "no result within 5 s");
        t0.elapsed()
    };
    // settle: the node is idle and waiting
    measure(&c.lo, 0);
    let mut top: Vec<Duration> = (0..15).map(|i| measure(&c.hi, i + 1)).collect();
    let mut low: Vec<Duration> = (0..15).map(|i| measure(&c.lo, i + 100)).collect();
    top.sort();
    low.sort();
    println!(
        "pickup+result latency, top list:   median {:?}, max {:?}",
        top[7], top[14]
    );
    println!(
        "pickup+result latency, lower list: median {:?}, max {:?}",
        low[7], low[14]
    );
    assert!(
        top[7] < Duration::from_millis(100),
        "top list median {:?}",
        top[7]
    );
    assert!(
        low[14] < Duration::from_millis(300 + 400),
        "lower list max {:?}",
        low[14]
    );

    // idle: 3 s of wall time, CPU time of the whole node process
    let t0 = cpu_ticks(node.pid());
    let start = Instant::now();
    wait_until("3 s idle", Duration::from_secs(5), || {
        start.elapsed() >= Duration::from_secs(3)
    });
    let ticks = cpu_ticks(node.pid()) - t0; // USER_HZ = 100
    println!("idle CPU: {} ms over 3 s with 4 workers", ticks * 10);
    assert!(
        ticks <= 15,
        "idle node used {} ms of CPU in 3 s",
        ticks * 10
    );
}

#[test]
fn results_reach_a_separate_message_redis_through_the_outbox() {
    let c = Cluster::start();
    c.source_file("o.xb", 5000, 16);
    let msg_redis = ubackup_testkit::RedisServer::start_with(&["--requirepass", "s3cret"]).unwrap();
    let port = msg_redis.port.to_string();
    let _node = c.spawn(
        "n1",
        &[
            ("message_redis_port", &port),
            ("message_redis_password", "s3cret"),
        ],
    );
    c.push(&c.lo, &c.message("o.xb"));
    let mut failed = c.message("o.xb");
    failed["success"] = false.into();
    c.push(&c.lo, &failed);
    c.push_raw(&c.lo, "garbage");
    let mut mconn = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    wait_until(
        "3 results on the message redis",
        Duration::from_secs(20),
        || mconn.llen::<_, usize>(&c.results).unwrap() == 3,
    );
    let raw: Vec<String> = mconn.lrange(&c.results, 0, -1).unwrap();
    let succeeded: Vec<Value> = raw
        .iter()
        .map(|s| serde_json::from_str::<Value>(s).unwrap())
        .filter(|r| r["succeed"] == 1)
        .collect();
    assert_eq!(succeeded.len(), 1);
    wait_until("outbox drained", Duration::from_secs(5), || {
        c.llen(&c.keys.outbox("n1")) == 0
    });
    assert_eq!(
        c.llen(&c.results),
        0,
        "nothing on the queue redis's message list"
    );
    assert_eq!(c.dead(&c.lo).len(), 1);
}

#[test]
fn a_stopped_daemon_that_still_accepts_connections_times_out_and_is_retried() {
    let c = Cluster::start();
    c.source_file("s.xb", 5000, 17);
    c.rsyncd.pause(); // SIGSTOP: the kernel accepts TCP, nothing answers
    let node = c.spawn(
        "n1",
        &[
            ("rsync_timeout", "2"),
            ("rsync_contimeout", "2"),
            ("retry", "5"),
        ],
    );
    c.push(&c.lo, &c.message("s.xb"));
    node.wait_log("pull attempt failed", Duration::from_secs(30));
    let log = node.log_text();
    assert!(
        log.contains("exit code 30") || log.contains("exit code 35") || log.contains("watchdog"),
        "{log}"
    );
    c.rsyncd.resume();
    let r = c.wait_results(1, Duration::from_secs(40)).remove(0);
    assert_eq!(r["succeed"], 1, "{r}");
    assert!(r["attempts"].as_u64().unwrap() >= 2);
}

#[test]
fn daemon_auth_with_user_and_password_file_and_auth_failure_is_not_retried() {
    let etc = tempfile::tempdir().unwrap();
    let secrets = etc.path().join("rsyncd.secrets");
    std::fs::write(&secrets, "ub:right-pw\n").unwrap();
    let c = Cluster::start_with_rsyncd_global(&format!(
        "auth users = ub\nsecrets file = {}\nstrict modes = no\n",
        secrets.display()
    ));
    c.source_file("auth.xb", 3000, 18);
    let pw = etc.path().join("pw");
    std::fs::write(&pw, "right-pw\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pw_s = pw.display().to_string();
    let mut node = c.spawn(
        "n1",
        &[
            ("rsync_user", "ub"),
            ("rsync_password_file", &pw_s),
            ("retry", "3"),
        ],
    );
    c.push(&c.lo, &c.message("auth.xb"));
    let r = c.wait_results(1, Duration::from_secs(20));
    assert_eq!(r[0]["succeed"], 1, "{}", r[0]);

    // a wrong password (reloaded with SIGHUP): exit 5, reported, not retried
    std::fs::write(&pw, "wrong\n").unwrap();
    node.proc.signal(libc::SIGHUP);
    node.wait_log("SIGHUP: config reloaded", Duration::from_secs(5));
    c.push(&c.lo, &c.message("auth.xb"));
    let r = c.wait_results(2, Duration::from_secs(20));
    assert_eq!(r[1]["succeed"], 0, "{}", r[1]);
    assert_eq!(
        r[1]["attempts"], 1,
        "auth failures are not retried: {}",
        r[1]
    );
    assert!(
        r[1]["log"].as_str().unwrap().contains("exit code 5"),
        "{}",
        r[1]
    );
    node.proc.signal(libc::SIGTERM);
    assert_eq!(node.proc.wait_exit(Duration::from_secs(15)), Some(Some(0)));
}

#[test]
fn rsync_exit_0_is_not_proof_symlinks_directories_and_mismatches_fail() {
    let c = Cluster::start();
    c.source_file("real.xb", 4000, 19);
    let module_dir = c.src.path().join("database_3306");
    std::os::unix::fs::symlink("/etc/passwd", module_dir.join("link.xb")).unwrap();
    std::fs::create_dir_all(module_dir.join("adir.xb")).unwrap();
    let _node = c.spawn("n1", &[("retry", "4")]);
    let mut link = c.message("real.xb");
    link["filename"] = "link.xb".into();
    let mut dir = c.message("real.xb");
    dir["filename"] = "adir.xb".into();
    let mut size = c.message("real.xb");
    size["size"] = 3999.into();
    let mut sum = c.message("real.xb");
    sum["create_time"] = 1763800001.into();
    sum["checksum"] = format!("blake3:{}", "0".repeat(64)).into();
    for m in [&link, &dir, &size, &sum] {
        c.push(&c.lo, m);
    }
    let results = c.wait_results(4, Duration::from_secs(30));
    assert!(results.iter().all(|r| r["succeed"] == 0), "{results:#?}");
    for name in ["link.xb", "adir.xb"] {
        let r = by_filename(&results, name);
        assert!(
            r["illegal"]
                .as_str()
                .unwrap()
                .contains("not a regular file"),
            "{r}"
        );
        assert_eq!(r["attempts"], 1, "not retried: {r}");
    }
    let r = results.iter().find(|r| r["size"] == 3999).unwrap();
    assert!(
        r["verify"].as_str().unwrap().contains("size 4000 differs"),
        "{r}"
    );
    assert_eq!(r["attempts"], 2, "bounded retry: {r}");
    let r = results
        .iter()
        .find(|r| r["create_time"] == 1763800001000i64)
        .unwrap();
    assert!(r["verify"].as_str().unwrap().contains("checksum"), "{r}");
    assert!(
        files_in(&c.dest()).is_empty(),
        "nothing unverified lands: {:?}",
        files_in(&c.dest())
    );
    assert!(c.tmp_leftovers("n1").is_empty());
}
