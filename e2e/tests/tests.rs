//! The end-to-end tests, one binary: the whole pipeline, replication
//! over three nodes, the deployment files, and the workspace's layout rules.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- deploy::`.

mod deploy;
mod layout;
mod pipeline;
mod replication;
