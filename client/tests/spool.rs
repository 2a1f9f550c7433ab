//! Redis down: messages go to the spool, the next run sends them oldest
//! first, exactly once, also across a crash between push and unlink.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use redis::Commands;

fn conf(fx: &Fx) -> std::path::PathBuf {
    // `date +%s%N` makes every file name unique, so each message is
    // identifiable by it.
    let script = |n: &str| {
        format!(
            "n={n}_$(date +%s%N).bin; mkdir -p '{d}' && head -c 300 /dev/urandom > '{d}'/$n && printf 'ok\\n%s\\n' $n > '{l}'",
            d = fx.back_dir(n).display(),
            l = fx.back_log(n).display()
        )
    };
    fx.config(
        &[],
        &[
            Inst::new("a", 1, script("a")),
            Inst::new("b", 2, script("b")),
        ],
    )
}

fn filenames(msgs: &[serde_json::Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["filename"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn spool_survives_redis_down_and_drains_exactly_once() {
    let mut fx = Fx::new();
    let conf = conf(&fx);
    fx.redis.kill9();

    // two runs while Redis is down: four messages spooled, exit 3
    for run in 1..=2 {
        let (out, _) = fx.run(&conf, &[]);
        assert_eq!(code(&out), 3, "run {run}: {}", stderr(&out));
        assert_eq!(fx.spooled().len(), 2 * run);
    }
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fx.spooled()[0]).unwrap()).unwrap();
    assert_eq!(env["queue"], fx.queue.as_str());
    assert!(
        env["reason"].as_str().unwrap().contains("unreachable"),
        "{env}"
    );
    let spooled_names: Vec<String> = fx
        .spooled()
        .iter()
        .map(|p| {
            let env: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            let msg: serde_json::Value =
                serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
            msg["filename"].as_str().unwrap().to_string()
        })
        .collect();

    fx.redis.restart().unwrap();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(fx.spooled().is_empty(), "spool drained");
    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 6, "4 spooled + 2 new");
    let names = filenames(&msgs);
    assert_eq!(
        &names[..4],
        &spooled_names[..],
        "spooled messages first, oldest first"
    );
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        6,
        "no duplicates: {names:?}"
    );
    let times: Vec<i64> = msgs
        .iter()
        .map(|m| m["create_time"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );

    // another run sends only its own two
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fx.messages(&fx.queue).len(), 8);
}

#[test]
fn a_resend_after_a_crash_between_push_and_unlink_is_not_queued_twice() {
    let mut fx = Fx::new();
    let conf = conf(&fx);
    fx.redis.kill9();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let files = fx.spooled();
    assert_eq!(files.len(), 2);
    // keep copies: after the drain they stand for files whose unlink was
    // lost to a crash right after their LPUSH succeeded
    let copies: Vec<(std::path::PathBuf, Vec<u8>)> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();

    fx.redis.restart().unwrap();
    let (out, _) = fx.run(&conf, &["--only", "a"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fx.messages(&fx.queue).len(), 3);

    for (p, bytes) in &copies {
        std::fs::write(p, bytes).unwrap();
    }
    let (out, _) = fx.run(&conf, &["--only", "a"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("had already been queued"),
        "{}",
        stderr(&out)
    );
    assert!(fx.spooled().is_empty(), "the resent files are removed");
    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 4, "only the new message of this run was added");
    let names = filenames(&msgs);
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        4,
        "no duplicates: {names:?}"
    );
    // the markers live under the config's key_prefix and expire
    let mut c = fx.redis.conn();
    let markers: Vec<String> = c.keys(format!("{}sent:*", fx.prefix)).unwrap();
    assert_eq!(markers.len(), 4);
    let ttl: i64 = c.ttl(&markers[0]).unwrap();
    assert!(ttl > 0 && ttl <= 172_800, "ttl {ttl}");
}

#[test]
fn unreadable_spool_files_are_moved_aside_not_lost_or_blocking() {
    let fx = Fx::new();
    let conf = conf(&fx);
    let outbox = fx.spool_dir().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(
        outbox.join("0000000000001-00000000-garbage.json"),
        "{truncated",
    )
    .unwrap();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fx.messages(&fx.queue).len(), 2);
    assert!(fx
        .spool_dir()
        .join("bad/0000000000001-00000000-garbage.json")
        .exists());
    assert!(fx
        .spool_dir()
        .join("bad/0000000000001-00000000-garbage.json.why")
        .exists());
}

