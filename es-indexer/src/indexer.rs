//! The indexer's loop: take results → store them everywhere → refresh the
//! expiring keys → acknowledge.
//!
//! Results are taken with the same crash-safe pattern as the nodes use for
//! backup messages: they move into `<prefix>inflight:<indexer_id>:<queue>`
//! and leave it only through a fenced ack (after every store has them) or a
//! dead-letter. A kill -9 anywhere leaves them in flight; the next start
//! (or another indexer, once this one's heartbeat expires) puts them back,
//! and the replay overwrites the same rows/documents (deterministic ids).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::RedisResult;
use ubackup_catalog::{Catalog, CatalogRecord, EsCatalog, SqliteCatalog};
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::queue::{Requeue, Taken, Waiter, WorkQueue};
use ubackup_common::shutdown::Shutdown;
use ubackup_common::{Keys, ResultRecord};

use crate::config::IndexerConfig;
use crate::outage::{retry_backoff, Outage};
use crate::overdue::OverdueKeys;
use crate::sinks::{Sinks, Verdict, WriteError};

/// How long one blocking wait for the first result of a batch lasts
/// before the loop looks at shutdown again (it is raced anyway).
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// Heartbeat period and TTL: another worker re-queues our in-flight
/// results only after the TTL passes without a beat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(30);

/// A failure the indexer cannot ride out (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("cannot open the catalog: {0}")]
    Catalog(String),
    #[error("a store failed permanently: {0}")]
    Store(String),
}

/// Counters published in the state hash.
#[derive(Default)]
pub struct Stats {
    pub indexed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches: AtomicU64,
    pub health: Mutex<String>,
}

/// Why a step stopped early.
enum Stop {
    Shutdown,
    Fatal(IndexerError),
}

/// Runs until `shutdown`; returns `Ok` on a clean stop.
pub async fn run(cfg: IndexerConfig, shutdown: Shutdown) -> Result<(), IndexerError> {
    for k in &cfg.unknown_keys {
        tracing::warn!(file = %cfg.file.display(), "[global] {k}: unknown key, ignored (typo?)");
    }
    let catalogs = open_catalogs(&cfg).await?;
    let mut sinks = Sinks::new(catalogs);
    tracing::info!(
        indexer = %cfg.indexer_id,
        redis = %cfg.redis,
        queue = %cfg.message_queue,
        stores = ?sinks.describe(),
        batch_size = cfg.batch_size,
        "indexer starting"
    );
    let keys = Keys::new(&cfg.key_prefix);
    let mut redis_outage = Outage::new(format!("redis {}", cfg.redis));
    let Some(wq) = connect_retrying(&mut redis_outage, &shutdown, || {
        WorkQueue::connect(
            &cfg.redis,
            keys.clone(),
            &cfg.indexer_id,
            vec![cfg.message_queue.clone()],
        )
    })
    .await
    else {
        return Ok(());
    };
    let Some(overdue) = connect_retrying(&mut redis_outage, &shutdown, || {
        OverdueKeys::connect(&cfg.redis, cfg.overdue_db, keys.clone(), cfg.overdue_grace)
    })
    .await
    else {
        return Ok(());
    };
    redis_outage.recovered();

    let stats = Arc::new(Stats::default());
    let started = now_ms();
    // beat once before taking anything, so no other worker reaps us
    if let Err(e) = beat(&wq, &stats, started, &cfg).await {
        tracing::warn!("first heartbeat failed: {e}");
    }
    match with_redis(&mut redis_outage, &shutdown, || {
        wq.requeue_own(Requeue::Restart)
    })
    .await
    {
        Ok(o) if o.requeued + o.dead_lettered > 0 => tracing::warn!(
            requeued = o.requeued,
            dead_lettered = o.dead_lettered,
            "results left in flight by the previous run were put back"
        ),
        Ok(_) => {}
        Err(_) => return Ok(()),
    }
    match sinks.prepare_once(&shutdown).await {
        Ok(()) => {}
        Err(WriteError::Shutdown) => return Ok(()),
        Err(WriteError::Fatal(e)) => return Err(IndexerError::Store(e)),
    }
    let heart = tokio::spawn(heartbeat_loop(
        wq.clone(),
        stats.clone(),
        started,
        cfg.clone(),
        shutdown.clone(),
    ));

    let mut ix = Indexer {
        cfg: &cfg,
        wq: &wq,
        overdue: &overdue,
        stats: &stats,
        redis_outage,
    };
    let result = ix.main_loop(&mut sinks, &shutdown).await;

    // Whatever is still in flight (a batch cut short, an item a cancelled
    // wait moved) goes back for the next indexer; a drain is not counted
    // as an interruption.
    match wq.requeue_own(Requeue::Drain).await {
        Ok(o) if o.requeued > 0 => tracing::info!(
            requeued = o.requeued,
            "unfinished results put back on {}",
            cfg.message_queue
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!("could not put unfinished results back ({e}); the next start will")
        }
    }
    heart.abort();
    if let Err(e) = wq.retire().await {
        tracing::debug!("retire: {e}");
    }
    tracing::info!(
        indexed = stats.indexed.load(Ordering::Relaxed),
        dead_lettered = stats.dead_lettered.load(Ordering::Relaxed),
        "indexer stopped"
    );
    result
}

