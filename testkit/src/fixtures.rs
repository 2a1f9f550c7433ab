//! Sample data that the tests of several crates build on: a backup result
//! as a node reports it, the field names of the original client's backup
//! message, and what a directory holds.

use std::path::Path;

use ubackup_common::ResultRecord;

/// A successful, verified pull of `instance` created at `create_time` ms
/// (a MySQL backup of 10.0.0.5 pulled by node n1). Tests that need other
/// values override fields with `ResultRecord { .., ..result(i, t) }`.
pub fn result(instance: i64, create_time: i64) -> ResultRecord {
    ResultRecord {
        interval: 3600,
        server_id: 111111,
        game_id: 31,
        op_id: 1,
        game_server_ip: "10.0.0.5".into(),
        instance,
        back_server_ip: "10.0.9.1".into(),
        file_path: Some("/data/mysql/10.0.0/5".into()),
        filename: Some(format!("db_{instance}_{create_time}.tar.gz")),
        create_time,
        rsync_time: create_time + 5000,
        size: 1024,
        last_all_filename: "None".into(),
        last_all_time: 0,
        succeed: 1,
        log: "ok".into(),
        back_type: "mysql".into(),
        node_id: Some("n1".into()),
        duration_ms: Some(120),
        attempts: Some(1),
        bytes_per_sec: Some(8533),
        verify: Some("size+blake3".into()),
        checksum: Some("blake3:00ff".into()),
        illegal: None,
        run_id: None,
        encryption: None,
    }
}

/// The fields of the original client's backup message, in its order.
pub const ORIGINAL_MESSAGE_FIELDS: [&str; 15] = [
    "filename",
    "last_all_filename",
    "size",
    "log",
    "create_time",
    "success",
    "server_id",
    "game_id",
    "op_id",
    "game_server_ip",
    "back_type",
    "instance",
    "rsync_model",
    "last_all_time",
    "interval",
];

/// The names of the entries directly in `dir`, sorted (none if it cannot
/// be read).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
