//! Reading the original UBackup INI files.
//!
//! The files in the field carry inline comments after values
//! (`server_id = 111111  #unique id`), Chinese comment text, `key=value`
//! without spaces and indented lines. serde_ini's tokenizer keeps inline
//! comments inside the value, rejects indented comments and has no line
//! numbers (see shared/CRATES.md), so each line is cleaned here first and then
//! handed to serde_ini's line tokenizer on its own, which lets every error
//! carry its line number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// One `key = value` with the line it came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

/// One `[section]` of an INI file, keys in file order kept by line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: BTreeMap<String, Entry>,
}

/// A parsed INI document: sections in file order.
#[derive(Debug, Clone)]
pub struct IniDoc {
    pub file: PathBuf,
    pub sections: Vec<Section>,
}

impl IniDoc {
    pub fn load(path: &Path) -> Result<IniDoc, ConfigError> {
        let text = std::fs::read(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read config file: {e}")))?;
        let text = String::from_utf8(text).map_err(|e| {
            ConfigError::file(
                path,
                format!(
                    "config file is not valid UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<IniDoc, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut sections: Vec<Section> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let lineno = idx + 1;
            let Some(clean) = clean_line(raw) else {
                continue;
            };
            let mut items =
                serde_ini::Parser::new(serde_ini::parse::OkIter(std::iter::once(clean.as_str())));
            let item = match items.next() {
                Some(Ok(item)) => item,
                Some(Err(e)) => {
                    return Err(ConfigError::line(
                        path,
                        lineno,
                        format!("{e}: {}", raw.trim()),
                    ))
                }
                None => continue,
            };
            match item {
                serde_ini::Item::Section { name } => {
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        return Err(ConfigError::line(
                            path,
                            lineno,
                            "empty section name []".into(),
                        ));
                    }
                    if let Some(prev) = sections.iter().find(|s| s.name == name) {
                        return Err(ConfigError::line(
                            path,
                            lineno,
                            format!(
                                "section [{name}] appears twice (first at line {}); section names must be unique",
                                prev.line
                            ),
                        ));
                    }
                    sections.push(Section {
                        name,
                        line: lineno,
                        entries: BTreeMap::new(),
                    });
                }
                serde_ini::Item::Value { key, value } => {
                    let Some(section) = sections.last_mut() else {
                        return Err(ConfigError::line(
                            path,
                            lineno,
                            format!(
                                "key `{key}` appears before any [section]; put it under [global]"
                            ),
                        ));
                    };
                    if key.is_empty() {
                        return Err(ConfigError::line(
                            path,
                            lineno,
                            "a line `= value` has no key".into(),
                        ));
                    }
                    if let Some(prev) = section.entries.get(&key) {
                        return Err(ConfigError::line(
                            path,
                            lineno,
                            format!(
                                "[{}] key `{key}` is set twice (first at line {})",
                                section.name, prev.line
                            ),
                        ));
                    }
                    section.entries.insert(
                        key,
                        Entry {
                            value,
                            line: lineno,
                        },
                    );
                }
                serde_ini::Item::Comment { .. } | serde_ini::Item::Empty => {}
            }
        }
        Ok(IniDoc {
            file: path.to_path_buf(),
            sections,
        })
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Trims a line and cuts an inline comment off it. Returns `None` for blank
/// and comment-only lines.
///
/// An inline comment starts at `#` or `;` preceded by whitespace, or right
/// after a section's closing `]`. A `#` inside a value (`pass#word`) stays,
/// which is what the original Python ConfigParser users expect.
fn clean_line(raw: &str) -> Option<String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    if line.starts_with('[') {
        if let Some(end) = line.find(']') {
            let rest = line[end + 1..].trim_start();
            if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
                return Some(line[..=end].to_string());
            }
        }
        return Some(line.to_string());
    }
    let mut cut = line.len();
    let mut prev_ws = false;
    for (i, c) in line.char_indices() {
        if (c == '#' || c == ';') && prev_ws {
            cut = i;
            break;
        }
        prev_ws = c.is_whitespace();
    }
    Some(line[..cut].trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IniDoc, ConfigError> {
        IniDoc::parse(Path::new("/etc/test.conf"), text)
    }

    #[test]
    fn inline_comments_and_chinese_text_are_cut() {
        let doc = parse(
            "[global]\nserver_id = 111111  #服务器ID,唯一标识\nmy_ip=10.0.0.1 ;ip\n  # indented comment\n[mysql3306]   #一个section\nscript = sh /x.sh /etc/my.cnf #备份脚本\npass = a#b\n",
        )
        .unwrap();
        let g = doc.section("global").unwrap();
        assert_eq!(g.entries["server_id"].value, "111111");
        assert_eq!(g.entries["server_id"].line, 2);
        assert_eq!(g.entries["my_ip"].value, "10.0.0.1");
        let m = doc.section("mysql3306").unwrap();
        assert_eq!(m.entries["script"].value, "sh /x.sh /etc/my.cnf");
        assert_eq!(m.entries["pass"].value, "a#b");
    }

    #[test]
    fn values_keep_inner_equals_and_spaces() {
        let doc = parse("[a]\nscript = sh run.sh --opt=1  two words\n").unwrap();
        assert_eq!(
            doc.section("a").unwrap().entries["script"].value,
            "sh run.sh --opt=1  two words"
        );
    }

    #[test]
    fn key_before_section_names_the_line() {
        let err = parse("\nserver_id = 1\n[global]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/test.conf:2"), "{err}");
        assert!(err.contains("before any [section]"), "{err}");
    }

    #[test]
    fn duplicate_section_and_key_are_errors() {
        let err = parse("[a]\nx=1\n[a]\n").unwrap_err().to_string();
        assert!(err.contains(":3") && err.contains("appears twice"), "{err}");
        let err = parse("[a]\nx=1\nx=2\n").unwrap_err().to_string();
        assert!(err.contains(":3") && err.contains("set twice"), "{err}");
    }

    #[test]
    fn missing_equals_is_a_syntax_error_with_line() {
        let err = parse("[a]\njunk line\n").unwrap_err().to_string();
        assert!(err.contains(":2") && err.contains("missing '='"), "{err}");
    }
}
