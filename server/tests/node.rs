//! The pull node as a process: real redis-server, real rsync daemon, the
//! real `ubackup-server` binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use redis::Commands;
use serde_json::{json, Value};
use ubackup_testkit::wait_until;

const ORIGINAL_RESULT_KEYS: &[&str] = &[
    "interval", "server_id", "game_id", "op_id", "game_server_ip", "instance", "back_server_ip", "file_path",
    "filename", "create_time", "rsync_time", "size", "last_all_filename", "last_all_time", "succeed", "log", "type",
];

fn by_filename<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results.iter().find(|r| r["filename"] == name).unwrap_or_else(|| panic!("no result for {name}: {results:#?}"))
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
    assert_eq!(std::fs::read(c.dest().join("db_3306_full.xb")).unwrap(), std::fs::read(&full).unwrap());
    assert_eq!(std::fs::read(c.dest().join("inc 1 #x 备份.xb")).unwrap(), std::fs::read(&inc).unwrap());

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
    assert!(rsync_time > 1_700_000_000_000, "rsync_time in ms: {rsync_time}");
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
    assert_eq!(r3["log"], "backup script exited 1: mysqldump: Got error 2002");
    assert_eq!(r3["file_path"], Value::Null);
    for k in ORIGINAL_RESULT_KEYS {
        assert!(r3.get(*k).is_some(), "failure result lacks `{k}`: {r3}");
    }

    assert_eq!(c.llen(&c.lo), 0);
    assert_eq!(c.inflight("n1"), 0);
    assert!(c.tmp_leftovers("n1").is_empty(), "{:?}", c.tmp_leftovers("n1"));
    let st = c.state("n1");
    assert_eq!(st["kind"], "node");
    assert_eq!(st["paused"], "0");
    assert!(st["disk_total"].parse::<u64>().unwrap() > 0);
    drop(node);
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
