//! The command line. Subcommands are variants of [`Command`]; each lives in
//! its own module and is dispatched from `main.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG;

const AFTER_HELP: &str = "\
Exit codes:
  0  every instance succeeded and its message is queued
  1  at least one instance failed (its failure message is queued)
  2  config or command-line error (nothing ran)
  3  Redis unreachable: messages are spooled and sent by the next run
  4  a message could be neither queued nor spooled (its JSON is in the error log)

Run it from cron every `interval` seconds; see docs/client.md.";

/// Runs each instance's backup script and queues one message per instance.
#[derive(Debug, Parser)]
#[command(name = "ubackup-client", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The client config (the original UBackup format).
    #[arg(short = 'c', long = "config", value_name = "CONFIG", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,

    /// Push every message onto this Redis list instead of `redis_queue`
    /// (by convention `level1` is the high-priority list).
    #[arg(short = 'q', long = "queue", value_name = "QUEUE", global = true)]
    pub queue: Option<String>,

    /// Run only this instance section; repeat for several.
    #[arg(long = "only", value_name = "SECTION", global = true)]
    pub only: Vec<String>,

    /// Debug-level logs (RUST_LOG overrides).
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the backups and queue their messages (the default).
    Run,
    /// Validate the config and print the instances a run would start.
    Check,
}

impl Cli {
    pub fn run_options(&self) -> crate::RunOptions {
        crate::RunOptions {
            queue: self.queue.clone(),
            only: self.only.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_accepted_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["ubackup-client", "-c", "/x.conf", "check"]).unwrap();
        let b = Cli::try_parse_from(["ubackup-client", "check", "-c", "/x.conf"]).unwrap();
        assert_eq!(a.config, PathBuf::from("/x.conf"));
        assert_eq!(b.config, PathBuf::from("/x.conf"));
        assert_eq!(b.command, Some(Command::Check));
        let d = Cli::try_parse_from([
            "ubackup-client",
            "-q",
            "level1",
            "--only",
            "a",
            "--only",
            "b",
        ])
        .unwrap();
        assert_eq!(d.command, None, "running is the default");
        assert_eq!(d.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(d.queue.as_deref(), Some("level1"));
        assert_eq!(d.only, ["a", "b"]);
    }
}
