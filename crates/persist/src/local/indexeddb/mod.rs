//! [`IndexedDbStore`]: the [`LocalStore`] on IndexedDB.
//!
//! This file holds the reads and writes; the connection lifecycle is `connection.rs`, the layout
//! and its upgrades `layout.rs`, the value format `codec.rs`, DOM error mapping `errors.rs`.

mod codec;
mod connection;
mod errors;
mod layout;
mod sync;

use std::cell::Cell;
use std::fmt;

use indexed_db_futures::error::Error as IdbError;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{TransactionDurability, TransactionMode, TransactionOptions};
use persist_engine::{Change, WriteBatch};
use wasm_bindgen::JsValue;

pub use connection::BlockedHook;
pub use layout::{Migration, MigrationHook, Schema};

use self::connection::Connection;
use self::errors::js_error_message;
use self::layout::{has_store, META_STORE, OUTBOX_ORDER_INDEX, OUTBOX_STORE};
use super::{
    Conflict, DeadLetter, Durability, LoadedItems, LocalFuture, LocalStore, LocalStoreStats,
    OutboxEntry, PendingPush, Resolution, ResolveOutcome, StorageKind, StoreError, StoredItem,
    SyncApplied, SyncBatch, SyncRules, UnreadableItem,
};

/// A [`LocalStore`] on IndexedDB. One connection per store, opened lazily; object stores are
/// created on demand with a version upgrade.
pub struct IndexedDbStore {
    connection: Connection,
    durability: Durability,
    stats: Cell<LocalStoreStats>,
}

impl fmt::Debug for IndexedDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexedDbStore")
            .field("name", &self.connection.name)
            .field("min_version", &self.connection.min_version)
            .field("durability", &self.durability)
            .field("collections", &self.connection.collections())
            .field("open", &self.connection.is_open())
            .finish()
    }
}

impl IndexedDbStore {
    /// A store on the database `name`, at version `min_version` or higher (the runtime bumps the
    /// version by one whenever it must create object stores for new collections).
    pub fn new(name: impl Into<String>, min_version: u32) -> Self {
        Self {
            connection: Connection::new(name.into(), min_version),
            durability: Durability::default(),
            stats: Cell::new(LocalStoreStats::default()),
        }
    }

    /// Runs `hook` inside every schema upgrade.
    pub fn with_migration(mut self, hook: MigrationHook) -> Self {
        self.connection.migration = Some(hook);
        self
    }

    /// Calls `hook(true)` when an open or upgrade waits on another tab that keeps the database
    /// open at an older version (an old build of the app that ignores `versionchange`), and
    /// `hook(false)` when it went through. Meanwhile changes stay queued in memory only.
    pub fn with_on_blocked(mut self, hook: BlockedHook) -> Self {
        self.connection.on_blocked = Some(hook);
        self
    }

