//! The reporter's queries: SQLite's single-statement versions give the
//! same answers as the generic ones built on the `Catalog` methods (which
//! Elasticsearch uses), and samples round-trip through migration 2.

use std::sync::Arc;

use async_trait::async_trait;
use ubackup_catalog::{
    BackupQuery, Catalog, CatalogError, CatalogRecord, DiskSample, InstanceEntry, InstanceKey,
    QueueKind, QueueSample, Reports, Sample, SampleQuery, SqliteCatalog, StoreOutcome,
};
use ubackup_common::ResultRecord;

/// The same store seen only through `Catalog`: `Reports` falls back to its
/// default (generic) methods.
struct Generic(Arc<SqliteCatalog>);

#[async_trait]
impl Catalog for Generic {
    fn describe(&self) -> String {
        "generic".into()
    }
    async fn prepare(&self) -> Result<(), CatalogError> {
        self.0.prepare().await
    }
    async fn store(&self, b: &[CatalogRecord]) -> Result<Vec<StoreOutcome>, CatalogError> {
        self.0.store(b).await
    }
    async fn get(&self, id: &str) -> Result<Option<CatalogRecord>, CatalogError> {
        self.0.get(id).await
    }
    async fn list_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.0.list_backups(q).await
    }
    async fn instance(&self, k: &InstanceKey) -> Result<Option<InstanceEntry>, CatalogError> {
        self.0.instance(k).await
    }
    async fn instances(&self) -> Result<Vec<InstanceEntry>, CatalogError> {
        self.0.instances().await
    }
}

#[async_trait]
impl Reports for Generic {
    async fn store_samples(&self, s: &[Sample]) -> Result<(), CatalogError> {
        self.0.store_samples(s).await
    }
    async fn verify_failures(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        self.0.verify_failures().await
    }
}

fn result(
    instance: i64,
    t: i64,
    node: &str,
    succeed: u8,
    size: i64,
    duration: Option<u64>,
) -> ResultRecord {
    ResultRecord {
        interval: 3600,
        server_id: 7,
        game_id: 1,
        op_id: 1,
        game_server_ip: "10.0.0.5".into(),
        instance,
        back_server_ip: "10.0.9.1".into(),
        file_path: Some("/b/".into()),
        filename: Some(format!("f_{instance}_{t}")),
        create_time: t,
        rsync_time: t + 10,
        size,
        last_all_filename: "None".into(),
        last_all_time: 0,
        succeed,
        log: if succeed == 1 {
            "ok".into()
        } else {
            "pull failed".into()
        },
        back_type: "mysql".into(),
        node_id: Some(node.into()),
        duration_ms: duration,
        attempts: Some(1),
        bytes_per_sec: None,
        verify: None,
        checksum: None,
        illegal: None,
        run_id: None,
        encryption: None,
    }
}

#[tokio::test]
async fn sqlite_reports_match_the_generic_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteCatalog::open(&dir.path().join("c.db")).unwrap());
    assert_eq!(
        db.schema_version().unwrap(),
        ubackup_catalog::sqlite::schema::latest()
    );
    let mut recs = Vec::new();
    for i in 0..30i64 {
        let node = if i % 3 == 0 { "n1" } else { "n2" };
        let mut r = result(
            i % 7,
            1_000_000 + i * 1000,
            node,
            (i % 4 != 0) as u8,
            100 + i,
            Some((i as u64 * 37) % 500),
        );
        if i == 5 {
            r.illegal = Some("dead-lettered".into());
        }
        recs.push(CatalogRecord::new(r, "g"));
    }
    // outside the window
    recs.push(CatalogRecord::new(
        result(1, 5_000_000, "n1", 1, 999, Some(9999)),
        "g",
    ));
    // a tie on the newest time of instance 6: the success is preferred
    recs.push(CatalogRecord::new(
        result(6, 1_000_000 + 27 * 1000, "n3", 1, 5, None),
        "g",
    ));
    db.store(&recs).await.unwrap();
    let generic = Generic(db.clone());

    let (since, until) = (1_000_000, 1_030_000);
    let a = db.window_stats(since, until).await.unwrap();
    let b = generic.window_stats(since, until).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.ok + a.failed, 31, "30 in the window plus the tie");
    assert_eq!(a.illegal, 1);
    assert_eq!(
        a.by_node
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>(),
        vec!["n1", "n2", "n3"]
    );

    let a = db.slowest_pulls(since, until, 4).await.unwrap();
    let b = generic.slowest_pulls(since, until, 4).await.unwrap();
    assert_eq!(
        a.iter().map(|r| &r.id).collect::<Vec<_>>(),
        b.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert!(a
        .windows(2)
        .all(|w| w[0].result.duration_ms >= w[1].result.duration_ms));
    assert!(a.iter().all(|r| r.is_success()));

    let a = db.latest_records().await.unwrap();
    let b = generic.latest_records().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 7);
    let six = a.iter().find(|r| r.result.instance == 6).unwrap();
    assert!(six.is_success() && six.node() == "n3", "{six:?}");
    let one = a.iter().find(|r| r.result.instance == 1).unwrap();
    assert_eq!(one.result.create_time, 5_000_000);
}

#[tokio::test]
async fn samples_round_trip_idempotently_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteCatalog::open(&dir.path().join("c.db")).unwrap();
    let disk = |t: i64| {
        Sample::Disk(DiskSample {
            time_ms: t,
            node: "5".into(),
            ip: "10.0.0.5".into(),
            path: "/backup".into(),
            total: 1000,
            used: 400,
            free: 600,
            mem_total: Some(8),
            mem_used: None,
            load1: Some(0.5),
            cpus: Some(2),
        })
    };
    let queue = |t: i64, depth: u64| {
        Sample::Queue(QueueSample {
            time_ms: t,
            list: "level1".into(),
            kind: QueueKind::Priority,
            queue: "level1".into(),
            worker: None,
            depth,
            oldest_age_ms: Some(5),
        })
    };
    db.store_samples(&[disk(10), disk(20), queue(10, 3)])
        .await
        .unwrap();
    // handed over again (a retry): stored once
    db.store_samples(&[disk(20), queue(10, 3)]).await.unwrap();
    let d = db.disk_samples(&SampleQuery::default()).await.unwrap();
    assert_eq!(
        d.iter().map(|s| s.time_ms).collect::<Vec<_>>(),
        vec![20, 10]
    );
    assert_eq!(Sample::Disk(d[0].clone()), disk(20));
    let q = db
        .queue_samples(&SampleQuery {
            source: Some("level1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(Sample::Queue(q[0].clone()), queue(10, 3));
    assert_eq!(db.prune_samples(15).await.unwrap(), 2);
    assert_eq!(
        db.disk_samples(&SampleQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}
