//! Composable index templates: `PUT`/`GET`/`HEAD`/`DELETE
//! /_index_template/<name>`. A template's mappings are checked when it is
//! stored and applied when an index it matches is created (see
//! `StandIn::create_index`).

use serde_json::{json, Value};

use super::document::column_of;
use super::error::{validation, EsErr};
use super::http::{parse_json_body, Call, Reply};
use super::mapping::Mapping;
use super::state::{glob, StandIn, Template};

/// `PUT /_index_template/<name>`
pub(super) fn put(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&["create", "master_timeout", "cause"])?;
    put_template(st, c.seg(1), c.body, &c.params)
}

/// `GET`/`HEAD /_index_template/<name>` (`name` may be a pattern)
pub(super) fn get(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[
        "local",
        "master_timeout",
        "flat_settings",
        "include_defaults",
    ])?;
    Ok(get_template(st, c.seg(1)))
}

/// `DELETE /_index_template/<name>`
pub(super) fn delete(st: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&["master_timeout", "timeout"])?;
    let name = c.seg(1);
    Ok(match st.templates.remove(name) {
        Some(_) => Reply::ok(json!({"acknowledged": true})),
        None => Reply::err(EsErr::new(
            404,
            "resource_not_found_exception",
            format!("index_template [{name}] missing"),
        )),
    })
}

fn put_template(
    st: &mut StandIn,
    name: &str,
    body: &[u8],
    params: &[(String, String)],
) -> Result<Reply, EsErr> {
    let req = parse_json_body(body)?
        .ok_or_else(|| EsErr::new(400, "parse_exception", "request body is required"))?;
    let obj = req.as_object().ok_or_else(|| {
        EsErr::new(
            400,
            "x_content_parse_exception",
            "[1:1] [index_template] failed to parse object",
        )
    })?;
    const KEYS: &[&str] = &[
        "index_patterns",
        "template",
        "composed_of",
        "priority",
        "version",
        "_meta",
        "data_stream",
        "allow_auto_create",
        "ignore_missing_component_templates",
        "deprecated",
    ];
    for k in obj.keys() {
        if !KEYS.contains(&k.as_str()) {
            return Err(EsErr::new(
                400,
                "x_content_parse_exception",
                format!(
                    "[1:{}] [index_template] unknown field [{k}]",
                    column_of(&req.to_string(), k)
                ),
            ));
        }
    }
    let patterns: Vec<String> = match obj.get("index_patterns") {
        None => return Err(validation("index patterns are missing")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(EsErr::new(
                400,
                "x_content_parse_exception",
                "[1:20] [index_template] failed to parse field [index_patterns]",
            ))
        }
    };
    if patterns.is_empty() {
        return Err(validation("index patterns are missing"));
    }
    if obj
        .get("composed_of")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(EsErr::new(
            400,
            "stand_in_unsupported_exception",
            "component templates are not supported by the stand-in",
        ));
    }
    let priority = obj.get("priority").and_then(Value::as_i64).unwrap_or(0);
    let mut mappings = None;
    if let Some(t) = obj.get("template") {
        let t = t.as_object().ok_or_else(|| {
            EsErr::new(
                400,
                "x_content_parse_exception",
                "[template] failed to parse object",
            )
        })?;
        for k in t.keys() {
            if ![
                "settings",
                "mappings",
                "aliases",
                "lifecycle",
                "data_stream_options",
            ]
            .contains(&k.as_str())
            {
                return Err(EsErr::new(
                    400,
                    "x_content_parse_exception",
                    format!(
                        "[1:{}] [template] unknown field [{k}]",
                        column_of(&req.to_string(), k)
                    ),
                ));
            }
        }
        if let Some(m) = t.get("mappings") {
            Mapping::parse(m)?;
            mappings = Some(m.clone());
        }
    }
    let create = params
        .iter()
        .any(|(k, v)| k == "create" && (v.is_empty() || v == "true"));
    if create && st.templates.contains_key(name) {
        return Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!("index template [{name}] already exists"),
        ));
    }
    for (other, t) in &st.templates {
        if other != name && t.priority == priority {
            let overlap: Vec<&String> = patterns
                .iter()
                .filter(|p| t.patterns.iter().any(|q| glob(p, q) || glob(q, p)))
                .collect();
            if !overlap.is_empty() {
                return Err(EsErr::new(
                    400,
                    "illegal_argument_exception",
                    format!(
                        "index template [{name}] has index patterns {patterns:?} matching patterns from existing templates [{other}] with patterns ({other} => {:?}) that have the same priority [{priority}], multiple index templates may not match during index creation, please use a different priority",
                        t.patterns
                    ),
                ));
            }
        }
    }
    st.templates.insert(
        name.to_string(),
        Template {
            patterns,
            priority,
            mappings,
            body: req.clone(),
        },
    );
    Ok(Reply::ok(json!({"acknowledged": true})))
}

fn get_template(st: &StandIn, name: &str) -> Reply {
    let found: Vec<Value> = st
        .templates
        .iter()
        .filter(|(n, _)| glob(name, n))
        .map(|(n, t)| json!({"name": n, "index_template": t.body}))
        .collect();
    if found.is_empty() {
        return Reply::err(EsErr::new(
            404,
            "resource_not_found_exception",
            format!("index template matching [{name}] not found"),
        ));
    }
    Reply::ok(json!({"index_templates": found}))
}
