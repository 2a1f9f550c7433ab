//! `ubackup-quickstart`: see the crate doc (`lib.rs`) and docs/quickstart.md.

use clap::Parser;

fn main() -> std::process::ExitCode {
    ubackup_quickstart::run(ubackup_quickstart::cli::Opts::parse())
}
