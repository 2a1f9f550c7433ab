//! `ubackup-client list / restore / pin / unpin`, the real binary against a
//! real rsync daemon exporting a node's server_root_path as module
//! `ubackup` (read-only, as deploy/rsyncd/node-rsyncd.conf) and a real
//! SQLite catalog holding the records a node would have produced.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ubackup_catalog::{Catalog, CatalogRecord, Retention, SqliteCatalog};
use ubackup_common::ResultRecord;
use ubackup_testkit::{write_file, RsyncDaemon, RsyncModule};

const HOUR_MS: i64 = 3_600_000;
/// 2025-11-22 08:26:40 UTC
const T0: i64 = 1_763_800_000_000;

struct Env {
    /// The node's server_root_path, exported as module `ubackup`.
    node_root: tempfile::TempDir,
    rsyncd: RsyncDaemon,
    /// The originals, to compare restored files with.
    originals: tempfile::TempDir,
    /// Configs, catalog, restore destinations.
    work: tempfile::TempDir,
    catalog: PathBuf,
}

impl Env {
    fn new() -> Env {
        Self::with_daemon_global("")
    }

    /// The nodes' module behind `auth users` (the given global lines).
    fn with_daemon_global(global: &str) -> Env {
        let node_root = tempfile::tempdir().unwrap();
        let rsyncd = RsyncDaemon::start_with(
            &[RsyncModule {
                name: "ubackup".into(),
                path: node_root.path().into(),
                chroot: false,
            }],
            global,
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let catalog = work.path().join("catalog.sqlite");
        Env {
            node_root,
            rsyncd,
            originals: tempfile::tempdir().unwrap(),
            work,
            catalog,
        }
    }

    fn node_dir(&self, ty: &str) -> PathBuf {
        // game_server_ip 10.0.0.5 → TYPE/10.0.0/5, the node layout
        self.node_root.path().join(ty).join("10.0.0").join("5")
    }

    /// A backup as a node stored it: the file under server_root_path and
    /// its record in the catalog.
    #[allow(clippy::too_many_arguments)] // one call reads like a catalog row
    async fn backup(
        &self,
        server_id: i64,
        ty: &str,
        instance: i64,
        name: &str,
        len: usize,
        t: i64,
        full: Option<(&str, i64)>,
    ) -> CatalogRecord {
        let orig = self.originals.path().join(format!("{server_id}-{name}"));
        write_file(&orig, len, t as u64 ^ len as u64);
        let dir = self.node_dir(ty);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&orig, dir.join(name)).unwrap();
        let r = ResultRecord {
            server_id,
            instance,
            back_server_ip: "127.0.0.1".into(),
            file_path: Some(dir.display().to_string()),
            filename: Some(name.into()),
            rsync_time: t + 5000,
            size: len as i64,
            last_all_filename: full
                .map(|f| f.0.to_string())
                .unwrap_or_else(|| "None".into()),
            last_all_time: full.map(|f| f.1).unwrap_or(0),
            back_type: ty.into(),
            node_id: Some("node-a".into()),
            duration_ms: Some(100),
            bytes_per_sec: None,
            checksum: Some(ubackup_common::fsutil::blake3_file(&orig).unwrap()),
            ..ubackup_testkit::fixtures::result(instance, t)
        };
        let rec = CatalogRecord::new(r, "g");
        self.cat().store(std::slice::from_ref(&rec)).await.unwrap();
        rec
    }

    fn cat(&self) -> SqliteCatalog {
        SqliteCatalog::open(&self.catalog).unwrap()
    }

    fn original(&self, server_id: i64, name: &str) -> Vec<u8> {
        std::fs::read(self.originals.path().join(format!("{server_id}-{name}"))).unwrap()
    }

