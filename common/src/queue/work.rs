//! A worker's view of its lists: take, claim, acknowledge, dead-letter,
//! release and re-queue, plus the heartbeat that tells others it is alive.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::redis_conn::RedisConn;
use serde::{Deserialize, Serialize};

use super::script;
use crate::keys::Keys;
use crate::message::now_ms;
use crate::redis_conn::RedisTarget;

/// Interruptions after which an item is treated as poison.
pub const DEFAULT_MAX_INTERRUPTIONS: u32 = 3;

/// One item taken from a list, still held in the worker's in-flight list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The priority list it came from.
    pub queue: String,
    /// The raw element, byte for byte (needed to fence the ack).
    pub payload: String,
}

/// An element of a `<queue>:dead` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The raw message, unchanged, so it can be pushed back as it was.
    pub payload: String,
    pub reason: String,
    /// Unix ms.
    pub time: i64,
    pub node: String,
    pub queue: String,
}

/// Why a worker's in-flight items are being put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Own items found at start: the previous run crashed. Counts.
    Restart,
    /// Graceful shutdown: not an interruption of the message's fault.
    Drain,
    /// Another worker whose heartbeat expired. Counts; skipped if alive.
    Expired,
}

impl Requeue {
    fn mode(self) -> &'static str {
        match self {
            Requeue::Restart => "restart",
            Requeue::Drain => "drain",
            Requeue::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequeueOutcome {
    pub requeued: u64,
    pub dead_lettered: u64,
}

/// A worker's view of its lists. Cheap to clone; clones share the
/// reconnecting connection.
#[derive(Clone)]
pub struct WorkQueue {
    keys: Keys,
    worker: String,
    queues: Vec<String>,
    target: RedisTarget,
    conn: RedisConn,
    max_interruptions: u32,
    pop: redis::Script,
    ack: redis::Script,
    requeue: redis::Script,
    dead_letter: redis::Script,
    release: redis::Script,
    claim: redis::Script,
}

/// Retries of one write waiting for its replicas (`WorkQueue::settled`).
struct Settling {
    tries: u32,
    backoff: crate::backoff::Backoff,
}

impl Settling {
    fn new() -> Self {
        Settling {
            tries: 0,
            backoff: crate::backoff::Backoff::new(
                Duration::from_millis(100),
                Duration::from_secs(5),
            ),
        }
    }
}

/// A dedicated connection for one blocking waiter. Blocking commands hold
/// their connection, so each concurrent waiter needs its own.
#[derive(Default)]
pub struct Waiter {
    conn: Option<MultiplexedConnection>,
}

impl WorkQueue {
    /// Connects and registers `worker` (its queues are recorded in its state
    /// hash so that another worker can re-queue its items after it dies).
    pub async fn connect(
        target: &RedisTarget,
        keys: Keys,
        worker: &str,
        queues: Vec<String>,
    ) -> redis::RedisResult<Self> {
        assert!(!queues.is_empty(), "a work queue needs at least one list");
        let mut conn = target.manager().await?;
        let wq = WorkQueue {
            keys,
            worker: worker.to_string(),
            queues,
            target: target.clone(),
            conn: conn.clone(),
            max_interruptions: DEFAULT_MAX_INTERRUPTIONS,
            pop: redis::Script::new(script::POP),
            ack: redis::Script::new(script::ACK),
            requeue: redis::Script::new(script::REQUEUE),
            dead_letter: redis::Script::new(script::DEAD_LETTER),
            release: redis::Script::new(script::RELEASE),
            claim: redis::Script::new(script::CLAIM),
        };
        redis::pipe()
            .atomic()
            .sadd(wq.keys.workers(), worker)
            .hset(wq.keys.state(worker), "queues", wq.queues.join(" "))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(wq)
    }

    pub fn with_max_interruptions(mut self, n: u32) -> Self {
        self.max_interruptions = n.max(1);
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn worker(&self) -> &str {
        &self.worker
    }
    pub fn queues(&self) -> &[String] {
        &self.queues
    }
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    fn inflight(&self, queue: &str) -> String {
        self.keys.inflight(&self.worker, queue)
    }

    /// Takes up to `max` items without waiting, strictly by priority.
    pub async fn try_take(&self, max: usize) -> redis::RedisResult<Vec<Taken>> {
        self.take_from(&self.queues, max).await
    }

    /// Like [`try_take`](Self::try_take), from every list but the last (a
    /// node's replication list, while its one replication slot is busy).
    pub async fn try_take_above_last(&self, max: usize) -> redis::RedisResult<Vec<Taken>> {
        let n = self.queues.len().saturating_sub(1).max(1);
        self.take_from(&self.queues[..n], max).await
    }

    /// Like [`try_take`](Self::try_take), from the top-priority list only
    /// (a node's express slot for `level1` messages, used while all its
    /// workers are busy with lower lists).
    pub async fn try_take_top(&self, max: usize) -> redis::RedisResult<Vec<Taken>> {
        self.take_from(&self.queues[..1], max).await
    }

    /// Up to `max` items from `queues` (a prefix of this worker's lists).
    async fn take_from(&self, queues: &[String], max: usize) -> redis::RedisResult<Vec<Taken>> {
        let mut inv = self.pop.prepare_invoke();
        for q in queues {
            inv.key(q);
        }
        for q in queues {
            inv.key(self.inflight(q));
        }
        inv.arg(max.max(1));
        // Read as raw values: a reply that fails to convert has still been
        // moved, and the caller must see every item (CRATES.md).
        let flat: Vec<redis::Value> = inv.invoke_async(&mut self.conn.clone()).await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(idx), Some(item)) = (it.next(), it.next()) {
            let idx: usize = redis::from_redis_value(idx)?;
            let bytes = match item {
                redis::Value::BulkString(b) => b,
                other => redis::from_redis_value::<String>(other)?.into_bytes(),
            };
            if let Some(t) = self.accept(&queues[idx - 1], bytes).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// A moved element as a `Taken`. An element that is not UTF-8 could
    /// never be acknowledged (the fenced scripts match the exact bytes, and
    /// `Taken` holds text), so it is dead-lettered here with the reason and
    /// not returned; the dead letter holds a lossy copy of it.
    async fn accept(&self, queue: &str, bytes: Vec<u8>) -> redis::RedisResult<Option<Taken>> {
        let err = match String::from_utf8(bytes) {
            Ok(payload) => {
                return Ok(Some(Taken {
                    queue: queue.to_string(),
                    payload,
                }))
            }
            Err(e) => e,
        };
        let entry = DeadLetter {
            payload: String::from_utf8_lossy(err.as_bytes()).into_owned(),
            reason: format!(
                "not UTF-8 text (invalid byte at offset {}); payload shown with replacement characters",
                err.utf8_error().valid_up_to()
            ),
            time: now_ms(),
            node: self.worker.clone(),
            queue: queue.to_string(),
        };
        let entry = serde_json::to_string(&entry).expect("DeadLetter serializes");
        let _: i64 = self
            .dead_letter
            .key(self.inflight(queue))
            .key(self.keys.dead(queue))
            .key(self.keys.dead(queue)) // no result: nothing in it is readable
            .key(self.keys.attempts())
            .arg(err.as_bytes())
            .arg(entry)
            .arg("")
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(None)
    }

    /// Takes up to `max` items, waiting up to `block` for one to arrive.
    /// A push to the top list wakes the waiter at once; lower lists are
    /// checked when the wait ends, so their pickup latency is at most
    /// `block` (plus the time to run the pop script).
    ///
    /// Cancel-safe for the queue: if the future is dropped mid-wait, a moved
    /// item is in this worker's in-flight list and is re-queued on drain or
    /// restart.
    pub async fn take(
        &self,
        waiter: &mut Waiter,
        max: usize,
        block: Duration,
    ) -> redis::RedisResult<Vec<Taken>> {
        let got = self.try_take(max).await?;
        if !got.is_empty() {
            return Ok(got);
        }
        if waiter.conn.is_none() {
            waiter.conn = Some(self.target.blocking_connection().await?);
        }
        let conn = waiter.conn.as_mut().expect("just set");
        let top = &self.queues[0];
        let moved: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("BLMOVE")
            .arg(top)
            .arg(self.inflight(top))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block.as_secs_f64().max(0.01))
            .query_async(conn)
            .await;
        match moved {
            Ok(Some(item)) => {
                let mut got: Vec<Taken> = self.accept(top, item).await?.into_iter().collect();
                if max > got.len() {
                    got.extend(self.try_take(max - got.len()).await?);
                }
                Ok(got)
            }
            Ok(None) => self.try_take(max).await,
            Err(e) => {
                waiter.conn = None;
                Err(e)
            }
        }
    }

    /// Acknowledges items, pushing each one's result (if any) onto
    /// `result_list` in the same atomic step. Returns, per item, whether it
    /// was still ours (false = fenced off, nothing was pushed).
    ///
    /// Under `redis_min_replicas` it returns only once the replicas have
    /// the ack (see [`settle`](Self::settle)): until then the caller holds
    /// the items as not done.
    pub async fn ack(
        &self,
        items: &[(&Taken, Option<&str>)],
        result_list: &str,
    ) -> redis::RedisResult<Vec<bool>> {
        self.write_confirmed(
            "ack",
            items.len(),
            || self.ack_now(items, result_list),
            |out: &mut Vec<bool>, again| out.iter_mut().zip(again).for_each(|(o, a)| *o |= a),
        )
        .await
    }

    /// Makes a fenced write and returns once [`settled`](Self::settled)
    /// says the replicas have it; after a failover cut it off, makes it
    /// again on the new master and `merge`s that outcome into the first.
    async fn write_confirmed<T, F, Fut>(
        &self,
        what: &str,
        items: usize,
        mut write: F,
        merge: impl Fn(&mut T, T),
    ) -> redis::RedisResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut mark = self.conn.mark();
        let mut out = write().await?;
        let mut waiting = Settling::new();
        while !self.settled(mark, what, items, &mut waiting).await {
            mark = self.conn.mark();
            match write().await {
                Ok(again) => merge(&mut out, again),
                Err(e) => {
                    tracing::warn!(worker = %self.worker, error = %e, "{what} again on the new Redis master failed; retrying")
                }
            }
        }
        Ok(out)
    }

    /// Waits until the write made after `mark` is confirmed on the
    /// replicas `redis_min_replicas` asks for (at once when it is 0),
    /// retrying with backoff and saying so in the log. False when the
    /// master changed meanwhile (a failover): the write may be missing
    /// there, so the caller makes it again. Every write this is used for is
    /// fenced (an item no longer in our in-flight list is not acked twice),
    /// so a redo of a write that did survive changes nothing.
    async fn settled(
        &self,
        mark: crate::redis_conn::WriteMark,
        what: &str,
        items: usize,
        waiting: &mut Settling,
    ) -> bool {
        let probe = self.keys.replication_probe();
        loop {
            match self.conn.confirm(mark, &probe).await {
                Ok(()) => {
                    if waiting.tries > 0 {
                        tracing::info!(worker = %self.worker, items, "{what} confirmed on the replicas after {} retries", waiting.tries);
                    }
                    return true;
                }
                Err(crate::redis_conn::Unconfirmed::MasterChanged) => {
                    tracing::warn!(worker = %self.worker, items,
                        "{what}: the Redis master changed before its replicas confirmed it; making it again on the new master (fenced)");
                    return false;
                }
                Err(why) => {
                    tracing::warn!(worker = %self.worker, items, "{what} not done yet: {why}; retrying (redis_min_replicas)");
                }
            }
            waiting.tries += 1;
            tokio::time::sleep(waiting.backoff.next_delay()).await;
        }
    }

    async fn ack_now(
        &self,
        items: &[(&Taken, Option<&str>)],
        result_list: &str,
    ) -> redis::RedisResult<Vec<bool>> {
        let mut out = vec![false; items.len()];
        // one script call per source queue (each has its own in-flight list)
        for q in &self.queues {
            let idx: Vec<usize> = (0..items.len())
                .filter(|&i| &items[i].0.queue == q)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let mut inv = self.ack.prepare_invoke();
            inv.key(self.inflight(q))
                .key(result_list)
                .key(self.keys.attempts());
            for &i in &idx {
                inv.arg(&items[i].0.payload).arg(items[i].1.unwrap_or(""));
            }
            let flags: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
            for (k, &i) in idx.iter().enumerate() {
                out[i] = flags.get(k).copied() == Some(1);
            }
        }
        Ok(out)
    }

    /// Moves an item to `<queue>:dead` with the reason, and pushes `result`
    /// (if any) to `result_list`, atomically and fenced.
    pub async fn dead_letter(
        &self,
        taken: &Taken,
        reason: &str,
        result: Option<&str>,
        result_list: &str,
    ) -> redis::RedisResult<bool> {
        let entry = DeadLetter {
            payload: taken.payload.clone(),
            reason: reason.to_string(),
            time: now_ms(),
            node: self.worker.clone(),
            queue: taken.queue.clone(),
        };
        let entry = serde_json::to_string(&entry).expect("DeadLetter serializes");
        self.write_confirmed(
            "dead-letter",
            1,
            || self.dead_letter_now(taken, &entry, result, result_list),
            |dead: &mut bool, again| *dead |= again,
        )
        .await
    }

    async fn dead_letter_now(
        &self,
        taken: &Taken,
        entry: &str,
        result: Option<&str>,
        result_list: &str,
    ) -> redis::RedisResult<bool> {
        let n: i64 = self
            .dead_letter
            .key(self.inflight(&taken.queue))
            .key(self.keys.dead(&taken.queue))
            .key(result_list)
            .key(self.keys.attempts())
            .arg(&taken.payload)
            .arg(entry)
            .arg(result.unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Up to `count` raw elements at the pop end of `queue`, oldest last (an
    /// `LRANGE`; nothing moves). A batch picks the items it then claims from
    /// these.
    pub async fn peek(
        &self,
        queue: &str,
        skip: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Vec<u8>>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let stop = -(skip as isize) - 1;
        let start = stop - count as isize + 1;
        redis::cmd("LRANGE")
            .arg(queue)
            .arg(start)
            .arg(stop)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Claims chosen items of one of this worker's lists for a batch
    /// (`lua/claim.lua`): each one still in the list moves into this
    /// worker's in-flight list, where it is held like a taken item; one
    /// another worker took meanwhile is not claimed, and nothing is while a
    /// list of higher priority has work. Returns, per item, whether it was
    /// claimed. All `items` must come from the same list.
    ///
    /// On an error the script may have run before the connection failed:
    /// whatever it moved is given back (release is fenced, a no-op for an
    /// item not in flight) before the error is returned.
    pub async fn claim(&self, items: &[&Taken]) -> redis::RedisResult<Vec<bool>> {
        let Some(first) = items.first() else {
            return Ok(Vec::new());
        };
        let queue = &first.queue;
        debug_assert!(items.iter().all(|t| &t.queue == queue));
        let mut inv = self.claim.prepare_invoke();
        inv.key(queue).key(self.inflight(queue));
        for higher in self.queues.iter().take_while(|q| *q != queue) {
            inv.key(higher);
        }
        for t in items {
            inv.arg(t.payload.as_bytes());
        }
        match inv.invoke_async::<Vec<i64>>(&mut self.conn.clone()).await {
            Ok(flags) => Ok((0..items.len())
                .map(|i| flags.get(i).copied() == Some(1))
                .collect()),
            Err(e) => {
                for t in items {
                    let _ = self.release(t).await;
                }
                Err(e)
            }
        }
    }

    /// Whether each item is still in this worker's in-flight list (one
    /// pipelined `LPOS` per item); see [`holds`](Self::holds).
    pub async fn holds_each(&self, items: &[&Taken]) -> redis::RedisResult<Vec<bool>> {
        let mut p = redis::pipe();
        for t in items {
            p.cmd("LPOS").arg(self.inflight(&t.queue)).arg(&t.payload);
        }
        let pos: Vec<Option<i64>> = p.query_async(&mut self.conn.clone()).await?;
        Ok(pos.iter().map(Option::is_some).collect())
    }

    /// True while `taken` is still in this worker's in-flight list, i.e. no
    /// other worker has re-queued it. A long job checks this before each
    /// retry so that a resumed zombie stops working on an item it lost.
    pub async fn holds(&self, taken: &Taken) -> redis::RedisResult<bool> {
        let pos: Option<i64> = redis::cmd("LPOS")
            .arg(self.inflight(&taken.queue))
            .arg(&taken.payload)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(pos.is_some())
    }

    /// Gives an item back to the pop end of its source list without counting
    /// an interruption (`lua/release.lua`), for an item this worker cannot
    /// take now. Fenced: returns false if the item was no longer ours.
    pub async fn release(&self, taken: &Taken) -> redis::RedisResult<bool> {
        let n: i64 = self
            .release
            .key(self.inflight(&taken.queue))
            .key(&taken.queue)
            .arg(&taken.payload)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Re-queues this worker's own in-flight items.
    pub async fn requeue_own(&self, why: Requeue) -> redis::RedisResult<RequeueOutcome> {
        let queues = self.queues.clone();
        self.requeue_worker(&self.worker.clone(), &queues, why)
            .await
            .map(|o| o.unwrap_or_default())
    }

    /// Re-queues the in-flight items of `worker`. With `Requeue::Expired`
    /// nothing happens (and `None` is returned) if its heartbeat is alive.
    pub async fn requeue_worker(
        &self,
        worker: &str,
        queues: &[String],
        why: Requeue,
    ) -> redis::RedisResult<Option<RequeueOutcome>> {
        let mut inv = self.requeue.prepare_invoke();
        inv.key(self.keys.alive(worker)).key(self.keys.attempts());
        for q in queues {
            inv.key(self.keys.inflight(worker, q))
                .key(q)
                .key(self.keys.dead(q));
        }
        inv.arg(why.mode())
            .arg(self.max_interruptions)
            .arg(now_ms())
            .arg(worker);
        let v: redis::Value = inv.invoke_async(&mut self.conn.clone()).await?;
        match v {
            redis::Value::Int(-1) => Ok(None),
            other => {
                let (requeued, dead_lettered): (u64, u64) = redis::from_redis_value(other)?;
                Ok(Some(RequeueOutcome {
                    requeued,
                    dead_lettered,
                }))
            }
        }
    }

    /// Re-queues the items of every registered worker whose heartbeat has
    /// expired. Returns (worker, outcome) for each one that had items.
    pub async fn reap_expired(&self) -> redis::RedisResult<Vec<(String, RequeueOutcome)>> {
        let mut conn = self.conn.clone();
        let workers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.workers())
            .query_async(&mut conn)
            .await?;
        let mut out = Vec::new();
        for w in workers {
            if w == self.worker {
                continue;
            }
            let alive: bool = redis::cmd("EXISTS")
                .arg(self.keys.alive(&w))
                .query_async(&mut conn)
                .await?;
            if alive {
                continue;
            }
            let queues: Option<String> = redis::cmd("HGET")
                .arg(self.keys.state(&w))
                .arg("queues")
                .query_async(&mut conn)
                .await?;
            let queues: Vec<String> = queues
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if queues.is_empty() {
                continue;
            }
            if let Some(o) = self.requeue_worker(&w, &queues, Requeue::Expired).await? {
                if o.requeued + o.dead_lettered > 0 {
                    out.push((w, o));
                }
            }
        }
        Ok(out)
    }

    /// Refreshes this worker's heartbeat (`ttl`) and publishes `fields` in
    /// its state hash.
    pub async fn heartbeat(
        &self,
        ttl: Duration,
        fields: &[(&str, String)],
    ) -> redis::RedisResult<()> {
        let mut p = redis::pipe();
        p.atomic()
            .sadd(self.keys.workers(), &self.worker)
            .cmd("SET")
            .arg(self.keys.alive(&self.worker))
            .arg(now_ms())
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .ignore()
            .hset(
                self.keys.state(&self.worker),
                "queues",
                self.queues.join(" "),
            )
            .hset(self.keys.state(&self.worker), "heartbeat_ms", now_ms());
        for (k, v) in fields {
            p.hset(self.keys.state(&self.worker), *k, v);
        }
        p.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Removes the heartbeat at a clean exit so the reporter shows "stopped"
    /// rather than waiting for the TTL.
    pub async fn retire(&self) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(self.keys.alive(&self.worker))
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Number of items this worker holds in flight.
    pub async fn inflight_len(&self) -> redis::RedisResult<u64> {
        let mut p = redis::pipe();
        for q in &self.queues {
            p.llen(self.inflight(q));
        }
        let lens: Vec<u64> = p.query_async(&mut self.conn.clone()).await?;
        Ok(lens.iter().sum())
    }
}
