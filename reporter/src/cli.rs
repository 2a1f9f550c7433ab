//! The command line ([`parse`]), and a subcommand as `main` starts it
//! ([`command`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ubackup_common::app::Binary;
use ubackup_common::shutdown::Shutdown;

use crate::config::ReporterConfig;
use crate::{Command, EXIT_UNKNOWN};

/// How `main` starts: every failure to start is Nagios UNKNOWN, and its
/// first line is what Nagios shows.
pub const BINARY: Binary = Binary {
    prefix: "UBACKUP UNKNOWN - ",
    config_exit: EXIT_UNKNOWN as u8,
    worker_threads: None,
};

#[derive(Parser, Debug)]
#[command(
    name = "ubackup-reporter",
    version,
    about = "ubackup's disk/queue reporters, cluster status, alerts (Nagios exit codes) and metrics endpoint",
    after_help = "Exit codes: 0 OK, 1 warning (disk/queue: samples left pending), 2 critical (alerts), \
                  3 unknown: bad config or arguments, Redis unreachable, catalog unreadable."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// More log output on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Record the node's disk usage (filesystem of server_root_path) and machine figures.
    Disk {
        /// A node's config (ubackup-server INI).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Record the depth of every priority, in-flight, results and dead-letter list.
    Queue {
        /// A node's or the indexer's config.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// One screen of the cluster: nodes, queues, the last 24 h, instances.
    Status {
        /// A node's or the indexer's config.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The current alerts, one line each; the exit code follows Nagios.
    Alerts {
        /// A node's or the indexer's config.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// POST new and resolved alerts (JSON) to this URL; needs --state.
        #[arg(long, requires = "state")]
        webhook: Option<String>,
        /// Where the alerts known at the last run and undelivered events are kept.
        #[arg(long, requires = "webhook")]
        state: Option<PathBuf>,
    },
    /// HTTP endpoint: the web pages (/, /stats, /alerts, /instance/…, /control), /api/alerts, /api/status, /metrics.
    Serve {
        /// A node's or the indexer's config.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:9187.
        #[arg(long)]
        listen: String,
    },
    /// Check the config and exit: 0 valid, 3 not (the reporter's exit code
    /// for a bad config). Reaches neither Redis nor the catalog.
    Check {
        /// A node's or the indexer's config.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Forget a decommissioned node (or indexer): status stops listing it
    /// and its node_down alert resolves. Refused while it is alive or still
    /// holds messages or results (exit 1).
    ForgetNode {
        /// A node's or the indexer's config (for Redis and key_prefix).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// The node_id to forget.
        node: String,
    },
}

/// `ubackup-reporter --generate-assets DIR` (hidden): man pages and shell
/// completions from this definition; see [`ubackup_common::assets`].
pub fn generate_assets() -> Option<u8> {
    ubackup_common::assets::intercept(<Cli as clap::CommandFactory>::command)
}

/// What the command line asks for.
#[derive(Debug)]
pub struct Parsed {
    pub config: PathBuf,
    pub command: Command,
    pub verbose: bool,
}

/// The command line, or (after clap's message) the exit code: `--help`
/// and `--version` are not errors; a usage error is UNKNOWN.
pub fn parse() -> Result<Parsed, u8> {
    let cli = Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            EXIT_UNKNOWN as u8
        } else {
            0
        }
    })?;
    let (config, command) = match cli.cmd {
        Cmd::Disk { config } => (config, Command::Disk),
        Cmd::Queue { config } => (config, Command::Queue),
        Cmd::Status { config, json } => (config, Command::Status { json }),
        Cmd::Alerts {
            config,
            json,
            webhook,
            state,
        } => (
            config,
            Command::Alerts {
                json,
                webhook,
                state,
            },
        ),
        Cmd::Serve { config, listen } => (config, Command::Serve { listen }),
        Cmd::Check { config } => (config, Command::Check),
        Cmd::ForgetNode { config, node } => (config, Command::ForgetNode { node }),
    };
    Ok(Parsed {
        config,
        command,
        verbose: cli.verbose,
    })
}

/// Runs `cmd` and prints what it reports; returns the exit code. An error
/// is one `UBACKUP UNKNOWN - …` line on stdout (what Nagios shows).
pub async fn command(cmd: Command, cfg: ReporterConfig, stop: Shutdown) -> u8 {
    match crate::run(cmd, cfg, stop).await {
        Ok(out) => {
            print!("{}", out.stdout);
            out.code as u8
        }
        Err(e) => {
            println!("UBACKUP UNKNOWN - {e}");
            tracing::error!("{e}");
            EXIT_UNKNOWN as u8
        }
    }
}
