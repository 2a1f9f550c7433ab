//! `POST`/`PUT /_bulk` and `/<index>/_bulk`: each operation of a parsed
//! body ([`parse`]) runs on its own and gets its own status, `result` and
//! error object, as in ES; injected item faults answer before the document
//! is looked at. An index a bulk writes to is created (from its template)
//! when it does not exist.

use serde_json::{json, Value};

use super::document::{check_doc, insert_path};
use super::error::{index_not_found, validation, EsErr};
use super::http::{Call, Reply};
use super::indices::check_index_name;
use super::state::{now_ms, Doc, StandIn};
use parse::{parse_bulk, BulkOp, OpKind};

mod parse;

/// `POST`/`PUT /_bulk`
pub(super) fn bulk_any(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    bulk(st, None, c)
}

/// `POST`/`PUT /<index>/_bulk`: `<index>` is the default `_index`.
pub(super) fn bulk_index(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    bulk(st, Some(c.seg(0)), c)
}

fn bulk(st: &mut StandIn, default_index: Option<&str>, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[
        "refresh",
        "timeout",
        "wait_for_active_shards",
        "pipeline",
        "routing",
        "require_alias",
        "require_data_stream",
        "_source",
        "_source_includes",
        "_source_excludes",
        "list_executed_pipelines",
        "include_source_on_error",
    ])?;
    let (params, body, started) = (&c.params, c.body, c.started);
    let refresh = match params
        .iter()
        .find(|(k, _)| k == "refresh")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("" | "true" | "wait_for") => true,
        Some(other) => {
            return Err(EsErr::new(
                400,
                "illegal_argument_exception",
                format!("Unknown value for refresh: [{other}]."),
            ))
        }
    };
    let ops = parse_bulk(body, default_index)?;
    let mut items = Vec::with_capacity(ops.len());
    let mut errors = false;
    let mut touched: Vec<String> = Vec::new();
    for op in &ops {
        let n = st.items_received;
        st.items_received += 1;
        let item = execute(st, op, n);
        let status = item.get("status").and_then(Value::as_u64).unwrap_or(500);
        if item.get("error").is_some() {
            errors = true;
        }
        let _ = status;
        if let Some(i) = &op.index {
            touched.push(i.clone());
        }
        items.push(json!({ op.kind.name(): item }));
    }
    if refresh {
        for i in touched {
            if let Some(x) = st.indices.get_mut(&i) {
                x.refresh();
            }
        }
    }
    let mut r = Reply::ok(
        json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items}),
    );
    r.bulk_items = ops.len();
    Ok(r)
}

fn item_error(index: &str, id: &str, uuid: Option<&str>, e: EsErr) -> Value {
    let mut err = e.clone();
    if let Some(u) = uuid {
        err = err.with("index_uuid", u).with("index", index);
    }
    json!({"_index": index, "_id": id, "status": e.status, "error": err.object()})
}

fn injected(status: u16, index: &str, id: &str) -> EsErr {
    match status {
        429 => EsErr::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=53687091] (injected by the stand-in)",
        ),
        400 => EsErr::new(400, "document_parsing_exception", format!("[1:1] failed to parse: injected rejection of document with id '{id}'")),
        409 => EsErr::new(409, "version_conflict_engine_exception", format!("[{id}]: version conflict (injected)")),
        s if s >= 500 => EsErr::new(s, "unavailable_shards_exception", format!("[{index}][0] primary shard is not active Timeout: [1m] (injected by the stand-in)")),
        s => EsErr::new(s, "stand_in_injected_exception", format!("injected status {s}")),
    }
}

fn gen_id(n: u64) -> String {
    // 20 characters, like ES's auto ids
    let x = (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) ^ now_ms() as u128;
    let t: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..20)
        .map(|i| t[((x >> (i * 6)) & 63) as usize] as char)
        .collect()
}

