//! The reporter's integration tests, one binary: its reports, alerts, API,
//! web pages (also in headless Chromium) and webhooks.
//!
//! One binary per crate (`autotests = false` in Cargo.toml): the crate's
//! test code is linked once, not once per file. Each former test file is
//! a module; run one with a filter, e.g. `cargo test -p <crate> --test
//! tests -- alerts::`.

mod alerts;
mod api;
mod browser;
mod common;
mod extension;
mod forget;
mod reporters;
mod serve;
mod status;
mod web;
mod webhook;
