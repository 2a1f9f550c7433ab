//! The queue: every operation that puts an item on, moves it between or
//! takes it off a Redis list of the cluster, and every Lua script that does
//! so. Nothing outside this module writes a queue list.
//!
//! The pattern (used by the server for backup messages and by the indexer
//! for results) is "reliable queue" over plain Redis lists. The lists an
//! item can be in are its priority list (`redis_queue`), the in-flight list
//! of the worker holding it (`Keys::inflight`), the dead-letter list of its
//! queue (`Keys::dead`), and, for results, a node's outbox and the results
//! list (`message_queue`). Every step below moves an item from exactly one
//! of them to exactly one other in one atomic step (a Lua script or a
//! single `LMOVE`), so **an item is always in exactly one list**:
//!
//! | step | from → to | how |
//! | --- | --- | --- |
//! | push ([`push::push_once`]) | client → priority list | `lua/push_once.lua`, once per message id |
//! | take ([`WorkQueue::take`]) | priority → in-flight | `lua/pop.lua`; `BLMOVE` for the top list |
//! | claim ([`WorkQueue::claim`]) | priority → in-flight | `lua/claim.lua`, chosen items of a batch |
//! | ack ([`WorkQueue::ack`]) | in-flight → gone, its result → results | `lua/ack.lua`, fenced |
//! | dead-letter ([`WorkQueue::dead_letter`]) | in-flight → dead, result → results | `lua/dead_letter.lua`, fenced |
//! | release ([`WorkQueue::release`]) | in-flight → priority (pop end) | `lua/release.lua`, fenced |
//! | re-queue ([`WorkQueue::requeue_own`], [`WorkQueue::reap_expired`]) | in-flight → priority, or dead when poison | `lua/requeue.lua` |
//! | requeue a dead letter ([`dead::requeue`]) | dead → priority (pop end) | `lua/requeue_dead.lua` |
//! | drop a dead letter ([`dead::drop`]) | dead → gone | one `LREM` |
//! | forward ([`outbox::forward_once`]) | outbox → results on the message Redis | `LPUSH` there, then `LREM` here |
//!
//! Two steps are not moves: the list watcher ([`watch::wait_for_item`])
//! rotates one item from the pop end onto the pop end (`BLMOVE l l RIGHT
//! RIGHT`), which leaves the list as it was; and forwarding spans two Redis
//! servers, so a crash between its two commands leaves a result in both
//! (a duplicate the indexer stores under the same record id, never a loss).
//!
//! * **fenced**: acknowledging removes the exact in-flight element first; a
//!   worker whose item was re-queued in the meantime (a zombie) finds
//!   nothing to remove, and its step has no effect;
//! * **re-queue**: a worker re-queues its own items on start and on graceful
//!   shutdown; any live worker re-queues those of a worker whose heartbeat
//!   expired. Crash re-queues count as interruptions, and an item
//!   interrupted `max_interruptions` times is dead-lettered as poison.
//!
//! Waiting is done outside the scripts (Redis 7.0 scripts cannot block): a
//! BLMOVE on the top-priority list wakes a worker at once for `level1`
//! messages, and lower lists are checked each time that wait times out.
//!
//! Layout: [`work`] (a worker's lists: take, claim, ack, dead-letter,
//! release, re-queue, heartbeat), [`forget`] (removing a gone worker),
//! [`push`] (the client's push-once), [`dead`] (the dead-letter lists as
//! operators see them), [`outbox`] (results to another Redis), [`watch`]
//! (waiting for a list to get an item). Every script is loaded below, from
//! `common/lua/`, whose headers list their KEYS and ARGV.

pub mod dead;
pub mod forget;
pub mod outbox;
pub mod push;
pub mod watch;
pub mod work;

pub use forget::{forget_worker, Forget};
pub use work::{
    DeadLetter, Requeue, RequeueOutcome, Taken, Waiter, WorkQueue, DEFAULT_MAX_INTERRUPTIONS,
};

/// The scripts, each loaded once here.
mod script {
    pub static POP: &str = include_str!("../lua/pop.lua");
    pub static CLAIM: &str = include_str!("../lua/claim.lua");
    pub static ACK: &str = include_str!("../lua/ack.lua");
    pub static REQUEUE: &str = include_str!("../lua/requeue.lua");
    pub static DEAD_LETTER: &str = include_str!("../lua/dead_letter.lua");
    pub static RELEASE: &str = include_str!("../lua/release.lua");
    pub static FORGET: &str = include_str!("../lua/forget.lua");
    pub static PUSH_ONCE: &str = include_str!("../lua/push_once.lua");
    pub static REQUEUE_DEAD: &str = include_str!("../lua/requeue_dead.lua");
}
