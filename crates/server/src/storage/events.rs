//! In-process fan-out of "namespace advanced to revision N" to the connected event streams.

use std::sync::Arc;

use persist_protocol::Revision;
use tokio::sync::broadcast;

/// One event on the hub.
#[derive(Debug, Clone)]
pub(crate) enum NamespaceEvent {
    /// A namespace's newest revision is now `revision`.
    Advanced { ns: Arc<str>, revision: Revision },
    /// Tokens were revoked on this server: every stream checks that its token still exists.
    TokensRevoked,
    /// Events may have been missed (e.g. the PostgreSQL listener reconnected): every stream
    /// re-reads its namespace's head.
    Resync,
}

/// A broadcast channel shared by the storage (publisher) and the SSE handlers (subscribers).
#[derive(Debug, Clone)]
pub(crate) struct EventHub {
    sender: broadcast::Sender<NamespaceEvent>,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        let (sender, _) = broadcast::channel(4096);
        Self { sender }
    }

    pub(crate) fn publish(&self, event: NamespaceEvent) {
        // No subscriber is fine: nobody is listening.
        let _ = self.sender.send(event);
    }

    pub(crate) fn advanced(&self, ns: &str, revision: Revision) {
        self.publish(NamespaceEvent::Advanced { ns: Arc::from(ns), revision });
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<NamespaceEvent> {
        self.sender.subscribe()
    }
}