    /// The client config of host 111111, with a mysql 3306 section whose
    /// restore_script is `hook` (when given).
    fn config(&self, global_extra: &str, hook: Option<&str>) -> PathBuf {
        let p = self.work.path().join("client.conf");
        let hook_line = hook
            .map(|h| format!("restore_script = {h}\n"))
            .unwrap_or_default();
        std::fs::write(
            &p,
            format!(
                "[global]\nserver_id = 111111  # this host\ngame_id = 31\nredis_host = 127.0.0.1\nredis_port = 6379\nredis_queue = uuzuback\nmy_ip = 10.0.0.5\nnode_rsync_port = {}\n{global_extra}\n\
                 [mysql3306]\nback_type = mysql\ninstance = 3306\nrsync_model = backup/database_3306\nback_dir = /data/backup\nback_log = /var/log/m.log\nscript = true\n{hook_line}",
                self.rsyncd.port
            ),
        )
        .unwrap();
        p
    }

    fn default_config(&self) -> PathBuf {
        self.config(&format!("catalog = {}", self.catalog.display()), None)
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Entries of the work dir that look like restore scratch dirs.
    fn scratch_left(&self) -> Vec<String> {
        std::fs::read_dir(self.work.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ubackup-restore"))
            .collect()
    }
}

fn client(conf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ubackup-client"))
        .arg("-c")
        .arg(conf)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `restore --type TY --instance INST [EXTRA...] --dest DEST`.
fn restore(conf: &Path, ty: &str, inst: &str, dest: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["restore", "--type", ty, "--instance", inst];
    args.extend_from_slice(extra);
    args.extend(["--dest", dest.to_str().unwrap()]);
    client(conf, &args)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A full, then two incrementals on it: mysql/3306 of server 111111.
async fn chain_of_three(env: &Env) -> [CatalogRecord; 3] {
    let f = env
        .backup(111111, "mysql", 3306, "full_1.xb", 300_000, T0, None)
        .await;
    let i1 = env
        .backup(
            111111,
            "mysql",
            3306,
            "inc_1.xb",
            70_000,
            T0 + HOUR_MS,
            Some(("full_1.xb", T0)),
        )
        .await;
    let i2 = env
        .backup(
            111111,
            "mysql",
            3306,
            "inc_2.xb",
            90_000,
            T0 + 2 * HOUR_MS,
            Some(("full_1.xb", T0)),
        )
        .await;
    [f, i1, i2]
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_a_full_and_a_chain_of_three_byte_identical() {
    let env = Env::new();
    chain_of_three(&env).await;
    env.backup(111111, "redis", 6379, "dump.rdb", 123_457, T0, None)
        .await;
    let conf = env.default_config();

    // the chain: newest is inc_2, which needs the full and inc_1
    let dest = env.dest("mysql-restore");
    let o = restore(&conf, "mysql", "3306", &dest, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&dest), ["full_1.xb", "inc_1.xb", "inc_2.xb"]);
    for n in ["full_1.xb", "inc_1.xb", "inc_2.xb"] {
        assert!(
            std::fs::read(dest.join(n)).unwrap() == env.original(111111, n),
            "{n} differs"
        );
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("restore incremental backup of mysql/3306 of server 111111")
            && out.contains("3 file(s)"),
        "{out}"
    );
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());

    // a full alone; the scratch dir a killed restore into the same --dest
    // left behind (its pid is gone) is cleaned up
    let dest = env.dest("redis-restore");
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let stale = env
        .work
        .path()
        .join(format!(".redis-restore.ubackup-restore.{dead_pid}"));
    std::fs::create_dir_all(stale.join("files")).unwrap();
    std::fs::write(stale.join("files/dump.rdb"), b"half").unwrap();
    let o = restore(&conf, "redis", "6379", &dest, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&dest), ["dump.rdb"]);
    assert!(std::fs::read(dest.join("dump.rdb")).unwrap() == env.original(111111, "dump.rdb"));
    assert!(!stale.exists(), "the stale scratch dir was removed");

    // an existing, non-empty --dest is refused before anything is pulled
    let o = restore(&conf, "redis", "6379", &dest, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("exists and is not empty"), "{}", text(&o));

    // --dry-run names every file and its node URL, and pulls nothing
    let dest = env.dest("dry");
    let o = restore(&conf, "mysql", "3306", &dest, &["--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!(
            "rsync://127.0.0.1:{}/ubackup/mysql/10.0.0/5/inc_1.xb",
            env.rsyncd.port
        )),
        "{out}"
    );
    assert!(!dest.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn at_picks_the_right_point_and_pruned_backups_are_not_offered() {
    let env = Env::new();
    let [_, _, i2] = chain_of_three(&env).await;
    let conf = env.default_config();
    let restore_at = |at_ms: i64, dest: &str| {
        let d = env.dest(dest);
        let o = client(
            &conf,
            &[
                "restore",
                "--type",
                "mysql",
                "--instance",
                "3306",
                "--at",
                &format!("@{}", at_ms / 1000),
                "--dest",
                d.to_str().unwrap(),
            ],
        );
        (o, d)
    };
    // between inc_1 and inc_2: full + inc_1
    let (o, d) = restore_at(T0 + HOUR_MS + 30 * 60_000, "half");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&d), ["full_1.xb", "inc_1.xb"]);
    // exactly at the full: the full alone
    let (o, d) = restore_at(T0, "full-only");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&d), ["full_1.xb"]);
    // before anything: exit 5, saying what was looked for and what exists
    let (o, d) = restore_at(T0 - HOUR_MS, "none");
    assert_eq!(code(&o), 5, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no successful backup of mysql/3306 of server 111111 at or before ")
            && err.contains("newest is ")
            && err.contains("inc_2.xb"),
        "{err}"
    );
    assert!(!d.exists());
    // a local time as list prints it is accepted too
    let local = chrono::TimeZone::timestamp_millis_opt(&chrono::Local, T0 + HOUR_MS)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let d = env.dest("local");
    let o = client(
        &conf,
        &[
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--at",
            &local,
            "--dest",
            d.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&d), ["full_1.xb", "inc_1.xb"]);

    // prune marked inc_2 deleted: the newest offered is inc_1
    env.cat().mark_deleted(&i2.id, T0).await.unwrap();
    let d = env.dest("after-prune");
    let o = restore(&conf, "mysql", "3306", &d, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&d), ["full_1.xb", "inc_1.xb"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_from_a_node_module_behind_auth_users() {
    let secrets_dir = tempfile::tempdir().unwrap();
    let secrets = secrets_dir.path().join("rsyncd.secrets");
    std::fs::write(&secrets, "restorer:right-pw\n").unwrap();
    let env = Env::with_daemon_global(&format!(
        "auth users = restorer\nsecrets file = {}\nstrict modes = no\n",
        secrets.display()
    ));
    env.backup(111111, "redis", 6379, "dump.rdb", 70_001, T0, None)
        .await;
    let pw = env.work.path().join("node.secret");
    let restore = |pw_text: &str, dest: &str| {
        std::fs::write(&pw, pw_text).unwrap();
        std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let conf = env.config(
            &format!(
                "catalog = {}\nnode_rsync_user = restorer\nnode_rsync_password_file = {}\nnode_rsync_timeout = 30\nnode_rsync_contimeout = 5",
                env.catalog.display(),
                pw.display()
            ),
            None,
        );
        let d = env.dest(dest);
        let o = restore(&conf, "redis", "6379", &d, &[]);
        (o, d)
    };
    let (o, d) = restore("right-pw\n", "with-auth");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(std::fs::read(d.join("dump.rdb")).unwrap() == env.original(111111, "dump.rdb"));
    // a wrong password fails, is not retried into a hang, leaves no --dest
    let (o, d) = restore("wrong-pw\n", "bad-auth");
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(!d.exists());
    assert!(text(&o).contains("auth"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_corrupt_file_fails_and_leaves_dest_untouched() {
    let env = Env::new();
    chain_of_three(&env).await;
    let conf = env.default_config();
    std::fs::remove_file(env.node_dir("mysql").join("inc_1.xb")).unwrap();

    // --dest does not exist: it still does not
    let d = env.dest("new-dir");
    let o = restore(&conf, "mysql", "3306", &d, &[]);
    assert_eq!(code(&o), 7, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("inc_1.xb")
            && err.contains("not on the node")
            && err.contains("--dest untouched"),
        "{err}"
    );
    assert!(!d.exists());
    // --dest is an existing empty directory: it stays, empty
    let d = env.dest("empty-dir");
    std::fs::create_dir(&d).unwrap();
    let o = restore(&conf, "mysql", "3306", &d, &[]);
    assert_eq!(code(&o), 7, "{}", text(&o));
    assert!(names_in(&d).is_empty());
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());

    // a changed byte on the node (same size): the checksum catches it
    let full = env.node_dir("mysql").join("full_1.xb");
    let mut bytes = std::fs::read(&full).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&full, bytes).unwrap();
    let o = client(
        &conf,
        &[
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--at",
            &format!("@{}", T0 / 1000),
            "--dest",
            d.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 7, "{}", text(&o));
    assert!(
        text(&o).contains("full_1.xb: checksum") && text(&o).contains("corrupt"),
        "{}",
        text(&o)
    );
    assert!(names_in(&d).is_empty());
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());
}

/// Files large enough to be hashed while they arrive (a full of 24 MiB and
/// an incremental of 17 MiB, both over the follower's 16 MiB): the hash
/// taken during the pull is the one checked, so a byte changed on the node
/// in the middle of the full is still caught, and the good chain lands
/// byte-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_chain_is_verified_while_it_arrives_and_a_changed_byte_is_caught() {
    let env = Env::new();
    env.backup(111111, "mysql", 3306, "full_big.xb", 24 << 20, T0, None)
        .await;
    env.backup(
        111111,
        "mysql",
        3306,
        "inc_big.xb",
        17 << 20,
        T0 + HOUR_MS,
        Some(("full_big.xb", T0)),
    )
    .await;
    let conf = env.default_config();
    let run = |dest: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ubackup-client"))
            .arg("-c")
            .arg(&conf)
            .args(["restore", "--type", "mysql", "--instance", "3306", "--dest"])
            .arg(dest)
            .env("RUST_LOG", "ubackup_client=debug,warn")
            .output()
            .unwrap()
    };
    let d = env.dest("big");
    let o = run(&d);
    assert_eq!(code(&o), 0, "{}", text(&o));
    for name in ["full_big.xb", "inc_big.xb"] {
        assert!(
            std::fs::read(d.join(name)).unwrap() == env.original(111111, name),
            "{name} differs"
        );
    }
    // the follower, not a second read, produced the hash that was checked
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("hashed while it arrived") && l.contains("full_big.xb")),
        "{log}"
    );

    let full = env.node_dir("mysql").join("full_big.xb");
    let mut bytes = std::fs::read(&full).unwrap();
    bytes[(13 << 20) + 7] ^= 0x01;
    std::fs::write(&full, bytes).unwrap();
    let d2 = env.dest("big-corrupt");
    let o = run(&d2);
    assert_eq!(code(&o), 7, "{}", text(&o));
    assert!(
        text(&o).contains("full_big.xb: checksum") && text(&o).contains("corrupt"),
        "{}",
        text(&o)
    );
    assert!(!d2.exists());
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hook_gets_the_environment_and_its_exit_code_is_ours() {
    let env = Env::new();
    chain_of_three(&env).await;
    let hook = env.work.path().join("hook.sh");
    let seen = env.work.path().join("seen.env");
    std::fs::write(
        &hook,
        format!(
            "for v in BACKUP_FILES BACKUP_DIR FULL_FILE BACKUP_TYPE INSTANCE BACKUP_SERVER_ID; do eval echo \"$v=\\${{$v}}\"; done > {}\nls \"$BACKUP_DIR\" >> {}\nexit 3\n",
            seen.display(),
            seen.display()
        ),
    )
    .unwrap();
    let cat_line = format!("catalog = {}", env.catalog.display());
    let conf = env.config(&cat_line, Some(&format!("sh {}", hook.display())));
    let d = env.dest("hooked");
    let o = client(
        &conf,
        &[
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            d.to_str().unwrap(),
            "--run-hook",
        ],
    );
    assert_eq!(code(&o), 3, "the hook's exit code\n{}", text(&o));
    let got = std::fs::read_to_string(&seen).unwrap();
    let files: Vec<String> = ["full_1.xb", "inc_1.xb", "inc_2.xb"]
        .iter()
        .map(|n| d.join(n).display().to_string())
        .collect();
    for line in [
        format!("BACKUP_FILES={}", files.join(" ")),
        format!("BACKUP_DIR={}", d.display()),
        format!("FULL_FILE={}", files[0]),
        "BACKUP_TYPE=mysql".into(),
        "INSTANCE=3306".into(),
        "BACKUP_SERVER_ID=111111".into(),
        "inc_2.xb".into(),
    ] {
        assert!(
            got.lines().any(|l| l == line),
            "missing `{line}` in:\n{got}"
        );
    }

    // exit 0 from the hook is exit 0
    std::fs::write(&hook, "test -s \"$FULL_FILE\"\n").unwrap();
    let d = env.dest("hooked-ok");
    let o = client(
        &conf,
        &[
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            d.to_str().unwrap(),
            "--run-hook",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));

    // no restore_script: a config error naming the key, before any pull
    let conf = env.config(&cat_line, None);
    let d = env.dest("no-hook");
    let o = client(
        &conf,
        &[
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            d.to_str().unwrap(),
            "--run-hook",
        ],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("[mysql3306] restore_script: missing"),
        "{}",
        text(&o)
    );
    assert!(!d.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_another_hosts_backup_with_server_id() {
    let env = Env::new();
    env.backup(222222, "mysql", 3306, "other_full.xb", 150_001, T0, None)
        .await;
    let conf = env.default_config();
    let d = env.dest("migrated");
    // this host (111111) has none: the error points at the other host
    let o = restore(&conf, "mysql", "3306", &d, &[]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no successful backup of mysql/3306 of server 111111")
            && err.contains("server(s) 222222: pass --server-id"),
        "{err}"
    );
    let o = restore(&conf, "mysql", "3306", &d, &["--server-id", "222222"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        std::fs::read(d.join("other_full.xb")).unwrap() == env.original(222222, "other_full.xb")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pin_unpin_and_a_missing_catalog_key() {
    let env = Env::new();
    let [f, _, i2] = chain_of_three(&env).await;
    let conf = env.default_config();
    let o = client(&conf, &["list", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inc_2.xb", "inc_1.xb", "full_1.xb"], "newest first");
    assert_eq!(rows[0]["kind"], "incremental");
    assert_eq!(rows[0]["full"], "full_1.xb");
    assert_eq!(rows[2]["kind"], "full");
    assert_eq!(rows[0]["node"], "node-a");
    assert_eq!(
        rows[0]["path"],
        format!("{}/inc_2.xb", env.node_dir("mysql").display())
    );
    let o = client(&conf, &["list", "--type", "mysql", "--instance", "3306"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.starts_with("ID") && table.contains("incr of full_1.xb") && table.contains(&f.id),
        "{table}"
    );

    // pin the backup restore would choose, unpin it by id
    let o = client(&conf, &["pin", "--type", "mysql", "--instance", "3306"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("pinned {}", i2.id)));
    assert!(env.cat().get(&i2.id).await.unwrap().unwrap().meta.pinned);
    let o = client(&conf, &["unpin", &i2.id]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!env.cat().get(&i2.id).await.unwrap().unwrap().meta.pinned);
    let o = client(&conf, &["pin", "no-such-id"]);
    assert_eq!(code(&o), 5, "{}", text(&o));

    // without `catalog` or `es_urls` the error names them
    let conf = env.config("", None);
    for cmd in [
        &["list"][..],
        &["restore", "--type", "mysql", "--instance", "3306"],
    ] {
        let o = client(&conf, cmd);
        assert_eq!(code(&o), 2, "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("[global] catalog: missing") && err.contains("`es_urls`"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_restore_and_pin_through_elasticsearch() {
    use ubackup_catalog::{EsCatalog, EsSettings};
    let env = Env::new();
    // the records go to the ES stand-in instead of SQLite
    let recs = chain_of_three(&env).await;
    let es = ubackup_testkit::es::EsStandIn::start();
    let cat = EsCatalog::new(&EsSettings::new(
        vec![es.url().parse().unwrap()],
        "uuzubackup",
    ))
    .unwrap();
    cat.prepare().await.unwrap();
    cat.store(&recs).await.unwrap();
    cat.refresh().await.unwrap();
    let conf = env.config(
        &format!("es_urls = {}\nes_index = uuzubackup", es.url()),
        None,
    );

    let o = client(&conf, &["list", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    let d = env.dest("from-es");
    let o = restore(&conf, "mysql", "3306", &d, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&d), ["full_1.xb", "inc_1.xb", "inc_2.xb"]);
    for n in ["full_1.xb", "inc_1.xb", "inc_2.xb"] {
        assert!(
            std::fs::read(d.join(n)).unwrap() == env.original(111111, n),
            "{n} differs"
        );
    }
    let o = client(&conf, &["pin", &recs[0].id]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(cat.get(&recs[0].id).await.unwrap().unwrap().meta.pinned);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_pull_stops_it_and_leaves_dest_untouched() {
    let env = Env::new();
    chain_of_three(&env).await;
    let conf = env.default_config();
    // a stopped daemon: connections are accepted, nothing answers
    env.rsyncd.pause();
    let d = env.dest("interrupted");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ubackup-client"))
        .arg("-c")
        .arg(&conf)
        .args([
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            d.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ubackup_testkit::wait_until(
        "the restore is pulling",
        std::time::Duration::from_secs(10),
        || !env.scratch_left().is_empty(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    env.rsyncd.resume();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(8), "{err}");
    assert!(err.contains("--dest untouched"), "{err}");
    assert!(!d.exists());
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_over_mutual_tls_from_the_node_and_a_refused_certificate_says_so() {
    use ubackup_testkit::cluster::localhost;
    use ubackup_testkit::cluster::tls::{start_stunnel, Backend, Leaf, Pki, StunnelConf};
    let env = Env::new();
    chain_of_three(&env).await;
    let pki = Pki::new("ubackup test CA").unwrap();
    let node_cert = pki
        .issue(&Leaf {
            name: "node",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })
        .unwrap();
    let host_cert = pki
        .issue(&Leaf {
            name: "dbhost",
            sans: &["db1.example"],
            client: true,
            expired: false,
        })
        .unwrap();
    // the node's stunnel in front of its module, clients need our CA's certificate
    let st_dir = env.work.path().join("stunnel");
    std::fs::create_dir_all(&st_dir).unwrap();
    let st = start_stunnel(
        &st_dir,
        localhost(),
        &StunnelConf {
            cert: &node_cert.0,
            key: &node_cert.1,
            require_client_ca: Some(&pki.ca),
            backend: Backend::Connect(localhost(), env.rsyncd.port),
        },
    )
    .unwrap();
    let tls = |client: bool| {
        let mut s = format!(
            "catalog = {}\nnode_rsync_tls = yes\nnode_rsync_tls_port = {}\nnode_rsync_tls_ca = {}\n",
            env.catalog.display(),
            st.port,
            pki.ca.display()
        );
        if client {
            s.push_str(&format!(
                "node_rsync_tls_cert = {}\nnode_rsync_tls_key = {}\n",
                host_cert.0.display(),
                host_cert.1.display()
            ));
        }
        env.config(&s, None)
    };
    let restore = |conf: &Path, dest: &Path| {
        client(
            conf,
            &[
                "restore",
                "--type",
                "mysql",
                "--instance",
                "3306",
                "--dest",
                dest.to_str().unwrap(),
            ],
        )
    };
    let dest = env.dest("over-tls");
    let o = restore(&tls(true), &dest);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&dest), ["full_1.xb", "inc_1.xb", "inc_2.xb"]);
    for n in ["full_1.xb", "inc_1.xb", "inc_2.xb"] {
        assert!(
            std::fs::read(dest.join(n)).unwrap() == env.original(111111, n),
            "{n} differs"
        );
    }
    let st_log = std::fs::read_to_string(st_dir.join(format!("stunnel-{}.log", st.port))).unwrap();
    assert!(
        st_log.contains("accepted connection"),
        "the pulls went through stunnel: {st_log}"
    );
    // without a client certificate the node's stunnel refuses us: one clear
    // error naming the certificate, nothing in --dest
    let dest = env.dest("no-cert");
    let o = restore(&tls(false), &dest);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(!dest.exists());
    assert!(
        text(&o).contains("TLS authentication failed") && text(&o).contains("node_rsync_tls_cert"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_chain_restores_with_the_identity_and_without_it_nothing_is_pulled() {
    use age::secrecy::ExposeSecret;
    let env = Env::new();
    let chain = chain_of_three(&env).await;
    let id = age::x25519::Identity::generate();
    let to = ubackup_transport::at_rest::Recipients::parse(&id.to_public().to_string()).unwrap();
    // as a node with encrypt_to stored them: ciphertext on disk, its size
    // and hash in the record next to the plaintext's
    let mut recs = Vec::new();
    for mut r in chain {
        let p = Path::new(r.result.file_path.as_deref().unwrap())
            .join(r.result.filename.as_deref().unwrap());
        let tmp = p.with_extension("age");
        let enc = ubackup_transport::at_rest::encrypt_file(&to, &p, &tmp).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        r.result.encryption = Some(enc);
        recs.push(r);
    }
    env.cat().store(&recs).await.unwrap();
    let conf = env.default_config();
    let restore = |dest: &Path, extra: &[&str]| {
        let mut a = vec![
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            dest.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        client(&conf, &a)
    };
    let served = || env.rsyncd.log().matches("] rsync on ").count();

    // no identity: exit 2, a clear message, nothing pulled
    let before = served();
    let dest = env.dest("no-identity");
    let o = restore(&dest, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("--identity") && text(&o).contains("nothing was pulled"),
        "{}",
        text(&o)
    );
    assert!(!dest.exists());
    assert_eq!(served(), before, "nothing was pulled");

    // the identity: byte-identical plaintext
    let idf = env.work.path().join("identity.txt");
    std::fs::write(
        &idf,
        format!("# restore key\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    let dest = env.dest("with-identity");
    let o = restore(&dest, &["--identity", idf.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(names_in(&dest), ["full_1.xb", "inc_1.xb", "inc_2.xb"]);
    for n in ["full_1.xb", "inc_1.xb", "inc_2.xb"] {
        assert!(
            std::fs::read(dest.join(n)).unwrap() == env.original(111111, n),
            "{n} differs"
        );
    }

    // another identity cannot decrypt: a failure, --dest untouched
    let other = env.work.path().join("other.txt");
    std::fs::write(
        &other,
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret(),
    )
    .unwrap();
    let dest = env.dest("wrong-identity");
    let o = restore(&dest, &["--identity", other.to_str().unwrap()]);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("cannot decrypt"), "{}", text(&o));
    assert!(!dest.exists());
    assert!(env.scratch_left().is_empty(), "{:?}", env.scratch_left());
}
