//! `/metrics`: the snapshot in Prometheus text exposition format 0.0.4.
//!
//! Everything is a gauge of the current state; the "24 h" figures are
//! gauges over a sliding window read from the catalog (the catalog, not
//! this process, is the source of truth, so there is no counter to reset).

use std::fmt::Write;

use ubackup_catalog::QueueKind;

use crate::alerts::{AlertKind, AlertReport, Severity};
use crate::snapshot::Snapshot;

struct Out {
    s: String,
}

impl Out {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.s, "# HELP {name} {help}");
        let _ = writeln!(self.s, "# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.s.push_str(name);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                let _ = write!(self.s, "{k}=\"{}\"", escape(val));
            }
            self.s.push('}');
        }
        let _ = writeln!(self.s, " {}", number(v));
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The scrape when Redis cannot be read: only the `up` gauges.
pub fn render_down() -> String {
    let mut o = Out { s: String::new() };
    o.family(
        "ubackup_redis_up",
        "1 when the reporter could read the cluster Redis.",
    );
    o.sample("ubackup_redis_up", &[], 0.0);
    o.s
}

/// The scrape: one function per section, in this order.
pub fn render(snap: &Snapshot, alerts: &AlertReport) -> String {
    let mut o = Out { s: String::new() };
    up(&mut o, snap);
    queues(&mut o, snap);
    nodes(&mut o, snap);
    window(&mut o, snap);
    instances(&mut o, snap, alerts);
    replication(&mut o, snap);
    alert_counts(&mut o, alerts);
    o.s
}

/// The last repair sweep (`copies` > 1): backups it checked, those short
/// of copies, and the repair tasks waiting. Absent without replication.
fn replication(o: &mut Out, snap: &Snapshot) {
    let Some(r) = &snap.replication else {
        return;
    };
    let gauges: [(&str, &str, f64); 4] = [
        (
            "ubackup_replication_checked_backups",
            "Stored backups that want more than one copy, at the last repair sweep.",
            r.checked as f64,
        ),
        (
            "ubackup_under_replicated_backups",
            "Backups with fewer good copies than `copies` asks for, at the last repair sweep.",
            r.under_replicated as f64,
        ),
        (
            "ubackup_repair_backlog",
            "Replication tasks waiting in the nodes' replication lists.",
            r.backlog as f64,
        ),
        (
            "ubackup_repair_sweep_age_seconds",
            "Seconds since the last repair sweep ended.",
            ((snap.now_ms - r.sweep_ms).max(0) / 1000) as f64,
        ),
    ];
    for (name, help, v) in gauges {
        o.family(name, help);
        o.sample(name, &[], v);
    }
}

/// Whether Redis (always, here) and the catalog could be read.
fn up(o: &mut Out, snap: &Snapshot) {
    o.family(
        "ubackup_redis_up",
        "1 when the reporter could read the cluster Redis.",
    );
    o.sample("ubackup_redis_up", &[], 1.0);
    o.family("ubackup_catalog_up", "1 when the catalog could be read.");
    o.sample(
        "ubackup_catalog_up",
        &[],
        if snap.catalog_error.is_none() {
            1.0
        } else {
            0.0
        },
    );
}

/// Depth and age of the priority/results lists, in-flight and dead letters.
fn queues(o: &mut Out, snap: &Snapshot) {
    o.family(
        "ubackup_queue_depth",
        "Messages in a priority list or the results list.",
    );
    for l in snap
        .queues
        .lists
        .iter()
        .filter(|l| matches!(l.kind, QueueKind::Priority | QueueKind::Results))
    {
        o.sample(
            "ubackup_queue_depth",
            &[("list", &l.list), ("kind", l.kind.as_str())],
            l.depth as f64,
        );
    }
    o.family(
        "ubackup_queue_oldest_age_seconds",
        "Age of the oldest waiting message (0 when empty).",
    );
    for l in snap
        .queues
        .lists
        .iter()
        .filter(|l| matches!(l.kind, QueueKind::Priority | QueueKind::Results))
    {
        let age = if l.depth > 0 {
            l.oldest_age_ms.unwrap_or(0) as f64 / 1000.0
        } else {
            0.0
        };
        o.sample(
            "ubackup_queue_oldest_age_seconds",
            &[("list", &l.list), ("kind", l.kind.as_str())],
            age,
        );
    }
    o.family(
        "ubackup_inflight",
        "Messages a worker has taken and not yet acknowledged.",
    );
    for l in snap.queues.of_kind(QueueKind::Inflight) {
        o.sample(
            "ubackup_inflight",
            &[
                ("worker", l.worker.as_deref().unwrap_or("")),
                ("queue", &l.queue),
            ],
            l.depth as f64,
        );
    }
    o.family("ubackup_dead_letters", "Entries in a dead-letter list.");
    for l in snap.queues.of_kind(QueueKind::Dead) {
        o.sample(
            "ubackup_dead_letters",
            &[("list", &l.list), ("queue", &l.queue)],
            l.depth as f64,
        );
    }
}

