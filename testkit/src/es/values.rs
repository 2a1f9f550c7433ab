//! Values: one JSON scalar read for a field type (as a document field or a
//! query term), normalised so that documents, queries and sorts compare
//! alike; ES's date formats; and how ES names a JSON value in its messages.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::error::EsErr;
use super::mapping::FieldType;

/// The Java class ES names when a mapping parameter has the wrong shape.
pub(super) fn java_class(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "class java.lang.String",
        Value::Number(_) => "class java.lang.Integer",
        Value::Bool(_) => "class java.lang.Boolean",
        Value::Array(_) => "class java.util.ArrayList",
        _ => "null",
    }
}

/// A JSON value as ES prints it inside reasons (strings without quotes).
pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON token name ES reports for a value of the wrong kind.
pub(super) fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

/// A value normalised for comparison.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub(super) enum Norm {
    Num(f64),
    Str(String),
    Ip(IpAddr),
    Bool(bool),
}

impl Norm {
    /// Sort value as ES returns it in `hits[].sort`.
    pub(super) fn to_json(&self, ty: &FieldType) -> Value {
        match self {
            Norm::Num(n) => match ty {
                FieldType::Double | FieldType::Float => json!(n),
                _ => json!(*n as i64),
            },
            Norm::Str(s) => json!(s),
            Norm::Ip(ip) => json!(ip.to_string()),
            Norm::Bool(b) => json!(if *b { 1 } else { 0 }),
        }
    }
}

/// Parses one scalar for a field type. `Err` carries the cause ES gives.
pub(super) fn norm_value(ty: &FieldType, v: &Value) -> Result<Option<Norm>, EsErr> {
    let iae = |r: String| EsErr::new(400, "illegal_argument_exception", r);
    if v.is_null() {
        return Ok(None);
    }
    match ty {
        FieldType::Keyword { .. } | FieldType::Text | FieldType::Other(_) => match v {
            Value::String(s) => Ok(Some(Norm::Str(s.clone()))),
            Value::Number(n) => Ok(Some(Norm::Str(n.to_string()))),
            Value::Bool(b) => Ok(Some(Norm::Str(b.to_string()))),
            _ => Err(EsErr::new(
                400,
                "illegal_state_exception",
                format!("Can't get text on a {} at 1:1", token_name(v)),
            )),
        },
        FieldType::Ip => match v {
            Value::String(s) => s
                .parse::<IpAddr>()
                .map(|ip| Some(Norm::Ip(ip)))
                .map_err(|_| iae(format!("'{s}' is not an IP string literal."))),
            other => Err(iae(format!(
                "'{}' is not an IP string literal.",
                plain(other)
            ))),
        },
        FieldType::Date { formats } => {
            let parsed = match v {
                Value::Number(n) if formats.iter().any(|f| f.starts_with("epoch_")) => {
                    n.as_f64().map(|x| {
                        if formats.iter().any(|f| f == "epoch_millis") {
                            x
                        } else {
                            x * 1000.0
                        }
                    })
                }
                Value::String(s) => parse_date_str(s, formats),
                _ => None,
            };
            match parsed {
                Some(ms) => Ok(Some(Norm::Num(ms.trunc()))),
                None => Err(iae(format!(
                    "failed to parse date field [{}] with format [{}]",
                    plain(v),
                    formats.join("||")
                ))),
            }
        }
        FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
            let (lo, hi, name) = match ty {
                FieldType::Integer => (i32::MIN as f64, i32::MAX as f64, "integer"),
                FieldType::Short => (i16::MIN as f64, i16::MAX as f64, "short"),
                FieldType::Byte => (i8::MIN as f64, i8::MAX as f64, "byte"),
                _ => (i64::MIN as f64, i64::MAX as f64, "long"),
            };
            let x = match v {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
                    EsErr::new(
                        400,
                        "number_format_exception",
                        format!("For input string: \"{s}\""),
                    )
                })?,
                other => {
                    return Err(iae(format!(
                        "Current token ({}) not numeric, can not use numeric value accessors",
                        token_name(other)
                    )))
                }
            };
            if !(lo..=hi).contains(&x.trunc()) {
                return Err(iae(format!(
                    "Value [{}] is out of range for {} {name}",
                    plain(v),
                    if name == "integer" { "an" } else { "a" }
                )));
            }
            Ok(Some(Norm::Num(x.trunc())))
        }
        FieldType::Double | FieldType::Float => match v {
            Value::Number(n) => Ok(Some(Norm::Num(n.as_f64().unwrap_or(0.0)))),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|x| Some(Norm::Num(x)))
                .map_err(|_| {
                    EsErr::new(
                        400,
                        "number_format_exception",
                        format!("For input string: \"{s}\""),
                    )
                }),
            other => Err(iae(format!(
                "Current token ({}) not numeric, can not use numeric value accessors",
                token_name(other)
            ))),
        },
        FieldType::Boolean => match v {
            Value::Bool(b) => Ok(Some(Norm::Bool(*b))),
            Value::String(s) if s == "true" => Ok(Some(Norm::Bool(true))),
            Value::String(s) if s == "false" || s.is_empty() => Ok(Some(Norm::Bool(false))),
            other => Err(iae(format!(
                "Failed to parse value [{}] as only [true] or [false] are allowed.",
                plain(other)
            ))),
        },
        FieldType::Object(_) => Err(iae("object field".into())),
    }
}

/// ISO dates (`2026-11-22`, `2026-11-22T05:37:00Z`, with millis) and
/// numeric strings for epoch formats.
fn parse_date_str(s: &str, formats: &[String]) -> Option<f64> {
    for f in formats {
        match f.as_str() {
            "epoch_millis" => {
                if let Ok(x) = s.parse::<f64>() {
                    return Some(x);
                }
            }
            "epoch_second" => {
                if let Ok(x) = s.parse::<f64>() {
                    return Some(x * 1000.0);
                }
            }
            "strict_date_optional_time"
            | "date_optional_time"
            | "strict_date_optional_time_nanos" => {
                if let Some(ms) = parse_iso(s) {
                    return Some(ms as f64);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_iso(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next().map(|x| x.parse().ok()).unwrap_or(Some(1))?;
    let d: i64 = dp.next().map(|x| x.parse().ok()).unwrap_or(Some(1))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || dp.next().is_some() {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let t = t.strip_suffix('Z').unwrap_or(t);
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut tp = hms.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let mi: i64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        let sec: i64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        ms += (h * 3600 + mi * 60 + sec) * 1000;
        if let Some(f) = frac {
            let f3: String = f.chars().take(3).collect();
            if !f.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            ms += format!("{f3:0<3}").parse::<i64>().ok()?;
        }
    }
    Some(ms)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_parse_to_epoch_millis() {
        assert_eq!(parse_iso("1970-01-01"), Some(0));
        assert_eq!(
            parse_iso("2026-11-22T05:37:00.123Z"),
            Some(1_795_325_820_123)
        );
        assert_eq!(parse_iso("2026-13-01"), None);
    }
}
