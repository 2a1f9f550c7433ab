//! `ubackup-client`: see the crate docs and docs/client.md.

use std::process::ExitCode;

use clap::Parser;
use ubackup_client::cli::{self, Cli, Command};
use ubackup_client::{check, exit, list, pin, restore, tool, ClientConfig, BINARY};
use ubackup_common::app::Logs;

fn main() -> ExitCode {
    if let Some(code) = cli::generate_assets() {
        return ExitCode::from(code);
    }
    let cli = Cli::parse();
    let cfg = match BINARY.config(ClientConfig::load(&cli.config)) {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    let v = cli.verbose;
    let code = match cli.command.clone().unwrap_or(Command::Run) {
        Command::Run => {
            let (log, error_log) = (cfg.global.log.clone(), cfg.global.error_log.clone());
            let logs = Logs::files(log.as_deref(), error_log.as_deref(), v);
            let failed = |e| {
                tracing::error!("{e}");
                exit::NOT_QUEUED
            };
            let opts = cli.run_options();
            BINARY.run(logs, failed, |stop| {
                ubackup_client::command(cfg, opts, stop)
            })
        }
        Command::Check => check::command(&cfg, &cli.run_options()),
        Command::List(a) => tool::run("list", v, |_| async move { list::command(&cfg, &a).await }),
        Command::Restore(a) => tool::run("restore", v, |stop| async move {
            restore::command(&cfg, &a, stop).await
        }),
        Command::Pin(a) => tool::run(
            "pin",
            v,
            |_| async move { pin::command(&cfg, &a, true).await },
        ),
        Command::Unpin(a) => tool::run("unpin", v, |_| async move {
            pin::command(&cfg, &a, false).await
        }),
    };
    ExitCode::from(code)
}
