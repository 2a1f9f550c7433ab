//! `ubackup-client list`: the backups of this host (or `--server-id`),
//! newest first, from the catalog.

use ubackup_catalog::api::{path, rows_text, status};
use ubackup_catalog::chain::is_full;
use ubackup_catalog::{BackupQuery, CatalogRecord, Retention};

use crate::at::{bytes, show};
use crate::cli::ListArgs;
use crate::config::ClientConfig;
use crate::lookup::open_catalog;
use crate::tool::ToolError;

/// `full`, or `incr of <full>`.
fn kind(r: &CatalogRecord) -> String {
    if is_full(r) {
        "full".into()
    } else {
        format!("incr of {}", r.result.last_all_filename)
    }
}

/// `ok 2026-…` after a verify run, else what the node checked at pull time.
/// ` + copies: n2 ok, n3 corrupt` for the copies beyond the first
/// (`copies` > 1); empty without any.
fn other_copies(r: &CatalogRecord) -> String {
    let all = r.copies();
    let first = all.first().map(|c| c.node.clone());
    let others: Vec<String> = all
        .iter()
        .filter(|c| Some(&c.node) != first.as_ref())
        .map(|c| format!("{} {}", c.node, c.state))
        .collect();
    match (first.as_deref(), others.is_empty()) {
        (_, true) => String::new(),
        (Some(f), false) if all[0].state != ubackup_catalog::copies::state::OK => {
            format!(" [{f} {}] + copies: {}", all[0].state, others.join(", "))
        }
        _ => format!(" + copies: {}", others.join(", ")),
    }
}

fn verified(r: &CatalogRecord) -> String {
    match (&r.meta.verify_state, r.meta.verified_at) {
        (Some(s), Some(at)) => format!("{s} {}", show(at)),
        _ => r
            .result
            .verify
            .clone()
            .map(|v| format!("at pull: {v}"))
            .unwrap_or_else(|| "-".into()),
    }
}

/// `ubackup-client list`: the listing on stdout.
pub async fn command(cfg: &ClientConfig, args: &ListArgs) -> Result<u8, ToolError> {
    let cat = open_catalog(cfg, "list").await?;
    print!("{}", list(cfg, args, cat.as_ref()).await?);
    Ok(0)
}

/// The listing of the backups `args` select, as text or JSON.
pub async fn list(
    cfg: &ClientConfig,
    args: &ListArgs,
    cat: &dyn Retention,
) -> Result<String, ToolError> {
    let q = BackupQuery {
        server_id: Some(args.server_id.unwrap_or(cfg.global.server_id)),
        back_type: args.back_type.clone(),
        instance: args.instance,
        succeeded: if args.all { None } else { Some(true) },
        limit: args.limit.max(1),
        ..Default::default()
    };
    let recs = cat.list_backups(&q).await?;
    if args.json {
        return Ok(rows_text(&recs));
    }
    if recs.is_empty() {
        return Ok(format!(
            "no {}backups of server {}{} in the catalog ({})\n",
            if args.all { "" } else { "successful " },
            q.server_id.unwrap_or_default(),
            match (&q.back_type, q.instance) {
                (Some(t), Some(i)) => format!(" {t}/{i}"),
                (Some(t), None) => format!(" of type {t}"),
                (None, Some(i)) => format!(" instance {i}"),
                (None, None) => String::new(),
            },
            cat.describe()
        ));
    }
    let header = [
        "ID", "TIME", "INSTANCE", "KIND", "SIZE", "NODE", "PATH", "VERIFIED", "STATUS",
    ];
    let rows: Vec<[String; 9]> = recs
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                show(r.result.create_time),
                format!("{}/{}", r.result.back_type, r.result.instance),
                kind(r),
                bytes(r.result.size),
                format!(
                    "{} ({}){}",
                    r.node(),
                    r.result.back_server_ip,
                    other_copies(r)
                ),
                path(r),
                verified(r),
                format!(
                    "{}{}",
                    status(r),
                    if r.meta.pinned { ", pinned" } else { "" }
                ),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    Ok(out)
}
