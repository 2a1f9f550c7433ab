//! Following large transfers while rsync writes them.
//!
//! Without this, a pulled 512 MiB file costs three passes after rsync
//! exits: the kernel writes back the dirty pages rsync left (the fsync
//! before landing), and blake3 reads the whole file again. Measured on
//! the benchmark machine (BENCHMARKS.md, large files), that tail was
//! about 280 ms per file, and worse: a buffered write of 1 GiB followed
//! by one fsync took 2.4-3.4 s where the same write with the writeback
//! started as the data arrived took 0.5 s, because the kernel otherwise
//! throttles the writer once dirty pages pile up. A restore pays the same
//! hashing tail for every file of the chain.
//!
//! So while rsync runs, a blocking thread tails its temp files
//! (`.NAME.XXXXXX` in the destination directory; rsync's receiver writes
//! one file at a time, so there is one at a time):
//! * on a node, which fsyncs before landing, it starts the writeback of
//!   each new stretch with `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which
//!   queues the I/O and does not wait, so the final fsync finds little
//!   left to write ([`Mode`]);
//! * it hashes each new stretch while it is still in the page cache;
//! * once a temp file's name is gone (renamed into place, or removed for
//!   a redo), it hashes what is left of it and looks for the next one.
//!
//! A hash is only used when a landed file is the inode that was followed,
//! at the length that was hashed. rsync's receiver writes its temp file
//! front to back (no `--inplace`, `--sparse`, `--append` here) and renames
//! it into place, so that inode's bytes are the landed bytes. A
//! whole-file checksum mismatch makes rsync redo the file into a new temp
//! file: a different inode, and [`Followed::matches`] then sends the
//! caller back to hashing the landed file itself. The follower keeps every
//! temp file it followed open until rsync has exited, so the inode number
//! of a removed temp file cannot be handed to a later file of the same run
//! and be mistaken for it. Any error here does the same as a mismatch;
//! following is an optimisation, never a verdict.

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
/// How often the directory (until a temp file appears) and then the
/// file's length are looked at.
const POLL: Duration = Duration::from_millis(10);
/// Writeback is started once this much new data has been hashed: large
/// enough for the disk to get big sequential requests.
const FLUSH_EVERY: u64 = 8 << 20;
/// How far behind the last hashed byte the writeback stays.
const FLUSH_LAG: u64 = 1 << 20;
const PAGE: u64 = 4096;
const READ_CHUNK: usize = 1 << 20;

/// What the follower saw of one file rsync wrote.
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

    /// The followed file that `meta` (lstat of a landed file) is, if any.
    pub fn find<'a>(followed: &'a [Followed], meta: &std::fs::Metadata) -> Option<&'a Followed> {
        followed.iter().find(|f| f.matches(meta))
    }
}

/// Who follows, which decides what the follower does besides hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A node, which fsyncs every file before landing it: the follower
    /// also starts the writeback, so it overlaps the transfer instead of
    /// following it, and runs at the node's own priority.
    Node,
    /// A restore, which does not fsync (as a plain rsync does not): the
    /// follower only hashes, on a thread of its own at `nice` 19.
    /// Measured on loopback, where rsync's two processes already fill two
    /// cores, a follower at normal priority slowed the transfer by more
    /// than hashing afterwards costs (1.52× against 1.35× the raw time,
    /// docs/performance.md); at low priority it mostly takes CPU the
    /// transfer leaves, which on a real link (network-bound) is nearly all
    /// of it, and finishes the file it is on once rsync exits.
    Restore,
}

/// A running follower (or none, for a small transfer).
pub struct Follow {
    task: Option<(Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Followed>>)>,
}

impl Follow {
    /// Starts following rsync's temp files in `dir` when the transfer is
    /// `size` bytes or more in all.
    pub fn start(dir: &Path, size: u64, mode: Mode) -> Follow {
        if size < FOLLOW_BYTES {
            return Follow { task: None };
        }
        let done = Arc::new(AtomicBool::new(false));
        let (dir, flag) = (dir.to_path_buf(), done.clone());
        let task = tokio::task::spawn_blocking(move || match mode {
            Mode::Node => follow(&dir, &flag, mode),
            // a thread of its own: a pooled thread must not keep nice 19
            // (an unprivileged thread cannot lower its nice value again)
            Mode::Restore => std::thread::Builder::new()
                .name("restore-follow".into())
                .spawn(move || {
                    low_priority();
                    follow(&dir, &flag, mode)
                })
                .ok()
                .and_then(|t| t.join().ok())
                .unwrap_or_default(),
        });
        Follow {
            task: Some((done, task)),
        }
    }

