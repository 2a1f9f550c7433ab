//! Two copies of every backup, with everything real but Elasticsearch:
//! redis-server, one database host (an rsync daemon), three pull nodes in
//! two zones (`n1`, `n2` in zone `a` on 127.0.0.1 / 127.0.0.2, `n3` in
//! zone `b` on 127.0.0.3, each with the read-only node module of
//! deploy/rsyncd/node-rsyncd.conf), `copies = 2`, and the indexer writing
//! the SQLite catalog the nodes record their copies in.
//!
//! 60 backups (8 full + 4 incremental chains of `mysql`, 20 `redis`
//! fulls), pushed in the client's wire format. Then:
//! * every backup has two good copies, in two zones, byte-identical to
//!   the database host's file, and no node holds one backup twice;
//! * n3 is killed and its whole store deleted: the repair sweep reports
//!   `under_replicated`, every chain still restores byte-identical through
//!   `ubackup-client restore` (falling back to the copies), and after
//!   `repair_after_secs` every backup has two good copies on n1 and n2
//!   again and `under_replicated` is back to 0;
//! * a changed byte in one copy: `ubackup-server verify` reports it and
//!   marks it, restore uses the good copy, and repair replaces the bad one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use redis::Commands;
use ubackup_e2e::run_bin;
use ubackup_testkit::cluster::{Cluster, ClusterBuilder};
use ubackup_testkit::es::EsStandIn;
use ubackup_testkit::Proc;

mod rig;
mod tls;

use rig::*;

