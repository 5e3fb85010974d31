//! [`PersistStatus`]: what the runtime is doing, for the app and the dashboard, and the
//! [`ItemError`]s it lists.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::local::StorageKind;

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
