//! The suite's totals, summed over every case, for the one summary line:
//! `faults injected: N, messages: M, lost: 0, duplicated: 0, dead-lettered
//! with reason: K, bad inputs tried: B, files outside destination: 0,
//! copies verified: C, backups lost with a node: 0, redis failovers: F,
//! acknowledged lost: 0`.

use std::sync::Mutex;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub faults: u64,
    pub messages: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub dead_with_reason: u64,
    pub bad_inputs: u64,
    pub outside: u64,
    /// Landed copies without a record (a node that died or was presumed
    /// dead after landing); inside the node's tree and verified, but
    /// reported because they take space.
    pub unrecorded_copies: u64,
    /// Copies beyond the first found on disk and matching their record.
    pub copies_verified: u64,
    /// Backups that had no good copy left after a node and its disk were
    /// lost on purpose (with `copies` = 2 this must stay 0).
    pub lost_with_node: u64,
    /// Redis master failovers the sentinels carried out during a case.
    pub failovers: u64,
    /// Messages whose push was acknowledged (confirmed on a replica) and
    /// that were lost across a failover: must stay 0.
    pub failover_lost: u64,
}

static TALLY: Mutex<Tally> = Mutex::new(Tally {
    faults: 0,
    messages: 0,
    lost: 0,
    duplicated: 0,
    dead_with_reason: 0,
    bad_inputs: 0,
    outside: 0,
    unrecorded_copies: 0,
    copies_verified: 0,
    lost_with_node: 0,
    failovers: 0,
    failover_lost: 0,
});

fn with<T>(f: impl FnOnce(&mut Tally) -> T) -> T {
    f(&mut TALLY.lock().unwrap_or_else(|p| p.into_inner()))
}

/// One injected fault (a kill, a stop, an outage, a scripted ES answer…).
pub fn fault(n: u64) {
    with(|t| t.faults += n);
}

/// Backups a case found without any good copy after losing a node.
pub fn lost_with_node(n: u64) {
    with(|t| t.lost_with_node += n);
}

/// One failover, and the acknowledged messages lost across it.
pub fn failover(lost: u64) {
    with(|t| {
        t.failovers += 1;
        t.failover_lost += lost;
    });
}

pub fn bad_inputs(n: u64) {
    with(|t| t.bad_inputs += n);
}

/// One world's final verdict, in numbers.
pub fn add(v: &Tally) {
    with(|t| {
        t.messages += v.messages;
        t.lost += v.lost;
        t.duplicated += v.duplicated;
        t.dead_with_reason += v.dead_with_reason;
        t.outside += v.outside;
        t.unrecorded_copies += v.unrecorded_copies;
        t.copies_verified += v.copies_verified;
    });
}

pub fn snapshot() -> Tally {
    with(|t| t.clone())
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "faults injected: {}, messages: {}, lost: {}, duplicated: {}, dead-lettered with reason: {}, bad inputs tried: {}, files outside destination: {}, copies verified: {}, backups lost with a node: {}, redis failovers: {}, acknowledged lost: {}",
            self.faults, self.messages, self.lost, self.duplicated, self.dead_with_reason, self.bad_inputs, self.outside, self.copies_verified, self.lost_with_node, self.failovers, self.failover_lost
        )
    }
}
