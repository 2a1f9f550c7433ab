//! The raw counterparts: plain rsync commands, as an operator would run
//! them (`rsync -a SRC DEST/`, the original node's command without `-v`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How the raw client sets its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sock {
    /// rsync's defaults (the daemon side still has TCP_NODELAY).
    Default,
    /// `--sockopts=TCP_NODELAY` on the client too.
    NoDelay,
}

fn command(
    src: &str,
    dest: &Path,
    sock: Sock,
    extra: &[String],
    env: &[(String, String)],
) -> Command {
    let mut c = Command::new("rsync");
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c.arg("-a");
    if sock == Sock::NoDelay {
        c.arg("--sockopts=TCP_NODELAY");
    }
    c.args(extra)
        .arg(src)
        .arg(format!("{}/", dest.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// One rsync; Err if it fails.
pub fn one(src: &str, dest: &Path, sock: Sock, extra: &[String]) -> Result<Duration> {
    one_env(src, dest, sock, extra, &[])
}

/// [`one`] with environment variables for rsync (e.g. `RSYNC_CONNECT_PROG`).
pub fn one_env(
    src: &str,
    dest: &Path,
    sock: Sock,
    extra: &[String],
    env: &[(String, String)],
) -> Result<Duration> {
    let t = Instant::now();
    let out = command(src, dest, sock, extra, env).output()?;
    let el = t.elapsed();
    if !out.status.success() {
        bail!(
            "rsync {src} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(el)
}

/// Every source in `srcs` pulled by its own rsync into `dest`, `p` at a
/// time (what `xargs -P p -n 1 rsync -a … DEST/` does).
pub fn parallel(srcs: &[String], dest: &Path, sock: Sock, p: usize) -> Result<Duration> {
    parallel_with(srcs, dest, sock, p, &[])
}

/// [`parallel`] with `extra` options on every rsync (e.g. `--fsync`).
pub fn parallel_with(
    srcs: &[String],
    dest: &Path,
    sock: Sock,
    p: usize,
    extra: &[String],
) -> Result<Duration> {
    parallel_env(srcs, dest, sock, p, extra, &[])
}

/// [`parallel_with`] with environment variables for every rsync.
pub fn parallel_env(
    srcs: &[String],
    dest: &Path,
    sock: Sock,
    p: usize,
    extra: &[String],
    env: &[(String, String)],
) -> Result<Duration> {
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..p {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= srcs.len() {
                    break;
                }
                if let Err(e) = one_env(&srcs[i], dest, sock, extra, env) {
                    failure.lock().unwrap().get_or_insert(e.to_string());
                }
            });
        }
    });
    let el = t.elapsed();
    if let Some(e) = failure.into_inner().unwrap() {
        bail!("{e}");
    }
    Ok(el)
}
