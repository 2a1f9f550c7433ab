//! What the replication tests share: the backup files of one database
//! host, their messages, the pull nodes with their read-only modules, the
//! indexer, and the catalog as the tests read it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use ubackup_common::fsutil::blake3_file;
use ubackup_e2e::{render_rsyncd, repo_file, start_listening};
use ubackup_testkit::cluster::{Cluster, Conf, TEST_NODE};
use ubackup_testkit::Proc;

pub(super) const SERVER_ID: i64 = 940001;
pub(super) const CHAINS: usize = 8;
pub(super) const CHAIN_LEN: usize = 5;
pub(super) const REDIS_FULLS: usize = 20;

/// One backup file on the database host.
#[derive(Debug, Clone)]
pub(super) struct Made {
    pub(super) name: String,
    pub(super) back_type: &'static str,
    pub(super) instance: i64,
    pub(super) create_time: i64,
    pub(super) full: Option<(String, i64)>,
    pub(super) blake3: String,
    pub(super) size: i64,
}

/// A copy as the catalog has it: (node, file path, state).
pub(super) type CopyRow = (String, String, String);

pub(super) struct Catalog(pub(super) PathBuf);

impl Catalog {
    pub(super) fn conn(&self) -> Option<rusqlite::Connection> {
        if !self.0.exists() {
            return None;
        }
        rusqlite::Connection::open_with_flags(&self.0, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
    }

    /// id → (filename, first-copy node, first-copy path).
    pub(super) fn backups(&self) -> BTreeMap<String, (String, String, String)> {
        let Some(c) = self.conn() else {
            return BTreeMap::new();
        };
        let Ok(mut st) = c.prepare(
            "SELECT id, filename, node, file_path FROM backups WHERE succeed = 1 AND illegal IS NULL",
        ) else {
            return BTreeMap::new();
        };
        st.query_map([], |r| {
            let dir: String = r.get(3)?;
            let name: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                (
                    name.clone(),
                    r.get(2)?,
                    format!("{}/{name}", dir.trim_end_matches('/')),
                ),
            ))
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
    }

    /// id → its copy rows.
    pub(super) fn copies(&self) -> BTreeMap<String, Vec<CopyRow>> {
        let mut out: BTreeMap<String, Vec<CopyRow>> = BTreeMap::new();
        let Some(c) = self.conn() else {
            return out;
        };
        let Ok(mut st) = c.prepare("SELECT backup_id, node, file_path, state FROM copies") else {
            return out;
        };
        let rows: Vec<(String, CopyRow)> = st
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default();
        for (id, row) in rows {
            out.entry(id).or_default().push(row);
        }
        out
    }

    /// id → every good copy (node, path): the first one unless a copy row
    /// of its node says otherwise, then the others.
    pub(super) fn good_copies(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let copies = self.copies();
        self.backups()
            .into_iter()
            .map(|(id, (_, node, path))| {
                let rows = copies.get(&id).cloned().unwrap_or_default();
                let mut good = Vec::new();
                if !rows.iter().any(|(n, _, _)| *n == node) {
                    good.push((node, path));
                }
                for (n, p, s) in rows {
                    if s == "ok" {
                        good.push((n, p));
                    }
                }
                (id, good)
            })
            .collect()
    }
}

pub(super) fn zone(node: &str) -> &'static str {
    if node == "n3" {
        "b"
    } else {
        "a"
    }
}

pub(super) fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The 60 backup files, written into `dir` (the database host's module).
pub(super) fn make_files(dir: &Path) -> Vec<Made> {
    let base = now_s() - 100_000;
    let mut out = Vec::new();
    let mut t = base;
    let write = |name: &str, n: usize| -> (String, i64) {
        // distinct content, a few KiB, not compressible to nothing
        let mut data = Vec::with_capacity(4096 + n * 37);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (n as u64);
        for _ in 0..(4096 + n * 37) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x & 0xff) as u8);
        }
        let p = dir.join(name);
        std::fs::write(&p, &data).unwrap();
        (blake3_file(&p).unwrap(), data.len() as i64)
    };
    let mut n = 0;
    for c in 0..CHAINS {
        let full = format!("mysql_full_{c}.xb");
        t += 60;
        n += 1;
        let (b, size) = write(&full, n);
        let full_time = t;
        out.push(Made {
            name: full.clone(),
            back_type: "mysql",
            instance: 3306,
            create_time: t,
            full: None,
            blake3: b,
            size,
        });
        for k in 1..CHAIN_LEN {
            let name = format!("mysql_incr_{c}_{k}.xb");
            t += 60;
            n += 1;
            let (b, size) = write(&name, n);
            out.push(Made {
                name,
                back_type: "mysql",
                instance: 3306,
                create_time: t,
                full: Some((full.clone(), full_time)),
                blake3: b,
                size,
            });
        }
    }
    for k in 0..REDIS_FULLS {
        let name = format!("redis_dump_{k}.rdb");
        t += 60;
        n += 1;
        let (b, size) = write(&name, n);
        out.push(Made {
            name,
            back_type: "redis",
            instance: 6379,
            create_time: t,
            full: None,
            blake3: b,
            size,
        });
    }
    out
}

