//! Accepting and serving connections, with the limits `axum::serve` cannot express: a
//! header-read timeout, an idle timeout, a cap on open connections and a shutdown deadline.
//!
//! `axum::serve` "is intentionally simple and doesn't support any configuration" (its docs send
//! you to hyper / hyper-util for that): it sets no timer, so hyper's header-read timeout never
//! runs, accepts every connection, and its graceful shutdown waits forever for a client that
//! sent half a request. This is the same loop as axum's, on hyper's own connection builder, plus:
//! - hyper's `header_read_timeout` (with tokio's timer): the request head must arrive in time;
//! - a [`Semaphore`] of `max_connections` permits, taken *before* `accept`: past the cap, new
//!   connections wait in the kernel's listen backlog instead of being accepted and starved;
//! - a cap per client address ([`PerAddress`]; IPv6 per /64): a connection past it is closed at
//!   once, so one client cannot take every slot of the global cap (hand-written: a count per
//!   address, not a rate, which the rate-limiting crates do not model);
//! - an idle timeout: the socket is wrapped to note when a byte last moved either way;
//! - hyper-util's [`GracefulShutdown`] bounded by `shutdown_timeout`, after which the remaining
//!   connections are dropped.
//!
//! Like `axum::serve` without axum's `http2` feature (the server's case), only HTTP/1.1 is served.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::Limits;
use crate::http::address_key;

/// Longest timeout honoured: hyper and tokio add timeouts to `Instant::now()`, which overflows
/// (panics) for durations near `u64::MAX` seconds.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The connection settings taken from [`Limits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// Permits of the connection semaphore (`u32` for `acquire_many`).
    max_connections: u32,
    /// Connections one client address may have open (`usize::MAX`: no cap).
    max_per_address: usize,
    shutdown_timeout: Duration,
}

impl ConnectionLimits {
    pub(crate) fn from_limits(limits: &Limits) -> Self {
        let optional = |d: Duration| (!d.is_zero()).then(|| d.min(LONGEST));
        let max_connections = match limits.max_connections {
            0 => u32::MAX,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        Self {
            header_read_timeout: optional(limits.header_read_timeout),
            idle_timeout: optional(limits.idle_timeout),
            max_connections,
            max_per_address: match limits.max_connections_per_address {
                0 => usize::MAX,
                n => n,
            },
            shutdown_timeout: limits.shutdown_timeout.min(LONGEST),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns `true`, then stops accepting, lets in-flight
/// requests finish for up to the shutdown timeout, and drops what is left.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = (limits.max_connections as usize).min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(permits));
    let per_address = PerAddress::new(limits.max_per_address);
    let graceful = GracefulShutdown::new();
    let (force_close, forced) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    loop {
        // Take a slot before accepting: past the cap, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = turned_true(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, a connection reset before it was accepted…:
                    // keep serving the others, without spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = turned_true(&mut stop) => break,
        };
        let Some(place) = per_address.enter(peer.ip()) else {
            // Closed at once: the client learns it at its first read, nothing is queued for it.
            tracing::debug!(%peer, "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&activity) });
        // The peer address, for the per-address rate limit (as `axum::serve` does with
        // `into_make_service_with_connect_info`).
        let service = app.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let mut forced = forced.clone();
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!("connection idle too long: closed");
                }
                () = turned_true(&mut forced) => {}
            }
            drop((permit, place));
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let open = graceful.count();
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            open,
            timeout_secs = limits.shutdown_timeout.as_secs_f64(),
            "shutdown timeout: dropping the remaining connections"
        );
        force_close.send_replace(true);
        // Every connection task returns its slot once dropped; give them a moment.
        let all = slots.acquire_many(limits.max_connections);
        let _ = tokio::time::timeout(Duration::from_secs(1), all).await;
    }
}

/// Open connections per client address ([`address_key`]: IPv6 per /64), capped.
#[derive(Debug, Clone)]
struct PerAddress {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`PerAddress`]; dropping it frees the place.
#[derive(Debug)]
struct AddressPlace {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(cap: usize) -> Self {
        Self { cap, open: Arc::default() }
    }

    /// A place for one more connection from `address`, or `None` past the cap.
    fn enter(&self, address: IpAddr) -> Option<AddressPlace> {
        let key = address_key(address);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressPlace { key, open: Arc::clone(&self.open) })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Completes once `flag` is `true` (or its sender is gone). Returns nothing: a held
/// `watch::Ref` would make the caller's future not `Send`.
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|on| *on).await;
}

/// When a byte last moved on a connection.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte moved for `limit` (never without a limit).
    async fn idle_for(&self, limit: Option<Duration>) {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket that notes in [`Activity`] every read or write that moved bytes.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_or_zero_timeouts_neither_panic_nor_cap_at_zero() {
        let mut limits = Limits {
            header_read_timeout: Duration::from_secs(u64::MAX),
            idle_timeout: Duration::ZERO,
            max_connections: 0,
            ..Limits::default()
        };
        let connection = ConnectionLimits::from_limits(&limits);
        assert_eq!(connection.header_read_timeout, Some(LONGEST));
        assert_eq!(connection.idle_timeout, None);
        assert_eq!(connection.max_connections, u32::MAX);
        limits.max_connections = 3;
        assert_eq!(ConnectionLimits::from_limits(&limits).max_connections, 3);
    }

    #[test]
    fn connections_per_address_are_capped_per_ipv6_64_and_freed_on_drop() {
        let places = PerAddress::new(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let first = places.enter(a).unwrap();
        let _second = places.enter(same_64).unwrap();
        assert!(places.enter(a).is_none(), "a third connection from one /64");
        let elsewhere = places.enter(other).unwrap();
        drop(first);
        assert!(places.enter(same_64).is_some());
        drop(elsewhere);
        assert!(!places.open.lock().unwrap().contains_key(&other), "an address with no connection");
    }
}
