//! An Elasticsearch 8 stand-in for tests: an in-process HTTP server on
//! 127.0.0.1:0, on its own thread and tokio runtime (so synchronous tests
//! can use it too), that answers like ES 8.x for the APIs ubackup uses.
//!
//! Real Elasticsearch cannot be installed on the build machines. The rule
//! for this file: **never be laxer than ES**. Where ES would refuse a
//! request, the stand-in refuses it with the same status and error `type`;
//! where the stand-in does not implement something, it refuses it loudly
//! (`stand_in_unsupported_exception`) rather than pretend.
//!
//! What it implements:
//! * `GET /` (cluster info, `version.number` 8.x); `X-Elastic-Product:
//!   Elasticsearch` on every response; optional Basic / ApiKey auth (401
//!   `security_exception`); the Content-Type check (406);
//! * indices: `PUT /<index>` (settings/mappings/aliases, mapping
//!   validation, `resource_already_exists_exception`, index name rules),
//!   `HEAD`/`GET`/`DELETE /<index>`, `GET /<index>/_mapping`;
//! * composable templates: `PUT`/`HEAD`/`GET`/`DELETE /_index_template/<n>`
//!   (applied when an index is created, explicitly or by a bulk request);
//! * mappings: ES 7/8 field types with their parameters; old syntax
//!   (`string`, `"index": "not_analyzed"`, mapping types) is refused with
//!   `mapper_parsing_exception` as ES 8 does; dynamic mapping of new fields
//!   (`true`/`false`/`strict`);
//! * `POST /_bulk`, `/<index>/_bulk`: ES's NDJSON parser rules (terminating
//!   newline, action/metadata validation), index/create/delete/update(doc)
//!   ops, per-item status and error objects, versions and `result`
//!   (`created`/`updated`), document validation against the mapping
//!   (`document_parsing_exception` for a non-IP in an `ip` field, a non-date
//!   in a `date`, a non-number in a number, "immense" keyword terms…);
//! * `GET /<index>/_doc/<id>`, `_mget` (real time), `_refresh`,
//!   `_search`/`_count` (only refreshed documents are visible, as in ES;
//!   an index refreshes itself at most 1 s after a write when searched):
//!   `match_all`, `term`, `terms`, `range`, `exists`, `ids`, `bool`
//!   (must/filter/should/must_not), `sort` (ES 8 refuses `_id` and `text`
//!   fields), `size`, `from`, `search_after`, `track_total_hits`, `_source`.
//!
//! Fault injection: [`EsStandIn::fail_item_id`], [`EsStandIn::fail_nth_item`]
//! (429/400/5xx per item), [`EsStandIn::fail_requests`] /
//! [`EsStandIn::set_down`] (whole requests answer 503), and
//! [`EsStandIn::set_delay`] (slow replies). Inspection: documents, versions,
//! mappings, templates and a log of every request.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};

/// The version the stand-in claims to be.
pub const VERSION: &str = "8.17.0";

/// ES refuses keyword terms longer than this (Lucene's term limit).
const MAX_TERM_BYTES: usize = 32766;
/// `index.max_result_window`.
const MAX_RESULT_WINDOW: i64 = 10000;

// ---------------------------------------------------------------------------
// Public handle
// ---------------------------------------------------------------------------

/// A running stand-in. Dropping it stops the server and its thread.
pub struct EsStandIn {
    addr: SocketAddr,
    shared: Arc<Mutex<StandIn>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Bulk requests: number of operations parsed (0 otherwise).
    pub bulk_items: usize,
    /// The request body, for bulk/mapping assertions.
    pub body: String,
}

impl EsStandIn {
    /// Starts on an ephemeral 127.0.0.1 port.
    pub fn start() -> EsStandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(StandIn::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app_state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("es-stand-in".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("stand-in runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let app = Router::new()
                        .fallback(handle)
                        .with_state(app_state)
                        // http.max_content_length default
                        .layer(DefaultBodyLimit::max(100 * 1024 * 1024));
                    tokio::select! {
                        r = axum::serve(listener, app) => { if let Err(e) = r { eprintln!("es stand-in: {e}"); } }
                        _ = rx => {}
                    }
                });
                // dropping the runtime cancels open connections
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn stand-in thread");
        EsStandIn {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, StandIn> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- fault injection ----

    /// The item with `_id == id` fails with `status` the next `times` times
    /// it is sent (`u32::MAX` = always).
    pub fn fail_item_id(&self, id: &str, status: u16, times: u32) {
        self.lock().item_faults.push(ItemFault {
            matcher: ItemMatch::Id(id.into()),
            status,
            remaining: times,
        });
    }

    /// The `n`-th bulk item (0-based) received from now on fails once.
    pub fn fail_nth_item(&self, n: u64, status: u16) {
        let mut s = self.lock();
        let at = s.items_received + n;
        s.item_faults.push(ItemFault {
            matcher: ItemMatch::Nth(at),
            status,
            remaining: 1,
        });
    }

    /// The next `count` requests (any path) answer `status` as a whole.
    pub fn fail_requests(&self, status: u16, count: u32) {
        self.lock().request_fault = Some(RequestFault {
            status,
            remaining: Some(count),
            until: None,
        });
    }

    /// Every request answers `status` for `d`.
    pub fn fail_requests_for(&self, status: u16, d: Duration) {
        self.lock().request_fault = Some(RequestFault {
            status,
            remaining: None,
            until: Some(Instant::now() + d),
        });
    }

    /// `true`: every request answers 503 (no master) until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.lock().request_fault = if down {
            Some(RequestFault {
                status: 503,
                remaining: None,
                until: None,
            })
        } else {
            None
        };
    }

    /// Every answer is delayed by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    /// Requests must carry Basic credentials `user:password`.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.lock().auth = Some(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }

    /// Requests must carry `Authorization: ApiKey <encoded>`.
    pub fn require_api_key(&self, encoded: &str) {
        self.lock().auth = Some(format!("ApiKey {encoded}"));
    }

    // ---- inspection ----

