//! Property tests of the indexer's result parser (issue 8, item 14):
//! whatever bytes a result holds, `parse_result` never panics and every
//! rejection carries a reason. (The node's intake has the same kind of
//! test in server/tests/props.rs.)
//!
//! cargo-fuzz needs a nightly toolchain, which cannot be installed on the
//! build machines (no downloads besides the package registries), so these
//! proptest strategies are the fuzzing.

use proptest::prelude::*;
use serde_json::json;
use ubackup_testkit::props::{any_json, FIELDS};

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The indexer's result parser: never panics, rejections have reasons.
    #[test]
    fn result_parser_never_panics(s in "\\PC{0,200}", field in prop::sample::select(FIELDS), v in any_json()) {
        let cfg = indexer_cfg();
        if let Err(reason) = ubackup_indexer::indexer::parse_result(&s, &cfg) {
            prop_assert!(!reason.trim().is_empty());
        }
        let mut r = json!({"interval": 3600, "server_id": 7, "game_id": 1, "op_id": 1, "game_server_ip": "10.1.2.3",
            "instance": 3306, "back_server_ip": "10.9.9.9", "file_path": "/b/", "filename": "x", "create_time": 1,
            "rsync_time": 1, "size": 1, "last_all_filename": "None", "last_all_time": 0, "succeed": 1, "log": "ok", "type": "mysql"});
        r[field] = v;
        if let Err(reason) = ubackup_indexer::indexer::parse_result(&r.to_string(), &cfg) {
            prop_assert!(!reason.trim().is_empty());
        }
    }
}

fn indexer_cfg() -> ubackup_indexer::IndexerConfig {
    use std::sync::OnceLock;
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let p = dir.path().join("indexer.conf");
    std::fs::write(&p, "[global]\nredis_host = 127.0.0.1\nmessage_queue = message\ncatalog = off\nes_urls = http://127.0.0.1:9\n").unwrap();
    ubackup_indexer::IndexerConfig::load(&p).unwrap()
}
