//! The two wire formats, exactly as the original writes them (CONTEXT.md).
//!
//! `BackupMessage` goes client → priority list; `ResultRecord` goes node →
//! `message_queue`. Field names and JSON types are the compatibility
//! contract: an original Python server must accept what our client sends,
//! and our server must accept what an original client sends. New fields are
//! optional and skipped when absent, so old readers never see a surprise.

use serde::{Deserialize, Deserializer, Serialize};

/// Client → queue. Field order follows the original's dict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMessage {
    pub filename: Option<String>,
    pub last_all_filename: Option<String>,
    pub size: i64,
    pub log: Option<String>,
    /// Unix seconds.
    pub create_time: i64,
    pub success: bool,
    /// The original client read this from its config as text; accept both.
    #[serde(deserialize_with = "int_or_numeric_string")]
    pub server_id: i64,
    pub game_id: i64,
    pub op_id: i64,
    pub game_server_ip: String,
    pub back_type: String,
    pub instance: i64,
    pub rsync_model: String,
    /// Unix seconds of the full this incremental belongs to; 0 when none.
    pub last_all_time: i64,
    pub interval: i64,
    /// New: the rsync daemon port on the database host (default 873).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsync_port: Option<u16>,
    /// New: `blake3:<hex>` of the finished file, for end-to-end verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// New: this run of this instance, unique per client run. It tells two
    /// failures of one instance within one second apart (no filename, the
    /// same create_time): without it their results got one record id and
    /// the catalog kept only one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl BackupMessage {
    /// `server_id/type/instance/filename`, the name every log line uses.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.server_id,
            self.back_type,
            self.instance,
            self.filename.as_deref().unwrap_or("-")
        )
    }
}

/// Node → `message_queue`. Times are **milliseconds** here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub interval: i64,
    #[serde(deserialize_with = "int_or_numeric_string")]
    pub server_id: i64,
    pub game_id: i64,
    pub op_id: i64,
    pub game_server_ip: String,
    pub instance: i64,
    pub back_server_ip: String,
    /// The directory on the node; null when nothing was pulled.
    pub file_path: Option<String>,
    pub filename: Option<String>,
    pub create_time: i64,
    pub rsync_time: i64,
    pub size: i64,
    /// The original writes the text `None` when there is no full.
    pub last_all_filename: String,
    pub last_all_time: i64,
    pub succeed: u8,
    pub log: String,
    #[serde(rename = "type")]
    pub back_type: String,
    // ---- new fields, all optional so original results still parse ----
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// `size`, `size+blake3`, or `failed: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Why this is an illegal backup (dead-lettered message, size mismatch…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub illegal: Option<String>,
    /// The message's `run_id`, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Set when the node stored the file encrypted (`encrypt_to`):
    /// `checksum`/`size` stay the plaintext's, this holds the ciphertext's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl ResultRecord {
    /// The size and checksum of the file as it is stored on a node: the
    /// ciphertext's when the node encrypted it at rest, else the
    /// plaintext's. What verify and replication compare a stored file with.
    pub fn stored(&self) -> (i64, Option<&str>) {
        match &self.encryption {
            Some(e) => (e.size as i64, Some(e.checksum.as_str())),
            None => (self.size, self.checksum.as_deref()),
        }
    }
}

/// How a node stored a file encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age`.
    pub format: String,
    /// Fingerprints of the recipients (first 16 hex digits of the blake3 of
    /// each `age1…` key).
    pub recipients: Vec<String>,
    /// Bytes of the ciphertext on disk.
    pub size: u64,
    /// `blake3:<hex>` of the ciphertext on disk.
    pub checksum: String,
}

/// The text the original puts in `last_all_filename` when there is none.
pub const NO_FULL: &str = "None";

impl ResultRecord {
    /// Deterministic id of this record: a replay after a crash overwrites the
    /// same SQLite row / ES document instead of adding a second one.
    ///
    /// A result without a filename (a client failure) also hashes the
    /// message's `run_id` when it has one: two such failures of one
    /// instance in the same second are two records. Results with a
    /// filename, and those of original clients (no `run_id`), keep the
    /// ids earlier versions gave them.
    pub fn record_id(&self) -> String {
        let node = self.node_id.as_deref().unwrap_or(&self.back_server_ip);
        let mut h = blake3::Hasher::new();
        if let (None, Some(run)) = (&self.filename, &self.run_id) {
            h.update(b"run\0");
            h.update(run.as_bytes());
            h.update(&[0]);
        }
        for part in [
            self.server_id.to_string().as_str(),
            self.back_type.as_str(),
            self.instance.to_string().as_str(),
            self.filename.as_deref().unwrap_or(""),
            self.create_time.to_string().as_str(),
            node,
        ] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        h.finalize().to_hex()[..32].to_string()
    }

