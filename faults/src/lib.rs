//! The fault-injection harness: a whole ubackup cluster on loopback, a
//! producer that keeps a ledger of every acknowledged LPUSH, and the
//! invariant check "nothing lost, nothing twice, nothing outside its
//! directory" (issue 8). The cases themselves are in `tests/faults/`.
//!
//! Layout:
//! * [`world`]: one case's cluster, on the workspace's cluster builder
//!   (`ubackup_testkit::cluster`): redis-server (AOF everysec), an rsync
//!   daemon with a chroot module of generated files, the ES stand-in (behind
//!   [`proxy`] when a case needs TCP faults), N real `ubackup-server` nodes
//!   and the real `ubackup-indexer`, each in its own process group;
//! * [`ledger`]: backup messages with unique ids, and the producer that
//!   records a message only after Redis acknowledged its LPUSH;
//! * [`check`]: waits until the system is quiet, then checks the invariant
//!   and returns the numbers;
//! * [`proxy`]: a TCP proxy in front of the ES stand-in that holds bulk
//!   requests or responses, or resets a connection mid-response;
//! * [`spy`]: an `rsync` first on the nodes' PATH that records every spawn
//!   (its argument vector) and then execs the real rsync;
//! * [`sig`]: signals to processes we started, by PID;
//! * [`tally`]: the suite's totals for the summary line.

pub mod check;
pub mod ledger;
pub mod proxy;
pub mod sig;
pub mod spy;
pub mod tally;
pub mod world;

pub use check::{Verdict, WaitQuiet};
pub use ledger::{Ledger, MsgSpec};
pub use world::{NodeSpec, World};
