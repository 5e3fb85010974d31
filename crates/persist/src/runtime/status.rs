//! [`PersistStatus`]: what the runtime is doing, for the app and the dashboard, and the
//! [`ItemError`]s it lists.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::local::StorageKind;
use crate::sync::SyncProgress;

/// Most recent item errors kept in [`PersistStatus::item_errors`].
pub(crate) const MAX_ITEM_ERRORS: usize = 50;

/// The runtime's state, as shown to users. Get it with `Persistence::status`; subscribe with
/// `Persistence::subscribe_status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersistStatus {
    /// `true` once every installed store has loaded its saved data (show a loading state until
    /// then instead of flashing defaults).
    pub ready: bool,
    /// Where data is kept.
    pub storage: StorageKind,
    /// Why storage is memory-only, when IndexedDB could not be used.
    pub storage_note: Option<String>,
    /// The last storage error, cleared by the next successful write.
    pub last_error: Option<String>,
    /// Set while opening the database waits on another tab that keeps it open at an older
    /// version (typically an old build of the app): loading and saving wait. Changes stay queued
    /// in this tab's memory meanwhile, so closing this tab before the other one lets go loses
    /// them.
    pub blocked: Option<String>,
    /// Items that could not be serialised or read back (most recent last; the stored data is
    /// left untouched).
    pub item_errors: Vec<ItemError>,
    /// Changes waiting to be written.
    pub queue_depth: usize,
    /// Changes being written now.
    pub in_flight: usize,
    /// Items whose last write failed permanently, as `collection:id: error`; retried by the next
    /// flush or change.
    pub failed_keys: Vec<String>,
    /// Collections that are not persisted in this session, with why (their saved data could not
    /// be loaded, or their name is reserved). Sticky: not cleared by later successful writes.
    pub collection_errors: BTreeMap<String, String>,
    /// Wall-clock epoch milliseconds of the last successful local write.
    pub last_saved_at: Option<f64>,
    /// The sync with the remote server.
    pub sync: SyncStatus,
}

/// How this device reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connection {
    /// No remote is configured: everything stays on this device.
    #[default]
    LocalOnly,
    /// A remote is configured; the first health check has not answered yet.
    Checking,
    /// The server answers: changes sync.
    Online,
    /// The server answers but is not well (e.g. its database is down): changes stay queued and
    /// are retried.
    Degraded,
    /// The server cannot be reached: the app works on, changes stay queued (nothing is lost) and
    /// sync by themselves when it is back.
    Offline,
    /// The server refused the token (missing, expired or revoked): changes stay queued until a
    /// new token is set with `Persistence::set_token`.
    SignedOut,
}

impl Connection {
    /// A short label for badges.
    pub fn label(self) -> &'static str {
        match self {
            Connection::LocalOnly => "local-only",
            Connection::Checking => "connecting",
            Connection::Online => "online",
            Connection::Degraded => "degraded",
            Connection::Offline => "offline",
            Connection::SignedOut => "signed out",
        }
    }
}

/// The sync with the remote, as shown to users. Every tab shows the leader tab's (the one that
/// talks to the server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// How the server is reached.
    pub connection: Connection,
    /// Whether this tab is the one that talks to the server.
    pub leader: bool,
    /// Local changes not yet acknowledged by the server (the outbox), those waiting for the
    /// user's decision in an open conflict left out.
    pub pending: usize,
    /// Whether a sync runs now.
    pub syncing: bool,
    /// Syncs finished this session (by the tab that talks to the server).
    pub syncs: u64,
    /// What the running sync is doing.
    pub progress: SyncProgress,
    /// Wall-clock epoch milliseconds of the end of the last successful sync.
    pub last_sync_at: Option<f64>,
    /// Why the last sync failed, until one succeeds.
    pub last_error: Option<String>,
    /// Conflicts found this session.
    pub conflicts: usize,
    /// Local changes replaced by the server's version this session (server-wins conflicts).
    pub overruled: usize,
    /// Conflicts merged automatically this session (three-way merge, or the app's resolver).
    #[serde(default)]
    pub merged: usize,
    /// Conflicts waiting for the user now (on this device; see `Persistence::conflicts`).
    #[serde(default)]
    pub open_conflicts: usize,
    /// Changes the server rejected for good; retry or discard them.
    pub dead_letters: Vec<DeadLetterView>,
}

/// A change the server rejected for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// Whether the change was a delete.
    pub delete: bool,
    /// The server's reason.
    pub message: String,
}

impl PersistStatus {
    pub(crate) fn new(storage: StorageKind) -> Self {
        Self {
            ready: true,
            storage,
            storage_note: None,
            last_error: None,
            blocked: None,
            item_errors: Vec::new(),
            queue_depth: 0,
            in_flight: 0,
            failed_keys: Vec::new(),
            collection_errors: BTreeMap::new(),
            last_saved_at: None,
            sync: SyncStatus::default(),
        }
    }

    pub(crate) fn push_item_errors(&mut self, errors: impl IntoIterator<Item = ItemError>) {
        self.item_errors.extend(errors);
        let excess = self.item_errors.len().saturating_sub(MAX_ITEM_ERRORS);
        self.item_errors.drain(..excess);
    }
}

/// An item that could not be serialised, read back or saved. The stored data is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.collection, self.id, self.message)
    }
}
