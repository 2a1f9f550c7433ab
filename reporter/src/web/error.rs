//! A request that cannot be answered with its page: its status and an
//! HTML error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::html;
use crate::ReporterError;

/// A request that cannot be answered with its page: an HTML error page.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl WebError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            detail: detail.into(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
        }
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::CONFLICT,
            title: "Not possible",
            detail: detail.into(),
        }
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Unavailable",
            detail: detail.into(),
        }
    }
}

impl From<ReporterError> for WebError {
    fn from(e: ReporterError) -> Self {
        tracing::warn!("web page failed: {e}");
        WebError::unavailable(e.to_string())
    }
}

impl From<ubackup_catalog::CatalogError> for WebError {
    fn from(e: ubackup_catalog::CatalogError) -> Self {
        tracing::warn!("web page: catalog: {e}");
        WebError::unavailable(format!("catalog: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let body = html::error_page(self.status, self.title, &self.detail);
        let mut r = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"ubackup\""),
            );
        }
        r
    }
}
