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
use ubackup_common::message::Encryption;
use ubackup_transport::at_rest::{self, Recipients};

use ubackup_transport::AttemptError;

use crate::intake::PullJob;
use ubackup_transport::follow::Followed;

/// From this size on, the flush and the hash of a landed file run side by
/// side (a thread costs more than it saves on small files).
const PARALLEL_FLUSH_BYTES: u64 = 16 << 20;

/// A verified, landed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// `size` or `size+blake3`.
    pub verify: String,
    /// `blake3:<hex>` of the file as pulled (the plaintext).
    pub checksum: String,
    pub bytes: u64,
    /// Stored encrypted (`encrypt_to`): the ciphertext's size and hash.
    pub encryption: Option<Encryption>,
}

/// A file landed by an earlier run (crash between landing and the ack) is
/// not pulled again when the message has a checksum that proves it.
/// Without a checksum it is re-pulled, using the landed file as rsync's
/// basis (`--copy-dest`), and renamed over it.
pub(crate) async fn already_landed(job: &PullJob) -> Option<Landed> {
    let want = job.checksum.clone()?;
    let path = job.final_path();
    let size = job.size;
    tokio::task::spawn_blocking(move || {
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() != size {
            return None;
        }
        let sum = blake3_file(&path).ok()?;
        (sum == want).then(|| Landed {
            verify: "size+blake3".into(),
            checksum: sum,
            bytes: size,
            encryption: None,
        })
    })
    .await
    .ok()
    .flatten()
}

/// Checks the file rsync left in `attempt_dir`; blocking (hashes the file,
/// unless `followed` already hashed this very inode during the transfer).
/// With `encrypt` the verified plaintext is then replaced, at the same
/// path, by its age ciphertext ([`encrypt_in_place`]).
pub fn verify(
    job: &PullJob,
    attempt_dir: &Path,
    followed: &[Followed],
    encrypt: Option<&Recipients>,
) -> Result<Landed, AttemptError> {
    let p = attempt_dir.join(&job.file_name);
    let landed = verify_at(job, &p, followed)?;
    encrypt_in_place(landed, &p, encrypt)
}

/// Checks the file rsync left at `p` (a batched pull lands each file under
/// its path in the module, not its basename); blocking.
pub fn verify_path(
    job: &PullJob,
    p: &Path,
    encrypt: Option<&Recipients>,
) -> Result<Landed, AttemptError> {
    let landed = verify_at(job, p, &[])?;
    encrypt_in_place(landed, p, encrypt)
}

/// At-rest encryption, after the plaintext passed its checks: the age
/// file is written next to it (streamed, flushed), then renamed over it,
/// so what is renamed into the final name is only ever the complete
/// ciphertext. The plaintext never reaches the destination tree.
fn encrypt_in_place(
    mut landed: Landed,
    p: &Path,
    encrypt: Option<&Recipients>,
) -> Result<Landed, AttemptError> {
    let Some(to) = encrypt else {
        return Ok(landed);
    };
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    let tmp = p.with_file_name(format!(".{name}.ubackup-age"));
    let enc = at_rest::encrypt_file(to, p, &tmp).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AttemptError::Local(format!("encrypting {} (encrypt_to): {e}", p.display()))
    })?;
    std::fs::rename(&tmp, p).map_err(|e| {
        AttemptError::Local(format!(
            "rename {} over {}: {e}",
            tmp.display(),
            p.display()
        ))
    })?;
    landed.encryption = Some(enc);
    Ok(landed)
}

fn verify_at(job: &PullJob, p: &Path, followed: &[Followed]) -> Result<Landed, AttemptError> {
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
    let sum = if let Some(f) = Followed::find(followed, &meta) {
        // hashed while rsync wrote it, and its writeback already started
        tracing::debug!(file = %job.file_name, "hashed while rsync wrote it");
        fsync()?;
        f.checksum.clone()
    } else if meta.len() >= PARALLEL_FLUSH_BYTES {
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
        encryption: None,
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
    let from = prev_attempt.join(ubackup_transport::rsync::PARTIAL_DIR);
    if from.is_dir() {
        let _ = std::fs::rename(
            &from,
            next_attempt.join(ubackup_transport::rsync::PARTIAL_DIR),
        );
    }
}
