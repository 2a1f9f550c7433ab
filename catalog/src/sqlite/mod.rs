//! The embedded SQLite catalog (the default store).
//!
//! WAL mode, so the `sqlite3` CLI, the reporter and restore can read while
//! the indexer writes. `synchronous = FULL`: the indexer acknowledges results
//! in Redis right after a commit, so a commit must survive a power cut too.
//! Every call runs on `spawn_blocking`; the two connections (one writer,
//! one reader) sit behind `std::sync::Mutex`es that are never held across
//! an `.await`.
//!
//! Layout: this module is the store and its [`Catalog`] queries;
//! [`schema`] every table; `retention`, `reports`, `samples`, `web_stats`
//! the other traits and the reporter's time series, each in SQL.

pub mod schema;

mod reports;
mod retention;
mod samples;
mod web_stats;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use ubackup_common::message::now_ms;
use ubackup_common::ResultRecord;

use crate::record::{
    BackupQuery, CatalogRecord, InstanceEntry, InstanceKey, RecordMeta, StoreOutcome,
};
use crate::{Catalog, CatalogError, ErrorSource};

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteCatalog {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

/// Columns of `backups` written from a record, in bind order.
const RECORD_COLUMNS: &[&str] = &[
    "id",
    "server_id",
    "type",
    "instance",
    "game_id",
    "game_name",
    "op_id",
    "interval",
    "game_server_ip",
    "back_server_ip",
    "node",
    "node_id",
    "file_path",
    "filename",
    "create_time",
    "rsync_time",
    "size",
    "last_all_filename",
    "last_all_time",
    "succeed",
    "log",
    "duration_ms",
    "attempts",
    "bytes_per_sec",
    "verify",
    "checksum",
    "illegal",
    "encryption",
];

/// Columns read back into a [`CatalogRecord`], in `row_to_record` order.
pub(crate) const SELECT_COLUMNS: &str =
    "id, server_id, type, instance, game_id, game_name, op_id, interval, \
     game_server_ip, back_server_ip, node_id, file_path, filename, create_time, rsync_time, size, \
     last_all_filename, last_all_time, succeed, log, duration_ms, attempts, bytes_per_sec, verify, \
     checksum, illegal, indexed_at, deleted_at, pinned, verified_at, verify_state, encryption";

/// The record's copies as one JSON column, read after [`SELECT_COLUMNS`]
/// (by `row_to_record` when the row has it). A separate constant because
/// some queries prefix every column of `SELECT_COLUMNS` with a table alias.
pub(crate) const COPIES_COLUMN: &str =
    "(SELECT json_group_array(json_object('node', c.node, 'ip', c.ip, 'zone', c.zone, \
     'file_path', c.file_path, 'state', c.state, 'recorded_at', c.recorded_at, \
     'verified_at', c.verified_at)) FROM copies c WHERE c.backup_id = backups.id)";

const INSTANCE_COLUMNS: &str =
    "server_id, type, instance, game_id, game_name, interval, first_seen_ms, \
     last_attempt_ms, last_success_ms, last_error, last_error_ms, last_node";

fn upsert_backup_sql() -> String {
    let cols = RECORD_COLUMNS.join(", ");
    let marks: Vec<String> = (1..=RECORD_COLUMNS.len() + 1)
        .map(|i| format!("?{i}"))
        .collect();
    // indexed_at is the last bind; on conflict only result columns change,
    // never the catalog-owned ones (deleted_at, pinned, verified_at, …).
    // `illegal` is shared: verify writes its finding there (with the
    // VERIFY_ILLEGAL_PREFIX). A replayed result must not clear that mark,
    // or restore would offer a backup verify found corrupt.
    let prefix = crate::retention::VERIFY_ILLEGAL_PREFIX;
    debug_assert!(!prefix.contains('\''));
    let updates: Vec<String> = RECORD_COLUMNS
        .iter()
        .skip(1)
        .map(|c| match *c {
            "illegal" => format!(
                "illegal = CASE WHEN substr(backups.illegal, 1, {}) = '{prefix}' \
                 THEN backups.illegal ELSE excluded.illegal END",
                prefix.len()
            ),
            c => format!("{c} = excluded.{c}"),
        })
        .collect();
    format!(
        "INSERT INTO backups ({cols}, indexed_at) VALUES ({}) ON CONFLICT(id) DO UPDATE SET {}",
        marks.join(", "),
        updates.join(", ")
    )
}

impl SqliteCatalog {
    /// Opens (creating if needed) the database at `path` and migrates it.
    /// Blocking; call before or outside the async runtime, or from
    /// `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let store = format!("sqlite {}", path.display());
        let fatal = |what: &str, e: ErrorSource| {
            CatalogError::fatal(store.clone(), format!("{what}: {e}")).because(e)
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fatal(&format!("cannot create {}", dir.display()), e.into()))?;
        }
        let mut writer = Connection::open(path).map_err(|e| fatal("cannot open", e.into()))?;
        configure(&writer).map_err(|e| fatal("cannot configure", e.into()))?;
        let found =
            schema::migrate(&mut writer).map_err(|e| fatal("schema migration failed", e.into()))?;
        if found > schema::latest() {
            return Err(CatalogError::fatal(
                store,
                format!("unsupported schema: database schema version {found} is newer than this build's {}; upgrade ubackup", schema::latest()),
            ));
        }
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| fatal("cannot open a reader", e.into()))?;
        reader
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| fatal("cannot configure", e.into()))?;
        Ok(SqliteCatalog {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, CatalogError> {
        let conn = self.writer.lock().expect("sqlite writer lock");
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs `f` on the writer connection off the async runtime. Later
    /// issues (prune, verify, reporter samples) use this for their own
    /// statements.
    pub async fn with_writer<T, F>(&self, f: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.writer.clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().expect("sqlite writer lock");
            f(&mut c)
        })
        .await
        .map_err(|e| self.fatal(format!("writer task failed: {e}")).because(e))?
        .map_err(|e| this.err(e))
    }

    /// Runs `f` on the read-only connection off the async runtime.
    pub async fn with_reader<T, F>(&self, f: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.reader.clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().expect("sqlite reader lock");
            f(&c)
        })
        .await
        .map_err(|e| self.fatal(format!("reader task failed: {e}")).because(e))?
        .map_err(|e| this.err(e))
    }

    /// Nodes seen in results: (node, ip, first_seen_ms, last_seen_ms, results).
    pub async fn nodes(&self) -> Result<Vec<(String, String, i64, i64, i64)>, CatalogError> {
        self.with_reader(|c| {
            let mut st = c.prepare(
                "SELECT node, ip, first_seen_ms, last_seen_ms, results FROM nodes ORDER BY node",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })
        .await
    }

    fn fatal(&self, reason: String) -> CatalogError {
        CatalogError::fatal(self.describe(), reason)
    }

    /// Busy/locked/full/I-O errors may pass; anything else will not.
    fn err(&self, e: rusqlite::Error) -> CatalogError {
        let transient = matches!(
            e.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
            )
        );
        if transient {
            CatalogError::unavailable(self.describe(), e.to_string()).because(e)
        } else {
            CatalogError::fatal(self.describe(), e.to_string()).because(e)
        }
    }
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(5))?;
    // journal_mode answers with a row; read it rather than execute().
    // Switching a fresh file to WAL takes an exclusive lock, and SQLite
    // answers BUSY there without calling the busy handler when another
    // process is switching it at the same moment (every node and the
    // indexer on a cluster's first start): retry for up to the busy timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mode: String = loop {
        match c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {mode}, WAL expected"
        )));
    }
    c.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// Writes a batch in one transaction: rows, registry, nodes.
