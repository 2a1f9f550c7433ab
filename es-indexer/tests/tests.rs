//! The indexer's integration tests, one binary: in-process and as the real
//! `ubackup-indexer`, against redis-server, SQLite and the ES stand-in.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- binary::`.

mod binary;
mod common;
mod config;
mod indexer;
mod pipeline;
mod props;
mod throughput;
