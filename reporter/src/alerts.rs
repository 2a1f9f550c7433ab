//! The health rules: from a [`Snapshot`] to the list of current alerts.
//!
//! Instance alerts look at each instance's newest result (a newer good
//! result resolves them) and at its own `interval`; node and queue alerts
//! look at Redis. Every alert has a stable `id` (`kind:subject`), which is
//! what the webhook's state tracks between runs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use ubackup_catalog::{CatalogRecord, InstanceEntry, InstanceKey, QueueKind};

use crate::cluster::{ListDepth, NodeView};
use crate::config::Thresholds;
use crate::format::{bytes, duration_ms};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The client reported a failure (script error, bad log, …).
    ScriptError,
    /// The node could not pull the file.
    PullFailed,
    /// Dead-lettered, size/checksum mismatch, not a regular file, or
    /// smaller than `min_size.<type>`.
    Illegal,
    /// No success within `interval × overdue_factor + overdue_grace_secs`.
    Overdue,
    NodeDiskLow,
    /// The heartbeat key expired (or the worker stopped).
    NodeDown,
    QueueBacklog,
    DeadLetters,
    /// Backups with fewer good copies than `copies` asks for (the nodes'
    /// repair sweep counts them).
    UnderReplicated,
    /// The Redis master has fewer online replicas than `redis_min_replicas`
    /// (every push and ack waits), or a configured sentinel does not
    /// answer or names another master.
    RedisDegraded,
}

impl AlertKind {
    pub const ALL: [AlertKind; 10] = [
        AlertKind::ScriptError,
        AlertKind::PullFailed,
        AlertKind::Illegal,
        AlertKind::Overdue,
        AlertKind::NodeDiskLow,
        AlertKind::NodeDown,
        AlertKind::QueueBacklog,
        AlertKind::DeadLetters,
        AlertKind::UnderReplicated,
        AlertKind::RedisDegraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ScriptError => "script_error",
            AlertKind::PullFailed => "pull_failed",
            AlertKind::Illegal => "illegal",
            AlertKind::Overdue => "overdue",
            AlertKind::NodeDiskLow => "node_disk_low",
            AlertKind::NodeDown => "node_down",
            AlertKind::QueueBacklog => "queue_backlog",
            AlertKind::DeadLetters => "dead_letters",
            AlertKind::UnderReplicated => "under_replicated",
            AlertKind::RedisDegraded => "redis_degraded",
        }
    }

    /// Kinds computed from the catalog (unknown when it cannot be read).
    pub fn needs_catalog(self) -> bool {
        matches!(
            self,
            AlertKind::ScriptError
                | AlertKind::PullFailed
                | AlertKind::Illegal
                | AlertKind::Overdue
        )
    }
}

/// Nagios states; the order is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Severity {
    pub fn exit_code(self) -> i32 {
        self as i32
    }
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Unknown => "UNKNOWN",
        }
    }
}

/// The instance an alert is about (the original's SERVER_ID:TYPE:INSTANCE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInstance {
    pub server_id: i64,
    #[serde(rename = "type")]
    pub back_type: String,
    pub instance: i64,
    pub game_id: i64,
    pub game_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `kind:subject`, stable while the condition lasts.
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    /// `server_id/type/instance/game_name`, a node id or a list name.
    pub subject: String,
    pub reason: String,
    /// Unix ms the condition started (when known).
    pub since_ms: Option<i64>,
    #[serde(default)]
    pub instance: Option<AlertInstance>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub list: Option<String>,
}

impl Alert {
    fn new(kind: AlertKind, severity: Severity, subject: String, reason: String) -> Self {
        Alert {
            id: format!("{}:{subject}", kind.as_str()),
            kind,
            severity,
            subject,
            reason,
            since_ms: None,
            instance: None,
            node: None,
            list: None,
        }
    }

