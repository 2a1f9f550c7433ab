//! The real binary against a real redis-server: concurrency, the message
//! format, list selection, `check`, exit codes.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use ubackup_common::BackupMessage;

#[test]
fn twenty_instances_run_concurrently() {
    let fx = Fx::new();
    let insts: Vec<Inst> = (0..20)
        .map(|i| {
            let name = format!("db{i}");
            let script = format!(
                "sleep 1; {}",
                fx.ok_script(&name, &format!("db{i}.bin"), 1000 + i)
            );
            Inst::new(&name, 3300 + i as i64, script)
        })
        .collect();
    let conf = fx.config(&[], &insts);
    let (out, took) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 20);
    for i in 0..20 {
        let m = by_instance(&msgs, 3300 + i);
        assert_eq!(m["success"], true);
        assert_eq!(m["size"], 1000 + i);
    }
    eprintln!("20 instances x 1 s script: wall time {took:?}");
    // Sequential would be 20 s, the original's 2 s stagger 39 s.
    assert!(
        took < Duration::from_secs(5),
        "20 one-second scripts took {took:?}"
    );
}

#[test]
fn message_fields_and_json_types_match_the_original() {
    let fx = Fx::new();
    let name = "mysql3306";
    let al = fx.last_all_log(name);
    let d = fx.back_dir(name);
    let bl = fx.back_log(name);
    // full when the FULL flag file exists, else incremental
    let script = format!(
        "mkdir -p '{d}'; if [ -f '{d}/FULL' ]; then n=full_$(date +%s%N).xb; head -c 5000 /dev/urandom > '{d}'/$n; printf 'ok\\n%s\\n' $n > '{al}'; \
         else n=incr_$(date +%s%N).xb; head -c 700 /dev/urandom > '{d}'/$n; fi; printf 'ok\\n%s\\n' $n > '{bl}'",
        d = d.display(),
        al = al.display(),
        bl = bl.display()
    );
    let conf = fx.config(
        &["rsync_port = 8873"],
        &[Inst::new(name, 3306, script).full_incremental()],
    );
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("FULL"), "").unwrap();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::remove_file(d.join("FULL")).unwrap();
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let msgs = fx.messages(&fx.queue);
    assert_eq!(msgs.len(), 2);
    let (full, incr) = (&msgs[0], &msgs[1]);
    let original = ubackup_testkit::fixtures::ORIGINAL_MESSAGE_FIELDS;
    assert_ne!(
        full["run_id"], incr["run_id"],
        "each run has its own run_id"
    );
    for m in [full, incr] {
        let obj = m.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        let mut want: Vec<&str> = original
            .iter()
            .copied()
            .chain(["checksum", "rsync_port", "run_id"])
            .collect();
        want.sort();
        assert_eq!(
            keys, want,
            "only the original's fields plus the three new optional ones"
        );
        for k in [
            "size",
            "create_time",
            "server_id",
            "game_id",
            "op_id",
            "instance",
            "last_all_time",
            "interval",
            "rsync_port",
        ] {
            assert!(m[k].is_i64(), "{k} must be a JSON integer: {m}");
        }
        for k in [
            "filename",
            "log",
            "game_server_ip",
            "back_type",
            "rsync_model",
            "checksum",
            "run_id",
        ] {
            assert!(m[k].is_string(), "{k} must be a string: {m}");
        }
        assert!(m["success"].is_boolean());
        assert_eq!(m["server_id"], 111111);
        assert_eq!(m["game_id"], 31);
        assert_eq!(m["op_id"], 1);
        assert_eq!(m["interval"], 3600);
        assert_eq!(m["game_server_ip"], "10.0.0.5");
        assert_eq!(m["back_type"], "mysql");
        assert_eq!(m["instance"], 3306);
        assert_eq!(m["rsync_model"], "backup/mysql3306");
        assert_eq!(m["rsync_port"], 8873);
        assert_eq!(m["log"], "ok");
        assert_eq!(m["success"], true);
        // size and checksum are the file's
        let f = d.join(m["filename"].as_str().unwrap());
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(m["size"], bytes.len() as u64);
        assert_eq!(
            m["checksum"],
            format!("blake3:{}", blake3::hash(&bytes).to_hex())
        );
        // and it is what our own server parses
        let parsed: BackupMessage = serde_json::from_value(m.clone()).unwrap();
        assert_eq!(parsed.rsync_port, Some(8873));
    }
    // the full: no last_all_*, and its time appended to last_all_log
    assert!(full["filename"].as_str().unwrap().starts_with("full_"));
    assert_eq!(full["last_all_filename"], Value::Null);
    assert_eq!(full["last_all_time"], 0);
    let lines: Vec<String> = std::fs::read_to_string(&al)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "ok".to_string(),
            full["filename"].as_str().unwrap().to_string(),
            full["create_time"].to_string()
        ]
    );
    // the incremental points at it
    assert!(incr["filename"].as_str().unwrap().starts_with("incr_"));
    assert_eq!(incr["last_all_filename"], full["filename"]);
    assert_eq!(incr["last_all_time"], full["create_time"]);
    assert!(incr["create_time"].as_i64().unwrap() >= full["create_time"].as_i64().unwrap());
}

