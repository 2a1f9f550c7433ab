//! `alerts --webhook URL --state FILE`: notify only what changed.
//!
//! The state file holds the alerts known at the last run and the events
//! not yet delivered. Each run:
//! 1. compares the new report with the known alerts: an id not known
//!    before is `raised`, a known id now absent is `resolved` (only for
//!    kinds the report evaluated, so an unreadable catalog resolves
//!    nothing), and appends those events to the pending queue;
//! 2. saves the state (atomically), then POSTs the pending events one by
//!    one, oldest first, saving after each delivery. A POST that fails
//!    stops the run; it and the later events are tried again next run.
//!
//! So an event is never lost and, short of a crash between a delivery and
//! the save that follows it, never sent twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ubackup_common::fsutil::write_atomic;

use crate::alerts::{Alert, AlertReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Raised,
    Resolved,
}

/// One POSTed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: EventKind,
    /// Unix ms the reporter noticed the change.
    pub time_ms: i64,
    pub alert: Alert,
    /// One line for chat webhooks (Slack/Mattermost read `text`).
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyState {
    /// Alerts as of the last run, by id.
    pub known: BTreeMap<String, Alert>,
    /// Events not yet delivered, oldest first.
    pub pending: Vec<Event>,
}

impl NotifyState {
    /// Reads the state; a missing file is a first run.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                format!("state file {} is unreadable ({e}); fix or remove it (removing re-sends every current alert)", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NotifyState::default()),
            Err(e) => Err(format!("cannot read state file {}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let data = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(path, &data)
            .map_err(|e| format!("cannot write state file {}: {e}", path.display()))
    }

    /// Step 1: queues the events between the known alerts and `report`.
    /// Returns how many were added.
    pub fn observe(&mut self, report: &AlertReport) -> usize {
        let now = report.generated_ms;
        let mut added = 0;
        let current: BTreeMap<&str, &Alert> =
            report.alerts.iter().map(|a| (a.id.as_str(), a)).collect();
        for (id, a) in &current {
            if !self.known.contains_key(*id) {
                self.pending
                    .push(event(EventKind::Raised, now, (*a).clone()));
                added += 1;
            }
        }
        let gone: Vec<String> = self
            .known
            .iter()
            .filter(|(id, a)| {
                !current.contains_key(id.as_str()) && report.evaluated.contains(&a.kind)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(a) = self.known.remove(&id) {
                self.pending.push(event(EventKind::Resolved, now, a));
                added += 1;
            }
        }
        for (id, a) in current {
            self.known.insert(id.to_string(), a.clone());
        }
        added
    }
}

fn event(kind: EventKind, time_ms: i64, alert: Alert) -> Event {
    let text = match kind {
        EventKind::Raised => format!(
            "[ubackup] {} {} {}: {}",
            alert.severity.label(),
            alert.kind.as_str(),
            alert.subject,
            alert.reason
        ),
        EventKind::Resolved => format!(
            "[ubackup] RESOLVED {} {}",
            alert.kind.as_str(),
            alert.subject
        ),
    };
    Event {
        event: kind,
        time_ms,
        alert,
        text,
    }
}

/// What a delivery run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub pending: usize,
    pub error: Option<String>,
}

/// Observes `report`, then delivers every pending event to `url`.
pub async fn notify(
    url: &str,
    state_path: &Path,
    report: &AlertReport,
) -> Result<Delivery, String> {
    let mut state = NotifyState::load(state_path)?;
    let added = state.observe(report);
    if added > 0 {
        state.save(state_path)?;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut out = Delivery::default();
    while let Some(ev) = state.pending.first().cloned() {
        let res = client.post(url).json(&ev).send().await;
        let err = match res {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = err {
            tracing::warn!(event = ?ev.event, alert = %ev.alert.id, "webhook failed ({e}); {} event(s) stay pending for the next run", state.pending.len());
            out.error = Some(e);
            break;
        }
        state.pending.remove(0);
        state.save(state_path)?;
        out.sent += 1;
    }
    out.pending = state.pending.len();
    Ok(out)
}
