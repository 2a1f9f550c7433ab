//! The benchmark harness behind `bench/run.sh`: ubackup's release binaries
//! against raw rsync, on this machine, with real processes (redis-server,
//! `rsync --daemon` with `socket options = TCP_NODELAY`, ubackup-server,
//! ubackup-indexer, ubackup-client). Not run by CI.
//!
//! Every figure is the median of `--runs` runs, and every ubackup figure has
//! a counterpart measured in the same run on the same files (raw per-file
//! rsync at the same parallelism, one whole-directory rsync, the catalog
//! store called directly, …).
//!
//! Layout:
//! * [`procs`]: the processes a run starts (Redis, daemons, nodes, indexer)
//!   and their peak RSS;
//! * [`data`]: source trees and backup messages;
//! * [`raw`]: the raw rsync counterparts;
//! * [`stats`]: medians, percentiles and the named samples of a run;
//! * [`workloads`]: one function per workload;
//! * [`replication`]: the copies-on-other-nodes workload (three nodes,
//!   two zones, a node lost and repaired);
//! * [`restore`]: `ubackup-client restore` of a full + 2 incrementals
//!   from one node, against raw rsync of the same files;
//! * [`security`]: what TLS in transit and age at rest cost, against
//!   plain ubackup and raw rsync through a TLS client;
//! * [`delay`]: a userspace TCP delay proxy (a WAN-like link on loopback);
//! * [`wan`]: pickup, a burst and large files through that proxy at 20 and
//!   50 ms of round trip, against raw rsync through the same proxy;
//! * [`report`]: the markdown written into BENCHMARKS.md.

pub mod data;
pub mod delay;
pub mod procs;
pub mod raw;
pub mod replication;
pub mod report;
pub mod restore;
pub mod security;
pub mod stats;
pub mod wan;
pub mod workloads;
