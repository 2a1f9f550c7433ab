//! The `replication` workload: copies on other nodes (`copies = 2`).
//!
//! Three nodes on 127.0.0.1/.2/.3 (zones `a`, `a`, `b`, 2 workers each),
//! each with its read-only module from deploy/rsyncd/node-rsyncd.conf over
//! its store, all modules on one common port, and one indexer writing the
//! SQLite catalog the nodes verify and record copies in. The nodes' results
//! go through a relay in the harness (BRPOP, timestamp, LPUSH onto the
//! indexer's list): the indexer pops the results list itself, so without
//! the relay the harness could not see when each first copy was acked.
//!
//! Per run:
//! 1. `n` small files, each from its own source module, pushed one at a
//!    time 10-40 ms apart (so replication has idle slots to run in while
//!    first copies keep arriving) to a cluster with `copies = 1` and to one
//!    with `copies = 2`; push → result per message, p50/p95. The order of
//!    the two alternates between runs.
//! 2. On the `copies = 2` cluster, once every backup has two good copies:
//!    node 3 (zone `b`, which holds a copy of nearly every backup) and its
//!    module are killed with SIGKILL and its store deleted; time until every
//!    backup has two good copies on nodes 1 and 2 again, from the catalog
//!    (`repair_after_secs = 1`, `repair_interval_secs = 1`, heartbeat 1 s).
//!    Against raw rsync of the same files from the same source modules into
//!    an empty directory: one file per call, sequentially (a node runs one
//!    replication task at a time), and one `--files-from` call per source
//!    node.
//! 3. The bytes the copies amount to, against the data set.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Commands;
use ubackup_common::Keys;
use ubackup_testkit::cluster::{render_rsyncd, start_listening, Daemon};
use ubackup_testkit::unique;

use crate::data::SmallSet;
use crate::procs::{wait_for, Env, Indexer, IndexerSetup, Server, ServerSetup};
use crate::raw::{self, Sock};
use crate::stats::{percentile, Samples};
use crate::workloads::{gap, remove, Opts, LONG};

/// The shipped node module config, embedded so the harness binary runs
/// from any directory.
const NODE_RSYNCD: &str = include_str!("../../deploy/rsyncd/node-rsyncd.conf");
/// Zones of nodes 1, 2, 3: the copy of a backup first landed in zone `a`
/// goes to node 3, so losing node 3 loses a copy of nearly every backup.
const ZONES: [&str; 3] = ["a", "a", "b"];
/// The node that is lost in the repair phase.
const LOST: usize = 2;
const WORKERS: usize = 2;

/// One node of the rig.
struct Node {
    server: Option<Server>,
    module: Option<Daemon>,
    dir: PathBuf,
    store: PathBuf,
    ip: IpAddr,
}

/// Results seen by the relay: filename → (when, succeeded).
type Seen = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

/// Moves the nodes' results to the indexer's list, noting when each
/// arrived.
struct Relay {
    stop: Arc<AtomicBool>,
    seen: Seen,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Relay {
    fn start(env: &Env, from: String, to: String) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Seen = Arc::default();
        let mut c = env.conn();
        let (st, sn) = (stop.clone(), seen.clone());
        let handle = std::thread::spawn(move || -> Result<()> {
            while !st.load(Ordering::SeqCst) {
                let got: Option<(String, String)> = c.brpop(&from, 0.2)?;
                let Some((_, r)) = got else { continue };
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_str(&r)?;
                if let Some(f) = v["filename"].as_str() {
                    sn.lock()
                        .unwrap()
                        .entry(f.to_string())
                        .or_insert((now, v["succeed"] == 1));
                }
                let _: () = c.lpush(&to, &r)?;
            }
            Ok(())
        });
        Relay {
            stop,
            seen,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the result relay panicked"),
            None => Ok(()),
        }
    }
}

/// A backup as the catalog has it, with its good copies (node, path).
struct Backup {
    size: u64,
    first_node: String,
    good: Vec<(String, String)>,
}

