//! The shipped example config and scripts, run for real: a full, an
//! incremental on top of it, a forced full; and a full-only instance on its
//! own list.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const ROOT: &str = "/tmp/ubackup-demo";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn check_file(root: &Path, dir: &str, m: &Value) {
    let f = root
        .join("backup")
        .join(dir)
        .join(m["filename"].as_str().unwrap());
    let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    assert!(bytes.len() > 100, "a real archive");
    assert_eq!(m["size"], bytes.len() as u64);
    assert_eq!(
        m["checksum"],
        format!("blake3:{}", blake3::hash(&bytes).to_hex())
    );
}

#[test]
fn example_config_and_scripts_ship_real_backups() {
    let fx = Fx::new();
    let root = fx.path("demo");
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    for s in ["mysql_like_backup.sh", "redis_like_backup.sh"] {
        std::fs::copy(
            examples().join("scripts").join(s),
            root.join("scripts").join(s),
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(examples().join("client.conf"))
        .unwrap()
        .replace(ROOT, root.to_str().unwrap())
        .replace(
            "redis_port = 6379",
            &format!("redis_port = {}", fx.redis.port),
        );
    assert!(!text.contains(ROOT));
    let conf = root.join("client.conf");
    std::fs::write(&conf, text).unwrap();

    // run from an unrelated directory: the scripts take paths, not a cwd
    let run = |env: &[(&str, &str)]| {
        let (out, _) = run_bin(&conf, &[], env);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    run(&[]);
    run(&[]);
    run(&[("FORCE_FULL", "1")]);

    let mysql = fx.messages("uuzuback");
    assert_eq!(mysql.len(), 3);
    for m in &mysql {
        assert_eq!(
            (m["success"].clone(), m["instance"].clone()),
            (Value::Bool(true), Value::from(3306))
        );
        check_file(&root, "database_3306", m);
    }
    let (full1, incr, full2) = (&mysql[0], &mysql[1], &mysql[2]);
    assert!(
        full1["filename"]
            .as_str()
            .unwrap()
            .starts_with("mysql_full_"),
        "{full1}"
    );
    assert_eq!(full1["last_all_filename"], Value::Null);
    assert_eq!(full1["last_all_time"], 0);
    assert!(
        incr["filename"]
            .as_str()
            .unwrap()
            .starts_with("mysql_incr_"),
        "{incr}"
    );
    assert_eq!(incr["last_all_filename"], full1["filename"]);
    assert_eq!(incr["last_all_time"], full1["create_time"]);
    assert!(
        full2["filename"]
            .as_str()
            .unwrap()
            .starts_with("mysql_full_"),
        "FORCE_FULL=1: {full2}"
    );
    assert_ne!(full2["filename"], full1["filename"]);
    let last_all = std::fs::read_to_string(root.join("log/last_3306.log")).unwrap();
    assert_eq!(
        last_all,
        format!(
            "ok\n{}\n{}\n",
            full2["filename"].as_str().unwrap(),
            full2["create_time"]
        )
    );

    let redis = fx.messages("level1");
    assert_eq!(redis.len(), 3, "the full-only instance uses its own list");
    for m in &redis {
        assert_eq!(m["success"], true);
        assert_eq!(m["instance"], 6379);
        assert_eq!(m["last_all_filename"], Value::Null);
        assert!(m["filename"].as_str().unwrap().starts_with("redis_6379_"));
        check_file(&root, "redisbase_6379", m);
    }
}

#[test]
fn example_scripts_report_failures_the_ubackup_way() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("back.log");
    // a data dir that cannot be created
    std::fs::write(d.path().join("blocker"), "").unwrap();
    let st = std::process::Command::new("sh")
        .arg(examples().join("scripts/redis_like_backup.sh"))
        .arg(d.path().join("blocker/sub/dump.rdb"))
        .arg(d.path().join("back"))
        .arg(&log)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("wrong\ncannot create"), "{text}");
}
