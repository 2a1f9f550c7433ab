//! Checks on names that come from messages or scripts before they reach a
//! filesystem path or an rsync argument.

/// Why a relative name is unsafe, or `Ok` if it is a plain relative path.
///
/// Rejects: empty, absolute, `.`/`..`/empty components, a leading `-` on any
/// component (option injection into rsync), control characters and NUL, and
/// the wildcard characters `* ? [ \` that the rsync daemon expands even with
/// `-s` (CRATES.md). Shell metacharacters are harmless here because nothing
/// built from a message reaches a shell, but wildcards are not.
pub fn check_relative(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if name.starts_with('/') {
        return Err(format!(
            "{what} `{}` is absolute; it must be relative",
            printable(name)
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} `{}` contains control character {:?}",
            printable(name),
            c
        ));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '*' | '?' | '[' | '\\')) {
        return Err(format!(
            "{what} `{}` contains `{c}`, which the rsync daemon would expand as a wildcard",
            printable(name)
        ));
    }
    for comp in name.split('/') {
        match comp {
            "" => {
                return Err(format!(
                    "{what} `{}` has an empty path component (`//` or trailing `/`)",
                    printable(name)
                ))
            }
            "." | ".." => {
                return Err(format!(
                    "{what} `{}` contains `{comp}`; it must stay inside its directory",
                    printable(name)
                ))
            }
            c if c.starts_with('-') => {
                return Err(format!(
                    "{what} `{}` has a component starting with `-` (option injection)",
                    printable(name)
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The name with control characters escaped, safe to print in a log line.
pub fn printable(name: &str) -> String {
    name.chars()
        .flat_map(|c| c.escape_debug())
        .collect::<String>()
        .replace("\\'", "'")
        .replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in [
            "a.tar.gz",
            "db_3306/2026-11-22.xb",
            "x y;$(z)`w`",
            "备份.gz",
            "a-b",
        ] {
            check_relative("filename", ok).unwrap();
        }
    }

    #[test]
    fn unsafe_names_fail_with_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("--rsh=evil", "option injection"),
            ("a/-e", "option injection"),
            ("a\nb", "control character"),
            ("a\0b", "control character"),
            ("*.gz", "wildcard"),
            ("a?", "wildcard"),
            ("a[1]", "wildcard"),
            ("a\\b", "wildcard"),
        ] {
            let err = check_relative("filename", bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
