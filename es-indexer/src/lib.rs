//! `ubackup-indexer`: takes backup results off `message_queue` and stores
//! them in the SQLite catalog and/or Elasticsearch, then refreshes the
//! original's expiring `SERVER_ID:TYPE:INSTANCE` keys. Nothing is
//! acknowledged before every store has it.
//!
//! Layout:
//! * [`cli`]: the command line and the indexer as `main` starts it;
//! * [`config`]: the INI file (`[global]`, `[business]`) into [`IndexerConfig`];
//! * [`indexer`]: the loop (take → store → expiring keys → ack), heartbeat,
//!   crash recovery; [`run`] is the entry point;
//! * [`sinks`]: one batch to every store, retrying only what may pass later;
//! * [`overdue`]: the expiring keys;
//! * [`outage`]: outage logging once per state change, and the retries'
//!   backoff (the one of `ubackup_common::backoff`).
//!
//! The stores themselves (SQLite, Elasticsearch) are in `ubackup-catalog`.

pub mod cli;
pub mod config;
pub mod indexer;
pub mod outage;
pub mod overdue;
pub mod sinks;

pub use config::IndexerConfig;
pub use indexer::{run, IndexerError};

/// Exit codes (documented in docs/indexer.md).
pub mod exit {
    /// Stopped by SIGTERM/SIGINT after finishing (or handing back) its batch.
    pub const OK: u8 = 0;
    /// A store failed permanently (corrupt catalog, …) or the runtime broke.
    pub const FATAL: u8 = 1;
    /// The config file is missing or wrong; nothing was started.
    pub const CONFIG: u8 = 2;
}
