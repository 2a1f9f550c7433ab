//! The invariant, checked once the system is quiet:
//!
//! * every ledger message is indexed exactly once by id in the SQLite
//!   catalog and in the ES stand-in, or sits in a dead-letter list with a
//!   reason (a result ES refused is in SQLite and in `<message_queue>:dead`);
//! * every work list, result list, in-flight list and outbox is empty;
//! * every file a success record names is a regular file inside its node's
//!   destination tree, with the recorded size and checksum (and the
//!   source's checksum);
//! * no file exists anywhere else: each node root is walked, and so is the
//!   whole world directory, including `attack/`, the spot a traversal or an
//!   injected command would write to.
//!
//! A landed file without a record (a node killed, or presumed dead, after
//! landing and before its ack) is inside its node's tree and verified
//! against its source; it is not a loss or a duplicate result, but it is
//! counted and reported (`unrecorded_copies`), because it takes space.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::Value;
use ubackup_common::DeadLetter;

use crate::ledger::{Entry, Expect};
use crate::world::World;

/// One record in the SQLite catalog.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub create_time_ms: i64,
    /// When the node made the result (unix ms).
    pub rsync_time_ms: i64,
    pub node: String,
    pub succeed: i64,
    pub file_path: Option<String>,
    pub filename: Option<String>,
    pub size: i64,
    pub checksum: Option<String>,
    pub illegal: Option<String>,
    pub log: String,
    pub attempts: Option<i64>,
}

/// A dead letter found in one of the world's `:dead` lists.
#[derive(Debug, Clone)]
pub struct Dead {
    pub list: String,
    pub letter: DeadLetter,
    /// `create_time` in seconds, from the payload (a message, or a result).
    pub id: Option<i64>,
}

/// What the check found. `assert_ok` turns violations into a panic.
#[derive(Debug, Default)]
pub struct Verdict {
    pub messages: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub dead_with_reason: usize,
    pub dead_without_reason: Vec<String>,
    pub unexpected: Vec<String>,
    pub es_sqlite_mismatch: Vec<String>,
    /// Lists that should be empty and are not: (key, length).
    pub not_empty: Vec<(String, usize)>,
    /// Recorded files that are missing, not regular, or differ.
    pub bad_files: Vec<String>,
    pub outside: Vec<PathBuf>,
    pub unrecorded_copies: Vec<PathBuf>,
    /// Entries left in a running node's temp area.
    pub tmp_leftovers: Vec<PathBuf>,
    /// Files a node set aside because they failed their checksum
    /// (`server_root_path/.ubackup-quarantine/<node>/`): never final.
    pub quarantined: Vec<PathBuf>,
    /// Copies beyond the first (`copies` > 1) found on their running
    /// node's disk, in its destination tree, matching the record.
    pub copies_verified: usize,
    pub landed: usize,
    pub failure_results: usize,
    pub waited: Duration,
    /// Log lines about the lost / duplicated messages, and redis-server's
    /// warnings, printed with a violation.
    pub diagnosis: String,
}

