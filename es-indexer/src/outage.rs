//! Logging an outage once per state change rather than once per retry,
//! and the backoff the retries between wait by.

use std::time::{Duration, Instant};

use ubackup_common::backoff::Backoff;

/// The wait between retries of a store or Redis call: 200 ms, doubling up
/// to 30 s. Only transient failures (a store or Redis that is down,
/// 429/5xx items) go through it; a malformed result is dead-lettered at
/// once and never makes anything wait.
pub fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
}

/// Tracks whether something (a sink, Redis) is failing, so that the log
/// says "down" once with the first error and "back" once with how long it
/// took, however many retries happen in between.
#[derive(Debug)]
pub struct Outage {
    what: String,
    since: Option<Instant>,
    failures: u64,
}

impl Outage {
    pub fn new(what: impl Into<String>) -> Self {
        Outage {
            what: what.into(),
            since: None,
            failures: 0,
        }
    }

    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }

    /// Records a failure; logs only on the transition to "down".
    /// Returns true if this call logged.
    pub fn failed(&mut self, error: &dyn std::fmt::Display, consequence: &str) -> bool {
        self.failures += 1;
        if self.since.is_none() {
            self.since = Some(Instant::now());
            tracing::warn!(target: "ubackup_indexer", "{} unavailable: {error}; {consequence}", self.what);
            true
        } else {
            tracing::debug!(target: "ubackup_indexer", failures = self.failures, "{} still unavailable: {error}", self.what);
            false
        }
    }

    /// Records a success; logs only on the transition back to "up".
    pub fn recovered(&mut self) -> bool {
        match self.since.take() {
            Some(t) => {
                tracing::info!(
                    target: "ubackup_indexer",
                    "{} available again after {:.1} s and {} failed attempts",
                    self.what,
                    t.elapsed().as_secs_f64(),
                    self.failures
                );
                self.failures = 0;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_logs_once_per_state_change() {
        let mut o = Outage::new("es");
        assert!(!o.recovered());
        assert!(o.failed(&"refused", "waiting"));
        assert!(!o.failed(&"refused", "waiting"));
        assert!(!o.failed(&"refused", "waiting"));
        assert!(o.is_down());
        assert!(o.recovered());
        assert!(!o.recovered());
        assert!(o.failed(&"again", "waiting"));
    }
}
