//! [`HttpRemote`]: the sync protocol (`/v1/*`, `/health`) over HTTP with gloo-net, and the live
//! events of `/v1/events` over an `EventSource`.
//!
//! Every request has a deadline (an `AbortController` fired by a timer, 15 s by default): a
//! server that accepts a connection and never answers must not stall the sync forever. Status
//! codes map to [`RemoteErrorKind`]: 401/403 → unauthorized (kept queued, waits for a new token),
//! 408/429/5xx → busy (retried, `Retry-After` honoured), other 4xx → rejected.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gloo_events::EventListener;
use gloo_net::http::{Request, RequestBuilder, Response};
use gloo_timers::callback::Timeout;
use persist_protocol::{
    DevConfig, EventMessage, HealthResponse, PullResponse, PushRequest, PushResponse, Revision,
};
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;

use super::{EventCallback, Health, Remote, RemoteError, RemoteErrorKind, Subscription};
use crate::local::LocalFuture;

/// How long a request may take when the app does not say.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Reconnect delays of the event stream: doubling from the first to the last.
const EVENTS_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// The yewdux-persist server (`persist-server`) over HTTP.
///
/// ```no_run
/// use yewdux_persist::remote::HttpRemote;
/// // Same origin as the app ("" = relative URLs), with a bearer token.
/// let remote = HttpRemote::new("", Some("token".to_owned()));
/// ```
#[derive(Debug, Clone)]
pub struct HttpRemote {
    inner: Rc<Shared>,
}

#[derive(Debug)]
struct Shared {
    base_url: String,
    token: RefCell<Option<String>>,
    timeout: Duration,
}

impl HttpRemote {
    /// A remote at `base_url` (e.g. `https://sync.example.com`, or `""` for the app's own
    /// origin) authenticating with `token`.
    pub fn new(base_url: impl Into<String>, token: Option<String>) -> Self {
        Self::with_timeout(base_url, token, DEFAULT_REQUEST_TIMEOUT)
    }

    /// Like [`new`](Self::new), with another request timeout.
    pub fn with_timeout(
        base_url: impl Into<String>,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { inner: Rc::new(Shared { base_url, token: RefCell::new(token), timeout }) }
    }

    /// Asks a server started with `persist-server serve --dev` for its development token
    /// (`GET /dev-config.json`; served on loopback only). Apps use it in development to get a
    /// token, and a fresh one after [`RemoteErrorKind::Unauthorized`].
    ///
    /// # Errors
    /// As every call: unreachable, a status error (404 when the server is not in dev mode), or
    /// an answer that is not a dev config.
    pub async fn dev_config(&self) -> Result<DevConfig, RemoteError> {
        let timer = Deadline::new(self.inner.timeout);
        let builder =
            Request::get(&self.url("/dev-config.json")).abort_signal(timer.signal.as_ref());
        let (response, text) = self.exchange_with(builder.build(), &timer).await?;
        check_status(&response, &text)?;
        serde_json::from_str(&text).map_err(|e| {
            RemoteError::new(RemoteErrorKind::Protocol, format!("/dev-config.json: {e}"))
        })
    }

    /// Sends an authorized request within the timeout; the answer's status and body, with 401,
    /// 403, 408, 429 and 5xx already turned into errors (other statuses are the caller's).
    pub(super) async fn send(
        &self,
        builder: RequestBuilder,
        body: Option<String>,
    ) -> Result<(u16, String), RemoteError> {
        let (response, text) = self.answer(builder, body).await?;
        match check_status(&response, &text) {
            Err(error) if !matches!(error.kind, RemoteErrorKind::Rejected { .. }) => Err(error),
            _ => Ok((response.status(), text)),
        }
    }

