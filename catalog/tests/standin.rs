//! The Elasticsearch stand-in refuses what ES 8 refuses and answers in ES's
//! shapes, checked through the official client's raw `send`.

use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::Transport;
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::{json, Value};
use ubackup_catalog::es::mapping;
use ubackup_catalog::{Catalog, EsCatalog, EsSettings};
use ubackup_testkit::es::EsStandIn;

fn client(es: &EsStandIn) -> Elasticsearch {
    Elasticsearch::new(Transport::single_node(&es.url()).unwrap())
}

async fn raw(
    c: &Elasticsearch,
    method: Method,
    path: &str,
    body: Option<String>,
) -> (u16, Value, HeaderMap) {
    let resp = c
        .send(method, path, HeaderMap::new(), None::<&()>, body, None)
        .await
        .unwrap();
    let status = resp.status_code().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v, headers)
}

fn json_body(v: Value) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn root_answers_as_es8_with_the_product_header() {
    let es = EsStandIn::start();
    let c = client(&es);
    let (status, v, h) = raw(&c, Method::Get, "/", None).await;
    assert_eq!(status, 200);
    assert!(v["version"]["number"].as_str().unwrap().starts_with("8."));
    assert_eq!(v["tagline"], "You Know, for Search");
    assert_eq!(h.get("x-elastic-product").unwrap(), "Elasticsearch");
    // every response carries it, errors included
    let (status, _, h) = raw(&c, Method::Get, "/missing/_doc/1", None).await;
    assert_eq!(status, 404);
    assert_eq!(h.get("x-elastic-product").unwrap(), "Elasticsearch");
}

