//! The config files an operator has, and what the binary says about them.

use std::path::Path;
use std::process::Command;

use ubackup_server::ServerConfig;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ubackup-server"))
}

#[test]
fn the_original_server_config_parses_unchanged() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/original-server.conf");
    let c = ServerConfig::load(&path).unwrap();
    assert_eq!(c.work_thread, 4);
    assert_eq!(c.rsync_bwlimit, 62000);
    assert_eq!(c.server_root_path, Path::new("/backup/uuzubackup/"));
    assert_eq!(c.reserve_bytes, 1000 * 1024 * 1024 * 1024);
    assert!(c.interval.is_zero());
    assert_eq!(c.queues, ["level1", "uuzuback_f"]);
    assert_eq!(c.myip, "127.0.0.1");
    assert_eq!(c.retry, 3);
    assert_eq!(c.message_queue, "message");
    assert!(
        c.message_redis.same_server(&c.redis),
        "key=value without spaces, same Redis"
    );
    assert_eq!((c.mysqlkeeptime, c.rediskeeptime), (Some(15), Some(15)));
    assert_eq!(c.node_id, "5");
    assert_eq!(c.log.as_deref(), Some(Path::new("/var/log/uuzuback.log")));
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
}

#[test]
fn the_shipped_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/server.conf");
    let c = ServerConfig::load(&path).unwrap();
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    assert_eq!(c.node_id, "5");
    assert!(c.source_allowed("10.10.3.4".parse().unwrap()));
    assert!(!c.source_allowed("10.11.0.1".parse().unwrap()));
    assert_eq!(c.queue_wait.as_millis(), 300);
    assert_eq!(c.quarantine_days, 30);
    let out = bin().arg("-c").arg(&path).arg("--check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_error_exits_2_naming_file_section_key_and_what_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("server.conf");
    std::fs::write(&conf, "[global]\nserver_root_path=/b\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.0.0.1\nwork_thread = lots  # oops\n").unwrap();
    let out = bin().arg("-c").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6: [global] work_thread: `lots` is not valid; expected",
            conf.display()
        )),
        "{err}"
    );
    let out = bin()
        .arg("-c")
        .arg(dir.path().join("missing.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_signals_and_exit_codes() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--config") && help.contains("SIGHUP") && help.contains("2 config error"),
        "{help}"
    );
}

#[test]
fn an_unusable_storage_root_is_a_fatal_runtime_error_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("server.conf");
    // /proc does not allow creating directories: the node cannot prepare its temp area
    std::fs::write(
        &conf,
        "[global]\nserver_root_path=/proc/ubackup-test-root\nredis_host=127.0.0.1\nredis_port=1\nredis_queue=q\nmyip=10.0.0.1\n",
    )
    .unwrap();
    let out = bin().arg("-c").arg(&conf).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot prepare /proc/ubackup-test-root"));
}
