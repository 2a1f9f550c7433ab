//! One function per workload. Each runs `opts.runs` times and records one
//! value per run and figure in [`Samples`]; ubackup and its counterpart
//! run back to back inside the same run, on the same files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Commands;
use ubackup_catalog::{Catalog, CatalogRecord, EsCatalog, EsSettings, SqliteCatalog};
use ubackup_common::message::now_ms;
use ubackup_common::ResultRecord;
use ubackup_testkit::es::EsStandIn;
use ubackup_testkit::unique;

use crate::data::{push_all, BurstSet, LargeSet, SmallSet};
use crate::procs::{
    cpu_busy_secs, rss_kib, wait_for, Env, IndexerSetup, Server, ServerSetup, Stores,
};
use crate::raw::{self, Sock};
use crate::stats::{percentile, Samples};

/// Sizes and counts of the workloads.
#[derive(Debug, Clone)]
pub struct Opts {
    pub runs: usize,
    pub small_n: usize,
    pub small_size: usize,
    pub large_files: usize,
    pub large_mib: u64,
    pub bw_kbps: u64,
    pub bw_mib: u64,
    pub latency_samples: usize,
    pub low_samples: usize,
    pub backlog_l1: usize,
    pub client_instances: usize,
    pub indexer_n: usize,
    pub burst_hosts: usize,
    pub burst_per_host: usize,
    pub repl_n: usize,
    pub repl_size: usize,
    /// MiB of each of the 3 files of the restore workload's chain.
    pub restore_mib: u64,
}

pub(crate) const LONG: Duration = Duration::from_secs(900);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(crate) fn remove(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}

/// Flushes dirty pages so one run's writeback does not slow the next.
pub(crate) fn sync() {
    let _ = Command::new("sync").status();
}

/// ubackup pulls `msgs` (pushed onto the normal list of an idle node with
/// `workers` workers); seconds from the push to the last result.
fn ubackup_pull(
    env: &Env,
    workers: usize,
    extra: &[(&str, &str)],
    msgs: &[String],
    s: &mut Samples,
    rss_key: &str,
) -> Result<f64> {
    let srv = Server::spawn(env, workers, extra)?;
    let mut c = env.conn();
    let t = Instant::now();
    push_all(&mut c, &srv.lo, msgs)?;
    srv.wait_results(&mut c, msgs.len(), LONG)?;
    let el = secs(t.elapsed());
    srv.check_all_ok(&mut c, msgs.len())?;
    s.add(rss_key, srv.peak_mib());
    srv.stop()?;
    Ok(el)
}

/// Small files, every message from its own source (no batching possible):
/// ubackup at 2 and 4 workers against per-file rsync at the same
/// parallelism (default socket options and TCP_NODELAY), and the floor.
pub fn small(env: &Env, set: &SmallSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let n = o.small_n;
    let msgs: Vec<String> = (0..n).map(|i| set.message_own_source(i)).collect();
    let srcs: Vec<String> = (0..n).map(|i| set.url_own_source(i)).collect();
    for run in 0..o.runs {
        eprintln!("  small files, run {}/{}", run + 1, o.runs);
        for w in [2usize, 4] {
            let el = ubackup_pull(env, w, &[], &msgs, s, "rss.server.load")?;
            s.add(&format!("small.ub.w{w}"), el);
            for (sock, tag) in [(Sock::Default, "raw"), (Sock::NoDelay, "nodelay")] {
                let dest = env.fresh_dir("raw");
                let el = raw::parallel(&srcs, &dest, sock, w)?;
                s.add(&format!("small.{tag}.w{w}"), secs(el));
                remove(&dest);
            }
        }
        let dest = env.fresh_dir("floor");
        s.add(
            "small.floor",
            secs(raw::one(&set.url_all(), &dest, Sock::Default, &[])?),
        );
        remove(&dest);
    }
    Ok(())
}

