//! A parsed query compiled against one index's mapping (its values read
//! for the fields' types, so a bad value is the shard failure ES reports),
//! and matched against documents.

use serde_json::{json, Value};

use super::query::{parsing, Query};
use crate::es::error::EsErr;
use crate::es::mapping::{FieldType, Mapping};
use crate::es::values::{norm_value, plain, Norm};

/// A query with its values already parsed for the fields' types.
pub(super) enum Compiled {
    All,
    None,
    AnyOf {
        field: String,
        ty: FieldType,
        values: Vec<Norm>,
    },
    Range {
        field: String,
        ty: FieldType,
        bounds: Vec<(String, Norm)>,
    },
    Exists {
        field: String,
    },
    Ids(Vec<String>),
    Bool {
        must: Vec<Compiled>,
        should: Vec<Compiled>,
        must_not: Vec<Compiled>,
        msm: usize,
    },
}

pub(super) fn shard_failure(index: &str, cause: EsErr) -> EsErr {
    let inner = EsErr::new(
        400,
        "query_shard_exception",
        format!(
            "failed to create query: {}",
            cause.reason.as_str().unwrap_or("")
        ),
    )
    .with("index_uuid", "sTaNdIn")
    .with("index", index)
    .caused_by(cause);
    EsErr::new(400, "search_phase_execution_exception", "all shards failed")
        .with("phase", "query")
        .with("grouped", true)
        .with("failed_shards", json!([{"shard": 0, "index": index, "node": "stand-in-node", "reason": inner.object()}]))
        .caused_by(inner)
}

pub(super) fn compile(q: &Query, m: &Mapping, index: &str) -> Result<Compiled, EsErr> {
    let field_ty = |f: &str| m.field(f).map(|x| x.ty.clone());
    Ok(match q {
        Query::MatchAll => Compiled::All,
        Query::MatchNone => Compiled::None,
        Query::Term { field, value } => {
            compile_terms(field, std::slice::from_ref(value), field_ty(field), index)?
        }
        Query::Terms { field, values } => compile_terms(field, values, field_ty(field), index)?,
        Query::Range { field, bounds } => match field_ty(field) {
            None => Compiled::None,
            Some(ty) => {
                let mut out = Vec::new();
                for (op, v) in bounds {
                    if let Some(n) = norm_value(&ty, v).map_err(|e| shard_failure(index, e))? {
                        out.push((op.clone(), n));
                    }
                }
                Compiled::Range {
                    field: field.clone(),
                    ty,
                    bounds: out,
                }
            }
        },
        Query::Exists { field } => Compiled::Exists {
            field: field.clone(),
        },
        Query::Ids(ids) => Compiled::Ids(ids.clone()),
        Query::Bool {
            must,
            filter,
            should,
            must_not,
            msm,
        } => {
            let c = |l: &Vec<Query>| {
                l.iter()
                    .map(|x| compile(x, m, index))
                    .collect::<Result<Vec<_>, _>>()
            };
            let mut all = c(must)?;
            all.extend(c(filter)?);
            let should = c(should)?;
            let default_msm = if all.is_empty() && !should.is_empty() {
                1
            } else {
                0
            };
            Compiled::Bool {
                must: all,
                msm: msm.unwrap_or(default_msm),
                should,
                must_not: c(must_not)?,
            }
        }
    })
}

fn compile_terms(
    field: &str,
    values: &[Value],
    ty: Option<FieldType>,
    index: &str,
) -> Result<Compiled, EsErr> {
    if field == "_id" {
        return Ok(Compiled::Ids(values.iter().map(plain).collect()));
    }
    let Some(ty) = ty else {
        return Ok(Compiled::None);
    };
    let mut out = Vec::new();
    for v in values {
        if v.is_object() || v.is_array() {
            return Err(parsing(format!("[term] query does not support [{field}]")));
        }
        if let Some(n) = norm_value(&ty, v).map_err(|e| shard_failure(index, e))? {
            out.push(n);
        }
    }
    Ok(Compiled::AnyOf {
        field: field.to_string(),
        ty,
        values: out,
    })
}

/// Every value of a dotted path, arrays flattened.
fn values_at<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![doc];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match v {
                Value::Object(o) => {
                    if let Some(x) = o.get(part) {
                        match x {
                            Value::Array(a) => next.extend(a.iter()),
                            one => next.push(one),
                        }
                    }
                }
                Value::Array(a) => {
                    for it in a {
                        if let Some(x) = it.get(part) {
                            next.push(x);
                        }
                    }
                }
                _ => {}
            }
        }
        cur = next;
    }
    cur.into_iter().filter(|v| !v.is_null()).collect()
}

/// Values at `path`, multi-field aware (`name.keyword` reads `name`).
pub(super) fn doc_norms(doc: &Value, path: &str, ty: &FieldType, m: &Mapping) -> Vec<Norm> {
    let mut raw = values_at(doc, path);
    if raw.is_empty() {
        if let Some((parent, _)) = path.rsplit_once('.') {
            if m.field(parent)
                .is_some_and(|f| !matches!(f.ty, FieldType::Object(_)))
            {
                raw = values_at(doc, parent);
            }
        }
    }
    if let FieldType::Keyword {
        ignore_above: Some(n),
    } = ty
    {
        raw.retain(|v| v.as_str().is_none_or(|s| s.chars().count() <= *n));
    }
    raw.into_iter()
        .filter_map(|v| norm_value(ty, v).ok().flatten())
        .collect()
}

fn text_tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub(super) fn matches(c: &Compiled, id: &str, doc: &Value, m: &Mapping) -> bool {
    match c {
        Compiled::All => true,
        Compiled::None => false,
        Compiled::Ids(ids) => ids.iter().any(|x| x == id),
        Compiled::Exists { field } => m.field(field).is_some() && !values_at(doc, field).is_empty(),
        Compiled::AnyOf { field, ty, values } => {
            if *ty == FieldType::Text {
                let toks: Vec<String> = values_at(doc, field)
                    .into_iter()
                    .flat_map(|v| text_tokens(&plain(v)))
                    .collect();
                return values
                    .iter()
                    .any(|q| matches!(q, Norm::Str(s) if toks.contains(s)));
            }
            let have = doc_norms(doc, field, ty, m);
            values.iter().any(|q| have.contains(q))
        }
        Compiled::Range { field, ty, bounds } => doc_norms(doc, field, ty, m).iter().any(|v| {
            bounds.iter().all(|(op, b)| match op.as_str() {
                "gte" => v >= b,
                "gt" => v > b,
                "lte" => v <= b,
                "lt" => v < b,
                _ => true,
            })
        }),
        Compiled::Bool {
            must,
            should,
            must_not,
            msm,
        } => {
            must.iter().all(|q| matches(q, id, doc, m))
                && !must_not.iter().any(|q| matches(q, id, doc, m))
                && should.iter().filter(|q| matches(q, id, doc, m)).count() >= *msm
        }
    }
}
