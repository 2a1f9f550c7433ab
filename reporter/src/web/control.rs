//! `/control`: pull nodes (pause, resume, worker count through the
//! control hash the node reads every 0.5 s) and dead-letter lists (put
//! entries back on their queue, or drop them, one or all).
//!
//! Reading needs nothing; every POST needs the token ([`super::auth`]) and
//! is logged with what it changed, by whom (bearer or login session) and
//! from which address.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use ubackup_catalog::QueueKind;
use ubackup_common::keys::control;
use ubackup_common::RedisConn;

use super::auth::Peer;
use super::dead::{self, DeadEntry};
use super::error::WebError;
use super::html::{frame, time, Nav};
use super::overview::{dead_anchor, node_anchor, node_state};
use super::query::Params;
use super::state::{Handles, WebState};
use super::viewer::Viewer;
use crate::cluster::{ListDepth, NodeView};
use crate::format::duration_ms;

/// Entries shown per dead-letter list.
const SHOWN: usize = 50;

pub(crate) async fn page(
    State(web): State<WebState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    Params::parse(q.as_deref(), &[])?;
    let viewer = web.auth.viewer(&headers);
    let (snap, _) = web.app.read().await?;
    let h = web.handles().await?;
    let mq = web.app.cfg.message_queue();
    let mut lists = Vec::new();
    for l in snap.queues.of_kind(QueueKind::Dead) {
        let mut conn = conn_for(&h, &mq, &l.queue);
        let (len, entries) = match dead::page(&mut conn, &l.list, SHOWN).await {
            Ok(p) => p,
            Err(e) => return Err(web.redis_error(&h, e).await),
        };
        lists.push((l.clone(), len, entries));
    }
    Ok(frame(
        "Cluster control",
        Nav::Control,
        &viewer,
        body(&viewer, &snap.nodes, &lists, web.auth.configured()),
    )
    .into_response())
}

/// The Redis holding `queue` (and its dead letters).
fn conn_for(h: &Handles, message_queue: &str, queue: &str) -> RedisConn {
    if queue == message_queue {
        h.message_redis.clone()
    } else {
        h.redis.clone()
    }
}

