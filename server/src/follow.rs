//! Following a large transfer while rsync writes it.
//!
//! Without this, a pulled 512 MiB file costs three passes after rsync
//! exits: the kernel writes back the dirty pages rsync left (the fsync
//! before landing), and blake3 reads the whole file again. Measured on
//! the benchmark machine (BENCHMARKS.md, large files), that tail was
//! about 280 ms per file, and worse: a buffered write of 1 GiB followed
//! by one fsync took 2.4-3.4 s where the same write with the writeback
//! started as the data arrived took 0.5 s, because the kernel otherwise
//! throttles the writer once dirty pages pile up.
//!
//! So while rsync runs, a blocking thread tails its temp file
//! (`.NAME.XXXXXX` in the attempt directory, which holds nothing else):
//! * it starts the writeback of each new stretch with
//!   `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which queues the I/O and
//!   does not wait, so the final fsync finds little left to write;
//! * it hashes each new stretch while it is still in the page cache.
//!
//! The hash is only used when the landed file is the inode that was
//! followed, at the length that was hashed. rsync's receiver writes its
//! temp file front to back (no `--inplace`, `--sparse`, `--append` here)
//! and renames it into place, so that inode's bytes are the landed bytes.
//! A whole-file checksum mismatch makes rsync redo the file into a new
//! temp file: a different inode, and [`Followed::matches`] then sends the
//! caller back to hashing the landed file itself. Any error here does the
//! same; following is an optimisation, never a verdict.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Smallest transfer worth a thread: below this the temp file is written
/// and renamed before the first poll would find it.
pub const FOLLOW_BYTES: u64 = 16 << 20;
/// How often the directory (until the temp file appears) and then the
/// file's length are looked at.
const POLL: Duration = Duration::from_millis(10);
/// Writeback is started once this much new data has been hashed: large
/// enough for the disk to get big sequential requests.
const FLUSH_EVERY: u64 = 8 << 20;
/// How far behind the last hashed byte the writeback stays.
const FLUSH_LAG: u64 = 1 << 20;
const PAGE: u64 = 4096;
const READ_CHUNK: usize = 1 << 20;

/// What the follower saw of the file rsync wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    /// `blake3:<hex>` of the first `len` bytes.
    pub checksum: String,
}

impl Followed {
    /// True when `meta` (lstat of the landed file) is the inode that was
    /// followed, at the length that was hashed.
    pub fn matches(&self, meta: &std::fs::Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino && meta.len() == self.len
    }
}

/// A running follower (or none, for a small transfer).
pub struct Follow {
    task: Option<(Arc<AtomicBool>, tokio::task::JoinHandle<Option<Followed>>)>,
}

impl Follow {
    /// Starts following rsync's temp file in `attempt_dir` when the
    /// transfer is `size` bytes or more.
    pub fn start(attempt_dir: &Path, size: u64) -> Follow {
        if size < FOLLOW_BYTES {
            return Follow { task: None };
        }
        let done = Arc::new(AtomicBool::new(false));
        let (dir, flag) = (attempt_dir.to_path_buf(), done.clone());
        let task = tokio::task::spawn_blocking(move || follow(&dir, &flag));
        Follow {
            task: Some((done, task)),
        }
    }

    /// Called once rsync (its whole process group) has exited: reads what
    /// is left and returns what was followed, if anything.
    pub async fn finish(self) -> Option<Followed> {
        let (done, task) = self.task?;
        done.store(true, Ordering::SeqCst);
        task.await.ok().flatten()
    }
}

/// The temp file rsync is writing: the one dot-file in the attempt
/// directory that is a regular file (`.rsync-partial` is a directory).
fn find_temp(dir: &Path) -> Option<(PathBuf, File)> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            let p = e.path();
            if let Ok(f) = File::open(&p) {
                return Some((p, f));
            }
        }
    }
    None
}

