//! The whole pipeline, as `quickstart.sh` runs it, with everything real but
//! Elasticsearch: redis-server (with AUTH), two database hosts (an rsync
//! daemon each, from deploy/rsyncd/dbhost-rsyncd.conf, and the real
//! `ubackup-client` running the shipped example scripts), two pull nodes
//! (`ubackup-server`, on 127.0.0.1 and 127.0.0.2, each with the read-only
//! restore module of deploy/rsyncd/node-rsyncd.conf), and the indexer
//! writing the SQLite catalog and the ES stand-in at once.
//!
//! 5 rounds × 2 hosts × 6 instances (both priorities; full + incremental and
//! full-only schemes; instances that fail in chosen rounds, by exit code and
//! by a `wrong` log) plus two messages pushed by hand that fail on the node
//! (a missing file, an illegal name): 62 backups. Then:
//! * every backup is in both catalogs exactly once, under the same id;
//! * every backup file is on exactly one node, byte-identical, and nothing
//!   else is in the stores;
//! * restores (through SQLite, and through ES at an earlier time) are
//!   byte-identical to the database host's files and rebuild its data;
//! * the reporter's alerts (from SQLite and from ES) are exactly the
//!   instances whose newest backup failed, plus the dead letter;
//! * the nodes and the indexer stop on SIGTERM with exit 0.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Commands;
use serde_json::{json, Value};
use ubackup_common::fsutil::blake3_file;
use ubackup_e2e::{
    ini_set, localhost, render_rsyncd, repo_file, repo_root, run_bin, start_rsyncd, Daemon,
};

use ubackup_testkit::cluster::{ClusterBuilder, Conf, Names};
use ubackup_testkit::es::EsStandIn;
use ubackup_testkit::{unique, wait_until, Proc};

const ROUNDS: usize = 5;
const PASSWORD: &str = "e2e-secret-pw";
const GAME: &str = "大话西游"; // game 31 in deploy/examples/indexer.conf's [business]
const ES_INDEX: &str = "uuzubackup";

/// One instance section of a host's client config.
struct Inst {
    section: &'static str,
    back_type: &'static str,
    instance: i64,
    subdir: &'static str,
    /// `level1`-like list instead of the host's default one.
    high: bool,
    /// "full+incr" (with its FULL_EVERY), or full-only.
    full_every: Option<u32>,
    /// When it fails (see `fails_on`): by writing `wrong` into its log
    /// instead of exiting non-zero.
    wrong_log: bool,
}

const INSTANCES: [Inst; 6] = [
    Inst {
        section: "mysql3306",
        back_type: "mysql",
        instance: 3306,
        subdir: "database_3306",
        high: false,
        full_every: Some(3),
        wrong_log: false,
    },
    Inst {
        section: "mysql3307",
        back_type: "mysql",
        instance: 3307,
        subdir: "database_3307",
        high: true,
        full_every: Some(4),
        wrong_log: false,
    },
    Inst {
        section: "redis6379",
        back_type: "redis",
        instance: 6379,
        subdir: "redisbase_6379",
        high: true,
        full_every: None,
        wrong_log: false,
    },
    Inst {
        section: "redis6380",
        back_type: "redis",
        instance: 6380,
        subdir: "redisbase_6380",
        high: false,
        full_every: None,
        wrong_log: false,
    },
    // failure schedules differ per host, see `fails_on`
    Inst {
        section: "redis6381",
        back_type: "redis",
        instance: 6381,
        subdir: "redisbase_6381",
        high: false,
        full_every: None,
        wrong_log: false,
    },
    Inst {
        section: "redis6382",
        back_type: "redis",
        instance: 6382,
        subdir: "redisbase_6382",
        high: true,
        full_every: None,
        wrong_log: true,
    },
];

/// Host 1: 6381 fails in rounds 2 and 5 (failing now), 6382 in 1-2 (recovered).
/// Host 2: 6381 fails always, 6382 only in the last round.
fn fails_on(host: usize, section: &str) -> &'static [usize] {
    match (host, section) {
        (1, "redis6381") => &[2, 5],
        (1, "redis6382") => &[1, 2],
        (2, "redis6381") => &[1, 2, 3, 4, 5],
        (2, "redis6382") => &[5],
        _ => &[],
    }
}

struct Host {
    n: usize,
    server_id: i64,
    dir: PathBuf,
    conf: PathBuf,
    _rsyncd: Vec<Daemon>,
}

