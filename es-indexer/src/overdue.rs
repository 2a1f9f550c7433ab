//! The original's expiring "seen recently" keys: `SERVER_ID:TYPE:INSTANCE`
//! in db 9 (by default), TTL `interval + 3000` s. Existing tooling notices
//! an overdue backup when its key has expired, so every result refreshes it.

use std::time::Duration;

use ubackup_catalog::CatalogRecord;
use ubackup_common::message::now_secs;
use ubackup_common::RedisConn;
use ubackup_common::{Keys, RedisTarget};

pub struct OverdueKeys {
    conn: RedisConn,
    keys: Keys,
    grace: Duration,
    target: String,
}

impl OverdueKeys {
    /// Connects to `db` of the message Redis.
    pub async fn connect(
        redis: &RedisTarget,
        db: i64,
        keys: Keys,
        grace: Duration,
    ) -> redis::RedisResult<Self> {
        let target = redis.with_db(db);
        Ok(OverdueKeys {
            conn: target.manager().await?,
            keys,
            grace,
            target: target.to_string(),
        })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// TTL of the key for a result: `interval + grace` seconds, as the
    /// original sets it. `None` when that window, counted from the
    /// backup's own create_time, has already passed: a result that sat in
    /// a queue for longer than its interval must not make a silent
    /// instance look fresh.
    pub fn ttl_secs(&self, r: &CatalogRecord, now_s: i64) -> Option<u64> {
        let ttl = r.result.interval.max(0) + self.grace.as_secs() as i64;
        let expires_at = r.result.create_time / 1000 + ttl;
        (expires_at > now_s).then_some(ttl.max(1) as u64)
    }

    /// SETs the key of every record (value: the ES document JSON), oldest
    /// first so the newest result of an instance wins. Returns how many
    /// keys were set.
    pub async fn mark(&self, records: &[&CatalogRecord]) -> redis::RedisResult<usize> {
        let now = now_secs();
        let mut sorted: Vec<&&CatalogRecord> = records.iter().collect();
        sorted.sort_by_key(|r| r.result.create_time);
        let mut pipe = redis::pipe();
        let mut n = 0;
        for r in sorted {
            let Some(ttl) = self.ttl_secs(r, now) else {
                tracing::debug!(result = %r.result.label(), "result older than its interval: expiring key left alone");
                continue;
            };
            let key = self
                .keys
                .overdue(r.result.server_id, &r.result.back_type, r.result.instance);
            pipe.cmd("SET")
                .arg(key)
                .arg(r.es_document_json())
                .arg("EX")
                .arg(ttl)
                .ignore();
            n += 1;
        }
        if n > 0 {
            pipe.query_async::<()>(&mut self.conn.clone()).await?;
        }
        Ok(n)
    }
}
