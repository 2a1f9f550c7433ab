//! The shipped backup recipes (deploy/examples/scripts) against the real
//! servers from Debian's packages, through the real pipeline: for each
//! engine a private server with rows written under load, several
//! `ubackup-client` runs (fulls, incrementals, a failure), the node pulls,
//! the indexer catalogs, `ubackup-client restore --run-hook` rebuilds a
//! datadir (MariaDB over `catalog_url`), and a second server started on it
//! holds exactly a prefix of the rows: at least every row committed before
//! the chosen backup started, at most those committed when it ended.
//! Plus the catalog API from a host's side: its token sees only its host,
//! a wrong token is refused, and a pin made over the API holds against
//! `ubackup-server prune`.
//!
//! An engine whose binaries are missing is skipped with a loud message;
//! CI (`.ci/run`) installs them all.

mod api;
mod mysql;
mod postgres;
mod redis;
mod rig;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A writer feeding numbered statements to a database client's stdin
/// until stopped: the load the backups run under.
pub struct Load {
    child: Child,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts `cmd` and writes `line(1)`, `line(2)`, … to it.
    pub fn start(mut cmd: Command, line: fn(u64) -> String) -> Load {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().expect("start the load's client");
        let mut stdin = child.stdin.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut i = 1;
            while !s.load(Ordering::Relaxed) {
                if stdin.write_all(line(i).as_bytes()).is_err() {
                    return;
                }
                i += 1;
                // a steady trickle, not a flood: the machine is shared
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        Load {
            child,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // stdin closed: the client ends; kill it if it does not
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Output of a command that must succeed.
pub fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One backup round: rows committed before it started and when it ended,
/// and what the client made.
#[derive(Debug, Clone)]
pub struct Round {
    pub before: u64,
    pub after: u64,
    pub ok: bool,
    /// The file (ok) or the reason (wrong) from back_log.
    pub file: String,
}

/// Runs `rounds` backups of `section`, the count of committed rows read
/// by `committed` around each; `prepare(r)` runs first (a failure switch).
pub fn rounds(
    rig: &rig::Rig,
    section: &str,
    n: usize,
    committed: &dyn Fn() -> u64,
    prepare: &dyn Fn(usize),
) -> Vec<Round> {
    let mut out = Vec::new();
    for r in 1..=n {
        prepare(r);
        // a few rows between runs at least
        let floor = committed() + 20;
        ubackup_testkit::cluster::wait_for("rows between runs", Duration::from_secs(60), || {
            committed() >= floor
        })
        .unwrap();
        let before = committed();
        let (ok, file) = rig.backup(section);
        let after = committed();
        out.push(Round {
            before,
            after,
            ok,
            file,
        });
    }
    out
}

/// Asserts the restored ids are exactly 1..=n with the round's bounds.
pub fn assert_prefix(engine: &str, ids: &[u64], round: &Round) {
    let n = ids.len() as u64;
    assert!(
        ids.iter().enumerate().all(|(k, id)| *id == k as u64 + 1),
        "{engine}: the restored rows are not 1..={n} in order: {:?}…",
        &ids[..ids.len().min(20)]
    );
    assert!(
        round.before <= n && n <= round.after,
        "{engine}: {n} rows restored; {} were committed before the backup started and {} when it ended",
        round.before,
        round.after
    );
    eprintln!(
        "{engine}: {n} rows restored ({} committed before the backup, {} after)",
        round.before, round.after
    );
}

#[test]
fn recipes_back_up_ship_and_restore_real_databases() {
    let _one = crate::one_cluster();
    let rig = rig::Rig::start();
    // the shipped example, as it is, is a valid client config
    let shipped = ubackup_e2e::repo_root().join("deploy/examples/client-databases.conf");
    let (code, out, err) = rig.client(&shipped, &["check"]);
    assert_eq!(code, Some(0), "check {}: {out}{err}", shipped.display());
    let mut ran = Vec::new();
    if mysql::run(&rig) {
        ran.push("mariadb");
    }
    if postgres::run(&rig) {
        ran.push("postgresql");
    }
    if redis::run(&rig) {
        ran.push("redis");
    }
    api::pin_holds_against_prune(&rig);
    eprintln!("recipe engines tested: {ran:?}");
}