/// 1000 small files from one host and module, already queued when the
/// node starts; against the floor (one rsync of the whole directory).
pub fn backlog(env: &Env, set: &SmallSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let n = o.small_n;
    let msgs: Vec<String> = (0..n).map(|i| set.message_one_source(i)).collect();
    for run in 0..o.runs {
        eprintln!("  backlog from one source, run {}/{}", run + 1, o.runs);
        let setup = ServerSetup::new(env, 4, &[])?;
        let mut c = env.conn();
        push_all(&mut c, &setup.lo, &msgs)?;
        let t = Instant::now();
        let srv = setup.spawn(env, false)?;
        srv.wait_results(&mut c, n, LONG)?;
        let el = secs(t.elapsed());
        srv.check_all_ok(&mut c, n)?;
        s.add("rss.server.load", srv.peak_mib());
        srv.stop()?;
        s.add("backlog.ub.w4", el);
        let dest = env.fresh_dir("floor");
        s.add(
            "backlog.floor",
            secs(raw::one(&set.url_all(), &dest, Sock::Default, &[])?),
        );
        remove(&dest);
    }
    Ok(())
}

/// CPU seconds per GB (10^9 bytes) the machine spent since `before`.
fn add_cpu(s: &mut Samples, key: &str, before: Option<f64>, bytes: u64) {
    if let (Some(b), Some(a)) = (before, cpu_busy_secs()) {
        s.add(key, (a - b) / (bytes as f64 / 1e9));
    }
}

/// Large files: ubackup with as many workers as files against raw rsync
/// with the same parallelism, plain and with `--fsync` (durable, as
/// ubackup is); MB/s (10^6 bytes per second).
pub fn large(env: &Env, set: &LargeSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let total: u64 = set.files.iter().map(|f| f.1).sum();
    let n = set.files.len();
    let msgs: Vec<String> = (0..n).map(|i| set.message(i, 3306 + i as i64)).collect();
    let srcs: Vec<String> = (0..n).map(|i| set.url(i)).collect();
    // one unrecorded raw pass first: the first pass after the files are
    // made ran at a third to half the rate of later ones, for ubackup and
    // raw rsync alike, which made the first run's pair meaningless
    eprintln!("  large files, warm-up pass");
    sync();
    let dest = env.fresh_dir("raw");
    raw::parallel(&srcs, &dest, Sock::Default, n)?;
    remove(&dest);
    for run in 0..o.runs {
        eprintln!("  large files, run {}/{}", run + 1, o.runs);
        sync();
        let srv = Server::spawn(env, n, &[])?;
        let mut c = env.conn();
        let cpu = cpu_busy_secs();
        let t = Instant::now();
        push_all(&mut c, &srv.lo, &msgs)?;
        srv.wait_results(&mut c, n, LONG)?;
        let el = secs(t.elapsed());
        add_cpu(s, "large.ub.cpu", cpu, total);
        srv.check_all_ok(&mut c, n)?;
        // what the node spends after rsync exits (verify, fsync, land),
        // from each result: all of its time minus the transfer
        let raw_results: Vec<String> = c.lrange(&srv.results, 0, -1)?;
        let mut post = Vec::new();
        for r in &raw_results {
            let v: serde_json::Value = serde_json::from_str(r)?;
            let (d, size, bps) = (
                v["duration_ms"].as_f64(),
                v["size"].as_f64(),
                v["bytes_per_sec"].as_f64(),
            );
            if let (Some(d), Some(size), Some(bps)) = (d, size, bps) {
                if bps > 0.0 {
                    eprintln!(
                        "    {}: {d:.0} ms in all, {:.0} ms of transfer",
                        v["filename"].as_str().unwrap_or("?"),
                        size / bps * 1000.0
                    );
                    post.push(d - size / bps * 1000.0);
                }
            }
        }
        if let Some(m) = crate::stats::median(&post) {
            s.add("large.ub.post_ms", m);
        }
        s.add("rss.server.load", srv.peak_mib());
        srv.stop()?;
        s.add("large.ub", total as f64 / el / 1e6);
        sync();
        let dest = env.fresh_dir("raw");
        let cpu = cpu_busy_secs();
        let el = raw::parallel(&srcs, &dest, Sock::Default, n)?;
        add_cpu(s, "large.raw.cpu", cpu, total);
        s.add("large.raw", total as f64 / secs(el) / 1e6);
        // the same copy made durable the cheapest way: one sync after all
        // four (what plain rsync needs before its files survive a power cut)
        let t = Instant::now();
        sync();
        s.add(
            "large.raw_sync",
            total as f64 / (secs(el) + secs(t.elapsed())) / 1e6,
        );
        add_cpu(s, "large.raw_sync.cpu", cpu, total);
        remove(&dest);
        // the durable counterpart: ubackup flushes every file before it
        // lands and acks it, plain rsync leaves dirty pages behind
        sync();
        let dest = env.fresh_dir("raw");
        let cpu = cpu_busy_secs();
        let el = raw::parallel_with(&srcs, &dest, Sock::Default, n, &["--fsync".into()])?;
        add_cpu(s, "large.raw_fsync.cpu", cpu, total);
        s.add("large.raw_fsync", total as f64 / secs(el) / 1e6);
        remove(&dest);
        // what the end-to-end check costs by itself: blake3 of the same
        // bytes (from the page cache) on one core
        let t = Instant::now();
        for f in &set.files {
            ubackup_common::fsutil::blake3_file(&set.root.join(&f.0))?;
        }
        s.add("large.blake3", total as f64 / secs(t.elapsed()) / 1e6);
    }
    sync();
    Ok(())
}

