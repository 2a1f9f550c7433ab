//! The client's integration tests, one binary: each runs the real
//! `ubackup-client` against its own redis-server and rsync daemon.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- examples::`.

mod common;
mod examples;
mod failures;
mod restore;
mod restore_bench;
mod run;
mod spool;
