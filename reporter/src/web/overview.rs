//! `/`: the cluster at a glance, from [`ClusterStatus`] (the value
//! `/api/status` and `status --json` give).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use ubackup_catalog::QueueKind;

use super::error::WebError;
use super::html::{bytes, frame, path_segment, time, Nav};
use super::query::Params;
use super::state::WebState;
use super::svg::disk_bar;
use crate::alerts::Severity;
use crate::cluster::NodeView;
use crate::config::Thresholds;
use crate::format::duration_ms;
use crate::status::ClusterStatus;

pub(crate) async fn page(
    State(web): State<WebState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    Params::parse(q.as_deref(), &[])?;
    let viewer = web.auth.viewer(&headers);
    let (snap, report) = web.app.read().await?;
    let st = ClusterStatus::build(&snap, &report);
    Ok(frame(
        "Overview",
        Nav::Overview,
        &viewer,
        body(&st, &web.app.cfg.thresholds),
    )
    .into_response())
}

pub fn severity_badge(s: Severity) -> Markup {
    let class = match s {
        Severity::Ok => "badge ok",
        Severity::Warning => "badge warning",
        Severity::Critical => "badge critical",
        Severity::Unknown => "badge unknown",
    };
    html! { span class=(class) { (s.label()) } }
}

/// `up`, `paused (reason)` or `down`.
pub fn node_state(n: &NodeView) -> Markup {
    html! {
        @if !n.up {
            span.badge.down { "down" }
        } @else if n.paused {
            span.badge.paused { "paused" }
            " "
            span.muted { (n.pause_reason.as_deref().unwrap_or(if n.control_paused { "operator" } else { "" })) }
        } @else {
            span.badge.up { "up" }
        }
    }
}

pub fn node_anchor(id: &str) -> String {
    format!("node-{}", path_segment(id))
}

pub fn dead_anchor(list: &str) -> String {
    format!("dead-{}", path_segment(list))
}

