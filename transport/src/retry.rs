//! What a failed attempt means for the next one: rsync's exit codes as
//! observed with rsync 3.5.0 (shared/CRATES.md), plus the receiving side's
//! own checks, and how long to wait before the next attempt.

use std::time::Duration;

use ubackup_common::backoff::Backoff;

/// How an attempt ended, before deciding on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// rsync exited with this code.
    Exit(i32),
    /// rsync was killed by a signal we did not send.
    Signal(i32),
    /// Our outer watchdog killed it.
    Watchdog,
    /// rsync could not be started at all.
    Spawn(String),
    /// rsync exited 0 but the landed file is not a regular file.
    NotRegular(String),
    /// Landed, but size or checksum differ from the message.
    Verify(String),
    /// Landing (fsync/rename) failed on our side.
    Local(String),
    /// The TLS peer's certificate was refused (unknown CA, expired, wrong
    /// name) or it refused ours: the same certificates fail the same way.
    TlsAuth(String),
    /// The TLS port could not be reached, or the handshake timed out.
    TlsConnect(String),
}

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: retry with backoff up to `retry` attempts.
    Transient,
    /// ENOSPC: wait until the disk reserve is satisfied, then retry.
    AfterSpace,
    /// The file may be missing only for now (still being renamed on the
    /// client): at most [`BOUNDED_ATTEMPTS`] attempts in all.
    Bounded,
    /// Retrying cannot help (auth, usage, a non-regular source).
    Never,
}

/// Attempts for a file that is missing, vanished or fails verification.
pub const BOUNDED_ATTEMPTS: u32 = 2;

impl AttemptError {
    pub fn retry(&self) -> Retry {
        match self {
            AttemptError::Exit(code) => match code {
                10 | 12 | 20 | 30 | 35 => Retry::Transient,
                11 => Retry::AfterSpace,
                23 | 24 => Retry::Bounded,
                // 5: auth failed; 1-4: syntax/usage/file selection/unsupported
                // options, which are bugs or config errors on our side
                1..=5 => Retry::Never,
                // anything else (e.g. 13 errors with program diagnostics,
                // 14 IPC, 21/22 waitpid/alloc, 25 max-delete) is unexpected:
                // treat as transient, still bounded by `retry`
                _ => Retry::Transient,
            },
            AttemptError::Signal(_) | AttemptError::Watchdog => Retry::Transient,
            AttemptError::Spawn(_) => Retry::Transient,
            AttemptError::NotRegular(_) => Retry::Never,
            AttemptError::Verify(_) => Retry::Bounded,
            AttemptError::Local(_) => Retry::Transient,
            AttemptError::TlsAuth(_) => Retry::Never,
            AttemptError::TlsConnect(_) => Retry::Transient,
        }
    }

    /// May another attempt follow attempt number `attempt` (1-based)?
    pub fn may_retry(&self, attempt: u32, max_attempts: u32) -> bool {
        match self.retry() {
            Retry::Never => false,
            Retry::Bounded => attempt < max_attempts.min(BOUNDED_ATTEMPTS),
            Retry::Transient | Retry::AfterSpace => attempt < max_attempts,
        }
    }
}

impl std::error::Error for AttemptError {}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Exit(c) => write!(f, "rsync exit code {c} ({})", exit_meaning(*c)),
            AttemptError::Signal(s) => write!(f, "rsync killed by signal {s}"),
            AttemptError::Watchdog => {
                write!(f, "rsync exceeded the watchdog deadline and was killed")
            }
            AttemptError::Spawn(e) => write!(f, "cannot start rsync: {e}"),
            AttemptError::NotRegular(e) => write!(f, "{e}"),
            AttemptError::Verify(e) => write!(f, "verification failed: {e}"),
            AttemptError::Local(e) => write!(f, "landing failed: {e}"),
            AttemptError::TlsAuth(e) => write!(f, "TLS authentication failed: {e}"),
            AttemptError::TlsConnect(e) => write!(f, "TLS connection failed: {e}"),
        }
    }
}

pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files",
        4 => "requested action not supported",
        5 => "error starting client-server protocol, e.g. auth failed",
        10 => "error in socket I/O, e.g. connection refused",
        11 => "error in file I/O, e.g. no space left",
        12 => "error in rsync protocol data stream",
        13 => "errors with program diagnostics",
        14 => "error in IPC code",
        20 => "received SIGUSR1 or SIGINT",
        21 => "some error returned by waitpid()",
        22 => "error allocating core memory buffers",
        23 => "partial transfer due to error, e.g. file missing",
        24 => "partial transfer due to vanished source files",
        25 => "--max-delete limit stopped deletions",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        _ => "unknown",
    }
}

/// The longest wait between two attempts of one transfer.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Delay before attempt `next` (2-based): `base`, doubling, capped at
/// [`BACKOFF_CAP`].
pub fn backoff(base: Duration, next: u32) -> Duration {
    Backoff::new(base, BACKOFF_CAP).delay(next.saturating_sub(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_table() {
        for c in [10, 12, 20, 30, 35] {
            assert_eq!(AttemptError::Exit(c).retry(), Retry::Transient, "{c}");
        }
        assert_eq!(AttemptError::Exit(11).retry(), Retry::AfterSpace);
        assert_eq!(AttemptError::Exit(23).retry(), Retry::Bounded);
        assert_eq!(AttemptError::Exit(24).retry(), Retry::Bounded);
        assert_eq!(AttemptError::Exit(5).retry(), Retry::Never);
        assert_eq!(AttemptError::Exit(1).retry(), Retry::Never);
        assert_eq!(AttemptError::Watchdog.retry(), Retry::Transient);
    }

    #[test]
    fn bounded_stops_early_and_never_stops_at_once() {
        assert!(AttemptError::Exit(23).may_retry(1, 5));
        assert!(!AttemptError::Exit(23).may_retry(2, 5));
        assert!(!AttemptError::Exit(23).may_retry(1, 1));
        assert!(AttemptError::Exit(10).may_retry(4, 5));
        assert!(!AttemptError::Exit(10).may_retry(5, 5));
        assert!(!AttemptError::Exit(5).may_retry(1, 5));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(500);
        assert_eq!(backoff(b, 2), Duration::from_millis(500));
        assert_eq!(backoff(b, 3), Duration::from_millis(1000));
        assert_eq!(backoff(b, 4), Duration::from_millis(2000));
        assert_eq!(backoff(b, 40), Duration::from_secs(60));
    }
}