fn store_batch(conn: &mut Connection, batch: &[CatalogRecord]) -> rusqlite::Result<()> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut up = tx.prepare_cached(&upsert_backup_sql())?;
        for rec in batch {
            let r = &rec.result;
            up.execute(params![
                rec.id,
                r.server_id,
                r.back_type,
                r.instance,
                r.game_id,
                rec.game_name,
                r.op_id,
                r.interval,
                r.game_server_ip,
                r.back_server_ip,
                rec.node(),
                r.node_id,
                r.file_path,
                r.filename,
                r.create_time,
                r.rsync_time,
                r.size,
                r.last_all_filename,
                r.last_all_time,
                r.succeed,
                r.log,
                r.duration_ms.map(|v| v as i64),
                r.attempts,
                r.bytes_per_sec.map(|v| v as i64),
                r.verify,
                r.checksum,
                r.illegal,
                r.encryption
                    .as_ref()
                    .and_then(|e| serde_json::to_string(e).ok()),
                rec.meta.indexed_at.unwrap_or(now),
            ])?;
        }
        let refs: Vec<&CatalogRecord> = batch.iter().collect();
        for fresh in InstanceEntry::fold(&refs) {
            let mut entry = match read_instance(&tx, &fresh.key)? {
                Some(mut cur) => {
                    cur.merge(&fresh);
                    cur
                }
                None => fresh,
            };
            entry.last_error = entry.last_error.take().map(|e| truncate(e, 4000));
            write_instance(&tx, &entry)?;
        }
        let mut node = tx.prepare_cached(
            "INSERT INTO nodes (node, ip, first_seen_ms, last_seen_ms, results) VALUES (?1, ?2, ?3, ?3, 1) \
             ON CONFLICT(node) DO UPDATE SET ip = excluded.ip, \
               first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms), \
               last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), results = results + 1",
        )?;
        for rec in batch {
            node.execute(params![
                rec.node(),
                rec.result.back_server_ip,
                rec.result.rsync_time
            ])?;
        }
    }
    tx.commit()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn read_instance(c: &Connection, key: &InstanceKey) -> rusqlite::Result<Option<InstanceEntry>> {
    c.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE server_id = ?1 AND type = ?2 AND instance = ?3"
    ))?
    .query_row(params![key.server_id, key.back_type, key.instance], row_to_instance)
    .optional()
}

