//! The fault-injection and adversarial suite (issue 8): real redis-server,
//! rsync daemon, ES stand-in, `ubackup-server` nodes and `ubackup-indexer`,
//! faults injected from outside (kill -9, SIGSTOP, outages, a full disk,
//! scripted ES answers, wire resets) and bad inputs, then the invariant
//! "nothing lost, nothing twice, nothing outside its directory" checked
//! once the system is quiet (see `ubackup_faults::check`).
//!
//! ```text
//! cargo build --workspace                       # the binaries under test
//! cargo test -p ubackup-faults --test faults    # every case, ~3-4 min
//! cargo test -p ubackup-faults --test faults -- zombie soak   # some cases
//! cargo test -p ubackup-faults --test faults -- soak --soak   # the long soak
//! ```
//!
//! Its own `main` (harness = false): cases run one after another so that
//! process-level timing (heartbeats, rsync timeouts) does not compete with
//! another case for the 2 cores, and the run ends with one summary line.
//! A case that cannot run here (no tmpfs mount, a release build without
//! failpoints) says so and is counted as skipped, not passed.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ubackup_common::ResultRecord;
use ubackup_faults::check::Row;
use ubackup_faults::ledger::{next_create_time, Expect, MsgSpec, Producer, INSTANCE, SERVER_ID};
use ubackup_faults::sig::{self, Sig};
use ubackup_faults::world::WorldOpts;
use ubackup_faults::{tally, NodeSpec, WaitQuiet, World};
use ubackup_testkit::wait_until;

/// A case that cannot run on this machine returns `Err(why)`.
type Outcome = Result<(), String>;
type Case = (&'static str, fn(&Opts) -> Outcome);

struct Opts {
    soak: bool,
    soak_secs: u64,
    soak_messages: usize,
}

fn quiet(secs: u64) -> WaitQuiet {
    WaitQuiet {
        deadline: Duration::from_secs(secs),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let soak = args.iter().any(|a| a == "--soak");
    let opts = Opts {
        soak,
        soak_secs: value("--soak-secs").unwrap_or(if soak { 600 } else { 60 }),
        soak_messages: value("--soak-messages").unwrap_or(if soak { 5000 } else { 500 }) as usize,
    };
    // words that are not options (nor option values) filter cases by name
    let mut filters = Vec::new();
    let mut skip_next = false;
    for a in &args {
        if skip_next {
            skip_next = false;
        } else if a == "--soak-secs" || a == "--soak-messages" {
            skip_next = true;
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let cases: Vec<Case> = vec![
        (
            "bad_inputs_are_dead_lettered_and_never_spawn_rsync",
            bad_inputs,
        ),
        ("malicious_symlink_lands_nothing", malicious_symlink),
        (
            "wrong_rsync_password_is_auth_not_retried_not_on_a_command_line",
            wrong_password,
        ),
        (
            "source_deleted_or_rewritten_before_the_pull",
            source_changed,
        ),
        ("kill9_node_mid_rsync", kill9_mid_rsync),
        ("kill9_between_pull_and_ack_failpoints", kill9_failpoints),
        ("zombie_node_late_ack_has_no_effect", zombie),
        ("poison_message_dead_lettered_after_3_crashes", poison),
        (
            "hung_rsync_daemon_fails_by_rsync_timeout_not_watchdog",
            hung_daemon,
        ),
        (
            "disk_full_not_acked_no_partial_completes_after_space",
            disk_full,
        ),
        ("redis_kill9_and_restart_on_same_aof", redis_kill9),
        ("redis_and_rsync_daemon_outage_by_sigstop", outages),
        ("es_bulk_item_statuses_and_whole_request_503", es_statuses),
        (
            "es_reset_mid_response_and_indexer_kill9_around_the_es_write",
            es_wire,
        ),
        ("soak_random_kill9_of_nodes", soak_case),
    ];
    let started = Instant::now();
    let (mut passed, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, f) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("case {name} ...");
        let t = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&opts)));
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(Ok(())) => {
                println!("case {name}: ok ({secs:.1} s)");
                passed.push(name);
            }
            Ok(Err(why)) => {
                println!("case {name}: SKIPPED ({secs:.1} s): {why}");
                skipped.push(name);
            }
            Err(_) => {
                println!("case {name}: FAILED ({secs:.1} s)");
                failed.push(name);
            }
        }
    }
    println!(
        "\n{} passed, {} failed {:?}, {} skipped {:?}, {:.0} s",
        passed.len(),
        failed.len(),
        failed,
        skipped.len(),
        skipped,
        started.elapsed().as_secs_f64()
    );
    println!("{}", tally::snapshot());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// The SQLite rows of one message (by create_time).
