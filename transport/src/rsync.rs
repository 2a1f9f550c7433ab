//! One rsync call: its argument vector (never a shell), its own process
//! group, a drained stderr, an outer watchdog, and a kill of the whole
//! group when the watchdog or shutdown says so.
//!
//! A call pulls either named files ([`pull_args`]: each URL into the
//! destination directory, where it lands under its basename) or a list of
//! paths from one module ([`files_from_args`]: `--files-from`, each file
//! under its path in the module). The node's pulls and restore's pulls
//! from the nodes use the same options, so both sides behave alike.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use ubackup_common::shutdown::Shutdown;

use crate::retry::AttemptError;
use crate::tls::TlsOptions;
use crate::tmp::{kill_rsync_group, TempArea};

/// The partial directory inside an attempt directory: rsync keeps an
/// interrupted file there, and the next attempt resumes from it.
pub const PARTIAL_DIR: &str = ".rsync-partial";

/// How much of rsync's stderr is kept for logs and results.
const STDERR_TAIL: usize = 2048;

/// How every call talks to a daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsyncOptions {
    /// `--contimeout`: connecting to the daemon.
    pub contimeout: Duration,
    /// `--timeout`: no I/O for this long.
    pub timeout: Duration,
    /// `--sockopts=TCP_NODELAY`.
    pub nodelay: bool,
    /// `--password-file`, for a module with `auth users` (the user is in
    /// the URL, see [`crate::source::source_url`]).
    pub password_file: Option<PathBuf>,
    /// Reach the daemon through TLS ([`crate::tls`]); `None` is the plain
    /// daemon protocol on the URL's port.
    pub tls: Option<TlsOptions>,
}

/// Per-transfer limit in KB/s: `rsync_bwlimit`, and `node_bwlimit` split
/// evenly among the transfers running when this one starts (0 = none).
pub fn per_transfer_kbps(
    rsync_bwlimit: u64,
    node_bwlimit: u64,
    active_including_this: usize,
) -> u64 {
    let share = if node_bwlimit > 0 {
        (node_bwlimit / active_including_this.max(1) as u64).max(1)
    } else {
        0
    };
    match (rsync_bwlimit, share) {
        (0, s) => s,
        (b, 0) => b,
        (b, s) => b.min(s),
    }
}

/// The argument vector for pulling `urls` into `dest`, with `basis` (when
/// given) as `--copy-dest`. Options and why:
/// * `-s`: the remote path travels as data, not as a remote shell word;
/// * `--no-links`, no `-r`/`-D`: a symlink, directory or device named by a
///   message is skipped, never landed (the caller lstats afterwards);
/// * `--times`: keeps the source mtime, so a re-pull can use the landed
///   file as its basis (`--copy-dest`) instead of the network;
/// * `--partial-dir`: an interrupted attempt is resumed by the next one;
/// * `--contimeout` (not over TLS, see [`crate::tls`]) and `--timeout`
///   always, because `--contimeout` alone
///   hangs against a stopped daemon (CRATES.md); the caller adds a watchdog.
pub fn pull_args(
    opts: &RsyncOptions,
    bwlimit_kbps: u64,
    basis: Option<&Path>,
    urls: &[String],
    dest: &Path,
) -> Vec<OsString> {
    let mut a = common_args(opts, bwlimit_kbps);
    if let Some(b) = basis {
        let mut o = OsString::from("--copy-dest=");
        o.push(b);
        a.push(o);
    }
    a.push("--".into());
    a.extend(urls.iter().map(OsString::from));
    a.push(dir_arg(dest));
    a
}

/// The argument vector for every remote path listed (NUL separated) in
/// `list`, pulled from `module_url` (the module root) by one rsync into
/// `dest`, each file at `dest/<remote path>` (`--files-from` implies
/// `--relative`, so two files of the same basename in different
/// directories do not collide). The same options as [`pull_args`], without
/// `--copy-dest` (its basis lookup uses the relative path, which is not
/// where the original layout keeps a landed file).
pub fn files_from_args(
    opts: &RsyncOptions,
    bwlimit_kbps: u64,
    list: &Path,
    module_url: &str,
    dest: &Path,
) -> Vec<OsString> {
    let mut a = common_args(opts, bwlimit_kbps);
    a.push("--from0".into());
    let mut o = OsString::from("--files-from=");
    o.push(list);
    a.push(o);
    a.push("--".into());
    a.push(module_url.into());
    a.push(dir_arg(dest));
    a
}

/// `dest/`: rsync puts what it pulls inside the directory.
fn dir_arg(dest: &Path) -> OsString {
    let mut d = dest.as_os_str().to_owned();
    d.push("/");
    d
}