fn write_instance(c: &Connection, e: &InstanceEntry) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        e.key.server_id,
        e.key.back_type,
        e.key.instance,
        e.game_id,
        e.game_name,
        e.interval,
        e.first_seen_ms,
        e.last_attempt_ms,
        e.last_success_ms,
        e.last_error,
        e.last_error_ms,
        e.last_node,
    ])?;
    Ok(())
}

fn row_to_instance(r: &Row) -> rusqlite::Result<InstanceEntry> {
    Ok(InstanceEntry {
        key: InstanceKey {
            server_id: r.get(0)?,
            back_type: r.get(1)?,
            instance: r.get(2)?,
        },
        game_id: r.get(3)?,
        game_name: r.get(4)?,
        interval: r.get(5)?,
        first_seen_ms: r.get(6)?,
        last_attempt_ms: r.get(7)?,
        last_success_ms: r.get(8)?,
        last_error: r.get(9)?,
        last_error_ms: r.get(10)?,
        last_node: r.get(11)?,
    })
}

pub(crate) fn row_to_record(r: &Row) -> rusqlite::Result<CatalogRecord> {
    let result = ResultRecord {
        server_id: r.get(1)?,
        back_type: r.get(2)?,
        instance: r.get(3)?,
        game_id: r.get(4)?,
        op_id: r.get(6)?,
        interval: r.get(7)?,
        game_server_ip: r.get(8)?,
        back_server_ip: r.get(9)?,
        node_id: r.get(10)?,
        file_path: r.get(11)?,
        filename: r.get(12)?,
        create_time: r.get(13)?,
        rsync_time: r.get(14)?,
        size: r.get(15)?,
        last_all_filename: r.get(16)?,
        last_all_time: r.get(17)?,
        succeed: r.get(18)?,
        log: r.get(19)?,
        duration_ms: r.get::<_, Option<i64>>(20)?.map(|v| v as u64),
        attempts: r.get(21)?,
        bytes_per_sec: r.get::<_, Option<i64>>(22)?.map(|v| v as u64),
        verify: r.get(23)?,
        checksum: r.get(24)?,
        illegal: r.get(25)?,
        run_id: None,
        encryption: r
            .get::<_, Option<String>>(31)?
            .and_then(|t| serde_json::from_str(&t).ok()),
    };
    Ok(CatalogRecord {
        id: r.get(0)?,
        game_name: r.get(5)?,
        result,
        meta: RecordMeta {
            indexed_at: r.get(26)?,
            deleted_at: r.get(27)?,
            pinned: r.get::<_, i64>(28)? != 0,
            verified_at: r.get(29)?,
            verify_state: r.get(30)?,
            copies: if r.as_ref().column_count() > 32 {
                copies_of_json(r.get::<_, Option<String>>(32)?.as_deref())
            } else {
                Vec::new()
            },
        },
    })
}

