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
//!
//! Layout, one job per module, each importing only those below it (the
//! handle starts the router, the router calls the endpoints, the endpoints
//! use `http` and `state`; nothing reaches back up):
//! * `handle`: the public [`EsStandIn`] (start, faults, inspection);
//! * `router`: axum routes from path and method to endpoint, and where ES
//!   routes differently from axum's defaults (path reading, "no handler
//!   found", `HEAD`, body limit, the product header);
//! * `http`: what every request shares (faults, credentials, Content-Type,
//!   query parameters, the log, JSON replies);
//! * `state`: indices, documents, templates, faults and the request log
//!   ([`LoggedRequest`]); `error`: ES-shaped errors;
//! * `mapping` (with `mapping::fields`), `values`, `document`: mappings,
//!   field values, and documents checked against their mapping;
//! * `client` (feature `es-client`): the official client's raw requests,
//!   for tests that talk to the stand-in directly;
//! * endpoints: `indices`, `templates`, `get` (`_doc`, `_mget`), `bulk`
//!   (with `bulk::parse`), `search` (with `search::{query, compile,
//!   sort}`).

mod bulk;
#[cfg(any(test, feature = "es-client"))]
pub mod client;
mod document;
mod error;
mod get;
mod handle;
mod http;
mod indices;
mod mapping;
mod router;
mod search;
mod state;
mod templates;
#[cfg(test)]
mod test_client;
mod values;

pub use handle::EsStandIn;
pub use state::LoggedRequest;

/// The version the stand-in claims to be.
pub const VERSION: &str = "8.17.0";