/// Every good copy per backup, read like `e2e/tests/replication.rs`
/// does: the first copy (in `backups`) unless a copy row of its node says
/// otherwise, then every copy row in state `ok`. Empty while the catalog
/// does not exist yet or is busy.
fn good_copies(db: &Path) -> BTreeMap<String, Backup> {
    let mut out = BTreeMap::new();
    if !db.exists() {
        return out;
    }
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return out;
    };
    let Ok(mut st) = c.prepare(
        "SELECT id, filename, node, file_path, size FROM backups WHERE succeed = 1 AND illegal IS NULL",
    ) else {
        return out;
    };
    let rows: Vec<(String, String, String, String, i64)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let Ok(mut st) = c.prepare("SELECT backup_id, node, file_path, state FROM copies") else {
        return out;
    };
    let copies: Vec<(String, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    let mut by_id: HashMap<&str, Vec<&(String, String, String, String)>> = HashMap::new();
    for row in &copies {
        by_id.entry(row.0.as_str()).or_default().push(row);
    }
    for (id, name, node, dir, size) in rows {
        let mine = by_id.get(id.as_str()).cloned().unwrap_or_default();
        let mut good = Vec::new();
        if !mine.iter().any(|r| r.1 == node) {
            good.push((
                node.clone(),
                format!("{}/{name}", dir.trim_end_matches('/')),
            ));
        }
        for r in mine {
            if r.3 == "ok" {
                good.push((r.1.clone(), r.2.clone()));
            }
        }
        out.insert(
            id,
            Backup {
                size: size.max(0) as u64,
                first_node: node,
                good,
            },
        );
    }
    out
}

/// Bytes of every copy beyond the first (what replication wrote).
fn copied_bytes(g: &BTreeMap<String, Backup>) -> u64 {
    g.values()
        .map(|b| b.size * b.good.iter().filter(|c| c.0 != b.first_node).count() as u64)
        .sum()
}

fn as_pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Three nodes, their modules, the indexer and the relay.
struct Rig {
    nodes: Vec<Node>,
    ids: Vec<String>,
    module_port: u16,
    catalog: PathBuf,
    lo: String,
    indexer: Option<Indexer>,
    relay: Option<Relay>,
}

