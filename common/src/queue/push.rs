//! A client's push onto a priority list, at most once per message id
//! (`lua/push_once.lua`): the message is LPUSHed and an expiring marker for
//! its id is set in one atomic step, or nothing happens if the marker
//! exists, so a resend of a push whose outcome was unknown is not queued
//! twice. Under `redis_min_replicas` a push is done only once `WAIT`
//! confirmed it on the replicas.

use crate::redis_conn::RedisConn;

use super::script;
use crate::keys::Keys;

/// Pushes `payload` (message `id`) onto `queue` unless a push of that id
/// landed within `marker_ttl_secs`. `Ok(true)`: pushed now; `Ok(false)`: an
/// earlier push had landed, nothing was pushed.
pub async fn push_once(
    conn: &mut RedisConn,
    keys: &Keys,
    id: &str,
    queue: &str,
    payload: &str,
    marker_ttl_secs: u64,
) -> redis::RedisResult<bool> {
    let mark = conn.mark();
    let n: i64 = redis::Script::new(script::PUSH_ONCE)
        .key(keys.sent(id))
        .key(queue)
        .arg(payload)
        .arg(marker_ttl_secs)
        .invoke_async(conn)
        .await?;
    // With redis_min_replicas a push counts only once replicas have it; an
    // error keeps the message in the caller's spool, and the resend finds
    // the marker (if the push survived) or pushes again (if a failover
    // lost both).
    conn.confirm(mark, &keys.replication_probe())
        .await
        .map_err(|u| u.into_redis_error())?;
    Ok(n == 1)
}
