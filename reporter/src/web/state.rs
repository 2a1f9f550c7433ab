//! What the page handlers share: the endpoint's [`App`] and the token
//! check, and the store/Redis handles a page queries.

use super::auth::Auth;
use super::error::WebError;
use crate::shared::App;
use crate::snapshot::Sources;
use std::sync::Arc;
use ubackup_catalog::{Reports, SqliteCatalog};
use ubackup_common::RedisConn;

/// What the page handlers share.
pub(crate) struct Web {
    pub(crate) app: Arc<App>,
    pub(crate) auth: Auth,
}

pub(crate) type WebState = Arc<Web>;

/// Handles cloned out of the shared [`Sources`], so a page does not hold
/// the lock while it queries.
#[derive(Clone)]
pub(crate) struct Handles {
    pub redis: RedisConn,
    /// The Redis holding `message_queue` (and its dead letters).
    pub message_redis: RedisConn,
    pub redis_target: String,
    pub store: Option<Arc<dyn Reports>>,
    pub sqlite: Option<SqliteCatalog>,
    pub store_error: Option<String>,
}

impl Handles {
    /// The store's name, or why there is none.
    pub fn store(&self) -> Result<&Arc<dyn Reports>, WebError> {
        self.store.as_ref().ok_or_else(|| {
            WebError::unavailable(format!(
                "no catalog: {}",
                self.store_error.as_deref().unwrap_or("none configured")
            ))
        })
    }
}

impl Web {
    /// Opens the sources if needed and clones what a page needs.
    pub(crate) async fn handles(&self) -> Result<Handles, WebError> {
        let mut guard = self.app.sources.lock().await;
        if guard.is_none() {
            *guard = Some(Sources::open(self.app.cfg.clone(), true).await?);
        }
        let s = guard.as_ref().expect("just set");
        Ok(Handles {
            redis: s.redis.clone(),
            message_redis: s.message_redis.clone().unwrap_or_else(|| s.redis.clone()),
            redis_target: s.redis_target.to_string(),
            store: s.query_store().cloned(),
            sqlite: s.sqlite.clone(),
            store_error: (!s.store_errors.is_empty()).then(|| s.store_errors.join("; ")),
        })
    }

    /// After a Redis error: reconnect on the next request.
    pub(crate) async fn reset(&self) {
        *self.app.sources.lock().await = None;
    }

    /// A Redis error as a 503 page (and a reconnect next time).
    pub(crate) async fn redis_error(&self, h: &Handles, e: redis::RedisError) -> WebError {
        self.reset().await;
        WebError::unavailable(format!("Redis {} unreachable: {e}", h.redis_target))
    }
}