impl Rig {
    fn start(env: &Env, copies: usize) -> Result<Rig> {
        let ips: Vec<IpAddr> = (1..=3u8).map(|k| IpAddr::from([127, 0, 0, k])).collect();
        let mut dirs = Vec::new();
        for _ in 0..3 {
            let d = env.fresh_dir("rnode");
            std::fs::create_dir_all(d.join("store"))?;
            let conf = render_rsyncd(NODE_RSYNCD, &d, &d.join("store"), "127.0.0.0/8");
            std::fs::write(d.join("rsyncd.conf"), conf)?;
            dirs.push(d);
        }
        let modules = start_listening("rsync --daemon (node module)", &ips, |addr, port| {
            let k = ips.iter().position(|a| *a == addr).unwrap_or(0);
            let mut c = Command::new("rsync");
            c.arg("--daemon")
                .arg("--no-detach")
                .arg(format!(
                    "--config={}",
                    dirs[k].join("rsyncd.conf").display()
                ))
                .arg(format!("--port={port}"))
                .arg(format!("--address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        })?;
        let module_port = modules[0].port;
        let catalog = env.fresh_dir("rix").join("catalog.db");
        let extra = |k: usize| -> Vec<(String, String)> {
            vec![
                ("myip".into(), ips[k].to_string()),
                (
                    "server_root_path".into(),
                    format!("{}/", dirs[k].join("store").display()),
                ),
                ("copies".into(), copies.to_string()),
                ("zone".into(), ZONES[k].into()),
                ("catalog".into(), catalog.display().to_string()),
                ("node_rsync_port".into(), module_port.to_string()),
                ("repair_after_secs".into(), "1".into()),
                ("repair_interval_secs".into(), "1".into()),
                // a lost node must stop counting as alive within seconds
                // (the default heartbeat is 30 s)
                ("heartbeat_secs".into(), "1".into()),
            ]
        };
        let e0 = extra(0);
        let first = ServerSetup::new(env, WORKERS, &as_pairs(&e0))?;
        let e1 = extra(1);
        let e2 = extra(2);
        let setups = vec![
            first.sibling(env, WORKERS, &as_pairs(&e1))?,
            first.sibling(env, WORKERS, &as_pairs(&e2))?,
        ];
        let prefix = first.prefix().to_string();
        let lo = first.lo.clone();
        let results = first.results.clone();
        let indexed = format!("{prefix}indexed");

        // the indexer first: the nodes verify copies against its catalog
        let ixdir = catalog.parent().context("catalog dir")?.to_path_buf();
        let ix_id = unique("indexer");
        let conf = ixdir.join("indexer.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\nredis_url = {}\nmessage_queue = {indexed}\nkey_prefix = {prefix}\nindexer_id = {ix_id}\ncatalog = {}\nbatch_ms = 100\nlog = {}\n[business]\n31 = bench\n",
                env.redis.url(),
                catalog.display(),
                ixdir.join("indexer.log").display()
            ),
        )?;
        let ix = IndexerSetup {
            id: ix_id,
            queue: indexed.clone(),
            keys: Keys::new(&prefix),
            db: catalog.clone(),
            conf,
        };
        let indexer = ix.spawn(env)?;
        wait_for(
            "the indexer's catalog",
            Duration::from_secs(20),
            Duration::from_millis(10),
            || catalog.exists(),
        )?;
        let relay = Relay::start(env, results, indexed);
        let mut all = vec![first];
        all.extend(setups);
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        for ((st, d), m) in all.into_iter().zip(dirs).zip(modules) {
            ids.push(st.id.clone());
            let ip = m.addr;
            nodes.push(Node {
                server: Some(st.spawn(env, true)?),
                module: Some(m),
                store: d.join("store"),
                dir: d,
                ip,
            });
        }
        Ok(Rig {
            nodes,
            ids,
            module_port,
            catalog,
            lo,
            indexer: Some(indexer),
            relay: Some(relay),
        })
    }

    fn seen(&self) -> Seen {
        self.relay.as_ref().expect("relay").seen.clone()
    }

    /// Node `k` lost: the process and its module killed, its store gone.
    fn lose(&mut self, k: usize) -> Result<()> {
        if let Some(s) = self.nodes[k].server.take() {
            s.kill9();
        }
        if let Some(mut m) = self.nodes[k].module.take() {
            m.proc.kill9_group();
        }
        std::fs::remove_dir_all(&self.nodes[k].store)?;
        Ok(())
    }

    fn stop(mut self) -> Result<()> {
        let mut first_err = None;
        for n in &mut self.nodes {
            if let Some(s) = n.server.take() {
                if let Err(e) = s.stop() {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(r) = self.relay.take() {
            if let Err(e) = r.stop() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(ix) = self.indexer.take() {
            if let Err(e) = ix.stop() {
                first_err.get_or_insert(e);
            }
        }
        for n in &mut self.nodes {
            // the module daemons are killed by PID when dropped
            n.module.take();
            remove(&n.dir);
        }
        if let Some(d) = self.catalog.parent() {
            remove(d);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Pushes the `n` messages one at a time, 10-40 ms apart, and waits for
/// every result; push → result in ms per message.
fn first_copies(env: &Env, rig: &Rig, set: &SmallSet, n: usize) -> Result<Vec<f64>> {
    let mut c = env.conn();
    let seen = rig.seen();
    let mut pushed = Vec::with_capacity(n);
    for i in 0..n {
        std::thread::sleep(gap(i));
        let t = Instant::now();
        let _: () = c.lpush(&rig.lo, set.message_own_source(i))?;
        pushed.push((format!("f{i}.bin"), t));
    }
    wait_for(
        &format!("{n} first copies"),
        LONG,
        Duration::from_millis(2),
        || {
            let s = seen.lock().unwrap();
            pushed.iter().all(|(f, _)| s.contains_key(f))
        },
    )?;
    let s = seen.lock().unwrap();
    let mut out = Vec::with_capacity(n);
    for (f, t) in &pushed {
        let (at, ok) = s[f];
        if !ok {
            bail!("the first copy of {f} failed");
        }
        out.push(at.duration_since(*t).as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// A copy of a re-replicated backup that survived the loss: where the
/// raw counterpart pulls it from.
struct Survivor {
    node: usize,
    rel: String,
    size: u64,
}

pub fn replication(env: &Env, set: &SmallSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let n = set.n;
    let data = (n * set.size) as u64;
    for run in 0..o.runs {
        eprintln!("  replication, run {}/{}", run + 1, o.runs);
        let order: [usize; 2] = if run % 2 == 0 { [1, 2] } else { [2, 1] };
        for copies in order {
            let mut rig = Rig::start(env, copies)?;
            let lat = first_copies(env, &rig, set, n)?;
            s.add(
                &format!("repl.c{copies}.p50"),
                percentile(&lat, 50.0).unwrap(),
            );
            s.add(
                &format!("repl.c{copies}.p95"),
                percentile(&lat, 95.0).unwrap(),
            );
            if copies == 1 {
                rig.stop()?;
                continue;
            }
            // how far replication kept up while first copies still arrived
            let last_first = Instant::now();
            let g = good_copies(&rig.catalog);
            let during = g.values().filter(|b| b.good.len() >= 2).count();
            s.add("repl.c2.during_pct", during as f64 / n as f64 * 100.0);
            wait_for(
                "every backup with two good copies",
                LONG,
                Duration::from_millis(20),
                || {
                    let g = good_copies(&rig.catalog);
                    g.len() == n && g.values().all(|b| b.good.len() == 2)
                },
            )?;
            s.add("repl.c2.rest_secs", last_first.elapsed().as_secs_f64());
            let before = good_copies(&rig.catalog);
            s.add(
                "repl.bytes.copies_ratio",
                copied_bytes(&before) as f64 / data as f64,
            );

            // ---- lose a node
            let lost = rig.ids[LOST].clone();
            let mut survivors: BTreeMap<String, Survivor> = BTreeMap::new();
            for (id, b) in &before {
                if !b.good.iter().any(|c| c.0 == lost) {
                    continue;
                }
                let (node, path) = b
                    .good
                    .iter()
                    .find(|c| c.0 != lost)
                    .context("a backup with both copies on the lost node")?;
                let k = rig
                    .ids
                    .iter()
                    .position(|x| x == node)
                    .context("a copy on an unknown node")?;
                let rel = Path::new(path)
                    .strip_prefix(&rig.nodes[k].store)
                    .with_context(|| format!("{path} is not under its node's store"))?
                    .display()
                    .to_string();
                survivors.insert(
                    id.clone(),
                    Survivor {
                        node: k,
                        rel,
                        size: b.size,
                    },
                );
            }
            let lost_bytes: u64 = survivors.values().map(|v| v.size).sum();
            rig.lose(LOST)?;
            let t = Instant::now();
            let mut first_new: Option<f64> = None;
            let live_copies = |b: &Backup| -> Vec<String> {
                b.good
                    .iter()
                    .filter(|c| c.0 != lost)
                    .map(|c| c.0.clone())
                    .collect()
            };
            wait_for(
                "every backup with two good copies on the nodes that are left",
                LONG,
                Duration::from_millis(20),
                || {
                    let g = good_copies(&rig.catalog);
                    if first_new.is_none()
                        && g.iter()
                            .any(|(id, b)| survivors.contains_key(id) && live_copies(b).len() >= 2)
                    {
                        first_new = Some(t.elapsed().as_secs_f64());
                    }
                    g.len() == n
                        && g.values().all(|b| {
                            let l = live_copies(b);
                            l.len() == 2 && l[0] != l[1]
                        })
                },
            )?;
            let el = t.elapsed().as_secs_f64();
            let after = good_copies(&rig.catalog);
            let new_bytes: u64 = after
                .iter()
                .filter(|(id, _)| survivors.contains_key(*id))
                .map(|(id, b)| {
                    let old: Vec<&String> = before[id].good.iter().map(|c| &c.0).collect();
                    b.size * b.good.iter().filter(|c| !old.contains(&&c.0)).count() as u64
                })
                .sum();
            s.add("repl.repair.n", survivors.len() as f64);
            s.add("repl.repair.secs", el);
            s.add("repl.repair.first_secs", first_new.unwrap_or(el));
            s.add("repl.repair.mbps", lost_bytes as f64 / el / 1e6);
            s.add(
                "repl.repair.bytes_ratio",
                new_bytes as f64 / lost_bytes.max(1) as f64,
            );

            // ---- raw rsync of the same files from the same modules
            let url = |k: usize, rel: &str| {
                format!(
                    "rsync://{}:{}/ubackup/{rel}",
                    rig.nodes[k].ip, rig.module_port
                )
            };
            // rsync's default socket options, and TCP_NODELAY on the client
            // too (the node's own pulls set it: `rsync_nodelay`)
            for (sock, tag) in [(Sock::Default, "seq"), (Sock::NoDelay, "seq_nodelay")] {
                let dest = env.fresh_dir("rraw");
                let t = Instant::now();
                for v in survivors.values() {
                    raw::one(&url(v.node, &v.rel), &dest, sock, &[])?;
                }
                let seq = t.elapsed().as_secs_f64();
                s.add(&format!("repl.raw.{tag}"), seq);
                s.add(
                    &format!("repl.raw.{tag}.mbps"),
                    lost_bytes as f64 / seq / 1e6,
                );
                remove(&dest);
            }
            let dest = env.fresh_dir("rraw");
            let mut list_secs = 0.0;
            for k in 0..rig.nodes.len() {
                let rels: Vec<&str> = survivors
                    .values()
                    .filter(|v| v.node == k)
                    .map(|v| v.rel.as_str())
                    .collect();
                if rels.is_empty() {
                    continue;
                }
                let list = dest.with_extension(format!("list{k}"));
                std::fs::write(&list, rels.join("\n") + "\n")?;
                list_secs += raw::one(
                    &url(k, ""),
                    &dest,
                    Sock::Default,
                    &[format!("--files-from={}", list.display())],
                )?
                .as_secs_f64();
                let _ = std::fs::remove_file(&list);
            }
            s.add("repl.raw.list", list_secs);
            s.add("repl.raw.list.mbps", lost_bytes as f64 / list_secs / 1e6);
            remove(&dest);
            rig.stop()?;
        }
    }
    Ok(())
}
