//! The catalog's integration tests, one binary: the SQLite and Elasticsearch
//! catalogs, copies, retention, reports, and its requests against the ES stand-in.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- es::`.

mod common;
mod copies;
mod es;
mod reports;
mod retention;
mod sqlite;
mod standin;
