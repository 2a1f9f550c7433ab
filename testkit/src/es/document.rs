//! A document checked against its index's mapping, as ES's document parser
//! does when it indexes: metadata fields, values of the wrong type,
//! "immense" keyword terms, `strict` mappings; and the fields dynamic
//! mapping adds for new keys.

use serde_json::{json, Map, Value};

use super::error::EsErr;
use super::mapping::{type_name, Field, FieldType, Props};
use super::values::{norm_value, plain, token_name};

/// ES refuses keyword terms longer than this (Lucene's term limit).
const MAX_TERM_BYTES: usize = 32766;

/// Column (1-based) of `"name"` in the raw source, for `[1:N]` prefixes.
pub(super) fn column_of(raw: &str, name: &str) -> usize {
    raw.find(&format!("\"{name}\""))
        .map(|i| i + name.len() + 3)
        .unwrap_or(1)
}

/// Checks a document against the mapping, and adds dynamic fields.
/// Returns new dynamic fields to merge into the mapping.
pub(super) fn check_doc(
    props: &Props,
    prefix: &str,
    obj: &Map<String, Value>,
    id: &str,
    raw: &str,
    dynamic: &str,
    added: &mut Vec<(String, Field)>,
) -> Result<(), EsErr> {
    for (k, v) in obj {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if prefix.is_empty()
            && k.starts_with('_')
            && [
                "_id",
                "_index",
                "_source",
                "_routing",
                "_version",
                "_seq_no",
                "_primary_term",
                "_doc_count",
                "_field_names",
                "_ignored",
                "_tier",
                "_data_stream_timestamp",
            ]
            .contains(&k.as_str())
        {
            return Err(EsErr::new(
                400,
                "document_parsing_exception",
                format!("[1:{}] Field [{k}] is a metadata field and cannot be added inside a document. Use the index API request parameters.", column_of(raw, k)),
            ));
        }
        if k.is_empty() {
            return Err(EsErr::new(
                400,
                "document_parsing_exception",
                "[1:2] field name cannot be an empty string",
            ));
        }
        let field = props.get(k);
        let parse_fail = |ty: &FieldType, cause: EsErr| {
            let preview = match v {
                Value::Object(_) => "{…}".to_string(),
                other => plain(other).chars().take(200).collect(),
            };
            EsErr::new(
                400,
                "document_parsing_exception",
                format!(
                    "[1:{}] failed to parse field [{full}] of type [{}] in document with id '{id}'. Preview of field's value: '{preview}'",
                    column_of(raw, k),
                    type_name(ty)
                ),
            )
            .caused_by(cause)
        };
        match field {
            Some(Field { ty: FieldType::Object(inner), .. }) => match v {
                Value::Object(o) => check_doc(inner, &full, o, id, raw, dynamic, added)?,
                Value::Null => {}
                Value::Array(items) => {
                    for it in items {
                        match it {
                            Value::Object(o) => check_doc(inner, &full, o, id, raw, dynamic, added)?,
                            Value::Null => {}
                            _ => {
                                return Err(EsErr::new(400, "document_parsing_exception", format!("[1:{}] object mapping for [{full}] tried to parse field [{k}] as object, but found a concrete value", column_of(raw, k))))
                            }
                        }
                    }
                }
                _ => {
                    return Err(EsErr::new(
                        400,
                        "document_parsing_exception",
                        format!("[1:{}] object mapping for [{full}] tried to parse field [{k}] as object, but found a concrete value", column_of(raw, k)),
                    ))
                }
            },
            Some(f) => {
                let values: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                for one in values {
                    if one.is_object() || one.is_array() {
                        let cause = EsErr::new(400, "illegal_state_exception", format!("Can't get text on a {} at 1:{}", token_name(one), column_of(raw, k)));
                        return Err(parse_fail(&f.ty, cause));
                    }
                    if let FieldType::Keyword { ignore_above } = &f.ty {
                        if let Value::String(s) = one {
                            let ignored = ignore_above.is_some_and(|n| s.chars().count() > n);
                            if !ignored && s.len() > MAX_TERM_BYTES {
                                let prefix: String = s.bytes().take(30).map(|b| format!("{b}, ")).collect();
                                return Err(EsErr::new(
                                    400,
                                    "illegal_argument_exception",
                                    format!(
                                        "Document contains at least one immense term in field=\"{full}\" (whose UTF8 encoding is longer than the max length {MAX_TERM_BYTES}), all of which were skipped. The prefix of the first immense term is: '[{}...]', original message: bytes can be at most {MAX_TERM_BYTES} in length; got {}",
                                        prefix.trim_end_matches(", "),
                                        s.len()
                                    ),
                                )
                                .caused_by(EsErr::new(400, "max_bytes_length_exceeded_exception", format!("bytes can be at most {MAX_TERM_BYTES} in length; got {}", s.len()))));
                            }
                        }
                    }
                    norm_value(&f.ty, one).map_err(|cause| parse_fail(&f.ty, cause))?;
                }
            }
            None => {
                if v.is_null() {
                    continue;
                }
                match dynamic {
                    "strict" => {
                        return Err(EsErr::new(
                            400,
                            "strict_dynamic_mapping_exception",
                            format!(
                                "[1:{}] mapping set to strict, dynamic introduction of [{k}] within [{}] is not allowed",
                                column_of(raw, k),
                                if prefix.is_empty() { "_doc" } else { prefix }
                            ),
                        ))
                    }
                    "false" | "runtime" => {}
                    _ => {
                        if let Some(f) = dynamic_field(v) {
                            if let (FieldType::Object(_), Value::Object(o)) = (&f.ty, v) {
                                let mut nested = Vec::new();
                                check_doc(&Props::new(), &full, o, id, raw, dynamic, &mut nested)?;
                                let mut inner = Props::new();
                                for (path, nf) in nested {
                                    insert_path(&mut inner, path.strip_prefix(&format!("{full}.")).unwrap_or(&path), nf);
                                }
                                added.push((full.clone(), Field { ty: FieldType::Object(inner), raw: json!({}) }));
                            } else {
                                added.push((full.clone(), f));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

pub(super) fn insert_path(props: &mut Props, path: &str, f: Field) {
    match path.split_once('.') {
        None => {
            props.insert(path.to_string(), f);
        }
        Some((head, rest)) => {
            let entry = props.entry(head.to_string()).or_insert_with(|| Field {
                ty: FieldType::Object(Props::new()),
                raw: json!({}),
            });
            if let FieldType::Object(inner) = &mut entry.ty {
                insert_path(inner, rest, f);
            }
        }
    }
}

/// ES's default dynamic mapping of a new field.
fn dynamic_field(v: &Value) -> Option<Field> {
    match v {
        Value::String(_) => Some(Field {
            ty: FieldType::Text,
            raw: json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}),
        }),
        Value::Bool(_) => Some(Field {
            ty: FieldType::Boolean,
            raw: json!({"type": "boolean"}),
        }),
        Value::Number(n) if n.is_f64() => Some(Field {
            ty: FieldType::Float,
            raw: json!({"type": "float"}),
        }),
        Value::Number(_) => Some(Field {
            ty: FieldType::Long,
            raw: json!({"type": "long"}),
        }),
        Value::Object(_) => Some(Field {
            ty: FieldType::Object(Props::new()),
            raw: json!({}),
        }),
        Value::Array(a) => a.iter().find(|x| !x.is_null()).and_then(dynamic_field),
        Value::Null => None,
    }
}