fn execute(st: &mut StandIn, op: &BulkOp, n: u64) -> Value {
    let index = op.index.clone().unwrap_or_default();
    let id = op.id.clone().unwrap_or_else(|| gen_id(n));
    if let Some(status) = st.take_item_fault(&id, n) {
        let uuid = st.indices.get(&index).map(|i| i.uuid.clone());
        return item_error(&index, &id, uuid.as_deref(), injected(status, &index, &id));
    }
    if let Err(e) = check_index_name(&index) {
        return item_error(&index, &id, None, e);
    }
    if !st.indices.contains_key(&index) {
        if op.kind == OpKind::Delete {
            return item_error(&index, &id, None, index_not_found(&index));
        }
        if let Err(e) = st.create_index(&index, None) {
            return item_error(&index, &id, None, e);
        }
    }
    let idx = st.indices.get_mut(&index).expect("index exists");
    let uuid = idx.uuid.clone();
    let shards = json!({"total": 2, "successful": 1, "failed": 0});
    let existing = idx.docs.get(&id).cloned();
    let new_source: Value = match op.kind {
        OpKind::Delete => {
            return match existing {
                Some(d) => {
                    idx.seq_no += 1;
                    idx.docs.remove(&id);
                    idx.touch();
                    json!({"_index": index, "_id": id, "_version": d.version + 1, "result": "deleted", "_shards": shards, "_seq_no": idx.seq_no, "_primary_term": 1, "status": 200})
                }
                None => {
                    idx.seq_no += 1;
                    json!({"_index": index, "_id": id, "_version": 1, "result": "not_found", "_shards": shards, "_seq_no": idx.seq_no, "_primary_term": 1, "status": 404})
                }
            };
        }
        OpKind::Index | OpKind::Create => {
            if op.kind == OpKind::Create {
                if let Some(d) = &existing {
                    return item_error(
                        &index,
                        &id,
                        Some(&uuid),
                        EsErr::new(409, "version_conflict_engine_exception", format!("[{id}]: version conflict, document already exists (current version [{}])", d.version))
                            .with("shard", "0"),
                    );
                }
            }
            match parse_source(&op.source) {
                Ok(v) => v,
                Err(e) => return item_error(&index, &id, Some(&uuid), e),
            }
        }
        OpKind::Update => {
            let u: Value = serde_json::from_str(&op.source).unwrap_or(Value::Null);
            let doc = u.get("doc").cloned();
            let as_upsert = u
                .get("doc_as_upsert")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match (&existing, doc) {
                (Some(cur), Some(d)) => {
                    let mut merged = cur.source.clone();
                    deep_merge(&mut merged, &d);
                    if merged == cur.source
                        && u.get("detect_noop")
                            .and_then(Value::as_bool)
                            .unwrap_or(true)
                    {
                        return json!({"_index": index, "_id": id, "_version": cur.version, "result": "noop", "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": cur.seq_no, "_primary_term": 1, "status": 200});
                    }
                    merged
                }
                (None, Some(d)) if as_upsert => d,
                (None, _) => match u.get("upsert") {
                    Some(up) => up.clone(),
                    None => {
                        return item_error(
                            &index,
                            &id,
                            Some(&uuid),
                            EsErr::new(
                                404,
                                "document_missing_exception",
                                format!("[{id}]: document missing"),
                            )
                            .with("shard", "0"),
                        )
                    }
                },
                (Some(_), None) => {
                    return item_error(
                        &index,
                        &id,
                        Some(&uuid),
                        validation("script or doc is missing"),
                    );
                }
            }
        }
    };
    let Some(obj) = new_source.as_object() else {
        return item_error(
            &index,
            &id,
            Some(&uuid),
            EsErr::new(
                400,
                "document_parsing_exception",
                "[1:1] failed to parse: Malformed content, must start with an object",
            ),
        );
    };
    let mut added = Vec::new();
    let dynamic = idx.mapping.dynamic.clone();
    if let Err(e) = check_doc(
        &idx.mapping.props,
        "",
        obj,
        &id,
        &op.source,
        &dynamic,
        &mut added,
    ) {
        return item_error(&index, &id, Some(&uuid), e);
    }
    for (path, f) in added {
        insert_path(&mut idx.mapping.props, &path, f);
    }
    idx.seq_no += 1;
    let (version, result, status) = match &existing {
        Some(d) => (d.version + 1, "updated", 200),
        None => (1, "created", 201),
    };
    idx.docs.insert(
        id.clone(),
        Doc {
            source: new_source,
            version,
            seq_no: idx.seq_no,
        },
    );
    idx.touch();
    json!({"_index": index, "_id": id, "_version": version, "result": result, "_shards": shards, "_seq_no": idx.seq_no, "_primary_term": 1, "status": status})
}

