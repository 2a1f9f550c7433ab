//! Daemons started from config files (rsync --daemon from a shipped
//! rsyncd.conf, redis-server from a shipped redis.conf) on free loopback
//! ports, one or several addresses sharing one port, retried on another port
//! when the first was taken meanwhile, and owned by PID through [`Proc`].

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Proc;

/// 127.0.0.1.
pub fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
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
/// nobody` cannot read a temp dir; another user sets none) and `use chroot`
/// (only root may chroot). Everything else (read only, list, socket options,
/// refuse options, exclude, timeouts) stays exactly as shipped.
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
    let conf = conf.to_path_buf();
    start_listening("rsync --daemon", addrs, |addr, port| {
        let mut c = Command::new("rsync");
        c.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    })
    .with_context(|| format!("rsync --daemon --config={} (is rsync installed? is its pid file held by another daemon?)", conf.display()))
}