fn rows_of(w: &World, m: &MsgSpec) -> Vec<Row> {
    w.sqlite_rows()
        .into_iter()
        .filter(|r| r.create_time_ms == m.create_time * 1000)
        .collect()
}

fn wait_row(w: &World, m: &MsgSpec, deadline: Duration) -> Row {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(r) = rows_of(w, m).into_iter().next() {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no record of {} within {deadline:?}; logs:\n{}",
        m.filename,
        all_logs(w)
    );
}

fn all_logs(w: &World) -> String {
    let mut s = String::new();
    for id in w.nodes.keys() {
        s.push_str(&format!(
            "--- node {id}\n{}\n",
            ubackup_faults::world::tail(&w.node_log(id), 3000)
        ));
    }
    s.push_str(&format!(
        "--- indexer\n{}\n",
        ubackup_faults::world::tail(&w.indexer_log(), 2000)
    ));
    s
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A tiny deterministic PRNG (xorshift), seeded and printed for replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

// ---------------------------------------------------------------------------
// 10. path and injection inputs
// ---------------------------------------------------------------------------

fn bad_inputs(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    w.start_node("n1", NodeSpec::new());
    let mut p = w.producer();
    let attack = w.path("attack");
    let pwned = attack.join("pwned").display().to_string();
    let good = w.source("good.bin", 2000, 1);
    let mut tried = 0u64;
    let mut push = |p: &mut Producer, field: &str, value: Value| {
        let mut v = MsgSpec::new("good.bin", 2000).json();
        v[field] = value;
        p.push_value(&w.lo, &v, Expect::DeadLetter).expect("push");
        tried += 1;
    };
    let names: Vec<String> = vec![
        "../../etc/passwd".into(),
        "/etc/passwd".into(),
        "a/../../x".into(),
        "*".into(),
        "o?.bin".into(),
        "-e.txt".into(),
        "--rsh=sh".into(),
        "a\nb.bin".into(),
        "a\0b.bin".into(),
        "x".repeat(5 * 1024),
        format!("{}/../../../../attack/pwned", "db"),
        format!("$(touch {pwned})"),
        format!("x;touch {pwned}"),
        "[ab].bin".into(),
        "db//good.bin".into(),
    ];
    for n in &names {
        push(&mut p, "filename", n.clone().into());
    }
    for model in [
        "h:873/x@evil",
        "back up/db",
        "backup/../../attack",
        "/backup/db",
        "-e/db",
        "backup/*",
    ] {
        push(&mut p, "rsync_model", model.into());
    }
    for t in ["../../attack", "my/sql", "-x"] {
        push(&mut p, "back_type", t.into());
    }
    for ip in ["127.0.0.1; touch x", "evil.example.com", "192.0.2.7"] {
        push(&mut p, "game_server_ip", ip.into());
    }
    // not UTF-8: a valid message whose filename holds the bytes ff fe
    let ct = next_create_time();
    let mut raw = MsgSpec {
        create_time: ct,
        ..MsgSpec::new("PLACEHOLDER", 2000)
    }
    .json()
    .to_string()
    .into_bytes();
    let at = raw.windows(11).position(|w| w == b"PLACEHOLDER").unwrap();
    raw.splice(at..at + 11, [0xffu8, 0xfe, b'.', b'b']);
    p.push_raw(&w.lo, &raw, Some(ct), None, Expect::DeadLetter)
        .unwrap();
    p.push_raw(&w.lo, b"this is not json {", None, None, Expect::DeadLetter)
        .unwrap();
    tried += 2;
    tally::bad_inputs(tried);
    let v = w.wait_quiet(quiet(60));
    let calls = w.spy.calls();
    let shown: Vec<String> = calls
        .iter()
        .map(|c| c.last().cloned().unwrap_or_default())
        .map(|a| a.chars().take(120).collect())
        .collect();
    let urls: Vec<String> = calls
        .iter()
        .map(|c| {
            c.iter()
                .rev()
                .nth(1)
                .cloned()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect()
        })
        .collect();
    assert!(
        calls.is_empty(),
        "rsync was spawned {} time(s) for bad inputs: {urls:?} into {shown:?}",
        calls.len()
    );
    let dead = w.dead_letters();
    for d in &dead {
        println!(
            "    dead-lettered: {:<60} reason: {}",
            ubackup_common::validate::printable(
                &d.letter.payload.chars().take(60).collect::<String>()
            )
            .chars()
            .take(60)
            .collect::<String>(),
            d.letter.reason.chars().take(110).collect::<String>()
        );
    }
    assert!(
        !std::path::Path::new(&pwned).exists(),
        "a command from a message ran"
    );
    // the spy works: a good message spawns rsync once
    p.push(&w.lo, &good, Expect::Landed).unwrap();
    let v2 = w.wait_quiet(quiet(30));
    assert_eq!(w.spy.count(), 1, "the good message is pulled by one rsync");
    println!("    {tried} bad inputs, rsync spawns for them: 0; {v2}");
    v.assert_clean(false);
    v2.assert_ok(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// 11. malicious symlink
// ---------------------------------------------------------------------------

fn malicious_symlink(_: &Opts) -> Outcome {
    for chroot in [true, false] {
        let mut w = World::with(WorldOpts {
            no_chroot: !chroot,
            ..Default::default()
        });
        w.start_indexer();
        std::os::unix::fs::symlink("/etc/passwd", w.src_dir().join("passwd.bin")).unwrap();
        let size = std::fs::metadata("/etc/passwd")
            .map(|m| m.len())
            .unwrap_or(100);
        let m = MsgSpec::new("passwd.bin", size);
        w.start_node("n1", NodeSpec::new());
        w.producer().push(&w.lo, &m, Expect::FailureResult).unwrap();
        tally::fault(1);
        let v = w.wait_quiet(quiet(30));
        let r = wait_row(&w, &m, Duration::from_secs(5));
        let illegal = r.illegal.clone().unwrap_or_default();
        assert!(
            illegal.contains("not a regular file"),
            "chroot={chroot}: {r:?}"
        );
        assert_eq!(r.attempts, Some(1), "not retried: {r:?}");
        assert_eq!(w.spy.count(), 1, "rsync ran (and exited 0)");
        assert!(files(&w.dest("n1")).is_empty(), "nothing lands");
        println!("    chroot={chroot}: reason: {illegal}");
        v.assert_ok(false);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 12. wrong rsync password
// ---------------------------------------------------------------------------

fn wrong_password(_: &Opts) -> Outcome {
    let etc = tempfile::tempdir().unwrap();
    let right = format!("right-{}", ubackup_testkit::unique("pw"));
    let wrong = format!("wrong-{}", ubackup_testkit::unique("pw"));
    let secrets = etc.path().join("rsyncd.secrets");
    std::fs::write(&secrets, format!("ub:{right}\n")).unwrap();
    let mut w = World::with(WorldOpts {
        rsyncd_global: format!(
            "auth users = ub\nsecrets file = {}\nstrict modes = no\n",
            secrets.display()
        ),
        ..Default::default()
    });
    w.start_indexer();
    let pwfile = w.path("etc/rsync.pw");
    std::fs::write(&pwfile, format!("{wrong}\n")).unwrap();
    std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // every process's command line, sampled while the case runs
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sampler = {
        let (stop, seen, right, wrong) = (stop.clone(), seen.clone(), right.clone(), wrong.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for (pid, cmd) in sig::all_cmdlines() {
                    if cmd.contains(&right) || cmd.contains(&wrong) {
                        seen.lock().unwrap().push(format!("{pid}: {cmd}"));
                    }
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };
    w.start_node(
        "n1",
        NodeSpec::new()
            .set("rsync_user", "ub")
            .set("rsync_password_file", &pwfile.display().to_string())
            .set("retry", "3"),
    );
    let m = w.source("auth.bin", 3000, 2);
    w.producer().push(&w.lo, &m, Expect::FailureResult).unwrap();
    tally::fault(1);
    let v = w.wait_quiet(quiet(30));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    let r = wait_row(&w, &m, Duration::from_secs(5));
    assert_eq!(r.attempts, Some(1), "auth failures are not retried: {r:?}");
    assert!(
        r.log.contains("exit code 5") && r.log.contains("auth failed"),
        "classified as auth: {}",
        r.log
    );
    let calls = w.spy.calls();
    assert_eq!(calls.len(), 1, "one rsync spawn: {calls:?}");
    assert!(
        calls[0].iter().any(|a| a.starts_with("--password-file=")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .flatten()
            .any(|a| a.contains(&wrong) || a.contains(&right)),
        "password in argv: {calls:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "password on a command line: {seen:?}");
    println!(
        "    {samples} samples of every process's command line: password seen 0 times; log: {}",
        r.log.chars().take(160).collect::<String>()
    );
    v.assert_ok(false);
    Ok(())
}

// ---------------------------------------------------------------------------
// 13. source deleted or rewritten between message and pull
// ---------------------------------------------------------------------------

fn source_changed(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let mut p = w.producer();
    // queued while no node runs; the sources change before any pull
    let deleted = w.source("deleted.bin", 5000, 3);
    let rewritten = w.source_with_checksum("rewritten.bin", 5000, 4);
    let resized = w.source("resized.bin", 5000, 5);
    for m in [&deleted, &rewritten, &resized] {
        p.push(&w.lo, m, Expect::FailureResult).unwrap();
    }
    std::fs::remove_file(w.src_dir().join("deleted.bin")).unwrap();
    ubackup_testkit::write_file(&w.src_dir().join("rewritten.bin"), 5000, 99);
    ubackup_testkit::write_file(&w.src_dir().join("resized.bin"), 4000, 5);
    tally::fault(3);
    w.start_node("n1", NodeSpec::new());
    let v = w.wait_quiet(quiet(60));
    let r = wait_row(&w, &deleted, Duration::from_secs(1));
    assert!(r.log.contains("exit code 23"), "{}", r.log);
    assert_eq!(
        r.attempts,
        Some(2),
        "bounded retry for a missing file: {r:?}"
    );
    let r = wait_row(&w, &rewritten, Duration::from_secs(1));
    assert!(
        r.log.contains("checksum") && r.log.contains("differs"),
        "{}",
        r.log
    );
    assert_eq!(r.succeed, 0);
    let r = wait_row(&w, &resized, Duration::from_secs(1));
    assert!(r.log.contains("size 4000 differs"), "{}", r.log);
    assert!(
        files(&w.dest("n1")).is_empty(),
        "nothing unverified lands: {:?}",
        files(&w.dest("n1"))
    );
    // the file with the wrong checksum is kept aside for inspection
    let q = w.path("nodes/n1/root/.ubackup-quarantine");
    let quarantined = walk_files(&q);
    println!("    quarantined: {quarantined:?}");
    assert_eq!(
        quarantined.len(),
        1,
        "the file that failed its checksum is quarantined: {quarantined:?}"
    );
    let qsum = ubackup_common::fsutil::blake3_file(&quarantined[0]).unwrap();
    assert_eq!(
        Some(qsum),
        ubackup_common::fsutil::blake3_file(&w.src_dir().join("rewritten.bin")).ok()
    );
    v.assert_ok(false);
    Ok(())
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. kill -9 mid-rsync, and between pull and ack (failpoints)
// ---------------------------------------------------------------------------

fn kill9_mid_rsync(_: &Opts) -> Outcome {
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

fn kill9_failpoints(_: &Opts) -> Outcome {
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

fn zombie(_: &Opts) -> Outcome {
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

fn poison(_: &Opts) -> Outcome {
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

fn hung_daemon(_: &Opts) -> Outcome {
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

// ---------------------------------------------------------------------------
// 8. disk full
// ---------------------------------------------------------------------------

/// A tmpfs mounted for one case, unmounted (by path) when dropped.
struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn disk_full(_: &Opts) -> Outcome {
    let mut w = World::new();
    let root = w.path("nodes/n1/root");
    std::fs::create_dir_all(&root).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&root)
        .stderr(std::process::Stdio::piped())
        .output();
    match st {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Err(format!("cannot run mount: {e}")),
    }
    let _mount = Tmpfs(root.clone());
    w.start_indexer();
    w.start_node(
        "n1",
        NodeSpec::new()
            .set("reserve_bytes", "65536")
            .set("rsync_bwlimit", "300")
            .set("retry", "3")
            .set("retry_backoff_ms", "500"),
    );
    let m = w.source("big.bin", 1_500_000, 11);
    w.producer().push(&w.lo, &m, Expect::Landed).unwrap();
    wait_until("transfer in progress", Duration::from_secs(20), || {
        w.tmp_bytes("n1") > 100_000
    });
    // fill the disk under the running transfer
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    tally::fault(1);
    w.wait_node_log("n1", "waiting for space", Duration::from_secs(30));
    assert!(
        files(&w.dest("n1")).is_empty(),
        "no partial file in the destination"
    );
    assert_eq!(w.inflight("n1"), 1, "not acked");
    assert!(
        rows_of(&w, &m).is_empty(),
        "no result while the disk is full"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        w.inflight("n1"),
        1,
        "still held, not given up, while waiting for space"
    );
    std::fs::remove_file(&filler).unwrap();
    let v = w.wait_quiet(quiet(60));
    let r = wait_row(&w, &m, Duration::from_secs(1));
    assert_eq!(r.succeed, 1, "{r:?}");
    let log = w.node_log("n1");
    let reason = log
        .lines()
        .find(|l| l.contains("pull attempt failed"))
        .unwrap_or("")
        .to_string();
    println!(
        "    attempts: {:?}; first failure: {}; {v}",
        r.attempts,
        reason
            .chars()
            .rev()
            .take(200)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    v.assert_ok(false);
    drop(_mount);
    Ok(())
}

// ---------------------------------------------------------------------------
// 5, 6. Redis kill -9 + restart on the same AOF; outages by SIGSTOP
// ---------------------------------------------------------------------------

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

fn redis_kill9(_: &Opts) -> Outcome {
    // everysec (the issue's setting), then always: with always, Redis
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

fn outages(_: &Opts) -> Outcome {
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

// ---------------------------------------------------------------------------
// 9. ES stand-in faults
// ---------------------------------------------------------------------------

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

fn es_statuses(_: &Opts) -> Outcome {
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

fn es_wire(_: &Opts) -> Outcome {
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

// ---------------------------------------------------------------------------
// 4. soak
// ---------------------------------------------------------------------------

fn soak_case(o: &Opts) -> Outcome {
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
