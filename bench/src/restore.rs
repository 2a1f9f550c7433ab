//! The `restore` workload: restoring a chain at raw speed (target 3 of the
//! performance issue: a chain of 3 × 256 MiB back in ≤ 1.1× the time of a
//! raw rsync of the same files).
//!
//! One node (2 workers would leave a file waiting: 3, one per file of the
//! chain) with its read-only module from deploy/rsyncd/node-rsyncd.conf
//! over its server_root_path, and one indexer writing the SQLite catalog
//! restore reads. The chain (a full and two incrementals of one instance,
//! `restore_mib` MiB of incompressible data each, linked by
//! `last_all_filename` / `last_all_time` as ubackup-client sends them) is
//! shipped once through the real pipeline: messages → node → results →
//! indexer → catalog.
//!
//! Per run, after a `sync`:
//! 1. `ubackup-client restore --type mysql --instance N --dest NEW` (the
//!    release binary, a real process; no `--at`, so the newest backup, the
//!    second incremental, and with it the whole chain): end to end, from
//!    the spawn to its exit (catalog lookup, chain, one rsync from the
//!    node, blake3 of every file, the rename into `--dest`);
//! 2. right after it, raw rsync of the same 3 files from the same module
//!    URLs into an empty directory, in one call (restore too makes one
//!    rsync per node) with the options class restore uses (`-s --no-links
//!    --times --sockopts=TCP_NODELAY`);
//! 3. the raw copy plus a blake3 pass over it (one thread per file, as
//!    restore verifies): what "pull and check" costs without ubackup.
//!
//! Both copies are checked against the originals (the file set, sizes and
//! blake3) outside the timings, so a broken restore fails the bench
//! instead of reporting a fast time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ubackup_common::fsutil::blake3_file;
use ubackup_common::Keys;
use ubackup_testkit::cluster::{render_rsyncd, start_listening, Daemon};
use ubackup_testkit::unique;

use crate::data::{message, push_all, LargeSet};
use crate::procs::{wait_for, Env, Indexer, IndexerSetup, Server, ServerSetup};
use crate::stats::Samples;
use crate::workloads::{remove, sync, Opts, LONG};

/// The shipped node module config, embedded so the harness binary runs
/// from any directory.
const NODE_RSYNCD: &str = include_str!("../../deploy/rsyncd/node-rsyncd.conf");
/// The chain, oldest first: the full, then its two incrementals.
pub const CHAIN: [&str; 3] = ["rfull.xb", "rinc1.xb", "rinc2.xb"];
/// The instance the chain belongs to (the messages' `server_id` is
/// [`SERVER_ID`], their `game_server_ip` 127.0.0.1).
const INSTANCE: i64 = 3310;
/// `server_id` of [`crate::data::message`]; the client config restores
/// that host's backups.
const SERVER_ID: i64 = 900001;
/// One worker per file of the chain, so shipping is not serialised.
const WORKERS: usize = 3;

/// The node, its module and the indexer.
struct Rig {
    server: Option<Server>,
    module: Option<Daemon>,
    indexer: Option<Indexer>,
    dir: PathBuf,
    catalog: PathBuf,
    lo: String,
}

