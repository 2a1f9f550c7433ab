//! What every request of `ubackup-reporter serve` shares: the config and
//! the lazily (re)opened sources, for the API handlers and the web pages.

use crate::alerts::{self, AlertReport};
use crate::config::ReporterConfig;
use crate::error::ReporterError;
use crate::snapshot::{Snapshot, Sources};
use tokio::sync::Mutex;

/// What every request shares: the config and the lazily (re)opened sources.
pub(crate) struct App {
    pub(crate) cfg: ReporterConfig,
    /// None until the first request, and again after a failed read.
    pub(crate) sources: Mutex<Option<Sources>>,
}

impl App {
    /// One snapshot and its alerts: what `/api/status`, `/api/alerts` and
    /// the HTML pages are all built on.
    pub(crate) async fn read(&self) -> Result<(Snapshot, AlertReport), ReporterError> {
        let mut guard = self.sources.lock().await;
        if guard.is_none() {
            *guard = Some(Sources::open(self.cfg.clone(), true).await?);
        }
        let src = guard.as_mut().expect("just set");
        match src.snapshot().await {
            Ok(snap) => {
                let report = alerts::evaluate(&snap, &self.cfg.thresholds);
                Ok((snap, report))
            }
            Err(e) => {
                // reconnect on the next request
                *guard = None;
                Err(e)
            }
        }
    }
}
