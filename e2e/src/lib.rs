//! Helpers for the end-to-end test (`tests/pipeline.rs`) and the
//! deployment-file tests (`tests/deploy.rs`).
//!
//! Layout: [`repo_file`] reads the shipped files; everything that starts
//! processes or writes their configs is the workspace's one cluster builder,
//! `ubackup_testkit::cluster`, re-exported here under the names these tests
//! use ([`render_rsyncd`] turns a shipped rsyncd.conf into one a test can
//! run, [`ini_set`] edits one key of an INI text, [`start_listening`] starts
//! a daemon from such a file on a free loopback port, owned by PID).

use std::path::{Path, PathBuf};

pub use ubackup_testkit::cluster::{
    current_ids, free_port_on, ini_del, ini_set, localhost, port_open, render_rsyncd, run_bin,
    start_listening, start_rsyncd, Daemon,
};

/// The repository root (the workspace holding `deploy/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
        .to_path_buf()
}

/// A shipped file's text, by its path in the repository.
pub fn repo_file(rel: &str) -> String {
    let p = repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
