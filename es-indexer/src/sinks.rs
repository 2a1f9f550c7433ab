//! Writing one batch to every configured catalog, retrying what may pass
//! later, so that the caller can acknowledge the batch only once every
//! store has it.

use std::sync::Arc;

use ubackup_catalog::{Catalog, CatalogError, CatalogRecord, StoreOutcome};
use ubackup_common::backoff::Backoff;
use ubackup_common::shutdown::Shutdown;

use crate::outage::{retry_backoff, Outage};

/// After shutdown starts, a store call already running gets this long to
/// finish before the batch is left in flight for the next start (in
/// common, where the deploy checks read it).
pub use ubackup_common::deadlines::INDEXER_DRAIN_GRACE as DRAIN_GRACE;

/// The final word on one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every store has it: acknowledge.
    Stored,
    /// A store refused it for good: dead-letter with this reason.
    Rejected(String),
}

/// Why a batch could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Shutdown started while a store was unavailable: the batch stays in
    /// flight and is re-queued.
    #[error("stopped while waiting for a store")]
    Shutdown,
    /// A store is broken in a way retrying cannot fix (corrupt SQLite
    /// file, unreadable CA certificate…).
    #[error("{0}")]
    Fatal(String),
}

struct Sink {
    catalog: Arc<dyn Catalog>,
    prepared: bool,
    /// The store as a whole (connection refused, 503, SQLite busy).
    outage: Outage,
    /// Single documents bounced with 429/5xx while others went in.
    pushback: Outage,
}

/// Every configured store, in order (SQLite first: it is local and rarely
/// fails, so a result ES refuses is still findable in the catalog).
pub struct Sinks {
    sinks: Vec<Sink>,
    backoff: Backoff,
}

impl Sinks {
    pub fn new(catalogs: Vec<Arc<dyn Catalog>>) -> Self {
        Self::with_backoff(catalogs, retry_backoff())
    }

    pub fn with_backoff(catalogs: Vec<Arc<dyn Catalog>>, backoff: Backoff) -> Self {
        let sinks = catalogs
            .into_iter()
            .map(|c| {
                let name = c.describe();
                Sink {
                    catalog: c,
                    prepared: false,
                    outage: Outage::new(name.clone()),
                    pushback: Outage::new(format!("{name} (some documents)")),
                }
            })
            .collect();
        Sinks { sinks, backoff }
    }

