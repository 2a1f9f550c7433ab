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

Exit codes of list, restore, pin, unpin:
  0  done
  2  config or command-line error (e.g. no `catalog`/`es_urls` key, --dest not empty)
  5  no such backup, or its chain is incomplete
  6  the catalog cannot be opened or read
  7  a file could not be pulled or failed verification (--dest untouched)
  8  interrupted by SIGTERM/SIGINT (--dest untouched)
  restore --run-hook: the restore_script's exit code

Run it from cron every `interval` seconds; see docs/client.md and docs/restore.md.";

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
    /// List backups from the catalog, newest first.
    List(ListArgs),
    /// Restore a backup (and its full + incremental chain) from the nodes.
    Restore(RestoreArgs),
    /// Pin a backup: prune never deletes it, nor what it needs.
    Pin(PinArgs),
    /// Unpin a backup.
    Unpin(PinArgs),
}

/// `list`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ListArgs {
    /// Only this back_type (mysql, redis…).
    #[arg(long = "type", value_name = "T")]
    pub back_type: Option<String>,
    /// Only this instance number.
    #[arg(long, value_name = "N")]
    pub instance: Option<i64>,
    /// Another host's backups (default: this config's server_id).
    #[arg(long = "server-id", value_name = "ID")]
    pub server_id: Option<i64>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Failed and illegal backups too.
    #[arg(long)]
    pub all: bool,
    /// At most this many rows.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `restore`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RestoreArgs {
    /// The back_type of the instance (mysql, redis…).
    #[arg(long = "type", value_name = "T", required_unless_present = "id")]
    pub back_type: Option<String>,
    /// The instance number (e.g. the port).
    #[arg(long, value_name = "N", required_unless_present = "id")]
    pub instance: Option<i64>,
    /// The newest backup at or before this local time (`2026-11-20 10:00`,
    /// a date = its end, RFC 3339, or @UNIX_SECONDS); default: the newest.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Restore another host's backup (migration); default: this
    /// config's server_id.
    #[arg(long = "server-id", value_name = "ID")]
    pub server_id: Option<i64>,
    /// A new (or empty) directory for the files; default
    /// ./restore-TYPE-INSTANCE-YYYYmmdd-HHMMSS.
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Then run the instance's restore_script; its exit code becomes ours.
    #[arg(long)]
    pub run_hook: bool,
    /// Restore exactly this backup (an ID from `list`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["at", "server_id"])]
    pub id: Option<String>,
    /// Print the files and where they come from; pull nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// age identity file to decrypt backups the nodes stored encrypted
    /// (`encrypt_to`); overrides the config's `age_identity`.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// `pin` / `unpin`: an ID from `list`, or the backup restore would pick.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PinArgs {
    /// The backup's ID (from `list`).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    #[arg(long = "type", value_name = "T", conflicts_with = "id")]
    pub back_type: Option<String>,
    #[arg(long, value_name = "N", conflicts_with = "id")]
    pub instance: Option<i64>,
    #[arg(long, value_name = "TIME", conflicts_with = "id")]
    pub at: Option<String>,
    #[arg(long = "server-id", value_name = "ID", conflicts_with = "id")]
    pub server_id: Option<i64>,
}

/// `ubackup-client --generate-assets DIR` (hidden): man pages and shell
/// completions from this definition; see [`ubackup_common::assets`].
pub fn generate_assets() -> Option<u8> {
    ubackup_common::assets::intercept(<Cli as clap::CommandFactory>::command)
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
