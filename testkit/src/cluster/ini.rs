//! Config files for the cluster's processes: a base text (a shipped example,
//! or an empty `[global]` for a generated one) and key edits on top, so the
//! shipped files run as they are with only paths, ports and names changed.

use std::path::Path;

/// Sets `key = value` in `[section]` of an INI text: replaces the key's line,
/// or adds it at the end of the section (the section is appended if
/// missing).
pub fn ini_set(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut out = Vec::new();
    let mut in_sec = false;
    let mut done = false;
    let is_key = |l: &str| {
        l.split('=').next().is_some_and(|k| k.trim() == key)
            && l.contains('=')
            && !l.trim_start().starts_with(['#', ';'])
    };
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            if in_sec && !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            in_sec = line.trim() == header;
        } else if in_sec && is_key(line) {
            if !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        if !in_sec {
            out.push(String::new());
            out.push(header);
        }
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// Removes `key` from `[section]`.
pub fn ini_del(text: &str, section: &str, key: &str) -> String {
    let header = format!("[{section}]");
    let mut in_sec = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            in_sec = line.trim() == header;
        } else if in_sec
            && line.contains('=')
            && line.split('=').next().is_some_and(|k| k.trim() == key)
            && !line.trim_start().starts_with(['#', ';'])
        {
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

/// One config file being put together; every edit is to `[global]`.
#[derive(Debug, Clone)]
pub struct Conf {
    text: String,
}

impl Conf {
    /// A generated file: a comment saying who wrote it, and `[global]`.
    pub fn generated(by: &str) -> Conf {
        Conf {
            text: format!("# written by {by}\n[global]\n"),
        }
    }

    /// A shipped file's text as the base.
    pub fn from_text(text: impl Into<String>) -> Conf {
        Conf { text: text.into() }
    }

    /// `key = value` in `[global]`.
    pub fn set(mut self, key: &str, value: impl AsRef<str>) -> Conf {
        self.text = ini_set(&self.text, "global", key, value.as_ref());
        self
    }

    /// Removes `key` from `[global]`.
    pub fn del(mut self, key: &str) -> Conf {
        self.text = ini_del(&self.text, "global", key);
        self
    }

    /// Every pair in order; an empty value removes the key.
    pub fn apply<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Conf {
        for (k, v) in pairs {
            self = if v.as_ref().is_empty() {
                self.del(k.as_ref())
            } else {
                self.set(k.as_ref(), v)
            };
        }
        self
    }

    /// Appends raw text (another section).
    pub fn append(mut self, raw: &str) -> Conf {
        self.text.push_str(raw);
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.text)
    }
}