    pub fn describe(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.catalog.describe()).collect()
    }

    /// `store up` / `store down` for the state hash.
    pub fn health(&self) -> String {
        self.sinks
            .iter()
            .map(|s| {
                format!(
                    "{}={}",
                    s.catalog.describe(),
                    if s.outage.is_down() { "down" } else { "up" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Tries once to prepare every store (tables, index template, indices),
    /// so that a fresh cluster gets its mapping at start rather than at
    /// the first result. A store that is down is retried at the first write.
    pub async fn prepare_once(&mut self, shutdown: &Shutdown) -> Result<(), WriteError> {
        for sink in &mut self.sinks {
            match prepared(sink, shutdown).await? {
                Ok(()) => {}
                Err(CatalogError::Unavailable { reason, .. }) => {
                    sink.outage
                        .failed(&reason, "results wait in Redis until it is back");
                }
                Err(e) => return Err(WriteError::Fatal(e.to_string())),
            }
        }
        Ok(())
    }

    /// Writes `records` to every store, all stores at once (SQLite is
    /// local disk and ES is a network round trip: running them side by
    /// side makes a batch cost the slower of the two, not their sum).
    /// Returns one verdict per record: `Rejected` if any store refused it
    /// for good (the first store's reason wins), else `Stored`.
    pub async fn write(
        &mut self,
        records: &[CatalogRecord],
        shutdown: &Shutdown,
    ) -> Result<Vec<Verdict>, WriteError> {
        let backoff = self.backoff.clone();
        let outs = futures_util::future::join_all(
            self.sinks
                .iter_mut()
                .map(|sink| write_to(sink, records, backoff.clone(), shutdown)),
        )
        .await;
        let mut verdicts = vec![Verdict::Stored; records.len()];
        for out in outs {
            for (v, new) in verdicts.iter_mut().zip(out?) {
                if *v == Verdict::Stored {
                    *v = new;
                }
            }
        }
        Ok(verdicts)
    }
}

/// Writes `records` to one store until each is stored or refused for good;
/// retries what may pass later (outage, 429/5xx items) with backoff.
async fn write_to(
    sink: &mut Sink,
    records: &[CatalogRecord],
    mut backoff: Backoff,
    shutdown: &Shutdown,
) -> Result<Vec<Verdict>, WriteError> {
    let mut verdicts = vec![Verdict::Stored; records.len()];
    let mut pending: Vec<usize> = (0..records.len()).collect();
    while !pending.is_empty() {
        let outcome = match prepared(sink, shutdown).await? {
            Ok(()) => {
                let batch: Vec<CatalogRecord> =
                    pending.iter().map(|&i| records[i].clone()).collect();
                raced(sink.catalog.store(&batch), shutdown).await?
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(outs) => {
                sink.outage.recovered();
                let mut retry = Vec::new();
                let mut last_retry_reason = String::new();
                for (&i, o) in pending.iter().zip(outs) {
                    match o {
                        StoreOutcome::Stored => {}
                        StoreOutcome::Rejected(why) => {
                            tracing::warn!(result = %records[i].result.label(), id = %records[i].id, store = %sink.catalog.describe(), "refused: {why}");
                            verdicts[i] = Verdict::Rejected(format!(
                                "{} refused the result: {why}",
                                sink.catalog.describe()
                            ));
                        }
                        StoreOutcome::Retry(why) => {
                            retry.push(i);
                            last_retry_reason = why;
                        }
                    }
                }
                if retry.is_empty() {
                    sink.pushback.recovered();
                } else {
                    sink.pushback.failed(
                        &format!(
                            "{} of {} documents bounced ({last_retry_reason})",
                            retry.len(),
                            pending.len()
                        ),
                        "retrying only those",
                    );
                }
                pending = retry;
            }
            Err(CatalogError::Unavailable { reason, .. }) => {
                sink.outage
                    .failed(&reason, "results wait in Redis until it is back");
            }
            Err(CatalogError::Rejected { reason, .. }) => {
                for &i in &pending {
                    verdicts[i] = Verdict::Rejected(format!(
                        "{} refused the request: {reason}",
                        sink.catalog.describe()
                    ));
                }
                tracing::error!(store = %sink.catalog.describe(), count = pending.len(), "request refused, results go to the dead-letter list: {reason}");
                pending.clear();
            }
            Err(e @ CatalogError::Fatal { .. }) => return Err(WriteError::Fatal(e.to_string())),
        }
        if !pending.is_empty() {
            let mut sd = shutdown.clone();
            if sd.sleep(backoff.next_delay()).await {
                return Err(WriteError::Shutdown);
            }
        }
    }
    Ok(verdicts)
}

/// Runs `prepare` once per store (creating tables / template / indices);
/// a failure is reported like a store failure and retried.
async fn prepared(
    sink: &mut Sink,
    shutdown: &Shutdown,
) -> Result<Result<(), CatalogError>, WriteError> {
    if sink.prepared {
        return Ok(Ok(()));
    }
    let r = raced(sink.catalog.prepare(), shutdown).await?;
    if r.is_ok() {
        sink.prepared = true;
        tracing::info!(store = %sink.catalog.describe(), "store ready");
    }
    Ok(r)
}

/// A store call, abandoned [`DRAIN_GRACE`] after shutdown starts.
async fn raced<T>(
    fut: impl std::future::Future<Output = T>,
    shutdown: &Shutdown,
) -> Result<T, WriteError> {
    let mut sd = shutdown.clone();
    tokio::select! {
        r = fut => Ok(r),
        _ = async { sd.wait().await; tokio::time::sleep(DRAIN_GRACE).await } => Err(WriteError::Shutdown),
    }
}