async fn open_catalogs(cfg: &IndexerConfig) -> Result<Vec<Arc<dyn Catalog>>, IndexerError> {
    let mut out: Vec<Arc<dyn Catalog>> = Vec::new();
    if let Some(path) = cfg.catalog.clone() {
        let cat = tokio::task::spawn_blocking(move || SqliteCatalog::open(&path))
            .await
            .map_err(|e| IndexerError::Catalog(e.to_string()))?
            .map_err(|e| IndexerError::Catalog(e.to_string()))?;
        out.push(Arc::new(cat));
    }
    if let Some(es) = &cfg.es {
        out.push(Arc::new(
            EsCatalog::new(es).map_err(|e| IndexerError::Catalog(e.to_string()))?,
        ));
    }
    Ok(out)
}

/// Retries a Redis call with backoff until it works or shutdown starts
/// while waiting to retry.
async fn with_redis<T, F, Fut>(outage: &mut Outage, shutdown: &Shutdown, mut f: F) -> Result<T, ()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RedisResult<T>>,
{
    let mut backoff = retry_backoff();
    let mut sd = shutdown.clone();
    loop {
        // Not raced against shutdown: the call itself is bounded by the
        // connection's timeouts, and an ack must not be dropped just
        // because SIGTERM arrived while it was on the wire. Only the wait
        // between attempts gives way to shutdown.
        match f().await {
            Ok(v) => {
                outage.recovered();
                return Ok(v);
            }
            Err(e) => {
                outage.failed(&e, "results stay where they are until it is back");
                if sd.sleep(backoff.next_delay()).await {
                    return Err(());
                }
            }
        }
    }
}

async fn connect_retrying<T, F, Fut>(outage: &mut Outage, shutdown: &Shutdown, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RedisResult<T>>,
{
    with_redis(outage, shutdown, f).await.ok()
}

async fn beat(wq: &WorkQueue, stats: &Stats, started: i64, cfg: &IndexerConfig) -> RedisResult<()> {
    let health = stats.health.lock().map(|h| h.clone()).unwrap_or_default();
    wq.heartbeat(
        HEARTBEAT_TTL,
        &[
            (state::KIND, "indexer".to_string()),
            (state::VERSION, env!("CARGO_PKG_VERSION").to_string()),
            (state::STARTED_MS, started.to_string()),
            ("message_queue", cfg.message_queue.clone()),
            ("indexed", stats.indexed.load(Ordering::Relaxed).to_string()),
            (
                "dead_lettered",
                stats.dead_lettered.load(Ordering::Relaxed).to_string(),
            ),
            ("stores", health),
        ],
    )
    .await
}

/// Beats, and re-queues the in-flight items of workers (nodes or other
/// indexers) whose heartbeat expired.
async fn heartbeat_loop(
    wq: WorkQueue,
    stats: Arc<Stats>,
    started: i64,
    cfg: IndexerConfig,
    mut shutdown: Shutdown,
) {
    let mut outage = Outage::new(format!("redis {} (heartbeat)", cfg.redis));
    loop {
        match beat(&wq, &stats, started, &cfg).await {
            Ok(()) => {
                outage.recovered();
                match wq.reap_expired().await {
                    Ok(reaped) => {
                        for (worker, o) in reaped {
                            tracing::warn!(%worker, requeued = o.requeued, dead_lettered = o.dead_lettered, "worker stopped beating: its in-flight items were put back");
                        }
                    }
                    Err(e) => tracing::debug!("reap: {e}"),
                }
            }
            Err(e) => {
                outage.failed(&e, "heartbeat missed");
            }
        }
        if shutdown.sleep(HEARTBEAT_EVERY).await {
            return;
        }
    }
}

/// Reads one result; the reason is what the dead-letter entry will say.
pub fn parse_result(payload: &str, cfg: &IndexerConfig) -> Result<CatalogRecord, String> {
    let r: ResultRecord =
        serde_json::from_str(payload).map_err(|e| format!("not a valid result: {e}"))?;
    if r.succeed > 1 {
        return Err(format!(
            "not a valid result: succeed is {}, expected 0 or 1",
            r.succeed
        ));
    }
    if r.back_type.is_empty() {
        return Err("not a valid result: type is empty".into());
    }
    let name = cfg.game_name(r.game_id).to_string();
    Ok(CatalogRecord::new(r, name))
}

struct Indexer<'a> {
    cfg: &'a IndexerConfig,
    wq: &'a WorkQueue,
    overdue: &'a OverdueKeys,
    stats: &'a Stats,
    redis_outage: Outage,
}

