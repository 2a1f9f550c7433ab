//! Times as operators type and read them: local time, to the second.
//! `ubackup-client` prints and parses them (`list`, `--at`) and the
//! catalog API (`ubackup-reporter serve`) takes `at=` and renders `time`
//! with the same functions, so both speak the same forms.
//!
//! `--at` / `at=` accept `YYYY-MM-DD HH:MM[:SS]` (or with `T`), in the
//! host's local time zone; the same with an explicit offset or `Z`
//! (RFC 3339); a bare date `YYYY-MM-DD`, meaning the end of that day; or
//! `@SECONDS` / a plain number of unix seconds (13 digits: milliseconds).

use chrono::{DateTime, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone};

/// Unix milliseconds of the newest instant `text` covers.
pub fn parse_at(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let digits = t.strip_prefix('@').unwrap_or(t);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        // 13 digits and more are milliseconds (year 2001 onwards)
        return Ok(if digits.len() >= 13 {
            n
        } else {
            n * 1000 + 999
        });
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    // what `list` prints, pasted back
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S %z") {
        return Ok(dt.timestamp_millis() + 999);
    }
    let t2 = t.replace('T', " ");
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&t2, fmt) {
            let end = if fmt.ends_with("%S") { 999 } else { 59_999 };
            return local_ms(naive, text).map(|ms| ms + end);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let naive = d.and_hms_milli_opt(23, 59, 59, 999).expect("valid time");
        return local_ms(naive, text);
    }
    Err(format!(
        "`{text}` is not a time; expected local time like `2026-11-20 10:00` or `2026-11-20 10:00:00`, a date `2026-11-20` (its end), RFC 3339 like `2026-11-20T10:00:00+08:00`, or @UNIX_SECONDS"
    ))
}

fn local_ms(naive: NaiveDateTime, text: &str) -> Result<i64, String> {
    match Local.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Ok(dt.timestamp_millis()),
        // the clock went back: the later of the two covers more
        LocalResult::Ambiguous(_, later) => Ok(later.timestamp_millis()),
        LocalResult::None => Err(format!(
            "`{text}` does not exist in the local time zone (a clock change skipped it)"
        )),
    }
}

/// `2026-11-20 10:00:00 +0800` in local time.
pub fn show(ms: i64) -> String {
    match Local.timestamp_millis_opt(ms) {
        LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => {
            dt.format("%Y-%m-%d %H:%M:%S %z").to_string()
        }
        LocalResult::None => format!("@{}", ms / 1000),
    }
}
