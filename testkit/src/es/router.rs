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

#[cfg(test)]
mod tests {
    use elasticsearch::http::Method;
    use serde_json::json;

    use crate::es::test_client::{client, exchange, raw};
    use crate::es::EsStandIn;

    const NDJSON: &[(&str, &str)] = &[("Content-Type", "application/x-ndjson")];
    const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

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

    #[test]
    fn paths_and_methods_without_an_api_are_no_handler_found() {
        let es = EsStandIn::start();
        for (method, path) in [
            ("GET", "/_bulk"),
            ("DELETE", "/_bulk"),
            ("PATCH", "/idx"),
            ("OPTIONS", "/"),
            ("FOO", "/idx"),
            ("POST", "/"),
            ("GET", "/a/b/c/d"),
            ("GET", "/_foo"),
            ("PUT", "/_refresh"),
            ("GET", "/idx/_doc/"),
        ] {
            let a = exchange(&es, method, path, &[], b"");
            assert_eq!(a.status, 400, "{method} {path}");
            assert_eq!(
                a.json(),
                json!({"error": format!("no handler found for uri [{path}] and method [{method}]"), "status": 400}),
                "{method} {path}"
            );
            assert_eq!(a.header("x-elastic-product"), ["Elasticsearch"]);
            assert_eq!(a.header("content-type"), ["application/json"]);
            assert!(a.header("allow").is_empty(), "{method} {path}");
        }
        // HEAD is answered only where ES lists it, not wherever GET is
        let a = exchange(&es, "HEAD", "/idx/_count", &[], b"");
        assert_eq!((a.status, a.body.as_str()), (400, ""));
        assert_eq!(a.header("content-length"), ["0"]);
        let a = exchange(&es, "HEAD", "/", &[], b"");
        assert_eq!((a.status, a.body.as_str()), (200, ""));
        assert_eq!(a.header("content-type"), ["application/json"]);
        assert_eq!(a.header("x-elastic-product"), ["Elasticsearch"]);
    }

    #[test]
    fn paths_are_read_as_es_reads_them() {
        let es = EsStandIn::start();
        // empty segments and trailing slashes do not count
        let a = exchange(&es, "PUT", "//idx2//", JSON, br#"{"mappings":{}}"#);
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["index"], "idx2");
        assert_eq!(
            exchange(&es, "GET", "/idx2/_mapping/", &[], b"").status,
            200
        );
        // segments are percent-decoded before they are matched
        let a = exchange(
            &es,
            "POST",
            "/%5Fbulk",
            NDJSON,
            b"{\"index\":{\"_index\":\"idx2\",\"_id\":\"z\"}}\n{}\n",
        );
        assert_eq!((a.status, &a.json()["errors"]), (200, &json!(false)));
        let a = exchange(&es, "GET", "/idx2/_doc/a%2Fb", &[], b"");
        assert_eq!(
            (a.status, a.json()),
            (404, json!({"_index": "idx2", "_id": "a/b", "found": false}))
        );
        // the log and the messages keep the path as sent
        let a = exchange(&es, "GET", "/%5Fbulk/", &[], b"");
        assert_eq!(
            a.json()["error"],
            "no handler found for uri [/%5Fbulk/] and method [GET]"
        );
        let paths: Vec<String> = es.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            [
                "//idx2//",
                "/idx2/_mapping/",
                "/%5Fbulk",
                "/idx2/_doc/a%2Fb",
                "/%5Fbulk/"
            ]
        );
    }

    #[test]
    fn an_index_api_under_index_template_is_the_index_api() {
        let es = EsStandIn::start();
        // `/_index_template/_search` searches an index named `_index_template`
        let a = exchange(&es, "GET", "/_index_template/_search", &[], b"");
        assert_eq!(a.status, 404);
        assert_eq!(a.json()["error"]["type"], "index_not_found_exception");
        assert_eq!(a.json()["error"]["index"], "_index_template");
        // other methods on that path are still the template API
        let a = exchange(&es, "DELETE", "/_index_template/_search", &[], b"");
        assert_eq!(a.status, 404);
        assert_eq!(
            a.json()["error"]["reason"],
            "index_template [_search] missing"
        );
        let a = exchange(&es, "HEAD", "/_index_template/_search", &[], b"");
        assert_eq!((a.status, a.body.as_str()), (404, ""));
        // `_mapping` comes after the templates: a template named `_mapping`
        let a = exchange(&es, "GET", "/_index_template/_mapping", &[], b"");
        assert_eq!(a.json()["error"]["type"], "resource_not_found_exception");
        let a = exchange(
            &es,
            "PUT",
            "/_index_template/_bulk",
            NDJSON,
            b"{\"index\":{\"_id\":\"1\"}}\n{}\n",
        );
        assert_eq!(a.status, 200, "{}", a.body);
    }

    #[test]
    fn bodies_and_content_types_are_taken_as_es_takes_them() {
        let es = EsStandIn::start();
        let one = b"{\"index\":{\"_index\":\"b\",\"_id\":\"1\"}}\n{}\n";
        for ct in [
            "application/x-ndjson",
            "application/json",
            "application/json; charset=UTF-8",
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        ] {
            let a = exchange(&es, "POST", "/_bulk", &[("Content-Type", ct)], one);
            assert_eq!(a.status, 200, "{ct}: {}", a.body);
        }
        let a = exchange(&es, "POST", "/_bulk", &[], one);
        assert_eq!(
            (a.status, a.json()),
            (
                406,
                json!({"error": "Content-Type header is missing", "status": 406})
            )
        );
        let a = exchange(
            &es,
            "POST",
            "/_bulk",
            &[("Content-Type", "text/plain")],
            one,
        );
        assert_eq!(
            (a.status, a.json()),
            (
                406,
                json!({"error": "Content-Type header [text/plain] is not supported", "status": 406})
            )
        );
        // far past axum's default 2 MB limit
        let mut big = String::new();
        let mut i = 0;
        while big.len() < 3 * 1024 * 1024 {
            big.push_str(&format!(
                "{{\"index\":{{\"_id\":\"big{i}\"}}}}\n{{\"k\":\"{}\"}}\n",
                "y".repeat(200)
            ));
            i += 1;
        }
        let a = exchange(&es, "POST", "/big/_bulk", NDJSON, big.as_bytes());
        assert_eq!((a.status, &a.json()["errors"]), (200, &json!(false)));
        assert_eq!(es.doc_count("big"), i);
    }

    #[test]
    fn refused_credentials_name_both_schemes() {
        let es = EsStandIn::start();
        es.require_basic_auth("elastic", "changeme");
        let a = exchange(&es, "GET", "/nope/", &[], b"");
        assert_eq!(a.status, 401);
        assert_eq!(
            a.json()["error"]["reason"],
            "missing authentication credentials for REST request [/nope/]"
        );
        assert_eq!(
            a.header("www-authenticate"),
            ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]
        );
        let a = exchange(
            &es,
            "GET",
            "/",
            &[("Authorization", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==")],
            b"",
        );
        assert_eq!(a.status, 200);
    }
}
