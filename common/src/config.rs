//! Typed access to INI sections, with errors that name the file, the line,
//! the section, the key and what would be valid.
//!
//! Each binary has its own config type (client/src/config.rs and so on); they
//! are all built from [`SectionReader`] so that every rejection reads the same.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::ini::{IniDoc, Section};

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
