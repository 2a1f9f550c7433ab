//! The processes a cluster started, in start order, stopped newest first by
//! the PID we started (never looked up by name), and a bounded run of a
//! binary to completion.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Proc;

/// Processes in start order.
#[derive(Default)]
pub struct Procs {
    list: Vec<Proc>,
}

/// One process [`Procs::stop_all`] had to SIGKILL.
#[derive(Debug, Clone)]
pub struct Killed {
    pub name: String,
    pub pid: u32,
}

impl Procs {
    /// Remembers a started process; returns its PID.
    pub fn track(&mut self, p: Proc) -> u32 {
        let pid = p.pid();
        self.list.push(p);
        pid
    }

    /// (PID, name) of each, in start order.
    pub fn list(&self) -> Vec<(u32, String)> {
        self.list
            .iter()
            .map(|p| (p.pid(), p.name.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Stops and forgets the process started last.
    pub fn stop_last(&mut self) {
        self.list.pop();
    }

    /// SIGTERM to each, newest first, waiting up to `grace` for it to exit
    /// before SIGKILL. Returns the ones that needed SIGKILL.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<Killed> {
        let mut killed = Vec::new();
        while let Some(mut p) = self.list.pop() {
            let pid = p.pid();
            p.signal(libc::SIGTERM);
            if p.wait_exit(grace).is_none() && p.running() {
                killed.push(Killed {
                    name: p.name.clone(),
                    pid,
                });
            }
            // a no-op after a clean exit; otherwise kill -9 of the group
            drop(p);
        }
        killed
    }

    /// Lets every process run on after we exit (`quickstart --keep`).
    pub fn detach(self) {
        for p in self.list {
            p.detach();
        }
    }
}

/// Runs a binary to completion with a deadline; returns (exit code, stdout,
/// stderr). A hang is a failure, not a stuck run.
pub fn run_bin(bin: &Path, args: &[&str], deadline: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
