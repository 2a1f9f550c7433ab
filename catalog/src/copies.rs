//! Copies of a backup on other nodes (`copies` > 1 in the nodes' config).
//!
//! The first copy is the node that pulled the file: the result itself says
//! where it is (`node_id`/`back_server_ip`, `file_path`, `filename`), as it
//! always did, so original tools and Kibana queries see nothing new. Every
//! further copy is a [`CopyRecord`] the catalog keeps next to the record
//! (SQLite: the `copies` table; Elasticsearch: the `copies` object of the
//! document, one field per node). A copy record of the first copy's own
//! node overrides what the result implies (e.g. `lost` after the node was
//! forgotten, `corrupt` after verify), so the result is never rewritten.
//! The record's own view of its copies (`CatalogRecord::copies`) is in
//! `crate::record`.

use serde::{Deserialize, Serialize};

/// `state` of a copy.
pub mod state {
    /// On disk and verified (at landing, or by the last `verify`).
    pub const OK: &str = "ok";
    /// `verify` found no file at the path.
    pub const MISSING: &str = "missing";
    /// `verify` found the wrong size or checksum.
    pub const CORRUPT: &str = "corrupt";
    /// Its node was forgotten (`ubackup-reporter forget-node`) or lost.
    pub const LOST: &str = "lost";
    /// Pruned from its node.
    pub const DELETED: &str = "deleted";
}

/// Where one copy of a backup is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRecord {
    /// `node_id` of the node holding it.
    pub node: String,
    /// That node's address (its `myip`).
    pub ip: String,
    /// The node's `zone` (empty when not known: first copies of results).
    #[serde(default)]
    pub zone: String,
    /// The file on that node: `server_root_path/TYPE/A.B.C/D/name`.
    pub file_path: String,
    /// One of [`state`].
    pub state: String,
    /// Unix ms the copy was landed and recorded.
    pub recorded_at: i64,
    /// Unix ms of its last verification, when there was one after landing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<i64>,
}

impl CopyRecord {
    /// On disk and verified: restore may use it, repair may copy from it.
    pub fn is_good(&self) -> bool {
        self.state == state::OK
    }
}
