//! Body extractors whose every failure is a JSON error: 413 past the size limit, 400 for bytes
//! that are not the expected JSON. (axum's own `Json` answers plain text and 415/422.)

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;

/// A JSON body of type `T`. No `Content-Type` is required: old clients do not always send one.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = BodyBytes::from_request(req, state).await?.0?;
        parse(&bytes).map(JsonBody)
    }
}

/// The raw body, or the error reading it would give (so a handler may decide what to do first).
#[derive(Debug)]
pub(crate) struct BodyBytes(pub(crate) Result<Bytes, ApiError>);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(BodyBytes(Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("request body is larger than the server's limit")
            } else {
                ApiError::malformed(format!("cannot read the request body: {rejection}"))
            }
        })))
    }
}

/// Parses JSON (possibly borrowing from `bytes`, as `RawValue`s do), mapping every failure to
/// 400 `malformed_json`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))
}
