//! ubackup over a WAN-like link: a [`DelayProxy`] between the node and the
//! database host's rsync daemon adds [`RTTS_MS`] of round trip (the
//! messages name the proxy's port as their `rsync_port`), and raw rsync
//! pulls the same files through the same proxy at the same parallelism.
//!
//! Three figures per round trip:
//! * pickup: one 4 KiB file from its own module, push → result on an idle
//!   node (4 workers), one message at a time; against one raw rsync of it;
//! * a burst: [`BURST_HOSTS`] × [`BURST_PER_HOST`] small files already
//!   queued, one module per host, pushes interleaved, drained by one node of
//!   4 and of 8 workers; against per-file rsync and one rsync per host at
//!   the same parallelism;
//! * large files: [`LARGE_FILES`] × [`LARGE_MIB`] MiB pulled at once, one
//!   worker each; against raw rsync -P2, plain and `--fsync`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Commands;

use crate::data::{message, push_all, BurstSet, LargeSet, SmallSet};
use crate::delay::DelayProxy;
use crate::procs::{wait_for, Env, Server, ServerSetup};
use crate::raw::{self, Sock};
use crate::stats::{percentile, Samples};
use crate::workloads::{gap, remove, Opts, LONG};

/// The round trips added, in ms.
pub const RTTS_MS: [u64; 2] = [20, 50];
/// Pickup samples per run and round trip.
pub const PICKUP_SAMPLES: usize = 10;
/// The reduced burst: hosts, and files per host.
pub const BURST_HOSTS: usize = 20;
pub const BURST_PER_HOST: usize = 10;
/// Workers of the node (and raw parallelism) in the burst: the default,
/// and twice it (pulls at a long round trip wait on the link, not the CPU).
pub const BURST_WORKERS: [usize; 2] = [4, 8];
/// The large files: how many (= workers), MiB each.
pub const LARGE_FILES: usize = 2;
pub const LARGE_MIB: u64 = 128;

/// Workers of the node in the pickup figure (the default).
const WORKERS: usize = 4;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `payload` with its `rsync_port` replaced by `port`.
fn via(payload: &str, port: u16) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(payload)?;
    v["rsync_port"] = port.into();
    Ok(v.to_string())
}

/// The raw per-file URL of a message's file, through `port`.
fn url_of(payload: &str, port: u16) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(payload)?;
    let model = v["rsync_model"].as_str().context("rsync_model")?;
    let name = v["filename"].as_str().context("filename")?;
    Ok(format!("rsync://127.0.0.1:{port}/{model}/{name}"))
}

/// The workload, for every round trip in [`RTTS_MS`].
pub fn wan(env: &Env, o: &Opts, s: &mut Samples) -> Result<()> {
    eprintln!(
        "creating the wan sets: {PICKUP_SAMPLES} small files, {BURST_HOSTS} hosts × {BURST_PER_HOST} small files, {LARGE_FILES} × {LARGE_MIB} MiB"
    );
    let small = SmallSet::create(&env.work.join("wan-s"), PICKUP_SAMPLES, o.small_size)?;
    let burst = BurstSet::create(
        &env.work.join("wan-b"),
        BURST_HOSTS,
        BURST_PER_HOST,
        o.small_size,
    )?;
    let names: Vec<(String, u64)> = (0..LARGE_FILES)
        .map(|i| (format!("wan{i}.bin"), LARGE_MIB << 20))
        .collect();
    let refs: Vec<(&str, u64)> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let large = LargeSet::create(&env.work.join("wan-l"), &refs)?;
    // warm the page cache and the daemon once, unrecorded, on loopback
    let lsrcs: Vec<String> = (0..LARGE_FILES).map(|i| large.url(i)).collect();
    let dest = env.fresh_dir("wan-warm");
    raw::parallel(&lsrcs, &dest, Sock::Default, LARGE_FILES)?;
    remove(&dest);
    for run in 0..o.runs {
        for rtt in RTTS_MS {
            eprintln!("  wan {rtt} ms, run {}/{}", run + 1, o.runs);
            let d = Duration::from_millis(rtt);
            let p = DelayProxy::start(loopback(small.daemon.port), d)?;
            pickup(env, &small, p.port, &format!("wan.{rtt}ms.pickup"), s)?;
            drop(p);
            let p = DelayProxy::start(loopback(burst.daemon.port), d)?;
            for w in BURST_WORKERS {
                let key = format!("wan.{rtt}ms.burst.w{w}");
                burst_figure(env, &burst, &p, w, &key, s)?;
            }
            drop(p);
            let p = DelayProxy::start(loopback(large.daemon.port), d)?;
            large_figure(env, &large, &p, &format!("wan.{rtt}ms.large"), s)?;
            drop(p);
        }
    }
    drop((small, burst, large));
    for d in ["wan-s", "wan-b", "wan-l"] {
        remove(&env.work.join(d));
    }
    Ok(())
}