impl Rig {
    fn start(env: &Env) -> Result<Rig> {
        let dir = env.fresh_dir("rsnode");
        let store = dir.join("store");
        std::fs::create_dir_all(&store)?;
        let conf = render_rsyncd(NODE_RSYNCD, &dir, &store, "127.0.0.0/8");
        std::fs::write(dir.join("rsyncd.conf"), conf)?;
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let mut modules = start_listening("rsync --daemon (node module)", &[ip], |addr, port| {
            let mut c = Command::new("rsync");
            c.arg("--daemon")
                .arg("--no-detach")
                .arg(format!("--config={}", dir.join("rsyncd.conf").display()))
                .arg(format!("--port={port}"))
                .arg(format!("--address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        })?;
        let module = modules.pop().context("the node module daemon")?;
        // the module exports exactly what the node writes
        let root = format!("{}/", store.display());
        let setup = ServerSetup::new(env, WORKERS, &[("server_root_path", &root)])?;
        let catalog = dir.join("catalog.db");
        // the indexer pops the node's results list itself (batch_ms 100:
        // the catalog is what the harness waits on)
        let id = unique("indexer");
        let conf = dir.join("indexer.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\nredis_url = {}\nmessage_queue = {}\nkey_prefix = {}\nindexer_id = {id}\ncatalog = {}\nbatch_ms = 100\nlog = {}\n[business]\n31 = bench\n",
                env.redis.url(),
                setup.results,
                setup.prefix(),
                catalog.display(),
                dir.join("indexer.log").display()
            ),
        )?;
        let ix = IndexerSetup {
            id,
            queue: setup.results.clone(),
            keys: Keys::new(setup.prefix()),
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
        let lo = setup.lo.clone();
        let server = setup.spawn(env, true)?;
        Ok(Rig {
            server: Some(server),
            module: Some(module),
            indexer: Some(indexer),
            dir,
            catalog,
            lo,
        })
    }

    fn module_port(&self) -> u16 {
        self.module.as_ref().map(|m| m.port).unwrap_or(0)
    }

    fn stop(mut self) -> Result<()> {
        let mut first_err = None;
        if let Some(s) = self.server.take() {
            if let Err(e) = s.stop() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(ix) = self.indexer.take() {
            if let Err(e) = ix.stop() {
                first_err.get_or_insert(e);
            }
        }
        // the module daemon is killed by PID when dropped
        self.module.take();
        remove(&self.dir);
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// (filename, succeed, log) of every backup in the catalog; empty while
/// it is busy or not readable yet.
fn catalog_rows(db: &Path) -> Vec<(String, i64, String)> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut st) = c.prepare("SELECT filename, succeed, log FROM backups") else {
        return Vec::new();
    };
    st.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            r.get(1)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        ))
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// The chain's messages: the full, then two incrementals naming it, one
/// second apart (create_time is in seconds; restore picks the newest).
fn chain_messages(set: &LargeSet) -> Result<Vec<String>> {
    let t0 = ubackup_common::message::now_secs() - 10;
    let mut out = Vec::new();
    for i in 0..CHAIN.len() {
        let (name, bytes, sum) = &set.files[i];
        let mut v: serde_json::Value = serde_json::from_str(&message(
            set.daemon.port,
            "large",
            name,
            *bytes,
            sum,
            INSTANCE,
        ))?;
        v["create_time"] = (t0 + i as i64).into();
        if i > 0 {
            // as ubackup-client links an incremental to its full
            v["last_all_filename"] = CHAIN[0].into();
            v["last_all_time"] = t0.into();
        }
        out.push(v.to_string());
    }
    Ok(out)
}

/// Ships the chain through the node and waits until the catalog has all
/// of it; Err on a failed backup.
fn ship(env: &Env, rig: &Rig, set: &LargeSet) -> Result<()> {
    let mut c = env.conn();
    push_all(&mut c, &rig.lo, &chain_messages(set)?)?;
    let mut failed = None;
    wait_for(
        "the chain of 3 in the catalog",
        LONG,
        Duration::from_millis(20),
        || {
            let rows = catalog_rows(&rig.catalog);
            if let Some(r) = rows.iter().find(|r| r.1 != 1) {
                failed = Some(format!("{}: {}", r.0, r.2));
                return true;
            }
            CHAIN
                .iter()
                .all(|n| rows.iter().any(|r| r.0 == *n && r.1 == 1))
        },
    )?;
    if let Some(why) = failed {
        bail!("shipping the chain failed: {why}");
    }
    Ok(())
}

/// blake3 of every file of `dir` named in `files`, one thread per file
/// (as restore verifies); (name, size, checksum) in `files`' order.
fn hash_all(dir: &Path, files: &[(String, u64, String)]) -> Result<Vec<(String, u64, String)>> {
    std::thread::scope(|s| {
        let hs: Vec<_> = files
            .iter()
            .map(|(name, _, _)| {
                let p = dir.join(name);
                s.spawn(move || -> Result<(String, u64, String)> {
                    let size = std::fs::metadata(&p)
                        .with_context(|| format!("{} is missing", p.display()))?
                        .len();
                    Ok((name.clone(), size, blake3_file(&p)?))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a hash thread panicked"))?
            })
            .collect()
    })
}

/// Fails unless `dir` holds exactly the originals, byte for byte (sizes
/// and blake3); `got` is [`hash_all`] of it when already computed.
fn verify(
    what: &str,
    dir: &Path,
    originals: &[(String, u64, String)],
    got: Option<Vec<(String, u64, String)>>,
) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{what}: {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut want: Vec<String> = originals.iter().map(|f| f.0.clone()).collect();
    want.sort();
    if names != want {
        bail!(
            "{what}: {} holds {names:?}, expected {want:?}",
            dir.display()
        );
    }
    let got = match got {
        Some(g) => g,
        None => hash_all(dir, originals)?,
    };
    for (g, o) in got.iter().zip(originals) {
        if g.1 != o.1 || g.2 != o.2 {
            bail!(
                "{what}: {} is {} bytes {}, the original {} bytes {}",
                g.0,
                g.1,
                g.2,
                o.1,
                o.2
            );
        }
    }
    Ok(())
}

/// The raw counterpart: one rsync of `urls` into `dest` (an empty
/// directory), the options class of restore's pull.
fn raw_pull(urls: &[String], dest: &Path) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new("rsync")
        .args([
            "-s",
            "--no-links",
            "--times",
            "--sockopts=TCP_NODELAY",
            "--",
        ])
        .args(urls)
        .arg(format!("{}/", dest.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let el = t.elapsed();
    if !out.status.success() {
        bail!(
            "raw rsync of the chain failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(el)
}

pub fn restore(env: &Env, o: &Opts, s: &mut Samples) -> Result<()> {
    let bytes = o.restore_mib << 20;
    let total = bytes * CHAIN.len() as u64;
    eprintln!(
        "creating a chain of {} files of {} MiB for restore",
        CHAIN.len(),
        o.restore_mib
    );
    let src = env.work.join("rs");
    let sizes: Vec<(&str, u64)> = CHAIN.iter().map(|n| (*n, bytes)).collect();
    let set = LargeSet::create(&src, &sizes)?;
    let rig = Rig::start(env)?;
    eprintln!("  restore: shipping the chain through the node and the indexer");
    ship(env, &rig, &set)?;
    let originals = set.files.clone();
    // the database host's copies are not needed any more (their checksums
    // are kept): free the disk and the page cache they hold
    drop(set);
    remove(&src);

    let cdir = env.fresh_dir("rsclient");
    let conf = cdir.join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nserver_id = {SERVER_ID}\ngame_id = 31\nredis_host = 127.0.0.1\nredis_port = {}\nmy_ip = 127.0.0.1\nnode_rsync_port = {}\ncatalog = {}\nlog = {}\n",
            env.redis.port,
            rig.module_port(),
            rig.catalog.display(),
            cdir.join("client.log").display()
        ),
    )?;
    // where the node landed them: TYPE/A.B.C/D/ under server_root_path
    let urls: Vec<String> = CHAIN
        .iter()
        .map(|n| {
            format!(
                "rsync://127.0.0.1:{}/ubackup/mysql/127.0.0/1/{n}",
                rig.module_port()
            )
        })
        .collect();
    // one unrecorded raw pass first, as the large workload does: the first
    // read of freshly written files ran slower than later ones
    eprintln!("  restore, warm-up pass");
    sync();
    let dest = env.fresh_dir("rsraw");
    raw_pull(&urls, &dest)?;
    verify("the warm-up copy", &dest, &originals, None)?;
    remove(&dest);
    let instance = INSTANCE.to_string();
    for run in 0..o.runs {
        eprintln!("  restore, run {}/{}", run + 1, o.runs);
        sync();
        // a new directory: restore refuses a non-empty --dest
        let dest = env.work.join(unique("restored"));
        let t = Instant::now();
        let out = Command::new(&env.bins.client)
            .arg("-c")
            .arg(&conf)
            .args(["restore", "--type", "mysql", "--instance", &instance])
            .arg("--dest")
            .arg(&dest)
            .stdin(Stdio::null())
            .output()?;
        let el = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "ubackup-client restore: {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        verify("the restore", &dest, &originals, None)?;
        remove(&dest);
        s.add("restore.ub", el);
        s.add("restore.ub.mbps", total as f64 / el / 1e6);

        sync();
        let dest = env.fresh_dir("rsraw");
        let el = raw_pull(&urls, &dest)?.as_secs_f64();
        // the check restore makes, on the raw copy, timed right after it
        let t = Instant::now();
        let sums = hash_all(&dest, &originals)?;
        let hash = t.elapsed().as_secs_f64();
        verify("the raw copy", &dest, &originals, Some(sums))?;
        remove(&dest);
        s.add("restore.raw", el);
        s.add("restore.raw.mbps", total as f64 / el / 1e6);
        s.add("restore.raw_b3", el + hash);
        s.add("restore.raw_b3.mbps", total as f64 / (el + hash) / 1e6);
    }
    sync();
    remove(&cdir);
    rig.stop()
}
