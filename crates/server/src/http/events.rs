//! `GET /v1/events`: server-sent events announcing the namespace's new revisions.
//!
//! Browsers' `EventSource` cannot send headers, so this route (and only this one) also accepts
//! the token as `?access_token=<token>`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use persist_protocol::{EventMessage, Revision};
use serde::Deserialize;
use tokio::sync::watch;

use super::extract::Peer;
use super::limits::Slot;
use super::AppState;
use crate::auth::{bearer, CACHE_TTL};
use crate::error::ApiError;
use crate::metrics::WakeCause;
use crate::storage::{HubEvent, Storage, Subscription};

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    access_token: Option<String>,
}

pub(super) async fn events(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query_token = query.ok().and_then(|Query(q)| q.access_token);
    let token = bearer(&headers).or(query_token.as_deref());
    let user = state.authenticate(token, peer).await?;
    let Some(token) = token else {
        return Err(ApiError::unauthorized());
    };
    state.limiter.check(&user)?;
    // Held by the stream until it ends, whatever ends it.
    let slot = state.event_slots.acquire(&user)?;
    // Subscribe before reading the head, so no revision falls between the two.
    let receiver = state.events.subscribe(&user);
    let head = state.storage.head(&user).await?;
    state.metrics.event_stream_opened();
    let mut recheck = tokio::time::interval(CACHE_TTL);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let stream = EventStream {
        receiver,
        token: token.to_owned(),
        recheck,
        user,
        last_sent: None,
        first: Some(head),
        storage: Arc::clone(&state.storage),
        shutdown: state.shutdown.clone(),
        state: state.clone(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(stream, |mut stream| async move {
        let revision = stream.next_revision().await?;
        Some((Ok(event(revision)), stream))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn event(revision: Revision) -> Event {
    let data = serde_json::to_string(&EventMessage { revision }).unwrap_or_default();
    Event::default().id(revision.to_string()).data(data)
}

struct EventStream {
    /// Wakes for this namespace's commits only (and revocations, resyncs).
    receiver: Subscription,
    /// The token the stream was opened with: checked again every [`CACHE_TTL`] and whenever
    /// tokens are revoked here, and the stream ends once it is gone.
    token: String,
    recheck: tokio::time::Interval,
    user: String,
    last_sent: Option<Revision>,
    first: Option<Revision>,
    storage: Arc<dyn Storage>,
    shutdown: watch::Receiver<bool>,
    state: AppState,
    /// This stream's place under the stream caps, freed when the stream is dropped.
    _slot: Slot,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.state.metrics.event_stream_closed();
    }
}

impl EventStream {
    /// `false` once the stream's token was revoked (a database error keeps the stream).
    async fn token_still_valid(&self) -> bool {
        match self.state.user_for_token(&self.token).await {
            Ok(user) => user == self.user,
            Err(error) => error.code() != persist_protocol::ErrorCode::Unauthorized,
        }
    }

    /// The next revision to announce, or `None` to end the stream (shutdown, revoked token).
    async fn next_revision(&mut self) -> Option<Revision> {
        if let Some(first) = self.first.take() {
            self.last_sent = Some(first);
            return Some(first);
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let candidate = tokio::select! {
                changed = self.shutdown.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return None,
                },
                _ = self.recheck.tick() => {
                    if self.token_still_valid().await {
                        continue;
                    }
                    return None;
                }
                message = self.receiver.recv() => match message {
                    Some(HubEvent::Advanced(revision)) => {
                        self.state.metrics.event_stream_woken(WakeCause::Commit);
                        revision
                    }
                    Some(HubEvent::TokensRevoked) => {
                        self.state.metrics.event_stream_woken(WakeCause::Revocation);
                        if self.token_still_valid().await {
                            continue;
                        }
                        return None;
                    }
                    Some(HubEvent::Resync) => {
                        self.state.metrics.event_stream_woken(WakeCause::Resync);
                        match self.storage.head(&self.user).await {
                            Ok(head) => head,
                            Err(_) => continue,
                        }
                    }
                    None => return None,
                },
            };
            if Some(candidate) > self.last_sent {
                self.last_sent = Some(candidate);
                return Some(candidate);
            }
        }
    }
}
