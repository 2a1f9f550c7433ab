//! Helpers for the end-to-end test (`tests/pipeline.rs`) and the
//! deployment-file tests (`tests/deploy.rs`).
//!
//! Layout: [`repo_file`] reads the shipped files; [`render_rsyncd`] turns a
//! shipped rsyncd.conf into one a test can run (the same substitutions
//! `quickstart.sh` makes); [`ini_set`] edits one key of an INI text;
//! [`start_listening`] starts a daemon from such a file on a free loopback
//! port (retrying when the port was taken meanwhile), owned by PID through
//! `ubackup_testkit::Proc`.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ubackup_testkit::Proc;

/// The repository root (the workspace holding `deploy/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
        .to_path_buf()
}

/// A shipped file's text, by its path in the repository.
pub fn repo_file(rel: &str) -> String {
    let p = repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `id -u` / `id -g` of this process (rsyncd takes numeric ids; the
/// workspace denies `unsafe`, which `libc::getuid` would need).
pub fn current_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").arg(flag).output().expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// A shipped rsyncd.conf made runnable in `dir`: the module's `path`, the
/// pid/log/lock files, `hosts allow`, the user (root stays root: `uid =
/// nobody` cannot read a test's temp dir; another user sets none) and `use
/// chroot` (only root may chroot).
/// Everything else (read only, list, socket options, refuse options,
/// exclude, timeouts) stays exactly as shipped. The same substitutions as
/// `quickstart.sh`'s `render_rsyncd`.
pub fn render_rsyncd(template: &str, dir: &Path, module_path: &Path, hosts_allow: &str) -> String {
    let (uid, _) = current_ids();
    let chroot = if uid == 0 { "yes" } else { "no" };
    let mut out = format!("lock file = {}/rsyncd.lock\n", dir.display());
    for line in template.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let replaced = match key {
            "path" if !line.trim_start().starts_with('#') => {
                format!("path = {}/", module_path.display())
            }
            "pid file" => format!("pid file = {}/rsyncd.pid", dir.display()),
            "log file" => format!("log file = {}/rsyncd.log", dir.display()),
            "hosts allow" => format!("hosts allow = {hosts_allow}"),
            // a non-root daemon that names a uid/gid fails every
            // connection ("setgroups failed"): leave them out
            "uid" if uid == 0 => "uid = 0".to_string(),
            "gid" if uid == 0 => "gid = 0".to_string(),
            "uid" | "gid" => format!("# {line}"),
            "use chroot" => format!("use chroot = {chroot}"),
            _ => line.to_string(),
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    out
}

/// Sets `key = value` in `[section]` of an INI text: replaces the key's line,
/// or adds it at the end of the section (the section is appended if
/// missing). Same behaviour as `quickstart.sh`'s `ini_set`.
pub fn ini_set(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut out = Vec::new();
    let mut in_sec = false;
    let mut done = false;
    let is_key = |l: &str| {
        l.split('=').next().is_some_and(|k| k.trim() == key)
            && l.contains('=')
            && !l.trim_start().starts_with(['#', ';'])
    };
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            if in_sec && !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            in_sec = line.trim() == header;
        } else if in_sec && is_key(line) {
            if !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        if !in_sec {
            out.push(String::new());
            out.push(header);
        }
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// Removes `key` from `[section]`.
pub fn ini_del(text: &str, section: &str, key: &str) -> String {
    let header = format!("[{section}]");
    let mut in_sec = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('[') {
            in_sec = line.trim() == header;
        } else if in_sec
            && line.contains('=')
            && line.split('=').next().is_some_and(|k| k.trim() == key)
            && !line.trim_start().starts_with(['#', ';'])
        {
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

/// True when something accepts TCP connections at `addr:port`.
pub fn port_open(addr: IpAddr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::new(addr, port), Duration::from_millis(100)).is_ok()
}

/// A port that was free a moment ago on every one of `addrs`.
pub fn free_port_on(addrs: &[IpAddr]) -> u16 {
    loop {
        let first = TcpListener::bind((addrs[0], 0)).expect("bind an ephemeral port");
        let port = first.local_addr().expect("local addr").port();
        if addrs[1..]
            .iter()
            .all(|a| TcpListener::bind((*a, port)).is_ok())
        {
            return port;
        }
    }
}

/// A daemon started from a config file, listening on `addr:port`.
pub struct Daemon {
    pub proc: Proc,
    pub addr: IpAddr,
    pub port: u16,
}

/// Starts one daemon per address, all on one common free port:
/// `command(addr, port)` builds each. Waits until each listens; if one
/// exits first (the port was taken meanwhile) everything is stopped and
/// retried on another port.
pub fn start_listening(
    name: &str,
    addrs: &[IpAddr],
    command: impl Fn(IpAddr, u16) -> Command,
) -> Result<Vec<Daemon>> {
    'attempt: for _ in 0..10 {
        let port = free_port_on(addrs);
        let mut started = Vec::new();
        for &addr in addrs {
            let mut proc = Proc::spawn(name, command(addr, port))?;
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                if port_open(addr, port) {
                    break;
                }
                if proc.wait_exit(Duration::from_millis(20)).is_some() || Instant::now() > end {
                    // `started` is dropped: those daemons are killed by PID
                    continue 'attempt;
                }
            }
            started.push(Daemon { proc, addr, port });
        }
        return Ok(started);
    }
    bail!("could not start {name} on a free port")
}

/// `rsync --daemon` from the config file `conf` on `addrs` (common port).
pub fn start_rsyncd(conf: &Path, addrs: &[IpAddr]) -> Result<Vec<Daemon>> {
    let conf_shown = conf.to_path_buf();
    let conf = conf.to_path_buf();
    start_listening("rsync --daemon", addrs, move |addr, port| {
        let mut c = Command::new("rsync");
        c.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    })
    .with_context(|| format!("rsync --daemon --config={} (is rsync installed? is its pid file held by another daemon?)", conf_shown.display()))
}

/// 127.0.0.1.
pub fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Runs a workspace binary to completion with a deadline; returns (exit
/// code, stdout, stderr). A hang is a test failure, not a stuck CI job.
pub fn run_bin(bin: &Path, args: &[&str], deadline: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not finish within {deadline:?}",
                bin.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code(),
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default(),
    )
}
