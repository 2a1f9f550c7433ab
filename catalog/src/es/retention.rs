//! [`Retention`] on Elasticsearch: partial-document updates through
//! `_bulk` (visible to searches when they return) and paged scans.

use super::EsCatalog;
use crate::retention::{illegal_after, Retention, VerifyOutcome};
use crate::{Catalog, CatalogError};
use async_trait::async_trait;
use elasticsearch::params::Refresh;
use elasticsearch::BulkParts;
use serde_json::{json, Value};

impl EsCatalog {
    /// One partial-document update, visible to searches when it returns.
    async fn update_doc(&self, id: &str, doc: Value) -> Result<bool, CatalogError> {
        let lines = vec![
            json!({"update": {"_id": id}}).to_string(),
            json!({ "doc": doc }).to_string(),
        ];
        let resp = self
            .client()
            .bulk(BulkParts::Index(self.index()))
            .refresh(Refresh::WaitFor)
            .body(lines)
            .send()
            .await
            .map_err(|e| {
                CatalogError::unavailable(self.describe(), format!("update {id}: {e}")).because(e)
            })?;
        let status = resp.status_code().as_u16();
        let text = resp.text().await.map_err(|e| {
            CatalogError::unavailable(self.describe(), format!("update {id}: {e}")).because(e)
        })?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let item = &body["items"][0]["update"];
        match (status, item["status"].as_u64()) {
            (200..=299, Some(200..=299)) => Ok(true),
            (200..=299, Some(404)) => Ok(false),
            (200..=299, Some(429 | 500..=599)) | (429 | 500..=599, _) => {
                Err(CatalogError::unavailable(
                    self.describe(),
                    format!(
                        "update {id}: {}",
                        crate::es::bulk::error_text(&item["error"])
                    ),
                ))
            }
            _ => Err(CatalogError::rejected(
                self.describe(),
                format!(
                    "update {id}: HTTP {status}: {}",
                    text.chars().take(300).collect::<String>()
                ),
            )),
        }
    }
}

#[async_trait]
impl Retention for EsCatalog {
    async fn set_pinned(&self, id: &str, pinned: bool) -> Result<bool, CatalogError> {
        self.update_doc(id, json!({ "pinned": pinned })).await
    }

    async fn mark_deleted(&self, id: &str, at_ms: i64) -> Result<(), CatalogError> {
        match self.get(id).await? {
            Some(r) if r.meta.deleted_at.is_some() => Ok(()),
            Some(_) => self
                .update_doc(id, json!({ "deleted_at": at_ms }))
                .await
                .map(|_| ()),
            None => Ok(()),
        }
    }

    async fn record_verify(
        &self,
        id: &str,
        outcome: &VerifyOutcome,
        at_ms: i64,
    ) -> Result<(), CatalogError> {
        let Some(cur) = self.get(id).await? else {
            return Ok(());
        };
        let illegal = illegal_after(cur.result.illegal.as_deref(), outcome);
        self.update_doc(
            id,
            json!({ "verified_at": at_ms, "verify_state": outcome.state(), "illegal": illegal }),
        )
        .await
        .map(|_| ())
    }
}
