//! The shipped example config parses, and `--check` accepts it.

use std::path::PathBuf;
use std::time::Duration;

use ubackup_catalog::es::EsAuth;
use ubackup_indexer::IndexerConfig;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/indexer.conf")
}

#[test]
fn the_example_config_parses_with_the_documented_values() {
    let c = IndexerConfig::load(&example()).unwrap();
    assert_eq!(c.message_queue, "message");
    assert_eq!(c.redis.to_string(), "10.0.0.20:6379 db 0");
    assert_eq!(
        c.catalog.as_deref(),
        Some(std::path::Path::new("/var/lib/ubackup/catalog.db"))
    );
    let es = c.es.as_ref().expect("es configured");
    assert_eq!(es.urls.len(), 2);
    assert_eq!(es.index, "uuzubackup");
    assert!(es.auth.is_none() || matches!(es.auth, Some(EsAuth::Basic { .. })));
    assert_eq!(es.timeout, Duration::from_secs(60));
    assert_eq!(
        (c.batch_size, c.batch_wait),
        (500, Duration::from_millis(1000))
    );
    assert_eq!(
        (c.overdue_db, c.overdue_grace),
        (9, Duration::from_secs(3000))
    );
    assert_eq!(c.game_name(31), "大话西游");
    assert_eq!(c.game_name(32), "梦幻西游");
    assert_eq!(c.game_name(7), "unknown");
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    assert_eq!(
        c.log.as_deref(),
        Some(std::path::Path::new("/var/log/ubackup/indexer.log"))
    );
}

#[test]
fn check_flag_accepts_the_example() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ubackup-indexer"))
        .arg("--check")
        .arg("-c")
        .arg(example())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
