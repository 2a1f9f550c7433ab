//! Typed access to INI sections, with errors that name the file, the line,
//! the section, the key and what would be valid.
//!
//! Each binary has its own config type (client/src/config.rs and so on); they
//! are all built from [`SectionReader`] so that every rejection reads the same.
//! Keys that several binaries read have one reader each here, with their key
//! list and defaults:
//! * [`redis`]: a Redis server (`redis_*`, and the server's `message_redis_*`);
//! * [`cluster`]: `key_prefix` and the results list `message_queue`;
//! * [`logs`]: `log` / `error_log`;
//! * [`catalog`]: the catalog keys (`catalog`, `es_*`), their defaults and the
//!   SQLite path's rules; the Elasticsearch settings themselves are read by
//!   `ubackup_catalog::location::es_settings`, next to the type they fill.
//!
//! A binary's list of known keys is built from those groups and its own keys
//! with [`key_list!`](crate::key_list).

pub mod catalog;
pub mod cluster;
pub mod ini;
pub mod logs;
pub mod redis;

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use self::ini::{IniDoc, Section};

/// A config file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub section: Option<String>,
    pub key: Option<String>,
    pub problem: String,
}

impl ConfigError {
    pub fn file(file: &Path, problem: String) -> Self {
        ConfigError {
            file: file.into(),
            line: None,
            section: None,
            key: None,
            problem,
        }
    }
    pub fn line(file: &Path, line: usize, problem: String) -> Self {
        ConfigError {
            file: file.into(),
            line: Some(line),
            section: None,
            key: None,
            problem,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => write!(f, ": [{s}] {k}: ")?,
            (Some(s), None) => write!(f, ": [{s}]: ")?,
            _ => write!(f, ": ")?,
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Reads typed keys out of one section; every error names where it was.
pub struct SectionReader<'a> {
    file: &'a Path,
    section: &'a Section,
}

impl<'a> SectionReader<'a> {
    pub fn new(doc: &'a IniDoc, section: &'a Section) -> Self {
        SectionReader {
            file: &doc.file,
            section,
        }
    }

    /// The `[name]` section, or an error saying it is missing.
    pub fn required(doc: &'a IniDoc, name: &str) -> Result<Self, ConfigError> {
        match doc.section(name) {
            Some(s) => Ok(Self::new(doc, s)),
            None => Err(ConfigError {
                file: doc.file.clone(),
                line: None,
                section: Some(name.into()),
                key: None,
                problem: format!("section [{name}] is missing"),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.section.name
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    /// An error about `key` in this section.
    pub fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.into(),
            line: self
                .section
                .entries
                .get(key)
                .map(|e| e.line)
                .or(Some(self.section.line)),
            section: Some(self.section.name.clone()),
            key: Some(key.into()),
            problem: problem.into(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.section.entries.contains_key(key)
    }

    /// The raw value; an empty value counts as absent.
    pub fn opt_str(&self, key: &str) -> Option<String> {
        self.section
            .entries
            .get(key)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }

    pub fn str(&self, key: &str, what: &str) -> Result<String, ConfigError> {
        self.opt_str(key)
            .ok_or_else(|| self.error(key, format!("missing; expected {what}")))
    }

    pub fn str_or(&self, key: &str, default: &str) -> String {
        self.opt_str(key).unwrap_or_else(|| default.to_string())
    }

    pub fn opt_parse<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ConfigError> {
        match self.opt_str(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.error(key, format!("`{v}` is not valid; expected {what}"))),
        }
    }

    pub fn parse<T: FromStr>(&self, key: &str, what: &str) -> Result<T, ConfigError> {
        self.opt_parse(key, what)?
            .ok_or_else(|| self.error(key, format!("missing; expected {what}")))
    }

    pub fn parse_or<T: FromStr>(
        &self,
        key: &str,
        what: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.opt_parse(key, what)?.unwrap_or(default))
    }

    /// Like [`parse_or`](Self::parse_or), and the value must lie in `range`;
    /// else "`v` is out of range; expected `expected`".
    pub fn parse_in<T: FromStr + PartialOrd + fmt::Display>(
        &self,
        key: &str,
        what: &str,
        default: T,
        range: RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let v = self.parse_or(key, what, default)?;
        if !range.contains(&v) {
            return Err(self.error(key, format!("`{v}` is out of range; expected {expected}")));
        }
        Ok(v)
    }

    /// Like [`opt_parse`](Self::opt_parse), and 0 is refused with
    /// "`0` is not valid; expected `what`".
    pub fn opt_nonzero<T: FromStr + PartialEq + Default>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.opt_parse::<T>(key, what)? {
            Some(v) if v == T::default() => {
                Err(self.error(key, format!("`0` is not valid; expected {what}")))
            }
            v => Ok(v),
        }
    }

    /// [`opt_nonzero`](Self::opt_nonzero) with a default.
    pub fn nonzero_or<T: FromStr + PartialEq + Default>(
        &self,
        key: &str,
        what: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.opt_nonzero(key, what)?.unwrap_or(default))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.opt_str(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "1" | "yes" | "true" | "on" => Ok(Some(true)),
                "0" | "no" | "false" | "off" => Ok(Some(false)),
                _ => Err(self.error(
                    key,
                    format!("`{v}` is not valid; expected yes/no, true/false, on/off or 1/0"),
                )),
            },
        }
    }

    pub fn opt_path(&self, key: &str) -> Option<PathBuf> {
        self.opt_str(key).map(PathBuf::from)
    }

    pub fn opt_ip(&self, key: &str) -> Result<Option<IpAddr>, ConfigError> {
        self.opt_parse(key, "an IPv4 or IPv6 address such as 10.0.0.5")
    }

    /// Keys present here that `known` does not list, to warn about typos.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        self.section
            .entries
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    pub fn keys(&self) -> impl Iterator<Item = (&String, &String)> {
        self.section.entries.iter().map(|(k, e)| (k, &e.value))
    }

    /// The `<prefix>.<type>` keys as (key, type), each type a plain name
    /// (no `/`, no spaces); else "expected <prefix>.<type> = `example`".
    /// One rule for every per-type key (`keeptime.<type>`, `copies.<type>`).
    pub fn typed_keys(
        &self,
        prefix: &str,
        example: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let dotted = format!("{prefix}.");
        let mut out = Vec::new();
        for (key, _) in self.keys().filter(|(k, _)| k.starts_with(&dotted)) {
            let ty = &key[dotted.len()..];
            if ty.is_empty() || ty.contains('/') || ty.chars().any(char::is_whitespace) {
                return Err(self.error(key, format!("expected {dotted}<type> = {example}")));
            }
            out.push((key.clone(), ty.to_string()));
        }
        Ok(out)
    }
}

/// The keys of `groups`, in order, as one array (see [`key_list!`](crate::key_list)).
/// Fails to compile when `N` is not the number of keys.
pub const fn concat_keys<const N: usize>(groups: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut n = 0;
    let mut g = 0;
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            out[n] = groups[g][i];
            n += 1;
            i += 1;
        }
        g += 1;
    }
    assert!(n == N, "concat_keys: N is not the number of keys");
    out
}

