//! One consistent read of everything `status`, `alerts` and `/metrics`
//! need: Redis (nodes, lists) and the catalog (registry, newest result per
//! instance, the last 24 h).
//!
//! Redis must answer (it is the cluster); a catalog that fails is recorded
//! in `catalog_error` so the Redis half is still shown, and the alerts say
//! what could not be evaluated.

use std::sync::Arc;

use serde::Serialize;
use ubackup_catalog::{
    CatalogRecord, EsCatalog, InstanceEntry, Reports, SqliteCatalog, WindowStats,
};
use ubackup_common::message::now_ms;
use ubackup_common::RedisConn;
use ubackup_common::RedisTarget;

use crate::cluster::{self, NodeView, QueueSources, QueueView};
use crate::config::ReporterConfig;
use crate::error::ReporterError;

/// The window of "last 24 h".
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Connections and stores, opened once per run (or once per `serve`).
pub struct Sources {
    pub cfg: ReporterConfig,
    pub redis_target: RedisTarget,
    pub redis: RedisConn,
    /// Only when `message_queue` is on another Redis.
    pub message_redis: Option<RedisConn>,
    /// Every configured store (samples go to all of them).
    pub stores: Vec<Arc<dyn Reports>>,
    /// The SQLite store again, for what only it does (pruning samples).
    pub sqlite: Option<SqliteCatalog>,
    /// Why a configured store could not be opened.
    pub store_errors: Vec<String>,
}

impl Sources {
    /// Connects to Redis (an error here is exit 3) and opens the stores
    /// the config names (`need_catalog`: at least one must be configured).
    pub async fn open(cfg: ReporterConfig, need_catalog: bool) -> Result<Self, ReporterError> {
        Self::open_with(cfg, need_catalog, true).await
    }

    /// As [`Sources::open`]; `lists: false` skips the message Redis (for
    /// `disk`, which reads no list).
    pub async fn open_with(
        cfg: ReporterConfig,
        need_catalog: bool,
        lists: bool,
    ) -> Result<Self, ReporterError> {
        let targets = if need_catalog {
            cfg.require_catalog()?
        } else {
            cfg.catalog_targets()?
        };
        let redis_target = cfg.redis()?;
        let message_target = if lists {
            Some(cfg.message_redis()?)
        } else {
            None
        };
        let redis = connect(&redis_target).await?;
        let message_redis = match message_target {
            Some(t) if !t.same_server(&redis_target) => Some(connect(&t).await?),
            _ => None,
        };
        let mut stores: Vec<Arc<dyn Reports>> = Vec::new();
        let mut store_errors = Vec::new();
        let mut sqlite = None;
        if let Some(path) = targets.sqlite.clone() {
            match tokio::task::spawn_blocking(move || SqliteCatalog::open(&path)).await {
                Ok(Ok(c)) => {
                    sqlite = Some(c.clone());
                    stores.push(Arc::new(c));
                }
                Ok(Err(e)) => store_errors.push(e.to_string()),
                Err(e) => store_errors.push(format!("opening the SQLite catalog failed: {e}")),
            }
        }
        if let Some(es) = &targets.es {
            match EsCatalog::new(es) {
                Ok(c) => stores.push(Arc::new(c)),
                Err(e) => store_errors.push(e.to_string()),
            }
        }
        Ok(Sources {
            cfg,
            redis_target,
            redis,
            message_redis,
            stores,
            sqlite,
            store_errors,
        })
    }

    /// The store queries go to: SQLite when configured (exact, one SQL
    /// statement per question), else Elasticsearch.
    pub fn query_store(&self) -> Option<&Arc<dyn Reports>> {
        self.stores.first()
    }

    /// Nodes and lists only (Redis).
    pub async fn cluster(&mut self, now: i64) -> Result<(Vec<NodeView>, QueueView), ReporterError> {
        let keys = self.cfg.keys.clone();
        let target = self.redis_target.to_string();
        let redis_err = |e| ReporterError::Redis {
            target: target.clone(),
            source: e,
        };
        let nodes = cluster::read_nodes(&mut self.redis, &keys, now)
            .await
            .map_err(redis_err)?;
        let configured = self.cfg.queues();
        let mq = self.cfg.message_queue();
        let src = QueueSources {
            configured: &configured,
            message_queue: &mq,
            message_conn: self.message_redis.as_mut(),
        };
        let queues = cluster::read_queues(&mut self.redis, &keys, &nodes, src, now)
            .await
            .map_err(redis_err)?;
        Ok((nodes, queues))
    }