    /// The one line `alerts` prints.
    pub fn line(&self) -> String {
        format!(
            "{:<8} {:<13} {}: {}",
            self.severity.label(),
            self.kind.as_str(),
            self.subject,
            self.reason
        )
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    pub generated_ms: i64,
    /// The worst severity; `unknown` when part of the rules could not run.
    pub status: Severity,
    pub summary: String,
    pub alerts: Vec<Alert>,
    /// Kinds that were evaluated; an alert of another kind is neither
    /// raised nor resolved by this report.
    pub evaluated: Vec<AlertKind>,
    /// Why some rules could not run.
    pub errors: Vec<String>,
}

impl AlertReport {
    pub fn exit_code(&self) -> i32 {
        self.status.exit_code()
    }

    /// Nagios-style text: a status line, then one line per alert.
    pub fn text(&self) -> String {
        let mut s = format!("UBACKUP {} - {}\n", self.status.label(), self.summary);
        for e in &self.errors {
            s.push_str(&format!("UNKNOWN  {e}\n"));
        }
        for a in &self.alerts {
            s.push_str(&a.line());
            s.push('\n');
        }
        s
    }
}

/// Instance label: `server_id/type/instance/game_name`.
pub fn instance_subject(server_id: i64, back_type: &str, instance: i64, game_name: &str) -> String {
    format!("{server_id}/{back_type}/{instance}/{game_name}")
}

fn alert_instance(e: &InstanceEntry) -> AlertInstance {
    AlertInstance {
        server_id: e.key.server_id,
        back_type: e.key.back_type.clone(),
        instance: e.key.instance,
        game_id: e.game_id,
        game_name: e.game_name.clone(),
    }
}

/// What is wrong with an instance's newest result, if anything.
pub fn classify(r: &CatalogRecord, t: &Thresholds) -> Option<(AlertKind, Severity, String)> {
    let res = &r.result;
    if let Some(why) = &res.illegal {
        return Some((
            AlertKind::Illegal,
            Severity::Critical,
            format!("illegal backup: {why}"),
        ));
    }
    if res.succeed == 1 {
        if let Some(&min) = t.min_size.get(&res.back_type) {
            if (res.size.max(0) as u64) < min {
                return Some((
                    AlertKind::Illegal,
                    Severity::Critical,
                    format!(
                        "backup {} is {} ({} B), below min_size.{} = {}",
                        res.filename.as_deref().unwrap_or("-"),
                        bytes(res.size.max(0) as u64),
                        res.size,
                        res.back_type,
                        bytes(min)
                    ),
                ));
            }
        }
        return None;
    }
    let log = if res.log.is_empty() {
        "no reason given".to_string()
    } else {
        res.log.chars().take(300).collect()
    };
    // the node verified the landed file and it did not match the message
    if res
        .verify
        .as_deref()
        .is_some_and(|v| v.starts_with("failed: verification failed"))
    {
        return Some((
            AlertKind::Illegal,
            Severity::Critical,
            format!("size/checksum mismatch: {log}"),
        ));
    }
    let pulled = res.attempts.is_some()
        || res.duration_ms.is_some()
        || res.file_path.is_some()
        || res.log.starts_with("pull failed");
    if pulled {
        Some((AlertKind::PullFailed, Severity::Warning, log))
    } else {
        Some((
            AlertKind::ScriptError,
            Severity::Warning,
            format!("client reported: {log}"),
        ))
    }
}

/// Evaluates every rule on `snap`: the instance rules only when the
/// catalog could be read, the node and queue rules always.
pub fn evaluate(snap: &Snapshot, t: &Thresholds) -> AlertReport {
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    let catalog_ok = snap.catalog_error.is_none();
    if let Some(e) = &snap.catalog_error {
        errors.push(format!("catalog: {e}; instance alerts (script_error, pull_failed, illegal, overdue) not evaluated"));
    }
    if catalog_ok {
        let by_key: HashMap<_, _> = snap.instances.iter().map(|e| (e.key.clone(), e)).collect();
        alerts.extend(newest_results(snap, t, &by_key));
        alerts.extend(overdue(snap, t));
        alerts.extend(verify_failures(snap, &by_key));
    }
    for n in &snap.nodes {
        alerts.extend(node_down(n));
        alerts.extend(node_disk_low(n, t));
    }
    for l in &snap.queues.lists {
        alerts.extend(queue_backlog(l, t, snap.now_ms));
        alerts.extend(dead_letters(l));
    }
    alerts.extend(under_replicated(snap));
    alerts.extend(redis_degraded(snap));
    report(snap, alerts, errors, catalog_ok)
}

/// The registry's view of the instance `r` belongs to, or (not registered
/// yet) what `r` itself says.
fn instance_of(r: &CatalogRecord, by_key: &HashMap<InstanceKey, &InstanceEntry>) -> AlertInstance {
    by_key
        .get(&r.key())
        .map(|e| alert_instance(e))
        .unwrap_or(AlertInstance {
            server_id: r.result.server_id,
            back_type: r.result.back_type.clone(),
            instance: r.result.instance,
            game_id: r.result.game_id,
            game_name: r.game_name.clone(),
        })
}

fn subject_of(inst: &AlertInstance) -> String {
    instance_subject(
        inst.server_id,
        &inst.back_type,
        inst.instance,
        &inst.game_name,
    )
}

/// script_error / pull_failed / illegal: each instance's newest result
/// ([`classify`]).
fn newest_results(
    snap: &Snapshot,
    t: &Thresholds,
    by_key: &HashMap<InstanceKey, &InstanceEntry>,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for r in &snap.latest {
        let Some((kind, sev, reason)) = classify(r, t) else {
            continue;
        };
        let inst = instance_of(r, by_key);
        let mut a = Alert::new(
            kind,
            sev,
            subject_of(&inst),
            format!(
                "{reason} (node {}, {} ago)",
                r.node(),
                duration_ms(snap.now_ms - r.result.create_time)
            ),
        );
        a.since_ms = Some(r.result.create_time);
        a.instance = Some(inst);
        a.node = Some(r.node().to_string());
        alerts.push(a);
    }
    alerts
}

/// overdue: no success within `interval × overdue_factor + grace`.
fn overdue(snap: &Snapshot, t: &Thresholds) -> Vec<Alert> {
    let now = snap.now_ms;
    let mut alerts = Vec::new();
    for e in &snap.instances {
        let interval_ms = if e.interval > 0 {
            e.interval * 1000
        } else {
            t.default_interval.as_millis() as i64
        };
        let allowed =
            (interval_ms as f64 * t.overdue_factor) as i64 + t.overdue_grace.as_millis() as i64;
        let since = e.last_success_ms.unwrap_or(e.first_seen_ms);
        if now - since <= allowed {
            continue;
        }
        let inst = alert_instance(e);
        let what = match e.last_success_ms {
            Some(_) => format!("no successful backup for {}", duration_ms(now - since)),
            None => format!(
                "never backed up successfully; first seen {} ago",
                duration_ms(now - since)
            ),
        };
        let mut a = Alert::new(
            AlertKind::Overdue,
            Severity::Critical,
            subject_of(&inst),
            format!(
                "{what} (interval {} × {} + {} grace = {})",
                duration_ms(interval_ms),
                t.overdue_factor,
                duration_ms(t.overdue_grace.as_millis() as i64),
                duration_ms(allowed)
            ),
        );
        a.since_ms = Some(since + allowed);
        a.instance = Some(inst);
        alerts.push(a);
    }
    alerts
}

/// illegal, from `verify`: a stored file found missing or corrupt is
/// illegal even when it is not its instance's newest record; the file name
/// is part of the subject so each bad file is its own alert.
fn verify_failures(snap: &Snapshot, by_key: &HashMap<InstanceKey, &InstanceEntry>) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for r in &snap.verify_failures {
        let inst = instance_of(r, by_key);
        let subject = format!(
            "{} {}",
            subject_of(&inst),
            r.result.filename.as_deref().unwrap_or("-")
        );
        let state = r.meta.verify_state.as_deref().unwrap_or("bad");
        let mut a = Alert::new(
            AlertKind::Illegal,
            Severity::Critical,
            subject,
            format!("stored file {state} at verify (node {})", r.node()),
        );
        a.since_ms = r.meta.verified_at;
        a.instance = Some(inst);
        a.node = Some(r.node().to_string());
        alerts.push(a);
    }
    alerts
}

