//! A node and its whole disk lost with `copies = 2`: three nodes in two
//! zones, each with its read-only module; one is killed with -9 and its
//! `server_root_path` deleted. Every backup keeps a good copy, and the
//! repair brings each back to two on the nodes that are left.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ubackup_faults::ledger::Expect;
use ubackup_faults::{tally, NodeSpec, World};
use ubackup_testkit::{RsyncDaemon, RsyncModule};

use crate::helpers::all_logs;
use crate::{quiet, Opts, Outcome};

const BACKUPS: usize = 30;

/// backup id → nodes holding a good copy (the first one unless a copy row
/// of its node overrides it, then the copy rows in state `ok`).
fn good_copies(w: &World) -> BTreeMap<String, Vec<String>> {
    let c = rusqlite::Connection::open_with_flags(
        w.catalog_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("catalog");
    let mut rows: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if let Ok(mut st) = c.prepare("SELECT backup_id, node, state FROM copies") {
        for (id, node, state) in st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map(|it| it.flatten().collect::<Vec<(String, String, String)>>())
            .unwrap_or_default()
        {
            rows.entry(id).or_default().push((node, state));
        }
    }
    w.sqlite_rows()
        .into_iter()
        .filter(|r| r.succeed == 1)
        .map(|r| {
            let own = rows.get(&r.id).cloned().unwrap_or_default();
            let mut good = Vec::new();
            if !own.iter().any(|(n, _)| *n == r.node) {
                good.push(r.node.clone());
            }
            good.extend(own.into_iter().filter(|(_, s)| s == "ok").map(|(n, _)| n));
            (r.id, good)
        })
        .collect()
}

fn wait_for(w: &World, what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {deadline:?} waiting for: {what}\n{}",
        all_logs(w)
    );
}

pub(crate) fn node_lost_with_copies(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let catalog = w.catalog_path().display().to_string();
    // each node's module over its server_root_path, on a port of its own
    let mut modules = Vec::new();
    for (id, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        let root = w.node_root(id);
        std::fs::create_dir_all(&root).unwrap();
        let module = RsyncDaemon::start(&[RsyncModule {
            name: "ubackup".into(),
            path: root,
            chroot: false,
        }])
        .expect("node module");
        let spec = NodeSpec::new()
            .set("copies", "2")
            .set("zone", zone)
            .set("catalog", &catalog)
            .set("node_rsync_port", &module.port.to_string())
            .set("repair_after_secs", "2")
            .set("repair_interval_secs", "1");
        w.start_node(id, spec);
        modules.push(module);
    }
    let mut p = w.producer();
    for i in 0..BACKUPS {
        let m = w.source_with_checksum(&format!("copies-{i}.bin"), 20_000 + i * 97, 500 + i as u64);
        p.push(&w.lo, &m, Expect::Landed).unwrap();
    }
    wait_for(
        &w,
        "every backup with two good copies",
        Duration::from_secs(90),
        || {
            let g = good_copies(&w);
            g.len() == BACKUPS && g.values().all(|c| c.len() == 2)
        },
    );
    let before = w.wait_quiet(quiet(30));
    before.assert_clean(false);
    println!("    before the loss: {before}");

    // lose n3: kill -9, its module gone, its disk wiped
    w.lose_node("n3");
    modules.pop();
    tally::fault(1);
    let lost = good_copies(&w)
        .values()
        .filter(|c| c.iter().all(|n| n == "n3"))
        .count();
    tally::lost_with_node(lost as u64);
    assert_eq!(lost, 0, "backups whose only good copy was on n3");

    let t = Instant::now();
    wait_for(
        &w,
        "two good copies on n1 and n2 again",
        Duration::from_secs(90),
        || {
            good_copies(&w)
                .values()
                .all(|c| c.iter().filter(|n| *n != "n3").count() == 2)
        },
    );
    println!(
        "    re-replicated the copies of n3 in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let v = w.wait_quiet(quiet(30));
    println!("    {v}");
    assert!(
        v.copies_verified >= BACKUPS,
        "every backup has a verified copy besides its first: {v}"
    );
    v.assert_ok(false);
    Ok(())
}
