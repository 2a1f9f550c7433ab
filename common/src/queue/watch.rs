//! Waiting for a list to get an item without taking it.
//!
//! `BLMOVE list list RIGHT RIGHT` blocks until the list has an item and then
//! moves that item from the pop end back onto the pop end, which leaves the
//! list exactly as it was. So a watcher never holds or moves a message
//! (nothing to lose or re-queue if it is cancelled or its reply is lost);
//! taking stays the pop script's job, in priority order.

use redis::aio::MultiplexedConnection;

/// Waits up to `block_secs` (server side) for `list` to hold an item.
/// True: it has one; false: the wait timed out. `conn` must be a blocking
/// connection ([`RedisTarget::blocking_connection`](crate::RedisTarget::blocking_connection)).
pub async fn wait_for_item(
    conn: &mut MultiplexedConnection,
    list: &str,
    block_secs: f64,
) -> redis::RedisResult<bool> {
    let got: Option<Vec<u8>> = redis::cmd("BLMOVE")
        .arg(list)
        .arg(list)
        .arg("RIGHT")
        .arg("RIGHT")
        .arg(block_secs)
        .query_async(conn)
        .await?;
    Ok(got.is_some())
}
