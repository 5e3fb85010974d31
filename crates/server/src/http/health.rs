//! `GET /health`: cheap liveness and readiness, no authentication.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use persist_protocol::HealthResponse;

use super::AppState;

/// 200 `{"status":"ok",...}` when the database answers within a second; 503 `"degraded"`
/// otherwise (a load balancer takes the instance out; clients go to degraded mode).
pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let database = match tokio::time::timeout(Duration::from_secs(1), state.storage.check()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => {
            // The details are for the operator's logs, not for anonymous callers.
            tracing::warn!(%error, "health check: the database does not answer");
            "unavailable".to_owned()
        }
        Err(_) => {
            tracing::warn!("health check: the database did not answer within a second");
            "unavailable".to_owned()
        }
    };
    let ok = database == "ok";
    let body = HealthResponse {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        database,
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