/// node_down: the heartbeat expired (or the worker stopped).
fn node_down(n: &NodeView) -> Option<Alert> {
    if n.up {
        return None;
    }
    let last = match n.heartbeat_age_ms {
        Some(age) => format!("last heartbeat {} ago", duration_ms(age)),
        None => "no heartbeat ever recorded".into(),
    };
    let what = if n.kind.is_empty() {
        "worker".to_string()
    } else {
        n.kind.clone()
    };
    let mut a = Alert::new(
        AlertKind::NodeDown,
        Severity::Critical,
        n.id.clone(),
        format!("{what} {} is down: heartbeat expired, {last}", n.ip),
    );
    a.since_ms = n.heartbeat_ms;
    a.node = Some(n.id.clone());
    Some(a)
}

/// node_disk_low: free space under `disk_low_pct` (warning) or
/// `disk_critical_pct` (critical).
fn node_disk_low(n: &NodeView, t: &Thresholds) -> Option<Alert> {
    let (Some(free_pct), Some(total), Some(free)) = (n.disk_free_pct(), n.disk_total, n.disk_free)
    else {
        return None;
    };
    let (sev, limit) = if free_pct < t.disk_critical_pct {
        (Severity::Critical, t.disk_critical_pct)
    } else if free_pct < t.disk_low_pct {
        (Severity::Warning, t.disk_low_pct)
    } else {
        return None;
    };
    let mut a = Alert::new(
        AlertKind::NodeDiskLow,
        sev,
        n.id.clone(),
        format!(
            "{:.1}% free ({} of {}), below {limit}%",
            free_pct,
            bytes(free),
            bytes(total)
        ),
    );
    a.node = Some(n.id.clone());
    Some(a)
}

