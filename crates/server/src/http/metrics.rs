//! `GET /metrics` and the middleware that counts and times every request.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use subtle::ConstantTimeEq;

use super::AppState;
use crate::auth::bearer;
use crate::error::ApiError;

/// OpenMetrics text (`application/openmetrics-text; version=1.0.0`). Needs `Authorization: Bearer <--metrics-token>` when that flag is set; without
/// it, served only when the server listens on loopback (404 otherwise).
pub(super) async fn render(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    match &state.config.metrics_token {
        Some(expected) if !token_matches(bearer(&headers), expected) => {
            return Err(ApiError::unauthorized());
        }
        None if !state.metrics_open => {
            return Err(ApiError::not_found("metrics are disabled: set --metrics-token"));
        }
        _ => {}
    }
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.render())
        .into_response())
}

/// Whether the bearer token sent is the metrics token, compared in constant time (the time taken
/// does not tell how many leading bytes were right).
fn token_matches(sent: Option<&str>, expected: &str) -> bool {
    sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(expected.as_bytes())))
}

/// Counts requests by method, route and status, and records latencies by route.
pub(super) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(request.uri().path());
    let response = next.run(request).await;
    state.metrics.observe_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A fixed set of labels, so label cardinality stays bounded whatever paths clients send.
fn route_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/v1/push" => "/v1/push",
        "/v1/pull" => "/v1/pull",
        "/v1/export" => "/v1/export",
        "/v1/import" => "/v1/import",
        "/v1/events" => "/v1/events",
        "/v1/stats" => "/v1/stats",
        "/dev-config.json" => "/dev-config.json",
        p if p.starts_with("/api/storage") => "/api/storage",
        p if p.starts_with("/v1/") || p.starts_with("/api/") => "unknown_api",
        _ => "static",
    }
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(Some("m-secret"), "m-secret"));
        for wrong in ["", "m", "m-secre", "m-secret2", "M-secret", "x-secret"] {
            assert!(!token_matches(Some(wrong), "m-secret"), "{wrong}");
        }
        assert!(!token_matches(None, "m-secret"));
    }
}