    /// Every document of `index` (real time, not only refreshed ones), by id.
    pub fn docs(&self, index: &str) -> BTreeMap<String, Value> {
        self.lock()
            .indices
            .get(index)
            .map(|i| {
                i.docs
                    .iter()
                    .map(|(k, d)| (k.clone(), d.source.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        self.lock()
            .indices
            .get(index)
            .and_then(|i| i.docs.get(id))
            .map(|d| d.source.clone())
    }

    /// `_version` of a document (1 when created, +1 per overwrite).
    pub fn doc_version(&self, index: &str, id: &str) -> Option<i64> {
        self.lock()
            .indices
            .get(index)
            .and_then(|i| i.docs.get(id))
            .map(|d| d.version)
    }

    pub fn doc_count(&self, index: &str) -> usize {
        self.lock()
            .indices
            .get(index)
            .map(|i| i.docs.len())
            .unwrap_or(0)
    }

    pub fn index_names(&self) -> Vec<String> {
        self.lock().indices.keys().cloned().collect()
    }

    /// The `mappings` of an index as `GET /<index>/_mapping` shows them.
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.lock().indices.get(index).map(|i| i.mapping.to_json())
    }

    /// The body a template was stored with.
    pub fn template(&self, name: &str) -> Option<Value> {
        self.lock().templates.get(name).map(|t| t.body.clone())
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Requests with this method whose path ends with `path_suffix`.
    pub fn request_count(&self, method: &str, path_suffix: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .count()
    }

    /// Bulk operations received so far (including failed ones).
    pub fn bulk_items_received(&self) -> u64 {
        self.lock().items_received
    }
}

impl Drop for EsStandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Default)]
struct StandIn {
    indices: BTreeMap<String, Index>,
    templates: BTreeMap<String, Template>,
    item_faults: Vec<ItemFault>,
    request_fault: Option<RequestFault>,
    delay: Duration,
    auth: Option<String>,
    log: Vec<LoggedRequest>,
    items_received: u64,
    next_uuid: u64,
}

struct ItemFault {
    matcher: ItemMatch,
    status: u16,
    remaining: u32,
}

enum ItemMatch {
    Id(String),
    Nth(u64),
}

struct RequestFault {
    status: u16,
    remaining: Option<u32>,
    until: Option<Instant>,
}

struct Template {
    patterns: Vec<String>,
    priority: i64,
    mappings: Option<Value>,
    body: Value,
}

struct Index {
    uuid: String,
    mapping: Mapping,
    /// Real-time view (GET, mget, bulk).
    docs: BTreeMap<String, Doc>,
    /// What searches see: the docs as of the last refresh.
    searchable: BTreeMap<String, Doc>,
    dirty_since: Option<Instant>,
    seq_no: i64,
    created_ms: i64,
}

#[derive(Clone)]
struct Doc {
    source: Value,
    version: i64,
    seq_no: i64,
}

impl Index {
    fn refresh(&mut self) {
        self.searchable = self.docs.clone();
        self.dirty_since = None;
    }

    /// ES refreshes every second; do it lazily when a search looks.
    fn auto_refresh(&mut self) {
        if self
            .dirty_since
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.refresh();
        }
    }

    fn touch(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }
}

impl StandIn {
    fn uuid(&mut self) -> String {
        self.next_uuid += 1;
        format!("sTaNdInUuId{:011}", self.next_uuid)
    }

    /// Creates `name` from the matching template merged with `explicit`.
    fn create_index(&mut self, name: &str, explicit: Option<&Value>) -> Result<(), EsErr> {
        let mut base = Mapping::default();
        if let Some(t) = self.matching_template(name) {
            if let Some(m) = &t.mappings {
                base = Mapping::parse(m)?;
            }
        }
        if let Some(m) = explicit {
            let add = Mapping::parse(m)?;
            base.merge(add);
        }
        let uuid = self.uuid();
        self.indices.insert(
            name.to_string(),
            Index {
                uuid,
                mapping: base,
                docs: BTreeMap::new(),
                searchable: BTreeMap::new(),
                dirty_since: None,
                seq_no: -1,
                created_ms: now_ms(),
            },
        );
        Ok(())
    }

