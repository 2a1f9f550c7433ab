//! Shared pieces of ubackup.
//!
//! Layout:
//! * [`ini`]: reads the original INI files (inline comments, line numbers);
//! * [`config`]: typed keys with errors naming file/line/section/key;
//! * [`message`]: the two wire formats (client → queue, node → results);
//! * [`keys`]: every Redis key name, from one prefix;
//! * [`redis_conn`]: where a Redis is and how to connect (AUTH, blocking);
//! * [`queue`]: every queue operation and Lua script (push, take, claim,
//!   fenced ack, re-queue, dead letters, outbox forwarding), in one module;
//! * [`validate`]: names from messages checked before they reach a path;
//! * [`lock`]: expiring Redis locks with an owner (one node at a time);
//! * [`backoff`]: capped exponential backoff, the one every retry loop uses;
//! * [`deadlines`]: how long a clean stop of each program may take;
//! * [`fsutil`]: atomic writes and checksums;
//! * [`logging`], [`shutdown`]: tracing set-up and SIGTERM handling;
//! * [`app`]: what every `main` does around its work (config → logging →
//!   runtime → signals → exit code);
//! * [`assets`]: man pages and shell completions from a clap definition.

pub mod app;
pub mod assets;
pub mod backoff;
pub mod config;
pub mod deadlines;
pub mod fsutil;
pub mod keys;
pub mod lock;
pub mod logging;
pub mod message;
pub mod queue;
pub mod redis_conn;
pub mod shutdown;
pub mod validate;

pub use config::ini;
pub use config::{ConfigError, SectionReader};
pub use ini::IniDoc;
pub use keys::Keys;
pub use message::{BackupMessage, ResultRecord};
pub use queue::{DeadLetter, Requeue, Taken, WorkQueue};
pub use redis_conn::{RedisConn, RedisTarget};
