//! `ubackup-server prune` and `verify`: the real binary over a real SQLite
//! catalog and real files under server_root_path; the periodic prune of a
//! running node (real redis-server and rsync daemon).

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ubackup_catalog::{BackupQuery, Catalog, CatalogRecord, Retention, SqliteCatalog};
use ubackup_common::message::now_ms;
use ubackup_common::ResultRecord;
use ubackup_server::ServerConfig;
use ubackup_testkit::{wait_until, write_file};

const DAY_MS: i64 = 86_400_000;

/// A node's store: server_root_path, a catalog, and a config pointing at both.
struct Store {
    root: tempfile::TempDir,
    etc: tempfile::TempDir,
    catalog: PathBuf,
    now: i64,
}

/// One backup to create.
struct B<'a> {
    ty: &'a str,
    instance: i64,
    name: &'a str,
    days_ago: f64,
    full: Option<(&'a str, f64)>,
    node: &'a str,
}

impl Store {
    fn new() -> Store {
        let etc = tempfile::tempdir().unwrap();
        let catalog = etc.path().join("catalog.sqlite");
        Store {
            root: tempfile::tempdir().unwrap(),
            etc,
            catalog,
            now: now_ms(),
        }
    }

    fn dir(&self, ty: &str) -> PathBuf {
        self.root.path().join(ty).join("10.0.0").join("5")
    }

    /// Writes the file (unless `with_file` is false) and its record.
    fn backup(&self, b: B, with_file: bool) -> CatalogRecord {
        let dir = self.dir(b.ty);
        let len = 1000 + b.name.len() * 10;
        let path = dir.join(b.name);
        if with_file {
            write_file(&path, len, b.name.len() as u64 * 7 + b.days_ago as u64);
        }
        let checksum = with_file.then(|| ubackup_common::fsutil::blake3_file(&path).unwrap());
        let t = self.now - (b.days_ago * DAY_MS as f64) as i64;
        let r = ResultRecord {
            back_server_ip: "127.0.0.1".into(),
            file_path: Some(dir.display().to_string()),
            filename: Some(b.name.into()),
            rsync_time: t + 1000,
            size: len as i64,
            last_all_filename: b
                .full
                .map(|f| f.0.to_string())
                .unwrap_or_else(|| "None".into()),
            last_all_time: b
                .full
                .map(|f| self.now - (f.1 * DAY_MS as f64) as i64)
                .unwrap_or(0),
            back_type: b.ty.into(),
            node_id: Some(b.node.into()),
            duration_ms: Some(10),
            bytes_per_sec: None,
            checksum,
            ..ubackup_testkit::fixtures::result(b.instance, t)
        };
        CatalogRecord::new(r, "g")
    }

    async fn store(&self, recs: &[CatalogRecord]) -> SqliteCatalog {
        let cat = SqliteCatalog::open(&self.catalog).unwrap();
        cat.store(recs).await.unwrap();
        cat
    }

    fn config(&self, extra: &str) -> PathBuf {
        let p = self.etc.path().join("server.conf");
        std::fs::write(
            &p,
            format!(
                "[global]\nserver_root_path = {}\nredis_host = 127.0.0.1\nredis_queue = q\nmyip = 127.0.0.1\nnode_id = n1\ncatalog = {}\n{extra}",
                self.root.path().display(),
                self.catalog.display()
            ),
        )
        .unwrap();
        p
    }

    /// Every regular file and symlink under the root, by file name.
    fn files(&self) -> BTreeSet<String> {
        fn walk(d: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.root.path(), &mut out);
        out
    }
}