/// Per node: up, paused, heartbeat age, disk, pulls, workers.
fn nodes(o: &mut Out, snap: &Snapshot) {
    o.family(
        "ubackup_node_up",
        "1 while the worker's heartbeat key exists.",
    );
    for n in &snap.nodes {
        o.sample(
            "ubackup_node_up",
            &[("node", &n.id), ("kind", &n.kind), ("ip", &n.ip)],
            if n.up { 1.0 } else { 0.0 },
        );
    }
    o.family("ubackup_node_paused", "1 while the node takes no new work.");
    for n in &snap.nodes {
        o.sample(
            "ubackup_node_paused",
            &[("node", &n.id)],
            if n.paused { 1.0 } else { 0.0 },
        );
    }
    o.family(
        "ubackup_node_heartbeat_age_seconds",
        "Seconds since the worker's last heartbeat.",
    );
    for n in snap.nodes.iter().filter(|n| n.heartbeat_age_ms.is_some()) {
        o.sample(
            "ubackup_node_heartbeat_age_seconds",
            &[("node", &n.id)],
            n.heartbeat_age_ms.unwrap_or(0) as f64 / 1000.0,
        );
    }
    o.family(
        "ubackup_node_disk_total_bytes",
        "Size of the filesystem holding server_root_path.",
    );
    for n in snap.nodes.iter().filter(|n| n.disk_total.is_some()) {
        o.sample(
            "ubackup_node_disk_total_bytes",
            &[("node", &n.id)],
            n.disk_total.unwrap_or(0) as f64,
        );
    }
    o.family(
        "ubackup_node_disk_free_bytes",
        "Bytes still available to the node on that filesystem.",
    );
    for n in snap.nodes.iter().filter(|n| n.disk_free.is_some()) {
        o.sample(
            "ubackup_node_disk_free_bytes",
            &[("node", &n.id)],
            n.disk_free.unwrap_or(0) as f64,
        );
    }
    o.family("ubackup_node_active_pulls", "Jobs in progress on the node.");
    for n in snap.nodes.iter().filter(|n| n.active.is_some()) {
        o.sample(
            "ubackup_node_active_pulls",
            &[("node", &n.id)],
            n.active.unwrap_or(0) as f64,
        );
    }
    o.family("ubackup_node_workers", "Pull workers in force on the node.");
    for n in snap.nodes.iter().filter(|n| n.workers.is_some()) {
        o.sample(
            "ubackup_node_workers",
            &[("node", &n.id)],
            n.workers.unwrap_or(0) as f64,
        );
    }
}

/// The last 24 h from the catalog, when it could be read.
fn window(o: &mut Out, snap: &Snapshot) {
    if let Some(w) = &snap.window {
        o.family("ubackup_backups_24h", "Backups created in the last 24 h, by node and result (ok / failed / illegal; illegal is part of failed).");
        for n in &w.by_node {
            o.sample(
                "ubackup_backups_24h",
                &[("node", &n.node), ("result", "ok")],
                n.ok as f64,
            );
            o.sample(
                "ubackup_backups_24h",
                &[("node", &n.node), ("result", "failed")],
                n.failed as f64,
            );
            o.sample(
                "ubackup_backups_24h",
                &[("node", &n.node), ("result", "illegal")],
                n.illegal as f64,
            );
        }
        o.family(
            "ubackup_bytes_24h",
            "Bytes of the successful backups of the last 24 h, by node.",
        );
        for n in &w.by_node {
            o.sample("ubackup_bytes_24h", &[("node", &n.node)], n.bytes as f64);
        }
        o.family(
            "ubackup_slowest_pull_seconds",
            "The longest successful pull of the last 24 h.",
        );
        let slowest = snap
            .slowest
            .first()
            .and_then(|r| r.result.duration_ms)
            .unwrap_or(0);
        o.sample("ubackup_slowest_pull_seconds", &[], slowest as f64 / 1000.0);
    }
}

/// The registry size and the overdue instances, when the catalog could be read.
fn instances(o: &mut Out, snap: &Snapshot, alerts: &AlertReport) {
    if snap.catalog_error.is_none() {
        o.family("ubackup_instances", "Instances in the registry.");
        o.sample("ubackup_instances", &[], snap.instances.len() as f64);
        o.family(
            "ubackup_instances_overdue",
            "Instances with an overdue alert.",
        );
        o.sample(
            "ubackup_instances_overdue",
            &[],
            alerts
                .alerts
                .iter()
                .filter(|a| a.kind == AlertKind::Overdue)
                .count() as f64,
        );
    }
}

/// Alerts by kind and severity, and the worst state.
fn alert_counts(o: &mut Out, alerts: &AlertReport) {
    o.family("ubackup_alerts", "Current alerts by kind and severity.");
    for k in AlertKind::ALL {
        for sev in [Severity::Warning, Severity::Critical] {
            let n = alerts
                .alerts
                .iter()
                .filter(|a| a.kind == k && a.severity == sev)
                .count();
            o.sample(
                "ubackup_alerts",
                &[("kind", k.as_str()), ("severity", sev.label())],
                n as f64,
            );
        }
    }
    o.family(
        "ubackup_health",
        "Worst alert state: 0 OK, 1 warning, 2 critical, 3 unknown (the alerts exit code).",
    );
    o.sample("ubackup_health", &[], alerts.status.exit_code() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }
}
