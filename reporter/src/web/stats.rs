//! `/stats`: backups per hour (ok and failed stacked) and bytes shipped
//! per day over the last `days` (default 7), the largest and the slowest
//! backups, for all or one business and type.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use ubackup_catalog::web_stats::{scan_activity, Activity, ActivityFilter, DAY_MS};
use ubackup_catalog::CatalogRecord;
use ubackup_common::message::now_ms;

use super::error::WebError;
use super::html::{bytes, frame, instance_href, time, Nav};
use super::query::Params;
use super::state::WebState;
use super::svg;
use crate::format::duration_ms;

const PARAMS: &[&str] = &["business", "type", "days", "top"];

pub(crate) async fn page(
    State(web): State<WebState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let p = Params::parse(q.as_deref(), PARAMS)?;
    let days: i64 = p.number("days", 1..=31)?.unwrap_or(7);
    let top: usize = p.number("top", 1..=100)?.unwrap_or(10);
    let filter = ActivityFilter {
        game_name: p.text("business").map(str::to_string),
        back_type: p.text("type").map(str::to_string),
    };
    let viewer = web.auth.viewer(&headers);
    let h = web.handles().await?;
    let store = h.store()?.clone();
    let until = now_ms() + 1;
    let since = until - days * DAY_MS;
    let registry = store.instances().await?;
    let activity = match &h.sqlite {
        // SQLite is the query store whenever it is configured
        Some(sqlite) => sqlite.activity(since, until, &filter, top).await?,
        None => scan_activity(store.as_ref(), since, until, &filter, top).await?,
    };
    let businesses: BTreeSet<&str> = registry.iter().map(|e| e.game_name.as_str()).collect();
    let types: BTreeSet<&str> = registry.iter().map(|e| e.key.back_type.as_str()).collect();
    let body = body(
        &activity,
        &filter,
        days,
        &businesses,
        &types,
        &store.describe(),
    );
    Ok(frame("Statistics", Nav::Stats, &viewer, body).into_response())
}

fn select(name: &str, label: &str, values: &BTreeSet<&str>, current: Option<&str>) -> Markup {
    html! {
        label { (label)
            select name=(name) {
                option value="" { "all" }
                @for v in values {
                    option value=(v) selected[current == Some(*v)] { (v) }
                }
                // a value typed into the URL that the registry does not know
                @if let Some(c) = current.filter(|c| !values.contains(c)) {
                    option value=(c) selected { (c) }
                }
            }
        }
    }
}

fn instance_cell(r: &CatalogRecord) -> Markup {
    html! {
        a href=(instance_href(r.result.server_id, &r.result.back_type, r.result.instance)) {
            (r.result.server_id) "/" (r.result.back_type) "/" (r.result.instance)
        }
    }
}

fn body(
    a: &Activity,
    f: &ActivityFilter,
    days: i64,
    businesses: &BTreeSet<&str>,
    types: &BTreeSet<&str>,
    store: &str,
) -> Markup {
    let ok: u64 = a.days.iter().map(|b| b.ok).sum();
    let failed: u64 = a.days.iter().map(|b| b.failed).sum();
    let shipped: u64 = a.days.iter().map(|b| b.bytes).sum();
    html! {
        h1 { "Statistics" }
        p.muted {
            "Backups created from " (time(a.since_ms)) " to " (time(a.until_ms)) " UTC"
            @if let Some(b) = &f.game_name { " · business " strong { (b) } }
            @if let Some(t) = &f.back_type { " · type " strong { (t) } }
            " · " (store)
        }
        form.filters method="get" action="/stats" {
            (select("business", "Business", businesses, f.game_name.as_deref()))
            (select("type", "Type", types, f.back_type.as_deref()))
            label { "Days" input type="number" name="days" min="1" max="31" value=(days) style="width:5em"; }
            button.act type="submit" { "Show" }
            @if f.game_name.is_some() || f.back_type.is_some() || days != 7 {
                a href="/stats" { "reset" }
            }
        }
        @if a.truncated {
            div.note { "Partial: this store could only scan part of the window (at most 10 000 backups)." }
        }
        div.kpis {
            div.kpi { div.l { "OK" } div.v.ok { (ok) } }
            div.kpi { div.l { "Failed" } div.v class=[(failed > 0).then_some("bad")] { (failed) } }
            div.kpi { div.l { "Shipped" } div.v { (bytes(shipped as i64)) } }
        }
        h2 { "Backups per hour" }
        div.card { (svg::hourly(&a.hours, a.since_ms, a.until_ms)) }
        h2 { "Bytes shipped per day" }
        div.card { (svg::daily_bytes(&a.days, a.since_ms, a.until_ms)) }
        div {
            div {
                h2 { "Largest backups" }
                table {
                    tr { th { "Instance" } th { "Business" } th { "File" } th.n { "Size" } th { "Created (UTC)" } }
                    @for r in &a.largest {
                        tr {
                            td { (instance_cell(r)) }
                            td { (r.game_name) }
                            td.mono { (r.result.filename.as_deref().unwrap_or("-")) }
                            td.n { (bytes(r.result.size)) }
                            td.muted.nowrap { (time(r.result.create_time)) }
                        }
                    }
                    @if a.largest.is_empty() { tr { td colspan="5" .muted { "no successful backup in this window" } } }
                }
            }
            div {
                h2 { "Slowest pulls" }
                table {
                    tr { th { "Instance" } th { "Business" } th { "File" } th.n { "Took" } th.n { "Rate" } th { "Node" } }
                    @for r in &a.slowest {
                        tr {
                            td { (instance_cell(r)) }
                            td { (r.game_name) }
                            td.mono { (r.result.filename.as_deref().unwrap_or("-")) }
                            td.n { (duration_ms(r.result.duration_ms.unwrap_or(0) as i64)) }
                            td.n { (r.result.bytes_per_sec.map(|b| format!("{}/s", bytes(b as i64))).unwrap_or_default()) }
                            td { (r.node()) }
                        }
                    }
                    @if a.slowest.is_empty() { tr { td colspan="6" .muted { "no pull with a recorded duration in this window" } } }
                }
            }
        }
    }
}
