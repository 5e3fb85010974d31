//! In-process fan-out of "namespace advanced to revision N" to the connected event streams.
//!
//! Each namespace with at least one open stream has its own `watch` channel, created by the first
//! subscription and removed when the last one is dropped: a commit wakes only the streams of its
//! own namespace, and a namespace nobody listens to costs one map lookup. Revocations and resyncs
//! concern every stream and have one `watch` channel each (a counter: streams wake once however
//! many happened meanwhile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use persist_protocol::Revision;
use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    /// Namespace → newest revision announced, for the namespaces with an open subscription.
    namespaces: Mutex<HashMap<Arc<str>, watch::Sender<Revision>>>,
    /// Bumped when tokens were revoked on this server: every stream checks its token.
    revoked: watch::Sender<u64>,
    /// Bumped when events may have been missed (e.g. the PostgreSQL listener reconnected): every
    /// stream re-reads its namespace's head.
    resync: watch::Sender<u64>,
}

/// Shared by the storage (publisher) and the SSE handlers (subscribers).
#[derive(Debug, Clone)]
pub(crate) struct EventHub {
    inner: Arc<Inner>,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                namespaces: Mutex::new(HashMap::new()),
                revoked: watch::Sender::new(0),
                resync: watch::Sender::new(0),
            }),
        }
    }

    fn namespaces(&self) -> MutexGuard<'_, HashMap<Arc<str>, watch::Sender<Revision>>> {
        self.inner.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `ns` advanced to `revision`: wakes the streams of `ns` only (when it is newer).
    pub(crate) fn advanced(&self, ns: &str, revision: Revision) {
        if let Some(sender) = self.namespaces().get(ns) {
            sender.send_if_modified(|newest| {
                let newer = revision > *newest;
                if newer {
                    *newest = revision;
                }
                newer
            });
        }
    }

    /// Tokens were revoked on this server: every stream checks that its token still exists.
    pub(crate) fn tokens_revoked(&self) {
        self.inner.revoked.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Events may have been missed: every stream re-reads its namespace's head.
    pub(crate) fn resync(&self) {
        self.inner.resync.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Subscribes to `ns`'s revisions and to the events concerning every stream.
    pub(crate) fn subscribe(&self, ns: &str) -> Subscription {
        let revision = {
            let mut namespaces = self.namespaces();
            match namespaces.get(ns) {
                Some(sender) => sender.subscribe(),
                None => {
                    let (sender, receiver) = watch::channel(0);
                    namespaces.insert(Arc::from(ns), sender);
                    receiver
                }
            }
        };
        Subscription {
            revision: Some(revision),
            revoked: self.inner.revoked.subscribe(),
            resync: self.inner.resync.subscribe(),
            ns: Arc::from(ns),
            hub: self.clone(),
        }
    }

    /// Namespaces with an open subscription (for tests).
    #[cfg(test)]
    fn channels(&self) -> usize {
        self.namespaces().len()
    }
}

/// What woke a [`Subscription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HubEvent {
    /// The namespace's newest announced revision.
    Advanced(Revision),
    /// Tokens were revoked on this server.
    TokensRevoked,
    /// Events may have been missed: re-read the head.
    Resync,
}

/// One stream's subscription; dropping the last one of a namespace removes its channel.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Always `Some` until dropped.
    revision: Option<watch::Receiver<Revision>>,
    revoked: watch::Receiver<u64>,
    resync: watch::Receiver<u64>,
    ns: Arc<str>,
    hub: EventHub,
}

impl Subscription {
    /// Waits for the next event of this namespace or of every stream; `None` once the hub is gone.
    pub(crate) async fn recv(&mut self) -> Option<HubEvent> {
        let revision = self.revision.as_mut()?;
        tokio::select! {
            changed = revision.changed() => {
                changed.ok()?;
                Some(HubEvent::Advanced(*revision.borrow_and_update()))
            }
            changed = self.revoked.changed() => {
                changed.ok()?;
                self.revoked.borrow_and_update();
                Some(HubEvent::TokensRevoked)
            }
            changed = self.resync.changed() => {
                changed.ok()?;
                self.resync.borrow_and_update();
                Some(HubEvent::Resync)
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut namespaces = self.hub.namespaces();
        drop(self.revision.take());
        // Under the lock, so no subscription can join the channel between the check and removal.
        if namespaces.get(&*self.ns).is_some_and(|sender| sender.receiver_count() == 0) {
            namespaces.remove(&*self.ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn next(subscription: &mut Subscription) -> Option<HubEvent> {
        tokio::time::timeout(Duration::from_millis(50), subscription.recv()).await.ok().flatten()
    }

    #[tokio::test]
    async fn a_namespace_wakes_only_its_own_subscriptions_and_its_channel_goes_with_the_last() {
        let hub = EventHub::new();
        let mut alice = hub.subscribe("alice");
        let mut alice_too = hub.subscribe("alice");
        let mut bob = hub.subscribe("bob");
        assert_eq!(hub.channels(), 2);

        hub.advanced("alice", 3);
        hub.advanced("alice", 2); // older: not announced
        hub.advanced("carol", 9); // nobody listens: nothing kept
        assert_eq!(next(&mut alice).await, Some(HubEvent::Advanced(3)));
        assert_eq!(next(&mut alice_too).await, Some(HubEvent::Advanced(3)));
        assert_eq!(next(&mut alice).await, None);
        assert_eq!(next(&mut bob).await, None);
        assert_eq!(hub.channels(), 2);

        hub.tokens_revoked();
        hub.resync();
        for subscription in [&mut alice, &mut bob] {
            let mut seen = vec![next(subscription).await, next(subscription).await];
            seen.sort_by_key(|event| format!("{event:?}"));
            assert_eq!(seen, [Some(HubEvent::Resync), Some(HubEvent::TokensRevoked)]);
        }

        drop(alice);
        assert_eq!(hub.channels(), 2);
        drop(alice_too);
        drop(bob);
        assert_eq!(hub.channels(), 0);
        // A later subscription starts a new channel.
        let mut again = hub.subscribe("alice");
        hub.advanced("alice", 4);
        assert_eq!(next(&mut again).await, Some(HubEvent::Advanced(4)));
    }
}
