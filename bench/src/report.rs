//! The markdown table: one row per workload, ubackup's median next to its
//! counterpart's median from the same runs, the ratio, and the issue's
//! target with whether this run met it.

use std::fmt::Write as _;
use std::process::Command;

use crate::stats::Samples;
use crate::workloads::Opts;

/// The machine and versions, for the report header.
pub fn machine() -> Vec<(String, String)> {
    fn cmd(c: &str, args: &[&str]) -> String {
        Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "?".into())
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    vec![
        ("date (UTC)".into(), cmd("date", &["-u", "+%Y-%m-%d %H:%M"])),
        ("machine".into(), format!("{cpu}, {cores} cores, {mem} RAM")),
        ("kernel".into(), cmd("uname", &["-sr"])),
        ("rsync".into(), cmd("rsync", &["--version"])),
        ("redis".into(), cmd("redis-server", &["--version"])),
        ("rustc".into(), cmd("rustc", &["--version"])),
        (
            "ubackup".into(),
            format!(
                "{} (commit {}{})",
                env!("CARGO_PKG_VERSION"),
                cmd("git", &["rev-parse", "--short", "HEAD"]),
                if dirty {
                    ", with uncommitted changes"
                } else {
                    ""
                }
            ),
        ),
    ]
}

fn f(v: Option<f64>, digits: usize, unit: &str) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}{unit}"),
        _ => "–".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