    /// The whole answer to an authorized request (JSON `body` if any), within the timeout.
    async fn answer(
        &self,
        builder: RequestBuilder,
        body: Option<String>,
    ) -> Result<(Response, String), RemoteError> {
        let timer = Deadline::new(self.inner.timeout);
        let builder = self.authorized(builder).abort_signal(timer.signal.as_ref());
        let request = match body {
            Some(body) => builder.header("Content-Type", "application/json").body(body),
            None => builder.build(),
        };
        self.exchange_with(request, &timer).await
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_url)
    }

    fn authorized(&self, builder: RequestBuilder) -> RequestBuilder {
        match self.inner.token.borrow().as_deref() {
            Some(token) => builder.header("Authorization", &format!("Bearer {token}")),
            None => builder,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        builder: RequestBuilder,
        body: Option<String>,
    ) -> Result<T, RemoteError> {
        let (response, text) = self.answer(builder, body).await?;
        check_status(&response, &text)?;
        serde_json::from_str(&text).map_err(|e| {
            RemoteError::new(
                RemoteErrorKind::Protocol,
                format!("unexpected answer from {}: {e}", response.url()),
            )
        })
    }

    async fn exchange_with(
        &self,
        request: Result<Request, gloo_net::Error>,
        timer: &Deadline,
    ) -> Result<(Response, String), RemoteError> {
        let request =
            request.map_err(|e| RemoteError::new(RemoteErrorKind::Protocol, e.to_string()))?;
        let result = async {
            let response = request.send().await?;
            let text = response.text().await?;
            Ok::<_, gloo_net::Error>((response, text))
        }
        .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(_) if timer.fired() => Err(RemoteError::new(
                RemoteErrorKind::Unreachable,
                format!("no answer within {} s", self.inner.timeout.as_secs_f32()),
            )),
            Err(error) => Err(RemoteError::new(RemoteErrorKind::Unreachable, error.to_string())),
        }
    }
}

/// Aborts the requests holding its signal when the time is up; dropping it disarms the timer.
struct Deadline {
    signal: Option<web_sys::AbortSignal>,
    fired: Rc<std::cell::Cell<bool>>,
    _timer: Option<Timeout>,
}

impl Deadline {
    fn new(after: Duration) -> Self {
        let fired = Rc::new(std::cell::Cell::new(false));
        let Ok(controller) = web_sys::AbortController::new() else {
            // No AbortController (very old browsers): requests run without a deadline.
            return Self { signal: None, fired, _timer: None };
        };
        let signal = controller.signal();
        let millis = after.as_millis().min(i32::MAX as u128) as u32;
        let flag = Rc::clone(&fired);
        let timer = Timeout::new(millis, move || {
            flag.set(true);
            controller.abort();
        });
        Self { signal: Some(signal), fired, _timer: Some(timer) }
    }

    fn fired(&self) -> bool {
        self.fired.get()
    }
}

/// The error an unsuccessful status means.
fn check_status(response: &Response, body: &str) -> Result<(), RemoteError> {
    let status = response.status();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let detail: String = body.chars().take(200).collect();
    let message = format!("{} {status}: {detail}", response.url());
    let kind = match status {
        401 | 403 => RemoteErrorKind::Unauthorized,
        408 | 429 | 500..=599 => RemoteErrorKind::Busy {
            retry_after: response.headers().get("retry-after").and_then(|v| parse_retry_after(&v)),
        },
        _ => RemoteErrorKind::Rejected { status },
    };
    Err(RemoteError::new(kind, message))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and is ignored).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(|secs| Duration::from_secs(secs.min(3_600)))
}

impl Remote for HttpRemote {
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>> {
        Box::pin(async move {
            let body = serde_json::to_string(request)
                .map_err(|e| RemoteError::new(RemoteErrorKind::Protocol, e.to_string()))?;
            self.call(Request::post(&self.url("/v1/push")), Some(body)).await
        })
    }

