//! Forgetting a worker that is gone for good (`lua/forget.lua`).

use crate::redis_conn::RedisConn;

use super::script;
use crate::keys::Keys;

/// What [`forget_worker`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// Removed from the workers set; its state and control hashes deleted.
    Forgotten,
    /// Nothing was known of that worker.
    Unknown,
    /// Refused: its heartbeat is live.
    Alive,
    /// Refused: this many items are still in its in-flight lists (a live
    /// worker's reaper re-queues them once its heartbeat has expired).
    InFlight(u64),
    /// Refused: this many results wait in its outbox.
    Outbox(u64),
}

/// Forgets a worker that is gone for good (see `lua/forget.lua`): refused
/// while it is alive or still holds messages or results. Its in-flight
/// lists are found by SCAN (`<prefix>inflight:<worker>:*`), so lists of
/// queues it no longer names in its state hash count too.
pub async fn forget_worker(
    conn: &mut RedisConn,
    keys: &Keys,
    worker: &str,
) -> redis::RedisResult<Forget> {
    // `<prefix>inflight:<worker>:` taken literally inside the pattern
    let mut pattern = String::new();
    for c in keys.inflight(worker, "").chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    let mut lists: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        lists.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    lists.sort();
    lists.dedup();
    let script = redis::Script::new(script::FORGET);
    let mut inv = script.prepare_invoke();
    inv.key(keys.alive(worker))
        .key(keys.workers())
        .key(keys.state(worker))
        .key(keys.control(worker))
        .key(keys.outbox(worker));
    for l in &lists {
        inv.key(l);
    }
    inv.arg(worker);
    let (code, n): (i64, u64) = inv.invoke_async(conn).await?;
    Ok(match code {
        1 => Forget::Forgotten,
        0 => Forget::Unknown,
        -1 => Forget::Alive,
        -2 => Forget::InFlight(n),
        _ => Forget::Outbox(n),
    })
}
