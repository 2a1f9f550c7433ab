//! `status`: one screen of the cluster, as a struct (for `--json`, the HTTP
//! API and later HTML pages) and as text.

use serde::{Deserialize, Serialize};
use ubackup_catalog::{QueueKind, WindowStats};

use crate::alerts::{instance_subject, AlertKind, AlertReport};
use crate::cluster::{NodeView, QueueView};
use crate::format::{bytes, duration_ms, utc};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowPull {
    /// `server_id/type/instance/game_name`.
    pub instance: String,
    pub filename: Option<String>,
    pub node: String,
    pub size: i64,
    pub duration_ms: u64,
    pub bytes_per_sec: Option<u64>,
    pub create_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDay {
    pub stats: WindowStats,
    pub slowest: Vec<SlowPull>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCounts {
    pub total: u64,
    pub overdue: u64,
    /// Instances whose newest result failed or is illegal.
    pub failing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub generated_ms: i64,
    pub redis: String,
    pub catalog: Option<String>,
    pub catalog_error: Option<String>,
    pub nodes: Vec<NodeView>,
    pub queues: QueueView,
    /// None when the catalog could not be read.
    pub last_24h: Option<LastDay>,
    pub instances: Option<InstanceCounts>,
    /// The worst alert severity (as `alerts` would exit).
    pub health: crate::alerts::Severity,
    pub alert_count: usize,
    /// The nodes' last repair sweep (`copies` > 1), when there is one.
    #[serde(default)]
    pub replication: Option<crate::cluster::ReplicationView>,
    /// The Redis master, its replicas and, with Sentinel, the sentinels.
    #[serde(default)]
    pub redis_view: Option<crate::redis_view::RedisView>,
}

impl ClusterStatus {
    pub fn build(snap: &Snapshot, alerts: &AlertReport) -> Self {
        let catalog_ok = snap.catalog_error.is_none();
        let count = |k: &[AlertKind]| {
            let mut subjects: Vec<&str> = alerts
                .alerts
                .iter()
                .filter(|a| k.contains(&a.kind))
                .map(|a| a.subject.as_str())
                .collect();
            subjects.sort();
            subjects.dedup();
            subjects.len() as u64
        };
        let last_24h = snap
            .window
            .clone()
            .filter(|_| catalog_ok)
            .map(|stats| LastDay {
                stats,
                slowest: snap
                    .slowest
                    .iter()
                    .map(|r| SlowPull {
                        instance: instance_subject(
                            r.result.server_id,
                            &r.result.back_type,
                            r.result.instance,
                            &r.game_name,
                        ),
                        filename: r.result.filename.clone(),
                        node: r.node().to_string(),
                        size: r.result.size,
                        duration_ms: r.result.duration_ms.unwrap_or(0),
                        bytes_per_sec: r.result.bytes_per_sec,
                        create_time: r.result.create_time,
                    })
                    .collect(),
            });
        ClusterStatus {
            generated_ms: snap.now_ms,
            redis: snap.redis.clone(),
            redis_view: snap.redis_view.clone(),
            catalog: snap.catalog.clone(),
            catalog_error: snap.catalog_error.clone(),
            nodes: snap.nodes.clone(),
            queues: snap.queues.clone(),
            last_24h,
            instances: catalog_ok.then(|| InstanceCounts {
                total: snap.instances.len() as u64,
                overdue: count(&[AlertKind::Overdue]),
                failing: count(&[
                    AlertKind::ScriptError,
                    AlertKind::PullFailed,
                    AlertKind::Illegal,
                ]),
            }),
            health: alerts.status,
            alert_count: alerts.alerts.len(),
            replication: snap.replication.clone(),
        }
    }

    /// Exit code of `status`: 0, or 3 when the catalog could not be read.
    pub fn exit_code(&self) -> i32 {
        if self.catalog_error.is_some() {
            3
        } else {
            0
        }
    }

    /// The one screen: header, nodes, queues, the last 24 h, instances.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.header_text(&mut s);
        self.nodes_text(&mut s);
        self.queues_text(&mut s);
        self.last_24h_text(&mut s);
        self.instances_text(&mut s);
        self.replication_text(&mut s);
        s
    }

    /// COPIES: what the last repair sweep found, with `copies` > 1.
    fn replication_text(&self, s: &mut String) {
        let Some(r) = &self.replication else {
            return;
        };
        s.push_str(&format!(
            "\nCOPIES\n  {} backup(s) want more than one copy; {} under-replicated; {} repair task(s) queued; last sweep by {} {} ago\n",
            r.checked,
            r.under_replicated,
            r.backlog,
            r.sweep_node,
            crate::format::duration_ms(self.generated_ms - r.sweep_ms)
        ));
    }

    /// When, where, and the alert summary.
    fn header_text(&self, s: &mut String) {
        let now = self.generated_ms;
        s.push_str(&format!("ubackup status at {}\n", utc(now)));
        s.push_str(&format!(
            "redis {}, catalog {}; health {} ({} alert(s): ubackup-reporter alerts)\n",
            self.redis,
            self.catalog.as_deref().unwrap_or("-"),
            self.health.label(),
            self.alert_count
        ));
        if let Some(v) = &self.redis_view {
            s.push_str(&v.text());
        }
        s.push('\n');
    }

    /// NODES: one row per node or indexer.
    fn nodes_text(&self, s: &mut String) {
        s.push_str("NODES\n");
        if self.nodes.is_empty() {
            s.push_str("  (no node or indexer has registered)\n");
        } else {
            let rows: Vec<[String; 7]> = self
                .nodes
                .iter()
                .map(|n| {
                    let state = if !n.up {
                        "DOWN".to_string()
                    } else if n.paused {
                        format!(
                            "PAUSED ({})",
                            n.pause_reason.as_deref().unwrap_or(if n.control_paused {
                                "operator"
                            } else {
                                "?"
                            })
                        )
                    } else {
                        "up".to_string()
                    };
                    let disk = match (n.disk_used_pct, n.disk_total) {
                        (Some(p), Some(t)) => format!("{p:.1}% of {}", bytes(t)),
                        _ => "-".into(),
                    };
                    let pulls = match (n.active, n.workers) {
                        (Some(a), Some(w)) => format!("{a}/{w}"),
                        (Some(a), None) => a.to_string(),
                        _ => "-".into(),
                    };
                    let hb = n
                        .heartbeat_age_ms
                        .map(|a| format!("{} ago", duration_ms(a)))
                        .unwrap_or_else(|| "never".into());
                    [
                        n.id.clone(),
                        if n.kind.is_empty() {
                            "?".into()
                        } else {
                            n.kind.clone()
                        },
                        if n.ip.is_empty() {
                            "-".into()
                        } else {
                            n.ip.clone()
                        },
                        state,
                        disk,
                        pulls,
                        hb,
                    ]
                })
                .collect();
            table(
                s,
                &[
                    "ID",
                    "KIND",
                    "IP",
                    "STATE",
                    "DISK USED",
                    "ACTIVE/WORKERS",
                    "HEARTBEAT",
                ],
                &rows,
            );
        }
    }

    /// QUEUES: the priority/results lists, in flight, dead letters.
    fn queues_text(&self, s: &mut String) {
        s.push_str("\nQUEUES\n");
        let mut rows = Vec::new();
        for l in self
            .queues
            .lists
            .iter()
            .filter(|l| matches!(l.kind, QueueKind::Priority | QueueKind::Results))
        {
            let age = l
                .oldest_age_ms
                .filter(|_| l.depth > 0)
                .map(|a| format!("oldest {}", duration_ms(a)))
                .unwrap_or_default();
            rows.push([
                l.list.clone(),
                l.kind.as_str().to_string(),
                l.depth.to_string(),
                age,
            ]);
        }
        if rows.is_empty() {
            s.push_str("  (no list known: set redis_queue, or start a node)\n");
        } else {
            table(s, &["LIST", "KIND", "DEPTH", ""], &rows);
        }
        let inflight: Vec<String> = self
            .queues
            .of_kind(QueueKind::Inflight)
            .filter(|l| l.depth > 0)
            .map(|l| {
                format!(
                    "{}/{} {}",
                    l.worker.as_deref().unwrap_or("?"),
                    l.queue,
                    l.depth
                )
            })
            .collect();
        let total_inflight: u64 = self
            .queues
            .of_kind(QueueKind::Inflight)
            .map(|l| l.depth)
            .sum();
        s.push_str(&format!(
            "  in flight: {total_inflight}{}\n",
            if inflight.is_empty() {
                String::new()
            } else {
                format!(" ({})", inflight.join(", "))
            }
        ));
        let dead: Vec<String> = self
            .queues
            .of_kind(QueueKind::Dead)
            .filter(|l| l.depth > 0)
            .map(|l| format!("{} {}", l.list, l.depth))
            .collect();
        s.push_str(&format!(
            "  dead letters: {}\n",
            if dead.is_empty() {
                "none".to_string()
            } else {
                dead.join(", ")
            }
        ));
    }

    /// LAST 24 H: backups per node and the slowest pulls.
    fn last_24h_text(&self, s: &mut String) {
        s.push_str("\nLAST 24 H\n");
        match &self.last_24h {
            None => s.push_str(&format!(
                "  unknown: {}\n",
                self.catalog_error.as_deref().unwrap_or("no catalog")
            )),
            Some(d) => {
                let w = &d.stats;
                s.push_str(&format!(
                    "  backups ok {}, failed {} (illegal {}), shipped {}{}\n",
                    w.ok,
                    w.failed,
                    w.illegal,
                    bytes(w.bytes),
                    if w.truncated {
                        " (partial: window too large for this store)"
                    } else {
                        ""
                    }
                ));
                for n in &w.by_node {
                    s.push_str(&format!(
                        "    node {}: ok {}, failed {}, {}\n",
                        n.node,
                        n.ok,
                        n.failed,
                        bytes(n.bytes)
                    ));
                }
                if !d.slowest.is_empty() {
                    s.push_str("  slowest pulls:\n");
                    for p in &d.slowest {
                        let rate = p
                            .bytes_per_sec
                            .map(|b| format!(", {}/s", bytes(b)))
                            .unwrap_or_default();
                        s.push_str(&format!(
                            "    {:>8}  {}  {}  {} on node {}{}\n",
                            duration_ms(p.duration_ms as i64),
                            p.instance,
                            p.filename.as_deref().unwrap_or("-"),
                            bytes(p.size.max(0) as u64),
                            p.node,
                            rate
                        ));
                    }
                }
            }
        }
    }

    /// INSTANCES: registered, overdue, failing.
    fn instances_text(&self, s: &mut String) {
        s.push_str("\nINSTANCES\n");
        match &self.instances {
            None => s.push_str("  unknown (catalog unreadable)\n"),
            Some(i) => s.push_str(&format!(
                "  {} registered, {} overdue, {} failing\n",
                i.total, i.overdue, i.failing
            )),
        }
    }
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(s: &mut String, head: &[&str; N], rows: &[[String; N]]) {
    let mut w = [0usize; N];
    for (i, h) in head.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < N {
                l.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    s.push_str(&line(head.to_vec()));
    for r in rows {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
}
