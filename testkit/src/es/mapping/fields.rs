//! One field definition: its type, the parameters that type takes, the
//! boolean parameters ES insists on, date formats and multi-fields.

use serde_json::Value;

use super::{mapper_err, Field, FieldType, Props};
use crate::es::error::EsErr;
use crate::es::values::{java_class, plain};

const LEAF_COMMON: &[&str] = &[
    "type",
    "meta",
    "copy_to",
    "store",
    "index",
    "doc_values",
    "null_value",
    "fields",
    "script",
    "on_script_error",
];

fn params_for(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "keyword" => &[
            "ignore_above",
            "normalizer",
            "eager_global_ordinals",
            "norms",
            "similarity",
            "split_queries_on_whitespace",
            "index_options",
            "time_series_dimension",
        ],
        "text" | "match_only_text" => &[
            "analyzer",
            "search_analyzer",
            "search_quote_analyzer",
            "fielddata",
            "fielddata_frequency_filter",
            "eager_global_ordinals",
            "index_options",
            "index_phrases",
            "index_prefixes",
            "norms",
            "position_increment_gap",
            "similarity",
            "term_vector",
        ],
        "long" | "integer" | "short" | "byte" | "double" | "float" | "half_float"
        | "unsigned_long" => &[
            "coerce",
            "ignore_malformed",
            "time_series_metric",
            "time_series_dimension",
        ],
        "scaled_float" => &[
            "coerce",
            "ignore_malformed",
            "scaling_factor",
            "time_series_metric",
            "time_series_dimension",
        ],
        "date" | "date_nanos" => &["format", "locale", "ignore_malformed", "print_format"],
        "ip" => &["ignore_malformed", "time_series_dimension"],
        "boolean" => &[],
        "wildcard" => &["ignore_above", "null_value"],
        "constant_keyword" => &["value"],
        "flattened" => &[
            "depth_limit",
            "ignore_above",
            "eager_global_ordinals",
            "split_queries_on_whitespace",
            "similarity",
            "index_options",
        ],
        "binary" => &[],
        _ => return None,
    })
}

const OBJECT_PARAMS: &[&str] = &[
    "type",
    "properties",
    "dynamic",
    "enabled",
    "subobjects",
    "include_in_parent",
    "include_in_root",
];

const NAMED_DATE_FORMATS: &[&str] = &[
    "epoch_millis",
    "epoch_second",
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_optional_time_nanos",
    "basic_date",
    "basic_date_time",
    "date",
    "strict_date",
    "date_time",
    "strict_date_time",
    "date_time_no_millis",
    "strict_date_time_no_millis",
    "date_hour_minute_second",
    "strict_date_hour_minute_second",
    "year_month_day",
    "strict_year_month_day",
    "year",
    "strict_year",
];

/// `true`/`false` (bool or string), as ES's nodeBooleanValue accepts.
fn as_mapping_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_dynamic(v: &Value, at: &str) -> Result<String, EsErr> {
    match v {
        Value::Bool(b) => Ok(b.to_string()),
        Value::String(s) if ["true", "false", "strict", "runtime"].contains(&s.as_str()) => {
            Ok(s.clone())
        }
        other => Err(mapper_err(format!(
            "Unable to parse [dynamic] value [{other}] for [{at}]"
        ))),
    }
}

pub(super) fn parse_props(v: &Value, prefix: &str) -> Result<Props, EsErr> {
    let obj = v.as_object().ok_or_else(|| mapper_err(format!("Expected map for property [properties] on field [{prefix}] but got a class java.lang.String")))?;
    let mut out = Props::new();
    for (name, def) in obj {
        if name.is_empty() {
            return Err(mapper_err("field name cannot be an empty string".into()));
        }
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        out.insert(name.clone(), parse_field(&full, def)?);
    }
    Ok(out)
}

