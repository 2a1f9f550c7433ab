//! The node's drain deadline as the deployment checks (e2e/tests/deploy.rs)
//! compute it without linking the node: `drain_secs` read from the file,
//! `ubackup_common::deadlines::SERVER_DRAIN_DEFAULT` when it is absent.
//! This is where the two are held to the node's own config reader.

use std::path::Path;
use std::time::Duration;

use ubackup_common::deadlines::SERVER_DRAIN_DEFAULT;
use ubackup_common::{IniDoc, SectionReader};
use ubackup_server::ServerConfig;

#[test]
fn the_drain_the_deploy_checks_compute_is_the_nodes() {
    let minimal =
        "[global]\nserver_root_path=/b/\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.9.9.9\n";
    let cfg = ServerConfig::parse(Path::new("/t.conf"), minimal).unwrap();
    assert_eq!(cfg.drain, SERVER_DRAIN_DEFAULT);

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/server.conf");
    let text = std::fs::read_to_string(&file).unwrap();
    let example = ServerConfig::parse(&file, &text).unwrap();
    let doc = IniDoc::parse(&file, &text).unwrap();
    let read: f64 = SectionReader::required(&doc, "global")
        .and_then(|g| {
            g.parse_or(
                "drain_secs",
                "a number of seconds",
                SERVER_DRAIN_DEFAULT.as_secs_f64(),
            )
        })
        .unwrap();
    assert_eq!(example.drain, Duration::from_secs_f64(read));
}
