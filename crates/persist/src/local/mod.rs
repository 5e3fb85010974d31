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

mod conflict;
mod indexeddb;
mod memory;
mod outbox;
mod plan;

pub use conflict::{Conflict, ConflictCase, Resolution, ResolveOutcome, Resolver};
pub use indexeddb::{BlockedHook, IndexedDbStore, Migration, MigrationHook, Schema};
pub use memory::MemoryStore;
pub use outbox::{ItemSync, OutboxEntry};
pub use persist_engine::{
    BatchId, Change, ItemKey, Payload, QueuedOp, WriteBatch, WriteError, WriteErrorKind,
};
pub use plan::{DeadLetter, PushAnswer, QueuedKeys, SyncApplied, SyncBatch, SyncRules};

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

    /// The next changes to push, oldest first, at most `limit`: each outbox entry with its base
    /// revision filled in (from the item's [`ItemSync`] unless the entry was re-based) and the
    /// item's current value (`None` for a delete). Items with an open [`Conflict`] are left out
    /// until the user resolves it.
    ///
    /// The sync methods have defaults that refuse, so a store written before sync existed still
    /// works locally; the runtime reports the error when a remote is configured.
    fn pending_pushes(
        &self,
        limit: usize,
    ) -> LocalFuture<'_, Result<Vec<PendingPush>, StoreError>> {
        let _ = limit;
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// Applies what the server said (push answers, or a pulled page with its checkpoint) in one
    /// transaction: items, outbox entries, known revisions, dead letters and checkpoint together,
    /// decided per item by the rules of `plan.rs`.
    fn apply_sync<'a>(
        &'a self,
        batch: SyncBatch<'a>,
        rules: &'a SyncRules,
    ) -> LocalFuture<'a, Result<SyncApplied, StoreError>> {
        let _ = (batch, rules);
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// The revision the next pull starts after (0 before the first pull).
    fn checkpoint(&self) -> LocalFuture<'_, Result<persist_protocol::Revision, StoreError>> {
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// Forgets the checkpoint, so the next pull reads everything again (a full pull; items with
    /// pending local changes are kept, see [`apply_sync`](Self::apply_sync)).
    fn reset_checkpoint(&self) -> LocalFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// Puts every stored item of `collections` that has no pending change in the outbox (as a
    /// put of its current value), so the next push makes sure the server has it: after the
    /// server lost data, or to seed a new server. Op ids are `<prefix>-<n>`, stamps `stamp` with
    /// counter `n`. Returns how many entries were added.
    fn mark_all_for_push<'a>(
        &'a self,
        collections: &'a [String],
        prefix: &'a str,
        stamp: &'a persist_protocol::Hlc,
    ) -> LocalFuture<'a, Result<usize, StoreError>> {
        let _ = (collections, prefix, stamp);
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// The changes the server rejected for good.
    fn dead_letters(&self) -> LocalFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Settles a dead letter: `retry` puts the change back in the outbox under a new op id
    /// (unless a newer change of the item is pending, which supersedes it); otherwise it is
    /// discarded (the local value stays as it is).
    fn settle_dead_letter<'a>(
        &'a self,
        collection: &'a str,
        id: &'a str,
        retry: bool,
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        let _ = (collection, id, retry);
        Box::pin(async { Err(sync_unsupported()) })
    }

    /// The open conflicts, waiting for the user (see [`Conflict`]).
    fn conflicts(&self) -> LocalFuture<'_, Result<Vec<Conflict>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Resolves the open conflict of an item in one transaction: writes the chosen value, puts
    /// it in the outbox as a new change stamped `stamp` on top of the server's revision the
    /// conflict saw (none when the choice is the server's version), and closes the conflict.
    /// `keep_base` says whether the collection keeps merge bases. Nothing is written when the
    /// item has no open conflict, or when its server side is no longer revision `seen` (the one
    /// the user decided on). Returns what became of it and what changed locally.
    fn resolve_conflict<'a>(
        &'a self,
        seen: &'a Conflict,
        resolution: &'a Resolution,
        stamp: &'a persist_protocol::Hlc,
        keep_base: bool,
    ) -> LocalFuture<'a, Result<(ResolveOutcome, SyncApplied), StoreError>> {
        let _ = (seen, resolution, stamp, keep_base);
        Box::pin(async { Err(sync_unsupported()) })
    }
}

/// A change ready to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPush {
    /// The outbox entry, its `base_revision` filled in.
    pub entry: OutboxEntry,
    /// The item's value as JSON text; `None` for a delete (or an item no longer stored).
    pub value: Option<String>,
}

fn sync_unsupported() -> StoreError {
    StoreError::Unavailable("this local store does not support syncing with a remote".into())
}
