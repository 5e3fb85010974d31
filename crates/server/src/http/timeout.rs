//! The request timeout: a request must arrive and be answered within
//! [`Limits::request_timeout`](crate::Limits::request_timeout) (authenticated requests on bulk
//! routes get more).
//!
//! Who was slow decides the answer: a body still arriving at the deadline is the client's
//! (408 `request_timeout`); a body received in full means the server was slow (503
//! `unavailable`). Both are safe to send again: a push applies once however often it is sent,
//! even if the cut-off attempt committed. Only the answer's head is timed: a streamed answer (the
//! event stream) is not cut.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{peer_address, AppState};
use crate::auth::bearer;
use crate::error::ApiError;

/// Routes that move whole namespaces (up to `--max-import-bytes` of body) get this many times
/// the limit.
const BULK_FACTOR: u32 = 10;
const BULK_ROUTES: [&str; 4] =
    ["/v1/import", "/v1/export", "/api/storage/import", "/api/storage/export"];

pub(crate) async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut limit = state.config.limits.request_timeout;
    let path = request.uri().path();
    if BULK_ROUTES.contains(&path)
        && may_take_long(&state, request.headers(), request.extensions(), path).await
    {
        limit = bulk_limit(limit);
    }
    within(limit, request, |request| next.run(request)).await
}

/// The bulk routes' deadline: [`BULK_FACTOR`] times `limit`, saturating (an absurd
/// `--request-timeout-secs` such as `u64::MAX` means "practically none", not a panic).
pub(super) fn bulk_limit(limit: Duration) -> Duration {
    limit.saturating_mul(BULK_FACTOR)
}

/// Whether a bulk route's request may have the longer deadline: only one its handler will accept,
/// so that an anonymous slow sender cannot hold a connection ten times as long. That is a valid
/// bearer token (a cached lookup, which the handler's extractor repeats), or no `Authorization`
/// at all on `/api/storage/*` when `--codeforge-anonymous-user` deliberately opens it.
async fn may_take_long(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &Extensions,
    path: &str,
) -> bool {
    match bearer(headers) {
        // Charged to the address like the extractor's lookup (an unknown token on a bulk route
        // costs it twice); a valid token is cached here, so the extractor does not charge again.
        Some(token) => state.authenticate(Some(token), peer_address(extensions)).await.is_ok(),
        None => {
            state.config.codeforge_anonymous_user.is_some()
                && !headers.contains_key(header::AUTHORIZATION)
                && path.starts_with("/api/storage/")
        }
    }
}

/// Runs `handler` on `request` with the deadline `limit` (`Duration::ZERO`: none).
async fn within<F, Fut>(limit: Duration, request: Request, handler: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if limit.is_zero() {
        return handler(request).await;
    }
    let received = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let request = if received.load(Ordering::Acquire) {
        request
    } else {
        watch_body(request, Arc::clone(&received))
    };
    match tokio::time::timeout(limit, handler(request)).await {
        Ok(response) => response,
        Err(_) if received.load(Ordering::Acquire) => ApiError::too_slow(limit).into_response(),
        Err(_) => ApiError::timed_out(limit).into_response(),
    }
}

/// The same request, whose body sets `received` once its last byte was read.
fn watch_body(request: Request, received: Arc<AtomicBool>) -> Request {
    let (parts, body) = request.into_parts();
    let end = futures_util::stream::once(async move {
        received.store(true, Ordering::Release);
        None::<Result<Bytes, axum::Error>>
    })
    .filter_map(|item| async move { item });
    Request::from_parts(parts, Body::from_stream(body.into_data_stream().chain(end)))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use persist_protocol::ErrorBody;

    use super::*;

    async fn answer(response: Response) -> (StatusCode, Option<ErrorBody>) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).ok())
    }

    #[test]
    fn bulk_limit_saturates() {
        assert_eq!(bulk_limit(Duration::from_secs(30)), Duration::from_secs(300));
        assert_eq!(bulk_limit(Duration::ZERO), Duration::ZERO);
        assert_eq!(bulk_limit(Duration::from_secs(u64::MAX)), Duration::MAX);
    }

    /// An absurd deadline is no deadline in practice, and no panic.
    #[tokio::test]
    async fn huge_limit_answers() {
        let response = within(Duration::MAX, post(Body::from("x")), reads_then_takes(0)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    fn post(body: Body) -> Request {
        Request::post("/v1/push").body(body).unwrap()
    }

    /// Reads the whole body, then takes `ms` to answer.
    fn reads_then_takes(
        ms: u64,
    ) -> impl FnOnce(Request) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>> {
        move |request| {
            Box::pin(async move {
                let body = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                (StatusCode::OK, body).into_response()
            })
        }
    }

    #[tokio::test]
    async fn a_prompt_answer_passes_through_untouched() {
        let response =
            within(Duration::from_secs(5), post(Body::from("{}")), reads_then_takes(0)).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"{}"[..]));
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_the_deadline_is_408() {
        // The body's second half never comes.
        let trickle =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("{\"ops\""))])
                .chain(futures_util::stream::pending());
        let request = post(Body::from_stream(trickle));
        let (status, error) =
            answer(within(Duration::from_millis(100), request, reads_then_takes(0)).await).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(error.unwrap().code, persist_protocol::ErrorCode::RequestTimeout);
    }

    #[tokio::test]
    async fn a_slow_server_after_the_whole_body_arrived_is_503() {
        let (status, error) = answer(
            within(Duration::from_millis(100), post(Body::from("{}")), reads_then_takes(2_000))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.unwrap().code, persist_protocol::ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_request_without_a_body_that_is_slow_is_the_servers_fault() {
        let request = Request::get("/v1/export").body(Body::empty()).unwrap();
        let (status, _) =
            answer(within(Duration::from_millis(100), request, reads_then_takes(2_000)).await)
                .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn zero_turns_the_timeout_off() {
        let response = within(Duration::ZERO, post(Body::from("{}")), reads_then_takes(200)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}