/// A batch every store has (or refused for good), waiting for its overdue
/// keys and its ack.
struct StoredBatch {
    held: Vec<Taken>,
    records: Vec<CatalogRecord>,
    verdicts: Vec<Verdict>,
}

impl Indexer<'_> {
    /// Two stages side by side: the first takes a batch and writes it to
    /// the stores (while it writes, the next batch is already taken off
    /// the queue); the second refreshes the overdue keys and acknowledges
    /// the stored batches in order. A result is acknowledged only after
    /// every store has it, as before; only the Redis round trips of one
    /// batch now overlap the store writes of the next.
    async fn main_loop(
        &mut self,
        sinks: &mut Sinks,
        shutdown: &Shutdown,
    ) -> Result<(), IndexerError> {
        // one batch may wait while the next is stored: at most three
        // batches in memory (taken, storing, acknowledging)
        let (tx, mut rx) = tokio::sync::mpsc::channel::<StoredBatch>(1);
        let (cfg, wq, overdue, stats) = (self.cfg, self.wq, self.overdue, self.stats);
        let finisher = async move {
            let mut outage = Outage::new(format!("redis {} (acks)", cfg.redis));
            while let Some(b) = rx.recv().await {
                if finish(cfg, wq, overdue, stats, &mut outage, b, shutdown)
                    .await
                    .is_err()
                {
                    // shutdown while Redis is down: the rest stays in
                    // flight and is put back at the next start
                    break;
                }
            }
        };
        let producer = async move {
            let r = self.produce(sinks, shutdown, tx).await;
            r
        };
        let (r, ()) = tokio::join!(producer, finisher);
        r
    }

    async fn produce(
        &mut self,
        sinks: &mut Sinks,
        shutdown: &Shutdown,
        tx: tokio::sync::mpsc::Sender<StoredBatch>,
    ) -> Result<(), IndexerError> {
        let mut waiter = Waiter::default();
        let mut backoff = retry_backoff();
        let mut next: Vec<Taken> = Vec::new();
        while !shutdown.is_triggered() {
            let batch = if !next.is_empty() {
                std::mem::take(&mut next)
            } else {
                match self.collect(&mut waiter, shutdown).await {
                    Ok(b) => {
                        self.redis_outage.recovered();
                        backoff.reset();
                        b
                    }
                    Err(e) => {
                        self.redis_outage
                            .failed(&e, "no results are taken until it is back");
                        let mut sd = shutdown.clone();
                        if sd.sleep(backoff.next_delay()).await {
                            break;
                        }
                        continue;
                    }
                }
            };
            if batch.is_empty() {
                continue;
            }
            // a full batch means a backlog: take the next one while this
            // one is written (it waits in flight like any taken result)
            let prefetch = batch.len() >= self.cfg.batch_size;
            let wq = self.wq;
            let max = self.cfg.batch_size;
            let (stored, more) = tokio::join!(self.store(batch, sinks, shutdown), async move {
                if prefetch {
                    wq.try_take(max).await.unwrap_or_else(|e| {
                        tracing::debug!("taking the next batch early failed: {e}");
                        Vec::new()
                    })
                } else {
                    Vec::new()
                }
            });
            next = more;
            match stored {
                Ok(Some(b)) => {
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(Stop::Shutdown) => break,
                Err(Stop::Fatal(e)) => return Err(e),
            }
            if let Ok(mut h) = self.stats.health.lock() {
                *h = sinks.health();
            }
        }
        Ok(())
    }

    /// Up to `batch_size` results: waits for the first, then up to
    /// `batch_ms` for the batch to fill. Results taken before an error are
    /// kept (they are in flight and must be processed).
    async fn collect(&self, waiter: &mut Waiter, shutdown: &Shutdown) -> RedisResult<Vec<Taken>> {
        let max = self.cfg.batch_size;
        let mut sd = shutdown.clone();
        let mut batch = tokio::select! {
            r = self.wq.take(waiter, max, IDLE_WAIT) => r?,
            _ = sd.wait() => return Ok(Vec::new()),
        };
        if batch.is_empty() {
            return Ok(batch);
        }
        let deadline = Instant::now() + self.cfg.batch_wait;
        while batch.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = tokio::select! {
                r = self.wq.take(waiter, max - batch.len(), left) => r,
                _ = sd.wait() => break,
            };
            match more {
                Ok(m) => batch.extend(m),
                Err(e) => {
                    tracing::debug!("filling the batch stopped: {e}");
                    break;
                }
            }
        }
        Ok(batch)
    }

    /// Parses a batch (dead-lettering what is not a result) and writes it
    /// to every store. `None` when nothing in it was a result.
    async fn store(
        &mut self,
        batch: Vec<Taken>,
        sinks: &mut Sinks,
        shutdown: &Shutdown,
    ) -> Result<Option<StoredBatch>, Stop> {
        let mq = self.cfg.message_queue.clone();
        let mut records = Vec::with_capacity(batch.len());
        let mut held = Vec::with_capacity(batch.len());
        for t in batch {
            match parse_result(&t.payload, self.cfg) {
                Ok(r) => {
                    records.push(r);
                    held.push(t);
                }
                Err(reason) => {
                    let preview: String = t.payload.chars().take(120).collect();
                    tracing::warn!(queue = %t.queue, payload = %preview, "dead-lettering: {reason}");
                    let wq = self.wq;
                    let (t, reason, mq) = (&t, &reason, &mq);
                    with_redis(&mut self.redis_outage, shutdown, || {
                        wq.dead_letter(t, reason, None, mq)
                    })
                    .await
                    .map_err(|_| Stop::Shutdown)?;
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        let verdicts = match sinks.write(&records, shutdown).await {
            Ok(v) => v,
            Err(WriteError::Shutdown) => return Err(Stop::Shutdown),
            Err(WriteError::Fatal(e)) => return Err(Stop::Fatal(IndexerError::Store(e))),
        };
        Ok(Some(StoredBatch {
            held,
            records,
            verdicts,
        }))
    }
}

/// The second stage for one stored batch: the overdue keys, the fenced ack
/// of what every store has, the dead letters of what a store refused.
async fn finish(
    cfg: &IndexerConfig,
    wq: &WorkQueue,
    overdue: &OverdueKeys,
    stats: &Stats,
    outage: &mut Outage,
    b: StoredBatch,
    shutdown: &Shutdown,
) -> Result<(), Stop> {
    let mq = &cfg.message_queue;
    // every result says the instance was seen, even one a store refused
    let refs: Vec<&CatalogRecord> = b.records.iter().collect();
    with_redis(outage, shutdown, || overdue.mark(&refs))
        .await
        .map_err(|_| Stop::Shutdown)?;

    let acks: Vec<(&Taken, Option<&str>)> = b
        .held
        .iter()
        .zip(&b.verdicts)
        .filter(|(_, v)| **v == Verdict::Stored)
        .map(|(t, _)| (t, None))
        .collect();
    if !acks.is_empty() {
        let flags = with_redis(outage, shutdown, || wq.ack(&acks, mq))
            .await
            .map_err(|_| Stop::Shutdown)?;
        let fenced = flags.iter().filter(|f| !**f).count();
        if fenced > 0 {
            // we were presumed dead and our results re-queued; another
            // indexer will store them again (same ids: no duplicates)
            tracing::warn!(
                fenced,
                "results were taken back from this indexer meanwhile (missed heartbeats?)"
            );
        }
        stats
            .indexed
            .fetch_add((flags.len() - fenced) as u64, Ordering::Relaxed);
    }
    for ((t, v), r) in b.held.iter().zip(&b.verdicts).zip(&b.records) {
        if let Verdict::Rejected(reason) = v {
            with_redis(outage, shutdown, || wq.dead_letter(t, reason, None, mq))
                .await
                .map_err(|_| Stop::Shutdown)?;
            tracing::warn!(result = %r.result.label(), id = %r.id, "dead-lettered to {}: {reason}", wq.keys().dead(mq));
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(results = b.records.len(), "batch done");
    Ok(())
}
