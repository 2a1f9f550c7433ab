//! `ubackup-reporter`: see the crate docs and docs/reporter.md.

use std::process::ExitCode;

use ubackup_common::app::Logs;
use ubackup_reporter::cli::{self, BINARY};
use ubackup_reporter::config::ReporterConfig;
use ubackup_reporter::EXIT_UNKNOWN;

fn main() -> ExitCode {
    if let Some(code) = cli::generate_assets() {
        return ExitCode::from(code);
    }
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    let cfg = match BINARY.config(ReporterConfig::load(&cli.config)) {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    let (log, error_log) = cfg.log_paths();
    let logs = Logs::files(log.as_deref(), error_log.as_deref(), cli.verbose);
    let failed = |e| {
        eprintln!("{}{e}", BINARY.prefix);
        EXIT_UNKNOWN as u8
    };
    let code = BINARY.run(logs, failed, |stop| cli::command(cli.command, cfg, stop));
    ExitCode::from(code)
}
