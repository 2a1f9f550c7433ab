//! tracing set-up shared by the binaries: stderr, plus the config's `log`
//! (everything) and `error_log` (warnings and errors) files, as the original
//! wrote them. `RUST_LOG` overrides the level.

use std::path::Path;

use std::io::IsTerminal;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Keeps the file writers flushing; hold it for the life of `main`.
pub struct LogGuard {
    _guards: Vec<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber. File paths that cannot be opened are
/// reported on stderr and skipped: logging must never stop a backup.
pub fn init(log: Option<&Path>, error_log: Option<&Path>, verbose: bool) -> LogGuard {
    let default = if verbose { "debug" } else { "info" };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let mut guards = Vec::new();
    let mut open = |p: Option<&Path>| -> Option<tracing_appender::non_blocking::NonBlocking> {
        let p = p?;
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => {
                let (w, g) = tracing_appender::non_blocking(f);
                guards.push(g);
                Some(w)
            }
            Err(e) => {
                eprintln!(
                    "warning: cannot open log file {}: {e}; logging to stderr only",
                    p.display()
                );
                None
            }
        }
    };
    let log_w = open(log);
    let err_w = open(error_log);
    // Colours only on a terminal: cron and supervisord send stderr to files.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter());
    let file = log_w.map(|w| {
        tracing_subscriber::fmt::layer()
            .fmt_fields(PlainFields::default())
            .with_ansi(false)
            .with_target(false)
            .with_writer(w)
            .with_filter(filter())
    });
    let err = err_w.map(|w| {
        tracing_subscriber::fmt::layer()
            .fmt_fields(PlainFields::default())
            .with_ansi(false)
            .with_target(false)
            .with_writer(w.with_max_level(tracing::Level::WARN))
            .with_filter(LevelFilter::WARN)
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .with(err)
        .try_init();
    LogGuard { _guards: guards }
}

/// The default field formatter under its own type. tracing-subscriber caches
/// a span's formatted fields per formatter *type*, so file layers sharing
/// `DefaultFields` with a coloured stderr layer would write its ANSI escapes
/// into the log files (`instance{\x1b[3msection\x1b[0m=…}`).
#[derive(Default)]
struct PlainFields(DefaultFields);

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}
