//! Index endpoints: `PUT`/`GET`/`HEAD`/`DELETE /<index>`, `GET
//! /<index>/_mapping`, `_refresh`, and how an index list (`a,b`, `pat*`,
//! `_all`) resolves. ES's index name rules are here too: bulk requests
//! create indices as well.

use serde_json::json;

use super::error::{index_not_found, EsErr};
use super::http::{no_handler, parse_json_body, Call, Reply};
use super::state::{glob, StandIn};

const REFRESH_PARAMS: &[&str] = &["ignore_unavailable", "allow_no_indices", "expand_wildcards"];

/// `/<index>` names an index only when it does not start with `_`; other
/// one-segment paths are no API the stand-in knows.
fn named_index<'c>(c: &'c Call) -> Option<&'c str> {
    Some(c.seg(0)).filter(|i| !i.starts_with('_'))
}

/// `PUT /<index>`
pub(super) fn put(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    let Some(idx) = named_index(c) else {
        return Ok(no_handler(c));
    };
    c.check_params(&["wait_for_active_shards", "timeout", "master_timeout"])?;
    create_index(st, idx, c.body)
}

/// `GET`/`HEAD /<index>`
pub(super) fn get(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    let Some(idx) = named_index(c) else {
        return Ok(no_handler(c));
    };
    c.check_params(&[
        "ignore_unavailable",
        "allow_no_indices",
        "expand_wildcards",
        "flat_settings",
        "include_defaults",
        "local",
        "master_timeout",
        "features",
    ])?;
    Ok(get_index(st, idx))
}

/// `DELETE /<index>`
pub(super) fn delete(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    let Some(idx) = named_index(c) else {
        return Ok(no_handler(c));
    };
    c.check_params(&[
        "ignore_unavailable",
        "allow_no_indices",
        "expand_wildcards",
        "timeout",
        "master_timeout",
    ])?;
    Ok(match st.indices.remove(idx) {
        Some(_) => Reply::ok(json!({"acknowledged": true})),
        None => Reply::err(index_not_found(idx)),
    })
}

/// `GET /<index>/_mapping`
pub(super) fn get_mapping(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[
        "ignore_unavailable",
        "allow_no_indices",
        "expand_wildcards",
        "local",
        "master_timeout",
    ])?;
    let idx = c.seg(0);
    Ok(match st.indices.get(idx) {
        Some(i) => Reply::ok(json!({ idx: {"mappings": i.mapping.to_json()} })),
        None => Reply::err(index_not_found(idx)),
    })
}

/// `GET`/`POST /_refresh`
pub(super) fn refresh_all(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(REFRESH_PARAMS)?;
    refresh(st, None)
}

/// `GET`/`POST /<index>/_refresh`
pub(super) fn refresh_some(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(REFRESH_PARAMS)?;
    refresh(st, Some(c.seg(0)))
}

/// ES's index name rules.
pub(super) fn check_index_name(name: &str) -> Result<(), EsErr> {
    let bad = |why: &str| -> Result<(), EsErr> {
        Err(EsErr::new(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}], {why}"),
        )
        .with("index_uuid", "_na_")
        .with("index", name))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name != name.to_lowercase() {
        return bad("must be lowercase");
    }
    if name == "." || name == ".." {
        return bad("must not be '.' or '..'");
    }
    if name.starts_with(['_', '-', '+']) {
        return bad("must not start with '_', '-', or '+'");
    }
    if let Some(c) = name.chars().find(|c| "\\/*?\"<>| ,#:".contains(*c)) {
        return bad(&format!("must not contain the following characters [{c}]"));
    }
    if name.len() > 255 {
        return bad("index name is too long");
    }
    Ok(())
}

fn create_index(st: &mut StandIn, name: &str, body: &[u8]) -> Result<Reply, EsErr> {
    check_index_name(name)?;
    if let Some(i) = st.indices.get(name) {
        return Err(EsErr::new(
            400,
            "resource_already_exists_exception",
            format!("index [{name}/{}] already exists", i.uuid),
        )
        .with("index_uuid", i.uuid.clone())
        .with("index", name));
    }
    let req = parse_json_body(body)?.unwrap_or(json!({}));
    let obj = req
        .as_object()
        .ok_or_else(|| EsErr::new(400, "parse_exception", "request body is required"))?;
    for k in obj.keys() {
        if !["settings", "mappings", "aliases"].contains(&k.as_str()) {
            return Err(EsErr::new(
                400,
                "parse_exception",
                format!("unknown key [{k}] for create index"),
            ));
        }
    }
    st.create_index(name, obj.get("mappings"))?;
    Ok(Reply::ok(
        json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    ))
}

fn get_index(st: &StandIn, name: &str) -> Reply {
    match st.indices.get(name) {
        Some(i) => Reply::ok(json!({ name: {
            "aliases": {},
            "mappings": i.mapping.to_json(),
            "settings": {"index": {
                "number_of_shards": "1",
                "number_of_replicas": "1",
                "uuid": i.uuid,
                "provided_name": name,
                "creation_date": i.created_ms.to_string(),
                "version": {"created": "8521000"}
            }}
        }})),
        None => Reply::err(index_not_found(name)),
    }
}

fn refresh(st: &mut StandIn, idx: Option<&str>) -> Result<Reply, EsErr> {
    let names: Vec<String> = match idx {
        None => st.indices.keys().cloned().collect(),
        Some(list) => resolve_indices(st, list)?,
    };
    for n in &names {
        if let Some(i) = st.indices.get_mut(n) {
            i.refresh();
        }
    }
    let n = names.len();
    Ok(Reply::ok(
        json!({"_shards": {"total": n * 2, "successful": n, "failed": 0}}),
    ))
}

/// `a,b`, `pat*`, `_all` → existing index names; a missing concrete name is
/// a 404 as in ES.
pub(super) fn resolve_indices(st: &StandIn, list: &str) -> Result<Vec<String>, EsErr> {
    let mut out = Vec::new();
    for part in list.split(',') {
        if part == "_all" || part == "*" {
            out.extend(st.indices.keys().cloned());
        } else if part.contains('*') {
            out.extend(st.indices.keys().filter(|k| glob(part, k)).cloned());
        } else if st.indices.contains_key(part) {
            out.push(part.to_string());
        } else {
            return Err(index_not_found(part));
        }
    }
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;
    use serde_json::json;

    use crate::es::test_client::{client, json_body, raw};
    use crate::es::EsStandIn;

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
}