/// The options every pull has (see [`pull_args`]).
fn common_args(opts: &RsyncOptions, bwlimit_kbps: u64) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "-s".into(),
        "--no-links".into(),
        "--times".into(),
        "--no-motd".into(),
        format!("--timeout={}", opts.timeout.as_secs()).into(),
        "--partial".into(),
        format!("--partial-dir={PARTIAL_DIR}").into(),
    ];
    if opts.tls.is_none() {
        // rsync refuses --contimeout without a socket of its own; over
        // TLS the connector's --timeout bounds connecting
        a.insert(
            4,
            format!("--contimeout={}", opts.contimeout.as_secs()).into(),
        );
    }
    if bwlimit_kbps > 0 {
        a.push(format!("--bwlimit={bwlimit_kbps}").into());
    }
    if opts.nodelay && opts.tls.is_none() {
        a.push("--sockopts=TCP_NODELAY".into());
    }
    if let Some(pf) = &opts.password_file {
        let mut o = OsString::from("--password-file=");
        o.push(pf);
        a.push(o);
    }
    if let Some(tls) = &opts.tls {
        // rsync execs the connector itself (no shell) and ignores the
        // URL's port: the connector dials `tls.port`
        a.push("-e".into());
        a.push(tls.rsh(opts.contimeout));
    }
    a
}

/// The outer watchdog: the connect and I/O timeouts, plus the transfer at a
/// quarter of its rate limit (or 1 MiB/s when unlimited), plus slack. It
/// only fires when rsync's own timeouts did not.
pub fn watchdog(opts: &RsyncOptions, size: u64, bwlimit_kbps: u64) -> Duration {
    let floor_rate = if bwlimit_kbps > 0 {
        (bwlimit_kbps * 1024 / 4).max(16 * 1024)
    } else {
        1024 * 1024
    };
    opts.contimeout + opts.timeout * 2 + Duration::from_secs(size / floor_rate + 30)
}

/// A finished rsync run.
#[derive(Debug)]
pub struct RsyncRun {
    pub result: Result<(), AttemptError>,
    pub stderr_tail: String,
    pub elapsed: Duration,
}

/// How much of the machine an rsync run may take from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A first copy, a restore: the node's own priority.
    Normal,
    /// Replication: `nice` 10 and the lowest best-effort I/O priority, so
    /// on a busy node the kernel gives first copies the CPU and the disk
    /// first, while a copy still progresses (an idle I/O class could
    /// starve it for as long as the disk stays busy, hours on a node that
    /// ships all day).
    Background,
}

/// `nice` of a background run (CFS weight 110 against 1024 at 0).
const BACKGROUND_NICE: libc::c_int = 10;
/// ioprio_set(2): who = a process, class best-effort (2) at level 7.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_BACKGROUND: libc::c_int = (2 << 13) | 7;

/// Runs rsync with `args`. Returns early (killing the group) when
/// `watchdog` passes or `abort` trips; `aborted` is then true.
pub async fn run(
    tmp: &TempArea,
    args: Vec<OsString>,
    watchdog: Duration,
    abort: &mut Shutdown,
) -> (RsyncRun, bool) {
    run_as(Priority::Normal, tmp, args, watchdog, abort).await
}

/// [`run`] at `priority`; the children rsync forks (the generator, a TLS
/// connector) inherit it.
pub async fn run_as(
    priority: Priority,
    tmp: &TempArea,
    args: Vec<OsString>,
    watchdog: Duration,
    abort: &mut Shutdown,
) -> (RsyncRun, bool) {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("rsync");
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        // its own group: a kill reaches the receiver child rsync forks
        .process_group(0)
        .kill_on_drop(true);
    if priority == Priority::Background {
        lower_priority(&mut cmd);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let run = RsyncRun {
                result: Err(AttemptError::Spawn(e.to_string())),
                stderr_tail: String::new(),
                elapsed: started.elapsed(),
            };
            return (run, false);
        }
    };
    let pgid = child.id().unwrap_or(0);
    if let Err(e) = tmp.record_group(pgid) {
        tracing::warn!(
            pgid,
            "cannot record rsync process group in {}: {e}",
            tmp.dir().display()
        );
    }
    let mut stderr = child.stderr.take().expect("piped");
    let drain = tokio::spawn(async move {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > STDERR_TAIL * 2 {
                        tail.drain(..tail.len() - STDERR_TAIL);
                    }
                }
            }
        }
        let start = tail.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&tail[start..]).trim().to_string()
    });
    let mut aborted = false;
    let status = tokio::select! {
        st = child.wait() => Some(st),
        _ = tokio::time::sleep(watchdog) => None,
        _ = abort.wait() => { aborted = true; None }
    };
    let result = match status {
        Some(Ok(st)) => match (
            st.code(),
            std::os::unix::process::ExitStatusExt::signal(&st),
        ) {
            (Some(0), _) => Ok(()),
            (Some(c), _) => Err(AttemptError::Exit(c)),
            (None, Some(s)) => Err(AttemptError::Signal(s)),
            (None, None) => Err(AttemptError::Signal(0)),
        },
        Some(Err(e)) => Err(AttemptError::Spawn(format!("waiting for rsync: {e}"))),
        None => Err(AttemptError::Watchdog),
    };
    // The whole group goes, also after a normal exit (a receiver that
    // outlived its parent must not write into a directory we reuse).
    let group = pgid as i32;
    if group > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait().await;
        // After exit code 0 rsync's generator has already reaped its
        // receiver (it waits for it before reporting success), and the
        // SIGKILL above reached anything else in the group: waiting for
        // the group to empty costs two scans of /proc (milliseconds of CPU
        // per pull, more on a busy host), so only the other endings
        // (error, signal, watchdog, shutdown) wait for it.
        if !matches!(result, Ok(())) {
            let _ = tokio::task::spawn_blocking(move || {
                kill_rsync_group(group, Duration::from_secs(5))
            })
            .await;
        }
        tmp.forget_group(pgid);
    }
    let stderr_tail = tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    // over TLS rsync only sees a closed connection; the connector's own
    // line says whether it was a certificate or the network
    let result = match result {
        Err(AttemptError::Exit(_)) => match crate::tls::classify(&stderr_tail) {
            Some(e) => Err(e),
            None => result,
        },
        other => other,
    };
    (
        RsyncRun {
            result,
            stderr_tail,
            elapsed: started.elapsed(),
        },
        aborted,
    )
}

