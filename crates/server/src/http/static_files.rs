//! The built app (`--static-dir`), with `index.html` for unknown non-API paths, and the JSON 404
//! and 405 answers of everything else.

use std::convert::Infallible;
use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use persist_protocol::ErrorCode;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;
use crate::error::ApiError;

/// The policy of the app's files: no framing (clickjacking), no plugins, no `<base>` from
/// elsewhere. Scripts are not restricted here: Trunk's `index.html` starts the app with an inline
/// module script whose text (and so hash) changes with every build.
const CONTENT_SECURITY_POLICY: &str = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'";

/// The static file service, with security headers on every answer.
#[derive(Clone)]
pub(crate) struct StaticFiles {
    service: BoxCloneSyncService<Request, Response, Infallible>,
}

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticFiles").finish_non_exhaustive()
    }
}

impl StaticFiles {
    pub(crate) fn new(dir: &Path) -> Self {
        let files = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
        let service = ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ))
            .map_response(
                |response: Response<tower_http::services::fs::ServeFileSystemResponseBody>| {
                    response.map(Body::new)
                },
            )
            .service(files);
        Self { service: BoxCloneSyncService::new(service) }
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
            Ok(response) => return response,
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
    use super::*;

    #[tokio::test]
    async fn static_files_carry_security_headers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!DOCTYPE html>").unwrap();
        std::fs::write(dir.path().join("app.js"), "1").unwrap();
        let files = StaticFiles::new(dir.path());
        for path in ["/", "/app.js", "/some/app/route", "/missing.js"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = files.service.clone().oneshot(request).await.unwrap();
            let headers = response.headers();
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        }
    }

    #[test]
    fn api_paths() {
        assert!(is_api_path("/v1/nope"));
        assert!(is_api_path("/api/storage/x"));
        assert!(is_api_path("/health"));
        assert!(!is_api_path("/files/v1"));
        assert!(!is_api_path("/apiary"));
    }
}
