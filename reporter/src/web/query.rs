//! Strict parsing of query strings and form bodies: an unknown or repeated
//! parameter, or a value that does not parse, is a 400 naming the
//! parameter and what would be valid. An empty value means "not set" (a
//! form's empty `<select>` option sends `business=`).

use std::collections::BTreeMap;
use std::str::FromStr;

use super::error::WebError;

/// The parameters of one request, checked against the names a page takes.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or
    /// a form body). `allowed` lists every name the page understands.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, WebError> {
        let mut values = BTreeMap::new();
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Params { values });
        };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(WebError::bad_request(format!(
                    "unknown parameter `{k}`; this page takes {}",
                    if allowed.is_empty() {
                        "no parameters".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(WebError::bad_request(format!(
                    "parameter `{k}` is given more than once"
                )));
            }
        }
        Ok(Params { values })
    }

    /// From a form body (bytes that must be UTF-8).
    pub fn form(body: &[u8], allowed: &[&str]) -> Result<Params, WebError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| WebError::bad_request("the form body is not UTF-8"))?;
        Self::parse(Some(text), allowed)
    }

    /// A text value; None when absent or empty.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required text value.
    pub fn required(&self, key: &str, what: &str) -> Result<&str, WebError> {
        self.text(key).ok_or_else(|| {
            WebError::bad_request(format!("parameter `{key}` is missing; expected {what}"))
        })
    }

    /// A number within `range`; None when absent or empty.
    pub fn number<T>(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<Option<T>, WebError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(v) = self.text(key) else {
            return Ok(None);
        };
        let bad = || {
            WebError::bad_request(format!(
                "parameter `{key}`: `{v}` is not valid; expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        };
        let n: T = v.trim().parse().map_err(|_| bad())?;
        if !range.contains(&n) {
            return Err(bad());
        }
        Ok(Some(n))
    }

    /// One of `choices`; None when absent or empty.
    pub fn choice(&self, key: &str, choices: &[&str]) -> Result<Option<&str>, WebError> {
        match self.text(key) {
            None => Ok(None),
            Some(v) if choices.contains(&v) => Ok(Some(v)),
            Some(v) => Err(WebError::bad_request(format!(
                "parameter `{key}`: `{v}` is not valid; expected one of {}",
                choices.join(", ")
            ))),
        }
    }
}

/// Builds a query string (`?a=1&b=x`) from the set values, for links that
/// keep a page's filters.
pub fn to_query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", s.finish())
    } else {
        String::new()
    }
}

/// `%XX` decoded (lossy UTF-8), for showing a requested path.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parameters() {
        let p = Params::parse(
            Some("days=3&business=a%3Cb&type="),
            &["days", "business", "type"],
        )
        .unwrap();
        assert_eq!(p.number::<i64>("days", 1..=31).unwrap(), Some(3));
        assert_eq!(p.text("business"), Some("a<b"));
        assert_eq!(p.text("type"), None);
        let e = Params::parse(Some("dayz=3"), &["days"]).unwrap_err();
        assert!(
            e.detail.contains("unknown parameter `dayz`"),
            "{}",
            e.detail
        );
        let e = Params::parse(Some("days=1&days=2"), &["days"]).unwrap_err();
        assert!(e.detail.contains("more than once"), "{}", e.detail);
        let p = Params::parse(Some("days=x"), &["days"]).unwrap();
        let e = p.number::<i64>("days", 1..=31).unwrap_err();
        assert!(e.detail.contains("`x` is not valid") && e.detail.contains("1 to 31"));
        let p = Params::parse(Some("days=99"), &["days"]).unwrap();
        assert!(p.number::<i64>("days", 1..=31).is_err());
        assert_eq!(percent_decode("/%3Cscript%3E%2"), "/<script>%2");
        assert_eq!(
            to_query(&[("a", Some("x y")), ("b", None), ("c", Some(""))]),
            "?a=x+y"
        );
    }
}
