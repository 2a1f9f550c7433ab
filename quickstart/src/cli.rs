//! The command line (quickstart.sh passes its own arguments through).

use std::path::PathBuf;

/// A whole ubackup cluster on this machine: start, back up, index, report,
/// restore, check, stop.
///
/// Runs a 2-host, 2-node cluster in a temp directory from the shipped files
/// (deploy/redis, deploy/rsyncd, deploy/examples). Needs redis-server and
/// rsync (./quickstart.sh installs them and builds the binaries). Exit code:
/// 0 when every step passed, 1 when a step failed (its logs are kept and
/// their paths printed), 2 for a usage error.
#[derive(Debug, clap::Parser)]
#[command(name = "ubackup-quickstart", version)]
pub struct Opts {
    /// Leave the cluster running at the end and print how to use it.
    #[arg(long)]
    pub keep: bool,
    /// Client runs per database host (a full, then incrementals).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..))]
    pub rounds: u32,
    /// Use the ubackup-* binaries in this directory (default: the one this
    /// program is in).
    #[arg(long, value_name = "D")]
    pub bin_dir: Option<PathBuf>,
    /// The repository whose deploy/ files to run (default: the one this
    /// program was built from, else the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The build profile quickstart.sh used (accepted so its arguments pass
    /// through unchanged; the binaries are whatever --bin-dir holds).
    #[arg(long, hide = true)]
    pub debug: bool,
}