/// One `&'static [&str]` of known keys from several lists, for a `const`:
/// `key_list!(OWN_KEYS, config::redis::QUEUE_REDIS_KEYS, config::logs::KEYS)`.
#[macro_export]
macro_rules! key_list {
    ($($group:expr),+ $(,)?) => {{
        const N: usize = 0 $(+ $group.len())+;
        const KEYS: [&str; N] = $crate::config::concat_keys::<N>(&[$($group),+]);
        &KEYS
    }};
}

/// An rsync daemon login: `user_key` and `file_key` (its password file),
/// both or neither, and a user name that cannot change the meaning of an
/// `rsync://user@host/` URL. Used by the server (`rsync_user`) and by
/// restore (`node_rsync_user`).
pub fn rsync_auth(
    g: &SectionReader,
    user_key: &str,
    file_key: &str,
) -> Result<Option<(String, PathBuf)>, ConfigError> {
    match (g.opt_str(user_key), g.opt_path(file_key)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(g.error(
            file_key,
            format!("missing; {user_key} needs a password file (mode 600)"),
        )),
        (None, Some(_)) => Err(g.error(
            user_key,
            format!("missing; {file_key} needs the user it belongs to"),
        )),
        (Some(u), Some(_)) if u.contains(['@', ':', '/']) || u.chars().any(char::is_whitespace) => {
            Err(g.error(
                user_key,
                format!("`{u}` is not valid; expected an rsync user name without `@`, `:`, `/` or spaces"),
            ))
        }
        (Some(u), Some(p)) => Ok(Some((u, p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_section_key_and_valid_values() {
        let doc = IniDoc::parse(Path::new("/etc/x.conf"), "[global]\nport = abc\n").unwrap();
        let g = SectionReader::required(&doc, "global").unwrap();
        let err = g
            .parse::<u16>("port", "a TCP port 1-65535")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/etc/x.conf:2: [global] port: `abc` is not valid; expected a TCP port 1-65535"
        );
        let err = g.str("host", "a host name").unwrap_err().to_string();
        assert_eq!(
            err,
            "/etc/x.conf:1: [global] host: missing; expected a host name"
        );
        let err = SectionReader::required(&doc, "business")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("section [business] is missing"), "{err}");
    }
}
