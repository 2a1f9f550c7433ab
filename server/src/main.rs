//! `ubackup-server -c CONFIG`: the pull node. Exit codes: 0 clean stop,
//! 2 config error (restarting will not help), 1 fatal runtime error.
//! `ubackup-server prune|verify -c CONFIG`: retention and re-verification
//! (docs/restore.md); exit codes in `ubackup_server::prune::exit`.

use std::process::ExitCode;

use clap::Parser;
use ubackup_common::app::Logs;
use ubackup_server::cli::{self, Args, BINARY};
use ubackup_server::ServerConfig;

fn main() -> ExitCode {
    if let Some(code) = cli::generate_assets() {
        return ExitCode::from(code);
    }
    let args = Args::parse();
    let cfg = match BINARY.config(ServerConfig::load(&args.config)) {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    if let Some(tool) = args.command {
        return ExitCode::from(cli::run_tool(cfg, tool, args.verbose));
    }
    if args.check {
        println!("{}", cli::check_line(&args.config, &cfg));
        return ExitCode::SUCCESS;
    }
    let (log, error_log) = (cfg.log.clone(), cfg.error_log.clone());
    let logs = Logs::files(log.as_deref(), error_log.as_deref(), args.verbose);
    let failed = |e| {
        tracing::error!("fatal: {e}");
        1
    };
    let code = BINARY.run(logs, failed, |stop| cli::command(args.config, cfg, stop));
    ExitCode::from(code)
}