/// Queues the writeback of `len` bytes from `from` without waiting for it
/// (`fdatasync` would wait, and stall the hashing behind the disk). nix
/// does not wrap sync_file_range(2), hence the one unsafe block.
#[allow(unsafe_code)]
fn start_writeback(f: &File, from: u64, len: u64) {
    if len == 0 {
        return;
    }
    // SAFETY: a plain syscall on an fd we own; failure only means the
    // final fsync has more to do.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn follow(dir: &Path, done: &AtomicBool) -> Option<Followed> {
    let (path, file) = loop {
        // read before looking, so a file that appears and is renamed away
        // between two polls is not waited for forever
        let finished = done.load(Ordering::SeqCst);
        if let Some(found) = find_temp(dir) {
            break found;
        }
        if finished {
            return None;
        }
        std::thread::sleep(POLL);
    };
    let meta = file.metadata().ok()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    tracing::trace!(temp = %path.display(), "following rsync's temp file");
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut hashed, mut flushed) = (0u64, 0u64);
    loop {
        // the flag is read before the length: once rsync has exited, the
        // length read after it is final
        let finished = done.load(Ordering::SeqCst);
        let len = file.metadata().ok()?.len();
        let before = hashed;
        while hashed < len {
            let want = ((len - hashed) as usize).min(READ_CHUNK);
            let n = file.read_at(&mut buf[..want], hashed).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            hashed += n as u64;
            // whole pages a stretch behind the write head: a page under
            // writeback that rsync still appends to would make its write
            // wait for the disk (stable pages)
            let behind = hashed.saturating_sub(FLUSH_LAG) & !(PAGE - 1);
            if behind >= flushed + FLUSH_EVERY {
                start_writeback(&file, flushed, behind - flushed);
                flushed = behind;
            }
        }
        if finished {
            start_writeback(&file, flushed, hashed - flushed);
            return Some(Followed {
                dev,
                ino,
                len: hashed,
                checksum: format!("blake3:{}", hasher.finalize().to_hex()),
            });
        }
        if hashed == before {
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A writer that appends in pieces, as rsync does, then renames the
    /// temp file into place: the follower's hash is the landed file's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_of_a_growing_file_is_the_landed_files() {
        let dir = tempfile::tempdir().unwrap();
        let size = FOLLOW_BYTES + 3 * READ_CHUNK as u64 + 17;
        let f = Follow::start(dir.path(), size);
        let d = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            let tmp = d.join(".db.tar.gz.Ab12Cd");
            let mut out = File::create(&tmp).unwrap();
            let mut left = size;
            let mut i = 0u8;
            while left > 0 {
                let n = left.min(700_001);
                out.write_all(&vec![i; n as usize]).unwrap();
                left -= n;
                i = i.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(out);
            std::fs::rename(&tmp, d.join("db.tar.gz")).unwrap();
        });
        writer.join().unwrap();
        let followed = f.finish().await.expect("followed");
        let landed = dir.path().join("db.tar.gz");
        let meta = std::fs::symlink_metadata(&landed).unwrap();
        assert!(followed.matches(&meta));
        assert_eq!(
            followed.checksum,
            ubackup_common::fsutil::blake3_file(&landed).unwrap()
        );
    }

    /// A redo (a new temp file, another inode) is not mistaken for the
    /// followed one, even at the same length.
    #[test]
    fn another_inode_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join(".db.tar.gz.AAAAAA");
        std::fs::write(&first, vec![1u8; 4096]).unwrap();
        let m = std::fs::metadata(&first).unwrap();
        let followed = Followed {
            dev: m.dev(),
            ino: m.ino(),
            len: 4096,
            checksum: ubackup_common::fsutil::blake3_file(&first).unwrap(),
        };
        assert!(followed.matches(&m));
        // kept linked under another name, so its inode number is not reused
        std::fs::rename(&first, dir.path().join("kept")).unwrap();
        let second = dir.path().join(".db.tar.gz.BBBBBB");
        std::fs::write(&second, vec![2u8; 4096]).unwrap();
        std::fs::rename(&second, dir.path().join("db.tar.gz")).unwrap();
        let landed = std::fs::symlink_metadata(dir.path().join("db.tar.gz")).unwrap();
        assert!(!followed.matches(&landed));
        std::fs::write(dir.path().join("kept"), vec![1u8; 4097]).unwrap();
        let longer = std::fs::metadata(dir.path().join("kept")).unwrap();
        assert!(!followed.matches(&longer), "same inode, another length");
    }

    #[tokio::test]
    async fn small_transfers_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".x.AAAAAA"), b"x").unwrap();
        assert_eq!(
            Follow::start(dir.path(), FOLLOW_BYTES - 1).finish().await,
            None
        );
    }
}
