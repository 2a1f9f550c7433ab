//! Every failure kind of the original becomes a message with
//! `success: false` and a `log` an operator can act on; plus timeouts and
//! the per-instance lock.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use ubackup_testkit::wait_until;

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn each_failure_kind_is_a_message_with_a_reason() {
    let fx = Fx::new();
    let log = |n: &str| q(&fx.back_log(n));
    let dir = |n: &str| q(&fx.back_dir(n));
    let insts = vec![
        Inst::new("ok", 1, fx.ok_script("ok", "good.bin", 100)),
        Inst::new(
            "exit",
            2,
            "echo 'mysqldump: Access denied for user' >&2; exit 2",
        ),
        Inst::new("nolog", 3, "true"),
        Inst::new("empty", 4, format!(": > {}", log("empty"))),
        Inst::new(
            "illegal",
            5,
            format!("printf 'done\\nx.bin\\n' > {}", log("illegal")),
        ),
        Inst::new("noname", 6, format!("printf 'ok\\n' > {}", log("noname"))),
        Inst::new(
            "wrong",
            7,
            format!(
                "printf 'wrong\\nbinlog purge failed: disk full\\n' > {}",
                log("wrong")
            ),
        ),
        Inst::new(
            "lastfailed",
            8,
            format!("printf 'ok\\nincr.xb\\n' > {}", log("lastfailed")),
        )
        .full_incremental(),
        Inst::new(
            "nofull",
            9,
            format!("printf 'ok\\nincr.xb\\n' > {}", log("nofull")),
        )
        .full_incremental(),
        Inst::new(
            "nofile",
            10,
            format!("printf 'ok\\nvanished.bin\\n' > {}", log("nofile")),
        ),
        Inst::new(
            "traversal",
            11,
            format!("printf 'ok\\n../../etc/passwd\\n' > {}", log("traversal")),
        ),
        Inst::new(
            "isdir",
            12,
            format!(
                "mkdir -p {}/sub && printf 'ok\\nsub\\n' > {}",
                dir("isdir"),
                log("isdir")
            ),
        ),
        Inst::new(
            "symlink",
            13,
            format!(
                "mkdir -p {d} && ln -sf /etc/hostname {d}/link && printf 'ok\\nlink\\n' > {}",
                log("symlink"),
                d = dir("symlink")
            ),
        ),
        Inst::new(
            "option",
            14,
            format!("printf 'ok\\n--rsh=sh\\n' > {}", log("option")),
        ),
    ];
    std::fs::create_dir_all(fx.path("log")).unwrap();
    std::fs::write(
        fx.last_all_log("lastfailed"),
        "wrong\nxtrabackup: full backup failed\n",
    )
    .unwrap();
    let conf = fx.config(&[], &insts);
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 1, "some failed, all queued: {}", stderr(&out));
    let msgs = fx.messages(&fx.queue);
    assert_eq!(
        msgs.len(),
        insts.len(),
        "one message per instance, failures included"
    );

    let ok = by_instance(&msgs, 1);
    assert_eq!(
        (ok["success"].clone(), ok["log"].clone()),
        (Value::Bool(true), Value::from("ok"))
    );

    let expect: &[(i64, &[&str])] = &[
        (2, &["execute backup script error: exit code 2; output: mysqldump: Access denied for user"]),
        (3, &["can not find log file: back_log", "nolog.log", "No such file"]),
        (4, &["can not parser log: back_log", "is empty"]),
        (5, &["log format illegal:", "line 1 is `done`; expected `ok` or `wrong`"]),
        (6, &["can not parser log:", "line 2 (the file name) is missing"]),
        (7, &["binlog purge failed: disk full"]),
        (8, &["last all back faile: last_all_log", "says the last full backup failed: xtrabackup: full backup failed"]),
        (9, &["last all back faile: last_all_log", "a full backup must run first"]),
        (10, &["get file size faile:", "vanished.bin", "No such file"]),
        (11, &["illegal file name:", "`../../etc/passwd` contains `..`"]),
        (12, &["get file size faile:", "is a directory; expected a regular file"]),
        (13, &["get file size faile:", "is a symlink"]),
        (14, &["illegal file name:", "option injection"]),
    ];
    for (n, needles) in expect {
        let m = by_instance(&msgs, *n);
        assert_eq!(m["success"], false, "{m}");
        let log = m["log"]
            .as_str()
            .unwrap_or_else(|| panic!("log must be a string: {m}"));
        for needle in *needles {
            assert!(
                log.contains(needle),
                "instance {n}: `{needle}` not in `{log}`"
            );
        }
        assert_eq!(m["size"], 0, "{m}");
        assert!(m["checksum"].is_null());
    }
    // unsafe names never reach a message; a missing file keeps its name
    assert_eq!(by_instance(&msgs, 11)["filename"], Value::Null);
    assert_eq!(by_instance(&msgs, 14)["filename"], Value::Null);
    assert_eq!(by_instance(&msgs, 10)["filename"], "vanished.bin");
    // the failures are in the error log, each with its instance
    let err_log = std::fs::read_to_string(fx.path("log/client.error")).unwrap();
    for section in ["exit", "nolog", "wrong", "traversal"] {
        assert!(err_log.lines().any(|l| l.contains(&format!("section={section}}}")) && l.contains("backup failed")), "{section}: {err_log}");
    }
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let fx = Fx::new();
    let pidfile = fx.path("grandchild.pid");
    // The shell starts a background grandchild, records it, then waits.
    let script = format!("sleep 300 & echo $! > {}; sleep 300", q(&pidfile));
    let conf = fx.config(&[], &[Inst::new("slow", 1, script).with("timeout = 1")]);
    let (out, took) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    eprintln!("timeout = 1 run took {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let m = &fx.messages(&fx.queue)[0];
    assert_eq!(m["success"], false);
    let log = m["log"].as_str().unwrap();
    assert!(
        log.starts_with("execute backup script error: timed out after 1 s (timeout = 1)"),
        "{log}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        "the background grandchild is dead",
        Duration::from_secs(5),
        || pid_dead(pid),
    );
}

