//! `sort`: fields, orders and the sorts ES 8 refuses (`_id`, `text`
//! fields, unmapped fields), and how two sort values compare (missing
//! values last).

use serde_json::Value;

use super::compile::shard_failure;
use super::query::parsing;
use crate::es::error::EsErr;
use crate::es::mapping::{FieldType, Mapping};
use crate::es::values::Norm;

pub(super) struct SortKey {
    pub(super) field: String,
    pub(super) desc: bool,
    pub(super) ty: Option<FieldType>,
}

pub(super) fn parse_sort(v: &Value, m: &Mapping, index: &str) -> Result<Vec<SortKey>, EsErr> {
    let list: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    let mut out = Vec::new();
    for s in list {
        let (field, desc) = match &s {
            Value::String(f) => (f.clone(), f == "_score"),
            Value::Object(o) if o.len() == 1 => {
                let (f, spec) = o.iter().next().expect("one");
                let order = match spec {
                    Value::String(x) => x.clone(),
                    Value::Object(so) => {
                        for k in so.keys() {
                            if ![
                                "order",
                                "missing",
                                "unmapped_type",
                                "mode",
                                "format",
                                "numeric_type",
                            ]
                            .contains(&k.as_str())
                            {
                                return Err(parsing(format!("[field_sort] unknown field [{k}]")));
                            }
                        }
                        so.get("order")
                            .and_then(Value::as_str)
                            .unwrap_or(if f == "_score" { "desc" } else { "asc" })
                            .to_string()
                    }
                    _ => return Err(parsing(format!("[sort] malformed for [{f}]"))),
                };
                let desc = match order.as_str() {
                    "asc" => false,
                    "desc" => true,
                    other => {
                        return Err(EsErr::new(
                            400,
                            "illegal_argument_exception",
                            format!("Unknown SortOrder [{other}]"),
                        ))
                    }
                };
                (f.clone(), desc)
            }
            other => return Err(parsing(format!("[sort] malformed: {other}"))),
        };
        if field == "_id" {
            return Err(shard_failure(index, EsErr::new(400, "illegal_argument_exception", "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled")));
        }
        let ty = if field == "_score" || field == "_doc" {
            None
        } else {
            match m.field(&field) {
                None => return Err(shard_failure(index, EsErr::new(400, "query_shard_exception", format!("No mapping found for [{field}] in order to sort on")))),
                Some(f) if f.ty == FieldType::Text => {
                    return Err(shard_failure(index, EsErr::new(400, "illegal_argument_exception", format!("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory."))))
                }
                Some(f) => Some(f.ty.clone()),
            }
        };
        out.push(SortKey { field, desc, ty });
    }
    Ok(out)
}

pub(super) fn cmp_norm(a: &Option<Norm>, b: &Option<Norm>, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        // missing values sort last in both orders (`_last`)
        (None, None) => Equal,
        (None, Some(_)) => Greater,
        (Some(_), None) => Less,
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(y).unwrap_or(Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}