impl Verdict {
    pub fn violations(&self, allow_unrecorded: bool) -> Vec<String> {
        let mut v = Vec::new();
        let mut add = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                v.push(format!(
                    "{what} ({}): {}",
                    items.len(),
                    items
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        };
        add("lost", self.lost.clone());
        add("duplicated", self.duplicated.clone());
        add(
            "dead letter without a reason",
            self.dead_without_reason.clone(),
        );
        add("not what the case expected", self.unexpected.clone());
        add("SQLite and ES disagree", self.es_sqlite_mismatch.clone());
        add(
            "lists not empty",
            self.not_empty
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect(),
        );
        add("bad landed files", self.bad_files.clone());
        add(
            "files outside a destination tree",
            self.outside
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
        add(
            "temp leftovers of running nodes",
            self.tmp_leftovers
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        );
        if !allow_unrecorded {
            add(
                "landed copies without a record",
                self.unrecorded_copies
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            );
        }
        v
    }

    /// Adds the numbers to the suite's tally, then panics on a violation.
    /// Call it once per world, on its last verdict (the ledger grows).
    pub fn assert_ok(&self, allow_unrecorded: bool) {
        crate::tally::add(&crate::tally::Tally {
            messages: self.messages as u64,
            lost: self.lost.len() as u64,
            duplicated: self.duplicated.len() as u64,
            dead_with_reason: self.dead_with_reason as u64,
            outside: self.outside.len() as u64,
            unrecorded_copies: self.unrecorded_copies.len() as u64,
            copies_verified: self.copies_verified as u64,
            ..Default::default()
        });
        self.assert_clean(allow_unrecorded);
    }

    /// Panics on a violation, without counting (an intermediate check).
    pub fn assert_clean(&self, allow_unrecorded: bool) {
        let v = self.violations(allow_unrecorded);
        if !v.is_empty() && !self.diagnosis.is_empty() {
            eprintln!(
                "diagnosis (log lines naming the lost or duplicated messages):\n{}",
                self.diagnosis
            );
        }
        assert!(
            v.is_empty(),
            "invariant violated:\n  {}\n{self}",
            v.join("\n  ")
        );
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "messages: {}, landed: {}, failure results: {}, lost: {}, duplicated: {}, dead-lettered with reason: {}, files outside: {}, unrecorded copies: {}, copies verified: {}, quiet after {:.1} s",
            self.messages,
            self.landed,
            self.failure_results,
            self.lost.len(),
            self.duplicated.len(),
            self.dead_with_reason,
            self.outside.len(),
            self.unrecorded_copies.len(),
            self.copies_verified,
            self.waited.as_secs_f64()
        )
    }
}

/// Options of the quiet wait.
pub struct WaitQuiet {
    pub deadline: Duration,
}

impl World {
    pub fn sqlite_rows(&self) -> Vec<Row> {
        let path = self.catalog_path();
        if !path.exists() {
            return Vec::new();
        }
        let Ok(db) = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return Vec::new();
        };
        let _ = db.busy_timeout(Duration::from_secs(5));
        let Ok(mut st) = db.prepare(
            "SELECT id, create_time, node, succeed, file_path, filename, size, checksum, illegal, log, attempts, rsync_time FROM backups",
        ) else {
            return Vec::new();
        };
        st.query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                create_time_ms: r.get(1)?,
                node: r.get(2)?,
                succeed: r.get(3)?,
                file_path: r.get(4)?,
                filename: r.get(5)?,
                size: r.get(6)?,
                checksum: r.get(7)?,
                illegal: r.get(8)?,
                log: r.get(9)?,
                attempts: r.get(10)?,
                rsync_time_ms: r.get(11)?,
            })
        })
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
    }

    /// Every dead letter of the world's lists.
    pub fn dead_letters(&self) -> Vec<Dead> {
        let mut c = self.conn();
        let mut out = Vec::new();
        for list in [&self.hi, &self.lo, &self.results] {
            let key = self.keys.dead(list);
            let raw: Vec<Vec<u8>> = c.lrange(&key, 0, -1).unwrap_or_default();
            for r in raw {
                let text = String::from_utf8_lossy(&r).into_owned();
                let Ok(letter) = serde_json::from_str::<DeadLetter>(&text) else {
                    out.push(Dead {
                        list: key.clone(),
                        letter: DeadLetter {
                            payload: text,
                            reason: String::new(),
                            time: 0,
                            node: String::new(),
                            queue: list.clone(),
                        },
                        id: None,
                    });
                    continue;
                };
                let v: Value = serde_json::from_str(&letter.payload).unwrap_or(Value::Null);
                let ct = v.get("create_time").and_then(Value::as_i64);
                // a result carries milliseconds, a backup message seconds
                let id = if list == &self.results {
                    ct.map(|ms| ms / 1000)
                } else {
                    ct
                };
                out.push(Dead {
                    list: key.clone(),
                    letter,
                    id,
                });
            }
        }
        out
    }

    /// Keys that must be empty once the system is quiet, with their length.
    pub fn busy_lists(&self) -> Vec<(String, usize)> {
        let mut c = self.conn();
        let mut keys = vec![self.hi.clone(), self.lo.clone(), self.results.clone()];
        for pat in [
            format!("{}inflight:*", self.prefix),
            format!("{}outbox:*", self.prefix),
        ] {
            let found: Vec<String> = c
                .scan_match::<_, String>(&pat)
                .map(|it| it.flatten().collect())
                .unwrap_or_default();
            keys.extend(found);
        }
        keys.into_iter()
            .filter_map(|k| {
                let n: usize = c.llen(&k).unwrap_or(0);
                (n > 0).then_some((k, n))
            })
            .collect()
    }

    fn accounted(&self, entries: &[Entry], rows: &[Row], dead: &[Dead]) -> usize {
        let ids: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.create_time_ms / 1000)
            .chain(dead.iter().filter_map(|d| d.id))
            .collect();
        entries
            .iter()
            .filter(|e| match e.id {
                Some(id) => ids.contains(&id),
                None => dead
                    .iter()
                    .any(|d| d.letter.payload.as_bytes() == e.payload.as_slice()),
            })
            .count()
    }

    /// Waits until every ledger message is accounted for and every list is
    /// empty (or the deadline passes), then checks the invariant.
    pub fn wait_quiet(&self, opts: WaitQuiet) -> Verdict {
        let started = Instant::now();
        let end = started + opts.deadline;
        loop {
            let entries = self.ledger.entries();
            let rows = self.sqlite_rows();
            let dead = self.dead_letters();
            let done = self.accounted(&entries, &rows, &dead) == entries.len()
                && self.busy_lists().is_empty();
            if done || Instant::now() > end {
                if done {
                    // one more look after a moment: nothing may still move
                    std::thread::sleep(Duration::from_millis(300));
                }
                let mut v = self.verdict();
                v.waited = started.elapsed();
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The invariant check, now.
    pub fn verdict(&self) -> Verdict {
        let entries = self.ledger.entries();
        let rows = self.sqlite_rows();
        let dead = self.dead_letters();
        let docs = self.es.docs(&self.es_index);
        let mut v = Verdict {
            messages: entries.len(),
            ..Default::default()
        };

        let mut rows_by: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
        for r in &rows {
            rows_by.entry(r.create_time_ms / 1000).or_default().push(r);
        }
        let mut docs_by: BTreeMap<i64, Vec<&String>> = BTreeMap::new();
        for (id, d) in &docs {
            if let Some(ct) = d.get("create_time").and_then(Value::as_i64) {
                docs_by.entry(ct / 1000).or_default().push(id);
            }
        }
        for d in &dead {
            if d.letter.reason.trim().is_empty() {
                v.dead_without_reason
                    .push(d.letter.payload.chars().take(80).collect());
            }
        }
        for e in &entries {
            let name = match e.id {
                Some(id) => format!(
                    "{id}:{}",
                    e.filename
                        .as_deref()
                        .map(ubackup_common::validate::printable)
                        .unwrap_or_default()
                ),
                None => format!(
                    "payload {:?}",
                    String::from_utf8_lossy(&e.payload)
                        .chars()
                        .take(40)
                        .collect::<String>()
                ),
            };
            let (sql, es): (Vec<&Row>, Vec<&String>) = match e.id {
                Some(id) => (
                    rows_by.get(&id).cloned().unwrap_or_default(),
                    docs_by.get(&id).cloned().unwrap_or_default(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            let deads: Vec<&Dead> = dead
                .iter()
                .filter(|d| match e.id {
                    Some(id) => d.id == Some(id),
                    None => d.letter.payload.as_bytes() == e.payload.as_slice(),
                })
                .collect();
            let dead_msg = deads
                .iter()
                .filter(|d| d.list != self.keys.dead(&self.results))
                .count();
            let dead_result = deads.len() - dead_msg;
            if sql.is_empty() && es.is_empty() && deads.is_empty() {
                v.lost.push(name.clone());
                continue;
            }
            if sql.len() > 1 || es.len() > 1 || dead_msg > 1 || dead_result > 1 {
                v.duplicated.push(format!(
                    "{name}: sqlite {} es {} dead {}",
                    sql.len(),
                    es.len(),
                    deads.len()
                ));
            }
            v.dead_with_reason += deads
                .iter()
                .filter(|d| !d.letter.reason.trim().is_empty())
                .count()
                .min(1);
            // ES holds what SQLite holds, except results ES refused (dead-lettered)
            let sql_ids: BTreeSet<&str> = sql.iter().map(|r| r.id.as_str()).collect();
            let es_ids: BTreeSet<&str> = es.iter().map(|s| s.as_str()).collect();
            if sql_ids != es_ids && dead_result == 0 {
                v.es_sqlite_mismatch
                    .push(format!("{name}: sqlite {sql_ids:?} es {es_ids:?}"));
            }
            let succeeded = sql.iter().any(|r| r.succeed == 1);
            if succeeded {
                v.landed += 1;
            } else if !sql.is_empty() {
                v.failure_results += 1;
            }
            let ok = match e.expect {
                Expect::Landed => sql.len() == 1 && succeeded,
                Expect::FailureResult => sql.len() == 1 && !succeeded && dead_msg == 0,
                Expect::DeadLetter => dead_msg == 1,
                Expect::LandedOrDead => succeeded || dead_msg == 1,
                Expect::Any => true,
            };
            if !ok {
                let why: Vec<String> = sql
                    .iter()
                    .map(|r| {
                        format!(
                            "succeed={} log={}",
                            r.succeed,
                            r.log.chars().take(160).collect::<String>()
                        )
                    })
                    .collect();
                v.unexpected.push(format!(
                    "{name}: expected {:?}, got records {why:?}, dead letters {}",
                    e.expect,
                    deads.len()
                ));
            }
        }
        v.not_empty = self.busy_lists();
        self.check_files(&rows, &mut v);
        for name in v.lost.iter().chain(&v.duplicated) {
            let file = name.split(':').nth(1).unwrap_or("").to_string();
            if !file.is_empty() {
                v.diagnosis.push_str(&self.trace(&file));
            }
        }
        if !v.lost.is_empty() || !v.duplicated.is_empty() {
            v.diagnosis.push_str(&self.trace("AOF"));
            v.diagnosis.push_str(&self.trace("fsync"));
        }
        v
    }

    fn check_files(&self, rows: &[Row], v: &mut Verdict) {
        let dests: BTreeMap<String, PathBuf> = self
            .nodes
            .keys()
            .map(|id| (id.clone(), self.dest(id)))
            .collect();
        let mut recorded: BTreeSet<PathBuf> = BTreeSet::new();
        for r in rows
            .iter()
            .filter(|r| r.succeed == 1 && !self.lost.contains(&r.node))
        {
            let (Some(dir), Some(name)) = (&r.file_path, &r.filename) else {
                v.bad_files.push(format!(
                    "{}: success record without file_path/filename",
                    r.id
                ));
                continue;
            };
            let base = name.rsplit('/').next().unwrap_or(name);
            let path = Path::new(dir).join(base);
            let inside = dests
                .get(&r.node)
                .is_some_and(|d| path.parent() == Some(d.as_path()));
            if !inside {
                v.bad_files.push(format!(
                    "{}: {} is not in node {}'s destination tree",
                    r.id,
                    path.display(),
                    r.node
                ));
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_file() => {
                    if m.len() as i64 != r.size {
                        v.bad_files.push(format!(
                            "{}: size {} != recorded {}",
                            path.display(),
                            m.len(),
                            r.size
                        ));
                    }
                    let sum = ubackup_common::fsutil::blake3_file(&path).unwrap_or_default();
                    if Some(&sum) != r.checksum.as_ref() {
                        v.bad_files.push(format!(
                            "{}: checksum {sum} != recorded {:?}",
                            path.display(),
                            r.checksum
                        ));
                    }
                }
                Ok(m) => v.bad_files.push(format!(
                    "{}: not a regular file ({:?})",
                    path.display(),
                    m.file_type()
                )),
                Err(e) => v.bad_files.push(format!("{}: {e}", path.display())),
            }
            recorded.insert(path);
        }
        self.check_copies(rows, &dests, &mut recorded, v);
        // every entry of the world directory
        let base = self.cluster.dir.path().to_path_buf();
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(ft) = e.file_type() else { continue };
                let rel = p.strip_prefix(&base).unwrap_or(&p).to_path_buf();
                let first = rel
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .unwrap_or_default();
                match first.as_str() {
                    // the world's own files
                    "src" | "etc" | "logs" | "spy" => continue,
                    f if f.starts_with("catalog.db") => continue,
                    "nodes" => {}
                    // attack/ and anything unknown: nothing may be here
                    _ => {
                        if ft.is_dir() && first == "attack" && rel.components().count() == 1 {
                            stack.push(p);
                        } else {
                            v.outside.push(p);
                        }
                        continue;
                    }
                }
                if ft.is_dir() {
                    stack.push(p);
                    continue;
                }
                self.classify_node_entry(&p, &rel, &recorded, v);
            }
        }
        // temp areas of running nodes: only the (empty) pgid directory
        for (id, n) in &self.nodes {
            if n.proc.as_ref().is_none_or(|p| !crate::sig::alive(p.pid())) {
                continue;
            }
            let tmp = self.node_tmp(id);
            if let Ok(rd) = std::fs::read_dir(&tmp) {
                for e in rd.flatten() {
                    if e.file_name() == "pgid" {
                        if let Ok(r) = std::fs::read_dir(e.path()) {
                            v.tmp_leftovers.extend(r.flatten().map(|x| x.path()));
                        }
                    } else {
                        v.tmp_leftovers.push(e.path());
                    }
                }
            }
        }
    }

    /// The copies the nodes recorded (`copies` table), on nodes that are
    /// running: each must be in its node's destination tree, a regular
    /// file of the recorded size and checksum. A copy on a node that is
    /// not running (a node the case lost on purpose) is not checked.
    fn check_copies(
        &self,
        rows: &[Row],
        dests: &BTreeMap<String, PathBuf>,
        recorded: &mut BTreeSet<PathBuf>,
        v: &mut Verdict,
    ) {
        let Ok(c) = rusqlite::Connection::open_with_flags(
            self.catalog_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return;
        };
        let Ok(mut st) =
            c.prepare("SELECT backup_id, node, file_path FROM copies WHERE state = 'ok'")
        else {
            return; // a catalog from before copies existed
        };
        let copies: Vec<(String, String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map(|it| it.flatten().collect())
            .unwrap_or_default();
        for (id, node, file) in copies {
            let running = self
                .nodes
                .get(&node)
                .and_then(|n| n.proc.as_ref())
                .is_some_and(|p| crate::sig::alive(p.pid()));
            if !running {
                continue;
            }
            let path = PathBuf::from(&file);
            let Some(r) = rows.iter().find(|r| r.id == id) else {
                v.bad_files
                    .push(format!("copy {file} on {node}: no record {id}"));
                continue;
            };
            if dests
                .get(&node)
                .is_none_or(|d| path.parent() != Some(d.as_path()))
            {
                v.bad_files.push(format!(
                    "copy {file} is not in node {node}'s destination tree"
                ));
                continue;
            }
            let ok = std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.file_type().is_file() && m.len() as i64 == r.size)
                && ubackup_common::fsutil::blake3_file(&path).ok() == r.checksum;
            if ok {
                v.copies_verified += 1;
            } else {
                v.bad_files.push(format!(
                    "copy {file} on {node} is missing or differs from record {id}"
                ));
            }
            recorded.insert(path);
        }
    }

    /// A non-directory entry below `nodes/`.
    fn classify_node_entry(
        &self,
        p: &Path,
        rel: &Path,
        recorded: &BTreeSet<PathBuf>,
        v: &mut Verdict,
    ) {
        // nodes/<id>/root/…
        let comps: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if comps.len() < 4 || comps[2] != "root" {
            v.outside.push(p.to_path_buf());
            return;
        }
        let id = &comps[1];
        let in_root = &comps[3..];
        match in_root.first().map(String::as_str) {
            // the node's temp area is checked separately (never final)
            Some(".ubackup-tmp") => {}
            Some(".ubackup-quarantine") if comps.get(4) == Some(id) => {
                v.quarantined.push(p.to_path_buf())
            }
            Some("mysql") if p.parent() == Some(self.dest(id).as_path()) => {
                if recorded.contains(p) {
                    return;
                }
                let name = p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                let meta = std::fs::symlink_metadata(p);
                let src = self.src_dir().join(&name);
                let same = meta.as_ref().is_ok_and(|m| m.file_type().is_file())
                    && ubackup_common::fsutil::blake3_file(p).ok()
                        == ubackup_common::fsutil::blake3_file(&src).ok();
                if same {
                    v.unrecorded_copies.push(p.to_path_buf());
                } else {
                    v.bad_files.push(format!(
                        "{}: landed without a record and differs from its source",
                        p.display()
                    ));
                }
            }
            _ => v.outside.push(p.to_path_buf()),
        }
    }
}