fn body(st: &ClusterStatus, t: &Thresholds) -> Markup {
    let inflight: u64 = st
        .queues
        .of_kind(QueueKind::Inflight)
        .map(|l| l.depth)
        .sum();
    let dead: u64 = st.queues.of_kind(QueueKind::Dead).map(|l| l.depth).sum();
    let waiting: u64 = st
        .queues
        .of_kind(QueueKind::Priority)
        .map(|l| l.depth)
        .sum();
    html! {
        h1 { "Overview " (severity_badge(st.health)) }
        p.muted {
            "At " (time(st.generated_ms)) " UTC · Redis " (st.redis)
            " · catalog " (st.catalog.as_deref().unwrap_or("none"))
        }
        @if let Some(e) = &st.catalog_error {
            div.err { "The catalog could not be read: " (e) ". Instance figures are unknown, not zero." }
        }
        div.kpis {
            a.kpi href="/alerts" style="text-decoration:none;color:inherit" {
                div.l { "Alerts" } div.v { (st.alert_count) } }
            @if let Some(i) = &st.instances {
                div.kpi { div.l { "Instances" } div.v { (i.total) } }
                div.kpi { div.l { "Overdue" } div.v class=[(i.overdue > 0).then_some("warn")] { (i.overdue) } }
                div.kpi { div.l { "Failing" } div.v class=[(i.failing > 0).then_some("bad")] { (i.failing) } }
            }
            @if let Some(d) = &st.last_24h {
                div.kpi { div.l { "OK, last 24 h" } div.v.ok { (d.stats.ok) } }
                div.kpi { div.l { "Failed, last 24 h" } div.v class=[(d.stats.failed > 0).then_some("bad")] { (d.stats.failed) } }
                div.kpi { div.l { "Shipped, last 24 h" } div.v { (bytes(d.stats.bytes as i64)) } }
            }
            div.kpi { div.l { "Waiting / in flight / dead" } div.v { (waiting) " / " (inflight) " / " (dead) } }
            @if let Some(r) = &st.replication {
                div.kpi { div.l { "Under-replicated / with copies" } div.v class=[(r.under_replicated > 0).then_some("warn")] { (r.under_replicated) " / " (r.checked) } }
                div.kpi { div.l { "Repair backlog" } div.v { (r.backlog) } }
            }
        }

        @if let Some(v) = &st.redis_view {
            h2 { "Redis" }
            table {
                tr { th { "Master" } th { "Replicas" } @if !v.sentinels.is_empty() { th { "Sentinels" } } }
                tr {
                    td.mono { (v.master) }
                    td {
                        @if v.replicas.is_empty() { span class=[(v.min_replicas > 0).then_some("bad")] { "none" } }
                        @else { @for r in &v.replicas { span.mono { (r) } br; } }
                        @if v.min_replicas > 0 {
                            span class=[(v.online_replicas < v.min_replicas).then_some("bad")] {
                                (v.online_replicas) " online, redis_min_replicas " (v.min_replicas) }
                        }
                    }
                    @if !v.sentinels.is_empty() {
                        td {
                            @for s in &v.sentinels {
                                span.mono { (s.addr) } " "
                                @match &s.answer {
                                    Ok(m) => { "names " span.mono { (m) } }
                                    Err(e) => { span.bad { "not answering" } " " span.muted { (e) } }
                                }
                                br;
                            }
                        }
                    }
                }
            }
        }

        h2 { "Nodes" }
        @if st.nodes.is_empty() {
            p.muted { "No node or indexer has registered." }
        } @else {
            table {
                tr { th { "Node" } th { "Kind" } th { "IP" } th { "State" } th { "Disk used" } th.n { "Active / workers" } th.n { "Heartbeat" } th { "Version" } }
                @for n in &st.nodes {
                    tr {
                        td.nowrap { a href={"/control#" (node_anchor(&n.id))} { (n.id) } }
                        td { (if n.kind.is_empty() { "?" } else { &n.kind }) }
                        td.mono { (n.ip) }
                        td { (node_state(n)) }
                        td.nowrap {
                            @if n.is_indexer() { span.muted { "-" } }
                            @else {
                                (disk_bar(n.disk_used_pct, t.disk_low_pct, t.disk_critical_pct))
                                @if let (Some(tot), Some(free)) = (n.disk_total, n.disk_free) {
                                    " " span.muted { (bytes(free as i64)) " free of " (bytes(tot as i64)) }
                                }
                            }
                        }
                        td.n {
                            (n.active.map(|a| a.to_string()).unwrap_or_else(|| "-".into()))
                            " / "
                            (n.workers.map(|a| a.to_string()).unwrap_or_else(|| "-".into()))
                        }
                        td.n { (n.heartbeat_age_ms.map(|a| format!("{} ago", duration_ms(a))).unwrap_or_else(|| "never".into())) }
                        td.muted { (n.version.as_deref().unwrap_or("")) }
                    }
                }
            }
        }

        h2 { "Queues" }
        table {
            tr { th { "List" } th { "Kind" } th.n { "Depth" } th { "Oldest / newest reason" } }
            @for l in &st.queues.lists {
                @if l.kind != QueueKind::Inflight || l.depth > 0 {
                    tr {
                        td.mono {
                            @if l.kind == QueueKind::Dead && l.depth > 0 {
                                a href={"/control#" (dead_anchor(&l.list))} { (l.list) }
                            } @else { (l.list) }
                        }
                        td {
                            (l.kind.as_str())
                            @if let Some(w) = &l.worker { " (" (w) ")" }
                        }
                        td.n class=[(l.kind == QueueKind::Dead && l.depth > 0).then_some("bad")] { (l.depth) }
                        td.muted {
                            @if l.kind == QueueKind::Dead {
                                (l.newest_reason.as_deref().unwrap_or(""))
                            } @else if let Some(a) = l.oldest_age_ms.filter(|_| l.depth > 0) {
                                "oldest " (duration_ms(a))
                            }
                        }
                    }
                }
            }
        }
        p.muted { "In-flight lists are shown when not empty: " (inflight) " message(s) in flight in all." }

        h2 { "Last 24 hours" }
        @match &st.last_24h {
            None => p.muted { "Unknown: " (st.catalog_error.as_deref().unwrap_or("no catalog")) },
            Some(d) => {
                @if d.stats.truncated {
                    div.note { "Partial: the window is too large for this store to scan completely." }
                }
                div {
                    div {
                        table {
                            tr { th { "Node" } th.n { "OK" } th.n { "Failed" } th.n { "Illegal" } th.n { "Shipped" } }
                            @for n in &d.stats.by_node {
                                tr { td { (n.node) } td.n.ok { (n.ok) } td.n class=[(n.failed > 0).then_some("bad")] { (n.failed) } td.n { (n.illegal) } td.n { (bytes(n.bytes as i64)) } }
                            }
                            tr { th { "All" } th.n { (d.stats.ok) } th.n { (d.stats.failed) } th.n { (d.stats.illegal) } th.n { (bytes(d.stats.bytes as i64)) } }
                        }
                    }
                    div {
                        h2 { "Slowest pulls, last 24 hours" }
                        table {
                            tr { th { "Instance" } th { "File" } th.n { "Size" } th.n { "Took" } th { "Node" } }
                            @for p in &d.slowest {
                                tr {
                                    td { (p.instance) }
                                    td.mono { (p.filename.as_deref().unwrap_or("-")) }
                                    td.n { (bytes(p.size)) }
                                    td.n { (duration_ms(p.duration_ms as i64)) }
                                    td { (p.node) }
                                }
                            }
                            @if d.slowest.is_empty() { tr { td colspan="5" .muted { "none with a recorded duration" } } }
                        }
                    }
                }
                p { a href="/stats" { "Statistics over 7 days →" } }
            }
        }
    }
}
