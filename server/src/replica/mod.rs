//! Copies of every backup on other nodes (`copies` = 2 or 3), made crash
//! safe like the first copy.
//!
//! How a copy comes about:
//! 1. the node that pulled a backup acknowledges it as always, then
//!    ([`after_first_copy`]) puts a [`task::ReplicaTask`] onto the
//!    replication list of the node that should hold the next copy (another
//!    zone when one is up, see [`peers::choose_target`]);
//! 2. that node has its replication list as its lowest-priority list, so
//!    it takes the task through the same claim into its in-flight list,
//!    reaper and fenced ack as a backup message, only when no backup
//!    message is waiting, one at a time, under `replica_bwlimit`;
//! 3. [`copy`] pulls the file from the source node's read-only module,
//!    checks size and blake3 against the catalog, renames it into the
//!    same `TYPE/A.B.C/D/` place under its own `server_root_path`, records
//!    the copy in the catalog, and only then acknowledges the task;
//! 4. [`repair`] (one node at a time, every `repair_interval_secs`) finds
//!    backups with fewer good copies than wanted (a lost task, a node down
//!    longer than `repair_after_secs` or forgotten, a copy verify found
//!    bad) and queues new tasks, and publishes the count for the reporter.
//!
//! Layout: [`config`] (the keys), [`peers`] (the other nodes, where a copy
//! goes), [`task`] (the wire format and the push), [`copy`] (one task),
//! [`repair`] (the sweep).

pub mod config;
pub(crate) mod copy;
pub mod peers;
pub(crate) mod repair;
pub mod task;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ubackup_catalog::Retention;
use ubackup_common::{ResultRecord, WorkQueue};

use crate::config::ServerConfig;
use peers::Peer;

/// How long a list of the other nodes is reused before it is read again.
const PEERS_FRESH: Duration = Duration::from_secs(5);

/// What the replication parts of a running node share.
pub(crate) struct Replication {
    /// This node's replication list (its lowest-priority list).
    pub list: String,
    pub catalog: Arc<dyn Retention>,
    /// Where copies are recorded too (Elasticsearch next to SQLite).
    pub mirrors: Vec<Arc<dyn Retention>>,
    /// Replication tasks running now (at most one).
    pub running: Arc<AtomicUsize>,
    peers: Mutex<Option<(Instant, Vec<Peer>)>>,
}

impl Replication {
    pub fn new(
        list: String,
        catalog: Arc<dyn Retention>,
        mirrors: Vec<Arc<dyn Retention>>,
    ) -> Self {
        Replication {
            list,
            catalog,
            mirrors,
            running: Arc::new(AtomicUsize::new(0)),
            peers: Mutex::new(None),
        }
    }

    /// The registered nodes, at most [`PEERS_FRESH`] old.
    pub async fn peers(&self, wq: &WorkQueue) -> redis::RedisResult<Vec<Peer>> {
        if let Some((at, p)) = self.peers.lock().expect("peers lock").as_ref() {
            if at.elapsed() < PEERS_FRESH {
                return Ok(p.clone());
            }
        }
        let p = peers::nodes(&mut wq.conn(), wq.keys()).await?;
        *self.peers.lock().expect("peers lock") = Some((Instant::now(), p.clone()));
        Ok(p)
    }
}

/// The replication state of a node whose config asks for copies: the
/// catalog opened (retried until it opens or `stop`), its list named.
/// `Some(None)`: no copies asked for; `None`: stopped while opening.
pub(crate) async fn open(
    cfg: &ServerConfig,
    keys: &ubackup_common::Keys,
    mut stop: ubackup_common::shutdown::Shutdown,
) -> Option<Option<Arc<Replication>>> {
    if !cfg.replica.enabled() {
        return Some(None);
    }
    let loc = cfg
        .catalog
        .as_ref()
        .expect("the config requires a catalog with copies");
    let mut failures = 0u32;
    loop {
        let mirror = match &cfg.catalog_mirror {
            Some(m) => m.open().await.map(Some),
            None => Ok(None),
        };
        match loc.open().await.and_then(|c| mirror.map(|m| (c, m))) {
            Ok((c, m)) => {
                tracing::info!(copies = cfg.replica.copies, per_type = ?cfg.replica.per_type, zone = %cfg.replica.zone, catalog = %loc, mirror = ?cfg.catalog_mirror.as_ref().map(|m| m.to_string()), "replication on");
                let rep = Replication::new(keys.replica(&cfg.node_id), c, m.into_iter().collect());
                return Some(Some(Arc::new(rep)));
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 30 == 0 {
                    tracing::warn!(
                        "replication: cannot open the catalog {loc} yet ({failures} tries): {e}"
                    );
                }
                if stop.sleep(Duration::from_secs(1)).await {
                    return None;
                }
            }
        }
    }
}

/// What the node publishes in its state hash for the others: its zone
/// always, its module only when it takes replication tasks.
pub(crate) fn advertised(cfg: &ServerConfig, replicates: bool) -> Vec<(&'static str, String)> {
    use ubackup_common::keys::state;
    let mut v = vec![(state::ZONE, cfg.replica.zone.clone())];
    if replicates {
        v.push((state::MODULE, cfg.replica.module.clone()));
        v.push((state::MODULE_PORT, cfg.replica.module_port.to_string()));
        v.push((
            state::MODULE_TLS_PORT,
            cfg.replica.module_tls_port.to_string(),
        ));
    }
    v
}

/// After the fenced ack of a landed first copy: queues the task for the
/// second copy, when this backup's type wants one. A failure here loses
/// nothing: the repair sweep finds the backup under-replicated.
pub(crate) async fn after_first_copy(
    cfg: &ServerConfig,
    rep: &Replication,
    wq: &WorkQueue,
    result: &ResultRecord,
) {
    if result.succeed != 1 || cfg.replica.copies_for(&result.back_type) < 2 {
        return;
    }
    let Some(task) = task::ReplicaTask::first_copy(result, &cfg.node_id) else {
        return;
    };
    let peers = match rep.peers(wq).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(id = %task.id, "cannot read the other nodes to queue a second copy ({e}); the repair sweep will");
            return;
        }
    };
    let Some(target) = peers::choose_target(
        &task.id,
        &peers,
        &[cfg.node_id.as_str()],
        &[cfg.replica.zone.as_str()],
    ) else {
        tracing::warn!(id = %task.id, file = %task.rel_path, "no other node is up to take a second copy; the repair sweep will queue it");
        return;
    };
    match task::push(&mut wq.conn(), wq.keys(), &target.node, &task).await {
        Ok(_) => {
            tracing::debug!(id = %task.id, to = %target.node, zone = %target.zone, "second copy queued")
        }
        Err(e) => {
            tracing::warn!(id = %task.id, to = %target.node, "cannot queue the second copy ({e}); the repair sweep will")
        }
    }
}
