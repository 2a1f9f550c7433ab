//! `ubackup-indexer -c CONFIG`: run under supervisord.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ubackup_indexer::{exit, IndexerConfig};

/// Stores ubackup results (from the Redis `message_queue`) in the SQLite
/// catalog and/or Elasticsearch.
///
/// Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 fatal error,
/// 2 configuration error.
#[derive(Parser, Debug)]
#[command(name = "ubackup-indexer", version)]
struct Args {
    /// The indexer's INI config file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "CONFIG",
        default_value = "/etc/ubackup/indexer.conf"
    )]
    config: PathBuf,
    /// Check the config file and exit (0 = valid, 2 = not).
    #[arg(long)]
    check: bool,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match IndexerConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ubackup-indexer: config error: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if args.check {
        println!("{}: OK", args.config.display());
        return ExitCode::from(exit::OK);
    }
    let _logs =
        ubackup_common::logging::init(cfg.log.as_deref(), cfg.error_log.as_deref(), args.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::FATAL);
        }
    };
    let result = rt.block_on(async {
        let (_trigger, shutdown) = ubackup_common::shutdown::on_signals()
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        ubackup_indexer::run(cfg, shutdown)
            .await
            .map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            tracing::error!("fatal: {e}");
            ExitCode::from(exit::FATAL)
        }
    }
}
