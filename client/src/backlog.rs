//! Reading what the backup script reported, with the original's semantics.
//!
//! The script writes `back_log`: line 1 `ok` and line 2 the file name
//! (relative to `back_dir`), or line 1 `wrong` and line 2 the reason. Lines
//! are trimmed, as the original's `strip()` does.
//!
//! Full + incremental schemes also have `last_all_log`. The original tells
//! the two apart by one comparison: if `last_all_log` says `ok` and its
//! line 2 is the same file name as `back_log`'s, this run made the full,
//! and the client appends the run's unix time as line 3. Otherwise it is an
//! incremental, and the message carries the full's name (line 2) and time
//! (line 3). A `last_all_log` that is missing, malformed or `wrong` fails the
//! run with "last all back faile".
//!
//! Failure texts start with the original's words (`can not find log file`,
//! `can not parser log`, `log format illegal`, `last all back faile`), so
//! existing searches still match, followed by what was found and where.

use std::io::Write;
use std::path::Path;

/// One log file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogState {
    /// Line 1 `ok`; the lines after it, trimmed.
    Ok(Vec<String>),
    /// Line 1 `wrong`; the lines after it, trimmed.
    Wrong(Vec<String>),
}

/// Why a log file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogError {
    /// The original: `can not find log file`.
    Missing(String),
    /// The original: `can not parser log` (an empty file).
    Empty,
    /// The original: `log format illegal`; holds line 1.
    Illegal(String),
}

impl LogError {
    /// The original's words, then what was found.
    fn describe(&self, what: &str, path: &Path) -> String {
        match self {
            LogError::Missing(e) => {
                format!("can not find log file: {what} {}: {e}", path.display())
            }
            LogError::Empty => format!("can not parser log: {what} {} is empty", path.display()),
            LogError::Illegal(first) => format!(
                "log format illegal: {what} {} line 1 is `{}`; expected `ok` or `wrong`",
                path.display(),
                ubackup_common::validate::printable(first)
            ),
        }
    }
}

/// Parses the text of a log file.
pub fn parse_log(text: &str) -> Result<LogState, LogError> {
    let mut lines = text.lines().map(str::trim);
    let Some(state) = lines.next() else {
        return Err(LogError::Empty);
    };
    let rest: Vec<String> = lines.map(str::to_string).collect();
    match state {
        "ok" => Ok(LogState::Ok(rest)),
        "wrong" => Ok(LogState::Wrong(rest)),
        other => Err(LogError::Illegal(other.to_string())),
    }
}

/// Reads and parses a log file. Invalid UTF-8 is replaced, not fatal: the
/// file name is validated later anyway.
pub fn read_log(path: &Path) -> Result<LogState, LogError> {
    match std::fs::read(path) {
        Ok(bytes) => parse_log(&String::from_utf8_lossy(&bytes)),
        Err(e) => Err(LogError::Missing(e.to_string())),
    }
}

/// What a successful report means for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupKind {
    /// No `last_all_log` configured: every backup stands alone.
    Single,
    /// This run made the full of a full + incremental scheme. The message
    /// carries no `last_all_*` (the original leaves them null / 0).
    Full(FullRecord),
    /// An incremental on top of the full named here.
    Incremental {
        last_all_filename: String,
        last_all_time: i64,
    },
}

/// What happened to `last_all_log` line 3 for a full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullRecord {
    /// The run's time was appended as line 3.
    Appended(i64),
    /// Line 3 was already there: the same full was reported before (a
    /// stale `back_log`, or a re-run); nothing appended.
    AlreadyRecorded(String),
    /// The append failed; the next incremental will fail until the full's
    /// time is recorded. The backup itself is still good.
    AppendFailed(String),
}

/// A successful report: the file to ship and how it relates to a full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// As written on line 2, trimmed; not yet validated.
    pub filename: String,
    pub kind: BackupKind,
}

