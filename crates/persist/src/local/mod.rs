//! Where items are stored on the device: the [`LocalStore`] trait, and the IndexedDB
//! ([`IndexedDbStore`]) and in-memory ([`MemoryStore`]) implementations.
//!
//! Besides the items, a store keeps the sync bookkeeping of `outbox.rs`: an [`OutboxEntry`] per
//! item with a change the server has not acknowledged yet (written in the same transaction as
//! the item, so a change is never durable without its entry), and an [`ItemSync`] per item the
//! server knows. The IndexedDB layout is described in `indexeddb/layout.rs` and in the README.
//!
//! The engine types a store works with ([`WriteBatch`], [`QueuedOp`], [`Change`], ...) are
//! re-exported here for implementors of [`LocalStore`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;

mod indexeddb;
mod memory;
mod outbox;

pub use indexeddb::{BlockedHook, IndexedDbStore, Migration, MigrationHook, Schema};
pub use memory::MemoryStore;
pub use outbox::{ItemSync, OutboxEntry};
pub use persist_engine::{
    BatchId, Change, ItemKey, Payload, QueuedOp, WriteBatch, WriteError, WriteErrorKind,
};

/// A boxed, non-`Send` future (the browser is single-threaded).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Which kind of storage is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageKind {
    /// IndexedDB: survives reloads and browser restarts.
    IndexedDb,
    /// Memory only: lost on reload (tests, or IndexedDB unavailable, e.g. some private modes).
    Memory,
}

/// A stored item as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The item's id.
    pub id: String,
    /// The item's value as JSON text.
    pub json: String,
}

/// A stored record that could not be read (not JSON, or a key that is not a string). It is left
/// in storage untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableItem {
    /// The record's key, as text.
    pub id: String,
    /// Why it could not be read.
    pub message: String,
}

/// Everything read from one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedItems {
    /// Readable items, in id order.
    pub items: Vec<StoredItem>,
    /// Records that could not be read.
    pub unreadable: Vec<UnreadableItem>,
}

/// How hard IndexedDB works to make a committed transaction survive a power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Durability {
    /// Committed data is flushed to disk before the commit completes: survives an OS crash or a
    /// power loss. Slower (one disk flush per batch), which batching keeps cheap.
    #[default]
    Strict,
    /// The browser may report the commit before the data reaches the disk: survives a browser
    /// crash, not always an OS crash or power loss.
    Relaxed,
    /// The browser's own default (Chromium: like relaxed).
    BrowserDefault,
}

/// Counters a store keeps about itself (used by tests and the dashboard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalStoreStats {
    /// Read-write transactions committed by [`LocalStore::write_batch`].
    pub write_transactions: u64,
    /// Items written (put or deleted) by those transactions.
    pub items_written: u64,
}

/// Why a local store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage cannot be used at all (no IndexedDB, blocked, closed...).
    #[error("local storage unavailable: {0}")]
    Unavailable(String),
    /// The browser refused to store more (`QuotaExceededError`).
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A stored value could not be read or a value could not be stored (`DataError`,
    /// `DataCloneError`, invalid JSON): retrying the same data cannot succeed.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// Any other failure, possibly transient (`AbortError`, `UnknownError`, ...).
    #[error("{name}: {message}")]
    Other {
        /// The DOM exception name, or `Error`.
        name: String,
        /// Its message.
        message: String,
    },
}

impl StoreError {
    /// How the engine should treat a write that failed with this error.
    pub fn write_error_kind(&self) -> WriteErrorKind {
        match self {
            StoreError::QuotaExceeded(_) => WriteErrorKind::QuotaExceeded,
            StoreError::InvalidData(_) => WriteErrorKind::Permanent,
            StoreError::Unavailable(_) | StoreError::Other { .. } => WriteErrorKind::Transient,
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        WriteError { kind: error.write_error_kind(), message: error.to_string() }
    }
}

/// Where the runtime keeps items on the device.
///
/// Implement it to store elsewhere (or to inject failures in tests). Every method may be called
/// again while an earlier call is still running; implementations serialise what must be.
pub trait LocalStore: fmt::Debug + 'static {
    /// What kind of storage this is.
    fn kind(&self) -> StorageKind;

    /// Makes sure `collections` can be written (IndexedDB: creates their object stores with a
    /// version upgrade when missing). Called before a store's first load.
    fn prepare<'a>(&'a self, collections: &'a [String]) -> LocalFuture<'a, Result<(), StoreError>>;

    /// Writes a batch atomically: every put and delete, plus an [`OutboxEntry`] for each op that
    /// syncs to the remote (its base revision taken from the item's [`ItemSync`]), all or
    /// nothing.
    fn write_batch<'a>(&'a self, batch: &'a WriteBatch) -> LocalFuture<'a, Result<(), StoreError>>;

    /// Writes several batches (of different collections) in one transaction, all or nothing.
    /// Used when the page goes away, to write everything queued at once. The default writes them
    /// one after the other.
    fn write_all<'a>(
        &'a self,
        batches: &'a [WriteBatch],
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for batch in batches {
                self.write_batch(batch).await?;
            }
            Ok(())
        })
    }

    /// Every item of a collection, in id order; records that cannot be read are listed apart.
    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> LocalFuture<'a, Result<LoadedItems, StoreError>>;

    /// The current JSON of some items (`None` for absent ones), in the order asked.
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> LocalFuture<'a, Result<Vec<Option<String>>, StoreError>>;

    /// A bookkeeping value.
    fn get_meta<'a>(&'a self, key: &'a str) -> LocalFuture<'a, Result<Option<String>, StoreError>>;

    /// Sets a bookkeeping value.
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> LocalFuture<'a, Result<(), StoreError>>;

    /// Pending outbound changes, oldest change first (by HLC stamp), at most `limit`.
    fn outbox<'a>(&'a self, limit: usize) -> LocalFuture<'a, Result<Vec<OutboxEntry>, StoreError>>;

    /// Number of pending outbound changes.
    fn outbox_len(&self) -> LocalFuture<'_, Result<usize, StoreError>>;

    /// Counters about this store.
    fn stats(&self) -> LocalStoreStats;
}
