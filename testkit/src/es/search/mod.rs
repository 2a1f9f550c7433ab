//! `GET`/`POST /<index>/_search` and `_count`: only refreshed documents
//! are visible (an index refreshes itself at most 1 s after a write when
//! searched), queries are parsed ([`query`]) and compiled for each index's
//! mapping ([`compile`]), sorts follow ES 8's rules ([`sort`]), then paging
//! (`size`, `from`, `search_after`), `track_total_hits` and `_source`.

use serde_json::{json, Map, Value};

use super::error::EsErr;
use super::http::{parse_json_body, Call, Reply};
use super::indices::resolve_indices;
use super::mapping::FieldType;
use super::state::{Doc, StandIn};
use super::values::{norm_value, token_name, Norm};
use compile::{compile, doc_norms, matches, shard_failure};
use query::{parse_query, parsing, Query};
use sort::{cmp_norm, parse_sort};

mod compile;
mod query;
mod sort;

/// `index.max_result_window`.
const MAX_RESULT_WINDOW: i64 = 10000;

const SEARCH_PARAMS: &[&str] = &[
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "size",
    "from",
    "track_total_hits",
    "rest_total_hits_as_int",
    "typed_keys",
    "timeout",
    "request_cache",
    "preference",
    "routing",
    "search_type",
    "_source",
    "_source_includes",
    "_source_excludes",
    "seq_no_primary_term",
    "version",
    "allow_partial_search_results",
    "batched_reduce_size",
    "ccs_minimize_roundtrips",
    "pre_filter_shard_size",
    "max_concurrent_shard_requests",
    "scroll",
];