fn excerpt(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

fn node_controls(v: &Viewer, n: &NodeView) -> Markup {
    let base = format!("/control/node/{}", super::html::path_segment(&n.id));
    html! {
        @if n.is_indexer() {
            span.muted { "indexer (no control hash)" }
        } @else if v.is_operator() {
            @if n.control_paused {
                form.inline method="post" action={(base) "/resume"} { (v.csrf_field()) button.act type="submit" { "Resume" } }
            } @else {
                form.inline method="post" action={(base) "/pause"} { (v.csrf_field()) button.act type="submit" { "Pause" } }
            }
            " "
            form.inline method="post" action={(base) "/workers"} {
                (v.csrf_field())
                input type="number" name="workers" min="1" max="256" value=[n.workers] style="width:4.5em" aria-label="workers";
                " "
                button.act type="submit" { "Set workers" }
            }
        } @else {
            span.muted { "log in to change" }
        }
    }
}

fn dead_controls(v: &Viewer, l: &ListDepth, e: &DeadEntry) -> Markup {
    html! {
        @if v.is_operator() {
            @if e.requeue_refusal().is_none() {
                form.inline method="post" action="/control/dead/requeue" {
                    (v.csrf_field())
                    input type="hidden" name="list" value=(l.list);
                    input type="hidden" name="entry" value=(e.id);
                    button.act type="submit" { "Requeue" }
                }
                " "
            }
            form.inline method="post" action="/control/dead/drop" {
                (v.csrf_field())
                input type="hidden" name="list" value=(l.list);
                input type="hidden" name="entry" value=(e.id);
                button.act.danger type="submit" { "Drop" }
            }
        }
    }
}

fn body(
    v: &Viewer,
    nodes: &[NodeView],
    lists: &[(ListDepth, u64, Vec<DeadEntry>)],
    token_configured: bool,
) -> Markup {
    html! {
        h1 { "Cluster control" }
        @if !v.is_operator() {
            div.note {
                @if token_configured {
                    "Read-only view. " a href="/login" { "Log in" } " with the serve_token to pause or resume nodes, set their workers, and requeue or drop dead letters."
                } @else {
                    "Read-only: no serve_token is configured, so nothing can be changed from here."
                }
            }
        }
        h2 { "Nodes" }
        @if nodes.is_empty() {
            p.muted { "No node has registered." }
        } @else {
            table {
                tr { th { "Node" } th { "State" } th { "Operator pause" } th.n { "Active / workers" } th.n { "Heartbeat" } th { "Actions" } }
                @for n in nodes {
                    tr id=(node_anchor(&n.id)) {
                        td { (n.id) br; span.muted.mono { (n.ip) } }
                        td { (node_state(n)) }
                        td { @if n.control_paused { span.warn { "paused by operator" } } @else { span.muted { "no" } } }
                        td.n {
                            (n.active.map(|a| a.to_string()).unwrap_or_else(|| "-".into()))
                            " / "
                            (n.workers.map(|a| a.to_string()).unwrap_or_else(|| "-".into()))
                        }
                        td.n { (n.heartbeat_age_ms.map(|a| format!("{} ago", duration_ms(a))).unwrap_or_else(|| "never".into())) }
                        td { (node_controls(v, n)) }
                    }
                }
            }
            p.muted { "A node reads its control hash every 0.5 s: pausing lets running pulls finish; an empty worker count goes back to the node's work_thread." }
        }
        h2 { "Dead letters" }
        @if lists.is_empty() {
            p.muted { "No queue is known (set redis_queue, or start a node)." }
        }
        @for (l, len, entries) in lists {
            div.card id=(dead_anchor(&l.list)) {
                strong.mono { (l.list) } " → " span.mono { (l.queue) } " · "
                @if *len == 0 { span.ok { "empty" } } @else { span.bad { (len) " entr" (if *len == 1 { "y" } else { "ies" }) } }
                @if *len > 0 && v.is_operator() {
                    " "
                    form.inline method="post" action="/control/dead/requeue-all" {
                        (v.csrf_field())
                        input type="hidden" name="list" value=(l.list);
                        button.act type="submit" { "Requeue all" }
                    }
                    " "
                    form.inline method="post" action="/control/dead/drop-all" {
                        (v.csrf_field())
                        input type="hidden" name="list" value=(l.list);
                        button.act.danger type="submit" { "Drop all" }
                    }
                }
                @if !entries.is_empty() {
                    table style="margin-top:8px" {
                        tr { th { "Time (UTC)" } th { "Node" } th { "Reason" } th { "Payload" } th { } }
                        @for e in entries {
                            tr {
                                @match &e.letter {
                                    Some(d) => {
                                        td.mono { (time(d.time)) }
                                        td { (d.node) }
                                        td { (d.reason) }
                                        td.mono { (excerpt(&d.payload, 300)) }
                                    },
                                    None => {
                                        td { } td { } td.muted { "not a dead-letter entry" }
                                        td.mono { (excerpt(&e.text(), 300)) }
                                    },
                                }
                                td style="white-space:nowrap" { (dead_controls(v, l, e)) }
                            }
                        }
                    }
                    @if *len > entries.len() as u64 {
                        p.muted { "The newest " (entries.len()) " of " (len) " are shown; the bulk actions act on all." }
                    }
                }
            }
        }
    }
}

/// The `csrf` field of a form body, read leniently (before the strict
/// parse) so that a request without credentials gets 401, not 400.
fn form_csrf(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

fn done(viewer: &Viewer, title: &str, lines: &[String]) -> Response {
    frame(
        title,
        Nav::Control,
        viewer,
        html! {
            h1 { (title) }
            div.card {
                @for l in lines { div { (l) } }
                @if lines.is_empty() { div.muted { "Nothing to do." } }
            }
            p { a href="/control" { "Back to cluster control" } }
        },
    )
    .into_response()
}

pub(crate) async fn node_action(
    State(web): State<WebState>,
    headers: HeaderMap,
    peer: Peer,
    Path((node, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, WebError> {
    let who = web
        .auth
        .authorize(&headers, form_csrf(&body).as_deref(), &peer)?;
    let p = Params::form(&body, &["csrf", "workers"])?;
    if !matches!(action.as_str(), "pause" | "resume" | "workers") {
        return Err(WebError::not_found(format!(
            "no node action `{action}`; expected pause, resume or workers"
        )));
    }
    let workers: Option<u64> = if action == "workers" {
        p.number("workers", 1..=256)?
    } else {
        None
    };
    let h = web.handles().await?;
    let keys = web.app.cfg.keys.clone();
    let mut conn = h.redis.clone();
    let (registered, kind, before): (bool, Option<String>, (Option<String>, Option<String>)) =
        match redis::pipe()
            .sismember(keys.workers(), &node)
            .hget(keys.state(&node), ubackup_common::keys::state::KIND)
            .cmd("HMGET")
            .arg(keys.control(&node))
            .arg(control::PAUSED)
            .arg(control::WORKERS)
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(e) => return Err(web.redis_error(&h, e).await),
        };
    if !registered {
        return Err(WebError::not_found(format!(
            "no node `{node}` has registered"
        )));
    }
    if kind.as_deref() == Some("indexer") {
        return Err(WebError::conflict(format!(
            "`{node}` is an indexer; only pull nodes read the control hash"
        )));
    }
    let key = keys.control(&node);
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
    let (field, new, cmd) = match (action.as_str(), workers) {
        ("pause", _) => (
            control::PAUSED,
            Some("1".to_string()),
            redis::cmd("HSET")
                .arg(&key)
                .arg(control::PAUSED)
                .arg(1)
                .clone(),
        ),
        ("resume", _) => (
            control::PAUSED,
            Some("0".to_string()),
            redis::cmd("HSET")
                .arg(&key)
                .arg(control::PAUSED)
                .arg(0)
                .clone(),
        ),
        (_, Some(n)) => (
            control::WORKERS,
            Some(n.to_string()),
            redis::cmd("HSET")
                .arg(&key)
                .arg(control::WORKERS)
                .arg(n)
                .clone(),
        ),
        // an empty count: back to the node's work_thread
        (_, None) => (
            control::WORKERS,
            None,
            redis::cmd("HDEL").arg(&key).arg(control::WORKERS).clone(),
        ),
    };
    let old = if field == control::PAUSED {
        &before.0
    } else {
        &before.1
    };
    if let Err(e) = cmd.query_async::<i64>(&mut conn).await {
        return Err(web.redis_error(&h, e).await);
    }
    let line = format!("node {node}: {key} {field} {} → {}", show(old), show(&new));
    tracing::info!(peer = %who.peer, via = who.via, "web: {line}");
    Ok(done(&web.auth.viewer(&headers), "Node updated", &[line]))
}

pub(crate) async fn dead_action(
    State(web): State<WebState>,
    headers: HeaderMap,
    peer: Peer,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let who = web
        .auth
        .authorize(&headers, form_csrf(&body).as_deref(), &peer)?;
    let p = Params::form(&body, &["csrf", "list", "entry"])?;
    let single = match action.as_str() {
        "requeue" | "drop" => true,
        "requeue-all" | "drop-all" => false,
        _ => {
            return Err(WebError::not_found(format!(
                "no dead-letter action `{action}`; expected requeue, drop, requeue-all or drop-all"
            )))
        }
    };
    let requeue = action.starts_with("requeue");
    let list = p
        .required("list", "a dead-letter list, e.g. level1:dead")?
        .to_string();
    let entry_id = if single {
        Some(
            p.required("entry", "the entry's id (from the control page)")?
                .to_string(),
        )
    } else {
        None
    };
    let (snap, _) = web.app.read().await?;
    let Some(known) = snap
        .queues
        .of_kind(QueueKind::Dead)
        .find(|l| l.list == list)
        .cloned()
    else {
        return Err(WebError::not_found(format!(
            "no dead-letter list `{list}` is known"
        )));
    };
    let h = web.handles().await?;
    let mq = web.app.cfg.message_queue();
    let mut conn = conn_for(&h, &mq, &known.queue);
    let entries = match &entry_id {
        Some(id) => match dead::find(&mut conn, &list, id).await {
            Ok(Some(e)) => vec![e],
            Ok(None) => {
                return Err(WebError::not_found(format!(
                    "no such entry in {list} (already requeued or dropped?)"
                )))
            }
            Err(e) => return Err(web.redis_error(&h, e).await),
        },
        None => match dead::all(&mut conn, &list).await {
            Ok(v) => v,
            Err(e) => return Err(web.redis_error(&h, e).await),
        },
    };
    if single && requeue {
        if let Some(why) = entries[0].requeue_refusal() {
            return Err(WebError::conflict(format!(
                "this entry cannot be requeued: {why}"
            )));
        }
    }
    let mut lines = Vec::new();
    let (mut changed, mut gone, mut skipped) = (0u64, 0u64, 0u64);
    for e in &entries {
        let what = match &e.letter {
            Some(d) => format!(
                "dead letter of {} (reason: {}; payload: {})",
                time(d.time),
                excerpt(&d.reason, 120),
                excerpt(&d.payload, 160)
            ),
            None => format!("element {}", excerpt(&e.text(), 160)),
        };
        let outcome = if requeue {
            if e.requeue_refusal().is_some() {
                skipped += 1;
                continue;
            }
            dead::requeue(&mut conn, &list, &known.queue, e).await
        } else {
            dead::drop(&mut conn, &list, e).await
        };
        match outcome {
            Ok(true) => {
                changed += 1;
                let line = if requeue {
                    format!("requeued from {list} to {}: {what}", known.queue)
                } else {
                    format!("dropped from {list}: {what}")
                };
                tracing::info!(peer = %who.peer, via = who.via, "web: {line}");
                lines.push(line);
            }
            Ok(false) => gone += 1,
            Err(e) => {
                if changed > 0 {
                    tracing::warn!(peer = %who.peer, "web: {action} on {list} stopped after {changed} entries: {e}");
                }
                return Err(web.redis_error(&h, e).await);
            }
        }
    }
    if single && changed == 0 {
        return Err(WebError::not_found(format!(
            "no such entry in {list} (already requeued or dropped?)"
        )));
    }
    if gone > 0 {
        lines.push(format!(
            "{gone} entr(ies) had already been moved or dropped by someone else"
        ));
    }
    if skipped > 0 {
        lines.push(format!(
            "{skipped} entr(ies) cannot be requeued (not a dead-letter entry, or a lossy copy of a non-UTF-8 message) and stay; drop them if they are of no use"
        ));
    }
    let title = match (requeue, changed) {
        (true, n) => format!("Requeued {n} dead letter(s)"),
        (false, n) => format!("Dropped {n} dead letter(s)"),
    };
    Ok(done(&web.auth.viewer(&headers), &title, &lines))
}
