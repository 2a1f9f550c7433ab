//! A replication task on the wire: JSON on `<prefix>replica:<node>`, the
//! list of the node that should make the copy.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ubackup_common::message::now_ms;
use ubackup_common::queue::push::push_once;
use ubackup_common::RedisConn;
use ubackup_common::{Keys, ResultRecord};
use ubackup_transport::source::dest_dir;

/// A pushed task is not pushed again (by a repair sweep, or a replayed
/// ack) for this long: the copy is usually made well within it, and a
/// duplicate that comes later finds the copy there and is acknowledged.
pub const PUSH_MARKER_SECS: u64 = 900;

/// Make one more copy of backup `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaTask {
    /// The catalog record id (`ResultRecord::record_id`).
    pub id: String,
    #[serde(rename = "type")]
    pub back_type: String,
    /// `TYPE/A.B.C/D/name`: the file inside every node's module, and under
    /// every node's `server_root_path`.
    pub rel_path: String,
    /// The node whose copy to pull first.
    pub from: String,
    /// `first copy` or `repair: <why>`.
    pub why: String,
    pub queued_ms: i64,
}

impl ReplicaTask {
    /// The task for the second copy of a result this node just landed.
    pub fn first_copy(r: &ResultRecord, node_id: &str) -> Option<ReplicaTask> {
        Some(ReplicaTask {
            id: r.record_id(),
            back_type: r.back_type.clone(),
            rel_path: rel_path(r)?,
            from: node_id.to_string(),
            why: "first copy".into(),
            queued_ms: now_ms(),
        })
    }
}

/// `TYPE/A.B.C/D/name` of a result's file, `None` when it names none.
pub fn rel_path(r: &ResultRecord) -> Option<String> {
    let name = r.filename.as_deref()?.rsplit('/').next()?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let host: IpAddr = r.game_server_ip.trim().parse().ok()?;
    let dir = dest_dir(Path::new(""), &r.back_type, host);
    Some(format!("{}/{name}", dir.display()))
}

/// The push marker's id of a task for backup `id` on `node`.
pub fn marker_id(id: &str, node: &str) -> String {
    format!("replica:{id}:{node}")
}

/// Lets the next push for (`id`, `node`) through: called when the task
/// ended, so a repair sweep that still finds the backup short (the copy
/// failed, or the target judged with other information) queues it again at
/// once rather than after [`PUSH_MARKER_SECS`].
pub async fn clear_marker(
    conn: &mut RedisConn,
    keys: &Keys,
    id: &str,
    node: &str,
) -> redis::RedisResult<()> {
    redis::cmd("DEL")
        .arg(keys.sent(&marker_id(id, node)))
        .query_async(conn)
        .await
}

/// Pushes `task` onto `node`'s list, at most once per
/// [`PUSH_MARKER_SECS`] for one (backup, node). `Ok(false)`: already queued.
pub async fn push(
    conn: &mut RedisConn,
    keys: &Keys,
    node: &str,
    task: &ReplicaTask,
) -> redis::RedisResult<bool> {
    let json = serde_json::to_string(task).expect("a task serializes");
    push_once(
        conn,
        keys,
        &marker_id(&task.id, node),
        &keys.replica(node),
        &json,
        PUSH_MARKER_SECS,
    )
    .await
}