/// `GET`/`POST /<index>/_search`
pub(super) fn search(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(SEARCH_PARAMS)?;
    let (list, body, started, params) = (c.seg(0), c.body, c.started, &c.params);
    let names = resolve_indices(st, list)?;
    let req = parse_json_body(body)?.unwrap_or(json!({}));
    let obj = req
        .as_object()
        .ok_or_else(|| parsing("Unexpected token".into()))?;
    const KEYS: &[&str] = &[
        "query",
        "sort",
        "size",
        "from",
        "track_total_hits",
        "search_after",
        "_source",
        "timeout",
        "seq_no_primary_term",
        "version",
    ];
    for (k, v) in obj {
        if !KEYS.contains(&k.as_str()) {
            return Err(parsing(format!(
                "Unknown key for a {} in [{k}].",
                token_name(v)
            )));
        }
    }
    let q = match obj.get("query") {
        Some(q) => parse_query(q)?,
        None => Query::MatchAll,
    };
    let param_num = |k: &str| {
        params
            .iter()
            .find(|(p, _)| p == k)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    let size = obj
        .get("size")
        .and_then(Value::as_i64)
        .or(param_num("size"))
        .unwrap_or(10);
    let from = obj
        .get("from")
        .and_then(Value::as_i64)
        .or(param_num("from"))
        .unwrap_or(0);
    if size < 0 {
        return Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!("[size] parameter cannot be negative, found [{size}]"),
        ));
    }
    if from + size > MAX_RESULT_WINDOW {
        return Err(shard_failure(&names.first().cloned().unwrap_or_default(), EsErr::new(400, "illegal_argument_exception", format!("Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.", from + size))));
    }
    let source_on = !matches!(obj.get("_source"), Some(Value::Bool(false)));
    type Hit = (String, String, Value, Vec<Option<Norm>>);
    let mut hits: Vec<Hit> = Vec::new();
    // (descending?, field type) per sort key, from the first index
    let mut spec: Option<Vec<(bool, Option<FieldType>)>> = None;
    for name in &names {
        let idx = st.indices.get_mut(name).expect("resolved");
        idx.auto_refresh();
        let compiled = compile(&q, &idx.mapping, name)?;
        let sort = match obj.get("sort") {
            Some(s) => parse_sort(s, &idx.mapping, name)?,
            None => Vec::new(),
        };
        if spec.is_none() && obj.get("sort").is_some() {
            spec = Some(sort.iter().map(|k| (k.desc, k.ty.clone())).collect());
        }
        let mut docs: Vec<(&String, &Doc)> = idx.searchable.iter().collect();
        docs.sort_by_key(|(_, d)| d.seq_no);
        for (id, d) in docs {
            if !matches(&compiled, id, &d.source, &idx.mapping) {
                continue;
            }
            let keys: Vec<Option<Norm>> = sort
                .iter()
                .map(|k| {
                    let ty = k.ty.as_ref()?;
                    let mut vals = doc_norms(&d.source, &k.field, ty, &idx.mapping);
                    vals.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                    // ES's default sort mode: min ascending, max descending
                    if k.desc {
                        vals.pop()
                    } else {
                        vals.into_iter().next()
                    }
                })
                .collect();
            hits.push((name.clone(), id.clone(), d.source.clone(), keys));
        }
    }
    let cmp_keys = |a: &[Option<Norm>], b: &[Option<Norm>], spec: &[(bool, Option<FieldType>)]| {
        for (i, (desc, _)) in spec.iter().enumerate() {
            let o = cmp_norm(&a[i], &b[i], *desc);
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    match (&spec, obj.get("search_after")) {
        (Some(spec), after) => {
            hits.sort_by(|a, b| cmp_keys(&a.3, &b.3, spec));
            if let Some(after) = after {
                let after = after
                    .as_array()
                    .ok_or_else(|| parsing("[search_after] must be an array".into()))?;
                if after.len() != spec.len() {
                    return Err(EsErr::new(
                        400,
                        "illegal_argument_exception",
                        format!(
                            "search_after has {} value(s) but sort has {}.",
                            after.len(),
                            spec.len()
                        ),
                    ));
                }
                if from > 0 {
                    return Err(EsErr::new(
                        400,
                        "illegal_argument_exception",
                        "`from` parameter must be set to 0 when `search_after` is used.",
                    ));
                }
                let after: Vec<Option<Norm>> = spec
                    .iter()
                    .zip(after)
                    .map(|((_, t), v)| t.as_ref().and_then(|t| norm_value(t, v).ok().flatten()))
                    .collect();
                hits.retain(|h| cmp_keys(&h.3, &after, spec) == std::cmp::Ordering::Greater);
            }
        }
        (None, Some(_)) => {
            return Err(EsErr::new(
                400,
                "illegal_argument_exception",
                "Sort must contain at least one field.",
            ));
        }
        (None, None) => {}
    }
    let sort_types: Vec<Option<FieldType>> = spec
        .as_ref()
        .map(|s| s.iter().map(|(_, t)| t.clone()).collect())
        .unwrap_or_default();
    let sort_spec_present = spec.is_some();
    let total = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(from as usize)
        .take(size as usize)
        .map(|(index, id, source, keys)| {
            let mut h = Map::new();
            h.insert("_index".into(), index.into());
            h.insert("_id".into(), id.into());
            h.insert(
                "_score".into(),
                if sort_spec_present {
                    Value::Null
                } else {
                    json!(1.0)
                },
            );
            if source_on {
                h.insert("_source".into(), source);
            }
            if sort_spec_present {
                let vals: Vec<Value> = keys
                    .iter()
                    .zip(&sort_types)
                    .map(|(k, t)| match (k, t) {
                        (Some(n), Some(t)) => n.to_json(t),
                        _ => Value::Null,
                    })
                    .collect();
                h.insert("sort".into(), vals.into());
            }
            Value::Object(h)
        })
        .collect();
    let mut hits_obj = Map::new();
    match obj.get("track_total_hits") {
        Some(Value::Bool(false)) => {}
        Some(Value::Number(n)) => {
            let lim = n.as_u64().unwrap_or(10000) as usize;
            hits_obj.insert("total".into(), json!({"value": total.min(lim), "relation": if total > lim { "gte" } else { "eq" }}));
        }
        Some(Value::Bool(true)) => {
            hits_obj.insert("total".into(), json!({"value": total, "relation": "eq"}));
        }
        _ => {
            hits_obj.insert("total".into(), json!({"value": total.min(10000), "relation": if total > 10000 { "gte" } else { "eq" }}));
        }
    }
    hits_obj.insert(
        "max_score".into(),
        if sort_spec_present || total == 0 {
            Value::Null
        } else {
            json!(1.0)
        },
    );
    hits_obj.insert("hits".into(), page.into());
    let n = names.len();
    Ok(Reply::ok(json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0},
        "hits": Value::Object(hits_obj)
    })))
}