/// queue_backlog: a priority or results list too deep, or its oldest
/// element too old.
fn queue_backlog(l: &ListDepth, t: &Thresholds, now: i64) -> Option<Alert> {
    if !matches!(l.kind, QueueKind::Priority | QueueKind::Results) {
        return None;
    }
    let mut why = Vec::new();
    if l.depth > t.backlog_threshold {
        why.push(format!(
            "{} messages waiting (threshold {})",
            l.depth, t.backlog_threshold
        ));
    }
    let max_age = t.backlog_age.as_millis() as i64;
    if let Some(age) = l
        .oldest_age_ms
        .filter(|&a| max_age > 0 && a > max_age && l.depth > 0)
    {
        why.push(format!(
            "oldest waiting {} (limit {})",
            duration_ms(age),
            duration_ms(max_age)
        ));
    }
    if why.is_empty() {
        return None;
    }
    let mut a = Alert::new(
        AlertKind::QueueBacklog,
        Severity::Warning,
        l.list.clone(),
        why.join("; "),
    );
    a.since_ms = l.oldest_age_ms.map(|age| now - age);
    a.list = Some(l.list.clone());
    Some(a)
}

/// dead_letters: anything in a dead-letter list.
fn dead_letters(l: &ListDepth) -> Option<Alert> {
    if !(l.kind == QueueKind::Dead && l.depth > 0) {
        return None;
    }
    let newest = l
        .newest_reason
        .as_deref()
        .map(|r| format!("; newest: {}", r.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    let mut a = Alert::new(
        AlertKind::DeadLetters,
        Severity::Warning,
        l.list.clone(),
        format!("{} dead letter(s) in {}{newest}", l.depth, l.list),
    );
    a.list = Some(l.list.clone());
    Some(a)
}

/// under_replicated: the last repair sweep found backups with fewer good
/// copies than wanted. Resolved when a sweep finds none.
fn under_replicated(snap: &Snapshot) -> Option<Alert> {
    let r = snap.replication.as_ref()?;
    if r.under_replicated == 0 {
        return None;
    }
    let oldest = if r.oldest_ms > 0 {
        format!(
            "; the oldest taken {} ago",
            duration_ms(snap.now_ms - r.oldest_ms)
        )
    } else {
        String::new()
    };
    let mut a = Alert::new(
        AlertKind::UnderReplicated,
        Severity::Warning,
        "copies".into(),
        format!(
            "{} backup(s) with fewer good copies than `copies` asks for{oldest}; {} repair task(s) queued; last sweep by {} {} ago",
            r.under_replicated,
            r.backlog,
            r.sweep_node,
            duration_ms(snap.now_ms - r.sweep_ms)
        ),
    );
    a.since_ms = (r.oldest_ms > 0).then_some(r.oldest_ms);
    Some(a)
}

/// redis_degraded: critical when the master has fewer online replicas
/// than `redis_min_replicas` (then no push or ack completes: each waits for
/// a replica), a warning when only the sentinels are short (the next
/// failover may not happen). Resolved when both are whole again.
fn redis_degraded(snap: &Snapshot) -> Option<Alert> {
    let v = snap.redis_view.as_ref()?;
    let mut why = Vec::new();
    let mut severity = Severity::Warning;
    if v.online_replicas < v.min_replicas {
        severity = Severity::Critical;
        why.push(format!(
            "master {} has {} online replica(s), redis_min_replicas asks for {}: pushes stay in the clients' spools and acks wait",
            v.master, v.online_replicas, v.min_replicas
        ));
    }
    for s in &v.sentinels {
        match &s.answer {
            Err(e) => why.push(format!("sentinel {} does not answer ({e})", s.addr)),
            Ok(m) if *m != v.master => why.push(format!(
                "sentinel {} names {m} as master, commands go to {}",
                s.addr, v.master
            )),
            Ok(_) => {}
        }
    }
    if why.is_empty() {
        return None;
    }
    Some(Alert::new(
        AlertKind::RedisDegraded,
        severity,
        "redis".into(),
        why.join("; "),
    ))
}

/// The report: alerts worst first, which kinds were evaluated, the status
/// (UNKNOWN when a rule could not run) and the one-line summary.
fn report(
    snap: &Snapshot,
    mut alerts: Vec<Alert>,
    errors: Vec<String>,
    catalog_ok: bool,
) -> AlertReport {
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.cmp(&b.kind))
            .then(a.subject.cmp(&b.subject))
    });
    let evaluated: Vec<AlertKind> = AlertKind::ALL
        .into_iter()
        .filter(|k| catalog_ok || !k.needs_catalog())
        .collect();
    let worst = alerts
        .iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let status = if errors.is_empty() {
        worst
    } else {
        Severity::Unknown
    };
    let crit = alerts
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .count();
    let warn = alerts
        .iter()
        .filter(|a| a.severity == Severity::Warning)
        .count();
    let summary = if alerts.is_empty() && errors.is_empty() {
        format!(
            "no alerts ({} nodes, {} instances)",
            snap.nodes.len(),
            snap.instances.len()
        )
    } else {
        let mut s = format!("{} alert(s): {crit} critical, {warn} warning", alerts.len());
        if !errors.is_empty() {
            s.push_str("; some rules could not run");
        }
        s
    };
    AlertReport {
        generated_ms: snap.now_ms,
        status,
        summary,
        alerts,
        evaluated,
        errors,
    }
}
