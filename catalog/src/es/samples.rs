//! The reporter's samples on Elasticsearch: `<index>-samples`, one
//! document per sample, for Kibana.

use super::mapping::{samples_index, samples_mappings};
use super::EsCatalog;
use crate::samples::Sample;
use crate::CatalogError;
use serde_json::{json, Value};

impl EsCatalog {
    /// Indexes samples into `<index>-samples` (created with its mapping if
    /// missing). Any item ES refuses fails the call, so the caller keeps
    /// the samples and hands them over again next time.
    pub async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts};
        use elasticsearch::BulkParts;
        if samples.is_empty() {
            return Ok(());
        }
        let index = samples_index(self.index());
        let store = format!("es {index}");
        let unavailable = |reason: String| CatalogError::unavailable(store.clone(), reason);
        let exists = self
            .client()
            .indices()
            .exists(IndicesExistsParts::Index(&[&index]))
            .send()
            .await
            .map_err(|e| unavailable(format!("HEAD /{index}: {e}")).because(e))?;
        match exists.status_code().as_u16() {
            200 => {}
            404 => {
                let resp = self
                    .client()
                    .indices()
                    .create(IndicesCreateParts::Index(&index))
                    .body(json!({ "mappings": samples_mappings() }))
                    .send()
                    .await
                    .map_err(|e| unavailable(format!("PUT /{index}: {e}")).because(e))?;
                let status = resp.status_code().as_u16();
                let text = resp.text().await.unwrap_or_default();
                if !(200..300).contains(&status)
                    && !text.contains("resource_already_exists_exception")
                {
                    return Err(unavailable(format!(
                        "PUT /{index}: HTTP {status}: {}",
                        head(&text)
                    )));
                }
            }
            s => return Err(unavailable(format!("HEAD /{index}: HTTP {s}"))),
        }
        let mut lines: Vec<String> = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            lines.push(json!({"index": {"_id": s.doc_id()}}).to_string());
            lines.push(s.es_document().to_string());
        }
        let resp = self
            .client()
            .bulk(BulkParts::Index(&index))
            .body(lines)
            .send()
            .await
            .map_err(|e| unavailable(format!("POST /{index}/_bulk: {e}")).because(e))?;
        let status = resp.status_code().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| unavailable(format!("POST /{index}/_bulk: {e}")).because(e))?;
        if !(200..300).contains(&status) {
            return Err(unavailable(format!(
                "POST /{index}/_bulk: HTTP {status}: {}",
                head(&text)
            )));
        }
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            unavailable(format!("POST /{index}/_bulk: unreadable answer ({e})")).because(e)
        })?;
        if body["errors"].as_bool() == Some(true) {
            let first = body["items"]
                .as_array()
                .and_then(|items| items.iter().find(|it| it["index"]["error"].is_object()))
                .map(|it| it["index"]["error"].to_string())
                .unwrap_or_default();
            return Err(unavailable(format!(
                "POST /{index}/_bulk: some samples were refused: {}",
                head(&first)
            )));
        }
        Ok(())
    }
}

fn head(s: &str) -> String {
    s.chars().take(300).collect()
}
