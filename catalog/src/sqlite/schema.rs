//! The SQLite schema as numbered migrations: every table and index of the
//! catalog is defined here, the backups and the instance registry (1) and
//! the reporter's disk/queue samples (2), the copies of a backup on other
//! nodes (3).
//!
//! `schema_version` holds the highest migration applied. At open, every
//! later migration runs in its own transaction. To change the schema, append
//! a migration (e.g. `(2, "ALTER TABLE backups ADD COLUMN …; CREATE TABLE IF
//! NOT EXISTS disk_samples (…);")`); never edit an applied one. Statements use
//! `IF NOT EXISTS` so that a half-applied database (crash between statement
//! and version bump cannot happen inside one transaction, but a hand-made
//! table can exist) still opens.

use rusqlite::{Connection, OptionalExtension};

/// (version, SQL). Versions are consecutive from 1.
pub const MIGRATIONS: &[(u32, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4)];

/// The current schema version of this build.
pub fn latest() -> u32 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

const V1: &str = r#"
-- One row per backup result. `id` is ResultRecord::record_id(): a replayed
-- result overwrites its row. Times are unix milliseconds, as on the wire.
CREATE TABLE IF NOT EXISTS backups (
    id                TEXT PRIMARY KEY,
    server_id         INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    instance          INTEGER NOT NULL,
    game_id           INTEGER NOT NULL,
    game_name         TEXT    NOT NULL,
    op_id             INTEGER NOT NULL,
    interval          INTEGER NOT NULL,
    game_server_ip    TEXT    NOT NULL,
    back_server_ip    TEXT    NOT NULL,
    node              TEXT    NOT NULL,   -- node_id, or back_server_ip for original nodes
    node_id           TEXT,
    file_path         TEXT,
    filename          TEXT,
    create_time       INTEGER NOT NULL,
    rsync_time        INTEGER NOT NULL,
    size              INTEGER NOT NULL,
    last_all_filename TEXT    NOT NULL,   -- 'None' when there is no full
    last_all_time     INTEGER NOT NULL,
    succeed           INTEGER NOT NULL,   -- 0 / 1
    log               TEXT    NOT NULL,
    duration_ms       INTEGER,
    attempts          INTEGER,
    bytes_per_sec     INTEGER,
    verify            TEXT,
    checksum          TEXT,
    illegal           TEXT,
    -- catalog-owned columns: a replay never overwrites them
    indexed_at        INTEGER NOT NULL,
    deleted_at        INTEGER,
    pinned            INTEGER NOT NULL DEFAULT 0,
    verified_at       INTEGER,
    verify_state      TEXT
);
CREATE INDEX IF NOT EXISTS backups_by_instance
    ON backups (server_id, type, instance, create_time DESC);
CREATE INDEX IF NOT EXISTS backups_by_time ON backups (create_time);
CREATE INDEX IF NOT EXISTS backups_by_node ON backups (node, create_time);

-- The instance registry (overdue tracking), one row per SERVER_ID:TYPE:INSTANCE.
CREATE TABLE IF NOT EXISTS instances (
    server_id       INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    instance        INTEGER NOT NULL,
    game_id         INTEGER NOT NULL,
    game_name       TEXT    NOT NULL,
    interval        INTEGER NOT NULL,   -- seconds
    first_seen_ms   INTEGER NOT NULL,
    last_attempt_ms INTEGER NOT NULL,
    last_success_ms INTEGER,
    last_error      TEXT,
    last_error_ms   INTEGER,
    last_node       TEXT    NOT NULL,
    PRIMARY KEY (server_id, type, instance)
);

-- Nodes seen in results (the reporter adds its samples next to this).
CREATE TABLE IF NOT EXISTS nodes (
    node          TEXT PRIMARY KEY,
    ip            TEXT    NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    results       INTEGER NOT NULL DEFAULT 0
);
"#;

/// The reporter's time series (see `crate::samples`).
const V2: &str = r#"
-- One row per `ubackup-reporter disk` run on a node. Bytes; unix ms.
CREATE TABLE IF NOT EXISTS disk_samples (
    node       TEXT    NOT NULL,
    time_ms    INTEGER NOT NULL,
    ip         TEXT    NOT NULL,
    path       TEXT    NOT NULL,   -- server_root_path
    total      INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    free       INTEGER NOT NULL,   -- available to unprivileged writers (f_bavail)
    mem_total  INTEGER,
    mem_used   INTEGER,
    load1      REAL,
    cpus       INTEGER,
    PRIMARY KEY (node, time_ms)
);
CREATE INDEX IF NOT EXISTS disk_samples_by_time ON disk_samples (time_ms);

-- One row per list per `ubackup-reporter queue` run.
CREATE TABLE IF NOT EXISTS queue_samples (
    list          TEXT    NOT NULL,   -- the Redis key
    time_ms       INTEGER NOT NULL,
    kind          TEXT    NOT NULL,   -- priority / results / inflight / dead
    queue         TEXT    NOT NULL,   -- the queue the list belongs to
    worker        TEXT,               -- for in-flight lists
    depth         INTEGER NOT NULL,
    oldest_age_ms INTEGER,            -- age of the oldest element, when known
    PRIMARY KEY (list, time_ms)
);
CREATE INDEX IF NOT EXISTS queue_samples_by_time ON queue_samples (time_ms);
"#;

/// The copies of a backup beyond the first (see `crate::copies`). No
/// foreign key on `backup_id`: a replayed result rewrites its `backups`
/// row, and the copies must survive that.
const V3: &str = r#"
CREATE TABLE IF NOT EXISTS copies (
    backup_id   TEXT    NOT NULL,   -- backups.id
    node        TEXT    NOT NULL,   -- node_id of the node holding it
    ip          TEXT    NOT NULL,
    zone        TEXT    NOT NULL,
    file_path   TEXT    NOT NULL,   -- the file on that node
    state       TEXT    NOT NULL,   -- ok / missing / corrupt / lost / deleted
    recorded_at INTEGER NOT NULL,   -- unix ms
    verified_at INTEGER,
    PRIMARY KEY (backup_id, node)
);
CREATE INDEX IF NOT EXISTS copies_by_node ON copies (node, state);
"#;

/// A file the node stored encrypted at rest (`encrypt_to`): the JSON of
/// `ubackup_common::message::Encryption` (format, recipients'
/// fingerprints, ciphertext size and blake3); NULL = stored in plain.
const V4: &str = r#"
ALTER TABLE backups ADD COLUMN encryption TEXT;
"#;

/// Brings `conn` up to [`latest`]. Returns the version it found.
///
/// Several processes (every node, the indexer) open one catalog at once on
/// a fresh start, so the version is read and every step applied inside one
/// `BEGIN IMMEDIATE` transaction: the write lock is taken before the read,
/// and a second opener waits (busy timeout), then finds the schema current.
/// Without it two openers both saw version 3 and the second `ALTER TABLE
/// ... ADD COLUMN` failed with "duplicate column name".
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let found: u32 = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<u32>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [v])?;
    }
    tx.commit()?;
    Ok(found)
}
