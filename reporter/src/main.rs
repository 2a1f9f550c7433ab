//! `ubackup-reporter`: see the crate docs and docs/reporter.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ubackup_reporter::config::ReporterConfig;
use ubackup_reporter::{Command, EXIT_UNKNOWN};

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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // help and version are not errors; a usage error is "unknown"
            return if e.use_stderr() {
                ExitCode::from(EXIT_UNKNOWN as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let (path, cmd) = match cli.cmd {
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
        Cmd::ForgetNode { config, node } => (config, Command::ForgetNode { node }),
    };
    let cfg = match ReporterConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("UBACKUP UNKNOWN - config error: {e}");
            return ExitCode::from(EXIT_UNKNOWN as u8);
        }
    };
    let (log, error_log) = cfg.log_paths();
    let _guard = ubackup_common::logging::init(log.as_deref(), error_log.as_deref(), cli.verbose);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("UBACKUP UNKNOWN - cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNKNOWN as u8);
        }
    };
    let code = rt.block_on(async move {
        let (_trigger, shutdown) = match ubackup_common::shutdown::on_signals() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("UBACKUP UNKNOWN - cannot install signal handlers: {e}");
                return EXIT_UNKNOWN;
            }
        };
        match ubackup_reporter::run(cmd, cfg, shutdown).await {
            Ok(out) => {
                print!("{}", out.stdout);
                out.code
            }
            Err(e) => {
                // first line is what Nagios shows
                println!("UBACKUP UNKNOWN - {e}");
                tracing::error!("{e}");
                EXIT_UNKNOWN
            }
        }
    });
    ExitCode::from(code as u8)
}
