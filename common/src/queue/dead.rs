//! Dead-letter lists (`<queue>:dead`) as an operator reads and changes
//! them. Elements are handled as raw bytes: requeueing and dropping match
//! the exact element, so an entry that moved or went meanwhile is simply
//! not found, and nothing is lost or pushed twice.

use crate::redis_conn::RedisConn;

use super::script;

/// The length of `list` and its first `count` elements (newest first).
pub async fn page(
    conn: &mut RedisConn,
    list: &str,
    count: usize,
) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
    redis::pipe()
        .llen(list)
        .lrange(list, 0, count as isize - 1)
        .query_async(conn)
        .await
}

/// Every element of `list`, newest first.
pub async fn all(conn: &mut RedisConn, list: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
    redis::cmd("LRANGE")
        .arg(list)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
}

/// Moves the dead-letter element `raw` of `list` back onto `queue` as
/// `payload` (the original message), in one step (`lua/requeue_dead.lua`).
/// False: it was no longer there; nothing was pushed.
pub async fn requeue(
    conn: &mut RedisConn,
    list: &str,
    queue: &str,
    raw: &[u8],
    payload: &str,
) -> redis::RedisResult<bool> {
    let n: i64 = redis::Script::new(script::REQUEUE_DEAD)
        .key(list)
        .key(queue)
        .arg(raw)
        .arg(payload)
        .invoke_async(conn)
        .await?;
    Ok(n == 1)
}

/// Removes the element `raw` from `list`. False: it was no longer there.
pub async fn drop(conn: &mut RedisConn, list: &str, raw: &[u8]) -> redis::RedisResult<bool> {
    let n: i64 = redis::cmd("LREM")
        .arg(list)
        .arg(1)
        .arg(raw)
        .query_async(conn)
        .await?;
    Ok(n == 1)
}
