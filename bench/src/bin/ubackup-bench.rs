//! `ubackup-bench`: runs the workloads against ubackup's release binaries
//! and writes the markdown table (see `bench/run.sh`).
//!
//! Exit codes: 0 the table was written; 1 a workload failed (a process did
//! not start, a pull failed, a count was wrong): nothing is written then,
//! because a table with a silently missing figure would mislead.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use ubackup_bench::data::{LargeSet, SmallSet};
use ubackup_bench::procs::{Bins, Env};
use ubackup_bench::report;
use ubackup_bench::stats::Samples;
use ubackup_bench::workloads::{self, Opts};
use ubackup_testkit::RedisServer;

const ALL: &[&str] = &[
    "small",
    "backlog",
    "large",
    "bwlimit",
    "latency",
    "level1",
    "client",
    "indexer",
    "burst",
    "rss",
    "replication",
    "restore",
    "security",
    "wan",
];

/// Workloads left out of a run without `--only` (none at present: `wan`
/// adds about a minute per run and stays in).
const OPT_IN: &[&str] = &[];

#[derive(Parser, Debug)]
#[command(about = "Benchmark ubackup against raw rsync; writes a markdown table")]
struct Args {
    /// Directory holding ubackup-server, ubackup-indexer and ubackup-client
    /// (default: this binary's directory, i.e. target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Write the markdown here (default: print it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs per workload; each figure is the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Comma-separated workloads (small, backlog, large, bwlimit, latency,
    /// level1, client, indexer, burst, rss, replication, restore, security,
    /// wan); default all (`--only wan`: just the delay-proxy workload;
    /// `--only restore`: just the restore of a 3-file chain from one node).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Scratch directory (sources, node roots); a temp dir inside it is
    /// removed at the end.
    #[arg(long, default_value = "/tmp")]
    work_dir: PathBuf,
    /// Small files: how many, and their size in bytes.
    #[arg(long, default_value_t = 1000)]
    small_n: usize,
    #[arg(long, default_value_t = 4096)]
    small_size: usize,
    /// Large files: how many (= workers), and MiB each.
    #[arg(long, default_value_t = 4)]
    large_files: usize,
    #[arg(long, default_value_t = 512)]
    large_mib: u64,
    /// Bandwidth-limit workload: the limit (KB/s) and the file size (MiB).
    #[arg(long, default_value_t = 8192)]
    bw_kbps: u64,
    #[arg(long, default_value_t = 32)]
    bw_mib: u64,
    /// Latency samples per run on the top list and on the normal list.
    #[arg(long, default_value_t = 100)]
    latency_samples: usize,
    #[arg(long, default_value_t = 50)]
    low_samples: usize,
    /// Backlog in front of the level1 probe.
    #[arg(long, default_value_t = 200)]
    backlog_l1: usize,
    #[arg(long, default_value_t = 20)]
    client_instances: usize,
    /// Results in the indexer's backlog.
    #[arg(long, default_value_t = 20000)]
    indexer_n: usize,
    /// Burst: hosts, and instances (small files) per host.
    #[arg(long, default_value_t = 100)]
    burst_hosts: usize,
    #[arg(long, default_value_t = 20)]
    burst_per_host: usize,
    /// Replication: how many files, and their size in bytes.
    #[arg(long, default_value_t = 200)]
    repl_n: usize,
    #[arg(long, default_value_t = 65536)]
    repl_size: usize,
    /// Restore: MiB of each of the 3 files of the chain (a full and two
    /// incrementals) restored from one node.
    #[arg(long, default_value_t = 256)]
    restore_mib: u64,
    /// A line added under the title (e.g. "binaries of commit X, before batching").
    #[arg(long, default_value = "")]
    note: String,
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ubackup-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(a: Args) -> Result<()> {
    let started = Instant::now();
    let bin_dir = match a.bin_dir.clone() {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_path_buf(),
    };
    let bins = Bins::in_dir(&bin_dir)?;
    let only: Vec<&str> = if a.only.is_empty() {
        ALL.iter()
            .copied()
            .filter(|w| !OPT_IN.contains(w))
            .collect()
    } else {
        a.only.iter().map(String::as_str).collect()
    };
    for w in &only {
        if !ALL.contains(w) {
            anyhow::bail!("unknown workload `{w}`; expected one of {}", ALL.join(", "));
        }
    }
    let want = |w: &str| only.contains(&w);
    let o = Opts {
        runs: a.runs.max(1),
        small_n: a.small_n.max(a.backlog_l1 + 201),
        small_size: a.small_size,
        large_files: a.large_files,
        large_mib: a.large_mib,
        bw_kbps: a.bw_kbps,
        bw_mib: a.bw_mib,
        latency_samples: a.latency_samples,
        low_samples: a.low_samples,
        backlog_l1: a.backlog_l1,
        client_instances: a.client_instances,
        indexer_n: a.indexer_n,
        burst_hosts: a.burst_hosts,
        burst_per_host: a.burst_per_host,
        repl_n: a.repl_n.max(1),
        repl_size: a.repl_size,
        restore_mib: a.restore_mib.max(1),
    };
    let scratch = tempfile::Builder::new()
        .prefix("ubackup-bench-")
        .tempdir_in(&a.work_dir)?;
    let env = Env {
        bins,
        redis: RedisServer::start()?,
        work: scratch.path().to_path_buf(),
    };
    eprintln!(
        "ubackup-bench: binaries from {}, scratch {}",
        bin_dir.display(),
        env.work.display()
    );
    let mut s = Samples::default();
    if want("small") || want("backlog") || want("latency") || want("level1") {
        eprintln!("creating {} small files", o.small_n);
        let set = SmallSet::create(&env.work, o.small_n, o.small_size)?;
        if want("small") {
            workloads::small(&env, &set, &o, &mut s)?;
        }
        if want("backlog") {
            workloads::backlog(&env, &set, &o, &mut s)?;
        }
        if want("latency") {
            workloads::latency(&env, &set, &o, &mut s)?;
        }
        if want("level1") {
            workloads::level1_behind_backlog(&env, &set, &o, &mut s)?;
        }
    }
    if want("large") {
        eprintln!("creating {} files of {} MiB", o.large_files, o.large_mib);
        let names: Vec<(String, u64)> = (0..o.large_files)
            .map(|i| (format!("big{i}.bin"), o.large_mib << 20))
            .collect();
        let refs: Vec<(&str, u64)> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let set = LargeSet::create(&env.work.join("l"), &refs)?;
        workloads::large(&env, &set, &o, &mut s)?;
        drop(set);
        let _ = std::fs::remove_dir_all(env.work.join("l"));
    }
    if want("bwlimit") {
        let b = o.bw_mib << 20;
        let set = LargeSet::create(
            &env.work.join("bw"),
            &[("bw0.bin", b), ("bw1.bin", b / 2), ("bw2.bin", b / 2)],
        )?;
        workloads::bwlimit(&env, &set, &o, &mut s)?;
    }
    if want("client") {
        workloads::client(&env, &o, &mut s)?;
    }
    if want("indexer") {
        workloads::indexer(&env, &o, &mut s)?;
    }
    if want("burst") {
        eprintln!(
            "creating {} hosts × {} small files",
            o.burst_hosts, o.burst_per_host
        );
        let set = ubackup_bench::data::BurstSet::create(
            &env.work.join("b"),
            o.burst_hosts,
            o.burst_per_host,
            o.small_size,
        )?;
        workloads::burst(&env, &set, &o, &mut s)?;
        drop(set);
        let _ = std::fs::remove_dir_all(env.work.join("b"));
    }
    if want("replication") {
        eprintln!(
            "creating {} files of {} bytes for replication",
            o.repl_n, o.repl_size
        );
        let set = SmallSet::create(&env.work.join("r"), o.repl_n, o.repl_size)?;
        ubackup_bench::replication::replication(&env, &set, &o, &mut s)?;
        drop(set);
        let _ = std::fs::remove_dir_all(env.work.join("r"));
    }
    if want("restore") {
        ubackup_bench::restore::restore(&env, &o, &mut s)?;
    }
    if want("security") {
        let mib = o.large_mib.min(256);
        eprintln!(
            "creating {} files of {mib} MiB and {} small files for the security costs",
            o.large_files,
            ubackup_bench::security::SMALL_N
        );
        let names: Vec<(String, u64)> = (0..o.large_files)
            .map(|i| (format!("sec{i}.bin"), mib << 20))
            .collect();
        let refs: Vec<(&str, u64)> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let large = LargeSet::create(&env.work.join("sl"), &refs)?;
        let small = SmallSet::create(
            &env.work.join("ss"),
            ubackup_bench::security::SMALL_N,
            o.small_size,
        )?;
        ubackup_bench::security::security(&env, &large, &small, &o, &mut s)?;
        drop((large, small));
        let _ = std::fs::remove_dir_all(env.work.join("sl"));
        let _ = std::fs::remove_dir_all(env.work.join("ss"));
    }
    if want("wan") {
        ubackup_bench::wan::wan(&env, &o, &mut s)?;
    }
    if want("rss") {
        eprintln!("  idle RSS");
        for _ in 0..o.runs {
            workloads::server_idle_rss(&env, &mut s)?;
            workloads::indexer_idle_rss(&env, &mut s)?;
        }
    }
    if o.large_mib < 512 && want("large") {
        s.note(format!(
            "large files scaled down to {} × {} MiB (the issue asks for 4 × 512 MiB)",
            o.large_files, o.large_mib
        ));
    }
    if o.restore_mib != 256 && want("restore") {
        s.note(format!(
            "restore chain scaled to 3 × {} MiB (the issue asks for 3 × 256 MiB)",
            o.restore_mib
        ));
    }
    let note = if a.note.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", a.note)
    };
    let md = report::markdown(&s, &o, &note, started.elapsed().as_secs_f64());
    match &a.out {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{md}"),
    }
    Ok(())
}
