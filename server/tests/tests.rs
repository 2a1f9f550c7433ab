//! The node's integration tests, one binary: each starts real
//! `ubackup-server` processes against redis-server and rsync daemons.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- batch::`.

mod at_rest;
mod batch;
mod common;
mod config;
mod deadlines;
mod node;
mod pickup;
mod props;
mod retention;
mod tls;
