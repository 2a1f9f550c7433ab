//! `/instance/SERVER_ID/TYPE/INSTANCE`: the backup history of one
//! instance, newest first, with for each usable backup the exact
//! `ubackup-client restore` command that restores it.
//!
//! The command names the backup by its instance and its `create_time` to
//! the millisecond (`--at 2026-11-21T10:00:00.123Z`): restore picks the
//! newest usable backup at or before that instant, which is this one. It
//! runs on any host with the catalog configured (`--server-id` selects the
//! instance's host, as for a migration).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use ubackup_catalog::chain::{self, is_full};
use ubackup_catalog::web_stats::DAY_MS;
use ubackup_catalog::{BackupQuery, CatalogRecord, InstanceEntry, InstanceKey};

use super::error::WebError;
use super::html::{bytes, frame, instance_href, rfc3339_ms, shell_word, time, Nav};
use super::overview::severity_badge;
use super::query::{to_query, Params};
use super::state::WebState;
use crate::alerts::Alert;
use crate::format::duration_ms;

const PARAMS: &[&str] = &["limit", "offset"];

/// The restore command line for `r` (a usable, undeleted backup).
pub fn restore_command(r: &CatalogRecord) -> String {
    format!(
        "ubackup-client restore --type {} --instance {} --server-id {} --at {}",
        shell_word(&r.result.back_type),
        r.result.instance,
        r.result.server_id,
        rfc3339_ms(r.result.create_time)
    )
}

/// Why `r` cannot be restored, if it cannot.
fn not_restorable(r: &CatalogRecord) -> Option<String> {
    if let Some(d) = r.meta.deleted_at {
        return Some(format!("pruned at {} UTC", time(d)));
    }
    if let Some(i) = &r.result.illegal {
        return Some(format!("illegal: {i}"));
    }
    if r.result.succeed != 1 {
        return Some("failed".into());
    }
    None
}

fn parse_id(what: &str, v: &str) -> Result<i64, WebError> {
    v.parse().map_err(|_| {
        WebError::bad_request(format!(
            "{what} `{v}` is not a number; the address is /instance/SERVER_ID/TYPE/INSTANCE"
        ))
    })
}

