//! The end-to-end tests, one binary: the whole pipeline, replication
//! over three nodes, the deployment files (the Redis Sentinel ones in
//! `deploy_sentinel`), and the workspace's layout rules.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- deploy::`.

mod deploy;
mod deploy_sentinel;
mod deploy_tls;
mod layout;
mod pipeline;
mod recipes;
mod replication;

/// Held by each test that starts a whole cluster (the pipeline and the
/// replication tests): they bind rsync daemons to the same 127.0.0.x
/// addresses on ports picked as free, so two at once could pick the same
/// port and one would reach the other's daemon. One at a time.
pub static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`ONE_CLUSTER`] (a test that panicked while holding it does not
/// stop the others).
pub fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}
