//! Times as operators type and read them: local time, to the second
//! (the catalog's [`ubackup_catalog::time`], shared with the catalog API),
//! and byte counts.

pub use ubackup_catalog::time::{parse_at, show};

/// A byte count for people: `1.5 GiB`.
pub fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n.max(0) as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_at() {
        assert_eq!(parse_at("@1763800000").unwrap(), 1_763_800_000_999);
        assert_eq!(parse_at("1763800000123").unwrap(), 1_763_800_000_123);
        assert_eq!(parse_at("2025-11-22T08:26:40Z").unwrap(), 1_763_800_000_000);
        assert_eq!(
            parse_at("2025-11-22T16:26:40+08:00").unwrap(),
            1_763_800_000_000
        );
        let minute = parse_at("2025-11-22 10:00").unwrap();
        let second = parse_at("2025-11-22 10:00:00").unwrap();
        assert_eq!(minute - second, 59_000, "a minute covers its whole minute");
        let day = parse_at("2025-11-22").unwrap();
        assert_eq!(day, parse_at("2025-11-22 23:59:59").unwrap());
        assert_eq!(
            parse_at(&show(1_763_800_000_000)).unwrap(),
            1_763_800_000_999,
            "list's times read back"
        );
        let e = parse_at("yesterday").unwrap_err();
        assert!(
            e.contains("`yesterday` is not a time") && e.contains("2026-11-20 10:00"),
            "{e}"
        );
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