/// Reads `back_log` (and `last_all_log`), appending `now` to `last_all_log`
/// when this run made the full. `Err` is the message's `log` text.
pub fn interpret(
    back_log: &Path,
    last_all_log: Option<&Path>,
    now: i64,
) -> Result<Reported, String> {
    let filename = match read_log(back_log) {
        Err(e) => return Err(e.describe("back_log", back_log)),
        Ok(LogState::Wrong(rest)) => {
            return Err(match rest.first().filter(|r| !r.is_empty()) {
                // The script's own words, unchanged, as the original sends them.
                Some(reason) => reason.clone(),
                None => format!("wrong: back_log {} says `wrong` but gives no reason on line 2", back_log.display()),
            })
        }
        Ok(LogState::Ok(rest)) => match rest.into_iter().next().filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => {
                return Err(format!(
                    "can not parser log: back_log {} says `ok` but line 2 (the file name) is missing or empty",
                    back_log.display()
                ))
            }
        },
    };
    let Some(last_all_log) = last_all_log else {
        return Ok(Reported {
            filename,
            kind: BackupKind::Single,
        });
    };
    let fail = |detail: String| {
        format!(
            "last all back faile: last_all_log {} {detail}",
            last_all_log.display()
        )
    };
    let full = match read_log(last_all_log) {
        Err(LogError::Missing(e)) => {
            return Err(fail(format!(
                "cannot be read ({e}); a full backup must run first"
            )))
        }
        Err(LogError::Empty) => return Err(fail("is empty".into())),
        Err(LogError::Illegal(first)) => {
            return Err(fail(format!(
                "line 1 is `{}`; expected `ok`",
                ubackup_common::validate::printable(&first)
            )))
        }
        Ok(LogState::Wrong(rest)) => {
            return Err(fail(format!(
                "says the last full backup failed: {}",
                rest.first().map(String::as_str).unwrap_or("")
            )))
        }
        Ok(LogState::Ok(rest)) => rest,
    };
    let full_name = full.first().map(String::as_str).unwrap_or("");
    if full_name.is_empty() {
        return Err(fail(
            "says `ok` but line 2 (the full's file name) is missing or empty".into(),
        ));
    }
    let line3 = full.get(1).map(String::as_str).filter(|t| !t.is_empty());
    if full_name == filename {
        let record = match line3 {
            Some(t) => FullRecord::AlreadyRecorded(t.to_string()),
            None => match append_time(last_all_log, now) {
                Ok(()) => FullRecord::Appended(now),
                Err(e) => FullRecord::AppendFailed(e.to_string()),
            },
        };
        return Ok(Reported {
            filename,
            kind: BackupKind::Full(record),
        });
    }
    let Some(t) = line3 else {
        return Err(fail(format!(
            "names the full `{}` but has no line 3 (its unix time); the client appends it when it reports that full, so the full was not reported by this client",
            ubackup_common::validate::printable(full_name)
        )));
    };
    let last_all_time: i64 = t.parse().map_err(|_| {
        fail(format!(
            "line 3 `{}` is not a unix time in seconds",
            ubackup_common::validate::printable(t)
        ))
    })?;
    Ok(Reported {
        filename,
        kind: BackupKind::Incremental {
            last_all_filename: full_name.to_string(),
            last_all_time,
        },
    })
}