/// Bandwidth limits: `rsync_bwlimit` on one transfer (the rate ubackup
/// reports, and the wall clock), raw `rsync --bwlimit`, and `node_bwlimit`
/// shared by two transfers; each as % of the configured rate.
pub fn bwlimit(env: &Env, set: &LargeSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let k = o.bw_kbps;
    let rate = (k * 1024) as f64;
    let ks = k.to_string();
    for run in 0..o.runs {
        eprintln!("  bandwidth limits, run {}/{}", run + 1, o.runs);
        let srv = Server::spawn(env, 2, &[("rsync_bwlimit", &ks)])?;
        let mut c = env.conn();
        let t = Instant::now();
        push_all(&mut c, &srv.lo, &[set.message(0, 1)])?;
        srv.wait_results(&mut c, 1, LONG)?;
        let wall = secs(t.elapsed());
        srv.check_all_ok(&mut c, 1)?;
        let r: Vec<String> = c.lrange(&srv.results, 0, 0)?;
        let v: serde_json::Value = serde_json::from_str(&r[0])?;
        let reported = v["bytes_per_sec"].as_f64().context("bytes_per_sec")?;
        srv.stop()?;
        let size = set.files[0].1 as f64;
        s.add("bw.ub.pct", reported / rate * 100.0);
        s.add("bw.ub.wall.pct", size / wall / rate * 100.0);
        let dest = env.fresh_dir("raw");
        let el = raw::one(
            &set.url(0),
            &dest,
            Sock::Default,
            &[format!("--bwlimit={k}")],
        )?;
        s.add("bw.raw.pct", size / secs(el) / rate * 100.0);
        remove(&dest);

        let srv = Server::spawn(env, 2, &[("node_bwlimit", &ks)])?;
        let t = Instant::now();
        push_all(&mut c, &srv.lo, &[set.message(1, 2), set.message(2, 3)])?;
        srv.wait_results(&mut c, 2, LONG)?;
        let wall = secs(t.elapsed());
        srv.check_all_ok(&mut c, 2)?;
        srv.stop()?;
        let both = (set.files[1].1 + set.files[2].1) as f64;
        s.add("bw.node.pct", both / wall / rate * 100.0);
    }
    Ok(())
}

/// A small deterministic jitter (10-40 ms) between latency samples, so
/// they do not line up with the node's poll periods.
pub(crate) fn gap(k: usize) -> Duration {
    Duration::from_millis(10 + ((k * 7919) % 31) as u64)
}

