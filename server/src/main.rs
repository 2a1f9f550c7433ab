//! `ubackup-server -c CONFIG`: the pull node. Exit codes: 0 clean stop,
//! 2 config error (restarting will not help), 1 fatal runtime error.
//! `ubackup-server prune|verify -c CONFIG`: retention and re-verification
//! (docs/restore.md); exit codes in `ubackup_server::prune::exit`.

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
#[command(name = "ubackup-server", version, after_help = TOOL_EXIT_CODES)]
struct Args {
    /// The server config (the original UBackup server INI).
    #[arg(short, long, default_value = "/etc/ubackup/server.conf", global = true)]
    config: PathBuf,
    /// Check the config and exit (0 = valid, 2 = invalid).
    #[arg(long)]
    check: bool,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Option<Tool>,
}

const TOOL_EXIT_CODES: &str = "\
Exit codes of prune and verify:
  0  done, nothing wrong
  1  the catalog could not be read or written
  2  config error (e.g. no `catalog` / `es_urls` key)
  3  prune: some files could not be deleted; verify: missing or corrupt files found
  4  interrupted by SIGTERM/SIGINT";

/// One-shot tools; without one, the node runs.
#[derive(clap::Subcommand, Debug)]
enum Tool {
    /// Delete this node's backups past their keep time (mysqlkeeptime,
    /// rediskeeptime, keeptime.<type>), never a pinned one, never one a
    /// kept incremental needs, never the newest chain of an instance.
    Prune {
        /// Print what would be deleted and why; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-check size and checksum of this node's stored files and record
    /// the result in the catalog (missing/corrupt files become illegal).
    Verify {
        /// Only files not verified within this many days (never-verified
        /// files always).
        #[arg(long, value_name = "DAYS")]
        older_than: Option<f64>,
    },
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
    if let Some(tool) = args.command {
        return ExitCode::from(run_tool(cfg, tool, args.verbose));
    }
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

/// prune / verify: stderr logging, their own runtime, SIGTERM handled.
fn run_tool(cfg: ServerConfig, tool: Tool, verbose: bool) -> u8 {
    let _logs = ubackup_common::logging::init(None, None, verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ubackup-server: cannot start the runtime: {e}");
            return ubackup_server::prune::exit::FATAL;
        }
    };
    rt.block_on(async move {
        // the trigger half lives as long as the tool runs
        let (_trigger, stop) = match ubackup_common::shutdown::on_signals() {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("ubackup-server: cannot install signal handlers: {e}");
                return ubackup_server::prune::exit::FATAL;
            }
        };
        let cfg = Arc::new(cfg);
        match tool {
            Tool::Prune { dry_run } => ubackup_server::prune::run_cli(cfg, dry_run, stop).await,
            Tool::Verify { older_than } => {
                ubackup_server::verify::run_cli(cfg, older_than, stop).await
            }
        }
    })
}
