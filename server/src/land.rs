//! Landing: the file rsync left in an attempt directory becomes final only
//! after it is checked (lstat: a regular file; size; blake3 when the
//! message has one), flushed, and renamed into the original layout.
//!
//! The final name is always `DEST/basename(filename)` and the rename is
//! atomic, so a re-pull of a message that had already landed (a crash
//! between landing and the ack) replaces the file with an identical one
//! instead of adding a second.

use std::path::Path;

use ubackup_common::fsutil::blake3_file;

use crate::intake::PullJob;
use crate::retry::AttemptError;

/// From this size on, the flush and the hash of a landed file run side by
/// side (a thread costs more than it saves on small files).
const PARALLEL_FLUSH_BYTES: u64 = 16 << 20;

/// A verified, landed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// `size` or `size+blake3`.
    pub verify: String,
    /// `blake3:<hex>` of the landed file.
    pub checksum: String,
    pub bytes: u64,
}

/// Checks the file rsync left in `attempt_dir`; blocking (hashes the file).
pub fn verify(job: &PullJob, attempt_dir: &Path) -> Result<Landed, AttemptError> {
    verify_path(job, &attempt_dir.join(&job.file_name))
}

/// Checks the file rsync left at `p` (a batched pull lands each file under
/// its path in the module, not its basename); blocking.
pub fn verify_path(job: &PullJob, p: &Path) -> Result<Landed, AttemptError> {
    let p = p.to_path_buf();
    let meta = match std::fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AttemptError::NotRegular(
                "rsync exited 0 but landed nothing: the source is not a regular file (a symlink, directory or special file, which --no-links and the absence of -r/-D skip)".into(),
            ))
        }
        Err(e) => return Err(AttemptError::Local(format!("lstat {}: {e}", p.display()))),
    };
    if !meta.file_type().is_file() {
        return Err(AttemptError::NotRegular(format!(
            "landed {} is not a regular file ({:?})",
            job.file_name,
            meta.file_type()
        )));
    }
    if meta.len() != job.size {
        return Err(AttemptError::Verify(format!(
            "size {} differs from the message's {}",
            meta.len(),
            job.size
        )));
    }
    // flushed before the rename, so the final name never points at data
    // that a power cut could still lose. A large file is flushed on a second
    // thread while this one hashes it (the flush waits on the disk, the hash
    // reads the page cache): the pair costs the longer of the two, not
    // their sum (BENCHMARKS.md, large files).
    let fsync = || {
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| AttemptError::Local(format!("fsync {}: {e}", p.display())))
    };
    let hash =
        || blake3_file(&p).map_err(|e| AttemptError::Local(format!("hash {}: {e}", p.display())));
    let sum = if meta.len() >= PARALLEL_FLUSH_BYTES {
        std::thread::scope(|s| {
            let flushed = s.spawn(fsync);
            let sum = hash();
            let flushed = flushed
                .join()
                .unwrap_or_else(|_| Err(AttemptError::Local("fsync thread panicked".into())));
            flushed.and(sum)
        })?
    } else {
        fsync()?;
        hash()?
    };
    let verify = match &job.checksum {
        Some(want) if *want != sum => {
            return Err(AttemptError::Verify(format!(
                "checksum {sum} differs from the message's {want}"
            )))
        }
        Some(_) => "size+blake3",
        None => "size",
    };
    Ok(Landed {
        verify: verify.into(),
        checksum: sum,
        bytes: meta.len(),
    })
}

/// Renames the verified file into `job.final_path()`, atomically.
pub fn rename_into_place(job: &PullJob, attempt_dir: &Path) -> Result<(), AttemptError> {
    rename_path_into_place(job, &attempt_dir.join(&job.file_name), true)
}

/// Renames the verified file at `from` into `job.final_path()`. With
/// `sync_dest` false the caller fsyncs DEST itself ([`sync_dir`]) before
/// acknowledging: a batch lands many files into one DEST and flushes it
/// once.
pub fn rename_path_into_place(
    job: &PullJob,
    from: &Path,
    sync_dest: bool,
) -> Result<(), AttemptError> {
    let from = from.to_path_buf();
    let to = job.final_path();
    std::fs::create_dir_all(&job.dest_dir)
        .map_err(|e| AttemptError::Local(format!("create {}: {e}", job.dest_dir.display())))?;
    match std::fs::rename(&from, &to) {
        Ok(()) => {}
        // DEST is another filesystem (e.g. a disk mounted per type below
        // server_root_path): copy next to the final name under a hidden
        // name, flush, then rename there, so the final name still only
        // appears complete
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let landing = job
                .dest_dir
                .join(format!(".{}.ubackup-landing", job.file_name));
            let copied = std::fs::copy(&from, &landing)
                .and_then(|_| std::fs::File::open(&landing)?.sync_all())
                .and_then(|()| std::fs::rename(&landing, &to));
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&landing);
                return Err(AttemptError::Local(format!(
                    "copy into {} (another filesystem): {e}",
                    to.display()
                )));
            }
            let _ = std::fs::remove_file(&from);
        }
        Err(e) => {
            return Err(AttemptError::Local(format!(
                "rename into {}: {e}",
                to.display()
            )))
        }
    }
    if sync_dest {
        sync_dir(&job.dest_dir);
    }
    Ok(())
}

/// Flushes a directory's entries (the renames into it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Moves an interrupted attempt's partial file to the next attempt's
/// directory, so the next rsync resumes instead of starting over. Only
/// called after the previous attempt's process group is gone.
pub fn carry_partial(prev_attempt: &Path, next_attempt: &Path) {
    let from = prev_attempt.join(crate::rsync::PARTIAL_DIR);
    if from.is_dir() {
        let _ = std::fs::rename(&from, next_attempt.join(crate::rsync::PARTIAL_DIR));
    }
}

/// Write-behind for a large transfer: while rsync writes into the attempt
/// directory, its files are flushed to disk every [`WRITE_BEHIND_EVERY`],
/// so the fsync before landing finds little left to write instead of the
/// whole file (the kernel would otherwise hold it all as dirty pages until
/// that fsync). Only for files of at least [`WRITE_BEHIND_BYTES`].
pub struct WriteBehind {
    task: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        tokio::task::JoinHandle<()>,
    )>,
}

/// Smallest transfer that gets write-behind.
pub const WRITE_BEHIND_BYTES: u64 = 64 << 20;
const WRITE_BEHIND_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl WriteBehind {
    pub fn start(attempt_dir: &Path, size: u64) -> WriteBehind {
        if size < WRITE_BEHIND_BYTES {
            return WriteBehind { task: None };
        }
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dir, flag) = (attempt_dir.to_path_buf(), done.clone());
        let task = tokio::task::spawn_blocking(move || {
            use std::sync::atomic::Ordering;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(WRITE_BEHIND_EVERY);
                // rsync's temp file (".NAME.XXXXXX") sits in the directory
                // itself; a flush error only means less was written early
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let big = e
                        .metadata()
                        .map(|m| m.is_file() && m.len() >= 8 << 20)
                        .unwrap_or(false);
                    if big && !flag.load(Ordering::SeqCst) {
                        let _ = std::fs::File::open(e.path()).and_then(|f| f.sync_data());
                    }
                }
            }
        });
        WriteBehind {
            task: Some((done, task)),
        }
    }

    /// Ends the flushing (after rsync has exited).
    pub async fn stop(self) {
        if let Some((done, task)) = self.task {
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = task.await;
        }
    }
}