    /// Everything, now.
    pub async fn snapshot(&mut self) -> Result<Snapshot, ReporterError> {
        let now = now_ms();
        let (nodes, queues) = self.cluster(now).await?;
        let mut snap = Snapshot {
            now_ms: now,
            redis: self.redis_target.to_string(),
            nodes,
            queues,
            catalog: self.query_store().map(|s| s.describe()),
            catalog_error: None,
            instances: Vec::new(),
            latest: Vec::new(),
            window: None,
            slowest: Vec::new(),
            verify_failures: Vec::new(),
            replication: None,
            redis_view: None,
        };
        // shown, not required: a Redis whose ACL forbids INFO still works
        snap.redis_view = crate::redis_view::read(&mut self.redis, &self.redis_target)
            .await
            .ok();
        snap.replication = cluster::read_replication(&mut self.redis, &self.cfg.keys)
            .await
            .map_err(|e| ReporterError::Redis {
                target: self.redis_target.to_string(),
                source: e,
            })?;
        let Some(store) = self.query_store().cloned() else {
            snap.catalog_error = Some(if self.store_errors.is_empty() {
                "no catalog configured".into()
            } else {
                self.store_errors.join("; ")
            });
            return Ok(snap);
        };
        let n = self.cfg.thresholds.slowest_pulls;
        let read = async {
            let instances = store.instances().await?;
            let latest = store.latest_records().await?;
            let window = store.window_stats(now - WINDOW_MS, now + 1).await?;
            let slowest = if n > 0 {
                store.slowest_pulls(now - WINDOW_MS, now + 1, n).await?
            } else {
                Vec::new()
            };
            let verify_failures = store.verify_failures().await?;
            Ok::<_, ubackup_catalog::CatalogError>((
                instances,
                latest,
                window,
                slowest,
                verify_failures,
            ))
        };
        match read.await {
            Ok((instances, latest, window, slowest, verify_failures)) => {
                snap.verify_failures = verify_failures;
                snap.instances = instances;
                snap.latest = latest;
                snap.window = Some(window);
                snap.slowest = slowest;
            }
            Err(e) => snap.catalog_error = Some(format!("{}: {e}", store.describe())),
        }
        Ok(snap)
    }
}

async fn connect(t: &RedisTarget) -> Result<RedisConn, ReporterError> {
    let conn = t.manager().await.map_err(|e| ReporterError::Redis {
        target: t.to_string(),
        source: e,
    })?;
    // The manager connects lazily on some errors; make sure Redis answers.
    let mut c = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut c)
        .await
        .map_err(|e| ReporterError::Redis {
            target: t.to_string(),
            source: e,
        })?;
    Ok(conn)
}

/// One read of the cluster and the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub now_ms: i64,
    pub redis: String,
    pub nodes: Vec<NodeView>,
    pub queues: QueueView,
    /// The store queried, if any.
    pub catalog: Option<String>,
    /// Set when the catalog could not be read: instance alerts and the
    /// 24 h figures are then unknown, not zero.
    pub catalog_error: Option<String>,
    #[serde(skip)]
    pub instances: Vec<InstanceEntry>,
    #[serde(skip)]
    pub latest: Vec<CatalogRecord>,
    pub window: Option<WindowStats>,
    #[serde(skip)]
    pub slowest: Vec<CatalogRecord>,
    /// Stored files `verify` found missing or corrupt.
    #[serde(skip)]
    pub verify_failures: Vec<CatalogRecord>,
    /// What the nodes' last repair sweep found (`copies` > 1); `None`
    /// when no node replicates.
    pub replication: Option<cluster::ReplicationView>,
    /// The master, its replicas and the sentinels (None: INFO refused).
    pub redis_view: Option<crate::redis_view::RedisView>,
}