impl Host {
    fn back_dir(&self, i: &Inst) -> PathBuf {
        self.dir.join("backup").join(i.subdir)
    }
    fn fail_flag(&self, i: &Inst) -> PathBuf {
        self.dir.join("fail").join(i.section)
    }
    /// The finished backup files of an instance (the scripts write
    /// `.name.part` and rename).
    fn files(&self, i: &Inst) -> BTreeSet<String> {
        match std::fs::read_dir(self.back_dir(i)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => BTreeSet::new(),
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn client_config(
    h: &Host,
    redis_port: u16,
    rsync_port: u16,
    node_port: u16,
    names: &Names,
    catalog: &str,
) -> String {
    let d = h.dir.display();
    let scripts = repo_root().join("deploy/examples/scripts");
    let mut s = format!(
        "# e2e host {n}\n[global]\nserver_id = {sid}   # this host\ngame_id = 31\nop_id = 1\ninterval = 3600\n\
         redis_host = 127.0.0.1\nredis_port = {redis_port}\nredis_password = {PASSWORD}\nredis_queue = {lo}\n\
         my_ip = 127.0.0.1\nlog = {d}/log/client.log\nerror_log = {d}/log/client.error\nspool_dir = {d}/spool\n\
         checksum = blake3\nkey_prefix = {prefix}\nrsync_port = {rsync_port}\nnode_rsync_port = {node_port}\n{catalog}\n",
        n = h.n,
        sid = h.server_id,
        lo = names.lo,
        prefix = names.prefix,
    );
    for i in &INSTANCES {
        let back = h.back_dir(i);
        let flag = h.fail_flag(i);
        let work = match i.full_every {
            Some(every) => format!(
                "FULL_EVERY={every} sh {}/mysql_like_backup.sh {d}/data/{}",
                scripts.display(),
                i.section
            ),
            None => format!(
                "sh {}/redis_like_backup.sh {d}/data/{}/dump.rdb",
                scripts.display(),
                i.section
            ),
        };
        // the failure switch of this instance (a file the test creates)
        let fail = if i.wrong_log {
            format!("if [ -e {} ]; then printf 'wrong\\nbinlog purge failed: disk full\\n' > \"$UBACKUP_BACK_LOG\"; exit 0; fi", flag.display())
        } else {
            format!(
                "if [ -e {} ]; then echo 'MISCONF: cannot persist on disk' >&2; exit 1; fi",
                flag.display()
            )
        };
        s.push_str(&format!(
            "\n[{sec}]\nback_type = {ty}\ninstance = {inst}\nrsync_model = backup/{sub}\nback_dir = {back}\n\
             back_log = {d}/log/{sec}.log\nscript = {fail}; {work}\ntimeout = 60\n",
            sec = i.section,
            ty = i.back_type,
            inst = i.instance,
            sub = i.subdir,
            back = back.display(),
        ));
        if i.full_every.is_some() {
            s.push_str(&format!("last_all_log = {d}/log/{}.last\n", i.section));
        }
        if i.high {
            s.push_str(&format!("redis_queue = {}\n", names.hi));
        }
    }
    s
}

/// A hand-made message (the client's wire format) for a file the node will
/// fail on.
fn raw_message(
    server_id: i64,
    back_type: &str,
    instance: i64,
    model: &str,
    filename: &str,
    rsync_port: u16,
) -> String {
    json!({
        "filename": filename, "last_all_filename": null, "size": 100, "log": "ok",
        "create_time": now_s(), "success": true, "server_id": server_id, "game_id": 31, "op_id": 1,
        "game_server_ip": "127.0.0.1", "back_type": back_type, "instance": instance,
        "rsync_model": model, "last_all_time": 0, "interval": 3600, "rsync_port": rsync_port,
    })
    .to_string()
}

/// A row of the SQLite catalog.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    server_id: i64,
    back_type: String,
    instance: i64,
    filename: Option<String>,
    file_path: Option<String>,
    succeed: i64,
    illegal: Option<String>,
    node: String,
    checksum: Option<String>,
}

fn sqlite_rows(db: &Path) -> Vec<Row> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c
        .prepare("SELECT id, server_id, type, instance, filename, file_path, succeed, illegal, node, checksum FROM backups")
        .unwrap();
    st.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            server_id: r.get(1)?,
            back_type: r.get(2)?,
            instance: r.get(3)?,
            filename: r.get(4)?,
            file_path: r.get(5)?,
            succeed: r.get(6)?,
            illegal: r.get(7)?,
            node: r.get(8)?,
            checksum: r.get(9)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn sqlite_count(db: &Path) -> usize {
    if !db.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM backups", [], |r| r.get::<_, i64>(0)))
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// Every regular file under a node's store, outside its temp area.
fn stored_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                if p.file_name().is_some_and(|n| n == ".ubackup-tmp") {
                    continue;
                }
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Alerts as (kind, subject), without `node_disk_low` (it depends on the
/// free space of the machine running the test).
fn alert_set(bin: &Path, conf: &Path) -> (Option<i32>, BTreeSet<(String, String)>, String) {
    let (code, out, err) = run_bin(
        bin,
        &["alerts", "--json", "-c", conf.to_str().unwrap()],
        Duration::from_secs(30),
    );
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("alerts --json: {e}: {out}{err}"));
    let set = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] != "node_disk_low")
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, set, out)
}