/// Push → result of each small file in turn (the top list of an idle
/// node), then one raw rsync of each through the same proxy; p50 and max
/// in ms.
fn pickup(env: &Env, set: &SmallSet, port: u16, key: &str, s: &mut Samples) -> Result<()> {
    let srv = Server::spawn(env, WORKERS, &[])?;
    let mut c = env.conn();
    let mut b = env.conn();
    let mut l = Vec::with_capacity(set.n);
    for i in 0..set.n {
        std::thread::sleep(gap(i));
        let m = message(
            port,
            &format!("m{i}"),
            &format!("f{i}.bin"),
            set.size as u64,
            &set.checksums[i],
            i as i64,
        );
        let t = Instant::now();
        let _: () = c.lpush(&srv.hi, m)?;
        let got: Option<(String, String)> = b.brpop(&srv.results, 30.0)?;
        let el = t.elapsed();
        let (_, r) = got.context("no result within 30 s")?;
        let v: serde_json::Value = serde_json::from_str(&r)?;
        if v["succeed"] != 1 {
            bail!("wan pickup failed: {}", v["log"]);
        }
        l.push(el.as_secs_f64() * 1000.0);
    }
    srv.stop()?;
    s.add(&format!("{key}.ub.p50"), percentile(&l, 50.0).unwrap());
    s.add(&format!("{key}.ub.max"), percentile(&l, 100.0).unwrap());
    let mut l = Vec::with_capacity(set.n);
    for i in 0..set.n {
        std::thread::sleep(gap(i));
        let dest = env.fresh_dir("wan-raw");
        let url = format!("rsync://127.0.0.1:{port}/m{i}/f{i}.bin");
        l.push(raw::one(&url, &dest, Sock::NoDelay, &[])?.as_secs_f64() * 1000.0);
        remove(&dest);
    }
    s.add(&format!("{key}.raw.p50"), percentile(&l, 50.0).unwrap());
    s.add(&format!("{key}.raw.max"), percentile(&l, 100.0).unwrap());
    Ok(())
}