/// [`COPIES_COLUMN`] back to records, in node order.
fn copies_of_json(text: Option<&str>) -> Vec<crate::CopyRecord> {
    let mut v: Vec<crate::CopyRecord> = text
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    v.sort_by(|a, b| a.node.cmp(&b.node));
    v
}

/// `WHERE …` and its parameters for a [`BackupQuery`].
fn where_clause(q: &BackupQuery) -> (String, Vec<SqlValue>) {
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut add = |cond: &'static str, v: SqlValue| {
        conds.push(cond);
        args.push(v);
    };
    if let Some(v) = q.server_id {
        add("server_id = ?", v.into());
    }
    if let Some(v) = &q.back_type {
        add("type = ?", v.clone().into());
    }
    if let Some(v) = q.instance {
        add("instance = ?", v.into());
    }
    if let Some(v) = q.game_id {
        add("game_id = ?", v.into());
    }
    if let Some(v) = &q.node {
        add("node = ?", v.clone().into());
    }
    if let Some(v) = &q.filename {
        add("filename = ?", v.clone().into());
    }
    if let Some(v) = q.succeeded {
        add("succeed = ?", (v as i64).into());
    }
    if let Some(v) = q.since_ms {
        add("create_time >= ?", v.into());
    }
    if let Some(v) = q.until_ms {
        add("create_time <= ?", v.into());
    }
    if !q.include_deleted {
        conds.push("deleted_at IS NULL");
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (sql, args)
}

#[async_trait]
impl Catalog for SqliteCatalog {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    async fn prepare(&self) -> Result<(), CatalogError> {
        // open() already migrated; check the file is still usable.
        self.with_writer(|c| {
            c.query_row("SELECT COUNT(*) FROM schema_version", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
        })
        .await
    }

    async fn store(&self, batch: &[CatalogRecord]) -> Result<Vec<StoreOutcome>, CatalogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let owned = batch.to_vec();
        let n = owned.len();
        self.with_writer(move |c| store_batch(c, &owned)).await?;
        Ok(vec![StoreOutcome::Stored; n])
    }

    async fn get(&self, id: &str) -> Result<Option<CatalogRecord>, CatalogError> {
        let id = id.to_string();
        self.with_reader(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS}, {COPIES_COLUMN} FROM backups WHERE id = ?1"
            ))?
            .query_row([id], row_to_record)
            .optional()
        })
        .await
    }

    async fn list_backups(&self, q: &BackupQuery) -> Result<Vec<CatalogRecord>, CatalogError> {
        let (cond, mut args) = where_clause(q);
        args.push((q.effective_limit() as i64).into());
        args.push((q.offset as i64).into());
        let sql = format!("SELECT {SELECT_COLUMNS}, {COPIES_COLUMN} FROM backups {cond} ORDER BY create_time DESC, id LIMIT ? OFFSET ?");
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), row_to_record)?;
            rows.collect()
        })
        .await
    }

    async fn instance(&self, key: &InstanceKey) -> Result<Option<InstanceEntry>, CatalogError> {
        let key = key.clone();
        self.with_reader(move |c| read_instance(c, &key)).await
    }

    async fn instances(&self) -> Result<Vec<InstanceEntry>, CatalogError> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY server_id, type, instance"
            ))?;
            let rows = st.query_map([], row_to_instance)?;
            rows.collect()
        })
        .await
    }

    async fn overdue(
        &self,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<Vec<InstanceEntry>, CatalogError> {
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances \
                 WHERE COALESCE(last_success_ms, first_seen_ms) + MAX(interval, 0) * 1000 + ?2 < ?1 \
                 ORDER BY server_id, type, instance"
            ))?;
            let rows = st.query_map(params![now_ms, grace_ms], row_to_instance)?;
            rows.collect()
        })
        .await
    }
}
