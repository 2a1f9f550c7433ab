//! `ubackup-client`: see the crate docs and docs/client.md.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing::{error, warn};
use ubackup_client::cli::{Cli, Command};
use ubackup_client::{check, exit, ClientConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command.clone().unwrap_or(Command::Run) {
        Command::Run => run(&cli),
        Command::Check => check(&cli),
        Command::List(a) => tool(&cli, "list", move |cfg, shutdown| async move {
            let _ = shutdown;
            let cat = ubackup_client::restore::open_catalog(&cfg, "list").await?;
            print!(
                "{}",
                ubackup_client::list::list(&cfg, &a, cat.as_ref()).await?
            );
            Ok(0)
        }),
        Command::Restore(a) => tool(&cli, "restore", move |cfg, shutdown| async move {
            let mut out = std::io::stdout();
            let r = ubackup_client::restore::restore(&cfg, &a, shutdown, &mut out).await?;
            Ok(r.hook_code.unwrap_or(0))
        }),
        Command::Pin(a) => tool(&cli, "pin", move |cfg, _| async move {
            let cat = ubackup_client::restore::open_catalog(&cfg, "pin").await?;
            print!(
                "{}",
                ubackup_client::pin::pin(&cfg, &a, true, cat.as_ref()).await?
            );
            Ok(0)
        }),
        Command::Unpin(a) => tool(&cli, "unpin", move |cfg, _| async move {
            let cat = ubackup_client::restore::open_catalog(&cfg, "unpin").await?;
            print!(
                "{}",
                ubackup_client::pin::pin(&cfg, &a, false, cat.as_ref()).await?
            );
            Ok(0)
        }),
    };
    ExitCode::from(code)
}

fn load(cli: &Cli) -> Result<ClientConfig, u8> {
    ClientConfig::load(&cli.config).map_err(|e| {
        eprintln!("ubackup-client: config error: {e}");
        exit::CONFIG
    })
}

fn check(cli: &Cli) -> u8 {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    match check::describe(&cfg, &cli.run_options()) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("ubackup-client: config error: {e}");
            exit::CONFIG
        }
    }
}

fn run(cli: &Cli) -> u8 {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log = ubackup_common::logging::init(
        cfg.global.log.as_deref(),
        cfg.global.error_log.as_deref(),
        cli.verbose,
    );
    for w in &cfg.warnings {
        warn!("config: {w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return exit::NOT_QUEUED;
        }
    };
    let opts = cli.run_options();
    rt.block_on(async move {
        // The trigger half stays alive for the whole run; dropping it would
        // not stop anything, but keeping it makes the intent plain.
        let (_trigger, shutdown) = match ubackup_common::shutdown::on_signals() {
            Ok(pair) => pair,
            Err(e) => {
                error!("cannot install signal handlers: {e}");
                return exit::NOT_QUEUED;
            }
        };
        match ubackup_client::run(Arc::new(cfg), &opts, shutdown).await {
            Ok(report) => report.exit_code(),
            Err(e) => {
                error!("config error: {e}");
                exit::CONFIG
            }
        }
    })
}

/// list / restore / pin / unpin: stderr logging, their own runtime.
fn tool<F, Fut>(cli: &Cli, name: &str, f: F) -> u8
where
    F: FnOnce(ClientConfig, ubackup_common::shutdown::Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<u8, ubackup_client::restore::ToolError>>,
{
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log = ubackup_common::logging::init(None, None, cli.verbose);
    ubackup_client::restore::run_tool(name, move |shutdown| f(cfg, shutdown))
}
