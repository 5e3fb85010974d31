//! The HTTP layer: the router, the state every handler shares ([`AppState`]), middleware. The
//! handlers and extractors live in the child modules; the server's bootstrap (`crate::start`)
//! builds the state and calls [`router`].

mod codeforge;
mod dev;
mod events;
mod export;
mod extract;
mod health;
mod json;
mod limits;
mod metrics;
mod static_files;
mod sync;
mod timeout;

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{header, Extensions, HeaderValue, Method};
use axum::routing::{any, get, post};
use axum::Router;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub(crate) use dev::{new_dev_token, revoke_dev_token};
pub(crate) use limits::{address_key, RateLimiter, ReadMemory, Slots};

use crate::auth::{self, TokenCache};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::storage::{EventHub, Storage};

/// Everything a handler may need.
#[derive(Debug)]
pub(crate) struct AppInner {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: ServerConfig,
    pub(crate) tokens: TokenCache,
    /// Requests per user.
    pub(crate) limiter: RateLimiter<String>,
    /// Failed authentications (missing, unknown or revoked token) per client address; see
    /// [`AppState::authenticate`].
    pub(crate) address_limiter: RateLimiter<IpAddr>,
    /// The caps on open event streams.
    pub(crate) event_slots: Slots,
    /// The caps on exports being read.
    pub(crate) export_slots: Slots,
    /// The caps on imports in progress.
    pub(crate) import_slots: Slots,
    /// The memory pull pages may hold at once.
    pub(crate) read_memory: ReadMemory,
    pub(crate) metrics: Metrics,
    pub(crate) events: EventHub,
    /// Turns `true` when the server starts shutting down (event streams end then).
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The development token (`--dev` only).
    pub(crate) dev_token: Option<String>,
    /// `/metrics` is served without a token (no `--metrics-token`, loopback listener).
    pub(crate) metrics_open: bool,
    /// The built app, when `--static-dir` is set.
    pub(crate) static_files: Option<static_files::StaticFiles>,
}

/// Cheaply clonable handle to [`AppInner`].
#[derive(Debug, Clone)]
pub(crate) struct AppState(pub(crate) Arc<AppInner>);

impl Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// The user of a bearer token (cached), or 401; no rate limit (for checks the server makes
    /// itself, such as an open event stream's periodic look at its token).
    pub(crate) async fn user_for_token(&self, token: &str) -> Result<String, ApiError> {
        auth::user_for_token(&self.tokens, &*self.storage, token, self.config.dev, || Ok(())).await
    }

    /// The user of a request's bearer token, or 401 — or 429 once the client address has spent
    /// its budget of failed authentications (`--anonymous-rate-limit`). Every request that
    /// reaches the database with its token is charged to the address: a missing token, an
    /// unknown or revoked one, and a valid token not yet in the cache (once per 30 s, as only
    /// valid tokens are cached). A valid user's requests with a cached token cost the address
    /// nothing, so a flood of random tokens from one address is cut to the configured rate while
    /// the users behind it keep working.
    pub(crate) async fn authenticate(
        &self,
        token: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<String, ApiError> {
        let charge = || match peer {
            Some(address) => self.address_limiter.check(&address_key(address)),
            None => Ok(()),
        };
        let Some(token) = token else {
            charge()?;
            return Err(ApiError::unauthorized());
        };
        auth::user_for_token(&self.tokens, &*self.storage, token, self.config.dev, charge).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        config: ServerConfig,
        metrics_open: bool,
        events: EventHub,
        shutdown: watch::Receiver<bool>,
        dev_token: Option<String>,
    ) -> Self {
        let limits = &config.limits;
        let limiter = RateLimiter::new(limits.rate_limit_per_second, limits.rate_limit_burst);
        let address_limiter = RateLimiter::new(
            limits.anonymous_rate_limit_per_second,
            limits.anonymous_rate_limit_burst,
        );
        let event_slots = Slots::new(
            "open event streams",
            limits.max_event_streams_per_user,
            limits.max_event_streams,
        );
        let export_slots =
            Slots::new("exports running", limits.max_exports_per_user, limits.max_exports);
        let import_slots =
            Slots::new("imports in progress", limits.max_imports_per_user, limits.max_imports);
        let read_memory = ReadMemory::new(limits.max_read_bytes_in_flight, limits.max_page_bytes);
        let static_files = config.static_dir.as_deref().map(static_files::StaticFiles::new);
        AppState(Arc::new(AppInner {
            storage,
            tokens: TokenCache::default(),
            limiter,
            address_limiter,
            event_slots,
            export_slots,
            import_slots,
            read_memory,
            metrics: Metrics::default(),
            events,
            shutdown,
            dev_token,
            metrics_open,
            static_files,
            config,
        }))
    }
}

