//! The node's temp area `server_root_path/.ubackup-tmp/<node_id>/` and the
//! rsync process groups that write into it.
//!
//! After the node is killed with -9, rsync's receiver child survives and
//! may even finish and rename its file, seconds later (shared/CRATES.md,
//! "Orphans after a crash"). So every pull lands in a per-attempt directory
//! here that nothing treats as final, each rsync runs in its own process
//! group whose id is recorded in `pgid/<pgid>`, and a starting node first
//! kills the groups the previous run recorded and only then deletes what
//! they were writing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Clone, Debug)]
pub struct TempArea {
    dir: PathBuf,
}

/// What a start-up cleanup found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// rsync processes of the previous run that were still alive and killed.
    pub killed: usize,
    /// Stale entries (attempt directories, pgid records) removed.
    pub removed: usize,
}

impl TempArea {
    /// Kills leftover rsync groups of a previous run, empties the area and
    /// recreates it.
    pub fn prepare(dir: &Path) -> std::io::Result<(TempArea, Cleanup)> {
        let area = TempArea {
            dir: dir.to_path_buf(),
        };
        let mut report = Cleanup::default();
        if let Ok(entries) = std::fs::read_dir(area.pgid_dir()) {
            for e in entries.flatten() {
                if let Some(pgid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                    report.killed += kill_rsync_group(pgid, Duration::from_secs(5));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            report.removed = entries.count();
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(area.pgid_dir())?;
        Ok((area, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pgid_dir(&self) -> PathBuf {
        self.dir.join("pgid")
    }

    /// A fresh, empty directory for one attempt of one job.
    pub fn attempt_dir(&self, job_key: &str, attempt: u32) -> std::io::Result<PathBuf> {
        let d = self.dir.join(format!("{job_key}.{attempt}"));
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Records a running rsync's process group before anything else can go
    /// wrong, so a restart after kill -9 can find it.
    pub fn record_group(&self, pgid: u32) -> std::io::Result<()> {
        std::fs::write(self.pgid_dir().join(pgid.to_string()), b"")
    }

    pub fn forget_group(&self, pgid: u32) {
        let _ = std::fs::remove_file(self.pgid_dir().join(pgid.to_string()));
    }

    pub fn remove(&self, attempt_dir: &Path) {
        if attempt_dir.starts_with(&self.dir) {
            let _ = std::fs::remove_dir_all(attempt_dir);
        }
    }

    /// Entries other than the pgid directory: what a clean node has none of
    /// between jobs.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name() != Some("pgid".as_ref()))
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(r) = std::fs::read_dir(self.pgid_dir()) {
            out.extend(r.flatten().map(|e| e.path()));
        }
        out
    }
}

/// Members of process group `pgid` whose command is rsync, from /proc.
/// Checking the command guards against a recycled process-group id after a
/// reboot: only rsync processes are ever killed.
pub fn rsync_members(pgid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may hold spaces and ')'
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next();
        let pgrp = rest.nth(1).and_then(|s| s.parse::<i32>().ok());
        if comm == "rsync" && pgrp == Some(pgid) && state != Some("Z") {
            out.push(pid);
        }
    }
    out
}

/// Kills every rsync in group `pgid` and waits until none is left (up to
/// `deadline`). Returns how many were found.
pub fn kill_rsync_group(pgid: i32, deadline: Duration) -> usize {
    let members = rsync_members(pgid);
    for &pid in &members {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let end = Instant::now() + deadline;
    while !rsync_members(pgid).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    members.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_kills_recorded_rsync_groups_then_cleans() {
        use std::os::unix::process::CommandExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("n1");
        let (area, _) = TempArea::prepare(&dir).unwrap();
        let attempt = area.attempt_dir("abc", 1).unwrap();
        std::fs::write(attempt.join("partial"), b"x").unwrap();
        // an "orphaned" rsync: a daemon in the foreground, in its own group
        let conf = root.path().join("rsyncd.conf");
        std::fs::write(&conf, "use chroot = no\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", conf.display()))
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        area.record_group(pgid).unwrap();
        let t0 = Instant::now();
        while rsync_members(pgid as i32).is_empty() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let reaper = std::thread::spawn(move || child.wait());
        let (area, report) = TempArea::prepare(&dir).unwrap();
        assert_eq!(report.killed, 1);
        assert!(report.removed >= 2, "{report:?}");
        assert!(area.leftovers().is_empty());
        assert!(reaper.join().unwrap().is_ok());
        assert!(rsync_members(pgid as i32).is_empty());
    }
}