pub(super) fn parse_field(full: &str, def: &Value) -> Result<Field, EsErr> {
    let obj = def.as_object().ok_or_else(|| {
        mapper_err(format!(
            "Expected map for property [fields] on field [{full}] but got a {}",
            java_class(def)
        ))
    })?;
    let ty = match obj.get("type") {
        None => "object".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(mapper_err(format!(
                "No handler for type [{other}] declared on field [{full}]"
            )))
        }
    };
    if ty == "object" || ty == "nested" {
        for k in obj.keys() {
            if !OBJECT_PARAMS.contains(&k.as_str()) {
                return Err(mapper_err(format!(
                    "unknown parameter [{k}] on mapper [{full}] of type [{ty}]"
                )));
            }
        }
        if let Some(d) = obj.get("dynamic") {
            parse_dynamic(d, full)?;
        }
        let inner = match obj.get("properties") {
            Some(p) => parse_props(p, full)?,
            None => Props::new(),
        };
        let mut raw = obj.clone();
        raw.remove("properties");
        return Ok(Field {
            ty: FieldType::Object(inner),
            raw: Value::Object(raw),
        });
    }
    let specific = params_for(&ty).ok_or_else(|| {
        mapper_err(format!(
            "No handler for type [{ty}] declared on field [{full}]"
        ))
    })?;
    for (k, v) in obj {
        if !LEAF_COMMON.contains(&k.as_str()) && !specific.contains(&k.as_str()) {
            return Err(mapper_err(format!(
                "unknown parameter [{k}] on mapper [{full}] of type [{ty}]"
            )));
        }
        if [
            "index",
            "store",
            "doc_values",
            "coerce",
            "ignore_malformed",
            "norms",
            "eager_global_ordinals",
            "fielddata",
        ]
        .contains(&k.as_str())
            && as_mapping_bool(v).is_none()
        {
            let inner = EsErr::new(
                400,
                "illegal_argument_exception",
                format!(
                    "Failed to parse value [{}] as only [true] or [false] are allowed.",
                    plain(v)
                ),
            );
            return Err(EsErr::new(
                400,
                "mapper_parsing_exception",
                format!("Could not convert [{full}.{k}] to boolean"),
            )
            .caused_by(inner));
        }
    }
    if let Some(fields) = obj.get("fields") {
        let subs = fields.as_object().ok_or_else(|| {
            mapper_err(format!(
                "Expected map for property [fields] on field [{full}]"
            ))
        })?;
        for (sub, sdef) in subs {
            let f = parse_field(&format!("{full}.{sub}"), sdef)?;
            if matches!(f.ty, FieldType::Object(_)) {
                return Err(mapper_err(format!(
                    "Type [object] cannot be used in multi field [{full}.{sub}]"
                )));
            }
        }
    }
    let ftype = match ty.as_str() {
        "keyword" => {
            let ignore_above = match obj.get("ignore_above") {
                None => None,
                Some(v) => Some(v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    mapper_err(format!("Failed to parse mapping: [ignore_above] on mapper [{full}] of type [keyword] must be an integer, got [{}]", plain(v)))
                })?),
            };
            FieldType::Keyword { ignore_above }
        }
        "text" | "match_only_text" => FieldType::Text,
        "ip" => FieldType::Ip,
        "date" | "date_nanos" => {
            let formats = match obj.get("format") {
                None => vec![
                    "strict_date_optional_time".to_string(),
                    "epoch_millis".to_string(),
                ],
                Some(Value::String(f)) => {
                    let list: Vec<String> = f.split("||").map(str::to_string).collect();
                    for one in &list {
                        if !valid_date_format(one) {
                            return Err(mapper_err(format!("Error parsing [format] on field [{full}]: Invalid format: [{f}]: Unknown pattern letter")));
                        }
                    }
                    list
                }
                Some(other) => {
                    return Err(mapper_err(format!(
                    "Error parsing [format] on field [{full}]: expected a string, got [{other}]"
                )))
                }
            };
            FieldType::Date { formats }
        }
        "long" | "unsigned_long" => FieldType::Long,
        "integer" => FieldType::Integer,
        "short" => FieldType::Short,
        "byte" => FieldType::Byte,
        "double" | "scaled_float" => {
            if ty == "scaled_float" && obj.get("scaling_factor").and_then(Value::as_f64).is_none() {
                return Err(mapper_err(format!("Failed to parse mapping: Field [scaling_factor] is required on mapper [{full}]")));
            }
            FieldType::Double
        }
        "float" | "half_float" => FieldType::Float,
        "boolean" => FieldType::Boolean,
        other => FieldType::Other(other.to_string()),
    };
    Ok(Field {
        ty: ftype,
        raw: def.clone(),
    })
}

fn valid_date_format(f: &str) -> bool {
    if NAMED_DATE_FORMATS.contains(&f) {
        return true;
    }
    // a java-time pattern: pattern letters and literals only
    !f.is_empty()
        && f.chars()
            .all(|c| "yMdHhmsSaEuZXxVzGDQqwWek ".contains(c) || "-:/.,T'[]+".contains(c))
        && f.chars().any(|c| c.is_ascii_alphabetic())
}