fn restore(client: &Path, conf: &Path, args: &[&str], dest: &Path) -> String {
    let mut a = vec!["-c", conf.to_str().unwrap(), "restore"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--dest", dest.to_str().unwrap()]);
    let (code, out, err) = run_bin(client, &a, Duration::from_secs(60));
    assert_eq!(code, Some(0), "restore {args:?}: {out}{err}");
    out
}

/// The chain restore must bring back for an instance as of round `r`: the
/// newest full made at or before `r`, and every incremental after it up to `r`.
fn expected_chain(per_round: &BTreeMap<usize, String>, r: usize) -> Vec<String> {
    let full_round = (1..=r)
        .rev()
        .find(|k| {
            per_round
                .get(k)
                .is_some_and(|f| f.starts_with("mysql_full_"))
        })
        .expect("a full before round r");
    (full_round..=r)
        .filter_map(|k| per_round.get(&k).cloned())
        .collect()
}

/// Extracts the chain in order and compares the result with `data`.
fn assert_rebuilds(dest: &Path, chain: &[String], data: &Path, scratch: &Path) {
    std::fs::create_dir_all(scratch).unwrap();
    for f in chain {
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(dest.join(f))
            .arg("-C")
            .arg(scratch)
            .status()
            .unwrap();
        assert!(st.success(), "tar -xzf {f}");
    }
    let out = Command::new("diff")
        .arg("-r")
        .arg(scratch)
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the restored chain does not rebuild {}: {}",
        data.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fifty_plus_backups_through_two_hosts_two_nodes_sqlite_and_es() {
    let _one = crate::one_cluster();
    let t0 = Instant::now();
    let cluster = ClusterBuilder::new("e2e")
        .names(Names {
            prefix: unique("e2e:"),
            hi: unique("level1-"),
            lo: unique("uuzuback-"),
            results: unique("message-"),
        })
        .redis_password(PASSWORD)
        .start()
        .unwrap();
    let root = cluster.dir.path();
    let names = &cluster.names;
    let redis = &cluster.redis;
    let mut rc = cluster.conn();
    let es = EsStandIn::start();
    let (client_bin, reporter_bin) = (
        cluster.bin("ubackup-client"),
        cluster.bin("ubackup-reporter"),
    );

    // ---- two pull nodes, each with its own address (back_server_ip) and a
    // read-only restore module on one common port
    let node_ips: [IpAddr; 2] = [localhost(), IpAddr::from([127, 0, 0, 2])];
    let mut node_confs = Vec::new();
    for (k, ip) in node_ips.iter().enumerate() {
        let d = root.join(format!("node{}", k + 1));
        std::fs::create_dir_all(d.join("store")).unwrap();
        let rsyncd = d.join("rsyncd.conf");
        std::fs::write(
            &rsyncd,
            render_rsyncd(
                &repo_file("deploy/rsyncd/node-rsyncd.conf"),
                &d,
                &d.join("store"),
                "127.0.0.0/8",
            ),
        )
        .unwrap();
        let conf = cluster
            .node_conf(
                Conf::from_text(repo_file("deploy/examples/server.conf")),
                &format!("n{}", k + 1),
                &format!("{}/", d.join("store").display()),
                &d.join("server.log"),
                &ip.to_string(),
            )
            .apply(&cluster.message_redis_settings())
            .apply(&[
                ("work_thread", "3".to_string()),
                ("reserve", "0".into()),
                ("error_log", d.join("server.error").display().to_string()),
                ("allow_sources", "127.0.0.1/32".into()),
                ("retry", "3".into()),
                ("retry_backoff_ms", "100".into()),
                ("rsync_timeout", "10".into()),
                ("rsync_contimeout", "5".into()),
                ("drain_secs", "5".into()),
                ("queue_wait_ms", "100".into()),
            ]);
        let path = d.join("server.conf");
        conf.write(&path).unwrap();
        node_confs.push((d, path, rsyncd));
    }
    let node_rsyncd =
        ubackup_e2e::start_listening("rsync --daemon (node)", &node_ips, |addr, port| {
            let k = usize::from(addr != node_ips[0]);
            let mut c = Command::new("rsync");
            c.arg("--daemon")
                .arg("--no-detach")
                .arg(format!("--config={}", node_confs[k].2.display()))
                .arg(format!("--port={port}"))
                .arg(format!("--address={addr}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        })
        .unwrap();
    let node_port = node_rsyncd[0].port;
    let mut nodes: Vec<Proc> = node_confs
        .iter()
        .enumerate()
        .map(|(k, (_, conf, _))| {
            Proc::spawn(
                &format!("node n{}", k + 1),
                cluster.command("ubackup-server", conf),
            )
            .unwrap()
        })
        .collect();

    // ---- the indexer: SQLite and the ES stand-in
    let catalog = root.join("catalog.db");
    let iconf = cluster
        .indexer_conf(
            Conf::from_text(repo_file("deploy/examples/indexer.conf")).del("es_urls"),
            "idx1",
            &catalog,
            &root.join("indexer.log"),
        )
        .apply(&[
            ("es_urls", es.url()),
            ("es_index", ES_INDEX.into()),
            (
                "error_log",
                root.join("indexer.error").display().to_string(),
            ),
        ]);
    let iconf = iconf.text();
    let indexer_conf = root.join("indexer.conf");
    std::fs::write(&indexer_conf, iconf).unwrap();
    // the same cluster seen through Elasticsearch only
    let es_reporter_conf = root.join("reporter-es.conf");
    std::fs::write(
        &es_reporter_conf,
        ini_set(
            &ini_set(iconf, "global", "catalog", "off"),
            "global",
            "es_urls",
            &es.url(),
        ),
    )
    .unwrap();
    let mut indexer =
        Proc::spawn("indexer", cluster.command("ubackup-indexer", &indexer_conf)).unwrap();

    // ---- two database hosts
    let mut hosts = Vec::new();
    for n in 1..=2usize {
        let dir = root.join(format!("host{n}"));
        for sub in ["backup", "log", "data", "fail"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let rsyncd = dir.join("rsyncd.conf");
        std::fs::write(
            &rsyncd,
            render_rsyncd(
                &repo_file("deploy/rsyncd/dbhost-rsyncd.conf"),
                &dir,
                &dir.join("backup"),
                "127.0.0.1",
            ),
        )
        .unwrap();
        let d = start_rsyncd(&rsyncd, &[localhost()]).unwrap();
        let port = d[0].port;
        let h = Host {
            n,
            server_id: 920000 + n as i64,
            conf: dir.join("client.conf"),
            dir,
            _rsyncd: d,
        };
        std::fs::write(
            &h.conf,
            client_config(
                &h,
                redis.port,
                port,
                node_port,
                names,
                &format!("catalog = {}", catalog.display()),
            ),
        )
        .unwrap();
        let (code, out, err) = run_bin(
            &client_bin,
            &["-c", h.conf.to_str().unwrap(), "check"],
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(0), "client check host{n}: {out}{err}");
        hosts.push((h, port));
    }
    for n in ["n1", "n2"] {
        cluster
            .wait_alive(n, &format!("node {n} heartbeat"), Duration::from_secs(20))
            .unwrap();
    }

    // ---- the backup rounds; each in its own seconds. A message's
    // create_time is its client run's start in whole seconds, and two failed
    // runs of one instance in the same second on the same node get the same
    // record id (there is no file name to tell them apart): one catalog row.
    // So a round starts only after the second in which the previous one
    // ended.
    // (host, section) → round → file made in that round
    let mut made: BTreeMap<(usize, &str), BTreeMap<usize, String>> = BTreeMap::new();
    let mut failed: BTreeMap<(i64, String, i64), usize> = BTreeMap::new();
    let mut round_time = BTreeMap::new();
    let mut last = 0;
    for r in 1..=ROUNDS {
        wait_until("the next second", Duration::from_secs(3), || now_s() > last);
        for (h, _) in &hosts {
            for i in &INSTANCES {
                let flag = h.fail_flag(i);
                if fails_on(h.n, i.section).contains(&r) {
                    std::fs::write(&flag, b"").unwrap();
                    *failed
                        .entry((h.server_id, i.back_type.to_string(), i.instance))
                        .or_default() += 1;
                } else {
                    let _ = std::fs::remove_file(&flag);
                }
            }
        }
        let before: Vec<Vec<BTreeSet<String>>> = hosts
            .iter()
            .map(|(h, _)| INSTANCES.iter().map(|i| h.files(i)).collect())
            .collect();
        let runs: Vec<_> = hosts
            .iter()
            .map(|(h, _)| {
                let (bin, conf) = (client_bin.clone(), h.conf.clone());
                std::thread::spawn(move || {
                    run_bin(
                        &bin,
                        &["-c", conf.to_str().unwrap()],
                        Duration::from_secs(60),
                    )
                })
            })
            .collect();
        for ((h, _), run) in hosts.iter().zip(runs) {
            let (code, out, err) = run.join().unwrap();
            let any_fail = INSTANCES
                .iter()
                .any(|i| fails_on(h.n, i.section).contains(&r));
            assert_eq!(
                code,
                Some(if any_fail { 1 } else { 0 }),
                "round {r} host{}: {out}{err}",
                h.n
            );
        }
        // every create_time of this round is <= this second
        last = now_s();
        round_time.insert(r, last);
        for (k, (h, _)) in hosts.iter().enumerate() {
            for (j, i) in INSTANCES.iter().enumerate() {
                let new: Vec<String> = h.files(i).difference(&before[k][j]).cloned().collect();
                let should_fail = fails_on(h.n, i.section).contains(&r);
                assert_eq!(
                    new.len(),
                    usize::from(!should_fail),
                    "round {r} host{} {}: new files {new:?}",
                    h.n,
                    i.section
                );
                if let Some(f) = new.into_iter().next() {
                    made.entry((h.n, i.section)).or_default().insert(r, f);
                }
            }
        }
    }
    // two messages the nodes must fail on: a file that is not there (pull
    // failed) and a name outside the module (illegal, dead-lettered)
    let _: i64 = rc
        .lpush(
            &names.lo,
            raw_message(
                920001,
                "redis",
                6390,
                "backup/redisbase_6390",
                "gone.rdb.gz",
                hosts[0].1,
            ),
        )
        .unwrap();
    let _: i64 = rc
        .lpush(
            &names.lo,
            raw_message(
                920002,
                "mysql",
                3399,
                "backup/database_3399",
                "../../etc/passwd",
                hosts[1].1,
            ),
        )
        .unwrap();
    *failed.entry((920001, "redis".into(), 6390)).or_default() += 1;
    *failed.entry((920002, "mysql".into(), 3399)).or_default() += 1;
    let successes: usize = made.values().map(BTreeMap::len).sum();
    let expected = successes + failed.values().sum::<usize>();
    assert_eq!(expected, ROUNDS * 2 * INSTANCES.len() + 2);
    assert!(expected >= 50);

    // ---- everything pulled and in both catalogs
    let state = |rc: &mut redis::Connection| -> (bool, String) {
        let mut depths = BTreeMap::new();
        for l in [&names.hi, &names.lo, &names.results] {
            depths.insert(l.clone(), rc.llen::<_, i64>(l).unwrap_or(-1));
        }
        for pat in ["inflight:*", "outbox:*"] {
            let keys: Vec<String> = rc
                .keys(format!("{}{pat}", names.prefix))
                .unwrap_or_default();
            for k in keys {
                let n = rc.llen::<_, i64>(&k).unwrap_or(-1);
                depths.insert(k, n);
            }
        }
        let (sq, es_n) = (sqlite_count(&catalog), es.doc_count(ES_INDEX));
        let done = depths.values().all(|n| *n == 0) && sq == expected && es_n == expected;
        (
            done,
            format!("lists {depths:?}; SQLite {sq}, ES {es_n} of {expected}"),
        )
    };
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (done, what) = state(&mut rc);
        if done {
            break;
        }
        if Instant::now() > end {
            let tail = |p: &Path| {
                let t = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            };
            panic!(
                "timed out waiting for the pipeline: {what}\n--- node1\n{}\n--- node2\n{}\n--- indexer\n{}",
                tail(&node_confs[0].0.join("server.log")),
                tail(&node_confs[1].0.join("server.log")),
                tail(&root.join("indexer.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pipeline_secs = t0.elapsed().as_secs_f64();

    // ---- both catalogs: every backup exactly once, the same ids
    let rows = sqlite_rows(&catalog);
    assert_eq!(rows.len(), expected);
    let docs = es.docs(ES_INDEX);
    let sqlite_ids: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let es_ids: BTreeSet<&str> = docs.keys().map(String::as_str).collect();
    assert_eq!(sqlite_ids, es_ids, "SQLite and ES hold different backups");
    for r in &rows {
        let d = &docs[&r.id];
        assert_eq!(
            (
                d["server_id"].as_i64(),
                d["type"].as_str(),
                d["instance"].as_i64(),
                d["succeed"].as_i64()
            ),
            (
                Some(r.server_id),
                Some(r.back_type.as_str()),
                Some(r.instance),
                Some(r.succeed)
            ),
            "{}",
            r.id
        );
        assert_eq!(d["game_name"], GAME);
    }
    // successes: one row per file the scripts made, none twice
    let mut by_file: BTreeMap<(i64, String), Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.succeed == 1) {
        by_file
            .entry((r.server_id, r.filename.clone().unwrap()))
            .or_default()
            .push(r);
    }
    assert_eq!(by_file.len(), successes, "successful rows vs files made");
    for ((h, _), i) in hosts
        .iter()
        .flat_map(|h| INSTANCES.iter().map(move |i| (h, i)))
    {
        for f in made
            .get(&(h.n, i.section))
            .into_iter()
            .flat_map(|m| m.values())
        {
            let rs = by_file
                .get(&(h.server_id, f.clone()))
                .unwrap_or_else(|| panic!("{f} of host{} is not in the catalog", h.n));
            assert_eq!(rs.len(), 1, "{f} is in the catalog {} times", rs.len());
            let r = rs[0];
            assert_eq!(
                (r.back_type.as_str(), r.instance),
                (i.back_type, i.instance)
            );
            // …and on its node, byte-identical, checksum as recorded
            let node_root = &node_confs[if r.node == "n1" { 0 } else { 1 }]
                .0
                .join("store");
            let path = PathBuf::from(r.file_path.as_deref().unwrap()).join(f);
            assert!(
                path.starts_with(node_root),
                "{} is not in {}'s store",
                path.display(),
                r.node
            );
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(meta.file_type().is_file());
            let src = h.back_dir(i).join(f);
            assert!(
                std::fs::read(&path).unwrap() == std::fs::read(&src).unwrap(),
                "{} differs from {}",
                path.display(),
                src.display()
            );
            assert_eq!(
                r.checksum.as_deref(),
                Some(blake3_file(&src).unwrap().as_str())
            );
        }
    }
    // failures: as many rows per instance as failed runs, nothing landed
    let mut failed_rows: BTreeMap<(i64, String, i64), usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.succeed == 0) {
        *failed_rows
            .entry((r.server_id, r.back_type.clone(), r.instance))
            .or_default() += 1;
    }
    assert_eq!(failed_rows, failed);
    let illegal: Vec<&Row> = rows.iter().filter(|r| r.illegal.is_some()).collect();
    assert_eq!(
        illegal.len(),
        1,
        "only the ../../etc/passwd message is illegal: {illegal:?}"
    );
    // the stores hold exactly the backups, each once
    let mut stored = Vec::new();
    let mut per_node = Vec::new();
    for (d, _, _) in &node_confs {
        let files = stored_files(&d.join("store"));
        per_node.push(files.len());
        stored.extend(files);
    }
    assert_eq!(stored.len(), successes, "files in the stores: {stored:?}");
    let dead: Vec<String> = rc.lrange(format!("{}:dead", names.lo), 0, -1).unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("etc/passwd"));

    // ---- list, through SQLite and through ES
    let es_client_conf = root.join("host2-es.conf");
    std::fs::write(
        &es_client_conf,
        client_config(
            &hosts[1].0,
            redis.port,
            hosts[1].1,
            node_port,
            names,
            &format!("es_urls = {}\nes_index = {ES_INDEX}", es.url()),
        ),
    )
    .unwrap();
    let count_list = |conf: &Path| -> usize {
        let (code, out, err) = run_bin(
            &client_bin,
            &[
                "-c",
                conf.to_str().unwrap(),
                "list",
                "--all",
                "--json",
                "--limit",
                "1000",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(code, Some(0), "list: {out}{err}");
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let host1_rows = rows.iter().filter(|r| r.server_id == 920001).count();
    assert_eq!(count_list(&hosts[0].0.conf), host1_rows);
    let host2_rows = rows.iter().filter(|r| r.server_id == 920002).count();
    // ES searches see documents after a refresh (≤ 1 s)
    wait_until(
        "ES search sees every backup of host2",
        Duration::from_secs(10),
        || count_list(&es_client_conf) == host2_rows,
    );

    // ---- restores, byte-identical, rebuilding the "database"
    let (h1, _) = &hosts[0];
    let mysql3306 = &INSTANCES[0];
    let chain = expected_chain(&made[&(1, "mysql3306")], ROUNDS);
    let dest = root.join("restore/a");
    std::fs::create_dir_all(root.join("restore")).unwrap();
    restore(
        &client_bin,
        &h1.conf,
        &["--type", "mysql", "--instance", "3306"],
        &dest,
    );
    let got: BTreeSet<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        chain.iter().cloned().collect(),
        "restored files vs the newest chain"
    );
    for f in &chain {
        assert!(
            std::fs::read(dest.join(f)).unwrap()
                == std::fs::read(h1.back_dir(mysql3306).join(f)).unwrap(),
            "restored {f} differs"
        );
    }
    assert_rebuilds(
        &dest,
        &chain,
        &h1.dir.join("data/mysql3306"),
        &root.join("restore/a-data"),
    );

    // through ES, as of round 4: host2's mysql3307 full of round 1 + 3 incrementals
    let (h2, _) = &hosts[1];
    let mysql3307 = &INSTANCES[1];
    let chain = expected_chain(&made[&(2, "mysql3307")], 4);
    assert_eq!(chain.len(), 4, "{chain:?}");
    let dest = root.join("restore/b");
    restore(
        &client_bin,
        &es_client_conf,
        &[
            "--type",
            "mysql",
            "--instance",
            "3307",
            "--at",
            &format!("@{}", round_time[&4]),
        ],
        &dest,
    );
    let got: BTreeSet<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        chain.iter().cloned().collect(),
        "restored files vs the chain of round 4"
    );
    for f in &chain {
        assert!(
            std::fs::read(dest.join(f)).unwrap()
                == std::fs::read(h2.back_dir(mysql3307).join(f)).unwrap(),
            "restored {f} differs"
        );
    }

    // ---- alerts: exactly the instances whose newest backup failed, and the dead letter
    let subject = |sid: i64, ty: &str, inst: i64| format!("{sid}/{ty}/{inst}/{GAME}");
    let want: BTreeSet<(String, String)> = [
        ("script_error", subject(920001, "redis", 6381)),
        ("script_error", subject(920002, "redis", 6381)),
        ("script_error", subject(920002, "redis", 6382)),
        ("pull_failed", subject(920001, "redis", 6390)),
        ("illegal", subject(920002, "mysql", 3399)),
        ("dead_letters", format!("{}:dead", names.lo)),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_string(), s))
    .collect();
    let (code, got, out) = alert_set(&reporter_bin, &indexer_conf);
    assert_eq!(got, want, "alerts from the SQLite catalog: {out}");
    assert_eq!(code, Some(2), "critical (an illegal backup): {out}");
    let (code, got, out) = alert_set(&reporter_bin, &es_reporter_conf);
    assert_eq!(got, want, "alerts from Elasticsearch: {out}");
    assert_eq!(code, Some(2), "{out}");

    // ---- a clean stop, as supervisord/systemd do it
    for p in nodes.iter_mut().chain(std::iter::once(&mut indexer)) {
        p.signal(libc::SIGTERM);
        assert_eq!(
            p.wait_exit(Duration::from_secs(20)),
            Some(Some(0)),
            "{} did not stop cleanly on SIGTERM",
            p.name
        );
    }
    eprintln!(
        "e2e: {expected} backups ({successes} files, {} failures) indexed into SQLite and ES in {pipeline_secs:.1} s; files per node {per_node:?}; total {:.1} s",
        expected - successes,
        t0.elapsed().as_secs_f64()
    );
}
