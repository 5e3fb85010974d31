//! Where the runtime syncs to: the [`Remote`] trait, the sync protocol over HTTP
//! ([`HttpRemote`]), CodeForge's storage API ([`CodeForgeRemote`], for apps still on the old
//! backend), and an in-memory model of the server for tests ([`MemoryRemote`]).
//!
//! A remote only moves messages: what a push answer or a pulled page means for the device is
//! decided in `local/plan.rs`, and when to sync by the engine's scheduler.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use persist_protocol::{PullResponse, PushRequest, PushResponse, Revision, MAX_PUSH_OPS};

use crate::local::LocalFuture;

mod codeforge;
mod http;
mod memory;

pub use codeforge::CodeForgeRemote;
pub use http::{HttpRemote, DEFAULT_REQUEST_TIMEOUT};
pub use memory::MemoryRemote;
/// The wire types a [`Remote`] speaks (the `persist-protocol` crate).
pub use persist_protocol as protocol;

/// Why a call to the remote failed, as the sync must treat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// No answer: network down, DNS, connection refused, timeout. Retried with backoff.
    Unreachable,
    /// The server answered that it cannot serve now (408, 429, 5xx). Retried, not before
    /// `retry_after` when the server said (`Retry-After`).
    Busy {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// 401/403: the token is missing, expired or revoked. Everything stays queued until a new
    /// token is set ([`Remote::set_token`]).
    Unauthorized,
    /// Any other 4xx: this request cannot succeed as it is.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not what the protocol says (not JSON, wrong shape, wrong op ids).
    Protocol,
}

/// A failed call to the remote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// How to treat it.
    pub kind: RemoteErrorKind,
    /// What happened, for people.
    pub message: String,
}

impl RemoteError {
    /// An error of `kind`.
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Whether retrying later may succeed (unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, RemoteErrorKind::Unreachable | RemoteErrorKind::Busy { .. })
    }

    /// How long the server asked to wait before the next try, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            RemoteErrorKind::Busy { retry_after } => retry_after,
            _ => None,
        }
    }
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The server and its database answer.
    Ok,
    /// The server answers but says it is not well (e.g. its database is down): syncs may fail.
    Degraded(String),
}

/// Called with the namespace's new revision each time the server announces a change.
pub type EventCallback = Rc<dyn Fn(Revision)>;

/// A handle that keeps a live-event subscription open; dropping it closes the subscription.
pub trait Subscription: fmt::Debug {}

/// A server the runtime syncs with.
///
/// Every method may be called while an earlier call runs; the runtime never runs two syncs at
/// once, but health checks run beside them.
pub trait Remote: fmt::Debug + 'static {
    /// Sends a batch of ops; the answer has one result per op, in order.
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>>;

    /// One page of the records changed after `since`, oldest first, tombstones included.
    fn pull(
        &self,
        since: Revision,
        limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>>;

    /// Asks whether the server is up.
    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>>;

    /// Subscribes to the server's change announcements; `None` when this remote has none (the
    /// runtime then relies on its interval). The subscription reconnects by itself.
    fn subscribe(&self, on_change: EventCallback) -> Option<Box<dyn Subscription>> {
        let _ = on_change;
        None
    }

    /// Replaces the bearer token (after a sign-in, or a renewal after
    /// [`RemoteErrorKind::Unauthorized`]). Remotes without tokens ignore it.
    fn set_token(&self, token: Option<String>) {
        let _ = token;
    }

    /// Most ops one push may carry (the protocol's maximum unless the remote says less).
    fn max_push_ops(&self) -> usize {
        MAX_PUSH_OPS
    }
}