#[test]
fn two_copies_in_two_zones_survive_a_lost_node_and_are_repaired() {
    let _one = crate::one_cluster();
    let cluster = ClusterBuilder::new("replica").start().unwrap();
    let root = cluster.dir.path().to_path_buf();
    let names = cluster.names.clone();
    let mut rc = cluster.conn();

    // ---- the database host
    let host = root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let made = make_files(&host);
    let dbhost = cluster.test_dbhost(&host, false, "").unwrap();

    // ---- three nodes, each with its read-only module on one common port
    let catalog = root.join("catalog.db");
    let node_ids = ["n1", "n2", "n3"];
    let es = EsStandIn::start();
    let mut rig = Rig::start(&cluster, &root, &node_ids, &catalog, Some(&es.url()));
    let (node_dirs, module_port) = (rig.dirs.clone(), rig.module_port);
    let mut nodes: Vec<Proc> = (0..3).map(|k| rig.spawn(&cluster, k, None)).collect();
    let iconf_path = root.join("indexer.conf");
    let _indexer = start_indexer(&cluster, &root, &catalog, Some(&es.url()));
    for id in node_ids {
        cluster
            .wait_alive(id, &format!("node {id} heartbeat"), Duration::from_secs(20))
            .unwrap();
    }

    // ---- 60 backups
    for m in &made {
        let _: () = rc.lpush(&names.lo, message(m, dbhost.port)).unwrap();
    }
    let cat = Catalog(catalog.clone());
    let total = made.len();
    wait_logged(
        "60 backups with two good copies each",
        Duration::from_secs(180),
        &node_dirs,
        || {
            let g = cat.good_copies();
            g.len() == total && g.values().all(|c| c.len() == 2)
        },
    );

    // the ES documents carry the same copies as SQLite (the nodes mirror
    // them), beside the original fields
    wait_logged(
        "ES and SQLite agree on the copies",
        Duration::from_secs(30),
        &node_dirs,
        || {
            let docs = es.docs("uuzubackup");
            let sqlite = cat.copies();
            docs.len() == total
                && sqlite.iter().all(|(id, rows)| {
                    let in_es: Vec<String> = docs[id]["copies"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter(|(_, c)| c["state"] == "ok")
                                .map(|(n, _)| n.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut in_sql: Vec<String> = rows
                        .iter()
                        .filter(|r| r.2 == "ok")
                        .map(|r| r.0.clone())
                        .collect();
                    in_sql.sort();
                    in_es == in_sql
                })
        },
    );
    for doc in es.docs("uuzubackup").values() {
        assert!(
            doc["filename"].is_string()
                && doc["back_server_ip"].is_string()
                && doc["type"].is_string(),
            "{doc}"
        );
    }

    // two zones, byte-identical, one copy per node
    let by_name: BTreeMap<&str, &Made> = made.iter().map(|m| (m.name.as_str(), m)).collect();
    let backups = cat.backups();
    for (id, copies) in cat.good_copies() {
        let (name, _, _) = &backups[&id];
        assert_ne!(
            zone(&copies[0].0),
            zone(&copies[1].0),
            "{name}: both copies in one zone: {copies:?}"
        );
        assert_ne!(copies[0].0, copies[1].0, "{name}: two copies on one node");
        for (node, path) in &copies {
            let k = node_ids.iter().position(|n| n == node).unwrap();
            assert!(
                Path::new(path).starts_with(node_dirs[k].join("store")),
                "{name}: {path} is not under {node}'s store"
            );
            assert!(
                same_bytes(Path::new(path), &host.join(name)),
                "{name}: the copy on {node} differs from the source"
            );
        }
        assert!(by_name.contains_key(name.as_str()));
    }
    let stored: usize = node_dirs
        .iter()
        .map(|d| count_files(&d.join("store")))
        .sum();
    assert_eq!(
        stored,
        2 * total,
        "every backup twice on disk, nothing else"
    );

    // the sweeps agree: nothing short (they may have counted backups whose
    // second copy was still on its way)
    wait_logged(
        "the sweep finds every backup with its copies",
        Duration::from_secs(30),
        &node_dirs,
        || rc_hget(&cluster, &names.prefix, "under_replicated") == Some(0),
    );

    // ---- lose n3: the process, its module, its whole store. n1 and n2
    // are paused first (the operator's control hash), so the backups stay
    // short of copies until the alert has been seen
    for n in ["n1", "n2"] {
        let _: () = rc
            .hset(format!("{}control:{n}", names.prefix), "paused", "1")
            .unwrap();
    }
    nodes[2].kill9_group();
    rig.modules[2].proc.kill9_group();
    std::fs::remove_dir_all(node_dirs[2].join("store")).unwrap();
    let on_n3 = cat
        .good_copies()
        .values()
        .filter(|c| c.iter().any(|(n, _)| n == "n3"))
        .count();
    assert!(
        on_n3 >= total / 3,
        "zone b holds a copy of every backup whose other copy is in zone a: {on_n3}"
    );
    let under = || -> i64 {
        let v: Option<i64> = rc_hget(&cluster, &names.prefix, "under_replicated");
        v.unwrap_or(0)
    };
    wait_logged(
        "the repair sweep reports under-replicated backups",
        Duration::from_secs(30),
        &node_dirs,
        || under() > 0,
    );
    let reporter = cluster.bin("ubackup-reporter");
    let alert_kinds = || -> Vec<String> {
        let (_, out, err) = run_bin(
            &reporter,
            &["alerts", "--json", "-c", iconf_path.to_str().unwrap()],
            Duration::from_secs(30),
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("alerts --json: {e}: {out}{err}"));
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let kinds = alert_kinds();
    assert!(
        kinds.iter().any(|k| k == "under_replicated"),
        "raised while backups are short of copies: {kinds:?}"
    );
    for n in ["n1", "n2"] {
        let _: () = rc
            .hset(format!("{}control:{n}", names.prefix), "paused", "0")
            .unwrap();
    }
    let repair_started = std::time::Instant::now();

    // ---- every chain still restores, from the copies where n3 is gone
    let client_conf = root.join("client.conf");
    std::fs::write(
        &client_conf,
        format!(
            "[global]\nserver_id = {SERVER_ID}\ngame_id = 31\nop_id = 1\nmy_ip = 127.0.0.1\nredis_host = 127.0.0.1\nredis_port = {}\n\
             redis_queue = {}\nkey_prefix = {}\ncatalog = {}\nnode_rsync_port = {module_port}\nnode_rsync_contimeout = 3\n\
             log = {}\n\n[mysql3306]\nback_type = mysql\ninstance = 3306\nrsync_model = backup\nback_dir = {}\nback_log = {}\nscript = true\n",
            cluster.redis.port,
            names.lo,
            names.prefix,
            catalog.display(),
            root.join("client.log").display(),
            host.display(),
            root.join("back.log").display(),
        ),
    )
    .unwrap();
    let client = cluster.bin("ubackup-client");
    let mut fell_back = 0;
    let mut restored = 0;
    let lasts: Vec<&Made> = made
        .iter()
        .filter(|m| {
            m.back_type == "redis"
                || (m.full.is_some() && m.name.ends_with(&format!("_{}.xb", CHAIN_LEN - 1)))
        })
        .collect();
    for last in &lasts {
        let id = backups
            .iter()
            .find(|(_, (n, _, _))| *n == last.name)
            .map(|(id, _)| id.clone())
            .unwrap();
        let dest = root.join(format!("restore-{}", last.name));
        let (code, out, err) = run_bin(
            &client,
            &[
                "-c",
                client_conf.to_str().unwrap(),
                "restore",
                "--id",
                &id,
                "--dest",
                dest.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        assert_eq!(code, Some(0), "restore of {}: {out}{err}", last.name);
        fell_back += out.matches("restored from the copy on node").count();
        let chain: Vec<&Made> = match &last.full {
            None => vec![*last],
            Some((full, _)) => made
                .iter()
                .filter(|m| m.name == *full || m.full.as_ref().is_some_and(|f| f.0 == *full))
                .collect(),
        };
        let mut got: Vec<String> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = chain.iter().map(|m| m.name.clone()).collect();
        want.sort();
        assert_eq!(got, want, "restore of {}", last.name);
        for m in chain {
            assert!(
                same_bytes(&dest.join(&m.name), &host.join(&m.name)),
                "{} restored differs",
                m.name
            );
            restored += 1;
        }
    }
    assert_eq!(restored, CHAINS * CHAIN_LEN + REDIS_FULLS);
    assert!(
        fell_back > 0,
        "no restore needed a copy: n3 held no first copy?"
    );

    // ---- repaired: two good copies on the nodes that are left
    wait_logged(
        "every backup has two good copies on n1 and n2",
        Duration::from_secs(180),
        &node_dirs,
        || {
            let g = cat.good_copies();
            g.len() == total
                && g.values().all(|c| {
                    let live: Vec<&(String, String)> =
                        c.iter().filter(|(n, _)| n != "n3").collect();
                    live.len() == 2 && live[0].0 != live[1].0
                })
        },
    );
    // a figure for the log, not an assertion (the restores ran meanwhile)
    let bytes: i64 = made.iter().map(|m| m.size).sum();
    eprintln!(
        "re-replicated the copies of {total} backups ({bytes} bytes) lost with n3 in {:.1} s, restores included",
        repair_started.elapsed().as_secs_f64()
    );
    for (id, copies) in cat.good_copies() {
        let (name, _, _) = &backups[&id];
        for (node, path) in copies.iter().filter(|(n, _)| n != "n3") {
            assert!(
                same_bytes(Path::new(path), &host.join(name)),
                "{name}: the repaired copy on {node} differs"
            );
        }
    }
    wait_logged(
        "under_replicated back to 0",
        Duration::from_secs(30),
        &node_dirs,
        || under() == 0,
    );
    let kinds = alert_kinds();
    assert!(
        !kinds.iter().any(|k| k == "under_replicated"),
        "resolved after the repair: {kinds:?}"
    );
    let (_, out, err) = run_bin(
        &reporter,
        &["status", "-c", iconf_path.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(
        out.contains(&format!(
            "COPIES\n  {total} backup(s) want more than one copy; 0 under-replicated"
        )),
        "status shows the copies: {out}{err}"
    );
    // retiring n3 for good: its copies are marked lost in the catalog
    let (code, out, err) = run_bin(
        &reporter,
        &["forget-node", "-c", iconf_path.to_str().unwrap(), "n3"],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "forget-node n3: {out}{err}");
    wait_logged(
        "the copies of the forgotten n3 are marked lost",
        Duration::from_secs(30),
        &node_dirs,
        || {
            let copies = cat.copies();
            let rows_on_n3: Vec<&CopyRow> = copies
                .values()
                .flatten()
                .filter(|(n, _, _)| n == "n3")
                .collect();
            // every first copy on n3 has its own `lost` row: counting rows
            // is not enough, n3 also held replicas of n1's and n2's backups,
            // and the sweep marks them one by one
            let first_copies_marked =
                backups
                    .iter()
                    .filter(|(_, (_, n, _))| n == "n3")
                    .all(|(id, _)| {
                        copies.get(id).is_some_and(|rows| {
                            rows.iter().any(|(n, _, st)| n == "n3" && st == "lost")
                        })
                    });
            rows_on_n3.iter().all(|(_, _, st)| st == "lost")
                && first_copies_marked
                && !rows_on_n3.is_empty()
        },
    );
    let wrong: Vec<(String, Vec<(String, String)>)> = cat
        .good_copies()
        .into_iter()
        .filter(|(_, c)| c.len() != 2 || c.iter().any(|(n, _)| n == "n3"))
        .collect();
    assert!(
        wrong.is_empty(),
        "after forget-node, every backup has its two good copies on n1 and n2; not these: {wrong:?}"
    );
    let stored: usize = node_dirs[..2]
        .iter()
        .map(|d| count_files(&d.join("store")))
        .sum();
    assert_eq!(
        stored,
        2 * total,
        "two copies of every backup on n1 + n2, nothing else"
    );

    // ---- a changed byte in one copy: verify marks it, repair replaces it
    let (bad_id, bad_path) = cat
        .copies()
        .into_iter()
        .find_map(|(id, rows)| {
            rows.into_iter()
                .find(|(n, _, s)| n == "n1" && s == "ok")
                .map(|(_, p, _)| (id, p))
        })
        .expect("a copy row on n1");
    let bad_name = backups[&bad_id].0.clone();
    let mut bytes = std::fs::read(&bad_path).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&bad_path, &bytes).unwrap();
    let server = cluster.bin("ubackup-server");
    let n1_conf = node_dirs[0].join("server.conf");
    let (code, out, err) = run_bin(
        &server,
        &["-c", n1_conf.to_str().unwrap(), "verify"],
        Duration::from_secs(60),
    );
    assert_ne!(
        code,
        Some(0),
        "verify must report the changed copy: {out}{err}"
    );
    assert!(
        out.contains("CORRUPT") && out.contains(&bad_name),
        "verify output names the copy: {out}"
    );
    let dest = root.join("restore-after-corruption");
    let (code, out, err) = run_bin(
        &client,
        &[
            "-c",
            client_conf.to_str().unwrap(),
            "restore",
            "--id",
            &bad_id,
            "--dest",
            dest.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "restore with one copy corrupt: {out}{err}");
    let chain_dir: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for f in &chain_dir {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            same_bytes(f, &host.join(&name)),
            "{name} restored differs (the corrupt copy was used?)"
        );
    }
    wait_logged(
        "the corrupt copy is replaced",
        Duration::from_secs(60),
        &node_dirs,
        || {
            same_bytes(Path::new(&bad_path), &host.join(&bad_name))
                && cat.copies()[&bad_id]
                    .iter()
                    .any(|(n, _, s)| n == "n1" && s == "ok")
        },
    );
    let (code, out, err) = run_bin(
        &server,
        &["-c", n1_conf.to_str().unwrap(), "verify"],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "verify after the repair: {out}{err}");

    for (k, n) in nodes.iter_mut().enumerate().take(2) {
        n.signal(libc::SIGTERM);
        assert_eq!(
            n.wait_exit(Duration::from_secs(20)),
            Some(Some(0)),
            "node n{} exit",
            k + 1
        );
    }
}

fn rc_hget(cluster: &Cluster, prefix: &str, field: &str) -> Option<i64> {
    let mut c = cluster.conn();
    c.hget(format!("{prefix}replication"), field).ok()
}

/// Regular files under a store, its temp and quarantine areas left out.
fn count_files(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".ubackup-") {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                n += 1;
            }
        }
    }
    n
}

/// kill -9 of the replicating node after its rsync finished (the temp file
/// is there, nothing landed) and after it landed a copy but before it
/// recorded it, and kill -9 of the source node while copies are pulled
/// from it: after restarts, every backup has exactly two good copies,
/// each one on disk and byte-identical, nothing is left in the temp areas,
/// and no node holds a file twice.
#[test]
fn kill9_mid_copy_and_of_the_source_loses_nothing_and_makes_no_third_copy() {
    let _one = crate::one_cluster();
    let cluster = ClusterBuilder::new("replcrash").start().unwrap();
    let root = cluster.dir.path().to_path_buf();
    let names = cluster.names.clone();
    let mut rc = cluster.conn();
    let host = root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let made: Vec<Made> = make_files(&host).into_iter().take(20).collect();
    let dbhost = cluster.test_dbhost(&host, false, "").unwrap();
    let catalog = root.join("catalog.db");
    // n3 is zone b: a backup pulled by n1 or n2 gets its copy on n3 while
    // n3 is up
    let rig = Rig::start(&cluster, &root, &["n1", "n2", "n3"], &catalog, None);
    let _indexer = start_indexer(&cluster, &root, &catalog, None);
    let mut nodes: Vec<Proc> = vec![
        rig.spawn(&cluster, 0, None),
        rig.spawn(&cluster, 1, None),
        // the replicating node dies once mid-copy, then once between
        // landing and recording
        rig.spawn(&cluster, 2, Some("replica_pulled=exit")),
    ];
    for id in ["n1", "n2", "n3"] {
        cluster
            .wait_alive(id, &format!("node {id} heartbeat"), Duration::from_secs(20))
            .unwrap();
    }
    for m in &made {
        let _: () = rc.lpush(&names.lo, message(m, dbhost.port)).unwrap();
    }
    let dirs = rig.dirs.clone();
    wait_logged("n3 dies mid-copy", Duration::from_secs(60), &dirs, || {
        nodes[2].wait_exit(Duration::from_millis(20)).is_some()
    });
    nodes[2] = rig.spawn(&cluster, 2, Some("before_record_copy=exit"));
    wait_logged(
        "n3 dies before recording a copy",
        Duration::from_secs(60),
        &dirs,
        || nodes[2].wait_exit(Duration::from_millis(20)).is_some(),
    );
    // the source side: n1 dies while n3 may be pulling from it
    nodes[2] = rig.spawn(&cluster, 2, None);
    std::thread::sleep(Duration::from_millis(300));
    nodes[0].kill9_group();
    nodes[0] = rig.spawn(&cluster, 0, None);

    let cat = Catalog(catalog.clone());
    let total = made.len();
    wait_logged(
        "every backup with two good copies after the crashes",
        Duration::from_secs(120),
        &dirs,
        || {
            let g = cat.good_copies();
            g.len() == total && g.values().all(|c| c.len() == 2)
        },
    );
    let backups = cat.backups();
    for (id, copies) in cat.good_copies() {
        let name = &backups[&id].0;
        // (a repair while n3 was down may have put a copy in zone a: the
        // rule is another zone when one is up)
        assert_ne!(copies[0].0, copies[1].0, "{name}: two copies on one node");
        for (node, path) in &copies {
            assert!(
                same_bytes(Path::new(path), &host.join(name)),
                "{name}: the copy recorded on {node} is not the file"
            );
        }
    }
    // the copy landed before the second crash was recorded by the restart,
    // not pulled again
    let n3_log = std::fs::read_to_string(dirs[2].join("server.log")).unwrap();
    assert!(
        n3_log.contains("(landed by an earlier run)"),
        "n3 did not record the copy it had landed before the crash"
    );
    // no copy row beyond the one per backup, none in another state
    let rows: usize = cat.copies().values().map(Vec::len).sum();
    assert_eq!(rows, total, "one copy row per backup");
    let stored: usize = dirs.iter().map(|d| count_files(&d.join("store"))).sum();
    assert_eq!(stored, 2 * total, "no third copy, no stray file");
    // the temp areas are emptied by the restarts and the finished copies
    wait_logged(
        "the temp areas are empty",
        Duration::from_secs(30),
        &dirs,
        || {
            dirs.iter()
                .all(|d| temp_files(&d.join("store").join(".ubackup-tmp")) == 0)
        },
    );
    // a SIGTERM before a restarted node has installed its handler would
    // kill it by signal: wait for each start's "started" line first
    wait_logged(
        "every node's last start is up",
        Duration::from_secs(20),
        &dirs,
        || {
            [(0, 2), (1, 1), (2, 3)].iter().all(|&(k, starts)| {
                let log = std::fs::read_to_string(dirs[k].join("server.log")).unwrap_or_default();
                log.matches(" started node=").count() >= starts
            })
        },
    );
    for n in nodes.iter_mut() {
        n.signal(libc::SIGTERM);
        assert_eq!(n.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    }
}

/// While a node's one replication slot is busy and more tasks wait on its
/// replication list, the node waits for the copy (or a backup message)
/// instead of looking at its lists again and again: Redis serves a few
/// commands a second, not the thousands a dispatcher woken by its own
/// replication list made (which slowed first copies by 1.4× in the
/// benchmark).
#[test]
fn a_busy_replication_slot_with_tasks_waiting_does_not_spin() {
    let _one = crate::one_cluster();
    let cluster = ClusterBuilder::new("replidle").start().unwrap();
    let root = cluster.dir.path().to_path_buf();
    let names = cluster.names.clone();
    let mut rc = cluster.conn();
    let host = root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let made: Vec<Made> = make_files(&host).into_iter().take(8).collect();
    let dbhost = cluster.test_dbhost(&host, false, "").unwrap();
    let catalog = root.join("catalog.db");
    let rig = Rig::start(&cluster, &root, &["n1", "n3"], &catalog, None);
    // n3's copies crawl (a few KiB at 2 KB/s: a couple of seconds each), so
    // its replication list holds waiting tasks while one runs. n3 watches
    // only the high list, which nothing is pushed to: every backup is n1's
    // to pull (else whichever node popped first would claim them all as
    // one batch, and n3 might hold the first copies and copy nothing)
    let conf = rig.dirs[1].join("server.conf");
    ubackup_testkit::cluster::Conf::from_text(std::fs::read_to_string(&conf).unwrap())
        .apply(&[("replica_bwlimit", "2"), ("redis_queue", names.hi.as_str())])
        .write(&conf)
        .unwrap();
    let _indexer = start_indexer(&cluster, &root, &catalog, None);
    let mut nodes = [rig.spawn(&cluster, 0, None), rig.spawn(&cluster, 1, None)];
    for id in ["n1", "n3"] {
        cluster
            .wait_alive(id, &format!("node {id} heartbeat"), Duration::from_secs(20))
            .unwrap();
    }
    for m in &made {
        let _: () = rc.lpush(&names.lo, message(m, dbhost.port)).unwrap();
    }
    let n3_list = cluster.keys.replica("n3");
    let dirs = rig.dirs.clone();
    wait_logged(
        "n3 copying with more tasks waiting",
        Duration::from_secs(60),
        &dirs,
        || {
            let log = std::fs::read_to_string(dirs[1].join("server.log")).unwrap_or_default();
            // copies follow one another back to back while tasks wait
            log.contains("copy landed, verified and recorded source=n1")
                && rc.llen::<_, usize>(&n3_list).unwrap_or(0) > 0
        },
    );
    let served = |rc: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(rc).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = served(&mut rc);
    let t = std::time::Instant::now();
    // a measuring window, not a wait for a condition
    std::thread::sleep(Duration::from_secs(1));
    let per_sec = (served(&mut rc) - before) as f64 / t.elapsed().as_secs_f64();
    let still_waiting = rc.llen::<_, usize>(&n3_list).unwrap_or(0);
    assert!(
        per_sec < 400.0,
        "{per_sec:.0} Redis commands/s while n3 copies with {still_waiting} task(s) waiting"
    );
    // and the copies still all get made
    let cat = Catalog(catalog.clone());
    wait_logged(
        "every backup with two good copies",
        Duration::from_secs(120),
        &dirs,
        || {
            let g = cat.good_copies();
            g.len() == made.len() && g.values().all(|c| c.len() == 2)
        },
    );
    for n in nodes.iter_mut() {
        n.signal(libc::SIGTERM);
        assert_eq!(n.wait_exit(Duration::from_secs(20)), Some(Some(0)));
    }
}

/// Regular files in a temp area, its process-group records left out.
fn temp_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() && e.file_name() != "pgid" {
                stack.push(e.path());
            } else if ft.is_file() && d.file_name().is_some_and(|f| f != "pgid") {
                n += 1;
            }
        }
    }
    n
}
