//! `ubackup-indexer -c CONFIG`: run under supervisord.

use std::process::ExitCode;

use clap::Parser;
use ubackup_common::app::Logs;
use ubackup_indexer::cli::{self, Args, BINARY};
use ubackup_indexer::{exit, IndexerConfig};

fn main() -> ExitCode {
    if let Some(code) = cli::generate_assets() {
        return ExitCode::from(code);
    }
    let args = Args::parse();
    let cfg = match BINARY.config(IndexerConfig::load(&args.config)) {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    if args.check {
        println!("{}: OK", args.config.display());
        return ExitCode::from(exit::OK);
    }
    let (log, error_log) = (cfg.log.clone(), cfg.error_log.clone());
    let logs = Logs::files(log.as_deref(), error_log.as_deref(), args.verbose);
    let failed = |e| {
        tracing::error!("fatal: {e}");
        exit::FATAL
    };
    ExitCode::from(BINARY.run(logs, failed, |stop| cli::command(cfg, stop)))
}
