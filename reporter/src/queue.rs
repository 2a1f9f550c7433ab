//! `queue`: the depth of every list as samples, and the latest depths in
//! the hash `Keys::queue_depths` (list → depth, plus `time_ms`).

use ubackup_catalog::{QueueSample, Sample};
use ubackup_common::Keys;
use ubackup_common::RedisConn;

use crate::cluster::QueueView;

pub fn samples(view: &QueueView, time_ms: i64) -> Vec<Sample> {
    view.lists
        .iter()
        .map(|l| {
            Sample::Queue(QueueSample {
                time_ms,
                list: l.list.clone(),
                kind: l.kind,
                queue: l.queue.clone(),
                worker: l.worker.clone(),
                depth: l.depth,
                oldest_age_ms: l.oldest_age_ms,
            })
        })
        .collect()
}

/// Replaces the hash of latest depths in one atomic step.
pub async fn publish(
    conn: &mut RedisConn,
    keys: &Keys,
    view: &QueueView,
    time_ms: i64,
) -> redis::RedisResult<()> {
    let mut fields: Vec<(String, String)> = view
        .lists
        .iter()
        .map(|l| (l.list.clone(), l.depth.to_string()))
        .collect();
    fields.push(("time_ms".into(), time_ms.to_string()));
    redis::pipe()
        .atomic()
        .del(keys.queue_depths())
        .ignore()
        .cmd("HSET")
        .arg(keys.queue_depths())
        .arg(&fields)
        .ignore()
        .query_async::<()>(conn)
        .await
}
