//! The command line, and what each command runs: the node (`command`), or
//! the one-shot `prune` / `verify` ([`run_tool`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ubackup_common::app::{Binary, Logs};
use ubackup_common::shutdown::Shutdown;

use crate::config::ServerConfig;

/// How `main` starts: config errors exit 2.
pub const BINARY: Binary = Binary {
    prefix: "ubackup-server: ",
    config_exit: 2,
    worker_threads: None,
};

/// Pull node of ubackup: takes backup messages from prioritized Redis
/// lists, rsyncs each file from its database host into
/// server_root_path/TYPE/A.B.C/D/, and pushes a result for the indexer.
///
/// Signals: SIGTERM/SIGINT stop popping, let running pulls finish for up to
/// drain_secs and re-queue the rest; SIGHUP reloads the config.
/// Exit codes: 0 clean stop, 2 config error, 1 fatal runtime error.
#[derive(clap::Parser, Debug)]
#[command(name = "ubackup-server", version, after_help = TOOL_EXIT_CODES)]
pub struct Args {
    /// The server config (the original UBackup server INI).
    #[arg(short, long, default_value = "/etc/ubackup/server.conf", global = true)]
    pub config: PathBuf,
    /// Check the config and exit (0 = valid, 2 = invalid).
    #[arg(long)]
    pub check: bool,
    /// Debug logging (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Option<Tool>,
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
pub enum Tool {
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

/// `ubackup-server --generate-assets DIR` (hidden): man pages and shell
/// completions from this definition; see [`ubackup_common::assets`].
pub fn generate_assets() -> Option<u8> {
    ubackup_common::assets::intercept(<Args as clap::CommandFactory>::command)
}

/// `--check`: the line printed for a valid config.
pub fn check_line(path: &Path, cfg: &ServerConfig) -> String {
    format!(
        "{}: ok (node {}, queues {})",
        path.display(),
        cfg.node_id,
        cfg.queues.join(" ")
    )
}

/// The node until `stop` trips, with SIGHUP reloading `path`: 0 on a clean
/// stop, 1 (after `fatal: …` in the log) on a fatal error.
pub async fn command(path: PathBuf, cfg: ServerConfig, stop: Shutdown) -> u8 {
    let result = async {
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(cfg));
        crate::reload_on_sighup(path, tx)?;
        crate::run(rx, stop).await.map_err(anyhow::Error::from)
    };
    match result.await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("fatal: {e:#}");
            1
        }
    }
}

/// prune / verify: stderr logging, their own runtime, SIGTERM handled;
/// returns the exit code (`crate::prune::exit`).
pub fn run_tool(cfg: ServerConfig, tool: Tool, verbose: bool) -> u8 {
    let failed = |e| {
        eprintln!("ubackup-server: {e}");
        crate::prune::exit::FATAL
    };
    BINARY.run(Logs::stderr(verbose), failed, |stop| async move {
        let cfg = Arc::new(cfg);
        match tool {
            Tool::Prune { dry_run } => crate::prune::run_cli(cfg, dry_run, stop).await,
            Tool::Verify { older_than } => crate::verify::run_cli(cfg, older_than, stop).await,
        }
    })
}
