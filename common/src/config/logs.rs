//! `log` and `error_log`: the files a binary logs to (stderr when absent).

use std::path::PathBuf;

use super::SectionReader;

pub const KEYS: &[&str] = &["log", "error_log"];

/// (`log`, `error_log`).
pub fn read(r: &SectionReader) -> (Option<PathBuf>, Option<PathBuf>) {
    (r.opt_path(KEYS[0]), r.opt_path(KEYS[1]))
}
