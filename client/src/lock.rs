//! One run per instance at a time: an exclusive `flock` on a file in the
//! spool directory, held until the instance's message is queued or spooled.
//!
//! flock is released by the kernel when the holder dies, so a crashed
//! client never leaves a stale lock behind. The holder writes its pid and
//! start time into the file, which the refused run quotes in its message.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _flock: Flock<File>,
    pub path: PathBuf,
}

#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; what it wrote about itself.
    Busy {
        holder: String,
    },
    Io(String),
}

/// Takes the lock at `path` without waiting.
pub fn try_lock(path: &Path) -> Result<InstanceLock, LockError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| LockError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    // No truncate before the lock is ours: the holder's note must survive.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LockError::Io(format!("cannot open {}: {e}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut flock) => {
            let note = format!(
                "pid {} since unix time {}\n",
                std::process::id(),
                ubackup_common::message::now_secs()
            );
            let _ = flock
                .set_len(0)
                .and_then(|_| flock.rewind())
                .and_then(|_| flock.write_all(note.as_bytes()));
            Ok(InstanceLock {
                _flock: flock,
                path: path.to_path_buf(),
            })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(LockError::Busy {
                holder: if holder.is_empty() {
                    "unknown process".into()
                } else {
                    holder.into()
                },
            })
        }
        Err((_, e)) => Err(LockError::Io(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// A file name for `section` that is safe in any directory. Names that had
/// to be changed get a hash suffix so two sections never share a lock.
pub fn file_stem(section: &str) -> String {
    let safe: String = section
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == section && !safe.starts_with('.') {
        safe
    } else if safe.starts_with('.') {
        format!(
            "_{safe}-{}",
            &blake3::hash(section.as_bytes()).to_hex()[..8]
        )
    } else {
        format!("{safe}-{}", &blake3::hash(section.as_bytes()).to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("locks/mysql3306.lock");
        let held = try_lock(&p).unwrap();
        match try_lock(&p) {
            Err(LockError::Busy { holder }) => assert!(
                holder.starts_with(&format!("pid {} ", std::process::id())),
                "{holder}"
            ),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(held);
        try_lock(&p).unwrap();
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        assert_eq!(file_stem("mysql3306"), "mysql3306");
        let a = file_stem("a/b");
        let b = file_stem("a_b");
        assert!(a.starts_with("a_b-") && !a.contains('/'));
        assert_ne!(a, b);
        assert!(!file_stem("..").starts_with('.'));
    }
}