/// The client's message for one file (its wire format).
pub(super) fn message(m: &Made, rsync_port: u16) -> String {
    json!({
        "filename": m.name,
        "last_all_filename": m.full.as_ref().map(|f| f.0.clone()),
        "size": m.size, "log": "ok", "create_time": m.create_time, "success": true,
        "server_id": SERVER_ID, "game_id": 31, "op_id": 1, "game_server_ip": "127.0.0.1",
        "back_type": m.back_type, "instance": m.instance, "rsync_model": "backup",
        "last_all_time": m.full.as_ref().map(|f| f.1).unwrap_or(0), "interval": 3600,
        "rsync_port": rsync_port, "checksum": m.blake3,
    })
    .to_string()
}

/// The pull nodes of a test: one directory each (store, module config,
/// server config, log), an address each (127.0.0.k), and their read-only
/// modules on one common port.
pub(super) struct Rig {
    pub(super) ids: Vec<String>,
    pub(super) dirs: Vec<PathBuf>,
    pub(super) modules: Vec<ubackup_e2e::Daemon>,
    pub(super) module_port: u16,
}

/// The nodes' read-only modules (`dirs[k]/rsyncd.conf`), node k's on
/// `ips[k]`, all on one common port.
pub(super) fn start_modules(dirs: &[PathBuf], ips: &[IpAddr]) -> Vec<ubackup_e2e::Daemon> {
    start_listening("rsync --daemon (node)", ips, |addr, port| {
        let k = ips.iter().position(|a| *a == addr).unwrap();
        let mut c = Command::new("rsync");
        c.arg("--daemon")
            .arg("--no-detach")
            .arg(format!(
                "--config={}",
                dirs[k].join("rsyncd.conf").display()
            ))
            .arg(format!("--port={port}"))
            .arg(format!("--address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    })
    .unwrap()
}

impl Rig {
    /// `es`: the URL of an Elasticsearch the nodes mirror copies into.
    pub(super) fn start(
        cluster: &Cluster,
        root: &Path,
        ids: &[&str],
        catalog: &Path,
        es: Option<&str>,
    ) -> Rig {
        let ips: Vec<IpAddr> = (1..=ids.len() as u8)
            .map(|k| IpAddr::from([127, 0, 0, k]))
            .collect();
        let mut dirs = Vec::new();
        for id in ids {
            let d = root.join(id);
            std::fs::create_dir_all(d.join("store")).unwrap();
            let conf = render_rsyncd(
                &repo_file("deploy/rsyncd/node-rsyncd.conf"),
                &d,
                &d.join("store"),
                "127.0.0.0/8",
            );
            std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
            dirs.push(d);
        }
        let modules = start_modules(&dirs, &ips);
        let module_port = modules[0].port;
        for (k, id) in ids.iter().enumerate() {
            let d = &dirs[k];
            cluster
                .node_conf(
                    Conf::generated("the replication test").apply(TEST_NODE),
                    id,
                    &format!("{}/", d.join("store").display()),
                    &d.join("server.log"),
                    &ips[k].to_string(),
                )
                .apply(&[
                    ("allow_sources", "127.0.0.1/32".to_string()),
                    ("queue_wait_ms", "100".into()),
                    ("drain_secs", "5".into()),
                    ("copies", "2".into()),
                    ("zone", zone(id).into()),
                    ("catalog", catalog.display().to_string()),
                    ("node_rsync_port", module_port.to_string()),
                    ("repair_after_secs", "3".into()),
                    ("repair_interval_secs", "1".into()),
                ])
                .apply(&es.map(|u| [("es_urls", u.to_string())]).unwrap_or_default())
                .write(&d.join("server.conf"))
                .unwrap();
        }
        Rig {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            dirs,
            modules,
            module_port,
        }
    }

    /// Starts node `k`, with `UBACKUP_FAILPOINT` set when given.
    pub(super) fn spawn(&self, cluster: &Cluster, k: usize, failpoint: Option<&str>) -> Proc {
        let mut cmd = cluster.command("ubackup-server", &self.dirs[k].join("server.conf"));
        if let Some(fp) = failpoint {
            cmd.env("UBACKUP_FAILPOINT", fp);
        }
        Proc::spawn(&format!("node {}", self.ids[k]), cmd).unwrap()
    }
}

/// The indexer, writing `catalog` (and the ES at `es`, when given); its
/// config is `root/indexer.conf`.
pub(super) fn start_indexer(
    cluster: &Cluster,
    root: &Path,
    catalog: &Path,
    es: Option<&str>,
) -> Proc {
    let path = root.join("indexer.conf");
    cluster
        .indexer_conf(
            Conf::from_text(repo_file("deploy/examples/indexer.conf")).del("es_urls"),
            "idx1",
            catalog,
            &root.join("indexer.log"),
        )
        .apply(&es.map(|u| [("es_urls", u.to_string())]).unwrap_or_default())
        .write(&path)
        .unwrap();
    Proc::spawn("indexer", cluster.command("ubackup-indexer", &path)).unwrap()
}

/// [`wait_until`], but a timeout shows the end of every node's log.
pub(super) fn wait_logged(
    what: &str,
    deadline: Duration,
    dirs: &[PathBuf],
    mut cond: impl FnMut() -> bool,
) {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut logs = String::new();
    for d in dirs {
        let text = std::fs::read_to_string(d.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("DEBUG") && !l.contains("repair sweep"))
            .collect();
        logs.push_str(&format!(
            "\n== {}\n{}",
            d.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        ));
    }
    panic!("timed out after {deadline:?} waiting for: {what}{logs}");
}

pub(super) fn same_bytes(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