/// Lowers the child's CPU and I/O priority between fork and exec. Failures
/// are ignored: a copy at normal priority is still a correct copy.
#[allow(unsafe_code)]
fn lower_priority(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes two async-signal-safe syscalls, touching no memory of the
    // parent's (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                IOPRIO_BACKGROUND,
            );
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RsyncOptions {
        RsyncOptions {
            contimeout: Duration::from_secs(3),
            timeout: Duration::from_secs(7),
            nodelay: true,
            password_file: None,
            tls: None,
        }
    }

    /// A background run's process (and what it forks) has nice 10 and
    /// best-effort I/O at level 7, read back from the child itself.
    #[tokio::test]
    async fn a_background_child_runs_niced_at_low_io_priority() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "cut -d')' -f2- /proc/self/stat; ionice"]);
        lower_priority(&mut cmd);
        let out = cmd.output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        // after the `(comm)`: state is field 3 of stat(5), nice field 19
        let stat: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(stat[19 - 3], BACKGROUND_NICE.to_string(), "{text}");
        assert_eq!(
            lines.next().unwrap().trim(),
            "best-effort: prio 7",
            "{text}"
        );
    }

    #[test]
    fn over_tls_the_connector_replaces_the_socket_options() {
        let plain = pull_args(
            &opts(),
            0,
            None,
            &["rsync://h:873/m/f".into()],
            Path::new("/d"),
        );
        assert!(plain.iter().any(|a| a == "--contimeout=3") && !plain.iter().any(|a| a == "-e"));
        let tls = RsyncOptions {
            tls: Some(TlsOptions {
                port: 874,
                ca: "/ca.pem".into(),
                client: None,
                connector: "/bin/ubackup-tls-connect".into(),
            }),
            ..opts()
        };
        let a = pull_args(
            &tls,
            0,
            None,
            &["rsync://h:873/m/f".into()],
            Path::new("/d"),
        );
        // rsync refuses --contimeout when a program makes the connection
        assert!(
            !a.iter()
                .any(|x| x.to_string_lossy().starts_with("--contimeout")),
            "{a:?}"
        );
        assert!(
            !a.iter()
                .any(|x| x.to_string_lossy().starts_with("--sockopts")),
            "{a:?}"
        );
        let e = a.iter().position(|x| x == "-e").unwrap();
        assert_eq!(
            a[e + 1],
            "/bin/ubackup-tls-connect --port 874 --timeout 3 --ca /ca.pem"
        );
        assert!(a.iter().any(|x| x == "--timeout=7"));
    }

    #[test]
    fn bandwidth_share() {
        assert_eq!(per_transfer_kbps(0, 0, 3), 0);
        assert_eq!(per_transfer_kbps(62000, 0, 3), 62000);
        assert_eq!(per_transfer_kbps(0, 90000, 3), 30000);
        assert_eq!(per_transfer_kbps(20000, 90000, 3), 20000);
        assert_eq!(per_transfer_kbps(62000, 90000, 1), 62000);
    }

    #[test]
    fn watchdog_covers_timeouts_and_a_slow_transfer() {
        let o = opts();
        assert_eq!(watchdog(&o, 0, 0), Duration::from_secs(3 + 14 + 30));
        // 100 MiB at 1000 KiB/s: expected ~102 s, the watchdog allows 4x that
        assert_eq!(
            watchdog(&o, 100 << 20, 1000),
            Duration::from_secs(3 + 14 + 409 + 30)
        );
    }
}
