//! Results from a node's outbox (on the queue Redis) to the results list on
//! another Redis. One Lua script cannot span two servers, so this is two
//! commands: LPUSH there first, then LREM here. A crash between the two
//! sends a result twice, which is harmless because the indexer stores it
//! under a deterministic record id; a result is never lost.

use crate::redis_conn::RedisConn;

use crate::redis_conn::RedisTarget;

/// Results per forwarding round.
pub const BATCH: isize = 200;

/// One round: the oldest results of `outbox` pushed onto `message_queue` at
/// `message` in their original order, then removed from `outbox`. Connects
/// `target` to `message` when it is not connected yet. Returns how many
/// results moved (0: the outbox was empty).
pub async fn forward_once(
    queue: &RedisConn,
    target: &mut Option<RedisConn>,
    message: &RedisTarget,
    outbox: &str,
    message_queue: &str,
) -> redis::RedisResult<u64> {
    let mut q = queue.clone();
    // LPUSHed on the left: the rightmost are the oldest
    let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(outbox)
        .arg(-BATCH)
        .arg(-1)
        .query_async(&mut q)
        .await?;
    if items.is_empty() {
        return Ok(0);
    }
    if target.is_none() {
        *target = Some(message.manager().await?);
    }
    let t = target.as_mut().expect("just set");
    let mut push = redis::cmd("LPUSH");
    push.arg(message_queue);
    for item in items.iter().rev() {
        push.arg(item);
    }
    let mark = t.mark();
    push.query_async::<()>(t).await?;
    // under message_redis_min_replicas the outbox copy stays until the
    // results Redis's replicas have the pushed one
    t.confirm(mark, &crate::keys::replication_probe_beside(message_queue))
        .await
        .map_err(|u| u.into_redis_error())?;
    // Remove exactly what was pushed, one occurrence each from the old end:
    // results added meanwhile on the left are untouched, and a concurrent
    // forwarder (a zombie's, a reaper's) can only cause a duplicate.
    let mut del = redis::pipe();
    for item in &items {
        del.cmd("LREM").arg(outbox).arg(-1).arg(item).ignore();
    }
    del.query_async::<()>(&mut q).await?;
    Ok(items.len() as u64)
}
