//! A bulk body split and checked the way ES's `BulkRequestParser` does it:
//! the terminating newline, one action/metadata object per line with known
//! parameters only, a source line for everything but `delete`, and the
//! request-level validation errors.

use serde_json::Value;

use crate::es::error::{validation, EsErr};
use crate::es::values::{plain, token_name};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum OpKind {
    Index,
    Create,
    Delete,
    Update,
}

impl OpKind {
    pub(super) fn name(&self) -> &'static str {
        match self {
            OpKind::Index => "index",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Update => "update",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct BulkOp {
    pub(super) kind: OpKind,
    pub(super) index: Option<String>,
    pub(super) id: Option<String>,
    /// The source line as sent (index/create/update).
    pub(super) source: String,
}

/// Splits and checks a bulk body the way ES's BulkRequestParser does.
pub(super) fn parse_bulk(body: &[u8], default_index: Option<&str>) -> Result<Vec<BulkOp>, EsErr> {
    let iae = |r: String| EsErr::new(400, "illegal_argument_exception", r);
    let mut ops = Vec::new();
    let mut line = 0usize;
    let mut from = 0usize;
    let next_marker = |from: usize| -> Result<Option<usize>, EsErr> {
        match body[from..].iter().position(|b| *b == b'\n') {
            Some(p) => Ok(Some(from + p)),
            None if from != body.len() => Err(EsErr::new(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )),
            None => Ok(None),
        }
    };
    let slice = |a: usize, b: usize| -> &[u8] {
        let s = &body[a..b];
        s.strip_suffix(b"\r").unwrap_or(s)
    };
    while let Some(nl) = next_marker(from)? {
        line += 1;
        let raw = slice(from, nl);
        from = nl + 1;
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let action: Value = serde_json::from_slice(raw).map_err(|e| {
            EsErr::new(
                400,
                "x_content_parse_exception",
                format!("[1:{}] {}", e.column(), e),
            )
        })?;
        let obj = action.as_object().ok_or_else(|| {
            iae(format!(
                "Malformed action/metadata line [{line}], expected START_OBJECT but found [{}]",
                token_name(&action)
            ))
        })?;
        let mut it = obj.iter();
        let Some((name, meta)) = it.next() else {
            return Err(iae(format!("Malformed action/metadata line [{line}], expected FIELD_NAME but found [END_OBJECT]")));
        };
        if it.next().is_some() {
            return Err(iae(format!("Malformed action/metadata line [{line}], expected END_OBJECT but found [FIELD_NAME]")));
        }
        let kind = match name.as_str() {
            "index" => OpKind::Index,
            "create" => OpKind::Create,
            "delete" => OpKind::Delete,
            "update" => OpKind::Update,
            other => {
                return Err(iae(format!(
                    "Malformed action/metadata line [{line}], expected field [create], [delete], [index] or [update] but found [{other}]"
                )))
            }
        };
        let meta = match meta {
            Value::Object(m) => m.clone(),
            other => {
                return Err(iae(format!(
                    "Malformed action/metadata line [{line}], expected START_OBJECT or END_OBJECT but found [{}]",
                    token_name(other)
                )))
            }
        };
        let mut op = BulkOp {
            kind,
            index: default_index.map(str::to_string),
            id: None,
            source: String::new(),
        };
        for (k, v) in &meta {
            const PARAMS: &[&str] = &[
                "_index",
                "_id",
                "routing",
                "op_type",
                "version",
                "version_type",
                "if_seq_no",
                "if_primary_term",
                "retry_on_conflict",
                "pipeline",
                "_source",
                "require_alias",
                "require_data_stream",
                "list_executed_pipelines",
                "dynamic_templates",
            ];
            if !PARAMS.contains(&k.as_str()) {
                return Err(iae(format!(
                    "Action/metadata line [{line}] contains an unknown parameter [{k}]"
                )));
            }
            if v.is_array() || (v.is_object() && k != "_source" && k != "dynamic_templates") {
                return Err(iae(format!(
                    "Malformed action/metadata line [{line}], expected a simple value for field [{k}] but found [{}]",
                    token_name(v)
                )));
            }
            match k.as_str() {
                "_index" if !v.is_null() => op.index = Some(plain(v)),
                "_id" if !v.is_null() => op.id = Some(plain(v)),
                "op_type" => match plain(v).as_str() {
                    "create" => op.kind = OpKind::Create,
                    "index" => {}
                    other => {
                        return Err(iae(format!(
                            "opType must be 'create' or 'index', found: [{other}]"
                        )))
                    }
                },
                "version" | "version_type" | "if_seq_no" | "if_primary_term" | "pipeline" => {
                    return Err(EsErr::new(
                        400,
                        "stand_in_unsupported_exception",
                        format!("the stand-in does not implement [{k}] in bulk metadata"),
                    ))
                }
                _ => {}
            }
        }
        if op.kind != OpKind::Delete {
            let Some(nl) = next_marker(from)? else {
                // ES drops an action whose source line is missing
                break;
            };
            line += 1;
            op.source = String::from_utf8_lossy(slice(from, nl)).into_owned();
            from = nl + 1;
            if op.kind == OpKind::Update {
                let u: Value = serde_json::from_str(&op.source).map_err(|e| {
                    EsErr::new(
                        400,
                        "x_content_parse_exception",
                        format!("[1:{}] {}", e.column(), e),
                    )
                })?;
                let uo = u.as_object().ok_or_else(|| {
                    EsErr::new(
                        400,
                        "x_content_parse_exception",
                        "[1:1] [UpdateRequest] failed to parse object",
                    )
                })?;
                for k in uo.keys() {
                    match k.as_str() {
                        "doc" | "upsert" | "doc_as_upsert" | "detect_noop" | "_source" => {}
                        "script" | "scripted_upsert" => {
                            return Err(EsErr::new(
                                400,
                                "stand_in_unsupported_exception",
                                "the stand-in cannot run scripts",
                            ))
                        }
                        other => {
                            return Err(EsErr::new(
                                400,
                                "x_content_parse_exception",
                                format!("[1:2] [UpdateRequest] unknown field [{other}]"),
                            ))
                        }
                    }
                }
            }
        }
        if op.kind != OpKind::Index && op.kind != OpKind::Create && op.id.is_none() {
            return Err(validation(&format!(
                "id is missing for {} request",
                op.kind.name()
            )));
        }
        if let Some(id) = &op.id {
            if id.len() > 512 {
                return Err(validation(&format!(
                    "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                    id.len()
                )));
            }
            if id.is_empty() {
                return Err(validation("if _id is specified it must not be empty"));
            }
        }
        if op.index.is_none() {
            return Err(validation("index is missing"));
        }
        ops.push(op);
    }
    if ops.is_empty() {
        return Err(validation("no requests added"));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_parser_follows_es_rules() {
        let e = parse_bulk(b"{\"index\":{}}\n{\"a\":1}", Some("i")).unwrap_err();
        assert_eq!(
            e.reason,
            "The bulk request must be terminated by a newline [\\n]"
        );
        let e = parse_bulk(b"{\"upsert\":{}}\n{}\n", Some("i")).unwrap_err();
        assert!(e
            .reason
            .as_str()
            .unwrap()
            .contains("expected field [create], [delete], [index] or [update] but found [upsert]"));
        let e = parse_bulk(b"{\"index\":{\"_type\":\"doc\"}}\n{}\n", Some("i")).unwrap_err();
        assert_eq!(
            e.reason,
            "Action/metadata line [1] contains an unknown parameter [_type]"
        );
        let e = parse_bulk(b"{\"index\":{}}\n{}\n", None).unwrap_err();
        assert_eq!(e.ty, "action_request_validation_exception");
        let e = parse_bulk(b"\n", Some("i")).unwrap_err();
        assert_eq!(e.reason, "Validation Failed: 1: no requests added;");
        let ops = parse_bulk(
            b"{\"index\":{\"_id\":\"1\"}}\r\n{\"a\":1}\r\n{\"delete\":{\"_id\":\"2\"}}\n",
            Some("i"),
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].source, "{\"a\":1}");
        assert_eq!(ops[1].kind, OpKind::Delete);
    }
}
