//! Every Redis key name ubackup uses, built in one place so that the client,
//! the server, the indexer and the reporter agree.
//!
//! Queue names (`level1`, `uuzuback`, `message`) are the operator's own and
//! are used unprefixed, because original clients and nodes push and pop them
//! by name during a migration. Everything ubackup adds lives under one
//! configurable prefix (`key_prefix`, default `ubackup:`), so tests and
//! several clusters can share one Redis.

/// The default for `key_prefix`.
pub const DEFAULT_PREFIX: &str = "ubackup:";
/// The default results list (`message_queue`), the original's.
pub const DEFAULT_MESSAGE_QUEUE: &str = "message";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Dead letters of a queue: `<queue>:dead`, unprefixed so an operator
    /// finds it next to the queue. Elements are JSON `DeadLetter`s.
    pub fn dead(&self, queue: &str) -> String {
        format!("{queue}:dead")
    }

    /// Items a worker (node or indexer) has taken from `queue` and not yet
    /// acknowledged. One list per (worker, source queue) so that a re-queue
    /// knows where each item came from without extra bookkeeping.
    pub fn inflight(&self, worker: &str, queue: &str) -> String {
        format!("{}inflight:{worker}:{queue}", self.prefix)
    }

    /// Set of every worker id that has ever registered; the reaper walks it.
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// Expiring heartbeat key of a worker; its absence means "dead".
    pub fn alive(&self, worker: &str) -> String {
        format!("{}alive:{worker}", self.prefix)
    }

    /// Hash with a worker's published state (queues, paused, disk, pulls…).
    pub fn state(&self, worker: &str) -> String {
        format!("{}state:{worker}", self.prefix)
    }

    /// Hash an operator writes to steer a node without a restart:
    /// `paused` = 1/0, `workers` = N.
    pub fn control(&self, worker: &str) -> String {
        format!("{}control:{worker}", self.prefix)
    }

    /// Hash: sha1(payload) → number of interruptions (crash re-queues).
    pub fn attempts(&self) -> String {
        format!("{}attempts", self.prefix)
    }

    /// The original's expiring "seen recently" key, `SERVER_ID:TYPE:INSTANCE`
    /// (the original keeps it in db 9). Unprefixed: existing tooling reads it.
    pub fn overdue(&self, server_id: i64, back_type: &str, instance: i64) -> String {
        format!("{server_id}:{back_type}:{instance}")
    }

    /// Pending results a node could not yet hand to a separate message Redis.
    pub fn outbox(&self, worker: &str) -> String {
        format!("{}outbox:{worker}", self.prefix)
    }

    /// Expiring marker "client message `id` was pushed", set in the same
    /// atomic step as its LPUSH, so that a message resent from a client's
    /// spool after an unclear outcome is not queued twice.
    pub fn sent(&self, id: &str) -> String {
        format!("{}sent:{id}", self.prefix)
    }

    /// The reporter's samples (JSON `ubackup_catalog::Sample`) waiting to be
    /// stored in the catalog by a reporter run that has one configured.
    pub fn samples(&self) -> String {
        format!("{}samples", self.prefix)
    }

    /// Replication tasks for node `node` (JSON `ReplicaTask`s of the
    /// server): the copies it should make. Its lowest-priority list, taken
    /// through the same claim / fenced ack / reaper as backup messages.
    pub fn replica(&self, node: &str) -> String {
        format!("{}replica:{node}", self.prefix)
    }

    /// Expiring lock: the one node copying backup `id` now, so two tasks
    /// for one backup (a repair racing a late task) never make a third copy.
    pub fn replica_lock(&self, id: &str) -> String {
        format!("{}replica:lock:{id}", self.prefix)
    }

    /// Expiring lock: the one node whose repair sweep runs now.
    pub fn repair_lock(&self) -> String {
        format!("{}repair:lock", self.prefix)
    }

    /// Hash the repair sweep publishes (see [`replication`]): the
    /// reporter's `under_replicated` alert and metrics read it.
    pub fn replication(&self) -> String {
        format!("{}replication", self.prefix)
    }

    /// Hash written by `ubackup-reporter queue`: list key → depth, plus
    /// `time_ms` of the sample.
    pub fn queue_depths(&self) -> String {
        format!("{}queue_depths", self.prefix)
    }

    /// Expiring string a writer sets just before `WAIT` under
    /// `redis_min_replicas` (see `redis_conn::durable`): a replica that has
    /// it has every earlier write of the master.
    pub fn replication_probe(&self) -> String {
        format!("{}replication_probe", self.prefix)
    }
}