/// Appends `now` as a new line. The original appends without a newline; a
/// script that ended line 2 without one would get `name1763800000`, so a
/// newline is added first when the file does not end with one.
fn append_time(path: &Path, now: i64) -> std::io::Result<()> {
    let ends_with_newline = std::fs::read(path)?.last().is_none_or(|b| *b == b'\n');
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    let sep = if ends_with_newline { "" } else { "\n" };
    f.write_all(format!("{sep}{now}\n").as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn parse_log_states() {
        assert_eq!(
            parse_log("ok\nfile.gz\n"),
            Ok(LogState::Ok(vec!["file.gz".into()]))
        );
        assert_eq!(
            parse_log("  ok \r\n file.gz \r\n"),
            Ok(LogState::Ok(vec!["file.gz".into()]))
        );
        assert_eq!(
            parse_log("wrong\ndisk full\n"),
            Ok(LogState::Wrong(vec!["disk full".into()]))
        );
        assert_eq!(parse_log(""), Err(LogError::Empty));
        assert_eq!(parse_log("OK\nx"), Err(LogError::Illegal("OK".into())));
        assert_eq!(parse_log("\nx"), Err(LogError::Illegal("".into())));
    }

    #[test]
    fn ok_single() {
        let d = dir();
        let bl = d.path().join("back.log");
        std::fs::write(&bl, "ok\nredis_6379_20261122.rdb\n").unwrap();
        let r = interpret(&bl, None, 100).unwrap();
        assert_eq!(
            r,
            Reported {
                filename: "redis_6379_20261122.rdb".into(),
                kind: BackupKind::Single
            }
        );
    }

    #[test]
    fn wrong_sends_the_scripts_reason() {
        let d = dir();
        let bl = d.path().join("back.log");
        std::fs::write(&bl, "wrong\nmysqldump: Got error 2002\n").unwrap();
        assert_eq!(
            interpret(&bl, None, 1).unwrap_err(),
            "mysqldump: Got error 2002"
        );
        std::fs::write(&bl, "wrong\n").unwrap();
        let e = interpret(&bl, None, 1).unwrap_err();
        assert!(e.contains("says `wrong` but gives no reason"), "{e}");
    }

    #[test]
    fn missing_and_malformed_logs() {
        let d = dir();
        let bl = d.path().join("back.log");
        let e = interpret(&bl, None, 1).unwrap_err();
        assert!(
            e.starts_with("can not find log file: back_log ") && e.contains("No such file"),
            "{e}"
        );
        std::fs::write(&bl, "").unwrap();
        let e = interpret(&bl, None, 1).unwrap_err();
        assert!(
            e.starts_with("can not parser log:") && e.ends_with("is empty"),
            "{e}"
        );
        std::fs::write(&bl, "ok\n").unwrap();
        let e = interpret(&bl, None, 1).unwrap_err();
        assert!(e.contains("line 2 (the file name) is missing"), "{e}");
        std::fs::write(&bl, "done\nx.gz\n").unwrap();
        let e = interpret(&bl, None, 1).unwrap_err();
        assert!(
            e.starts_with("log format illegal:") && e.contains("line 1 is `done`"),
            "{e}"
        );
    }

    #[test]
    fn full_then_incrementals() {
        let d = dir();
        let bl = d.path().join("back.log");
        let al = d.path().join("last_all.log");
        // the script made a full: same two lines in both files
        std::fs::write(&bl, "ok\nfull_1.xb\n").unwrap();
        std::fs::write(&al, "ok\nfull_1.xb\n").unwrap();
        let r = interpret(&bl, Some(&al), 1763800000).unwrap();
        assert_eq!(r.kind, BackupKind::Full(FullRecord::Appended(1763800000)));
        assert_eq!(
            std::fs::read_to_string(&al).unwrap(),
            "ok\nfull_1.xb\n1763800000\n"
        );
        // an incremental: back_log only
        std::fs::write(&bl, "ok\nincr_2.xb\n").unwrap();
        let r = interpret(&bl, Some(&al), 1763803600).unwrap();
        assert_eq!(r.filename, "incr_2.xb");
        assert_eq!(
            r.kind,
            BackupKind::Incremental {
                last_all_filename: "full_1.xb".into(),
                last_all_time: 1763800000
            }
        );
        assert_eq!(
            std::fs::read_to_string(&al).unwrap(),
            "ok\nfull_1.xb\n1763800000\n",
            "untouched"
        );
        // the same full reported twice is not appended twice
        std::fs::write(&bl, "ok\nfull_1.xb\n").unwrap();
        let r = interpret(&bl, Some(&al), 1763807200).unwrap();
        assert_eq!(
            r.kind,
            BackupKind::Full(FullRecord::AlreadyRecorded("1763800000".into()))
        );
        assert_eq!(std::fs::read_to_string(&al).unwrap().lines().count(), 3);
    }

    #[test]
    fn full_without_trailing_newline_gets_its_own_line() {
        let d = dir();
        let bl = d.path().join("back.log");
        let al = d.path().join("last_all.log");
        std::fs::write(&bl, "ok\nfull.xb").unwrap();
        std::fs::write(&al, "ok\nfull.xb").unwrap();
        interpret(&bl, Some(&al), 42).unwrap();
        assert_eq!(std::fs::read_to_string(&al).unwrap(), "ok\nfull.xb\n42\n");
    }

    #[test]
    fn last_full_failures() {
        let d = dir();
        let bl = d.path().join("back.log");
        let al = d.path().join("last_all.log");
        std::fs::write(&bl, "ok\nincr.xb\n").unwrap();
        let e = interpret(&bl, Some(&al), 1).unwrap_err();
        assert!(
            e.starts_with("last all back faile: last_all_log")
                && e.contains("a full backup must run first"),
            "{e}"
        );
        std::fs::write(&al, "wrong\nxtrabackup failed\n").unwrap();
        let e = interpret(&bl, Some(&al), 1).unwrap_err();
        assert!(
            e.contains("says the last full backup failed: xtrabackup failed"),
            "{e}"
        );
        std::fs::write(&al, "ok\nfull.xb\n").unwrap();
        let e = interpret(&bl, Some(&al), 1).unwrap_err();
        assert!(e.contains("has no line 3"), "{e}");
        std::fs::write(&al, "ok\nfull.xb\nyesterday\n").unwrap();
        let e = interpret(&bl, Some(&al), 1).unwrap_err();
        assert!(e.contains("line 3 `yesterday` is not a unix time"), "{e}");
        std::fs::write(&al, "").unwrap();
        assert!(interpret(&bl, Some(&al), 1)
            .unwrap_err()
            .ends_with("is empty"));
        std::fs::write(&al, "garbage\n").unwrap();
        assert!(interpret(&bl, Some(&al), 1)
            .unwrap_err()
            .contains("line 1 is `garbage`"));
    }

    #[test]
    fn back_log_failure_wins_over_last_all_log() {
        let d = dir();
        let bl = d.path().join("back.log");
        let al = d.path().join("last_all.log");
        std::fs::write(&bl, "wrong\nfull failed\n").unwrap();
        std::fs::write(&al, "wrong\nfull failed\n").unwrap();
        assert_eq!(interpret(&bl, Some(&al), 1).unwrap_err(), "full failed");
    }
}