fn server(args: &[&str], conf: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ubackup-server"))
        .args(args)
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn b<'a>(
    ty: &'a str,
    instance: i64,
    name: &'a str,
    days_ago: f64,
    full: Option<(&'a str, f64)>,
) -> B<'a> {
    B {
        ty,
        instance,
        name,
        days_ago,
        full,
        node: "n1",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_chains_pins_and_newest_and_deletes_exactly_the_rest() {
    let s = Store::new();
    let mut recs = vec![
        // mysql/3306, mysqlkeeptime = 7
        s.backup(b("mysql", 3306, "f1.xb", 20.0, None), true),
        s.backup(
            b("mysql", 3306, "i1a.xb", 19.0, Some(("f1.xb", 20.0))),
            true,
        ),
        s.backup(
            b("mysql", 3306, "i1b.xb", 18.0, Some(("f1.xb", 20.0))),
            true,
        ),
        s.backup(b("mysql", 3306, "f2.xb", 10.0, None), true),
        s.backup(b("mysql", 3306, "i2a.xb", 8.0, Some(("f2.xb", 10.0))), true),
        s.backup(b("mysql", 3306, "i2b.xb", 5.0, Some(("f2.xb", 10.0))), true),
        s.backup(b("mysql", 3306, "f3.xb", 2.0, None), true),
        s.backup(b("mysql", 3306, "i3a.xb", 1.0, Some(("f3.xb", 2.0))), true),
        s.backup(b("mysql", 3306, "f0-pinned.xb", 30.0, None), true),
        s.backup(b("mysql", 3306, "fp.xb", 40.0, None), true),
        s.backup(
            b("mysql", 3306, "ip1.xb", 39.0, Some(("fp.xb", 40.0))),
            true,
        ),
        s.backup(
            b("mysql", 3306, "ip2-pinned.xb", 38.0, Some(("fp.xb", 40.0))),
            true,
        ),
        s.backup(
            b("mysql", 3306, "ip3.xb", 37.0, Some(("fp.xb", 40.0))),
            true,
        ),
        // another node's old file in the same tree: never ours to delete
        s.backup(
            B {
                node: "n2",
                ..b("mysql", 3306, "other-node.xb", 25.0, None)
            },
            true,
        ),
        // redis/6379, rediskeeptime = 3: only old backups, the newest stays
        s.backup(b("redis", 6379, "r1.rdb", 20.0, None), true),
        s.backup(b("redis", 6379, "r2.rdb", 15.0, None), true),
        // ssdb, keeptime.ssdb = 1
        s.backup(b("ssdb", 8888, "s0.tgz", 5.0, None), true),
        s.backup(b("ssdb", 8888, "s1.tgz", 3.0, None), true),
        // mongo has no keep time: never pruned
        s.backup(b("mongo", 27017, "m0.tgz", 100.0, None), true),
    ];
    for r in recs.iter_mut() {
        if r.result.filename.as_deref().unwrap().contains("pinned") {
            r.meta.pinned = true;
        }
    }
    // a record whose file_path lies outside server_root_path
    let outside = tempfile::tempdir().unwrap();
    write_file(&outside.path().join("outside.xb"), 100, 1);
    let mut out_rec = s.backup(b("mysql", 3306, "outside.xb", 50.0, None), false);
    out_rec.result.file_path = Some(outside.path().display().to_string());
    out_rec.id = "outside".into();
    recs.push(out_rec);
    // a symlink in the tree, pointing at a kept file
    let link = s.backup(b("mysql", 3306, "link.xb", 45.0, None), false);
    std::os::unix::fs::symlink(s.dir("mysql").join("f3.xb"), s.dir("mysql").join("link.xb"))
        .unwrap();
    recs.push(link);
    // a failed backup has no file; prune leaves its record alone
    let mut failed = s.backup(b("mysql", 3306, "failed.xb", 60.0, None), false);
    failed.result.succeed = 0;
    failed.result.file_path = None;
    recs.push(failed.clone());

    let cat = s.store(&recs).await;
    for r in recs.iter().filter(|r| r.meta.pinned) {
        assert!(cat.set_pinned(&r.id, true).await.unwrap());
    }
    let conf = s.config("mysqlkeeptime = 7\nrediskeeptime = 3\nkeeptime.ssdb = 1  # days\n");
    let before = s.files();
    let doomed = set(&["f1.xb", "i1a.xb", "i1b.xb", "ip3.xb", "r1.rdb", "s0.tgz"]);

    // --dry-run: says what would go and why, changes nothing
    let (code, stdout, stderr) = server(&["prune", "--dry-run"], &conf);
    assert_eq!(
        code, 3,
        "the refused outside/symlink records are problems\n{stdout}\n{stderr}"
    );
    let would: BTreeSet<String> = stdout
        .lines()
        .filter(|l| l.starts_with("would delete "))
        .map(|l| {
            let path = l["would delete ".len()..].split(" (").next().unwrap();
            Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(would, doomed, "{stdout}");
    assert!(stdout.contains("days old, keep time 7 days"), "{stdout}");
    assert!(
        stdout.contains("NOT deleted") && stdout.contains("not under server_root_path"),
        "{stdout}"
    );
    assert!(stdout.contains("not a regular file"), "{stdout}");
    assert_eq!(s.files(), before, "dry run deleted something");
    assert!(cat
        .scan_backups(&BackupQuery::default())
        .await
        .unwrap()
        .iter()
        .all(|r| r.meta.deleted_at.is_none()));

    // the real run
    let (code, stdout, _) = server(&["prune"], &conf);
    assert_eq!(code, 3, "{stdout}");
    let remaining: BTreeSet<String> = before.difference(&doomed).cloned().collect();
    assert_eq!(s.files(), remaining);
    assert!(outside.path().join("outside.xb").exists());
    // every retained incremental still has its full and predecessors
    for (inc, needs) in [
        ("i2b.xb", &["f2.xb", "i2a.xb"][..]),
        ("i3a.xb", &["f3.xb"]),
        ("ip2-pinned.xb", &["fp.xb", "ip1.xb"]),
    ] {
        assert!(remaining.contains(inc));
        for n in needs {
            assert!(remaining.contains(*n), "{inc} lost {n}");
        }
    }
    // deletions are recorded, and list/restore queries no longer offer them
    let live = cat.scan_backups(&BackupQuery::default()).await.unwrap();
    let live_names: BTreeSet<String> = live
        .iter()
        .map(|r| r.result.filename.clone().unwrap())
        .collect();
    assert!(live_names.is_disjoint(&doomed), "{live_names:?}");
    assert!(live_names.contains("failed.xb") && live_names.contains("other-node.xb"));
    let all = cat
        .scan_backups(&BackupQuery {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for r in &all {
        let gone = doomed.contains(r.result.filename.as_deref().unwrap());
        assert_eq!(r.meta.deleted_at.is_some(), gone, "{}", r.result.label());
    }

    // a second run has nothing left to delete
    let (_, stdout, _) = server(&["prune"], &conf);
    assert!(
        !stdout.lines().any(|l| l.starts_with("deleted ")),
        "{stdout}"
    );
    assert_eq!(s.files(), remaining);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_truncated_changed_and_missing_files() {
    let s = Store::new();
    let recs = vec![
        s.backup(b("mysql", 3306, "good.xb", 1.0, None), true),
        s.backup(b("mysql", 3306, "truncated.xb", 2.0, None), true),
        s.backup(b("mysql", 3306, "flipped.xb", 3.0, None), true),
        s.backup(b("mysql", 3306, "missing.xb", 4.0, None), true),
        s.backup(b("mysql", 3306, "nosum.xb", 5.0, None), true),
    ];
    let mut recs = recs;
    recs[4].result.checksum = None; // an original node records no checksum
    let cat = s.store(&recs).await;
    let d = s.dir("mysql");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("truncated.xb"))
        .unwrap();
    f.set_len(500).unwrap();
    for name in ["flipped.xb", "nosum.xb"] {
        let mut bytes = std::fs::read(d.join(name)).unwrap();
        bytes[100] ^= 0x01;
        std::fs::write(d.join(name), bytes).unwrap();
    }
    std::fs::remove_file(d.join("missing.xb")).unwrap();
    let conf = s.config("");

    let (code, stdout, stderr) = server(&["verify"], &conf);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("CORRUPT 111111:mysql:3306 truncated.xb")
            && stdout.contains("has 500 bytes, the catalog says"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CORRUPT 111111:mysql:3306 flipped.xb") && stdout.contains("checksum"),
        "{stdout}"
    );
    assert!(
        stdout.contains("MISSING 111111:mysql:3306 missing.xb"),
        "{stdout}"
    );
    let state = |name: &str| {
        let r = recs
            .iter()
            .find(|r| r.result.filename.as_deref() == Some(name))
            .unwrap();
        let id = r.id.clone();
        let cat = cat.clone();
        async move {
            let r = cat.get(&id).await.unwrap().unwrap();
            assert!(r.meta.verified_at.is_some());
            (r.meta.verify_state.unwrap(), r.result.illegal)
        }
    };
    assert_eq!(state("good.xb").await, ("ok".to_string(), None));
    assert_eq!(
        state("nosum.xb").await.0,
        "ok",
        "without a checksum only the size can be checked"
    );
    for (name, want) in [
        ("truncated.xb", "corrupt"),
        ("flipped.xb", "corrupt"),
        ("missing.xb", "missing"),
    ] {
        let (st, illegal) = state(name).await;
        assert_eq!(st, want, "{name}");
        assert!(
            illegal.unwrap().starts_with(&format!("verify: {want}: ")),
            "{name}"
        );
    }
    let problems: BTreeSet<String> = cat
        .verify_problems(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.result.filename.unwrap())
        .collect();
    assert_eq!(problems, set(&["truncated.xb", "flipped.xb", "missing.xb"]));

    // --older-than: everything was verified just now, nothing is re-read
    let (code, stdout, _) = server(&["verify", "--older-than", "1"], &conf);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("0 ok, 0 missing or corrupt, 5 verified recently"),
        "{stdout}"
    );

    // the operator puts the file back: the next verify clears the alert
    write_file(
        &d.join("missing.xb"),
        recs[3].result.size as usize,
        "missing.xb".len() as u64 * 7 + 4,
    );
    let (_, stdout, _) = server(&["verify"], &conf);
    assert!(!stdout.contains("missing.xb"), "{stdout}");
    assert_eq!(state("missing.xb").await, ("ok".to_string(), None));
}

#[test]
fn config_keys_for_retention() {
    let base =
        "[global]\nserver_root_path=/b\nredis_host=127.0.0.1\nredis_queue=q\nmyip=10.0.0.9\n";
    let c = ServerConfig::parse(
        Path::new("/s.conf"),
        &format!("{base}mysqlkeeptime = 7\nrediskeeptime = 3\nkeeptime.mysql = 14\nkeeptime.ssdb = 2\ncatalog = /var/lib/c.sqlite\nprune_interval = 3600\n"),
    )
    .unwrap();
    assert_eq!(c.keep_days.get("mysql"), Some(&14), "keeptime.<type> wins");
    assert_eq!(c.keep_days.get("redis"), Some(&3));
    assert_eq!(c.keep_days.get("ssdb"), Some(&2));
    assert_eq!(c.prune_interval, Some(Duration::from_secs(3600)));
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    let err = ServerConfig::parse(
        Path::new("/s.conf"),
        &format!("{base}prune_interval = 60\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("[global] prune_interval") && err.contains("set `catalog`"),
        "{err}"
    );
    let err = ServerConfig::parse(Path::new("/s.conf"), &format!("{base}keeptime.ssdb = 0\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[global] keeptime.ssdb: `0` is not valid"),
        "{err}"
    );

    // prune without a catalog key: exit 2, and the error names the key
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("s.conf");
    std::fs::write(&conf, base).unwrap();
    let (code, _, stderr) = server(&["prune"], &conf);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("[global] catalog: missing") && stderr.contains("es_urls"),
        "{stderr}"
    );
}

#[test]
fn a_running_node_prunes_periodically() {
    let cl = common::Cluster::start();
    let s = Store::new();
    // the node's own root is the cluster's; build records there
    let dir = cl.root.path().join("mysql").join("10.0.0").join("5");
    let mk = |name: &str, days: f64| {
        let mut r = s.backup(
            B {
                node: "p1",
                ..b("mysql", 3306, name, days, None)
            },
            false,
        );
        write_file(&dir.join(name), r.result.size as usize, 3);
        r.result.file_path = Some(dir.display().to_string());
        r.result.checksum = None;
        r.id = format!("id-{name}");
        r
    };
    let recs = vec![mk("old.xb", 30.0), mk("new.xb", 1.0)];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(s.store(&recs));
    let catalog = s.catalog.display().to_string();
    let node = cl.spawn(
        "p1",
        &[
            ("catalog", catalog.as_str()),
            ("prune_interval", "1"),
            ("mysqlkeeptime", "7"),
        ],
    );
    wait_until(
        "the periodic prune removed old.xb",
        Duration::from_secs(20),
        || !dir.join("old.xb").exists(),
    );
    assert!(dir.join("new.xb").exists());
    node.wait_log(
        "periodic prune: 1 instance(s): 1 deleted",
        Duration::from_secs(10),
    );
}