#[test]
fn a_spool_dir_that_cannot_be_created_is_a_config_error() {
    let fx = Fx::new();
    let blocker = fx.path("file");
    std::fs::write(&blocker, "").unwrap();
    let conf = fx.config(&[], &[Inst::new("a", 1, "true")]);
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &format!("spool_dir = {}", fx.spool_dir().display()),
        &format!("spool_dir = {}/spool", blocker.display()),
    );
    std::fs::write(&conf, text).unwrap();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("[global] spool_dir: cannot create"),
        "{}",
        stderr(&out)
    );
}

/// The case the marker exists for: the push is sent, Redis stalls (here
/// SIGSTOP), the client gives up waiting and spools the message, and Redis
/// then executes the push after all. The next run's resend must find the
/// marker instead of queueing a second copy.
#[test]
fn an_unanswered_push_that_landed_later_is_not_queued_twice() {
    let fx = Fx::new();
    let flag = fx.path("go");
    let slow = format!(
        "while [ ! -f '{}' ]; do sleep 0.05; done; {}",
        flag.display(),
        fx.ok_script("slow", "slow.bin", 10)
    );
    let conf = fx.config(
        &[],
        &[
            Inst::new("fast", 1, fx.ok_script("fast", "fast.bin", 10)),
            Inst::new("slow", 2, slow),
        ],
    );
    let child = std::process::Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the client is connected once the fast instance's message is queued
    ubackup_testkit::wait_until(
        "the fast message is queued",
        std::time::Duration::from_secs(10),
        || fx.messages(&fx.queue).len() == 1,
    );
    let redis_pid = nix::unistd::Pid::from_raw(fx.redis.pid().unwrap() as i32);
    nix::sys::signal::kill(redis_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::fs::write(&flag, "").unwrap();
    let out = child.wait_with_output().unwrap();
    nix::sys::signal::kill(redis_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(
        code(&out),
        3,
        "the slow push timed out and was spooled: {}",
        stderr(&out)
    );
    assert_eq!(fx.spooled().len(), 1);

    // Redis may or may not have executed the stalled push by now; either
    // way the resend must leave exactly one copy.
    let landed = fx.messages(&fx.queue).len() == 2;
    eprintln!("stalled push executed after SIGCONT: {landed}");
    let (out, _) = fx.run(&conf, &["--only", "fast"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    if landed {
        assert!(
            stderr(&out).contains("had already been queued"),
            "{}",
            stderr(&out)
        );
    }
    let slow_copies = fx
        .messages(&fx.queue)
        .iter()
        .filter(|m| m["instance"] == 2)
        .count();
    assert_eq!(slow_copies, 1, "exactly one copy of the stalled message");
    assert!(fx.spooled().is_empty());
}

/// Redis through Sentinel, and no sentinel answers: the same as Redis
/// down (spooled, exit 3), with a reason that says what was tried.
#[test]
fn no_sentinel_reachable_spools_like_redis_down() {
    let fx = Fx::new();
    let conf = conf(&fx);
    let text = std::fs::read_to_string(&conf).unwrap();
    let mut out = String::new();
    for l in text.lines() {
        if l.starts_with("redis_host") || l.starts_with("redis_port") {
            continue;
        }
        out.push_str(l);
        out.push('\n');
        if l == "[global]" {
            out.push_str(&format!(
                "redis_sentinels = 127.0.0.1:{},127.0.0.1:{}\nredis_master_name = ubackup\n",
                ubackup_testkit::free_port(),
                ubackup_testkit::free_port()
            ));
        }
    }
    assert!(out.contains("redis_sentinels"), "{out}");
    std::fs::write(&conf, out).unwrap();
    let (run, _) = fx.run(&conf, &[]);
    assert_eq!(code(&run), 3, "{}", stderr(&run));
    assert_eq!(fx.spooled().len(), 2);
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fx.spooled()[0]).unwrap()).unwrap();
    assert!(
        env["reason"]
            .as_str()
            .unwrap()
            .contains("no sentinel named a reachable master"),
        "{env}"
    );
}