#[tokio::test]
async fn old_mapping_syntax_is_refused_like_es8() {
    let es = EsStandIn::start();
    let c = client(&es);
    let (s, v, _) = raw(
        &c,
        Method::Put,
        "/old1",
        json_body(json!({"mappings": {"properties": {"f": {"type": "string"}}}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "mapper_parsing_exception");
    assert_eq!(
        v["error"]["root_cause"][0]["reason"],
        "No handler for type [string] declared on field [f]"
    );
    assert_eq!(v["status"], 400);

    let (s, v, _) = raw(
        &c,
        Method::Put,
        "/old2",
        json_body(json!({"mappings": {"properties": {"f": {"type": "keyword", "index": "not_analyzed"}}}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "mapper_parsing_exception");
    assert_eq!(
        v["error"]["reason"],
        "Failed to parse mapping: Could not convert [f.index] to boolean"
    );
    assert_eq!(
        v["error"]["caused_by"]["caused_by"]["reason"],
        "Failed to parse value [not_analyzed] as only [true] or [false] are allowed."
    );

    // ES 8 has no mapping types
    let (s, v, _) = raw(
        &c,
        Method::Put,
        "/old3",
        json_body(json!({"mappings": {"doc": {"properties": {"f": {"type": "keyword"}}}}})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("Root mapping definition has unsupported parameters"),
        "{v}"
    );

    // a template is checked the same way
    let (s, v, _) = raw(
        &c,
        Method::Put,
        "/_index_template/old",
        json_body(json!({"index_patterns": ["old*"], "template": {"mappings": {"properties": {"f": {"type": "string"}}}}})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["type"], "mapper_parsing_exception");
    // unknown parameters are refused too
    let (s, v, _) = raw(
        &c,
        Method::Put,
        "/old4",
        json_body(json!({"mappings": {"properties": {"f": {"type": "date", "boost": 2}}}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["root_cause"][0]["reason"],
        "unknown parameter [boost] on mapper [f] of type [date]"
    );
    assert!(es.index_names().is_empty(), "nothing was created");
}

#[tokio::test]
async fn our_mapping_request_is_valid_es8_syntax() {
    let es = EsStandIn::start();
    let cat = EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap();
    cat.prepare().await.unwrap();
    // every mapping-carrying request was accepted and carries no pre-ES-5 syntax
    let sent: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(
        sent.len(),
        4,
        "two templates, backups index, instances index: {sent:?}"
    );
    for r in &sent {
        assert_eq!(r.status, 200, "{} {}: {}", r.method, r.path, r.body);
        assert!(
            !r.body.contains("\"string\"") && !r.body.contains("not_analyzed"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        es.mapping("uuzubackup").unwrap(),
        mapping::backup_mappings()
    );
    assert_eq!(
        es.mapping("uuzubackup-instances").unwrap(),
        mapping::instance_mappings()
    );
    let t = es.template("ubackup-uuzubackup").unwrap();
    assert_eq!(t["index_patterns"], json!(["uuzubackup"]));
    assert_eq!(t["template"]["mappings"], mapping::backup_mappings());
    // a second start finds everything and creates nothing
    cat.prepare().await.unwrap();
    assert_eq!(
        es.requests().iter().filter(|r| r.method == "PUT").count(),
        4
    );
    let t = es.template("ubackup-uuzubackup-instances").unwrap();
    assert_eq!(t["index_patterns"], json!(["uuzubackup-instances"]));
    // the template alone gives a re-created index the mapping
    let c = client(&es);
    assert_eq!(raw(&c, Method::Delete, "/uuzubackup", None).await.0, 200);
    let (s, v, _) = raw(
        &c,
        Method::Post,
        "/uuzubackup/_bulk",
        Some("{\"index\":{\"_id\":\"1\"}}\n{\"game_server_ip\":\"10.0.0.1\"}\n".into()),
    )
    .await;
    assert_eq!((s, &v["errors"]), (200, &json!(false)), "{v}");
    assert_eq!(
        es.mapping("uuzubackup").unwrap()["properties"]["game_server_ip"]["type"],
        "ip"
    );
}

#[tokio::test]
async fn creating_an_existing_index_is_resource_already_exists() {
    let es = EsStandIn::start();
    let c = client(&es);
    assert_eq!(
        raw(&c, Method::Put, "/idx", json_body(json!({"mappings": {}})))
            .await
            .0,
        200
    );
    let (s, v, _) = raw(&c, Method::Put, "/idx", json_body(json!({"mappings": {}}))).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "resource_already_exists_exception");
    assert_eq!(v["error"]["index"], "idx");
    assert!(v["error"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("index [idx/"));
    let (s, v, _) = raw(&c, Method::Put, "/Upper", None).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("invalid_index_name_exception"))
    );
    assert_eq!(raw(&c, Method::Head, "/idx", None).await.0, 200);
    assert_eq!(raw(&c, Method::Head, "/nope", None).await.0, 404);
}

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
    let q =
        json!({"query": {"terms": {"n": [1, 3, 5]}}, "sort": [{"n": "asc"}], "size": 2, "from": 1});
    let (_, v, _) = raw(&c, Method::Post, "/s/_search", json_body(q)).await;
    let ids: Vec<&str> = v["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["d3", "d5"]);
    let q =
        json!({"query": {"match_all": {}}, "sort": [{"n": "asc"}], "size": 2, "search_after": [3]});
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

#[tokio::test]
async fn injected_faults_and_delays() {
    let es = EsStandIn::start();
    let c = client(&es);
    es.fail_requests(503, 2);
    for _ in 0..2 {
        let (s, v, _) = raw(&c, Method::Get, "/", None).await;
        assert_eq!((s, v["status"].as_u64()), (503, Some(503)));
    }
    assert_eq!(raw(&c, Method::Get, "/", None).await.0, 200);
    es.fail_item_id("x", 429, 1);
    es.fail_nth_item(1, 400);
    let body = "{\"index\":{\"_index\":\"f\",\"_id\":\"x\"}}\n{}\n{\"index\":{\"_index\":\"f\",\"_id\":\"y\"}}\n{}\n";
    let (_, v, _) = raw(&c, Method::Post, "/_bulk", Some(body.into())).await;
    assert_eq!(v["items"][0]["index"]["status"], 429);
    assert_eq!(
        v["items"][0]["index"]["error"]["type"],
        "es_rejected_execution_exception"
    );
    assert_eq!(v["items"][1]["index"]["status"], 400);
    let (_, v, _) = raw(&c, Method::Post, "/_bulk", Some(body.into())).await;
    assert_eq!(
        v["errors"], false,
        "each fault fired its number of times: {v}"
    );
    es.set_delay(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    raw(&c, Method::Get, "/", None).await;
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));
    es.set_delay(std::time::Duration::ZERO);
    es.set_down(true);
    assert_eq!(
        raw(&c, Method::Post, "/_bulk", Some(body.into())).await.0,
        503
    );
    es.set_down(false);
    assert_eq!(raw(&c, Method::Get, "/", None).await.0, 200);
    assert_eq!(es.request_count("POST", "/_bulk"), 3);
}
