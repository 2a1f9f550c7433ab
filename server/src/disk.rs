//! The disk reserve: `free - size >= reserve` on the filesystem that holds
//! `server_root_path`, from statvfs (exact for any filesystem, unlike
//! sysinfo's disk list, which skips tmpfs and NFS: shared/CRATES.md).
//!
//! Sizes of pulls in progress are counted as already used, so that two
//! workers cannot both admit a file into the same free space.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Free and total bytes of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to unprivileged writers (f_bavail): conservative.
    pub free: u64,
    pub total: u64,
}

pub fn space(path: &Path) -> std::io::Result<DiskSpace> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frsize = s.fragment_size() as u64;
    Ok(DiskSpace {
        free: s.blocks_available() as u64 * frsize,
        total: s.blocks() as u64 * frsize,
    })
}

/// How long a message given back for lack of space keeps the node from
/// popping (unless space returns first): long enough for other nodes to
/// take it, short enough that a smaller message is not starved.
const DEFER_FOR: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct DiskReserve {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Bytes of pulls admitted and not yet finished.
    committed: AtomicU64,
    /// Size of the last message given back for lack of space, and when.
    deferred: Mutex<Option<(u64, Instant)>>,
}

/// A pull's claim on disk space; released when dropped.
pub struct Admission {
    inner: Arc<Inner>,
    size: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.inner.committed.fetch_sub(self.size, Ordering::SeqCst);
    }
}

impl DiskReserve {
    pub fn new(root: &Path) -> Self {
        DiskReserve {
            inner: Arc::new(Inner {
                root: root.into(),
                committed: AtomicU64::new(0),
                deferred: Mutex::new(None),
            }),
        }
    }

    pub fn space(&self) -> std::io::Result<DiskSpace> {
        space(&self.inner.root)
    }

    /// May the node pop another message? `Err` carries the pause reason.
    pub fn may_pop(&self, reserve: u64) -> Result<DiskSpace, String> {
        let sp = self.space().map_err(|e| {
            format!(
                "disk reserve: cannot statvfs {}: {e}",
                self.inner.root.display()
            )
        })?;
        let committed = self.inner.committed.load(Ordering::SeqCst);
        let mut deferred = self.inner.deferred.lock().expect("disk lock");
        let need = match *deferred {
            Some((size, at)) if at.elapsed() < DEFER_FOR => size,
            _ => {
                *deferred = None;
                0
            }
        };
        let avail = sp.free.saturating_sub(committed);
        if avail < reserve.saturating_add(need) {
            let why = if need > 0 {
                format!(
                    "disk reserve: {avail} bytes free after running pulls, a {need}-byte message needs {} with reserve {reserve}",
                    reserve.saturating_add(need)
                )
            } else {
                format!(
                    "disk reserve: {avail} bytes free after running pulls, below reserve {reserve}"
                )
            };
            return Err(why);
        }
        // space is back: whatever was deferred may be taken again
        *deferred = None;
        Ok(sp)
    }

    /// Claims `size` bytes for a pull, if `free - committed - size >= reserve`.
    pub fn admit(&self, size: u64, reserve: u64) -> Result<Admission, String> {
        let sp = self.space().map_err(|e| {
            format!(
                "disk reserve: cannot statvfs {}: {e}",
                self.inner.root.display()
            )
        })?;
        let committed = self.inner.committed.fetch_add(size, Ordering::SeqCst);
        let avail = sp.free.saturating_sub(committed);
        if avail.saturating_sub(size) < reserve || avail < size {
            self.inner.committed.fetch_sub(size, Ordering::SeqCst);
            *self.inner.deferred.lock().expect("disk lock") = Some((size, Instant::now()));
            return Err(format!(
                "disk reserve: {avail} bytes free after running pulls; a {size}-byte file would leave less than reserve {reserve}"
            ));
        }
        Ok(Admission {
            inner: self.inner.clone(),
            size,
        })
    }

    pub fn committed(&self) -> u64 {
        self.inner.committed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_running_pulls_and_defers_big_messages() {
        let dir = tempfile::tempdir().unwrap();
        let d = DiskReserve::new(dir.path());
        let free = d.space().unwrap().free;
        assert!(d.may_pop(0).is_ok());
        let a = d.admit(free / 2, 0).unwrap();
        assert_eq!(d.committed(), free / 2);
        // a second file of the same size no longer fits next to the first
        let err = d.admit(free / 2 + free / 4, 0).err().unwrap();
        assert!(err.contains("would leave less than reserve"), "{err}");
        // and the node stops popping until that much is free again
        assert!(d.may_pop(0).unwrap_err().contains("needs"));
        drop(a);
        assert_eq!(d.committed(), 0);
        assert!(d.may_pop(0).is_ok(), "space is back");
        assert!(d.may_pop(u64::MAX).unwrap_err().contains("below reserve"));
    }
}