    /// The result for `msg`, as the original writes it for a message it did
    /// not pull (the client's failure, an illegal message): every field the
    /// message carries, times converted to ms, `succeed` 0 and `log`. The
    /// only place a result is made from a message; a pull adds what it
    /// landed (or why it failed) on top.
    pub fn from_message(
        msg: &BackupMessage,
        back_server_ip: &str,
        node_id: &str,
        log: String,
    ) -> Self {
        ResultRecord {
            interval: msg.interval,
            server_id: msg.server_id,
            game_id: msg.game_id,
            op_id: msg.op_id,
            game_server_ip: msg.game_server_ip.clone(),
            instance: msg.instance,
            back_server_ip: back_server_ip.into(),
            file_path: None,
            filename: msg.filename.clone(),
            create_time: msg.create_time * 1000,
            rsync_time: now_ms(),
            size: msg.size,
            last_all_filename: msg
                .last_all_filename
                .clone()
                .unwrap_or_else(|| NO_FULL.into()),
            last_all_time: msg.last_all_time * 1000,
            succeed: 0,
            log,
            back_type: msg.back_type.clone(),
            node_id: Some(node_id.into()),
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            verify: None,
            checksum: msg.checksum.clone(),
            illegal: None,
            run_id: msg.run_id.clone(),
            encryption: None,
        }
    }

    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.server_id,
            self.back_type,
            self.instance,
            self.filename.as_deref().unwrap_or("-")
        )
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_secs() -> i64 {
    now_ms() / 1000
}

fn int_or_numeric_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Str(s) => s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("`{s}` is not an integer or a numeric string"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dict the original Python client pushes (server_id read from the
    /// config as text, no new fields).
    const PYTHON_CLIENT: &str = r#"{"filename": "db_3306_2026.tar.gz", "last_all_filename": null, "size": 1024, "log": "ok", "create_time": 1763800000, "success": true, "server_id": "111111", "game_id": 31, "op_id": 1, "game_server_ip": "10.0.0.5", "back_type": "mysql", "instance": 3306, "rsync_model": "backup/database_3306", "last_all_time": 0, "interval": 3600}"#;

    #[test]
    fn original_client_message_parses() {
        let m: BackupMessage = serde_json::from_str(PYTHON_CLIENT).unwrap();
        assert_eq!(m.server_id, 111111);
        assert_eq!(m.rsync_port, None);
        assert_eq!(m.label(), "111111/mysql/3306/db_3306_2026.tar.gz");
    }

    #[test]
    fn new_fields_are_omitted_when_absent() {
        let m: BackupMessage = serde_json::from_str(PYTHON_CLIENT).unwrap();
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert!(v.get("checksum").is_none() && v.get("rsync_port").is_none());
        assert_eq!(v["server_id"], 111111);
    }

    #[test]
    fn non_numeric_server_id_is_rejected() {
        let bad = PYTHON_CLIENT.replace("\"111111\"", "\"abc\"");
        let err = serde_json::from_str::<BackupMessage>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an integer"), "{err}");
    }

    #[test]
    fn record_id_is_deterministic_and_node_sensitive() {
        let m: BackupMessage = serde_json::from_str(PYTHON_CLIENT).unwrap();
        let a = ResultRecord::from_message(&m, "10.0.0.9", "n1", "x".into());
        let mut b = a.clone();
        b.log = "other".into();
        assert_eq!(a.record_id(), b.record_id());
        b.node_id = Some("n2".into());
        assert_ne!(a.record_id(), b.record_id());
        // two failures (no filename) in one second: told apart by run_id
        let (mut f1, mut f2) = (a.clone(), a.clone());
        f1.filename = None;
        f2.filename = None;
        let legacy = f1.record_id();
        assert_eq!(
            f1.record_id(),
            f2.record_id(),
            "original clients: as before"
        );
        f1.run_id = Some("r1".into());
        f2.run_id = Some("r2".into());
        assert_ne!(f1.record_id(), f2.record_id());
        assert_ne!(f1.record_id(), legacy);
        // with a filename the id is the one earlier versions gave
        let mut named = a.clone();
        let before = named.record_id();
        named.run_id = Some("r1".into());
        assert_eq!(named.record_id(), before);
        assert_eq!(a.last_all_filename, "None");
        assert_eq!(a.create_time, 1763800000 * 1000);
    }
}
