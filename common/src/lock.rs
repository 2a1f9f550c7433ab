//! Expiring Redis locks with an owner (`lua/lock.lua`): one node at a time
//! does something (the repair sweep, the copy of one backup). A holder
//! that dies leaves the lock to expire; a long holder refreshes it; the
//! same owner may take it again (its own earlier run crashed).

use std::time::Duration;

use crate::redis_conn::RedisConn;

async fn call(
    conn: &mut RedisConn,
    key: &str,
    owner: &str,
    mode: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let n: i64 = redis::Script::new(include_str!("../lua/lock.lua"))
        .key(key)
        .arg(owner)
        .arg(mode)
        .arg((ttl.as_millis() as u64).max(1))
        .invoke_async(conn)
        .await?;
    Ok(n == 1)
}

/// Takes `key` for `owner` when it is free or already `owner`'s.
pub async fn take(
    conn: &mut RedisConn,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    call(conn, key, owner, "take", ttl).await
}

/// Extends `owner`'s lock to `ttl` from now. `Ok(false)`: no longer its own.
pub async fn refresh(
    conn: &mut RedisConn,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    call(conn, key, owner, "refresh", ttl).await
}

/// Releases `key` if `owner` still holds it.
pub async fn release(conn: &mut RedisConn, key: &str, owner: &str) -> redis::RedisResult<bool> {
    call(conn, key, owner, "release", Duration::from_millis(1)).await
}
