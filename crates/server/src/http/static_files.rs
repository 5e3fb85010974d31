//! The built app (`--static-dir`), with `index.html` for unknown non-API paths, and the JSON 404
//! and 405 answers of everything else.

use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use persist_protocol::ErrorCode;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::AppState;
use crate::error::ApiError;

/// The static file service.
#[derive(Debug, Clone)]
pub(crate) struct StaticFiles {
    service: ServeDir<ServeFile>,
}

impl StaticFiles {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { service: ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))) }
    }
}

/// API paths never fall back to the app.
fn is_api_path(path: &str) -> bool {
    ["/v1", "/api", "/health", "/metrics", "/dev-config.json"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// Unknown routes: the app's files for GET/HEAD of non-API paths, else 404 JSON.
pub(super) async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    if let (Some(files), true, false) = (&state.static_files, is_read, is_api_path(&path)) {
        match files.service.clone().oneshot(request).await {
            Ok(response) => return response.map(Body::new),
            Err(never) => match never {},
        }
    }
    ApiError::not_found(format!("no route for {path}")).into_response()
}

/// 405 as JSON.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
}

#[cfg(test)]
mod tests {
    use super::is_api_path;

    #[test]
    fn api_paths() {
        assert!(is_api_path("/v1/nope"));
        assert!(is_api_path("/api/storage/x"));
        assert!(is_api_path("/health"));
        assert!(!is_api_path("/files/v1"));
        assert!(!is_api_path("/apiary"));
    }
}
