//! The one test binary of ubackup-common: the crash-safe queue primitives
//! (`queue`) and Redis Sentinel failover (`failover`), against real
//! redis-server and redis-sentinel processes.

mod durable;
mod failover;
mod queue;