fn parse_source(raw: &str) -> Result<Value, EsErr> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(EsErr::new(
            400,
            "document_parsing_exception",
            "[1:1] failed to parse: Malformed content, must start with an object",
        )),
        Err(e) => Err(EsErr::new(
            400,
            "document_parsing_exception",
            format!("[1:{}] failed to parse: {e}", e.column()),
        )
        .caused_by(EsErr::new(
            400,
            "x_content_parse_exception",
            format!("[1:{}] {e}", e.column()),
        ))),
    }
}

fn deep_merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(x) if x.is_object() && v.is_object() => deep_merge(x, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;
    use serde_json::json;

    use crate::es::test_client::{client, json_body, raw};
    use crate::es::EsStandIn;

    #[tokio::test]
    async fn malformed_bulk_bodies_are_refused_like_es() {
        let es = EsStandIn::start();
        let c = client(&es);
        let cases: &[(&str, &str, &str)] = &[
            ("{\"index\":{\"_index\":\"i\"}}\n{\"a\":1}", "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"),
            ("{\"index\":{\"_index\":\"i\"}\n{\"a\":1}\n", "x_content_parse_exception", ""),
            ("[\"index\"]\n{}\n", "illegal_argument_exception", "Malformed action/metadata line [1], expected START_OBJECT but found [START_ARRAY]"),
            ("{\"upsert\":{\"_index\":\"i\"}}\n{}\n", "illegal_argument_exception", "Malformed action/metadata line [1], expected field [create], [delete], [index] or [update] but found [upsert]"),
            ("{\"index\":{\"_index\":\"i\",\"_type\":\"doc\"}}\n{}\n", "illegal_argument_exception", "Action/metadata line [1] contains an unknown parameter [_type]"),
            ("{\"index\":{}}\n{}\n", "action_request_validation_exception", "Validation Failed: 1: index is missing;"),
            ("\n", "action_request_validation_exception", "Validation Failed: 1: no requests added;"),
        ];
        for (body, ty, reason) in cases {
            let (s, v, _) = raw(&c, Method::Post, "/_bulk", Some(body.to_string())).await;
            assert_eq!(s, 400, "{body:?}: {v}");
            assert_eq!(v["error"]["type"], *ty, "{body:?}: {v}");
            if !reason.is_empty() {
                assert_eq!(v["error"]["reason"], *reason, "{body:?}");
            }
        }
        let (s, v, _) = raw(
            &c,
            Method::Post,
            "/_bulk?refresh=sometimes",
            Some("{\"index\":{\"_index\":\"i\"}}\n{}\n".into()),
        )
        .await;
        assert_eq!(
            (s, v["error"]["reason"].as_str()),
            (400, Some("Unknown value for refresh: [sometimes]."))
        );
        let (s, v, _) = raw(
            &c,
            Method::Post,
            "/_bulk?bogus=1",
            Some("{\"index\":{\"_index\":\"i\"}}\n{}\n".into()),
        )
        .await;
        assert_eq!(
            (s, v["error"]["reason"].as_str()),
            (
                400,
                Some("request [/_bulk] contains unrecognized parameter: [bogus]")
            )
        );
        assert!(
            es.index_names().is_empty(),
            "a refused request stores nothing"
        );
    }

    #[tokio::test]
    async fn bulk_items_have_es_shapes_and_documents_are_checked_against_the_mapping() {
        let es = EsStandIn::start();
        let c = client(&es);
        let m = json!({"mappings": {"properties": {"ip": {"type": "ip"}, "t": {"type": "date", "format": "epoch_millis"}, "n": {"type": "integer"}, "k": {"type": "keyword"}}}});
        assert_eq!(raw(&c, Method::Put, "/i", json_body(m)).await.0, 200);
        let body = concat!(
            "{\"index\":{\"_id\":\"a\"}}\n{\"ip\":\"10.0.0.1\",\"t\":1763800000000,\"n\":5,\"k\":111111}\n",
            "{\"index\":{\"_id\":\"b\"}}\n{\"ip\":\"not-an-ip\"}\n",
            "{\"index\":{\"_id\":\"c\"}}\n{\"t\":\"yesterday\"}\n",
            "{\"index\":{\"_id\":\"d\"}}\n{\"n\":3000000000}\n",
            "{\"index\":{\"_id\":\"e\"}}\n{\"k\":{\"nested\":1}}\n",
            "{\"index\":{\"_id\":\"f\"}}\n{\"_id\":\"x\"}\n",
            "{\"index\":{\"_id\":\"g\"}}\n{not json}\n",
            "{\"index\":{\"_id\":\"a\"}}\n{\"ip\":\"::1\"}\n",
        );
        let (s, v, _) = raw(&c, Method::Post, "/i/_bulk", Some(body.into())).await;
        assert_eq!(s, 200);
        assert_eq!(v["errors"], true);
        assert!(v["took"].is_u64());
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 8);
        let a = &items[0]["index"];
        assert_eq!(
            (
                a["status"].as_u64(),
                a["result"].as_str(),
                a["_version"].as_i64()
            ),
            (Some(201), Some("created"), Some(1))
        );
        assert_eq!(
            a["_shards"],
            json!({"total": 2, "successful": 1, "failed": 0})
        );
        let b = &items[1]["index"];
        assert_eq!(b["status"], 400);
        assert_eq!(b["error"]["type"], "document_parsing_exception");
        assert!(
            b["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("failed to parse field [ip] of type [ip] in document with id 'b'"),
            "{b}"
        );
        assert_eq!(
            b["error"]["caused_by"]["reason"],
            "'not-an-ip' is not an IP string literal."
        );
        assert_eq!(b["error"]["index"], "i");
        for (i, cause) in [
            (
                2,
                "failed to parse date field [yesterday] with format [epoch_millis]",
            ),
            (3, "Value [3000000000] is out of range for an integer"),
        ] {
            let it = &items[i]["index"];
            assert_eq!(it["status"], 400, "{it}");
            assert_eq!(it["error"]["caused_by"]["reason"], cause, "{it}");
        }
        assert_eq!(
            items[4]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert!(items[5]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("Field [_id] is a metadata field"));
        assert_eq!(
            items[6]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        let again = &items[7]["index"];
        assert_eq!(
            (
                again["status"].as_u64(),
                again["result"].as_str(),
                again["_version"].as_i64()
            ),
            (Some(200), Some("updated"), Some(2))
        );
        assert_eq!(es.doc_count("i"), 1);
        assert_eq!(es.doc("i", "a").unwrap(), json!({"ip": "::1"}));
        assert_eq!(es.doc_version("i", "a"), Some(2));
        // a long keyword without ignore_above is an immense term
        let long = "x".repeat(40_000);
        let (_, v, _) = raw(
            &c,
            Method::Post,
            "/i/_bulk",
            Some(format!(
                "{{\"index\":{{\"_id\":\"l\"}}}}\n{{\"k\":\"{long}\"}}\n"
            )),
        )
        .await;
        assert_eq!(v["items"][0]["index"]["status"], 400);
        assert!(v["items"][0]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("immense term"));
    }
}