/// Push → result latency of `n` messages, one at a time, on `list`.
fn latencies(env: &Env, srv: &Server, list: &str, msgs: &[String]) -> Result<Vec<f64>> {
    let mut c = env.conn();
    let mut b = env.conn();
    let mut out = Vec::with_capacity(msgs.len());
    for (k, m) in msgs.iter().enumerate() {
        std::thread::sleep(gap(k));
        let t = Instant::now();
        let _: () = c.lpush(list, m)?;
        let got: Option<(String, String)> = b.brpop(&srv.results, 10.0)?;
        let el = t.elapsed();
        let (_, r) = got.context("no result within 10 s")?;
        let v: serde_json::Value = serde_json::from_str(&r)?;
        if v["succeed"] != 1 {
            bail!("latency sample failed: {}", v["log"]);
        }
        out.push(el.as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Idle pickup: push → result, one message at a time on an idle node with
/// 4 workers, on the top list and on the normal list; against one raw
/// rsync of the same 4 KiB file (default socket options and TCP_NODELAY).
pub fn latency(env: &Env, set: &SmallSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let hi: Vec<String> = (0..o.latency_samples)
        .map(|i| set.message_own_source(i))
        .collect();
    let lo: Vec<String> = (0..o.low_samples)
        .map(|i| set.message_own_source(o.latency_samples + i))
        .collect();
    for run in 0..o.runs {
        eprintln!("  pickup latency, run {}/{}", run + 1, o.runs);
        let srv = Server::spawn(env, 4, &[])?;
        let l = latencies(env, &srv, &srv.hi.clone(), &hi)?;
        s.add("lat.hi.p50", percentile(&l, 50.0).unwrap());
        s.add("lat.hi.p99", percentile(&l, 99.0).unwrap());
        let l = latencies(env, &srv, &srv.lo.clone(), &lo)?;
        s.add("lat.lo.p50", percentile(&l, 50.0).unwrap());
        s.add("lat.lo.p99", percentile(&l, 99.0).unwrap());
        srv.stop()?;
        for (sock, tag) in [(Sock::Default, "raw"), (Sock::NoDelay, "nodelay")] {
            let mut l = Vec::new();
            for i in 0..o.latency_samples {
                let dest = env.fresh_dir("raw");
                std::thread::sleep(gap(i));
                l.push(raw::one(&set.url_own_source(i), &dest, sock, &[])?.as_secs_f64() * 1000.0);
                remove(&dest);
            }
            s.add(&format!("lat.{tag}.p50"), percentile(&l, 50.0).unwrap());
            s.add(&format!("lat.{tag}.p99"), percentile(&l, 99.0).unwrap());
        }
    }
    Ok(())
}

/// A `level1` message pushed while the normal list holds a backlog (its
/// result time from the push), with the backlog from many sources and
/// from one source; against one raw rsync of the same file.
pub fn level1_behind_backlog(env: &Env, set: &SmallSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let nb = o.backlog_l1;
    let probe = set.n - 1;
    for run in 0..o.runs {
        eprintln!(
            "  level1 behind a backlog of {nb}, run {}/{}",
            run + 1,
            o.runs
        );
        for (tag, one_source) in [("many", false), ("one", true)] {
            let srv = Server::spawn(env, 4, &[])?;
            let mut c = env.conn();
            let backlog: Vec<String> = (0..nb)
                .map(|i| {
                    if one_source {
                        set.message_one_source(200 + i)
                    } else {
                        set.message_own_source(200 + i)
                    }
                })
                .collect();
            push_all(&mut c, &srv.lo, &backlog)?;
            // the node is busy with the backlog
            srv.wait_results(&mut c, 8.min(nb), LONG)?;
            let t = Instant::now();
            let _: () = c.lpush(&srv.hi, set.message_own_source(probe))?;
            let needle = format!("\"filename\":\"f{probe}.bin\"");
            let mut left = 0usize;
            wait_for("the level1 result", LONG, Duration::from_millis(1), || {
                let r: Vec<String> = c.lrange(&srv.results, 0, -1).unwrap_or_default();
                if r.iter().any(|x| x.contains(&needle)) {
                    left = nb + 1 - r.len();
                    true
                } else {
                    false
                }
            })?;
            let el = t.elapsed().as_secs_f64() * 1000.0;
            srv.wait_results(&mut c, nb + 1, LONG)?;
            srv.check_all_ok(&mut c, nb + 1)?;
            srv.stop()?;
            s.add(&format!("l1.{tag}"), el);
            s.add(&format!("l1.{tag}.left"), left as f64);
        }
        let mut l = Vec::new();
        for _ in 0..5 {
            let dest = env.fresh_dir("raw");
            l.push(
                raw::one(&set.url_own_source(probe), &dest, Sock::NoDelay, &[])?.as_secs_f64()
                    * 1000.0,
            );
            remove(&dest);
        }
        s.add("l1.transfer", percentile(&l, 50.0).unwrap());
    }
    Ok(())
}

/// ubackup-client with `instances` trivial instances (each script writes
/// its two-line log): wall time of the whole run against the slowest
/// script run alone.
pub fn client(env: &Env, o: &Opts, s: &mut Samples) -> Result<()> {
    for run in 0..o.runs {
        eprintln!("  client, run {}/{}", run + 1, o.runs);
        let dir = env.fresh_dir("client");
        let back = dir.join("backup");
        ubackup_testkit::write_file(&back.join("f.bin"), 4096, 7);
        let queue = unique("clientq");
        let mut text = format!(
            "[global]\nserver_id = 900001\ngame_id = 31\ninterval = 3600\nredis_host = 127.0.0.1\nredis_port = {}\nredis_queue = {queue}\nmy_ip = 127.0.0.1\nspool_dir = {}\nkey_prefix = {}:\nlog = {}\n",
            env.redis.port,
            dir.join("spool").display(),
            unique("b"),
            dir.join("client.log").display()
        );
        let mut scripts = Vec::new();
        for i in 0..o.client_instances {
            let log = dir.join(format!("log{i}"));
            let script = format!("echo ok > {l}; echo f.bin >> {l}", l = log.display());
            text.push_str(&format!(
                "[db{i}]\nback_type = mysql\ninstance = {}\nrsync_model = backup/db{i}\nback_dir = {}\nback_log = {}\nscript = {script}\n",
                3300 + i,
                back.display(),
                log.display()
            ));
            scripts.push(script);
        }
        let conf = dir.join("client.conf");
        std::fs::write(&conf, text)?;
        let t = Instant::now();
        let st = Command::new(&env.bins.client)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let el = secs(t.elapsed());
        let queued: usize = env.conn().llen(&queue)?;
        if !st.success() || queued != o.client_instances {
            bail!("ubackup-client: {st}, {queued} messages queued");
        }
        s.add("client.ub", el);
        let mut slowest = 0f64;
        for sc in &scripts {
            let t = Instant::now();
            Command::new("sh").arg("-c").arg(sc).status()?;
            slowest = slowest.max(secs(t.elapsed()));
        }
        s.add("client.script", slowest);
        remove(&dir);
    }
    Ok(())
}

/// `n` distinct results, as 20 instances on each of n/20 hosts send them.
pub fn results(n: usize) -> Vec<ResultRecord> {
    let now = now_ms();
    (0..n as i64)
        .map(|i| {
            let create_time = now - 600_000 + i;
            ResultRecord {
                server_id: 100000 + i / 20,
                game_server_ip: format!(
                    "10.{}.{}.{}",
                    (i / 20) / 65536 % 256,
                    (i / 20) / 256 % 256,
                    (i / 20) % 256
                ),
                instance: 3300 + i % 20,
                file_path: Some(format!(
                    "/data/mysql/10.0.{}/{}/",
                    (i / 20) / 256 % 256,
                    (i / 20) % 256
                )),
                filename: Some(format!("db_{i}.tar.gz")),
                create_time,
                rsync_time: create_time + 5000,
                size: 4096,
                duration_ms: Some(25),
                bytes_per_sec: Some(163840),
                checksum: Some(format!("blake3:{:064x}", i)),
                ..ubackup_testkit::fixtures::result(0, create_time)
            }
        })
        .collect()
}

/// The same records written straight into the stores, in batches of 500
/// (the indexer's default batch), with no Redis: what the stores allow.
async fn direct(
    stores: Stores,
    recs: &[CatalogRecord],
    db: &Path,
    es: Option<&EsStandIn>,
    index: &str,
) -> Result<f64> {
    let mut cats: Vec<Box<dyn Catalog>> = Vec::new();
    if stores != Stores::Es {
        cats.push(Box::new(SqliteCatalog::open(db)?));
    }
    if stores != Stores::Sqlite {
        let url = url::Url::parse(&es.context("ES")?.url())?;
        cats.push(Box::new(EsCatalog::new(&EsSettings::new(
            vec![url],
            index,
        ))?));
    }
    for c in &cats {
        c.prepare().await?;
    }
    let t = Instant::now();
    for chunk in recs.chunks(500) {
        for c in &cats {
            c.store(chunk).await?;
        }
    }
    Ok(recs.len() as f64 / secs(t.elapsed()))
}

/// The indexer draining a backlog of `indexer_n` results into SQLite, the
/// ES stand-in, and both (results/s from its start to an empty queue);
/// against the stores called directly with the same records.
pub fn indexer(env: &Env, o: &Opts, s: &mut Samples) -> Result<()> {
    let n = o.indexer_n;
    let recs = results(n);
    let payloads: Vec<String> = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let catalog: Vec<CatalogRecord> = recs
        .into_iter()
        .map(|r| CatalogRecord::new(r, "bench"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for run in 0..o.runs {
        eprintln!("  indexer, run {}/{}", run + 1, o.runs);
        for stores in [Stores::Sqlite, Stores::Es, Stores::Both] {
            let es = (stores != Stores::Sqlite).then(EsStandIn::start);
            let setup = IndexerSetup::new(
                env,
                stores,
                es.as_ref().map(|e| e.url()).as_deref(),
                "uuzubackup",
            )?;
            let mut c = env.conn();
            push_all(&mut c, &setup.queue, &payloads)?;
            let t = Instant::now();
            let ix = setup.spawn(env)?;
            wait_for(
                "the indexer to drain its backlog",
                LONG,
                Duration::from_millis(5),
                || setup.backlog(&mut c) == 0,
            )?;
            let el = secs(t.elapsed());
            if stores == Stores::Both {
                s.add(
                    "rss.indexer.load",
                    rss_kib(ix.pid())
                        .map(|r| r.0 as f64 / 1024.0)
                        .unwrap_or(f64::NAN),
                );
            }
            ix.stop()?;
            if stores != Stores::Es {
                let db = rusqlite::Connection::open(&setup.db)?;
                let count: i64 = db.query_row("SELECT COUNT(*) FROM backups", [], |r| r.get(0))?;
                if count != n as i64 {
                    bail!("SQLite has {count} rows, expected {n}");
                }
            }
            if let Some(es) = &es {
                let count = es.doc_count("uuzubackup");
                if count != n {
                    bail!("ES stand-in has {count} documents, expected {n}");
                }
            }
            s.add(&format!("ix.{}", stores.name()), n as f64 / el);
            let db2 = env.fresh_dir("direct").join("catalog.db");
            let rate = rt.block_on(direct(stores, &catalog, &db2, es.as_ref(), "direct"))?;
            s.add(&format!("ix.{}.direct", stores.name()), rate);
        }
    }
    Ok(())
}

/// Peak RSS of an idle node (4 workers, a few seconds after start).
pub fn server_idle_rss(env: &Env, s: &mut Samples) -> Result<()> {
    let srv = Server::spawn(env, 4, &[])?;
    std::thread::sleep(Duration::from_secs(3));
    s.add("rss.server.idle", srv.peak_mib());
    srv.stop()
}

/// Peak RSS of an idle indexer (a few seconds after start, empty queue).
pub fn indexer_idle_rss(env: &Env, s: &mut Samples) -> Result<()> {
    let es = EsStandIn::start();
    let setup = IndexerSetup::new(env, Stores::Both, Some(&es.url()), "uuzubackup")?;
    let ix = setup.spawn(env)?;
    std::thread::sleep(Duration::from_secs(3));
    s.add(
        "rss.indexer.idle",
        rss_kib(ix.pid())
            .map(|r| r.0 as f64 / 1024.0)
            .unwrap_or(f64::NAN),
    );
    ix.stop()
}

/// Redis commands served so far (INFO commandstats), without LLEN (the
/// harness's own polling).
fn redis_calls(c: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c)?;
    Ok(info
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_llen:")
                && !l.starts_with("cmdstat_info:")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum())
}

/// A burst of `hosts × per_host` small files already queued, drained by
/// one node and then by two (4 workers each); the drain time and the Redis
/// commands per message (Lua scripts count their inner commands too).
pub fn burst(env: &Env, set: &BurstSet, o: &Opts, s: &mut Samples) -> Result<()> {
    let n = set.messages.len();
    for run in 0..o.runs {
        eprintln!("  burst of {n}, run {}/{}", run + 1, o.runs);
        for nodes in [1usize, 2] {
            let first = ServerSetup::new(env, 4, &[])?;
            let mut setups = vec![];
            for _ in 1..nodes {
                setups.push(first.sibling(env, 4, &[])?);
            }
            let mut c = env.conn();
            push_all(&mut c, &first.lo, &set.messages)?;
            let calls0 = redis_calls(&mut c)?;
            let t = Instant::now();
            let results = first.results.clone();
            let mut running = vec![first.spawn(env, false)?];
            for st in setups {
                running.push(st.spawn(env, false)?);
            }
            wait_for(
                "the burst to drain",
                LONG,
                Duration::from_millis(20),
                || c.llen::<_, usize>(&results).unwrap_or(0) >= n,
            )?;
            let el = secs(t.elapsed());
            let calls = redis_calls(&mut c)? - calls0;
            running[0].check_all_ok(&mut c, n)?;
            for r in running {
                r.stop()?;
            }
            s.add(&format!("burst.n{nodes}"), el);
            s.add(&format!("burst.n{nodes}.ops"), calls as f64 / n as f64);
            // the floor, right after: one rsync per host (its module, all
            // of its files) at the nodes' parallelism, TCP_NODELAY
            let dest = env.fresh_dir("burst-raw");
            let floor = raw::parallel(&burst_hosts(set)?, &dest, Sock::NoDelay, 4 * nodes)?;
            s.add(&format!("burst.n{nodes}.floor"), secs(floor));
            remove(&dest);
            // the same made durable as the nodes make every file before
            // its ack (rsync's --fsync: each file flushed as it lands)
            let dest = env.fresh_dir("burst-raw");
            let fsync = ["--fsync".to_string()];
            let floor =
                raw::parallel_with(&burst_hosts(set)?, &dest, Sock::NoDelay, 4 * nodes, &fsync)?;
            s.add(&format!("burst.n{nodes}.floor_fsync"), secs(floor));
            remove(&dest);
        }
    }
    Ok(())
}

/// `rsync://127.0.0.1:PORT/h<h>/` for every host of the burst, in the order
/// each host first appears in the list.
fn burst_hosts(set: &BurstSet) -> Result<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for m in set.messages.iter().rev() {
        let module = crate::data::module_of(m)?;
        if seen.insert(module.clone()) {
            out.push(format!("rsync://127.0.0.1:{}/{module}/", set.daemon.port));
        }
    }
    Ok(out)
}
