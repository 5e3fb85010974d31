//! Errors of the server library and of HTTP answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use persist_protocol::{ErrorBody, ErrorCode};

use crate::storage::StorageError;

/// Why the server could not start, run or create a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is inconsistent (e.g. `--dev` on a non-loopback address).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database could not be opened, migrated or used.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Binding or serving the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// An error answer: a status and an [`ErrorBody`]. Every handler returns this on failure, so every
/// error on the wire is `{"error": "...", "code": "..."}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    body: ErrorBody,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { body: ErrorBody::new(code, message), retry_after_secs: None }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedJson, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            format!("the request took longer than {} s; send it again", limit.as_secs_f64()),
        )
    }

    pub(crate) fn too_slow(limit: std::time::Duration) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            format!(
                "the server took longer than {} s to answer; send it again",
                limit.as_secs_f64()
            ),
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "missing or unknown bearer token")
    }

    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            body: ErrorBody::new(ErrorCode::RateLimited, "too many requests"),
            retry_after_secs: Some(retry_after_secs.max(1)),
        }
    }

    pub(crate) fn code(&self) -> ErrorCode {
        self.body.code
    }

    #[cfg(test)]
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(message) => {
                tracing::warn!(%message, "storage unavailable");
                ApiError::new(ErrorCode::Unavailable, "the database is unavailable")
            }
            StorageError::QuotaExceeded(message) => {
                ApiError::new(ErrorCode::QuotaExceeded, message)
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::new(ErrorCode::Internal, "internal storage error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.body.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