    /// How committed writes are made durable ([`Durability::Strict`] by default).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.connection.name
    }

    /// Opens (or creates, or upgrades) the database now, so that an unusable IndexedDB shows up
    /// before the first write.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when IndexedDB cannot be opened; the migration hook's error.
    pub async fn open(&self) -> Result<(), StoreError> {
        self.connection.get().await.map(drop)
    }

    /// Writes `batches` in one readwrite transaction over their collections and the outbox. Every
    /// request is issued before the first await: the page-exit flush runs this while the page
    /// goes away, and only a transaction whose requests are all out gets committed then.
    async fn write(&self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        // Everything that can fail on bad data happens before the transaction opens, so a bad
        // value is reported as such (and never retried), not as a failed transaction.
        let prepared = prepare_batches(batches)?;
        let collections: Vec<String> =
            batches.iter().map(|batch| batch.collection.to_string()).collect();
        let db = self.connection.get().await?;
        if collections.iter().any(|name| !has_store(&db, name)) {
            // A collection nobody prepared (e.g. a raw enqueue of a new name).
            self.connection.ensure(&collections).await?;
            return Box::pin(self.write(batches)).await;
        }
        let mut scope: Vec<&str> = collections.iter().map(String::as_str).collect();
        scope.sort_unstable();
        scope.dedup();
        scope.push(OUTBOX_STORE);
        let result = async {
            let tx = db
                .transaction(scope.as_slice())
                .with_mode(TransactionMode::Readwrite)
                .with_options(TransactionOptions::new().with_durability(match self.durability {
                    Durability::Strict => TransactionDurability::Strict,
                    Durability::Relaxed => TransactionDurability::Relaxed,
                    Durability::BrowserDefault => TransactionDurability::Default,
                }))
                .build()?;
            let outbox = tx.object_store(OUTBOX_STORE)?;
            for (batch, values) in batches.iter().zip(prepared) {
                let collection: &str = &batch.collection;
                let items = tx.object_store(collection)?;
                for (op, value) in batch.ops.iter().zip(values) {
                    let id: &str = &op.key.id;
                    match value {
                        Some(value) => drop(items.put(value).with_key(id).primitive()?),
                        None => drop(items.delete(id).primitive()?),
                    }
                    if op.sync_to_remote {
                        let entry = to_js_json(&OutboxEntry::for_op(op))?;
                        drop(outbox.put(entry).with_key(item_key(collection, id)).primitive()?);
                    }
                }
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                let mut stats = self.stats.get();
                stats.write_transactions += 1;
                stats.items_written += batches.iter().map(|b| b.ops.len() as u64).sum::<u64>();
                self.stats.set(stats);
                Ok(())
            }
            // An abort without a failed request: the commit itself failed, typically on the
            // storage quota, or the connection was closed under it. Retry, do not park.
            Err(IdbError::MissingData(error)) => Err(StoreError::Other {
                name: "AbortError".into(),
                message: format!("transaction aborted ({error}; possibly the storage quota)"),
            }),
            Err(error) => Err(self.connection.classify(error)),
        }
    }

    async fn read_all(&self, collection: &str) -> Result<LoadedItems, StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(collection).build()?;
            let store = tx.object_store(collection)?;
            let keys = store.get_all_keys::<JsValue>().primitive()?;
            let values = store.get_all::<JsValue>().primitive()?;
            let keys: Vec<JsValue> = keys.await?.collect::<Result<_, _>>()?;
            let values: Vec<JsValue> = values.await?.collect::<Result<_, _>>()?;
            Ok::<_, IdbError>((keys, values))
        }
        .await;
        let (keys, values) = result.map_err(|e| self.connection.classify(e))?;
        let mut loaded = LoadedItems::default();
        for (key, value) in keys.into_iter().zip(values) {
            let Some(id) = key.as_string() else {
                let id = stringify(&key).unwrap_or_else(|_| format!("{key:?}"));
                let message = "the record's key is not a string".to_owned();
                loaded.unreadable.push(UnreadableItem { id, message });
                continue;
            };
            match from_stored(&value) {
                Ok(json) => loaded.items.push(StoredItem { id, json }),
                Err(error) => {
                    loaded.unreadable.push(UnreadableItem { id, message: error.to_string() })
                }
            }
        }
        Ok(loaded)
    }

    async fn read_items(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(collection).build()?;
            let store = tx.object_store(collection)?;
            let requests = ids
                .iter()
                .map(|id| store.get::<JsValue, _, _>(id.as_str()).primitive())
                .collect::<Result<Vec<_>, _>>()?;
            let mut values = Vec::with_capacity(requests.len());
            for request in requests {
                values.push(request.await?);
            }
            Ok::<_, IdbError>(values)
        }
        .await;
        let values = result.map_err(|e| self.connection.classify(e))?;
        values
            .into_iter()
            .map(|value| match value {
                Some(value) if !value.is_undefined() => from_stored(&value).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    async fn read_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(META_STORE).build()?;
            let store = tx.object_store(META_STORE)?;
            store.get::<String, _, _>(key).primitive()?.await
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }

    async fn write_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build()?;
            let store = tx.object_store(META_STORE)?;
            drop(store.put(value).with_key(key).primitive()?);
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }

    async fn read_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let db = self.connection.get().await?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let result = async {
            let tx = db.transaction(OUTBOX_STORE).build()?;
            let store = tx.object_store(OUTBOX_STORE)?;
            let in_order = store.index(OUTBOX_ORDER_INDEX)?;
            let values: Vec<JsValue> = in_order
                .get_all::<JsValue>()
                .with_limit(limit)
                .primitive()?
                .await?
                .collect::<Result<_, _>>()?;
            Ok::<_, IdbError>(values)
        }
        .await;
        let values = result.map_err(|e| self.connection.classify(e))?;
        let mut entries = values
            .iter()
            .map(|value| from_js_json::<OutboxEntry>(value).map_err(invalid_bookkeeping))
            .collect::<Result<Vec<_>, _>>()?;
        // The index orders by stamp; equal stamps (never within one session) fall back to serial.
        entries.sort_by(|a, b| a.push_order().cmp(&b.push_order()));
        Ok(entries)
    }

    async fn count_outbox(&self) -> Result<usize, StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(OUTBOX_STORE).build()?;
            let store = tx.object_store(OUTBOX_STORE)?;
            store.count().primitive()?.await
        }
        .await;
        result.map(|count| count as usize).map_err(|e| self.connection.classify(e))
    }
}