/// The client's address: the TCP peer of the connection, which `connections::serve` puts in
/// every request's extensions (`None` for a request that did not come through it).
pub(crate) fn peer_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())
}

/// The span every request is traced in: method and path, never the query string, which carries
/// the event stream's token (`/v1/events?access_token=…`, the only way an `EventSource` can send
/// one). tower-http's default span records the whole URI.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// All routes, with limits, CORS, tracing and metrics.
pub(crate) fn router(state: AppState) -> Router {
    let config = &state.config;
    let import_limit = DefaultBodyLimit::max(config.limits.max_import_bytes.max(1));
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/v1/push", post(sync::push))
        .route("/v1/pull", get(sync::pull))
        .route("/v1/export", get(sync::export))
        .route("/v1/import", post(sync::import).layer(import_limit))
        .route("/v1/events", get(events::events))
        .route("/v1/stats", get(sync::stats))
        .route("/api/storage", any(codeforge::root))
        .route("/api/storage/", any(codeforge::root))
        // Only the import route may carry the larger import body.
        .route(
            "/api/storage/import",
            post(codeforge::import).fallback(codeforge::dispatch).layer(import_limit),
        )
        .route("/api/storage/{*rest}", any(codeforge::dispatch))
        .route("/metrics", get(metrics::render));
    if config.dev {
        router = router.route("/dev-config.json", get(dev::config));
    }
    let mut router = router
        .fallback(static_files::fallback)
        .method_not_allowed_fallback(static_files::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), timeout::request_timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    if let Some(cors) = cors(config) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// The CORS layer, or `None` for same-origin only.
fn cors(config: &ServerConfig) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() && !config.dev {
        return None;
    }
    let allow = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let listed: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
            .collect();
        let dev = config.dev;
        AllowOrigin::predicate(move |origin, _| {
            listed.contains(origin) || (dev && is_loopback_origin(origin.as_bytes()))
        })
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Whether the CORS configuration allows `origin`: listed (or `*`), or a loopback origin in dev
/// mode.
pub(super) fn origin_allowed(config: &ServerConfig, origin: &HeaderValue) -> bool {
    let origin = origin.as_bytes();
    config
        .cors_origins
        .iter()
        .any(|allowed| allowed == "*" || allowed.trim_end_matches('/').as_bytes() == origin)
        || (config.dev && is_loopback_origin(origin))
}

fn is_loopback_origin(origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    let Some(host) = host else { return false };
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins() {
        assert!(is_loopback_origin(b"http://127.0.0.1:8080"));
        assert!(is_loopback_origin(b"http://localhost"));
        assert!(is_loopback_origin(b"http://[::1]:3000"));
        assert!(!is_loopback_origin(b"http://evil.example"));
        assert!(!is_loopback_origin(b"http://localhost.evil.example:80"));
    }
}

#[cfg(test)]
mod span_tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    /// Records every field of every new span as text.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<String>>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let mut text = self.0.lock().unwrap();
            text.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl<S: Subscriber> Layer<S> for Fields {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            attrs.record(&mut self.clone());
        }
    }

    #[test]
    fn the_request_span_names_the_path_but_never_the_token_in_the_query() {
        let fields = Fields::default();
        let subscriber = tracing_subscriber::registry().with(fields.clone());
        tracing::subscriber::with_default(subscriber, || {
            let request =
                axum::http::Request::get("/v1/events?access_token=secret-token").body(()).unwrap();
            let _span = super::request_span(&request);
        });
        let text = fields.0.lock().unwrap().clone();
        assert!(text.contains("/v1/events"), "{text}");
        assert!(!text.contains("secret-token"), "the token is logged: {text}");
    }
}