    fn pull(
        &self,
        since: Revision,
        limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>> {
        Box::pin(async move {
            let url = self.url(&format!("/v1/pull?since={since}&limit={limit}"));
            self.call(Request::get(&url), None).await
        })
    }

    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>> {
        Box::pin(async move {
            let timer = Deadline::new(self.inner.timeout);
            let request =
                Request::get(&self.url("/health")).abort_signal(timer.signal.as_ref()).build();
            let (response, text) = self.exchange_with(request, &timer).await?;
            // A degraded server answers 503 with the same body: read the body first.
            match serde_json::from_str::<HealthResponse>(&text) {
                Ok(health) if health.status == "ok" => Ok(Health::Ok),
                Ok(health) => Ok(Health::Degraded(format!("database: {}", health.database))),
                Err(_) => {
                    check_status(&response, &text)?;
                    Err(RemoteError::new(RemoteErrorKind::Protocol, "/health: not a health answer"))
                }
            }
        })
    }

    fn subscribe(&self, on_change: EventCallback) -> Option<Box<dyn Subscription>> {
        let events = Rc::new(EventStream {
            remote: self.clone(),
            on_change,
            source: RefCell::new(None),
            retry: RefCell::new(None),
            delay: std::cell::Cell::new(EVENTS_BACKOFF.0),
        });
        events.connect();
        Some(Box::new(EventsHandle(events)))
    }

    fn set_token(&self, token: Option<String>) {
        *self.inner.token.borrow_mut() = token;
    }
}

/// The open `EventSource` and its listeners; reconnects with backoff when the browser gives up
/// (it retries plain network drops itself, but not an error status such as 401 or 503).
struct EventStream {
    remote: HttpRemote,
    on_change: EventCallback,
    source: RefCell<Option<(web_sys::EventSource, [EventListener; 3])>>,
    retry: RefCell<Option<Timeout>>,
    delay: std::cell::Cell<Duration>,
}

impl EventStream {
    fn connect(self: &Rc<Self>) {
        let mut url = self.remote.url("/v1/events");
        // EventSource cannot send headers: the token goes in the query string (the server
        // never logs query strings).
        if let Some(token) = self.remote.inner.token.borrow().as_deref() {
            url.push_str("?access_token=");
            url.push_str(&String::from(js_sys::encode_uri_component(token)));
        }
        let Ok(source) = web_sys::EventSource::new(&url) else { return };
        let weak = Rc::downgrade(self);
        let on_message = EventListener::new(&source, "message", move |event| {
            let Some(stream) = weak.upgrade() else { return };
            let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else { return };
            let Some(text) = event.data().as_string() else { return };
            if let Ok(message) = serde_json::from_str::<EventMessage>(&text) {
                (stream.on_change)(message.revision);
            }
        });
        let weak = Rc::downgrade(self);
        let on_open = EventListener::new(&source, "open", move |_| {
            if let Some(stream) = weak.upgrade() {
                stream.delay.set(EVENTS_BACKOFF.0);
            }
        });
        let weak = Rc::downgrade(self);
        let on_error = EventListener::new(&source, "error", move |_| {
            let Some(stream) = weak.upgrade() else { return };
            let closed =
                stream.source.borrow().as_ref().is_some_and(|(source, _)| {
                    source.ready_state() == web_sys::EventSource::CLOSED
                });
            if closed {
                stream.reconnect_later();
            }
        });
        if let Some((old, _)) = self.source.replace(Some((source, [on_message, on_open, on_error])))
        {
            old.close();
        }
    }

    fn reconnect_later(self: &Rc<Self>) {
        let delay = self.delay.get();
        self.delay.set((delay * 2).min(EVENTS_BACKOFF.1));
        let weak = Rc::downgrade(self);
        let timer = Timeout::new(delay.as_millis() as u32, move || {
            if let Some(stream) = weak.upgrade() {
                stream.retry.borrow_mut().take();
                stream.connect();
            }
        });
        *self.retry.borrow_mut() = Some(timer);
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some((source, _)) = self.source.get_mut().take() {
            source.close();
        }
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("delay", &self.delay.get()).finish_non_exhaustive()
    }
}

/// Keeps the event stream open; dropping it closes the `EventSource` and cancels a reconnect.
#[derive(Debug)]
struct EventsHandle(#[allow(dead_code)] Rc<EventStream>);
impl Subscription for EventsHandle {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("999999"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