    /// Called once rsync (its whole process group) has exited: reads what
    /// is left and returns every file that was followed.
    pub async fn finish(self) -> Vec<Followed> {
        let Some((done, task)) = self.task else {
            return Vec::new();
        };
        done.store(true, Ordering::SeqCst);
        task.await.unwrap_or_default()
    }
}

/// A temp file rsync is writing: a dot-file in `dir` that is a regular
/// file (`.rsync-partial` is a directory) and not one already followed.
fn find_temp(dir: &Path, seen: &[(u64, u64)]) -> Option<(PathBuf, File)> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if !m.file_type().is_file() || seen.contains(&(m.dev(), m.ino())) {
            continue;
        }
        let p = e.path();
        if let Ok(f) = File::open(&p) {
            return Some((p, f));
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

/// Lowers the calling thread to `nice` 19 (CFS weight 15 against 1024):
/// it still wakes promptly to find a temp file, but takes little CPU from
/// a transfer that wants it. (`SCHED_IDLE` would take none, and could keep
/// it from finding a file at all on a busy machine.) A failure leaves it
/// at normal priority, which is still correct.
#[allow(unsafe_code)]
fn low_priority() {
    // SAFETY: plain syscalls about the calling thread, no memory passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// Follows temp files one after the other until rsync has exited.
fn follow(dir: &Path, done: &AtomicBool, mode: Mode) -> Vec<Followed> {
    let mut out = Vec::new();
    // every followed file stays open until the end (see the module docs)
    let mut held: Vec<File> = Vec::new();
    let mut seen: Vec<(u64, u64)> = Vec::new();
    loop {
        // read before looking, so a file that appears and is renamed away
        // between two polls is not waited for forever
        let finished = done.load(Ordering::SeqCst);
        let Some((path, file)) = find_temp(dir, &seen) else {
            if finished {
                return out;
            }
            std::thread::sleep(POLL);
            continue;
        };
        let Ok(meta) = file.metadata() else {
            return out;
        };
        seen.push((meta.dev(), meta.ino()));
        tracing::trace!(temp = %path.display(), "following rsync's temp file");
        let (followed, exited) = follow_one(&path, &file, (meta.dev(), meta.ino()), done, mode);
        held.push(file);
        out.extend(followed);
        if exited {
            return out;
        }
    }
}

/// Follows one temp file until its name is gone or rsync has exited (then
/// `true`). `None` when it could not be read.
fn follow_one(
    path: &Path,
    file: &File,
    (dev, ino): (u64, u64),
    done: &AtomicBool,
    mode: Mode,
) -> (Option<Followed>, bool) {
    let flush = |from: u64, len: u64| {
        if mode == Mode::Node {
            start_writeback(file, from, len);
        }
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let (mut hashed, mut flushed) = (0u64, 0u64);
    loop {
        // the flag is read before the length: once rsync has exited, the
        // length read after it is final. So is the length read after the
        // name is gone: rsync renames (or removes) a temp file only once
        // it has written it.
        let finished = done.load(Ordering::SeqCst);
        let gone = !finished && !still_named(path, dev, ino);
        let Ok(m) = file.metadata() else {
            return (None, finished);
        };
        let len = m.len();
        let before = hashed;
        while hashed < len {
            let want = ((len - hashed) as usize).min(READ_CHUNK);
            let Ok(n) = file.read_at(&mut buf[..want], hashed) else {
                return (None, finished);
            };
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
                flush(flushed, behind - flushed);
                flushed = behind;
            }
        }
        if finished || gone {
            flush(flushed, hashed - flushed);
            let f = Followed {
                dev,
                ino,
                len: hashed,
                checksum: format!("blake3:{}", hasher.finalize().to_hex()),
            };
            return (Some(f), finished);
        }
        if hashed == before {
            std::thread::sleep(POLL);
        }
    }
}

/// True while `path` still names the inode being followed.
fn still_named(path: &Path, dev: u64, ino: u64) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.dev() == dev && m.ino() == ino)
        .unwrap_or(false)
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
        let f = Follow::start(dir.path(), size, Mode::Node);
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
        let followed = f.finish().await;
        assert_eq!(followed.len(), 1, "{followed:?}");
        let followed = &followed[0];
        let landed = dir.path().join("db.tar.gz");
        let meta = std::fs::symlink_metadata(&landed).unwrap();
        assert!(followed.matches(&meta));
        assert_eq!(
            followed.checksum,
            ubackup_common::fsutil::blake3_file(&landed).unwrap()
        );
    }

    /// Several files in one run, as a restore pulls a chain: each temp
    /// file is followed in turn, a removed one (rsync's redo) included, and
    /// every landed file finds its own hash; the redone one is found by its
    /// new inode or not at all, never by the removed one's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_written_one_after_another_are_each_followed() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [5 * READ_CHUNK as u64 + 3, 2 * READ_CHUNK as u64, 7];
        let f = Follow::start(dir.path(), FOLLOW_BYTES, Mode::Node);
        let d = dir.path().to_path_buf();
        let write = move |name: &str, size: u64, seed: u8, land: bool| {
            let tmp = d.join(format!(".{name}.Xy12Zw"));
            let mut out = File::create(&tmp).unwrap();
            let mut left = size;
            let mut i = seed;
            while left > 0 {
                let n = left.min(300_001);
                out.write_all(&vec![i; n as usize]).unwrap();
                left -= n;
                i = i.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(3));
            }
            drop(out);
            opened_by_follower(&tmp);
            if land {
                std::fs::rename(&tmp, d.join(name)).unwrap();
            } else {
                std::fs::remove_file(&tmp).unwrap();
            }
        };
        let writer = std::thread::spawn(move || {
            write("full.xb", sizes[0], 1, true);
            // a redo: the first temp file of inc1 is thrown away
            write("inc1.xb", sizes[1], 99, false);
            write("inc1.xb", sizes[1], 2, true);
            write("inc2.xb", sizes[2], 3, true);
        });
        writer.join().unwrap();
        let followed = f.finish().await;
        assert_eq!(followed.len(), 4, "{followed:?}");
        for name in ["full.xb", "inc1.xb", "inc2.xb"] {
            let landed = dir.path().join(name);
            let meta = std::fs::symlink_metadata(&landed).unwrap();
            let hit = Followed::find(&followed, &meta).expect(name);
            assert_eq!(
                hit.checksum,
                ubackup_common::fsutil::blake3_file(&landed).unwrap(),
                "{name}"
            );
        }
    }

    /// A restore's follower runs on its own thread at nice 19 and still
    /// hashes what rsync writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restore_follower_is_a_nice_19_thread_and_still_follows() {
        let dir = tempfile::tempdir().unwrap();
        let f = Follow::start(dir.path(), FOLLOW_BYTES, Mode::Restore);
        let tmp = dir.path().join(".full.xb.Ab12Cd");
        std::fs::write(&tmp, vec![7u8; 3 * READ_CHUNK]).unwrap();
        opened_by_follower(&tmp);
        let nice: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "restore-follow")
            })
            .map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
                let after: Vec<&str> = stat
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .collect();
                after[19 - 3].to_string()
            })
            .collect();
        assert_eq!(nice, ["19"]);
        std::fs::rename(&tmp, dir.path().join("full.xb")).unwrap();
        let followed = f.finish().await;
        let meta = std::fs::symlink_metadata(dir.path().join("full.xb")).unwrap();
        let hit = Followed::find(&followed, &meta).expect("followed");
        assert_eq!(
            hit.checksum,
            ubackup_common::fsutil::blake3_file(&dir.path().join("full.xb")).unwrap()
        );
    }

    /// Waits (deadline 20 s) until this process has `tmp` open on some
    /// other descriptor than the writer's, which it closed: the follower
    /// has found the file. Without this a loaded machine could rename a
    /// file before the follower's next poll, and the test would measure
    /// the scheduler.
    fn opened_by_follower(tmp: &Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let open = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == tmp));
            if open {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the follower never opened {}",
                tmp.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
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
            Follow::start(dir.path(), FOLLOW_BYTES - 1, Mode::Node)
                .finish()
                .await,
            Vec::new()
        );
    }
}
