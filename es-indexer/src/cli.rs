//! The command line, and the indexer as `main` starts it ([`command`]).

use std::path::PathBuf;

use ubackup_common::app::Binary;
use ubackup_common::shutdown::Shutdown;

use crate::config::IndexerConfig;
use crate::exit;

/// How `main` starts: config errors exit [`exit::CONFIG`]; two runtime
/// threads are plenty for one loop and its heartbeat.
pub const BINARY: Binary = Binary {
    prefix: "ubackup-indexer: ",
    config_exit: exit::CONFIG,
    worker_threads: Some(2),
};

/// Stores ubackup results (from the Redis `message_queue`) in the SQLite
/// catalog and/or Elasticsearch.
///
/// Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 fatal error,
/// 2 configuration error.
#[derive(clap::Parser, Debug)]
#[command(name = "ubackup-indexer", version)]
pub struct Args {
    /// The indexer's INI config file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "CONFIG",
        default_value = "/etc/ubackup/indexer.conf"
    )]
    pub config: PathBuf,
    /// Check the config file and exit (0 = valid, 2 = not).
    #[arg(long)]
    pub check: bool,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short, long)]
    pub verbose: bool,
}

/// `ubackup-indexer --generate-assets DIR` (hidden): man pages and shell
/// completions from this definition; see [`ubackup_common::assets`].
pub fn generate_assets() -> Option<u8> {
    ubackup_common::assets::intercept(<Args as clap::CommandFactory>::command)
}

/// The indexer until `stop` trips: [`exit::OK`], or [`exit::FATAL`] after
/// `fatal: …` in the log.
pub async fn command(cfg: IndexerConfig, stop: Shutdown) -> u8 {
    match crate::run(cfg, stop).await {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("fatal: {e:#}");
            exit::FATAL
        }
    }
}
