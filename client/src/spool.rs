//! The spool directory: messages waiting for Redis, one file each, plus
//! the instance lock files.
//!
//! Layout under `spool_dir`:
//! * `outbox/<created_ms>-<seq>-<id>.json`: a waiting [`Envelope`]; names
//!   sort oldest first. Written with temp file + fsync + rename, so a file
//!   is either whole or absent (temp files start with `.` and are skipped).
//! * `bad/`: files that could not be read as an envelope, moved aside with
//!   a `.why` note next to them instead of blocking the queue or being lost.
//! * `locks/<section>.lock`: instance locks; `drain.lock`: one drainer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use ubackup_common::fsutil::write_atomic;
use ubackup_common::message::now_ms;

/// One message and where it goes. The payload is kept as the exact JSON
/// text that is pushed, so a resend is byte-for-byte the same message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id; its marker key in Redis makes a resend a no-op.
    pub id: String,
    /// The Redis list to LPUSH onto.
    pub queue: String,
    /// The config section it came from, for log lines.
    pub section: String,
    /// Unix ms when the message was built; the spool's sort key.
    pub created_ms: i64,
    /// The `BackupMessage` JSON.
    pub payload: String,
    /// Why it was spooled (the Redis error), for an operator reading it.
    #[serde(default)]
    pub reason: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Envelope {
    pub fn new(section: &str, queue: &str, payload: String) -> Envelope {
        let created_ms = now_ms();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Unique across hosts and runs: the payload names the host
        // (server_id, ip) and the instance; pid, clock and counter separate
        // runs and messages of one run.
        let mut h = blake3::Hasher::new();
        h.update(&std::process::id().to_le_bytes());
        h.update(&nanos.to_le_bytes());
        h.update(&seq.to_le_bytes());
        h.update(section.as_bytes());
        h.update(payload.as_bytes());
        Envelope {
            id: h.finalize().to_hex()[..32].to_string(),
            queue: queue.to_string(),
            section: section.to_string(),
            created_ms,
            payload,
            reason: String::new(),
        }
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    outbox: PathBuf,
    bad: PathBuf,
    locks: PathBuf,
}

impl Spool {
    /// Opens (creating) `root` and its subdirectories.
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        let s = Spool {
            root: root.to_path_buf(),
            outbox: root.join("outbox"),
            bad: root.join("bad"),
            locks: root.join("locks"),
        };
        for d in [&s.root, &s.outbox, &s.bad, &s.locks] {
            std::fs::create_dir_all(d)?;
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn outbox(&self) -> &Path {
        &self.outbox
    }

    /// The lock file of an instance section.
    pub fn lock_path(&self, section: &str) -> PathBuf {
        self.locks
            .join(format!("{}.lock", crate::lock::file_stem(section)))
    }

    /// The lock that lets one process at a time drain the outbox.
    pub fn drain_lock_path(&self) -> PathBuf {
        self.root.join("drain.lock")
    }

    /// Writes `env` atomically; returns its path.
    pub fn write(&self, env: &Envelope) -> std::io::Result<PathBuf> {
        static FILE_SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self.outbox.join(format!(
            "{:013}-{seq:08}-{}.json",
            env.created_ms.max(0),
            env.id
        ));
        let json = serde_json::to_vec_pretty(env).map_err(std::io::Error::other)?;
        write_atomic(&path, &json)?;
        Ok(path)
    }

    /// Waiting files, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.outbox)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"))
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Reads one waiting file.
    pub fn read(path: &Path) -> Result<Envelope, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not a spooled message: {e}"))
    }

    /// Moves an unreadable file to `bad/` with a note saying why.
    pub fn quarantine(&self, path: &Path, why: &str) -> std::io::Result<PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let dest = self.bad.join(&name);
        std::fs::rename(path, &dest)?;
        let mut note = dest.clone().into_os_string();
        note.push(".why");
        let _ = std::fs::write(PathBuf::from(note), format!("{why}\n"));
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_pending_read_roundtrip_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(&d.path().join("spool")).unwrap();
        let mut a = Envelope::new("a", "q", "{\"x\":1}".into());
        a.created_ms = 2_000;
        let mut b = Envelope::new("b", "q", "{\"x\":2}".into());
        b.created_ms = 1_000;
        assert_ne!(a.id, b.id);
        let pa = s.write(&a).unwrap();
        let pb = s.write(&b).unwrap();
        std::fs::write(s.outbox().join(".x.json.tmp.1"), "partial").unwrap();
        assert_eq!(s.pending().unwrap(), vec![pb.clone(), pa.clone()]);
        assert_eq!(Spool::read(&pb).unwrap(), b);
    }

    #[test]
    fn garbage_is_quarantined_with_a_reason() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let p = s.outbox().join("0000000000001-00000000-x.json");
        std::fs::write(&p, "{not json").unwrap();
        let why = Spool::read(&p).unwrap_err();
        assert!(why.starts_with("not a spooled message"), "{why}");
        let dest = s.quarantine(&p, &why).unwrap();
        assert!(dest.exists() && !p.exists());
        assert!(s.pending().unwrap().is_empty());
        let note = std::fs::read_to_string(format!("{}.why", dest.display())).unwrap();
        assert!(note.contains("not a spooled message"));
    }

    #[test]
    fn lock_paths_stay_inside_locks() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let p = s.lock_path("../../etc/passwd");
        assert_eq!(p.parent().unwrap(), s.root().join("locks"));
    }
}
