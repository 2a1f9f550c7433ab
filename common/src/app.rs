//! What every binary's `main` does around its real work, in one order:
//! config → logging → async runtime → SIGTERM/SIGINT → exit code.
//!
//! A binary names itself once ([`Binary`]: the words its own stderr lines
//! start with and its config exit code), loads its config through
//! [`Binary::config`], and hands its work to [`Binary::run`], which sets up
//! logging, the runtime and the signal handlers and returns the work's exit
//! code (or what the binary makes of a failed start). What a binary does between loading and running (`--check`, a
//! one-shot tool) stays its own.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;

use crate::shutdown::{self, Shutdown};

/// Why [`Binary::run`] could not start the work.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Where the logs go: always stderr, plus the config's `log` and
/// `error_log` files when given (see [`crate::logging::init`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Logs<'a> {
    pub log: Option<&'a Path>,
    pub error_log: Option<&'a Path>,
    /// Debug level (`RUST_LOG` overrides).
    pub verbose: bool,
}

impl<'a> Logs<'a> {
    /// Stderr only: the one-shot tools, whose output is for the operator.
    pub fn stderr(verbose: bool) -> Self {
        Logs {
            log: None,
            error_log: None,
            verbose,
        }
    }

    /// Stderr plus the config's log files: the long-running services.
    pub fn files(log: Option<&'a Path>, error_log: Option<&'a Path>, verbose: bool) -> Self {
        Logs {
            log,
            error_log,
            verbose,
        }
    }
}

/// One binary's voice at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// What its own stderr lines start with: `ubackup-server: `, or
    /// `UBACKUP UNKNOWN - ` for the reporter (the line Nagios shows).
    pub prefix: &'static str,
    /// The exit code of a config that does not load.
    pub config_exit: u8,
    /// Runtime worker threads; `None` is tokio's default (one per core).
    pub worker_threads: Option<usize>,
}

impl Binary {
    /// The loaded config, or (after `<prefix>config error: …` on stderr)
    /// the exit code to return.
    pub fn config<C, E: Display>(&self, loaded: Result<C, E>) -> Result<C, u8> {
        loaded.map_err(|e| {
            eprintln!("{}config error: {e}", self.prefix);
            self.config_exit
        })
    }

    /// Logging, a runtime, the signal handlers, then `work` with the
    /// shutdown flag they trip; returns what `work` returns. If the runtime
    /// or the handlers cannot be set up, returns what `failed` makes of
    /// that (called while the log files are still open).
    pub fn run<T, Fut>(
        &self,
        logs: Logs<'_>,
        failed: impl FnOnce(StartError) -> T,
        work: impl FnOnce(Shutdown) -> Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
    {
        let _logs = crate::logging::init(logs.log, logs.error_log, logs.verbose);
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.worker_threads {
            rt.worker_threads(n);
        }
        let rt = match rt.enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return failed(StartError::Runtime(e)),
        };
        rt.block_on(async move {
            // The trigger half lives as long as the work: dropping it would
            // not stop anything, but keeping it makes the intent plain.
            match shutdown::on_signals() {
                Ok((_trigger, stop)) => work(stop).await,
                Err(e) => failed(StartError::Signals(e)),
            }
        })
    }
}
