//! Bad inputs (cases 10-13): path and injection attempts in messages, a
//! malicious symlink, a wrong rsync password, a source that changes
//! between its message and the pull.

use std::time::Duration;

use serde_json::Value;
use ubackup_faults::ledger::{next_create_time, Expect, MsgSpec, Producer};
use ubackup_faults::sig;
use ubackup_faults::world::WorldOpts;
use ubackup_faults::{tally, NodeSpec, World};

use crate::helpers::{files, wait_row};
use crate::{quiet, Opts, Outcome};

pub(crate) fn bad_inputs(_: &Opts) -> Outcome {
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

pub(crate) fn malicious_symlink(_: &Opts) -> Outcome {
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

pub(crate) fn wrong_password(_: &Opts) -> Outcome {
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

pub(crate) fn source_changed(_: &Opts) -> Outcome {
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
