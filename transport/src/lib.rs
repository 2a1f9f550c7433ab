//! `ubackup-transport`: how ubackup moves a file from an rsync daemon to
//! local disk. The pull node uses it for every pull, restore for pulling a
//! chain back from the nodes, so both run rsync the same way and read its
//! exit codes the same way.
//!
//! Layout:
//! * [`rsync`]: the rsync argument vector (never a shell), its own process
//!   group, a drained stderr, the outer watchdog, the bandwidth share;
//! * [`retry`]: rsync exit codes and local check failures → retry
//!   decisions, and the backoff between attempts;
//! * [`tmp`]: the temp area attempts land in, and the rsync process groups
//!   a killed run left behind;
//! * [`tls`]: rsync over TLS through our connector, and what its failures
//!   mean; [`connect`] is the connector itself (`ubackup-tls-connect`);
//!   [`tls_config`] reads the `rsync_tls*` / `node_rsync_tls*` keys;
//! * [`follow`]: hashes (and starts the writeback of) large files while
//!   rsync writes them, so neither a node nor a restore reads them again;
//! * [`at_rest`]: age encryption of landed files and their decryption on
//!   restore;
//! * [`source`]: a daemon module ([`source::RsyncSource`]), its URLs, and
//!   the storage layout `root/TYPE/A.B.C/D` ([`source::dest_dir`]).

pub mod at_rest;
pub mod connect;
pub mod follow;
pub mod retry;
pub mod rsync;
pub mod source;
pub mod tls;
pub mod tls_config;
pub mod tmp;

pub use retry::{AttemptError, Retry};
pub use rsync::RsyncOptions;
pub use source::RsyncSource;
pub use tls::TlsOptions;
pub use tmp::TempArea;