#[test]
fn q_selects_the_list_and_instances_may_have_their_own() {
    let fx = Fx::new();
    let own = format!("{}-own", fx.queue);
    let conf = fx.config(
        &[],
        &[
            Inst::new("a", 1, fx.ok_script("a", "a.bin", 10)),
            Inst::new("b", 2, fx.ok_script("b", "b.bin", 10)).with(&format!("redis_queue = {own}")),
        ],
    );
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fx.messages(&fx.queue).len(), 1);
    assert_eq!(fx.messages(&fx.queue)[0]["instance"], 1);
    assert_eq!(fx.messages(&own)[0]["instance"], 2);

    // -q overrides both, before or after the subcommand
    let high = format!("{}-level1", fx.queue);
    let (out, _) = fx.run(&conf, &["-q", &high]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (out, _) = fx.run(&conf, &["run", "-q", &high, "--only", "b"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got: Vec<i64> = fx
        .messages(&high)
        .iter()
        .map(|m| m["instance"].as_i64().unwrap())
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [1, 2, 2],
        "two from the full run, one from --only b"
    );
    assert_eq!(
        fx.messages(&fx.queue).len(),
        1,
        "nothing more on redis_queue"
    );
    assert_eq!(
        fx.messages(&own).len(),
        1,
        "nothing more on the instance's own list"
    );
}

#[test]
fn check_prints_instances_and_config_errors_exit_2() {
    let fx = Fx::new();
    let conf = fx.config(
        &[],
        &[
            Inst::new("a", 1, "true").with("timeout = 30"),
            Inst::new("b", 2, "true"),
        ],
    );
    let (out, _) = fx.run(&conf, &["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("instances to run (2):"), "{text}");
    assert!(
        text.contains(&format!("[a] mysql 1 -> list {}", fx.queue)),
        "{text}"
    );
    assert!(text.contains("timeout 30 s"), "{text}");
    let (out, _) = fx.run(&conf, &["check", "--only", "b"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("instances to run (1):"));
    assert!(fx.messages(&fx.queue).is_empty(), "check runs nothing");

    let (out, _) = fx.run(&conf, &["--only", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out)
            .contains("--only nope: no such instance section; the instance sections are: a, b"),
        "{}",
        stderr(&out)
    );

    let bad = fx.path("bad.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("instance = 2", "instance = two");
    std::fs::write(&bad, text).unwrap();
    for args in [&["check"][..], &[][..]] {
        let (out, _) = fx.run(&bad, args);
        assert_eq!(code(&out), 2, "{args:?}");
        let e = stderr(&out);
        assert!(e.contains(&format!("{}:", bad.display())), "{e}");
        assert!(
            e.contains("[b] instance: `two` is not valid; expected an integer"),
            "{e}"
        );
    }
    let (out, _) = fx.run(&fx.path("missing.conf"), &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read config file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_exit_codes() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "--queue",
        "--only",
        "check",
        "Exit codes:",
        "3  Redis unreachable",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from --help:\n{text}"
        );
    }
}

#[test]
fn logs_name_the_instance_and_the_step() {
    let fx = Fx::new();
    let conf = fx.config(&[], &[Inst::new("alpha", 1, "exit 7")]);
    let (out, _) = fx.run(&conf, &[]);
    assert_eq!(code(&out), 1);
    let err_log = std::fs::read_to_string(fx.path("log/client.error")).unwrap();
    let line = err_log
        .lines()
        .find(|l| l.contains("backup failed"))
        .unwrap_or_else(|| panic!("{err_log}"));
    assert!(
        line.contains("section=alpha")
            && line.contains("step=\"script\"")
            && line.contains("exit code 7"),
        "{line}"
    );
    let log = std::fs::read_to_string(fx.path("log/client.log")).unwrap();
    assert!(log.contains("run finished: 0 ok, 1 failed"), "{log}");
}
