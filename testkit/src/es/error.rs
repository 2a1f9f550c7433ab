//! Errors shaped like ES's: a `type`, a `reason`, extra fields and a
//! `caused_by` chain, rendered as a bulk item's `error` object or as a whole
//! request's `{"error": {"root_cause": […], …}, "status": N}` body.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub(super) struct EsErr {
    pub(super) status: u16,
    pub(super) ty: String,
    pub(super) reason: Value,
    pub(super) caused_by: Option<Box<EsErr>>,
    pub(super) extra: Map<String, Value>,
}

/// Java exceptions ES reports as causes but never as the root cause.
fn is_java_exception(ty: &str) -> bool {
    matches!(
        ty,
        "illegal_argument_exception"
            | "illegal_state_exception"
            | "number_format_exception"
            | "json_parse_exception"
    )
}

impl EsErr {
    pub(super) fn new(status: u16, ty: &str, reason: impl Into<String>) -> Self {
        EsErr {
            status,
            ty: ty.into(),
            reason: Value::String(reason.into()),
            caused_by: None,
            extra: Map::new(),
        }
    }

    pub(super) fn caused_by(mut self, c: EsErr) -> Self {
        self.caused_by = Some(Box::new(c));
        self
    }

    pub(super) fn with(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.extra.insert(k.into(), v.into());
        self
    }

    /// `{"type", "reason", …, "caused_by"}` as in a bulk item or a cause.
    pub(super) fn object(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.ty.clone().into());
        m.insert("reason".into(), self.reason.clone());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        if let Some(c) = &self.caused_by {
            m.insert("caused_by".into(), c.object());
        }
        Value::Object(m)
    }

    fn root(&self) -> &EsErr {
        let mut root = self;
        let mut cur = self.caused_by.as_deref();
        while let Some(c) = cur {
            if !is_java_exception(&c.ty) {
                root = c;
            }
            cur = c.caused_by.as_deref();
        }
        root
    }

    /// The whole-request error body.
    pub(super) fn body(&self) -> Value {
        let mut root = self.root().clone();
        root.caused_by = None;
        let mut top = match self.object() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut out = Map::new();
        out.insert("root_cause".into(), json!([root.object()]));
        out.append(&mut top);
        json!({"error": Value::Object(out), "status": self.status})
    }
}

pub(super) fn index_not_found(index: &str) -> EsErr {
    EsErr::new(
        404,
        "index_not_found_exception",
        format!("no such index [{index}]"),
    )
    .with("resource.type", "index_or_alias")
    .with("resource.id", index)
    .with("index_uuid", "_na_")
    .with("index", index)
}

pub(super) fn validation(reason: &str) -> EsErr {
    EsErr::new(
        400,
        "action_request_validation_exception",
        format!("Validation Failed: 1: {reason};"),
    )
}