    fn matching_template(&self, index: &str) -> Option<&Template> {
        self.templates
            .values()
            .filter(|t| t.patterns.iter().any(|p| glob(p, index)))
            .max_by_key(|t| t.priority)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `*` wildcards only, as index patterns use them.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

// ---------------------------------------------------------------------------
// Errors shaped like ES's
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct EsErr {
    status: u16,
    ty: String,
    reason: Value,
    caused_by: Option<Box<EsErr>>,
    extra: Map<String, Value>,
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
    fn new(status: u16, ty: &str, reason: impl Into<String>) -> Self {
        EsErr {
            status,
            ty: ty.into(),
            reason: Value::String(reason.into()),
            caused_by: None,
            extra: Map::new(),
        }
    }

    fn caused_by(mut self, c: EsErr) -> Self {
        self.caused_by = Some(Box::new(c));
        self
    }

    fn with(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.extra.insert(k.into(), v.into());
        self
    }

    /// `{"type", "reason", …, "caused_by"}` as in a bulk item or a cause.
    fn object(&self) -> Value {
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
    fn body(&self) -> Value {
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

fn index_not_found(index: &str) -> EsErr {
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

fn validation(reason: &str) -> EsErr {
    EsErr::new(
        400,
        "action_request_validation_exception",
        format!("Validation Failed: 1: {reason};"),
    )
}

// ---------------------------------------------------------------------------
// Mappings
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum FieldType {
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

type Props = BTreeMap<String, Field>;

#[derive(Debug, Clone, PartialEq)]
struct Field {
    ty: FieldType,
    /// The definition as given (returned by GET _mapping).
    raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct Mapping {
    props: Props,
    /// `true`, `false`, `strict` or `runtime`.
    dynamic: String,
    /// Root keys other than properties/dynamic, kept for GET.
    other: Map<String, Value>,
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

const LEAF_COMMON: &[&str] = &[
    "type",
    "meta",
    "copy_to",
    "store",
    "index",
    "doc_values",
    "null_value",
    "fields",
    "script",
    "on_script_error",
];

fn params_for(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "keyword" => &[
            "ignore_above",
            "normalizer",
            "eager_global_ordinals",
            "norms",
            "similarity",
            "split_queries_on_whitespace",
            "index_options",
            "time_series_dimension",
        ],
        "text" | "match_only_text" => &[
            "analyzer",
            "search_analyzer",
            "search_quote_analyzer",
            "fielddata",
            "fielddata_frequency_filter",
            "eager_global_ordinals",
            "index_options",
            "index_phrases",
            "index_prefixes",
            "norms",
            "position_increment_gap",
            "similarity",
            "term_vector",
        ],
        "long" | "integer" | "short" | "byte" | "double" | "float" | "half_float"
        | "unsigned_long" => &[
            "coerce",
            "ignore_malformed",
            "time_series_metric",
            "time_series_dimension",
        ],
        "scaled_float" => &[
            "coerce",
            "ignore_malformed",
            "scaling_factor",
            "time_series_metric",
            "time_series_dimension",
        ],
        "date" | "date_nanos" => &["format", "locale", "ignore_malformed", "print_format"],
        "ip" => &["ignore_malformed", "time_series_dimension"],
        "boolean" => &[],
        "wildcard" => &["ignore_above", "null_value"],
        "constant_keyword" => &["value"],
        "flattened" => &[
            "depth_limit",
            "ignore_above",
            "eager_global_ordinals",
            "split_queries_on_whitespace",
            "similarity",
            "index_options",
        ],
        "binary" => &[],
        _ => return None,
    })
}

const OBJECT_PARAMS: &[&str] = &[
    "type",
    "properties",
    "dynamic",
    "enabled",
    "subobjects",
    "include_in_parent",
    "include_in_root",
];

const NAMED_DATE_FORMATS: &[&str] = &[
    "epoch_millis",
    "epoch_second",
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_optional_time_nanos",
    "basic_date",
    "basic_date_time",
    "date",
    "strict_date",
    "date_time",
    "strict_date_time",
    "date_time_no_millis",
    "strict_date_time_no_millis",
    "date_hour_minute_second",
    "strict_date_hour_minute_second",
    "year_month_day",
    "strict_year_month_day",
    "year",
    "strict_year",
];

/// `true`/`false` (bool or string), as ES's nodeBooleanValue accepts.
fn as_mapping_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn mapper_err(reason: String) -> EsErr {
    EsErr::new(400, "mapper_parsing_exception", reason)
}

impl Mapping {
    /// Parses a `mappings` object; errors read like ES 8's.
    fn parse(v: &Value) -> Result<Mapping, EsErr> {
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

    fn merge(&mut self, other: Mapping) {
        for (k, f) in other.props {
            self.props.insert(k, f);
        }
        if other.dynamic != "true" {
            self.dynamic = other.dynamic;
        }
        self.other.extend(other.other);
    }

    fn to_json(&self) -> Value {
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
    fn field(&self, path: &str) -> Option<Field> {
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

fn parse_dynamic(v: &Value, at: &str) -> Result<String, EsErr> {
    match v {
        Value::Bool(b) => Ok(b.to_string()),
        Value::String(s) if ["true", "false", "strict", "runtime"].contains(&s.as_str()) => {
            Ok(s.clone())
        }
        other => Err(mapper_err(format!(
            "Unable to parse [dynamic] value [{other}] for [{at}]"
        ))),
    }
}

fn parse_props(v: &Value, prefix: &str) -> Result<Props, EsErr> {
    let obj = v.as_object().ok_or_else(|| mapper_err(format!("Expected map for property [properties] on field [{prefix}] but got a class java.lang.String")))?;
    let mut out = Props::new();
    for (name, def) in obj {
        if name.is_empty() {
            return Err(mapper_err("field name cannot be an empty string".into()));
        }
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        out.insert(name.clone(), parse_field(&full, def)?);
    }
    Ok(out)
}

fn parse_field(full: &str, def: &Value) -> Result<Field, EsErr> {
    let obj = def.as_object().ok_or_else(|| {
        mapper_err(format!(
            "Expected map for property [fields] on field [{full}] but got a {}",
            java_class(def)
        ))
    })?;
    let ty = match obj.get("type") {
        None => "object".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(mapper_err(format!(
                "No handler for type [{other}] declared on field [{full}]"
            )))
        }
    };
    if ty == "object" || ty == "nested" {
        for k in obj.keys() {
            if !OBJECT_PARAMS.contains(&k.as_str()) {
                return Err(mapper_err(format!(
                    "unknown parameter [{k}] on mapper [{full}] of type [{ty}]"
                )));
            }
        }
        if let Some(d) = obj.get("dynamic") {
            parse_dynamic(d, full)?;
        }
        let inner = match obj.get("properties") {
            Some(p) => parse_props(p, full)?,
            None => Props::new(),
        };
        let mut raw = obj.clone();
        raw.remove("properties");
        return Ok(Field {
            ty: FieldType::Object(inner),
            raw: Value::Object(raw),
        });
    }
    let specific = params_for(&ty).ok_or_else(|| {
        mapper_err(format!(
            "No handler for type [{ty}] declared on field [{full}]"
        ))
    })?;
    for (k, v) in obj {
        if !LEAF_COMMON.contains(&k.as_str()) && !specific.contains(&k.as_str()) {
            return Err(mapper_err(format!(
                "unknown parameter [{k}] on mapper [{full}] of type [{ty}]"
            )));
        }
        if [
            "index",
            "store",
            "doc_values",
            "coerce",
            "ignore_malformed",
            "norms",
            "eager_global_ordinals",
            "fielddata",
        ]
        .contains(&k.as_str())
            && as_mapping_bool(v).is_none()
        {
            let inner = EsErr::new(
                400,
                "illegal_argument_exception",
                format!(
                    "Failed to parse value [{}] as only [true] or [false] are allowed.",
                    plain(v)
                ),
            );
            return Err(EsErr::new(
                400,
                "mapper_parsing_exception",
                format!("Could not convert [{full}.{k}] to boolean"),
            )
            .caused_by(inner));
        }
    }
    if let Some(fields) = obj.get("fields") {
        let subs = fields.as_object().ok_or_else(|| {
            mapper_err(format!(
                "Expected map for property [fields] on field [{full}]"
            ))
        })?;
        for (sub, sdef) in subs {
            let f = parse_field(&format!("{full}.{sub}"), sdef)?;
            if matches!(f.ty, FieldType::Object(_)) {
                return Err(mapper_err(format!(
                    "Type [object] cannot be used in multi field [{full}.{sub}]"
                )));
            }
        }
    }
    let ftype = match ty.as_str() {
        "keyword" => {
            let ignore_above = match obj.get("ignore_above") {
                None => None,
                Some(v) => Some(v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    mapper_err(format!("Failed to parse mapping: [ignore_above] on mapper [{full}] of type [keyword] must be an integer, got [{}]", plain(v)))
                })?),
            };
            FieldType::Keyword { ignore_above }
        }
        "text" | "match_only_text" => FieldType::Text,
        "ip" => FieldType::Ip,
        "date" | "date_nanos" => {
            let formats = match obj.get("format") {
                None => vec![
                    "strict_date_optional_time".to_string(),
                    "epoch_millis".to_string(),
                ],
                Some(Value::String(f)) => {
                    let list: Vec<String> = f.split("||").map(str::to_string).collect();
                    for one in &list {
                        if !valid_date_format(one) {
                            return Err(mapper_err(format!("Error parsing [format] on field [{full}]: Invalid format: [{f}]: Unknown pattern letter")));
                        }
                    }
                    list
                }
                Some(other) => {
                    return Err(mapper_err(format!(
                    "Error parsing [format] on field [{full}]: expected a string, got [{other}]"
                )))
                }
            };
            FieldType::Date { formats }
        }
        "long" | "unsigned_long" => FieldType::Long,
        "integer" => FieldType::Integer,
        "short" => FieldType::Short,
        "byte" => FieldType::Byte,
        "double" | "scaled_float" => {
            if ty == "scaled_float" && obj.get("scaling_factor").and_then(Value::as_f64).is_none() {
                return Err(mapper_err(format!("Failed to parse mapping: Field [scaling_factor] is required on mapper [{full}]")));
            }
            FieldType::Double
        }
        "float" | "half_float" => FieldType::Float,
        "boolean" => FieldType::Boolean,
        other => FieldType::Other(other.to_string()),
    };
    Ok(Field {
        ty: ftype,
        raw: def.clone(),
    })
}

fn valid_date_format(f: &str) -> bool {
    if NAMED_DATE_FORMATS.contains(&f) {
        return true;
    }
    // a java-time pattern: pattern letters and literals only
    !f.is_empty()
        && f.chars()
            .all(|c| "yMdHhmsSaEuZXxVzGDQqwWek ".contains(c) || "-:/.,T'[]+".contains(c))
        && f.chars().any(|c| c.is_ascii_alphabetic())
}

fn java_class(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "class java.lang.String",
        Value::Number(_) => "class java.lang.Integer",
        Value::Bool(_) => "class java.lang.Boolean",
        Value::Array(_) => "class java.util.ArrayList",
        _ => "null",
    }
}

/// A JSON value as ES prints it inside reasons (strings without quotes).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

fn type_name(t: &FieldType) -> String {
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

// ---------------------------------------------------------------------------
// Values: parsing a document value / a query value for a field type
// ---------------------------------------------------------------------------

/// A value normalised for comparison.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Norm {
    Num(f64),
    Str(String),
    Ip(IpAddr),
    Bool(bool),
}

impl Norm {
    /// Sort value as ES returns it in `hits[].sort`.
    fn to_json(&self, ty: &FieldType) -> Value {
        match self {
            Norm::Num(n) => match ty {
                FieldType::Double | FieldType::Float => json!(n),
                _ => json!(*n as i64),
            },
            Norm::Str(s) => json!(s),
            Norm::Ip(ip) => json!(ip.to_string()),
            Norm::Bool(b) => json!(if *b { 1 } else { 0 }),
        }
    }
}

/// Parses one scalar for a field type. `Err` carries the cause ES gives.
fn norm_value(ty: &FieldType, v: &Value) -> Result<Option<Norm>, EsErr> {
    let iae = |r: String| EsErr::new(400, "illegal_argument_exception", r);
    if v.is_null() {
        return Ok(None);
    }
    match ty {
        FieldType::Keyword { .. } | FieldType::Text | FieldType::Other(_) => match v {
            Value::String(s) => Ok(Some(Norm::Str(s.clone()))),
            Value::Number(n) => Ok(Some(Norm::Str(n.to_string()))),
            Value::Bool(b) => Ok(Some(Norm::Str(b.to_string()))),
            _ => Err(EsErr::new(
                400,
                "illegal_state_exception",
                format!("Can't get text on a {} at 1:1", token_name(v)),
            )),
        },
        FieldType::Ip => match v {
            Value::String(s) => s
                .parse::<IpAddr>()
                .map(|ip| Some(Norm::Ip(ip)))
                .map_err(|_| iae(format!("'{s}' is not an IP string literal."))),
            other => Err(iae(format!(
                "'{}' is not an IP string literal.",
                plain(other)
            ))),
        },
        FieldType::Date { formats } => {
            let parsed = match v {
                Value::Number(n) if formats.iter().any(|f| f.starts_with("epoch_")) => {
                    n.as_f64().map(|x| {
                        if formats.iter().any(|f| f == "epoch_millis") {
                            x
                        } else {
                            x * 1000.0
                        }
                    })
                }
                Value::String(s) => parse_date_str(s, formats),
                _ => None,
            };
            match parsed {
                Some(ms) => Ok(Some(Norm::Num(ms.trunc()))),
                None => Err(iae(format!(
                    "failed to parse date field [{}] with format [{}]",
                    plain(v),
                    formats.join("||")
                ))),
            }
        }
        FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
            let (lo, hi, name) = match ty {
                FieldType::Integer => (i32::MIN as f64, i32::MAX as f64, "integer"),
                FieldType::Short => (i16::MIN as f64, i16::MAX as f64, "short"),
                FieldType::Byte => (i8::MIN as f64, i8::MAX as f64, "byte"),
                _ => (i64::MIN as f64, i64::MAX as f64, "long"),
            };
            let x = match v {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
                    EsErr::new(
                        400,
                        "number_format_exception",
                        format!("For input string: \"{s}\""),
                    )
                })?,
                other => {
                    return Err(iae(format!(
                        "Current token ({}) not numeric, can not use numeric value accessors",
                        token_name(other)
                    )))
                }
            };
            if !(lo..=hi).contains(&x.trunc()) {
                return Err(iae(format!(
                    "Value [{}] is out of range for {} {name}",
                    plain(v),
                    if name == "integer" { "an" } else { "a" }
                )));
            }
            Ok(Some(Norm::Num(x.trunc())))
        }
        FieldType::Double | FieldType::Float => match v {
            Value::Number(n) => Ok(Some(Norm::Num(n.as_f64().unwrap_or(0.0)))),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|x| Some(Norm::Num(x)))
                .map_err(|_| {
                    EsErr::new(
                        400,
                        "number_format_exception",
                        format!("For input string: \"{s}\""),
                    )
                }),
            other => Err(iae(format!(
                "Current token ({}) not numeric, can not use numeric value accessors",
                token_name(other)
            ))),
        },
        FieldType::Boolean => match v {
            Value::Bool(b) => Ok(Some(Norm::Bool(*b))),
            Value::String(s) if s == "true" => Ok(Some(Norm::Bool(true))),
            Value::String(s) if s == "false" || s.is_empty() => Ok(Some(Norm::Bool(false))),
            other => Err(iae(format!(
                "Failed to parse value [{}] as only [true] or [false] are allowed.",
                plain(other)
            ))),
        },
        FieldType::Object(_) => Err(iae("object field".into())),
    }
}

/// ISO dates (`2026-11-22`, `2026-11-22T05:37:00Z`, with millis) and
/// numeric strings for epoch formats.
fn parse_date_str(s: &str, formats: &[String]) -> Option<f64> {
    for f in formats {
        match f.as_str() {
            "epoch_millis" => {
                if let Ok(x) = s.parse::<f64>() {
                    return Some(x);
                }
            }
            "epoch_second" => {
                if let Ok(x) = s.parse::<f64>() {
                    return Some(x * 1000.0);
                }
            }
            "strict_date_optional_time"
            | "date_optional_time"
            | "strict_date_optional_time_nanos" => {
                if let Some(ms) = parse_iso(s) {
                    return Some(ms as f64);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_iso(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next().map(|x| x.parse().ok()).unwrap_or(Some(1))?;
    let d: i64 = dp.next().map(|x| x.parse().ok()).unwrap_or(Some(1))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || dp.next().is_some() {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let t = t.strip_suffix('Z').unwrap_or(t);
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut tp = hms.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let mi: i64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        let sec: i64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        ms += (h * 3600 + mi * 60 + sec) * 1000;
        if let Some(f) = frac {
            let f3: String = f.chars().take(3).collect();
            if !f.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            ms += format!("{f3:0<3}").parse::<i64>().ok()?;
        }
    }
    Some(ms)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Column (1-based) of `"name"` in the raw source, for `[1:N]` prefixes.
fn column_of(raw: &str, name: &str) -> usize {
    raw.find(&format!("\"{name}\""))
        .map(|i| i + name.len() + 3)
        .unwrap_or(1)
}

/// Checks a document against the mapping, and adds dynamic fields.
/// Returns new dynamic fields to merge into the mapping.
fn check_doc(
    props: &Props,
    prefix: &str,
    obj: &Map<String, Value>,
    id: &str,
    raw: &str,
    dynamic: &str,
    added: &mut Vec<(String, Field)>,
) -> Result<(), EsErr> {
    for (k, v) in obj {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if prefix.is_empty()
            && k.starts_with('_')
            && [
                "_id",
                "_index",
                "_source",
                "_routing",
                "_version",
                "_seq_no",
                "_primary_term",
                "_doc_count",
                "_field_names",
                "_ignored",
                "_tier",
                "_data_stream_timestamp",
            ]
            .contains(&k.as_str())
        {
            return Err(EsErr::new(
                400,
                "document_parsing_exception",
                format!("[1:{}] Field [{k}] is a metadata field and cannot be added inside a document. Use the index API request parameters.", column_of(raw, k)),
            ));
        }
        if k.is_empty() {
            return Err(EsErr::new(
                400,
                "document_parsing_exception",
                "[1:2] field name cannot be an empty string",
            ));
        }
        let field = props.get(k);
        let parse_fail = |ty: &FieldType, cause: EsErr| {
            let preview = match v {
                Value::Object(_) => "{…}".to_string(),
                other => plain(other).chars().take(200).collect(),
            };
            EsErr::new(
                400,
                "document_parsing_exception",
                format!(
                    "[1:{}] failed to parse field [{full}] of type [{}] in document with id '{id}'. Preview of field's value: '{preview}'",
                    column_of(raw, k),
                    type_name(ty)
                ),
            )
            .caused_by(cause)
        };
        match field {
            Some(Field { ty: FieldType::Object(inner), .. }) => match v {
                Value::Object(o) => check_doc(inner, &full, o, id, raw, dynamic, added)?,
                Value::Null => {}
                Value::Array(items) => {
                    for it in items {
                        match it {
                            Value::Object(o) => check_doc(inner, &full, o, id, raw, dynamic, added)?,
                            Value::Null => {}
                            _ => {
                                return Err(EsErr::new(400, "document_parsing_exception", format!("[1:{}] object mapping for [{full}] tried to parse field [{k}] as object, but found a concrete value", column_of(raw, k))))
                            }
                        }
                    }
                }
                _ => {
                    return Err(EsErr::new(
                        400,
                        "document_parsing_exception",
                        format!("[1:{}] object mapping for [{full}] tried to parse field [{k}] as object, but found a concrete value", column_of(raw, k)),
                    ))
                }
            },
            Some(f) => {
                let values: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                for one in values {
                    if one.is_object() || one.is_array() {
                        let cause = EsErr::new(400, "illegal_state_exception", format!("Can't get text on a {} at 1:{}", token_name(one), column_of(raw, k)));
                        return Err(parse_fail(&f.ty, cause));
                    }
                    if let FieldType::Keyword { ignore_above } = &f.ty {
                        if let Value::String(s) = one {
                            let ignored = ignore_above.is_some_and(|n| s.chars().count() > n);
                            if !ignored && s.len() > MAX_TERM_BYTES {
                                let prefix: String = s.bytes().take(30).map(|b| format!("{b}, ")).collect();
                                return Err(EsErr::new(
                                    400,
                                    "illegal_argument_exception",
                                    format!(
                                        "Document contains at least one immense term in field=\"{full}\" (whose UTF8 encoding is longer than the max length {MAX_TERM_BYTES}), all of which were skipped. The prefix of the first immense term is: '[{}...]', original message: bytes can be at most {MAX_TERM_BYTES} in length; got {}",
                                        prefix.trim_end_matches(", "),
                                        s.len()
                                    ),
                                )
                                .caused_by(EsErr::new(400, "max_bytes_length_exceeded_exception", format!("bytes can be at most {MAX_TERM_BYTES} in length; got {}", s.len()))));
                            }
                        }
                    }
                    norm_value(&f.ty, one).map_err(|cause| parse_fail(&f.ty, cause))?;
                }
            }
            None => {
                if v.is_null() {
                    continue;
                }
                match dynamic {
                    "strict" => {
                        return Err(EsErr::new(
                            400,
                            "strict_dynamic_mapping_exception",
                            format!(
                                "[1:{}] mapping set to strict, dynamic introduction of [{k}] within [{}] is not allowed",
                                column_of(raw, k),
                                if prefix.is_empty() { "_doc" } else { prefix }
                            ),
                        ))
                    }
                    "false" | "runtime" => {}
                    _ => {
                        if let Some(f) = dynamic_field(v) {
                            if let (FieldType::Object(_), Value::Object(o)) = (&f.ty, v) {
                                let mut nested = Vec::new();
                                check_doc(&Props::new(), &full, o, id, raw, dynamic, &mut nested)?;
                                let mut inner = Props::new();
                                for (path, nf) in nested {
                                    insert_path(&mut inner, path.strip_prefix(&format!("{full}.")).unwrap_or(&path), nf);
                                }
                                added.push((full.clone(), Field { ty: FieldType::Object(inner), raw: json!({}) }));
                            } else {
                                added.push((full.clone(), f));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn insert_path(props: &mut Props, path: &str, f: Field) {
    match path.split_once('.') {
        None => {
            props.insert(path.to_string(), f);
        }
        Some((head, rest)) => {
            let entry = props.entry(head.to_string()).or_insert_with(|| Field {
                ty: FieldType::Object(Props::new()),
                raw: json!({}),
            });
            if let FieldType::Object(inner) = &mut entry.ty {
                insert_path(inner, rest, f);
            }
        }
    }
}

/// ES's default dynamic mapping of a new field.
fn dynamic_field(v: &Value) -> Option<Field> {
    match v {
        Value::String(_) => Some(Field {
            ty: FieldType::Text,
            raw: json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}),
        }),
        Value::Bool(_) => Some(Field {
            ty: FieldType::Boolean,
            raw: json!({"type": "boolean"}),
        }),
        Value::Number(n) if n.is_f64() => Some(Field {
            ty: FieldType::Float,
            raw: json!({"type": "float"}),
        }),
        Value::Number(_) => Some(Field {
            ty: FieldType::Long,
            raw: json!({"type": "long"}),
        }),
        Value::Object(_) => Some(Field {
            ty: FieldType::Object(Props::new()),
            raw: json!({}),
        }),
        Value::Array(a) => a.iter().find(|x| !x.is_null()).and_then(dynamic_field),
        Value::Null => None,
    }
}

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

type Shared = Arc<Mutex<StandIn>>;

/// `%XX` decoding; `plus_is_space` for query strings only.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b[i] == b'+' {
            b' '
        } else {
            b[i]
        });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Reply {
    status: u16,
    body: Option<Value>,
    extra_headers: Vec<(&'static str, String)>,
    bulk_items: usize,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
            extra_headers: Vec::new(),
            bulk_items: 0,
        }
    }
    fn status(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            extra_headers: Vec::new(),
            bulk_items: 0,
        }
    }
    fn err(e: EsErr) -> Reply {
        Reply::status(e.status, e.body())
    }
}

async fn handle(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.lock().unwrap_or_else(|p| p.into_inner()).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let started = Instant::now();
    let reply = {
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        let r = route(&mut st, &method, &uri, &headers, &body, started);
        st.log.push(LoggedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            status: r.status,
            bulk_items: r.bulk_items,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        r
    };
    let mut resp = match (&reply.body, method == Method::HEAD) {
        (Some(b), false) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            b.to_string(),
        )
            .into_response(),
        _ => StatusCode::from_u16(reply.status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in reply.extra_headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(k, v);
        }
    }
    resp
}

/// Query parameters every endpoint accepts.
const COMMON_PARAMS: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "format",
    "source",
    "source_content_type",
];

fn check_params(path: &str, params: &[(String, String)], allowed: &[&str]) -> Result<(), EsErr> {
    let bad: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !COMMON_PARAMS.contains(k) && !allowed.contains(k))
        .collect();
    match bad.as_slice() {
        [] => Ok(()),
        [one] => Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!("request [{path}] contains unrecognized parameter: [{one}]"),
        )),
        many => Err(EsErr::new(
            400,
            "illegal_argument_exception",
            format!(
                "request [{path}] contains unrecognized parameters: [{}]",
                many.join("], [")
            ),
        )),
    }
}

fn check_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), Reply> {
    if body.is_empty() {
        return Ok(());
    }
    let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) else {
        return Err(Reply::status(
            406,
            json!({"error": "Content-Type header is missing", "status": 406}),
        ));
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = [
        "application/json",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    ]
    .contains(&media.as_str());
    if ok {
        Ok(())
    } else if ["application/yaml", "application/smile", "application/cbor"]
        .contains(&media.as_str())
    {
        Err(Reply::err(EsErr::new(
            400,
            "stand_in_unsupported_exception",
            format!("the stand-in only speaks JSON, not [{media}]"),
        )))
    } else {
        Err(Reply::status(
            406,
            json!({"error": format!("Content-Type header [{ct}] is not supported"), "status": 406}),
        ))
    }
}

fn parse_json_body(body: &[u8]) -> Result<Option<Value>, EsErr> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        EsErr::new(
            400,
            "x_content_parse_exception",
            format!("[{}:{}] {}", e.line(), e.column(), e),
        )
    })
}

fn request_fault_reply(status: u16) -> Reply {
    let e = match status {
        503 => EsErr {
            status,
            ty: "master_not_discovered_exception".into(),
            reason: Value::Null,
            caused_by: None,
            extra: Map::new(),
        },
        429 => EsErr::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation (injected by the stand-in)",
        ),
        500 => EsErr::new(500, "exception", "injected internal error"),
        s => EsErr::new(
            s,
            "stand_in_injected_exception",
            format!("injected HTTP {s}"),
        ),
    };
    Reply::err(e)
}

fn route(
    st: &mut StandIn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    started: Instant,
) -> Reply {
    // whole-request faults first: an unreachable cluster answers nothing useful
    if let Some(f) = &mut st.request_fault {
        let active = match (f.remaining, f.until) {
            (Some(0), _) => false,
            (_, Some(t)) if Instant::now() >= t => false,
            _ => true,
        };
        if active {
            if let Some(n) = &mut f.remaining {
                *n -= 1;
            }
            return request_fault_reply(f.status);
        }
        st.request_fault = None;
    }
    let path = uri.path().to_string();
    if let Some(want) = &st.auth {
        let got = headers.get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            let reason = match got {
                None => format!("missing authentication credentials for REST request [{path}]"),
                Some(_) => format!("unable to authenticate user for REST request [{path}]"),
            };
            let mut r = Reply::err(
                EsErr::new(401, "security_exception", reason)
                    .with("header", json!({"WWW-Authenticate": ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]})),
            );
            r.extra_headers.push((
                "www-authenticate",
                "Basic realm=\"security\", charset=\"UTF-8\"".into(),
            ));
            r.extra_headers.push(("www-authenticate", "ApiKey".into()));
            return r;
        }
    }
    if let Err(r) = check_content_type(headers, body) {
        return r;
    }
    let params = query_params(uri);
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|x| percent_decode(x, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let result = match (m, segs.as_slice()) {
        ("GET" | "HEAD", []) => check_params(&path, &params, &[]).map(|_| info()),
        ("POST" | "PUT", ["_bulk"]) => bulk(st, None, &path, &params, body, started),
        ("POST" | "PUT", [idx, "_bulk"]) => bulk(st, Some(idx), &path, &params, body, started),
        ("GET" | "POST", ["_refresh"]) => check_params(
            &path,
            &params,
            &["ignore_unavailable", "allow_no_indices", "expand_wildcards"],
        )
        .map(|_| refresh(st, None))
        .and_then(|r| r),
        ("GET" | "POST", [idx, "_refresh"]) => check_params(
            &path,
            &params,
            &["ignore_unavailable", "allow_no_indices", "expand_wildcards"],
        )
        .and_then(|_| refresh(st, Some(idx))),
        ("GET" | "POST", [idx, "_search"]) => check_params(&path, &params, SEARCH_PARAMS)
            .and_then(|_| search(st, idx, body, started, &params)),
        ("GET" | "POST", [idx, "_count"]) => check_params(
            &path,
            &params,
            &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "q",
                "routing",
                "preference",
                "min_score",
                "terminate_after",
            ],
        )
        .and_then(|_| count(st, idx, body)),
        ("GET" | "POST", [idx, "_mget"]) => check_params(
            &path,
            &params,
            &[
                "realtime",
                "refresh",
                "routing",
                "preference",
                "_source",
                "_source_includes",
                "_source_excludes",
                "stored_fields",
            ],
        )
        .and_then(|_| mget(st, Some(idx), body)),
        ("GET" | "POST", ["_mget"]) => check_params(
            &path,
            &params,
            &[
                "realtime",
                "refresh",
                "routing",
                "preference",
                "_source",
                "_source_includes",
                "_source_excludes",
                "stored_fields",
            ],
        )
        .and_then(|_| mget(st, None, body)),
        ("GET" | "HEAD", [idx, "_doc", id]) => check_params(
            &path,
            &params,
            &[
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
            ],
        )
        .map(|_| get_doc(st, idx, id)),
        ("PUT", ["_index_template", name]) => {
            check_params(&path, &params, &["create", "master_timeout", "cause"])
                .and_then(|_| put_template(st, name, body, &params))
        }
        ("GET" | "HEAD", ["_index_template", name]) => check_params(
            &path,
            &params,
            &[
                "local",
                "master_timeout",
                "flat_settings",
                "include_defaults",
            ],
        )
        .map(|_| get_template(st, name)),
        ("DELETE", ["_index_template", name]) => {
            check_params(&path, &params, &["master_timeout", "timeout"]).map(|_| {
                match st.templates.remove(*name) {
                    Some(_) => Reply::ok(json!({"acknowledged": true})),
                    None => Reply::err(EsErr::new(
                        404,
                        "resource_not_found_exception",
                        format!("index_template [{name}] missing"),
                    )),
                }
            })
        }
        ("GET", [idx, "_mapping"]) => check_params(
            &path,
            &params,
            &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "local",
                "master_timeout",
            ],
        )
        .map(|_| match st.indices.get(*idx) {
            Some(i) => Reply::ok(json!({ *idx: {"mappings": i.mapping.to_json()} })),
            None => Reply::err(index_not_found(idx)),
        }),
        ("PUT", [idx]) if !idx.starts_with('_') => check_params(
            &path,
            &params,
            &["wait_for_active_shards", "timeout", "master_timeout"],
        )
        .and_then(|_| create_index(st, idx, body)),
        ("GET" | "HEAD", [idx]) if !idx.starts_with('_') => check_params(
            &path,
            &params,
            &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "flat_settings",
                "include_defaults",
                "local",
                "master_timeout",
                "features",
            ],
        )
        .map(|_| get_index(st, idx)),
        ("DELETE", [idx]) if !idx.starts_with('_') => check_params(
            &path,
            &params,
            &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "timeout",
                "master_timeout",
            ],
        )
        .map(|_| match st.indices.remove(*idx) {
            Some(_) => Reply::ok(json!({"acknowledged": true})),
            None => Reply::err(index_not_found(idx)),
        }),
        _ => Ok(Reply::status(
            400,
            json!({"error": format!("no handler found for uri [{path}] and method [{m}]"), "status": 400}),
        )),
    };
    match result {
        Ok(r) => r,
        Err(e) => Reply::err(e),
    }
}

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

