//! The backup catalog: where every backup file is, and when each instance
//! was last backed up. One [`Catalog`] trait, one implementation per store.
//!
//! Layout, store-neutral first, then one directory per store:
//! * [`record`]: what a catalog holds: [`CatalogRecord`] (a node's result
//!   plus `game_name` and the catalog's own columns), the instance registry
//!   ([`InstanceEntry`]) and the query types;
//! * [`copies`]: the copies of a backup on other nodes, the first one
//!   read from the result;
//! * [`chain`], [`location`]: full + incremental chains, and the `catalog` /
//!   `es_urls` keys that restore, prune and verify open a store with;
//! * [`retention`], [`reports`], [`web_stats`]: the traits beyond
//!   [`Catalog`] (pins / deletion marks / verification; the reporter's
//!   queries; the statistics page) with their store-neutral defaults;
//!   [`samples`]: the reporter's disk/queue time series;
//! * [`sqlite`]: the embedded SQLite store (the default), writes off the
//!   async runtime; [`sqlite::schema`] holds every table definition as
//!   numbered migrations; its submodules implement the traits above;
//! * [`api`]: a backup as JSON (`list --json`, the catalog API) and the
//!   API's query string; [`http`]: the catalog API as a store
//!   (`catalog_url`); [`time`]: local times as operators read and type them;
//! * [`es`]: Elasticsearch (the official crate): [`es::mapping`] has every
//!   index mapping/template, [`es::bulk`] builds `_bulk` bodies and sorts
//!   the per-item answers into stored / retry / rejected; its submodules
//!   implement the traits above.
//!
//! The indexer writes through [`Catalog::store`]; restore, list, status and
//! alerts read through the other methods, whichever store is configured.

pub mod api;
pub mod chain;
pub mod copies;
pub mod es;
pub mod http;
pub mod location;
pub mod record;
pub mod reports;
pub mod retention;
pub mod samples;
pub mod sqlite;
pub mod time;
pub mod web_stats;

use async_trait::async_trait;

pub use copies::CopyRecord;
pub use es::{EsCatalog, EsSettings};
pub use http::{HttpCatalog, HttpSettings};
pub use location::CatalogLocation;
pub use record::{
    BackupQuery, CatalogRecord, InstanceEntry, InstanceKey, RecordMeta, StoreOutcome,
};
pub use reports::{NodeWindow, Reports, WindowStats};
pub use retention::{Retention, VerifyOutcome};
pub use samples::{DiskSample, QueueKind, QueueSample, Sample, SampleQuery};
pub use sqlite::SqliteCatalog;
pub use web_stats::{Activity, ActivityFilter, Bucket};

/// The error a catalog call failed on, when there was one (SQLite, I/O,
/// the Elasticsearch client, a task): kept as [`CatalogError`]'s source.
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a catalog call failed, sorted by what the caller can do about it.
/// `reason` is the whole story for a log line (the source's text
/// included); `source` keeps the underlying error itself.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The store cannot be reached or is overloaded (connection refused,
    /// timeout, HTTP 429/5xx, 401/403, SQLite busy/full): keep the data and
    /// try again later.
    #[error("{store} unavailable: {reason}")]
    Unavailable {
        store: String,
        reason: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// The store refused the whole request and will refuse it again (HTTP
    /// 4xx on the request itself): retrying is pointless.
    #[error("{store} rejected the request: {reason}")]
    Rejected {
        store: String,
        reason: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// The store answered something we could not understand, or a local
    /// problem (corrupt database, unexpected schema).
    #[error("{store}: {reason}")]
    Fatal {
        store: String,
        reason: String,
        #[source]
        source: Option<ErrorSource>,
    },
}

impl CatalogError {
    pub fn unavailable(store: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::Unavailable {
            store: store.into(),
            reason: reason.into(),
            source: None,
        }
    }

    pub fn rejected(store: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::Rejected {
            store: store.into(),
            reason: reason.into(),
            source: None,
        }
    }

    pub fn fatal(store: impl Into<String>, reason: impl Into<String>) -> Self {
        CatalogError::Fatal {
            store: store.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The same error, caused by `e`.
    pub fn because(mut self, e: impl Into<ErrorSource>) -> Self {
        let (CatalogError::Unavailable { source, .. }
        | CatalogError::Rejected { source, .. }
        | CatalogError::Fatal { source, .. }) = &mut self;
        *source = Some(e.into());
        self
    }

    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CatalogError::Unavailable { .. })
    }
}

/// One backup store. Every write is an idempotent upsert keyed by
/// [`CatalogRecord::id`], so replaying a batch after a crash adds nothing.
///
/// `async_trait` keeps it object-safe: the indexer holds `Vec<Arc<dyn
/// Catalog>>` and writes to each in turn.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Where this store is, for log lines (`sqlite /var/lib/…`, `es uuzubackup`).
    fn describe(&self) -> String;

    /// Creates what is missing (tables, index template, indices); safe to
    /// call on every start.
    async fn prepare(&self) -> Result<(), CatalogError>;

    /// Upserts `batch` and updates the instance registry from it.
    ///
    /// Returns one outcome per record, in order. A store that writes all or
    /// nothing (SQLite) returns all `Stored` or an error; Elasticsearch
    /// answers per item. `Err` means nothing can be said about any item.
    async fn store(&self, batch: &[CatalogRecord]) -> Result<Vec<StoreOutcome>, CatalogError>;

    /// One record by its id.
    async fn get(&self, id: &str) -> Result<Option<CatalogRecord>, CatalogError>;

    /// Records matching `q`, newest `create_time` first.
    async fn list_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError>;

    /// The registry entry of one instance.
    async fn instance(&self, key: &InstanceKey) -> Result<Option<InstanceEntry>, CatalogError>;

    /// Every registered instance, ordered by (server_id, type, instance).
    async fn instances(&self) -> Result<Vec<InstanceEntry>, CatalogError>;

    /// Instances whose last success (or, if none yet, first sighting) is
    /// older than `interval + grace_ms` at `now_ms`: the overdue candidates.
    async fn overdue(
        &self,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<Vec<InstanceEntry>, CatalogError> {
        Ok(self
            .instances()
            .await?
            .into_iter()
            .filter(|e| e.is_overdue(now_ms, grace_ms))
            .collect())
    }
}
