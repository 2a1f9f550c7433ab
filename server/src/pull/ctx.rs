//! What every pull shares with the dispatcher that started it: the config
//! in force, the queue, where results go, the disk reserve, the temp area,
//! the node's counters, and the two shutdown stages.

use std::sync::Arc;

use tokio::sync::watch;
use ubackup_common::shutdown::Shutdown;
use ubackup_common::WorkQueue;
use ubackup_transport::TempArea;

use crate::config::ServerConfig;
use crate::disk::DiskReserve;
use crate::node::NodeStatus;
use crate::replica::Replication;
use crate::results::ResultSink;

/// What every job shares.
pub(crate) struct Ctx {
    pub cfg: watch::Receiver<Arc<ServerConfig>>,
    pub wq: WorkQueue,
    pub sink: ResultSink,
    pub disk: DiskReserve,
    pub tmp: TempArea,
    pub status: Arc<NodeStatus>,
    /// Tripped by SIGTERM: stop popping, no new attempts.
    pub stop: Shutdown,
    /// Tripped when the drain deadline passes: kill running rsyncs.
    pub abort: Shutdown,
    /// Set when the config asks for copies (see `crate::replica`).
    pub replica: Option<Arc<Replication>>,
    /// The node's deep look at its lists, for batches (`super::window`).
    pub lookahead: super::window::LookAhead,
}

impl Ctx {
    /// The config in force now (SIGHUP replaces it).
    pub fn cfg(&self) -> Arc<ServerConfig> {
        self.cfg.borrow().clone()
    }
}
