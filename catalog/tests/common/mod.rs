//! Shared builders for the catalog tests.
#![allow(dead_code)]

use ubackup_catalog::CatalogRecord;
use ubackup_common::ResultRecord;

/// A successful result of instance `instance` created at `create_time` ms.
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
    }
}

pub fn failed(instance: i64, create_time: i64, log: &str) -> ResultRecord {
    let mut r = result(instance, create_time);
    r.succeed = 0;
    r.log = log.into();
    r.file_path = None;
    r.verify = None;
    r.checksum = None;
    r
}

pub fn rec(r: ResultRecord) -> CatalogRecord {
    CatalogRecord::new(r, "mygame")
}
