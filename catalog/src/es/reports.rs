//! [`Reports`] on Elasticsearch: the generic defaults, built on the
//! `Catalog` queries.

use super::EsCatalog;
use crate::record::CatalogRecord;
use crate::reports::Reports;
use crate::samples::Sample;
use crate::CatalogError;
use async_trait::async_trait;

#[async_trait]
impl Reports for EsCatalog {
    async fn verify_failures(&self) -> Result<Vec<CatalogRecord>, CatalogError> {
        crate::Retention::verify_problems(self, None).await
    }

    async fn store_samples(&self, samples: &[Sample]) -> Result<(), CatalogError> {
        EsCatalog::store_samples(self, samples).await
    }
}
