//! Signals to processes this suite started, always by PID (or by the
//! process group of a process we spawned with its own group), never by name.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

pub use nix::sys::signal::Signal as Sig;

/// Sends `sig` to one process.
pub fn signal(pid: u32, sig: Signal) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Sends `sig` to the process group led by `pgid` (a process we spawned
/// with `process_group(0)`).
pub fn signal_group(pgid: u32, sig: Signal) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid as i32), sig);
    }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Command lines of every process on the machine, NUL-separated arguments
/// joined with spaces (for "the password is in no command line").
pub fn all_cmdlines() -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let text = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            Some((pid, text))
        })
        .collect()
}
