//! Real-time reads: `GET`/`HEAD /<index>/_doc/<id>` and `_mget` see every
//! written document, refreshed or not, as in ES.

use serde_json::{json, Value};

use super::error::{index_not_found, validation, EsErr};
use super::http::{parse_json_body, Call, Reply};
use super::state::{Doc, StandIn};
use super::values::plain;

const MGET_PARAMS: &[&str] = &[
    "realtime",
    "refresh",
    "routing",
    "preference",
    "_source",
    "_source_includes",
    "_source_excludes",
    "stored_fields",
];

/// `GET`/`HEAD /<index>/_doc/<id>`
pub(super) fn doc(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[
        "realtime",
        "refresh",
        "routing",
        "preference",
        "_source",
        "_source_includes",
        "_source_excludes",
        "stored_fields",
        "version",
        "version_type",
    ])?;
    Ok(get_doc(st, c.seg(0), c.seg(2)))
}

/// `GET`/`POST /_mget`
pub(super) fn mget_any(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(MGET_PARAMS)?;
    mget(st, None, c.body)
}

/// `GET`/`POST /<index>/_mget`
pub(super) fn mget_index(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(MGET_PARAMS)?;
    mget(st, Some(c.seg(0)), c.body)
}

fn doc_meta(index: &str, id: &str, d: &Doc) -> Value {
    json!({"_index": index, "_id": id, "_version": d.version, "_seq_no": d.seq_no, "_primary_term": 1, "found": true, "_source": d.source})
}

fn get_doc(st: &StandIn, index: &str, id: &str) -> Reply {
    let Some(i) = st.indices.get(index) else {
        return Reply::err(index_not_found(index));
    };
    match i.docs.get(id) {
        Some(d) => Reply::ok(doc_meta(index, id, d)),
        None => Reply::status(404, json!({"_index": index, "_id": id, "found": false})),
    }
}

fn mget(st: &StandIn, idx: Option<&str>, body: &[u8]) -> Result<Reply, EsErr> {
    let req = parse_json_body(body)?.ok_or_else(|| validation("no documents to get"))?;
    let obj = req
        .as_object()
        .ok_or_else(|| EsErr::new(400, "parsing_exception", "Unexpected token"))?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (k, v) in obj {
        match k.as_str() {
            "ids" => {
                let Some(index) = idx else {
                    return Err(validation("index is missing for doc 0"));
                };
                for id in v
                    .as_array()
                    .ok_or_else(|| EsErr::new(400, "parsing_exception", "ids must be an array"))?
                {
                    wanted.push((index.to_string(), plain(id)));
                }
            }
            "docs" => {
                for d in v
                    .as_array()
                    .ok_or_else(|| EsErr::new(400, "parsing_exception", "docs must be an array"))?
                {
                    let index = d
                        .get("_index")
                        .and_then(Value::as_str)
                        .or(idx)
                        .ok_or_else(|| validation("index is missing for doc 0"))?;
                    let id = d
                        .get("_id")
                        .map(plain)
                        .ok_or_else(|| validation("id is missing for doc 0"))?;
                    wanted.push((index.to_string(), id));
                }
            }
            other => {
                return Err(EsErr::new(
                    400,
                    "parsing_exception",
                    format!("unknown key [{other}] for a START_ARRAY, expected [docs] or [ids]"),
                ))
            }
        }
    }
    if wanted.is_empty() {
        return Err(validation("no documents to get"));
    }
    let docs: Vec<Value> = wanted
        .iter()
        .map(|(index, id)| match st.indices.get(index) {
            None => json!({"_index": index, "_id": id, "error": index_not_found(index).body()["error"].clone()}),
            Some(i) => match i.docs.get(id) {
                Some(d) => doc_meta(index, id, d),
                None => json!({"_index": index, "_id": id, "found": false}),
            },
        })
        .collect();
    Ok(Reply::ok(json!({"docs": docs})))
}
