//! `ubackup-server -c CONFIG`: the pull node. Exit codes: 0 clean stop,
//! 2 config error (restarting will not help), 1 fatal runtime error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ubackup_server::ServerConfig;

/// Pull node of ubackup: takes backup messages from prioritized Redis
/// lists, rsyncs each file from its database host into
/// server_root_path/TYPE/A.B.C/D/, and pushes a result for the indexer.
///
/// Signals: SIGTERM/SIGINT stop popping, let running pulls finish for up to
/// drain_secs and re-queue the rest; SIGHUP reloads the config.
/// Exit codes: 0 clean stop, 2 config error, 1 fatal runtime error.
#[derive(Parser, Debug)]
#[command(name = "ubackup-server", version)]
struct Args {
    /// The server config (the original UBackup server INI).
    #[arg(short, long, default_value = "/etc/ubackup/server.conf")]
    config: PathBuf,
    /// Check the config and exit (0 = valid, 2 = invalid).
    #[arg(long)]
    check: bool,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match ServerConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ubackup-server: config error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!(
            "{}: ok (node {}, queues {})",
            args.config.display(),
            cfg.node_id,
            cfg.queues.join(" ")
        );
        return ExitCode::SUCCESS;
    }
    let _logs =
        ubackup_common::logging::init(cfg.log.as_deref(), cfg.error_log.as_deref(), args.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let (_trigger, shutdown) = ubackup_common::shutdown::on_signals()?;
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(cfg));
        ubackup_server::reload_on_sighup(args.config.clone(), tx)?;
        ubackup_server::run(rx, shutdown)
            .await
            .map_err(anyhow::Error::from)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("fatal: {e:#}");
            ExitCode::from(1)
        }
    }
}
