//! `ubackup-quickstart`: a whole ubackup cluster on this machine, in one
//! command (quickstart.sh installs the packages, builds, and runs this).
//!
//! What it starts, all on 127.0.0.1, on free ports, in a fresh temp
//! directory, from the shipped files (deploy/redis, deploy/rsyncd,
//! deploy/examples), through the workspace's cluster builder
//! (`ubackup_testkit::cluster`):
//! * redis-server (deploy/redis/redis-ubackup.conf: AOF everysec, AUTH);
//! * two "database hosts": each an rsync daemon (dbhost-rsyncd.conf) and a
//!   client config (deploy/examples/client.conf): a MySQL-like full +
//!   incremental instance and a Redis-like full-only one; host 2 also has an
//!   instance whose script fails;
//! * two pull nodes (ubackup-server), each with its own server_root_path and
//!   a read-only rsync daemon over it for restore (node-rsyncd.conf);
//! * the indexer on the SQLite catalog (deploy/examples/indexer.conf, no ES).
//!
//! Then it runs the clients a few times, waits until every result is
//! indexed, shows `ubackup-reporter status`/`alerts` and `ubackup-client
//! list`, restores an incremental chain and checks it byte for byte, and
//! stops what it started by PID. Every step is printed; a failure stops the
//! run with exit code 1. See docs/quickstart.md.
//!
//! Layout: [`cli`] the options; `out` the printed steps; `setup` steps 3-6
//! (Redis, database hosts, nodes, indexer); `checks` steps 7-13 (backup
//! rounds, the index, reports, list, restore); `keep` the `--keep` ending
//! (stop.sh and how to use the cluster); this file the run and the cleanup.

mod checks;
pub mod cli;
mod keep;
mod out;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ubackup_testkit::cluster::Cluster;

use out::{info, Out};

/// The binaries the cluster runs.
const BINARIES: [&str; 4] = [
    "ubackup-client",
    "ubackup-server",
    "ubackup-indexer",
    "ubackup-reporter",
];

/// A process that did not stop on SIGTERM gets SIGKILL after this long.
const STOP_GRACE: Duration = Duration::from_secs(15);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One run: where things are, and what has been started so far.
pub(crate) struct Ctx {
    pub out: Out,
    pub repo: PathBuf,
    pub bin: PathBuf,
    pub rounds: u32,
    pub keep: bool,
    /// From step 3 on.
    pub cluster: Option<Cluster>,
    pub t_cluster: f64,
}

impl Ctx {
    pub fn cluster(&self) -> &Cluster {
        self.cluster
            .as_ref()
            .expect("the cluster is started in step 3")
    }
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        self.cluster
            .as_mut()
            .expect("the cluster is started in step 3")
    }
    pub fn dir(&self) -> PathBuf {
        self.cluster().dir.path().to_path_buf()
    }
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

/// An error once Ctrl-C (or SIGTERM) arrived.
pub(crate) fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Polls `cond` every 100 ms; fails the step when `secs` pass first.
pub(crate) fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        check_interrupt()?;
        if cond() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("timed out after {secs}s waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGINT and SIGTERM set [`INTERRUPTED`] instead of ending the process, so
/// that the run stops what it started.
fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    });
}

fn default_repo() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("deploy").is_dir() {
        built.canonicalize().unwrap_or(built)
    } else {
        std::env::current_dir().unwrap_or_else(|_| ".".into())
    }
}

fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| ".".into())
}

pub fn run(opts: cli::Opts) -> ExitCode {
    watch_signals();
    let (out, from_script) = Out::from_env();
    let bin = opts.bin_dir.unwrap_or_else(default_bin_dir);
    let bin = bin.canonicalize().unwrap_or(bin);
    let mut ctx = Ctx {
        out,
        repo: opts.repo.unwrap_or_else(default_repo),
        bin,
        rounds: opts.rounds,
        keep: opts.keep,
        cluster: None,
        t_cluster: 0.0,
    };
    let result = steps(&mut ctx, from_script);
    if let Err(e) = &result {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("quickstart: interrupted");
        } else {
            eprintln!("\nquickstart: FAILED at step {}: {e:#}", ctx.out.step);
        }
    }
    finish(ctx, result.is_ok())
}

fn steps(ctx: &mut Ctx, from_script: bool) -> Result<()> {
    if !from_script {
        ctx.out.step("system packages (redis-server, rsync)");
        info(&setup::versions()?);
        ctx.out.step(&format!(
            "use the binaries in {} (--bin-dir: no build)",
            ctx.bin.display()
        ));
    }
    for b in BINARIES {
        let p = ctx.bin(b);
        if !p.is_file() {
            bail!("{} not found or not executable", p.display());
        }
    }
    info(&format!("binaries in {}", ctx.bin.display()));
    ctx.t_cluster = out::now();
    setup::redis(ctx)?;
    let hosts = setup::hosts(ctx)?;
    setup::nodes(ctx, &hosts)?;
    setup::indexer(ctx)?;
    checks::rounds(ctx)?;
    checks::index(ctx)?;
    checks::reports(ctx)?;
    checks::list_and_restore(ctx)?;
    let secs = out::now() - ctx.t_cluster;
    ctx.out.step(&format!(
        "all steps passed: the cluster part took {secs:.1}s (after the build)"
    ));
    if ctx.keep {
        keep::write_stop_sh(ctx)?;
    }
    Ok(())
}

/// Stops everything this run started, by PID (unless `--keep` and every
/// step passed); keeps the directory after a failure.
fn finish(mut ctx: Ctx, ok: bool) -> ExitCode {
    let Some(mut cluster) = ctx.cluster.take() else {
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    };
    if ctx.keep && ok {
        let dir = cluster.dir.path().to_path_buf();
        keep::print_usage(&ctx, &cluster, &dir);
        cluster.keep();
        return ExitCode::SUCCESS;
    }
    ctx.out.step("stop everything this run started (by PID)");
    let t = Instant::now();
    let mut names = vec!["redis-server".to_string()];
    names.extend(cluster.procs.list().into_iter().map(|(_, n)| n));
    for k in cluster.stop_all(STOP_GRACE) {
        info(&format!(
            "{} (pid {}) did not stop within 15 s: SIGKILL",
            k.name, k.pid
        ));
    }
    info(&format!(
        "stopped in {}s: {}",
        t.elapsed().as_secs(),
        names.join(" ")
    ));
    if ok {
        return ExitCode::SUCCESS;
    }
    let dir = cluster.dir.path().to_path_buf();
    eprintln!("quickstart: logs and configs kept in {}", dir.display());
    for log in logs(&dir) {
        eprintln!("    {}", log.display());
    }
    drop(cluster.keep());
    ExitCode::from(1)
}

/// `<dir>/*/*.log` and `<dir>/*/log/*.log`, sorted.
fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let subdirs = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir());
    for d in subdirs {
        for d in [d.clone(), d.join("log")] {
            let files = std::fs::read_dir(&d).into_iter().flatten().flatten();
            out.extend(
                files
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log")),
            );
        }
    }
    out.sort();
    out
}
