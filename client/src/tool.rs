//! What `list`, `restore`, `pin` and `unpin` share: their exit codes, the
//! error type that picks one, and running one of them ([`run`]).

use std::future::Future;

use ubackup_common::app::{Logs, StartError};
use ubackup_common::shutdown::Shutdown;

/// Exit codes of `list`, `restore`, `pin` and `unpin`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Config or command-line error (a missing `catalog` key, a bad
    /// `--at`, a `--dest` that is not empty…): nothing was done.
    pub const CONFIG: u8 = 2;
    /// No backup matches, or its chain is incomplete.
    pub const NOT_FOUND: u8 = 5;
    /// The catalog could not be opened or read.
    pub const CATALOG: u8 = 6;
    /// A file could not be pulled or failed verification; `--dest` is untouched.
    pub const TRANSFER: u8 = 7;
    /// Stopped by SIGTERM/SIGINT; `--dest` is untouched.
    pub const INTERRUPTED: u8 = 8;
}

/// Why a tool command failed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Catalog(String),
    #[error("{0}")]
    Transfer(String),
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl ToolError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Config(_) => exit::CONFIG,
            ToolError::NotFound(_) => exit::NOT_FOUND,
            ToolError::Catalog(_) => exit::CATALOG,
            ToolError::Transfer(_) => exit::TRANSFER,
            ToolError::Interrupted(_) => exit::INTERRUPTED,
        }
    }
}

impl From<ubackup_catalog::CatalogError> for ToolError {
    fn from(e: ubackup_catalog::CatalogError) -> Self {
        ToolError::Catalog(format!("catalog error: {e}"))
    }
}

/// Runs the tool `name` with stderr logging and its own runtime; returns
/// its exit code. Errors go to stderr as `ubackup-client <name>: …`.
pub fn run<Fut>(name: &str, verbose: bool, work: impl FnOnce(Shutdown) -> Fut) -> u8
where
    Fut: Future<Output = Result<u8, ToolError>>,
{
    let failed = |e: StartError| {
        eprintln!("ubackup-client {name}: {e}");
        match e {
            StartError::Runtime(_) => exit::CATALOG,
            StartError::Signals(_) => exit::CONFIG,
        }
    };
    crate::BINARY.run(Logs::stderr(verbose), failed, |stop| async move {
        work(stop).await.unwrap_or_else(|e| {
            eprintln!("ubackup-client {name}: {e}");
            e.exit_code()
        })
    })
}