/// One table row.
struct Row {
    workload: String,
    ubackup: String,
    counterpart: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn rows(s: &Samples, o: &Opts) -> Vec<Row> {
    let m = |k: &str| s.median(k);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let mut out = Vec::new();
    let n = o.small_n;
    let kib = o.small_size / 1024;
    for w in [2, 4] {
        let ub = m(&format!("small.ub.w{w}"));
        let raw = m(&format!("small.raw.w{w}"));
        let nd = m(&format!("small.nodelay.w{w}"));
        if ub.is_none() {
            continue;
        }
        let speedup = ratio(raw, ub);
        out.push(Row {
            workload: format!("{n} × {kib} KiB, each from its own module, {w} workers"),
            ubackup: f(ub, 2, " s"),
            counterpart: format!(
                "per-file rsync -P{w}: {}; with TCP_NODELAY: {}; one rsync of the directory: {}",
                f(raw, 2, " s"),
                f(nd, 2, " s"),
                f(m("small.floor"), 2, " s")
            ),
            ratio: format!(
                "{} faster than raw, {} than raw+NODELAY",
                f(speedup, 2, "×"),
                f(ratio(nd, ub), 2, "×")
            ),
            target: "≥ 1.4× raw default".into(),
            met: speedup.map(|x| x >= 1.4),
        });
    }
    if let Some(ub) = m("backlog.ub.w4") {
        let fl = m("backlog.floor");
        let r = ratio(Some(ub), fl);
        out.push(Row {
            workload: format!(
                "backlog: {n} × {kib} KiB from one host and module, already queued, 4 workers"
            ),
            ubackup: f(Some(ub), 2, " s"),
            counterpart: format!("one rsync of the directory: {}", f(fl, 2, " s")),
            ratio: format!("{} the floor", f(r, 2, "×")),
            target: "≤ 3× the floor".into(),
            met: r.map(|x| x <= 3.0),
        });
    }
    if let Some(ub) = m("large.ub") {
        let raw = m("large.raw");
        let durable = m("large.raw_fsync");
        let synced = m("large.raw_sync");
        let r = ratio(Some(ub), raw);
        out.push(Row {
            workload: format!(
                "{} × {} MiB, {} workers",
                o.large_files, o.large_mib, o.large_files
            ),
            ubackup: format!(
                "{} (after rsync exits: {} per file to verify, flush and land; machine CPU {} per GB, raw {}, raw + sync {}, raw --fsync {}; blake3 alone: {} on one core)",
                f(Some(ub), 0, " MB/s"),
                f(m("large.ub.post_ms"), 0, " ms"),
                f(m("large.ub.cpu"), 2, " s"),
                f(m("large.raw.cpu"), 2, " s"),
                f(m("large.raw_sync.cpu"), 2, " s"),
                f(m("large.raw_fsync.cpu"), 2, " s"),
                f(m("large.blake3"), 0, " MB/s")
            ),
            counterpart: format!(
                "raw rsync -P{}: {}; made durable by one `sync` after it: {}; durable with --fsync: {}",
                o.large_files,
                f(raw, 0, " MB/s"),
                f(synced, 0, " MB/s"),
                f(durable, 0, " MB/s")
            ),
            ratio: format!(
                "{} of raw, {} of raw + sync, {} of raw --fsync",
                f(r, 2, "×"),
                f(ratio(Some(ub), synced), 2, "×"),
                f(ratio(Some(ub), durable), 2, "×")
            ),
            target: "≥ 0.97× raw".into(),
            met: r.map(|x| x >= 0.97),
        });
    }
    if let Some(ub) = m("bw.ub.pct") {
        let wall = m("bw.ub.wall.pct");
        let raw = m("bw.raw.pct");
        let worst = [Some(ub), wall]
            .into_iter()
            .flatten()
            .map(|x| (x - 100.0).abs())
            .reduce(f64::max);
        out.push(Row {
            workload: format!(
                "bandwidth limit: rsync_bwlimit = {} KB/s, one {} MiB file",
                o.bw_kbps, o.bw_mib
            ),
            ubackup: format!(
                "{} of the limit (reported rate), {} (push → result)",
                f(Some(ub), 1, " %"),
                f(wall, 1, " %")
            ),
            counterpart: format!("rsync --bwlimit={}: {}", o.bw_kbps, f(raw, 1, " %")),
            ratio: "".into(),
            target: "within 2 %".into(),
            met: worst.map(|x| x <= 2.0),
        });
    }
    if let Some(node) = m("bw.node.pct") {
        out.push(Row {
            workload: format!(
                "bandwidth limit: node_bwlimit = {} KB/s shared by 2 transfers of {} MiB",
                o.bw_kbps,
                o.bw_mib / 2
            ),
            ubackup: format!(
                "{} of the limit (push → both results)",
                f(Some(node), 1, " %")
            ),
            counterpart: "–".into(),
            ratio: "".into(),
            target: "within 2 %".into(),
            met: Some((node - 100.0).abs() <= 2.0),
        });
    }
    let lat_counter = format!(
        "one raw rsync of the file: p50 {} / p99 {}; with TCP_NODELAY: p50 {} / p99 {}",
        f(m("lat.raw.p50"), 1, " ms"),
        f(m("lat.raw.p99"), 1, " ms"),
        f(m("lat.nodelay.p50"), 1, " ms"),
        f(m("lat.nodelay.p99"), 1, " ms")
    );
    for (key, list) in [("hi", "level1 (top list)"), ("lo", "the normal list")] {
        let Some(p50) = m(&format!("lat.{key}.p50")) else {
            continue;
        };
        let p99 = m(&format!("lat.{key}.p99"));
        let transfer = m("lat.nodelay.p50");
        out.push(Row {
            workload: format!(
                "idle pickup → result, {} KiB on {list}, {} samples per run",
                kib,
                if key == "hi" {
                    o.latency_samples
                } else {
                    o.low_samples
                }
            ),
            ubackup: format!("p50 {} / p99 {}", f(Some(p50), 1, " ms"), f(p99, 1, " ms")),
            counterpart: lat_counter.clone(),
            ratio: "".into(),
            target: "p99 < 100 ms + the transfer".into(),
            met: match (p99, transfer) {
                (Some(p), Some(t)) => Some(p < 100.0 + t),
                _ => None,
            },
        });
    }
    for (key, what) in [("many", "from many sources"), ("one", "from one source")] {
        let Some(l1) = m(&format!("l1.{key}")) else {
            continue;
        };
        let tr = m("l1.transfer");
        out.push(Row {
            workload: format!(
                "a level1 message behind a backlog of {} {what}, 4 workers",
                o.backlog_l1
            ),
            ubackup: format!(
                "{} (backlog left behind it: {})",
                f(Some(l1), 1, " ms"),
                f(m(&format!("l1.{key}.left")), 0, "")
            ),
            counterpart: format!("one transfer (raw rsync, TCP_NODELAY): {}", f(tr, 1, " ms")),
            ratio: format!("{} transfer times", f(ratio(Some(l1), tr), 1, "")),
            target: "done within one transfer time (after the pickup)".into(),
            met: tr.map(|t| l1 <= 2.0 * t),
        });
    }
    if let Some(c) = m("client.ub") {
        let sc = m("client.script");
        out.push(Row {
            workload: format!("client wall time, {} trivial instances", o.client_instances),
            ubackup: f(Some(c), 3, " s"),
            counterpart: format!("slowest script alone: {}", f(sc, 3, " s")),
            ratio: format!("+{}", f(sc.map(|x| c - x), 3, " s")),
            target: "≤ slowest script + 0.1 s".into(),
            met: sc.map(|x| c <= x + 0.1),
        });
    }
    for (key, what) in [
        ("sqlite", "SQLite"),
        ("es", "the ES stand-in"),
        ("both", "SQLite + ES stand-in"),
    ] {
        let Some(ix) = m(&format!("ix.{key}")) else {
            continue;
        };
        let d = m(&format!("ix.{key}.direct"));
        let r = ratio(Some(ix), d);
        out.push(Row {
            workload: format!("indexer, {} results backlog → {what}", o.indexer_n),
            ubackup: f(Some(ix), 0, " results/s"),
            counterpart: format!(
                "the store called directly (500 per batch): {}",
                f(d, 0, " /s")
            ),
            ratio: format!("{} of the store", f(r, 2, "×")),
            target: if key == "sqlite" {
                "≥ 20,000/s".into()
            } else {
                "no slower than the stand-in allows".into()
            },
            met: if key == "sqlite" {
                Some(ix >= 20_000.0)
            } else {
                r.map(|x| x >= 0.9)
            },
        });
    }
    for nodes in [1, 2] {
        let Some(t) = m(&format!("burst.n{nodes}")) else {
            continue;
        };
        let n = o.burst_hosts * o.burst_per_host;
        let floor = m(&format!("burst.n{nodes}.floor"));
        let floor_fsync = m(&format!("burst.n{nodes}.floor_fsync"));
        out.push(Row {
            workload: format!(
                "burst: {n} × {} KiB already queued ({} hosts × {} instances, one module per host, pushes interleaved at random), drained by {nodes} node{} of 4 workers",
                kib,
                o.burst_hosts,
                o.burst_per_host,
                if nodes == 1 { "" } else { "s" }
            ),
            ubackup: format!(
                "{} ({} messages/s)",
                f(Some(t), 1, " s"),
                f(Some(n as f64 / t), 0, "")
            ),
            counterpart: format!(
                "the per-host floor, one rsync per host of its files -P{} (TCP_NODELAY): {}; the same with --fsync (durable, as the nodes land): {}; Redis commands per message: {}",
                4 * nodes,
                f(floor, 2, " s"),
                f(floor_fsync, 2, " s"),
                f(m(&format!("burst.n{nodes}.ops")), 1, "")
            ),
            ratio: format!(
                "{} the per-host floor, {} the durable floor",
                f(ratio(Some(t), floor), 2, "×"),
                f(ratio(Some(t), floor_fsync), 2, "×")
            ),
            target: "≤ 2× the per-host floor, ≤ 8.9 Redis commands per message".into(),
            met: ratio(Some(t), floor)
                .zip(m(&format!("burst.n{nodes}.ops")))
                .map(|(r, ops)| r <= 2.0 && ops <= 8.9),
        });
    }
    if let (Some(c1), Some(c2)) = (m("repl.c1.p50"), m("repl.c2.p50")) {
        let (c1p95, c2p95) = (m("repl.c1.p95"), m("repl.c2.p95"));
        let kib = o.repl_size / 1024;
        let r50 = ratio(Some(c2), Some(c1));
        out.push(Row {
            workload: format!(
                "first copy with copies = 2: {} × {kib} KiB pushed one at a time 10-40 ms apart to 3 nodes (2 zones, 2 workers each), push → result",
                o.repl_n
            ),
            ubackup: format!(
                "p50 {} / p95 {} (second copies already made when the last first copy was acked: {}; the rest {} later)",
                f(Some(c2), 1, " ms"),
                f(c2p95, 1, " ms"),
                f(m("repl.c2.during_pct"), 0, " %"),
                f(m("repl.c2.rest_secs"), 2, " s"),
            ),
            counterpart: format!(
                "the same cluster with copies = 1: p50 {} / p95 {}",
                f(Some(c1), 1, " ms"),
                f(c1p95, 1, " ms")
            ),
            ratio: format!(
                "{} (p50), {} (p95)",
                f(r50, 2, "×"),
                f(ratio(c2p95, c1p95), 2, "×")
            ),
            target: "first copies not delayed: p50 ≤ 1.1× copies = 1".into(),
            met: r50.map(|r| r <= 1.1),
        });
    }
    if let Some(el) = m("repl.repair.secs") {
        let seq = m("repl.raw.seq");
        let nd = m("repl.raw.seq_nodelay");
        out.push(Row {
            workload: format!(
                "re-replication: the zone-b node of 3 killed (-9) with its module and its store deleted, copies = 2, repair_after_secs = 1, repair_interval_secs = 1, heartbeat 1 s; until every backup has 2 good copies on the 2 nodes left ({} × {} KiB)",
                o.repl_n,
                o.repl_size / 1024
            ),
            ubackup: format!(
                "{} backups in {} ({} MB/s; the first new copy after {}: heartbeat expiry + repair_after_secs + the sweep)",
                f(m("repl.repair.n"), 0, ""),
                f(Some(el), 2, " s"),
                f(m("repl.repair.mbps"), 2, ""),
                f(m("repl.repair.first_secs"), 2, " s"),
            ),
            counterpart: format!(
                "raw rsync of the same files from the same node modules, one file per call, sequentially (a node runs one replication task at a time): {} ({} MB/s), with TCP_NODELAY: {} ({} MB/s); one `--files-from` rsync per source node: {} ({} MB/s)",
                f(seq, 2, " s"),
                f(m("repl.raw.seq.mbps"), 2, ""),
                f(nd, 2, " s"),
                f(m("repl.raw.seq_nodelay.mbps"), 2, ""),
                f(m("repl.raw.list"), 2, " s"),
                f(m("repl.raw.list.mbps"), 1, "")
            ),
            ratio: format!(
                "{} the sequential raw time ({} with NODELAY); from the first new copy on, {} the NODELAY time",
                f(ratio(Some(el), seq), 2, "×"),
                f(ratio(Some(el), nd), 2, "×"),
                f(
                    ratio(m("repl.repair.secs").zip(m("repl.repair.first_secs")).map(|(a, b)| a - b), nd),
                    2,
                    "×"
                )
            ),
            target: "–".into(),
            met: None,
        });
        out.push(Row {
            workload: "bytes written by replication (sum of the sizes of the copies made)".into(),
            ubackup: format!(
                "initial second copies: {} of the data set; repair: {} of the lost copies",
                f(m("repl.bytes.copies_ratio"), 3, "×"),
                f(m("repl.repair.bytes_ratio"), 3, "×")
            ),
            counterpart: format!(
                "data set: {} × {} KiB = {} MB",
                o.repl_n,
                o.repl_size / 1024,
                f(Some((o.repl_n * o.repl_size) as f64 / 1e6), 1, "")
            ),
            ratio: "".into(),
            target: "1.000× (no copy made twice)".into(),
            met: m("repl.bytes.copies_ratio")
                .zip(m("repl.repair.bytes_ratio"))
                .map(|(a, b)| (a - 1.0).abs() < 1e-9 && (b - 1.0).abs() < 1e-9),
        });
    }
    if let Some(ub) = m("restore.ub") {
        let (raw, raw_b3) = (m("restore.raw"), m("restore.raw_b3"));
        let r = ratio(Some(ub), raw);
        out.push(Row {
            workload: format!(
                "restore of a chain of {} × {} MiB (full + 2 incrementals) from one node, ubackup-client restore end to end (find, pull, blake3 verify, rename)",
                crate::restore::CHAIN.len(),
                o.restore_mib
            ),
            ubackup: format!(
                "{} ({} MB/s)",
                f(Some(ub), 2, " s"),
                f(m("restore.ub.mbps"), 0, "")
            ),
            counterpart: format!(
                "raw rsync -s --no-links --times --sockopts=TCP_NODELAY of the same 3 files from the same node module, one call: {} ({} MB/s); the same + blake3 of the 3 files (one thread per file, as restore verifies): {} ({} MB/s)",
                f(raw, 2, " s"),
                f(m("restore.raw.mbps"), 0, ""),
                f(raw_b3, 2, " s"),
                f(m("restore.raw_b3.mbps"), 0, "")
            ),
            ratio: format!(
                "{} raw, {} raw + blake3",
                f(r, 2, "×"),
                f(ratio(Some(ub), raw_b3), 2, "×")
            ),
            target: "≤ 1.1× raw".into(),
            met: r.map(|x| x <= 1.1),
        });
    }
    if let Some(plain) = m("sec.large.plain") {
        let (tls, age) = (m("sec.large.tls"), m("sec.large.age"));
        let (raw, raw_tls) = (m("sec.large.raw"), m("sec.large.raw_tls"));
        out.push(Row {
            workload: format!(
                "security costs, large files: {} files pulled at once, plain, over TLS (`rsync_tls`, mutual TLS to a stunnel), stored with age (`encrypt_to`)",
                o.large_files
            ),
            ubackup: format!(
                "plain {}, TLS {}, age {} (on one core: age of one file with its blake3 and fsync {}, the age cipher from memory {}; `openssl speed` ChaCha20-Poly1305 {}, AES-256-GCM {})",
                f(Some(plain), 0, " MB/s"),
                f(tls, 0, " MB/s"),
                f(age, 0, " MB/s"),
                f(m("sec.age.alone"), 0, " MB/s"),
                f(m("sec.age.cipher"), 0, " MB/s"),
                f(m("sec.openssl.chacha"), 0, " MB/s"),
                f(m("sec.openssl.aesgcm"), 0, " MB/s")
            ),
            counterpart: format!(
                "raw rsync --fsync: {}; raw rsync --fsync through `openssl s_client` (RSYNC_CONNECT_PROG) to the same stunnel: {}",
                f(raw, 0, " MB/s"),
                f(raw_tls, 0, " MB/s")
            ),
            ratio: format!(
                "TLS {} of plain, {} of raw over TLS; age {} of plain",
                f(ratio(tls, Some(plain)), 2, "×"),
                f(ratio(tls, raw_tls), 2, "×"),
                f(ratio(age, Some(plain)), 2, "×")
            ),
            target: "a measured cost (no target)".into(),
            met: None,
        });
    }
    if let Some(plain) = m("sec.small.plain") {
        let (tls, age) = (m("sec.small.tls"), m("sec.small.age"));
        let (raw, raw_tls) = (m("sec.small.raw"), m("sec.small.raw_tls"));
        out.push(Row {
            workload: format!(
                "security costs, small files: {} × {} KiB, each from its own module, 4 workers, plain / TLS / age",
                crate::security::SMALL_N,
                o.small_size / 1024
            ),
            ubackup: format!(
                "plain {}, TLS {}, age {}",
                f(Some(plain), 2, " s"),
                f(tls, 2, " s"),
                f(age, 2, " s")
            ),
            counterpart: format!(
                "per-file raw rsync -P4 with TCP_NODELAY: {}; the same through `openssl s_client`: {}",
                f(raw, 2, " s"),
                f(raw_tls, 2, " s")
            ),
            ratio: format!(
                "TLS {} the plain time, {} raw over TLS; age {} the plain time",
                f(ratio(tls, Some(plain)), 2, "×"),
                f(ratio(tls, raw_tls), 2, "×"),
                f(ratio(age, Some(plain)), 2, "×")
            ),
            target: "a measured cost (no target)".into(),
            met: None,
        });
    }
    for rtt in crate::wan::RTTS_MS {
        wan_rows(s, o, rtt, &mut out);
    }
    for (key, what, limit) in [
        (
            "rss.server.idle",
            "peak RSS, ubackup-server idle (4 workers)",
            30.0,
        ),
        (
            "rss.server.load",
            "peak RSS, ubackup-server under load (max of the pull runs)",
            60.0,
        ),
        (
            "rss.indexer.idle",
            "peak RSS, ubackup-indexer idle (SQLite + ES)",
            30.0,
        ),
        (
            "rss.indexer.load",
            "peak RSS, ubackup-indexer draining the backlog (SQLite + ES)",
            60.0,
        ),
    ] {
        let v = if key.ends_with("load") {
            s.max(key)
        } else {
            m(key)
        };
        let Some(v) = v else { continue };
        out.push(Row {
            workload: what.into(),
            ubackup: f(Some(v), 1, " MiB"),
            counterpart: "–".into(),
            ratio: "".into(),
            target: format!("< {limit:.0} MB"),
            met: Some(v * 1.048576 < limit),
        });
    }
    out
}

/// The `wan` rows at `rtt` ms of added round trip (the delay proxy).
fn wan_rows(s: &Samples, o: &Opts, rtt: u64, out: &mut Vec<Row>) {
    use crate::wan::{BURST_HOSTS, BURST_PER_HOST, LARGE_FILES, LARGE_MIB, PICKUP_SAMPLES};
    let m = |k: &str| s.median(&format!("wan.{rtt}ms.{k}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let link = format!("WAN-like, +{rtt} ms round trip (delay proxy)");
    if let Some(p50) = m("pickup.ub.p50") {
        let (max, raw, raw_max) = (m("pickup.ub.max"), m("pickup.raw.p50"), m("pickup.raw.max"));
        out.push(Row {
            workload: format!(
                "{link}: idle pickup → result, {} KiB from its own module on level1, {PICKUP_SAMPLES} samples per run, 4 workers",
                o.small_size / 1024
            ),
            ubackup: format!("p50 {} / max {}", f(Some(p50), 1, " ms"), f(max, 1, " ms")),
            counterpart: format!(
                "one raw rsync (TCP_NODELAY) of the file through the same proxy: p50 {} / max {}",
                f(raw, 1, " ms"),
                f(raw_max, 1, " ms")
            ),
            ratio: format!("{} the raw p50", f(ratio(Some(p50), raw), 2, "×")),
            target: "max < 100 ms + the transfer".into(),
            met: max.zip(raw).map(|(x, t)| x < 100.0 + t),
        });
    }
    for w in crate::wan::BURST_WORKERS {
        let Some(ub) = m(&format!("burst.w{w}.ub")) else {
            continue;
        };
        let (file, host) = (
            m(&format!("burst.w{w}.raw_file")),
            m(&format!("burst.w{w}.raw_host")),
        );
        out.push(Row {
            workload: format!(
                "{link}: burst of {} × {} KiB already queued ({BURST_HOSTS} hosts × {BURST_PER_HOST} instances, one module per host, interleaved; reduced from the loopback burst), 1 node of {w} workers",
                BURST_HOSTS * BURST_PER_HOST,
                o.small_size / 1024
            ),
            ubackup: format!(
                "{} ({} rsync calls through the proxy)",
                f(Some(ub), 2, " s"),
                f(m(&format!("burst.w{w}.ub.calls")), 0, "")
            ),
            counterpart: format!(
                "per-file rsync -P{w} (TCP_NODELAY) through the same proxy: {}; one rsync per host -P{w}: {}",
                f(file, 2, " s"),
                f(host, 2, " s")
            ),
            ratio: format!(
                "{} faster than per-file raw; {} the per-host time",
                f(ratio(file, Some(ub)), 2, "×"),
                f(ratio(Some(ub), host), 2, "×")
            ),
            target: "faster than per-file raw at the same parallelism".into(),
            met: file.map(|x| ub < x),
        });
    }
    if let Some(ub) = m("large.ub") {
        let (raw, durable) = (m("large.raw"), m("large.raw_fsync"));
        let r = ratio(Some(ub), raw);
        out.push(Row {
            workload: format!(
                "{link}: {LARGE_FILES} × {LARGE_MIB} MiB pulled at once, {LARGE_FILES} workers"
            ),
            ubackup: format!(
                "{} (proxy queue peak: {} per direction)",
                f(Some(ub), 0, " MB/s"),
                f(m("large.proxy_peak_mib"), 1, " MiB")
            ),
            counterpart: format!(
                "raw rsync -P{LARGE_FILES} through the same proxy: {}; with --fsync: {}",
                f(raw, 0, " MB/s"),
                f(durable, 0, " MB/s")
            ),
            ratio: format!(
                "{} of raw, {} of raw --fsync",
                f(r, 2, "×"),
                f(ratio(Some(ub), durable), 2, "×")
            ),
            target: "≥ 0.97× raw".into(),
            met: r.map(|x| x >= 0.97),
        });
    }
}

/// The whole BENCHMARKS.md text.
pub fn markdown(s: &Samples, o: &Opts, title_note: &str, elapsed_s: f64) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Benchmarks\n");
    let _ = writeln!(
        t,
        "Written by `bench/run.sh` (the `ubackup-bench` binary, release builds); do not edit by hand. \
         Every figure is the **median of {} runs**; every counterpart was measured in the same run, \
         on the same files, right after ubackup's figure. Loopback only: redis-server, `rsync --daemon` \
         with `socket options = TCP_NODELAY` (as deploy/ ships it), and the release binaries as real \
         processes. See [docs/performance.md](docs/performance.md) for what the figures mean and what \
         changed because of them.{title_note}\n",
        o.runs
    );
    for (k, v) in machine() {
        let _ = writeln!(t, "- {k}: {v}");
    }
    let _ = writeln!(t, "- harness wall time: {:.0} s\n", elapsed_s);
    let _ = writeln!(
        t,
        "| workload | ubackup | counterpart (same run) | ratio | target | met |\n|---|---|---|---|---|---|"
    );
    for r in rows(s, o) {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.ubackup,
            r.counterpart,
            r.ratio,
            r.target,
            verdict(r.met)
        );
    }
    if !s.notes.is_empty() {
        let _ = writeln!(t, "\nNotes:\n");
        for n in &s.notes {
            let _ = writeln!(t, "- {n}");
        }
    }
    let _ = writeln!(
        t,
        "\n<details><summary>Every run (seconds, MB/s, ms, % or MiB as in the table)</summary>\n\n| figure | runs | median |\n|---|---|---|"
    );
    for (k, v) in &s.values {
        let runs: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(
            t,
            "| `{k}` | {} | {} |",
            runs.join(", "),
            f(s.median(k), 3, "")
        );
    }
    let _ = writeln!(t, "\n</details>");
    t
}
