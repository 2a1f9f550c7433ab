//! Shared builders for the catalog tests.
#![allow(dead_code)]

use ubackup_catalog::CatalogRecord;
use ubackup_common::ResultRecord;

/// A successful result of instance `instance` created at `create_time` ms.
pub use ubackup_testkit::fixtures::result;

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
