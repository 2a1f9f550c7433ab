//! Mappings: ES 7/8 field types with their parameters, parsed and checked
//! the way ES 8 does (old syntax such as `string`, `"index":
//! "not_analyzed"` or mapping types is a `mapper_parsing_exception`), merged
//! from templates and explicit requests, and shown back as `GET _mapping`
//! does. How one field definition is read is in [`fields`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::EsErr;
use fields::{parse_dynamic, parse_field, parse_props};

mod fields;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum FieldType {
    Keyword {
        ignore_above: Option<usize>,
    },
    Text,
    Ip,
    Date {
        formats: Vec<String>,
    },
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    Boolean,
    Object(Props),
    /// Accepted types the stand-in does not model (values not checked).
    Other(String),
}

pub(super) type Props = BTreeMap<String, Field>;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Field {
    pub(super) ty: FieldType,
    /// The definition as given (returned by GET _mapping).
    pub(super) raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mapping {
    pub(super) props: Props,
    /// `true`, `false`, `strict` or `runtime`.
    pub(super) dynamic: String,
    /// Root keys other than properties/dynamic, kept for GET.
    pub(super) other: Map<String, Value>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            props: Props::new(),
            dynamic: "true".into(),
            other: Map::new(),
        }
    }
}

const ROOT_KEYS: &[&str] = &[
    "properties",
    "dynamic",
    "_source",
    "_meta",
    "_routing",
    "date_detection",
    "numeric_detection",
    "dynamic_templates",
    "dynamic_date_formats",
    "runtime",
    "enabled",
    "subobjects",
];

fn mapper_err(reason: String) -> EsErr {
    EsErr::new(400, "mapper_parsing_exception", reason)
}

impl Mapping {
    /// Parses a `mappings` object; errors read like ES 8's.
    pub(super) fn parse(v: &Value) -> Result<Mapping, EsErr> {
        let wrap = |inner: EsErr| {
            let reason = format!(
                "Failed to parse mapping: {}",
                inner.reason.as_str().unwrap_or("")
            );
            mapper_err(reason).caused_by(inner)
        };
        let obj = v
            .as_object()
            .ok_or_else(|| wrap(mapper_err("Expected map for property [mappings]".into())))?;
        let mut m = Mapping::default();
        let unknown: Vec<String> = obj
            .iter()
            .filter(|(k, _)| !ROOT_KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k} : {v}"))
            .collect();
        if !unknown.is_empty() {
            // ES 8 removed mapping types: `{"doc": {"properties": …}}` lands here.
            return Err(wrap(mapper_err(format!(
                "Root mapping definition has unsupported parameters:  [{}]",
                unknown.join("] [")
            ))));
        }
        if let Some(d) = obj.get("dynamic") {
            m.dynamic = parse_dynamic(d, "_doc").map_err(wrap)?;
        }
        if let Some(p) = obj.get("properties") {
            m.props = parse_props(p, "").map_err(wrap)?;
        }
        for (k, v) in obj {
            if k != "properties" && k != "dynamic" {
                m.other.insert(k.clone(), v.clone());
            }
        }
        Ok(m)
    }

    pub(super) fn merge(&mut self, other: Mapping) {
        for (k, f) in other.props {
            self.props.insert(k, f);
        }
        if other.dynamic != "true" {
            self.dynamic = other.dynamic;
        }
        self.other.extend(other.other);
    }

    pub(super) fn to_json(&self) -> Value {
        let mut m = self.other.clone();
        if self.dynamic != "true" {
            m.insert("dynamic".into(), self.dynamic.clone().into());
        }
        if !self.props.is_empty() {
            m.insert("properties".into(), props_json(&self.props));
        }
        Value::Object(m)
    }

    /// The field at a dotted path (`name.keyword` finds a multi-field).
    pub(super) fn field(&self, path: &str) -> Option<Field> {
        let mut props = &self.props;
        let mut parts = path.split('.').peekable();
        while let Some(p) = parts.next() {
            let f = props.get(p)?;
            if parts.peek().is_none() {
                return Some(f.clone());
            }
            match &f.ty {
                FieldType::Object(inner) => props = inner,
                _ => {
                    let sub = parts.next()?;
                    if parts.peek().is_some() {
                        return None;
                    }
                    let def = f.raw.get("fields")?.get(sub)?;
                    return parse_field(path, def).ok();
                }
            }
        }
        None
    }
}

fn props_json(p: &Props) -> Value {
    let mut m = Map::new();
    for (k, f) in p {
        let mut raw = f.raw.clone();
        if let FieldType::Object(inner) = &f.ty {
            if let Some(o) = raw.as_object_mut() {
                o.insert("properties".into(), props_json(inner));
            }
        }
        m.insert(k.clone(), raw);
    }
    Value::Object(m)
}

pub(super) fn type_name(t: &FieldType) -> String {
    match t {
        FieldType::Keyword { .. } => "keyword".into(),
        FieldType::Text => "text".into(),
        FieldType::Ip => "ip".into(),
        FieldType::Date { .. } => "date".into(),
        FieldType::Long => "long".into(),
        FieldType::Integer => "integer".into(),
        FieldType::Short => "short".into(),
        FieldType::Byte => "byte".into(),
        FieldType::Double => "double".into(),
        FieldType::Float => "float".into(),
        FieldType::Boolean => "boolean".into(),
        FieldType::Object(_) => "object".into(),
        FieldType::Other(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;
    use serde_json::json;

    use crate::es::test_client::{client, json_body, raw};
    use crate::es::EsStandIn;

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
}
