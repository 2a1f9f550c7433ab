//! `/alerts`: the current [`AlertReport`] (as `/api/alerts` serves it),
//! grouped by kind, filterable by business, kind and severity. Each alert
//! links to what it is about: its instance's history, its node, or its
//! dead-letter list.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::error::WebError;
use super::html::{frame, instance_href, time, Nav};
use super::overview::{dead_anchor, node_anchor, severity_badge};
use super::query::{to_query, Params};
use super::state::WebState;
use crate::alerts::{Alert, AlertKind, AlertReport, Severity};

const PARAMS: &[&str] = &["business", "kind", "severity"];

/// The filters of the page.
struct Filter<'a> {
    business: Option<&'a str>,
    kind: Option<AlertKind>,
    severity: Option<Severity>,
}

impl Filter<'_> {
    fn keeps(&self, a: &Alert) -> bool {
        self.kind.is_none_or(|k| a.kind == k)
            && self.severity.is_none_or(|s| a.severity == s)
            && self
                .business
                .is_none_or(|b| a.instance.as_ref().is_some_and(|i| i.game_name == b))
    }
}

pub(crate) async fn page(
    State(web): State<WebState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let p = Params::parse(q.as_deref(), PARAMS)?;
    let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
    let filter = Filter {
        business: p.text("business"),
        kind: p
            .choice("kind", &kinds)?
            .and_then(|k| AlertKind::ALL.into_iter().find(|x| x.as_str() == k)),
        severity: p.choice("severity", &["warning", "critical"])?.map(|s| {
            if s == "critical" {
                Severity::Critical
            } else {
                Severity::Warning
            }
        }),
    };
    let viewer = web.auth.viewer(&headers);
    let (snap, report) = web.app.read().await?;
    let mut businesses: BTreeSet<&str> = snap
        .instances
        .iter()
        .map(|e| e.game_name.as_str())
        .collect();
    for a in &report.alerts {
        if let Some(i) = &a.instance {
            businesses.insert(&i.game_name);
        }
    }
    Ok(frame(
        "Alerts",
        Nav::Alerts,
        &viewer,
        body(&report, &filter, &businesses),
    )
    .into_response())
}

fn subject(a: &Alert) -> Markup {
    html! {
        @if let Some(i) = &a.instance {
            a href=(instance_href(i.server_id, &i.back_type, i.instance)) { (a.subject) }
        } @else if let Some(n) = &a.node {
            a href={"/control#" (node_anchor(n))} { (a.subject) }
        } @else if let Some(l) = &a.list {
            @if a.kind == AlertKind::DeadLetters {
                a href={"/control#" (dead_anchor(l))} { (a.subject) }
            } @else {
                a href="/" { (a.subject) }
            }
        } @else {
            (a.subject)
        }
    }
}

fn body(report: &AlertReport, f: &Filter, businesses: &BTreeSet<&str>) -> Markup {
    let shown: Vec<&Alert> = report.alerts.iter().filter(|a| f.keeps(a)).collect();
    let hidden_untied = if f.business.is_some() {
        report
            .alerts
            .iter()
            .filter(|a| a.instance.is_none())
            .count()
    } else {
        0
    };
    html! {
        h1 { "Alerts " (severity_badge(report.status)) }
        p.muted { (report.summary) " · at " (time(report.generated_ms)) " UTC · also as JSON at " a href="/api/alerts" { "/api/alerts" } }
        @for e in &report.errors {
            div.err { "Could not evaluate: " (e) }
        }
        form.filters method="get" action="/alerts" {
            label { "Business"
                select name="business" {
                    option value="" { "all" }
                    @for b in businesses {
                        option value=(b) selected[f.business == Some(*b)] { (b) }
                    }
                }
            }
            label { "Kind"
                select name="kind" {
                    option value="" { "all" }
                    @for k in AlertKind::ALL {
                        option value=(k.as_str()) selected[f.kind == Some(k)] { (k.as_str()) }
                    }
                }
            }
            label { "Severity"
                select name="severity" {
                    option value="" { "all" }
                    option value="critical" selected[f.severity == Some(Severity::Critical)] { "critical" }
                    option value="warning" selected[f.severity == Some(Severity::Warning)] { "warning" }
                }
            }
            button.act type="submit" { "Filter" }
            @if f.business.is_some() || f.kind.is_some() || f.severity.is_some() {
                a href="/alerts" { "clear" }
            }
        }
        @if hidden_untied > 0 {
            p.muted { (hidden_untied) " node or queue alert(s) belong to no business and are hidden by the business filter." }
        }
        @if shown.is_empty() {
            div.card { span.ok { "No alerts" } @if shown.len() != report.alerts.len() { " match these filters (" (report.alerts.len()) " in all)" } "." }
        }
        @for kind in AlertKind::ALL {
            @let group: Vec<&&Alert> = shown.iter().filter(|a| a.kind == kind).collect();
            @if !group.is_empty() {
                h2 id={"kind-" (kind.as_str())} { (kind.as_str()) " (" (group.len()) ")" }
                table {
                    tr { th { "Severity" } th { "Subject" } th { "Business" } th { "Reason" } th { "Since" } }
                    @for a in group {
                        tr {
                            td { (severity_badge(a.severity)) }
                            td { (subject(a)) }
                            td {
                                @if let Some(i) = &a.instance {
                                    a href={"/alerts" (to_query(&[("business", Some(&i.game_name))]))} { (i.game_name) }
                                }
                            }
                            td { (a.reason) }
                            td.muted { (a.since_ms.map(|s| format!("{} UTC", time(s))).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}