pub(crate) async fn page(
    State(web): State<WebState>,
    headers: HeaderMap,
    Path((server_id, back_type, instance)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let p = Params::parse(q.as_deref(), PARAMS)?;
    let limit: usize = p.number("limit", 1..=1000)?.unwrap_or(100);
    let offset: usize = p.number("offset", 0..=10_000_000)?.unwrap_or(0);
    let key = InstanceKey {
        server_id: parse_id("server_id", &server_id)?,
        back_type,
        instance: parse_id("instance", &instance)?,
    };
    let viewer = web.auth.viewer(&headers);
    let h = web.handles().await?;
    let store = h.store()?.clone();
    let Some(entry) = store.instance(&key).await? else {
        return Err(WebError::not_found(format!(
            "no instance {key} (server_id:type:instance) in {}",
            store.describe()
        )));
    };
    let mut q = BackupQuery::for_instance(&key);
    q.include_deleted = true;
    q.limit = limit;
    q.offset = offset;
    let records = store.list_backups(&q).await?;

    // Candidates to resolve the chains of the incrementals shown: usable,
    // undeleted backups from a day before the oldest full they name.
    let chains = match records
        .iter()
        .filter(|r| !is_full(r))
        .map(|r| r.result.last_all_time)
        .min()
    {
        None => Vec::new(),
        Some(oldest) => {
            let mut cq = BackupQuery::for_instance(&key);
            cq.succeeded = Some(true);
            cq.since_ms = Some(oldest - DAY_MS);
            cq.until_ms = records.first().map(|r| r.result.create_time);
            cq.limit = 5000;
            let mut c = store.list_backups(&cq).await?;
            c.retain(|r| r.is_success() && r.meta.deleted_at.is_none());
            c
        }
    };
    // The alerts about this instance, from the same evaluation as /alerts.
    let alerts: Result<Vec<Alert>, String> = match web.app.read().await {
        Ok((_, report)) => Ok(report
            .alerts
            .into_iter()
            .filter(|a| {
                a.instance.as_ref().is_some_and(|i| {
                    i.server_id == key.server_id
                        && i.back_type == key.back_type
                        && i.instance == key.instance
                })
            })
            .collect()),
        Err(e) => Err(e.to_string()),
    };
    let more = records.len() == limit;
    let body = body(&entry, &records, &chains, &alerts, limit, offset, more);
    Ok(frame(&format!("Instance {key}"), Nav::None, &viewer, body).into_response())
}

fn chain_cell(r: &CatalogRecord, candidates: &[CatalogRecord]) -> Markup {
    if is_full(r) {
        return html! { "full" };
    }
    let needs = if r.is_success() && r.meta.deleted_at.is_none() {
        Some(chain::resolve(r, candidates))
    } else {
        None
    };
    html! {
        "incremental of " span.mono { (r.result.last_all_filename) }
        @if r.result.last_all_time > 0 { " (" (time(r.result.last_all_time)) ")" }
        @match needs {
            Some(Ok(c)) => { br; span.muted { "restore pulls " (c.len()) " file(s): full + " (c.len() - 1) " incremental(s)" } },
            Some(Err(e)) => { br; span.bad { (e) } },
            None => {},
        }
    }
}

fn status_cell(r: &CatalogRecord) -> Markup {
    html! {
        @if r.is_success() {
            span.ok { "ok" }
        } @else if let Some(i) = &r.result.illegal {
            span.bad { "illegal" } br; span.muted { (i) }
        } @else {
            span.bad { "failed" } br; span.muted { (r.result.log) }
        }
        @if let Some(d) = r.meta.deleted_at {
            br; span.muted { "pruned " (time(d)) }
        }
        @if r.meta.pinned { br; span.badge { "pinned" } }
    }
}

fn verify_cell(r: &CatalogRecord) -> Markup {
    html! {
        @if let Some(v) = &r.result.verify { (v) }
        @if let Some(s) = &r.meta.verify_state {
            br;
            span class=(if s == "ok" { "ok" } else { "bad" }) { "re-verified " (s) }
            @if let Some(t) = r.meta.verified_at { span.muted { " " (time(t)) } }
        }
    }
}

fn body(
    e: &InstanceEntry,
    records: &[CatalogRecord],
    chains: &[CatalogRecord],
    alerts: &Result<Vec<Alert>, String>,
    limit: usize,
    offset: usize,
    more: bool,
) -> Markup {
    let k = &e.key;
    let href = instance_href(k.server_id, &k.back_type, k.instance);
    let newest = format!(
        "ubackup-client restore --type {} --instance {} --server-id {}",
        shell_word(&k.back_type),
        k.instance,
        k.server_id
    );
    html! {
        h1 { "Instance " span.mono { (k.server_id) ":" (k.back_type) ":" (k.instance) } }
        table style="width:auto" {
            tr { th { "Business" } td { (e.game_name) " (game_id " (e.game_id) ")" } }
            tr { th { "Interval" } td { (duration_ms(e.interval * 1000)) } }
            tr { th { "Last success" } td { (e.last_success_ms.map(|t| format!("{} UTC", time(t))).unwrap_or_else(|| "never".into())) } }
            tr { th { "Last attempt" } td { (time(e.last_attempt_ms)) " UTC on node " (e.last_node) } }
            @if let (Some(err), Some(t)) = (&e.last_error, e.last_error_ms) {
                tr { th { "Last error" } td { span.bad { (err) } span.muted { " " (time(t)) " UTC" } } }
            }
            tr { th { "First seen" } td { (time(e.first_seen_ms)) " UTC" } }
            tr { th { "Restore the newest" } td { pre.cmd { (newest) } } }
        }
        @match alerts {
            Ok(list) if !list.is_empty() => {
                h2 { "Alerts" }
                table {
                    @for a in list {
                        tr { td { (severity_badge(a.severity)) } td { (a.kind.as_str()) } td { (a.reason) } }
                    }
                }
            },
            Ok(_) => p.ok { "No alert for this instance." },
            Err(err) => div.note { "Alerts unavailable: " (err) },
        }
        h2 { "Backups, newest first" @if offset > 0 { " (from #" (offset + 1) ")" } }
        @if records.is_empty() {
            p.muted { "No backup in this range." }
        } @else {
            table {
                tr {
                    th { "Created (UTC)" } th { "Status" } th { "Kind / chain" } th.n { "Size" }
                    th { "Node" } th { "Path" } th { "Verify" } th.n { "Took" }
                }
                @for r in records {
                    @let why = not_restorable(r);
                    tr.hasrow[why.is_none()] {
                        td.mono.nowrap { (time(r.result.create_time)) }
                        td { (status_cell(r)) }
                        td { (chain_cell(r, chains)) }
                        td.n { (bytes(r.result.size)) }
                        td.nowrap { (r.node()) }
                        td.mono {
                            (r.result.file_path.as_deref().unwrap_or("-"))
                            @if let Some(f) = &r.result.filename { br; (f) }
                        }
                        td { (verify_cell(r)) }
                        td.n { (r.result.duration_ms.map(|d| duration_ms(d as i64)).unwrap_or_default()) }
                    }
                    @if why.is_none() {
                        tr.cmdrow {
                            td colspan="8" { span.muted { "restore: " } pre.cmd { (restore_command(r)) } }
                        }
                    }
                }
            }
        }
        p {
            @if offset > 0 {
                a href={(href) (to_query(&[("limit", Some(&limit.to_string())), ("offset", Some(&offset.saturating_sub(limit).to_string()))]))} { "← newer" }
                " "
            }
            @if more {
                a href={(href) (to_query(&[("limit", Some(&limit.to_string())), ("offset", Some(&(offset + limit).to_string()))]))} { "older →" }
            }
        }
        p.muted { "Restore commands run on a host whose client config has the catalog (" code { "catalog" } " or " code { "es_urls" } "); add " code { "--dest DIR" } ", " code { "--dry-run" } " or " code { "--run-hook" } " as needed (docs/restore.md)." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_names_the_backup_to_the_millisecond() {
        let r = ubackup_common::ResultRecord {
            interval: 3600,
            server_id: 111111,
            game_id: 31,
            op_id: 1,
            game_server_ip: "10.0.0.5".into(),
            instance: 3306,
            back_server_ip: "10.0.9.1".into(),
            file_path: None,
            filename: Some("f".into()),
            create_time: 1_763_800_000_123,
            rsync_time: 0,
            size: 1,
            last_all_filename: "None".into(),
            last_all_time: 0,
            succeed: 1,
            log: "ok".into(),
            back_type: "my sql".into(),
            node_id: None,
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            verify: None,
            checksum: None,
            illegal: None,
            run_id: None,
            encryption: None,
        };
        let r = CatalogRecord::new(r, "g");
        assert_eq!(
            restore_command(&r),
            "ubackup-client restore --type 'my sql' --instance 3306 --server-id 111111 --at 2025-11-22T08:26:40.123Z"
        );
        assert_eq!(not_restorable(&r), None);
    }
}