/// The burst already queued, drained by one node of `workers` workers;
/// the drain time, and the raw per-file and per-host pulls of the same
/// files at the same parallelism (seconds); and how many connections
/// (rsync calls) the node made through the proxy.
fn burst_figure(
    env: &Env,
    set: &BurstSet,
    p: &DelayProxy,
    workers: usize,
    key: &str,
    s: &mut Samples,
) -> Result<()> {
    let port = p.port;
    let msgs: Vec<String> = set
        .messages
        .iter()
        .map(|m| via(m, port))
        .collect::<Result<_>>()?;
    let n = msgs.len();
    let setup = ServerSetup::new(env, workers, &[])?;
    let mut c = env.conn();
    push_all(&mut c, &setup.lo, &msgs)?;
    let results = setup.results.clone();
    let conns = p.connections();
    let t = Instant::now();
    let srv = setup.spawn(env, false)?;
    wait_for(
        "the wan burst to drain",
        LONG,
        Duration::from_millis(10),
        || c.llen::<_, usize>(&results).unwrap_or(0) >= n,
    )?;
    let el = t.elapsed().as_secs_f64();
    srv.check_all_ok(&mut c, n)?;
    srv.stop()?;
    s.add(&format!("{key}.ub"), el);
    s.add(&format!("{key}.ub.calls"), (p.connections() - conns) as f64);
    let files: Vec<String> = set
        .messages
        .iter()
        .map(|m| url_of(m, port))
        .collect::<Result<_>>()?;
    let dest = env.fresh_dir("wan-raw");
    let el = raw::parallel(&files, &dest, Sock::NoDelay, workers)?;
    s.add(&format!("{key}.raw_file"), el.as_secs_f64());
    remove(&dest);
    let hosts: BTreeSet<String> = set
        .messages
        .iter()
        .map(|m| crate::data::module_of(m))
        .collect::<Result<_>>()?;
    let hosts: Vec<String> = hosts
        .into_iter()
        .map(|h| format!("rsync://127.0.0.1:{port}/{h}/"))
        .collect();
    let dest = env.fresh_dir("wan-raw");
    let el = raw::parallel(&hosts, &dest, Sock::NoDelay, workers)?;
    s.add(&format!("{key}.raw_host"), el.as_secs_f64());
    remove(&dest);
    Ok(())
}

/// Every large file pulled at once through `p`: ubackup with one worker
/// per file, raw rsync at the same parallelism, plain and `--fsync`; MB/s.
fn large_figure(
    env: &Env,
    set: &LargeSet,
    p: &DelayProxy,
    key: &str,
    s: &mut Samples,
) -> Result<()> {
    let n = set.files.len();
    let total: u64 = set.files.iter().map(|f| f.1).sum();
    let msgs: Vec<String> = (0..n)
        .map(|i| {
            let (name, bytes, sum) = &set.files[i];
            message(p.port, "large", name, *bytes, sum, 5306 + i as i64)
        })
        .collect();
    let srcs: Vec<String> = (0..n)
        .map(|i| format!("rsync://127.0.0.1:{}/large/{}", p.port, set.files[i].0))
        .collect();
    sync();
    let srv = Server::spawn(env, n, &[])?;
    let mut c = env.conn();
    let t = Instant::now();
    push_all(&mut c, &srv.lo, &msgs)?;
    srv.wait_results(&mut c, n, LONG)?;
    let el = t.elapsed().as_secs_f64();
    srv.check_all_ok(&mut c, n)?;
    srv.stop()?;
    s.add(&format!("{key}.ub"), total as f64 / el / 1e6);
    for (tag, extra) in [("raw", vec![]), ("raw_fsync", vec!["--fsync".to_string()])] {
        sync();
        let dest = env.fresh_dir("wan-raw");
        let el = raw::parallel_with(&srcs, &dest, Sock::Default, n, &extra)?;
        s.add(
            &format!("{key}.{tag}"),
            total as f64 / el.as_secs_f64() / 1e6,
        );
        remove(&dest);
    }
    s.add(
        &format!("{key}.proxy_peak_mib"),
        p.peak_direction() as f64 / (1 << 20) as f64,
    );
    Ok(())
}

/// Flushes dirty pages so one figure's writeback does not slow the next.
fn sync() {
    let _ = std::process::Command::new("sync").status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_repointed_at_the_proxy() {
        let m = message(873, "h3/i1", "f3_1.bin", 4096, "blake3:00", 7);
        let v: serde_json::Value = serde_json::from_str(&via(&m, 40001).unwrap()).unwrap();
        assert_eq!(v["rsync_port"], 40001);
        assert_eq!(v["rsync_model"], "h3/i1");
        assert_eq!(
            url_of(&m, 40001).unwrap(),
            "rsync://127.0.0.1:40001/h3/i1/f3_1.bin"
        );
        assert_eq!(crate::data::module_of(&m).unwrap(), "h3");
    }
}