#[test]
fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    let fx = Fx::new();
    let pidfile = fx.path("stubborn.pid");
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {}; wait; wait",
        q(&pidfile)
    );
    let conf = fx.config(&[], &[Inst::new("stubborn", 1, script).with("timeout = 1")]);
    let (out, took) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    eprintln!("timeout = 1 with SIGTERM ignored took {took:?}");
    // 1 s timeout + 5 s grace, then SIGKILL
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(12),
        "took {took:?}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        "the stubborn grandchild is dead",
        Duration::from_secs(5),
        || pid_dead(pid),
    );
    assert!(fx.messages(&fx.queue)[0]["log"]
        .as_str()
        .unwrap()
        .contains("timed out"));
}

#[test]
fn lock_prevents_a_second_run_of_the_same_instance() {
    let fx = Fx::new();
    let started = fx.path("started");
    let release = fx.path("release");
    let runs = fx.path("runs");
    let script = format!(
        "echo run >> {runs}; touch {started}; while [ ! -f {release} ]; do sleep 0.05; done; {ok}",
        runs = q(&runs),
        started = q(&started),
        release = q(&release),
        ok = fx.ok_script("db", "db.bin", 10)
    );
    let conf = fx.config(&[], &[Inst::new("db", 1, script)]);
    let mut first = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the first run's script started",
        Duration::from_secs(10),
        || started.exists(),
    );

    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 1);
    let log = msgs[0]["log"].as_str().unwrap();
    assert_eq!(msgs[0]["success"], false);
    assert!(
        log.starts_with("previous backup run still running: lock"),
        "{log}"
    );
    assert!(
        log.contains(&format!("held by pid {}", first.id())),
        "{log}"
    );

    std::fs::write(&release, "").unwrap();
    let st = first.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        1,
        "the script ran once"
    );
    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["success"], true);

    // released: the next run goes ahead
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn sigterm_kills_the_script_and_still_sends_a_failure() {
    let fx = Fx::new();
    let started = fx.path("started");
    let pidfile = fx.path("child.pid");
    let script = format!(
        "sleep 300 & echo $! > {}; touch {}; wait",
        q(&pidfile),
        q(&started)
    );
    let conf = fx.config(&[], &[Inst::new("db", 1, script)]);
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the script started", Duration::from_secs(10), || {
        started.exists()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1));
    let m = &fx.messages(&fx.queue)[0];
    assert_eq!(m["success"], false);
    assert!(m["log"].as_str().unwrap().contains("interrupted"), "{m}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the script's child is dead", Duration::from_secs(5), || {
        pid_dead(pid)
    });
}
