//! What several cases read back from a `World`: its catalog rows and logs,
//! a destination's files, and the seeded PRNG of the soak.

use std::time::{Duration, Instant};

use ubackup_faults::check::Row;
use ubackup_faults::{MsgSpec, World};

/// The SQLite rows of one message (by create_time).
pub(crate) fn rows_of(w: &World, m: &MsgSpec) -> Vec<Row> {
    w.sqlite_rows()
        .into_iter()
        .filter(|r| r.create_time_ms == m.create_time * 1000)
        .collect()
}

pub(crate) fn wait_row(w: &World, m: &MsgSpec, deadline: Duration) -> Row {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(r) = rows_of(w, m).into_iter().next() {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no record of {} within {deadline:?}; logs:\n{}",
        m.filename,
        all_logs(w)
    );
}

pub(crate) fn all_logs(w: &World) -> String {
    let mut s = String::new();
    for id in w.nodes.keys() {
        s.push_str(&format!(
            "--- node {id}\n{}\n",
            ubackup_faults::world::tail(&w.node_log(id), 3000)
        ));
    }
    s.push_str(&format!(
        "--- indexer\n{}\n",
        ubackup_faults::world::tail(&w.indexer_log(), 2000)
    ));
    s
}

pub(crate) use ubackup_testkit::fixtures::file_names as files;

/// A tiny deterministic PRNG (xorshift), seeded and printed for replays.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}
