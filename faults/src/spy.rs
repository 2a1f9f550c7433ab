//! An `rsync` placed first on the nodes' PATH: it records its argument
//! vector (one file per spawn, NUL-separated arguments) and then `exec`s the
//! real rsync, so the process id, process group and behaviour are the real
//! ones. This is how a case proves that rsync was spawned 0 times for bad
//! inputs, and which arguments a spawn had (no password on a command line).
//!
//! The wrapper is a shell script, but nothing from a message is evaluated
//! by it: the arguments travel as `"$@"` and are written with `printf '%s'`.

use std::path::{Path, PathBuf};

pub struct RsyncSpy {
    bin: PathBuf,
    calls: PathBuf,
}

/// The real rsync on PATH.
pub fn real_rsync() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("rsync"))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin/rsync"))
}

impl RsyncSpy {
    pub fn install(dir: &Path) -> std::io::Result<RsyncSpy> {
        let bin = dir.join("bin");
        let calls = dir.join("calls");
        std::fs::create_dir_all(&bin)?;
        std::fs::create_dir_all(&calls)?;
        let script = format!(
            "#!/bin/sh\n# ubackup fault suite: record this spawn, then become the real rsync\nf='{calls}'/$$.$(date +%s%N)\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\nexec '{real}' \"$@\"\n",
            calls = calls.display(),
            real = real_rsync().display()
        );
        let path = bin.join("rsync");
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(RsyncSpy { bin, calls })
    }

    /// PATH for a node: the spy first.
    pub fn path_env(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.bin.clone()];
        if let Some(p) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&p));
        }
        std::env::join_paths(dirs).expect("PATH")
    }

    /// Every spawn so far: its arguments.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.calls) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "tmp") {
                    continue;
                }
                if let Ok(raw) = std::fs::read(&p) {
                    out.push(
                        raw.split(|b| *b == 0)
                            .filter(|a| !a.is_empty())
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect(),
                    );
                }
            }
        }
        out
    }

    pub fn count(&self) -> usize {
        self.calls().len()
    }
}
