//! The query DSL the stand-in knows: `match_all`, `match_none`, `term`,
//! `terms`, `range`, `exists`, `ids` and `bool`, parsed with ES's
//! `parsing_exception`s; anything else is an unknown query, as ES says of a
//! query it does not have.

use serde_json::Value;

use crate::es::error::EsErr;
use crate::es::values::plain;

#[derive(Debug, Clone)]
pub(super) enum Query {
    MatchAll,
    MatchNone,
    Term {
        field: String,
        value: Value,
    },
    Terms {
        field: String,
        values: Vec<Value>,
    },
    Range {
        field: String,
        bounds: Vec<(String, Value)>,
    },
    Exists {
        field: String,
    },
    Ids(Vec<String>),
    Bool {
        must: Vec<Query>,
        filter: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        msm: Option<usize>,
    },
}

pub(super) fn parsing(reason: String) -> EsErr {
    EsErr::new(400, "parsing_exception", reason)
        .with("line", 1)
        .with("col", 1)
}

pub(super) fn parse_query(v: &Value) -> Result<Query, EsErr> {
    let obj = v
        .as_object()
        .ok_or_else(|| parsing("[_na] query malformed, must start with start_object".into()))?;
    if obj.len() != 1 {
        let keys: Vec<&String> = obj.keys().collect();
        if keys.is_empty() {
            return Err(parsing("query malformed, empty clause found".into()));
        }
        return Err(parsing(format!(
            "[{}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]",
            keys[0]
        )));
    }
    let (name, body) = obj.iter().next().expect("one key");
    let single_field = |body: &Value| -> Result<(String, Value), EsErr> {
        let o = body.as_object().ok_or_else(|| {
            parsing(format!(
                "[{name}] query malformed, no start_object after query name"
            ))
        })?;
        let mut it = o.iter();
        let (f, v) = it.next().ok_or_else(|| {
            parsing(format!(
                "[{name}] query doesn't support multiple fields, found none"
            ))
        })?;
        if let Some((g, _)) = it.next() {
            return Err(parsing(format!(
                "[{name}] query doesn't support multiple fields, found [{f}] and [{g}]"
            )));
        }
        Ok((f.clone(), v.clone()))
    };
    Ok(match name.as_str() {
        "match_all" => Query::MatchAll,
        "match_none" => Query::MatchNone,
        "term" => {
            let (field, v) = single_field(body)?;
            let value = match v {
                Value::Object(o) => {
                    for k in o.keys() {
                        if !["value", "boost", "case_insensitive", "_name"].contains(&k.as_str()) {
                            return Err(parsing(format!("[term] query does not support [{k}]")));
                        }
                    }
                    if o.get("case_insensitive").and_then(Value::as_bool) == Some(true) {
                        return Err(EsErr::new(
                            400,
                            "stand_in_unsupported_exception",
                            "case_insensitive term queries are not supported by the stand-in",
                        ));
                    }
                    o.get("value")
                        .cloned()
                        .ok_or_else(|| parsing("[term] query requires a value".into()))?
                }
                Value::Array(_) => {
                    return Err(parsing(
                        "[term] query does not support array of values".into(),
                    ))
                }
                other => other,
            };
            Query::Term { field, value }
        }
        "terms" => {
            let o = body
                .as_object()
                .ok_or_else(|| parsing("[terms] query malformed".into()))?;
            let fields: Vec<(&String, &Value)> = o
                .iter()
                .filter(|(k, _)| !["boost", "_name"].contains(&k.as_str()))
                .collect();
            if fields.len() != 1 {
                return Err(parsing(
                    "[terms] query does not support multiple fields".into(),
                ));
            }
            let values = fields[0].1.as_array().cloned().ok_or_else(|| {
                parsing(format!("[terms] query does not support [{}]", fields[0].0))
            })?;
            Query::Terms {
                field: fields[0].0.clone(),
                values,
            }
        }
        "range" => {
            let (field, v) = single_field(body)?;
            let o = v
                .as_object()
                .ok_or_else(|| parsing(format!("[range] query does not support [{field}]")))?;
            let mut bounds = Vec::new();
            for (k, x) in o {
                match k.as_str() {
                    "gte" | "gt" | "lte" | "lt" => bounds.push((k.clone(), x.clone())),
                    "format" | "boost" | "time_zone" | "relation" | "_name" => {}
                    other => {
                        return Err(parsing(format!("[range] query does not support [{other}]")))
                    }
                }
            }
            Query::Range { field, bounds }
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| parsing("[exists] must be provided with a [field]".into()))?;
            Query::Exists {
                field: field.to_string(),
            }
        }
        "ids" => {
            let vals = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| parsing("[ids] query malformed, no values".into()))?;
            Query::Ids(vals.iter().map(plain).collect())
        }
        "bool" => {
            let o = body
                .as_object()
                .ok_or_else(|| parsing("[bool] query malformed".into()))?;
            let mut q = Query::Bool {
                must: vec![],
                filter: vec![],
                should: vec![],
                must_not: vec![],
                msm: None,
            };
            if let Query::Bool {
                must,
                filter,
                should,
                must_not,
                msm,
            } = &mut q
            {
                for (k, x) in o {
                    let list = || -> Result<Vec<Query>, EsErr> {
                        match x {
                            Value::Array(a) => a.iter().map(parse_query).collect(),
                            one => Ok(vec![parse_query(one)?]),
                        }
                    };
                    match k.as_str() {
                        "must" => *must = list()?,
                        "filter" => *filter = list()?,
                        "should" => *should = list()?,
                        "must_not" => *must_not = list()?,
                        "minimum_should_match" => {
                            *msm = x
                                .as_u64()
                                .map(|n| n as usize)
                                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        }
                        "boost" | "_name" => {}
                        other => {
                            return Err(parsing(format!("[bool] query does not support [{other}]")))
                        }
                    }
                }
            }
            q
        }
        other => {
            return Err(parsing(format!("unknown query [{other}]"))
                .with("line", 1)
                .with("col", 1))
        }
    })
}