impl LocalStore for IndexedDbStore {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }

    fn prepare<'a>(&'a self, collections: &'a [String]) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.connection.ensure(collections))
    }

    fn write_batch<'a>(&'a self, batch: &'a WriteBatch) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write(std::slice::from_ref(batch)))
    }

    fn write_all<'a>(
        &'a self,
        batches: &'a [WriteBatch],
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if batches.is_empty() {
                return Ok(());
            }
            self.write(batches).await
        })
    }

    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> LocalFuture<'a, Result<LoadedItems, StoreError>> {
        Box::pin(self.read_all(collection))
    }

    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        Box::pin(self.read_items(collection, ids))
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> LocalFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.read_meta(key))
    }

    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write_meta(key, value))
    }

    fn outbox<'a>(&'a self, limit: usize) -> LocalFuture<'a, Result<Vec<OutboxEntry>, StoreError>> {
        Box::pin(self.read_outbox(limit))
    }

    fn outbox_len(&self) -> LocalFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.count_outbox())
    }

    fn stats(&self) -> LocalStoreStats {
        self.stats.get()
    }

    fn pending_pushes(
        &self,
        limit: usize,
    ) -> LocalFuture<'_, Result<Vec<PendingPush>, StoreError>> {
        Box::pin(self.read_pending_pushes(limit))
    }

    fn apply_sync<'a>(
        &'a self,
        batch: SyncBatch<'a>,
        rules: &'a SyncRules,
    ) -> LocalFuture<'a, Result<SyncApplied, StoreError>> {
        Box::pin(self.write_sync(batch, rules))
    }

    fn checkpoint(&self) -> LocalFuture<'_, Result<persist_protocol::Revision, StoreError>> {
        Box::pin(self.read_checkpoint())
    }

    fn reset_checkpoint(&self) -> LocalFuture<'_, Result<(), StoreError>> {
        Box::pin(self.delete_checkpoint())
    }

    fn mark_all_for_push<'a>(
        &'a self,
        collections: &'a [String],
        prefix: &'a str,
        stamp: &'a persist_protocol::Hlc,
    ) -> LocalFuture<'a, Result<usize, StoreError>> {
        Box::pin(self.write_resends(collections, prefix, stamp))
    }

    fn dead_letters(&self) -> LocalFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        Box::pin(self.read_dead_letters())
    }

    fn settle_dead_letter<'a>(
        &'a self,
        collection: &'a str,
        id: &'a str,
        retry: bool,
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write_settled_dead_letter(collection, id, retry))
    }

    fn conflicts(&self) -> LocalFuture<'_, Result<Vec<Conflict>, StoreError>> {
        Box::pin(self.read_conflicts())
    }

    fn resolve_conflict<'a>(
        &'a self,
        seen: &'a Conflict,
        resolution: &'a Resolution,
        stamp: &'a persist_protocol::Hlc,
        keep_base: bool,
    ) -> LocalFuture<'a, Result<(ResolveOutcome, SyncApplied), StoreError>> {
        Box::pin(self.write_resolution(seen, resolution, stamp, keep_base))
    }
}

/// The key of an item's outbox entry and sync record: `[collection, id]`.
fn item_key(collection: &str, id: &str) -> JsValue {
    js_sys::Array::of2(&collection.into(), &id.into()).into()
}

/// A bookkeeping record (outbox entry, sync record) as a JS object.
fn to_js_json<T: serde::Serialize>(value: &T) -> Result<JsValue, IdbError> {
    let json = serde_json::to_string(value)
        .map_err(|e| IdbError::from(js_sys::Error::new(&e.to_string())))?;
    js_sys::JSON::parse(&json).map_err(IdbError::from)
}

/// A bookkeeping record read back.
fn from_js_json<T: serde::de::DeserializeOwned>(value: &JsValue) -> Result<T, String> {
    let json = stringify(value).map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| format!("{e} in {json}"))
}

fn invalid_bookkeeping(message: String) -> StoreError {
    StoreError::InvalidData(format!("sync bookkeeping record: {message}"))
}

/// A bookkeeping record that cannot be read, inside a transaction: a `DataError`, which aborts
/// the transaction and is classified as invalid data.
pub(super) fn data_error(message: String) -> IdbError {
    let message = format!("sync bookkeeping record: {message}");
    match web_sys::DomException::new_with_message_and_name(&message, "DataError") {
        Ok(exception) => IdbError::from(JsValue::from(exception)),
        Err(other) => IdbError::from(other),
    }
}

fn stringify(value: &JsValue) -> Result<String, StoreError> {
    js_sys::JSON::stringify(value).map(String::from).map_err(|e| {
        StoreError::InvalidData(format!("stored value is not JSON: {}", js_error_message(&e)))
    })
}

/// The values to put (`None` for deletes), parsed before any transaction opens.
fn prepare_batches(batches: &[WriteBatch]) -> Result<Vec<Vec<Option<JsValue>>>, StoreError> {
    batches
        .iter()
        .map(|batch| {
            batch
                .ops
                .iter()
                .map(|op| match &op.change {
                    Change::Put(payload) => {
                        let encoded = codec::encode(payload.as_str());
                        js_sys::JSON::parse(encoded.text()).map(Some).map_err(|e| {
                            let message = js_error_message(&e);
                            StoreError::InvalidData(format!("{}: not JSON: {message}", op.key))
                        })
                    }
                    Change::Delete => Ok(None),
                })
                .collect()
        })
        .collect()
}

/// The JSON text of a stored item.
fn from_stored(value: &JsValue) -> Result<String, StoreError> {
    stringify(value).map(codec::decode)
}