/// `GET`/`POST /<index>/_count`
pub(super) fn count(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[
        "ignore_unavailable",
        "allow_no_indices",
        "expand_wildcards",
        "q",
        "routing",
        "preference",
        "min_score",
        "terminate_after",
    ])?;
    let (list, body) = (c.seg(0), c.body);
    let names = resolve_indices(st, list)?;
    let req = parse_json_body(body)?.unwrap_or(json!({}));
    let obj = req
        .as_object()
        .ok_or_else(|| parsing("Unexpected token".into()))?;
    for k in obj.keys() {
        if k != "query" {
            return Err(parsing(format!("request does not support [{k}]")));
        }
    }
    let q = match obj.get("query") {
        Some(q) => parse_query(q)?,
        None => Query::MatchAll,
    };
    let mut total = 0;
    for name in &names {
        let idx = st.indices.get_mut(name).expect("resolved");
        idx.auto_refresh();
        let c = compile(&q, &idx.mapping, name)?;
        total += idx
            .searchable
            .iter()
            .filter(|(id, d)| matches(&c, id, &d.source, &idx.mapping))
            .count();
    }
    let n = names.len();
    Ok(Reply::ok(
        json!({"count": total, "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}}),
    ))
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;
    use serde_json::json;

    use crate::es::test_client::{client, json_body, raw};
    use crate::es::EsStandIn;

    #[tokio::test]
    async fn search_sees_refreshed_documents_with_filters_sort_and_paging() {
        let es = EsStandIn::start();
        let c = client(&es);
        let m = json!({"mappings": {"properties": {"k": {"type": "keyword"}, "t": {"type": "date", "format": "epoch_millis"}, "n": {"type": "integer"}, "msg": {"type": "text"}}}});
        raw(&c, Method::Put, "/s", json_body(m)).await;
        let mut body = String::new();
        for i in 0..6 {
            body.push_str(&format!(
                "{{\"index\":{{\"_id\":\"d{i}\"}}}}\n{{\"k\":\"{}\",\"t\":{},\"n\":{i}}}\n",
                if i % 2 == 0 { "even" } else { "odd" },
                1000 + i
            ));
        }
        raw(&c, Method::Post, "/s/_bulk", Some(body)).await;
        // not refreshed yet: a search right after indexing sees nothing, as in ES
        let (_, v, _) = raw(
            &c,
            Method::Post,
            "/s/_count",
            json_body(json!({"query": {"match_all": {}}})),
        )
        .await;
        assert_eq!(v["count"], 0);
        assert_eq!(raw(&c, Method::Post, "/s/_refresh", None).await.0, 200);
        let q = json!({
            "query": {"bool": {"filter": [{"term": {"k": "even"}}, {"range": {"t": {"gte": 1001, "lte": 1005}}}], "must_not": [{"term": {"n": 4}}]}},
            "sort": [{"t": {"order": "desc"}}], "size": 10
        });
        let (s, v, _) = raw(&c, Method::Post, "/s/_search", json_body(q)).await;
        assert_eq!(s, 200, "{v}");
        let ids: Vec<&str> = v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["d2"]);
        assert_eq!(v["hits"]["hits"][0]["sort"], json!([1002]));
        assert_eq!(v["hits"]["total"], json!({"value": 1, "relation": "eq"}));
        let q = json!({"query": {"terms": {"n": [1, 3, 5]}}, "sort": [{"n": "asc"}], "size": 2, "from": 1});
        let (_, v, _) = raw(&c, Method::Post, "/s/_search", json_body(q)).await;
        let ids: Vec<&str> = v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["d3", "d5"]);
        let q = json!({"query": {"match_all": {}}, "sort": [{"n": "asc"}], "size": 2, "search_after": [3]});
        let (_, v, _) = raw(&c, Method::Post, "/s/_search", json_body(q)).await;
        assert_eq!(v["hits"]["hits"][0]["_id"], "d4");
        // what ES 8 refuses
        for (q, ty) in [
            (
                json!({"query": {"match_all": {}}, "sort": ["_id"]}),
                "search_phase_execution_exception",
            ),
            (
                json!({"query": {"match_all": {}}, "sort": ["msg"]}),
                "search_phase_execution_exception",
            ),
            (
                json!({"query": {"match_all": {}}, "sort": ["nope"]}),
                "search_phase_execution_exception",
            ),
            (json!({"query": {"fuzzy_thing": {}}}), "parsing_exception"),
            (
                json!({"query": {"match_all": {}}, "size": 20000}),
                "search_phase_execution_exception",
            ),
            (json!({"qeury": {}}), "parsing_exception"),
        ] {
            let (s, v, _) = raw(&c, Method::Post, "/s/_search", json_body(q.clone())).await;
            assert_eq!(
                (s, v["error"]["type"].as_str()),
                (400, Some(ty)),
                "{q}: {v}"
            );
        }
        let (s, v, _) = raw(&c, Method::Post, "/missing/_search", json_body(json!({}))).await;
        assert_eq!(
            (s, v["error"]["type"].as_str()),
            (404, Some("index_not_found_exception"))
        );
    }
}
