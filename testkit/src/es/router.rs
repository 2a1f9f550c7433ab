//! Which endpoint answers which path and method: an axum [`Router`] built
//! from ES's own routes, wrapped so that it routes the way ES does.
//!
//! Where axum's defaults differ from ES, ES wins:
//! * ES reads `//a//b/` as `/a/b` and decodes `%XX` in a segment before it
//!   matches a path; axum matches the raw path. [`normalize`] rewrites the
//!   URI axum routes on; endpoints still read the path as sent
//!   ([`OriginalUri`]), which ES quotes in its messages and the log keeps.
//! * A path or method ES has no API for is `400 no handler found`, not
//!   axum's empty 404 or 405 with an `Allow` header; axum answers `HEAD`
//!   with the `GET` handler, the stand-in only where ES's routes list
//!   `HEAD`.
//! * Path segments, query strings and bodies are read by [`serve`], never
//!   by axum's extractors, so no request is refused with axum's own text.
//! * Bodies up to ES's `http.max_content_length` (100 MB), not axum's 2 MB.
//! * Every response, axum's own included, carries `X-Elastic-Product:
//!   Elasticsearch` (the official clients refuse to talk without it).

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::{any, MethodFilter, MethodRouter};
use axum::Router;
use serde_json::json;
use tower::{Service, ServiceBuilder};

use super::error::EsErr;
use super::http::{no_handler, segments, serve, Call, Endpoint, Reply, Shared};
use super::state::StandIn;
use super::{bulk, get, indices, search, templates, VERSION};

/// The axum handler of an endpoint: every request goes through [`serve`],
/// which reads the request itself.
macro_rules! endpoint_handler {
    ($endpoint:expr) => {{
        let endpoint: Endpoint = $endpoint;
        move |State(shared): State<Shared>,
              method: Method,
              OriginalUri(uri): OriginalUri,
              headers: HeaderMap,
              body: Bytes| serve(shared, endpoint, method, uri, headers, body)
    }};
}

/// ES's `http.max_content_length` default.
const MAX_CONTENT_LENGTH: usize = 100 * 1024 * 1024;

const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];
const GET_POST: &[Method] = &[Method::GET, Method::POST];
const POST_PUT: &[Method] = &[Method::POST, Method::PUT];
const GET: &[Method] = &[Method::GET];
const PUT: &[Method] = &[Method::PUT];
const DELETE: &[Method] = &[Method::DELETE];

/// The methods of one path and what answers each (the first entry that
/// lists a method wins).
type Methods = &'static [(&'static [Method], Endpoint)];

/// `/_index_template/<name>`
const TEMPLATE: Methods = &[
    (PUT, templates::put),
    (GET_HEAD, templates::get),
    (DELETE, templates::delete),
];

/// `/<index>/<api>` endpoints that ES prefers to `/_index_template/<name>`
/// when both match (a wildcard index before a wildcard name):
/// `/_index_template/_search` searches an index named `_index_template`.
const INDEX_APIS_BEFORE_TEMPLATES: &[(&str, Methods)] = &[
    ("_bulk", &[(POST_PUT, bulk::bulk_index)]),
    ("_refresh", &[(GET_POST, indices::refresh_some)]),
    ("_search", &[(GET_POST, search::search)]),
    ("_count", &[(GET_POST, search::count)]),
    ("_mget", &[(GET_POST, get::mget_index)]),
];

/// The stand-in's HTTP service: the routes, the body limit, ES's path
/// reading and the product header.
pub(super) fn app(
    shared: Shared,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    ServiceBuilder::new()
        .map_response(product_header)
        .map_request(normalize)
        .service(router(shared))
}

fn router(shared: Shared) -> Router {
    let mut r = Router::new()
        .route("/", methods(&[(GET_HEAD, info)]))
        .route("/_bulk", methods(&[(POST_PUT, bulk::bulk_any)]))
        .route("/_refresh", methods(&[(GET_POST, indices::refresh_all)]))
        .route("/_mget", methods(&[(GET_POST, get::mget_any)]))
        .route("/_index_template/{name}", methods(TEMPLATE))
        .route(
            "/{index}",
            methods(&[
                (PUT, indices::put),
                (GET_HEAD, indices::get),
                (DELETE, indices::delete),
            ]),
        )
        .route("/{index}/_mapping", methods(&[(GET, indices::get_mapping)]))
        .route("/{index}/_doc/{id}", methods(&[(GET_HEAD, get::doc)]));
    for (api, index_methods) in INDEX_APIS_BEFORE_TEMPLATES {
        r = r
            .route(&format!("/{{index}}/{api}"), methods(index_methods))
            .route(
                &format!("/_index_template/{api}"),
                methods(&[*index_methods, TEMPLATE].concat()),
            );
    }
    r.fallback(endpoint_handler!(no_handler_endpoint))
        .layer(DefaultBodyLimit::max(MAX_CONTENT_LENGTH))
        .with_state(shared)
}

/// One path's method router. Methods it does not list (`HEAD` included,
/// where only `GET` is listed) are "no handler found", with no `Allow`
/// header (`any` leaves it out).
fn methods(list: &[(&'static [Method], Endpoint)]) -> MethodRouter<Shared> {
    let mut router = any(endpoint_handler!(no_handler_endpoint));
    let mut taken: Vec<&Method> = Vec::new();
    for (listed, endpoint) in list {
        for m in listed.iter() {
            if !taken.contains(&m) {
                taken.push(m);
                router = router.on(filter(m), endpoint_handler!(*endpoint));
            }
        }
    }
    if taken.contains(&&Method::GET) && !taken.contains(&&Method::HEAD) {
        router = router.on(MethodFilter::HEAD, endpoint_handler!(no_handler_endpoint));
    }
    router
}

fn filter(m: &Method) -> MethodFilter {
    MethodFilter::try_from(m.clone()).expect("a method axum routes")
}

fn no_handler_endpoint(_: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    Ok(no_handler(c))
}

/// `GET`/`HEAD /`
fn info(_: &mut StandIn, c: &Call) -> Result<Reply, EsErr> {
    c.check_params(&[])?;
    Ok(Reply::ok(json!({
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
    })))
}

/// Routes on the path as ES reads it: non-empty segments, each
/// percent-decoded (and encoded again only where it must be, so that a
/// decoded `/` stays inside its segment). The path as sent goes along as
/// [`OriginalUri`].
fn normalize(mut req: Request) -> Request {
    let sent = req.uri().clone();
    let mut path = String::new();
    for seg in segments(sent.path()) {
        path.push('/');
        encode_segment(&seg, &mut path);
    }
    if path.is_empty() {
        path.push('/');
    }
    let routed = PathAndQuery::try_from(path).ok().and_then(|pq| {
        let mut parts = sent.clone().into_parts();
        parts.path_and_query = Some(pq);
        Uri::from_parts(parts).ok()
    });
    req.extensions_mut().insert(OriginalUri(sent));
    if let Some(uri) = routed {
        *req.uri_mut() = uri;
    }
    req
}

/// Percent-encodes what may not stand in a path segment as it is.
fn encode_segment(seg: &str, out: &mut String) {
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn product_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    resp
}