fn info() -> Reply {
    Reply::ok(json!({
        "name": "stand-in-node",
        "cluster_name": "ubackup-test",
        "cluster_uuid": "c1uSt3rUuIdStandIn0001",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000",
            "build_date": "2024-12-11T12:08:05.663969764Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    }))
}

/// ES's index name rules.
fn check_index_name(name: &str) -> Result<(), EsErr> {
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
fn resolve_indices(st: &StandIn, list: &str) -> Result<Vec<String>, EsErr> {
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

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum OpKind {
    Index,
    Create,
    Delete,
    Update,
}

impl OpKind {
    fn name(&self) -> &'static str {
        match self {
            OpKind::Index => "index",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Update => "update",
        }
    }
}

#[derive(Debug, Clone)]
struct BulkOp {
    kind: OpKind,
    index: Option<String>,
    id: Option<String>,
    /// The source line as sent (index/create/update).
    source: String,
}

/// Splits and checks a bulk body the way ES's BulkRequestParser does.
fn parse_bulk(body: &[u8], default_index: Option<&str>) -> Result<Vec<BulkOp>, EsErr> {
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

fn bulk(
    st: &mut StandIn,
    default_index: Option<&str>,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
    started: Instant,
) -> Result<Reply, EsErr> {
    check_params(
        path,
        params,
        &[
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
        ],
    )?;
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
    // injected faults
    let mut fault = None;
    for f in st.item_faults.iter_mut().filter(|f| f.remaining > 0) {
        let hit = match &f.matcher {
            ItemMatch::Id(x) => *x == id,
            ItemMatch::Nth(k) => *k == n,
        };
        if hit {
            if f.remaining != u32::MAX {
                f.remaining -= 1;
            }
            fault = Some(f.status);
            break;
        }
    }
    if let Some(status) = fault {
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

// ---------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Query {
    MatchAll,
    MatchNone,
    Term {
        field: String,
        value: Value,
    },
    Terms {
        field: String,
        values: Vec<Value>,
    },
    Range {
        field: String,
        bounds: Vec<(String, Value)>,
    },
    Exists {
        field: String,
    },
    Ids(Vec<String>),
    Bool {
        must: Vec<Query>,
        filter: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        msm: Option<usize>,
    },
}

fn parsing(reason: String) -> EsErr {
    EsErr::new(400, "parsing_exception", reason)
        .with("line", 1)
        .with("col", 1)
}

fn parse_query(v: &Value) -> Result<Query, EsErr> {
    let obj = v
        .as_object()
        .ok_or_else(|| parsing("[_na] query malformed, must start with start_object".into()))?;
    if obj.len() != 1 {
        let keys: Vec<&String> = obj.keys().collect();
        if keys.is_empty() {
            return Err(parsing("query malformed, empty clause found".into()));
        }
        return Err(parsing(format!(
            "[{}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]",
            keys[0]
        )));
    }
    let (name, body) = obj.iter().next().expect("one key");
    let single_field = |body: &Value| -> Result<(String, Value), EsErr> {
        let o = body.as_object().ok_or_else(|| {
            parsing(format!(
                "[{name}] query malformed, no start_object after query name"
            ))
        })?;
        let mut it = o.iter();
        let (f, v) = it.next().ok_or_else(|| {
            parsing(format!(
                "[{name}] query doesn't support multiple fields, found none"
            ))
        })?;
        if let Some((g, _)) = it.next() {
            return Err(parsing(format!(
                "[{name}] query doesn't support multiple fields, found [{f}] and [{g}]"
            )));
        }
        Ok((f.clone(), v.clone()))
    };
    Ok(match name.as_str() {
        "match_all" => Query::MatchAll,
        "match_none" => Query::MatchNone,
        "term" => {
            let (field, v) = single_field(body)?;
            let value = match v {
                Value::Object(o) => {
                    for k in o.keys() {
                        if !["value", "boost", "case_insensitive", "_name"].contains(&k.as_str()) {
                            return Err(parsing(format!("[term] query does not support [{k}]")));
                        }
                    }
                    if o.get("case_insensitive").and_then(Value::as_bool) == Some(true) {
                        return Err(EsErr::new(
                            400,
                            "stand_in_unsupported_exception",
                            "case_insensitive term queries are not supported by the stand-in",
                        ));
                    }
                    o.get("value")
                        .cloned()
                        .ok_or_else(|| parsing("[term] query requires a value".into()))?
                }
                Value::Array(_) => {
                    return Err(parsing(
                        "[term] query does not support array of values".into(),
                    ))
                }
                other => other,
            };
            Query::Term { field, value }
        }
        "terms" => {
            let o = body
                .as_object()
                .ok_or_else(|| parsing("[terms] query malformed".into()))?;
            let fields: Vec<(&String, &Value)> = o
                .iter()
                .filter(|(k, _)| !["boost", "_name"].contains(&k.as_str()))
                .collect();
            if fields.len() != 1 {
                return Err(parsing(
                    "[terms] query does not support multiple fields".into(),
                ));
            }
            let values = fields[0].1.as_array().cloned().ok_or_else(|| {
                parsing(format!("[terms] query does not support [{}]", fields[0].0))
            })?;
            Query::Terms {
                field: fields[0].0.clone(),
                values,
            }
        }
        "range" => {
            let (field, v) = single_field(body)?;
            let o = v
                .as_object()
                .ok_or_else(|| parsing(format!("[range] query does not support [{field}]")))?;
            let mut bounds = Vec::new();
            for (k, x) in o {
                match k.as_str() {
                    "gte" | "gt" | "lte" | "lt" => bounds.push((k.clone(), x.clone())),
                    "format" | "boost" | "time_zone" | "relation" | "_name" => {}
                    other => {
                        return Err(parsing(format!("[range] query does not support [{other}]")))
                    }
                }
            }
            Query::Range { field, bounds }
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| parsing("[exists] must be provided with a [field]".into()))?;
            Query::Exists {
                field: field.to_string(),
            }
        }
        "ids" => {
            let vals = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| parsing("[ids] query malformed, no values".into()))?;
            Query::Ids(vals.iter().map(plain).collect())
        }
        "bool" => {
            let o = body
                .as_object()
                .ok_or_else(|| parsing("[bool] query malformed".into()))?;
            let mut q = Query::Bool {
                must: vec![],
                filter: vec![],
                should: vec![],
                must_not: vec![],
                msm: None,
            };
            if let Query::Bool {
                must,
                filter,
                should,
                must_not,
                msm,
            } = &mut q
            {
                for (k, x) in o {
                    let list = || -> Result<Vec<Query>, EsErr> {
                        match x {
                            Value::Array(a) => a.iter().map(parse_query).collect(),
                            one => Ok(vec![parse_query(one)?]),
                        }
                    };
                    match k.as_str() {
                        "must" => *must = list()?,
                        "filter" => *filter = list()?,
                        "should" => *should = list()?,
                        "must_not" => *must_not = list()?,
                        "minimum_should_match" => {
                            *msm = x
                                .as_u64()
                                .map(|n| n as usize)
                                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        }
                        "boost" | "_name" => {}
                        other => {
                            return Err(parsing(format!("[bool] query does not support [{other}]")))
                        }
                    }
                }
            }
            q
        }
        other => {
            return Err(parsing(format!("unknown query [{other}]"))
                .with("line", 1)
                .with("col", 1))
        }
    })
}

/// A query with its values already parsed for the fields' types.
enum Compiled {
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

fn shard_failure(index: &str, cause: EsErr) -> EsErr {
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

fn compile(q: &Query, m: &Mapping, index: &str) -> Result<Compiled, EsErr> {
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
fn doc_norms(doc: &Value, path: &str, ty: &FieldType, m: &Mapping) -> Vec<Norm> {
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

fn matches(c: &Compiled, id: &str, doc: &Value, m: &Mapping) -> bool {
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

struct SortKey {
    field: String,
    desc: bool,
    ty: Option<FieldType>,
}

fn parse_sort(v: &Value, m: &Mapping, index: &str) -> Result<Vec<SortKey>, EsErr> {
    let list: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    };
    let mut out = Vec::new();
    for s in list {
        let (field, desc) = match &s {
            Value::String(f) => (f.clone(), f == "_score"),
            Value::Object(o) if o.len() == 1 => {
                let (f, spec) = o.iter().next().expect("one");
                let order = match spec {
                    Value::String(x) => x.clone(),
                    Value::Object(so) => {
                        for k in so.keys() {
                            if ![
                                "order",
                                "missing",
                                "unmapped_type",
                                "mode",
                                "format",
                                "numeric_type",
                            ]
                            .contains(&k.as_str())
                            {
                                return Err(parsing(format!("[field_sort] unknown field [{k}]")));
                            }
                        }
                        so.get("order")
                            .and_then(Value::as_str)
                            .unwrap_or(if f == "_score" { "desc" } else { "asc" })
                            .to_string()
                    }
                    _ => return Err(parsing(format!("[sort] malformed for [{f}]"))),
                };
                let desc = match order.as_str() {
                    "asc" => false,
                    "desc" => true,
                    other => {
                        return Err(EsErr::new(
                            400,
                            "illegal_argument_exception",
                            format!("Unknown SortOrder [{other}]"),
                        ))
                    }
                };
                (f.clone(), desc)
            }
            other => return Err(parsing(format!("[sort] malformed: {other}"))),
        };
        if field == "_id" {
            return Err(shard_failure(index, EsErr::new(400, "illegal_argument_exception", "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled")));
        }
        let ty = if field == "_score" || field == "_doc" {
            None
        } else {
            match m.field(&field) {
                None => return Err(shard_failure(index, EsErr::new(400, "query_shard_exception", format!("No mapping found for [{field}] in order to sort on")))),
                Some(f) if f.ty == FieldType::Text => {
                    return Err(shard_failure(index, EsErr::new(400, "illegal_argument_exception", format!("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory."))))
                }
                Some(f) => Some(f.ty.clone()),
            }
        };
        out.push(SortKey { field, desc, ty });
    }
    Ok(out)
}

fn cmp_norm(a: &Option<Norm>, b: &Option<Norm>, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        // missing values sort last in both orders (`_last`)
        (None, None) => Equal,
        (None, Some(_)) => Greater,
        (Some(_), None) => Less,
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(y).unwrap_or(Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

fn search(
    st: &mut StandIn,
    list: &str,
    body: &[u8],
    started: Instant,
    params: &[(String, String)],
) -> Result<Reply, EsErr> {
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

fn count(st: &mut StandIn, list: &str, body: &[u8]) -> Result<Reply, EsErr> {
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
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn iso_dates_parse_to_epoch_millis() {
        assert_eq!(parse_iso("1970-01-01"), Some(0));
        assert_eq!(
            parse_iso("2026-11-22T05:37:00.123Z"),
            Some(1_795_325_820_123)
        );
        assert_eq!(parse_iso("2026-13-01"), None);
    }

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

    #[test]
    fn glob_patterns() {
        assert!(glob("uuzu*", "uuzubackup"));
        assert!(glob("uuzubackup", "uuzubackup"));
        assert!(!glob("uuzubackup", "uuzubackup-instances"));
        assert!(glob("*-instances", "uuzubackup-instances"));
    }
}
