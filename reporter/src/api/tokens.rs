//! `api_tokens_file`: who may read (and pin) which host's backups.
//!
//! One token a line, `TOKEN SERVER_IDS [pin]`: SERVER_IDS is a
//! comma-separated list of server ids or `*` (every host); `pin` allows
//! pin/unpin. `#` starts a comment; blank lines are skipped. A token is at
//! least 16 characters without spaces (e.g. `openssl rand -hex 24`).
//!
//! The file must not be readable by group or others (mode 600 or
//! stricter): `serve` refuses to start otherwise. Only blake3 hashes of
//! the tokens are kept; a presented token is hashed and compared with
//! every entry (`blake3::Hash` equality is constant-time, and the loop
//! never stops early), and tokens never appear in a log line or an error.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The hosts a token may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    All,
    Only(BTreeSet<i64>),
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct Grant {
    hash: blake3::Hash,
    pub hosts: Hosts,
    pub pin: bool,
    /// Its line in the file: how log lines name the token.
    pub line: usize,
}

impl Grant {
    pub fn allows(&self, server_id: i64) -> bool {
        match &self.hosts {
            Hosts::All => true,
            Hosts::Only(ids) => ids.contains(&server_id),
        }
    }

    /// `token of line 3 (servers 111111, 222222)`, for messages.
    pub fn describe(&self) -> String {
        let hosts = match &self.hosts {
            Hosts::All => "every server".to_string(),
            Hosts::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("server {}", ids.join(", "))
            }
        };
        format!("the token of line {} ({hosts})", self.line)
    }
}

/// Every token of the file.
#[derive(Debug, Clone)]
pub struct ApiTokens {
    grants: Vec<Grant>,
}

impl ApiTokens {
    /// Reads `path`, refusing a file group or others may read. The error
    /// says what is wrong and where (never a token).
    pub fn load(path: &Path) -> Result<Self, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by group or others (mode {mode:03o}); it holds API tokens: chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file's text; the error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut grants: Vec<Grant> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            let (token, hosts, pin) = match words.as_slice() {
                [t, h] => (*t, *h, false),
                [t, h, "pin"] => (*t, *h, true),
                [_, _, other] => {
                    return Err(format!("line {line}: `{other}` is not `pin`; expected TOKEN SERVER_IDS [pin]"))
                }
                _ => {
                    return Err(format!(
                        "line {line}: expected TOKEN SERVER_IDS [pin] (SERVER_IDS: comma-separated ids or *)"
                    ))
                }
            };
            if token.chars().count() < 16 {
                return Err(format!(
                    "line {line}: the token is shorter than 16 characters; use e.g. `openssl rand -hex 24`"
                ));
            }
            let hosts = if hosts == "*" {
                Hosts::All
            } else {
                let mut ids = BTreeSet::new();
                for id in hosts.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    ids.insert(id.parse::<i64>().map_err(|_| {
                        format!("line {line}: `{id}` is not a server id; expected comma-separated numbers or *")
                    })?);
                }
                if ids.is_empty() {
                    return Err(format!(
                        "line {line}: no server ids; expected comma-separated numbers or *"
                    ));
                }
                Hosts::Only(ids)
            };
            let hash = blake3::hash(token.as_bytes());
            if let Some(g) = grants.iter().find(|g| g.hash == hash) {
                return Err(format!("line {line}: the same token as line {}", g.line));
            }
            grants.push(Grant {
                hash,
                hosts,
                pin,
                line,
            });
        }
        Ok(ApiTokens { grants })
    }

    /// The grant of `presented`, comparing it with every entry.
    pub fn find(&self, presented: &str) -> Option<&Grant> {
        let h = blake3::hash(presented.as_bytes());
        let mut found = None;
        for g in &self.grants {
            if g.hash == h {
                found = Some(g);
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_errors() {
        let t = ApiTokens::parse(
            "# tokens\n\n0123456789abcdefAAAA 111111  # host a\n0123456789abcdefBBBB 1,2 pin\nffffffffffffffffffff *\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        let a = t.find("0123456789abcdefAAAA").unwrap();
        assert!(a.allows(111111) && !a.allows(2) && !a.pin && a.line == 3);
        let b = t.find("0123456789abcdefBBBB").unwrap();
        assert!(b.allows(2) && b.pin);
        assert!(t.find("ffffffffffffffffffff").unwrap().allows(42));
        assert!(t.find("0123456789abcdefAAA").is_none());
        for (bad, says) in [
            ("short 1\n", "line 1: the token is shorter"),
            ("0123456789abcdefAAAA x\n", "`x` is not a server id"),
            ("0123456789abcdefAAAA 1 write\n", "`write` is not `pin`"),
            ("0123456789abcdefAAAA\n", "expected TOKEN SERVER_IDS"),
            (
                "0123456789abcdefAAAA 1\n0123456789abcdefAAAA 2\n",
                "line 2: the same token as line 1",
            ),
        ] {
            let e = ApiTokens::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(
                !e.contains("0123456789abcdef"),
                "the error shows the token: {e}"
            );
        }
    }
}