/// The probe key (see [`Keys::replication_probe`]) for a Redis known only
/// by one of its lists (the results Redis, by `message_queue`).
pub fn replication_probe_beside(list: &str) -> String {
    format!("{list}:replication_probe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        let k = Keys::new("t1:");
        assert_eq!(k.dead("level1"), "level1:dead");
        assert_eq!(k.inflight("n5", "level1"), "t1:inflight:n5:level1");
        assert_eq!(k.alive("n5"), "t1:alive:n5");
        assert_eq!(k.overdue(111111, "mysql", 3306), "111111:mysql:3306");
        assert_eq!(Keys::default().workers(), "ubackup:workers");
    }
}

/// Field names of the repair sweep's hash ([`Keys::replication`]).
pub mod replication {
    /// Backups with fewer good copies than `copies` asks for.
    pub const UNDER_REPLICATED: &str = "under_replicated";
    /// `create_time` (unix ms) of the oldest of them; 0 when none.
    pub const OLDEST_MS: &str = "oldest_ms";
    /// Backups the last sweep looked at (those that want 2 copies or more).
    pub const CHECKED: &str = "checked";
    /// Tasks waiting in every node's replication list.
    pub const BACKLOG: &str = "backlog";
    /// Tasks the last sweep queued.
    pub const QUEUED: &str = "queued";
    /// Unix ms the last sweep ended, and the node that ran it.
    pub const SWEEP_MS: &str = "sweep_ms";
    pub const SWEEP_NODE: &str = "sweep_node";
}

/// Field names of a worker's state hash ([`Keys::state`]). Written by the
/// server and indexer, read by the reporter.
pub mod state {
    /// `node` or `indexer`.
    pub const KIND: &str = "kind";
    /// The node's address (`myip`).
    pub const IP: &str = "ip";
    /// Space-separated source lists, highest priority first.
    pub const QUEUES: &str = "queues";
    /// Unix ms of the last heartbeat.
    pub const HEARTBEAT_MS: &str = "heartbeat_ms";
    /// `1` while the node is not taking work.
    pub const PAUSED: &str = "paused";
    /// Why: `disk reserve`, `operator`, … (empty when running).
    pub const PAUSE_REASON: &str = "pause_reason";
    pub const DISK_FREE: &str = "disk_free";
    pub const DISK_TOTAL: &str = "disk_total";
    pub const ACTIVE: &str = "active";
    pub const WORKERS: &str = "workers";
    pub const VERSION: &str = "version";
    /// Unix ms the process started.
    pub const STARTED_MS: &str = "started_ms";
    /// The node's `zone` (replication puts copies in other zones).
    pub const ZONE: &str = "zone";
    /// Its read-only rsync module and port, that other nodes replicate from.
    pub const MODULE: &str = "module";
    pub const MODULE_PORT: &str = "module_port";
    /// The TLS port in front of that module (nodes with `rsync_tls`).
    pub const MODULE_TLS_PORT: &str = "module_tls_port";
    // Written by `ubackup-reporter disk` (the node's cron), not by the node:
    /// Used bytes of the filesystem of `server_root_path` (total - free).
    pub const DISK_USED: &str = "disk_used";
    /// Unix ms of the reporter's last disk sample.
    pub const DISK_SAMPLE_MS: &str = "disk_sample_ms";
    pub const MEM_TOTAL: &str = "mem_total";
    pub const MEM_USED: &str = "mem_used";
    /// One-minute load average.
    pub const LOAD1: &str = "load1";
    pub const CPUS: &str = "cpus";
}

/// Field names of a node's control hash ([`Keys::control`]), written by an
/// operator (`redis-cli HSET ubackup:control:<node> paused 1`).
pub mod control {
    /// `1` pauses popping; `0` or absent resumes.
    pub const PAUSED: &str = "paused";
    /// Number of pull workers (the node's weight); absent = `work_thread`.
    pub const WORKERS: &str = "workers";
}
