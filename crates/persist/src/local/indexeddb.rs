//! [`IndexedDbStore`]: the [`LocalStore`] on IndexedDB.
//!
//! One connection per store. Object stores are created on demand with a version upgrade; a
//! `versionchange` from another tab (which wants to upgrade) closes our connection at once and the
//! next operation reopens it, so tabs never block each other's upgrades.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::{Rc, Weak};

use futures::lock::Mutex;
use indexed_db_futures::database::Database;
use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use wasm_bindgen::{JsCast, JsValue};

use super::{
    LocalFuture, LocalStore, LocalStoreStats, OutboxEntry, StorageKind, StoreError, StoredItem,
    META_STORE, OUTBOX_STORE,
};
use crate::engine::{Change, WriteBatch};

/// A schema upgrade about to happen: the app's migration hook sees it inside the upgrade
/// transaction, after the runtime has created the object stores it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The version the database had (0 when it is new).
    pub old_version: u32,
    /// The version it is upgraded to.
    pub new_version: u32,
}

/// A function run inside every schema upgrade (to create indexes, move data...).
pub type MigrationHook = Rc<dyn Fn(&Database, Migration) -> Result<(), String>>;

/// A [`LocalStore`] on IndexedDB.
pub struct IndexedDbStore {
    name: String,
    min_version: u32,
    migration: Option<MigrationHook>,
    state: Rc<Shared>,
}

#[derive(Default)]
struct Shared {
    db: RefCell<Option<Database>>,
    /// Bumped every time the connection is dropped, so a stale close never hits a new one.
    generation: Cell<u64>,
    /// Collections whose object stores must exist.
    collections: RefCell<BTreeSet<String>>,
    /// Serialises opening and upgrading.
    open_lock: Mutex<()>,
    stats: Cell<LocalStoreStats>,
}

impl fmt::Debug for IndexedDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexedDbStore")
            .field("name", &self.name)
            .field("min_version", &self.min_version)
            .field("collections", &self.state.collections.borrow())
            .field("open", &self.state.db.borrow().is_some())
            .finish()
    }
}

impl IndexedDbStore {
    /// A store on the database `name`, at version `min_version` or higher (the runtime bumps the
    /// version by one whenever it must create object stores for new collections).
    pub fn new(name: impl Into<String>, min_version: u32) -> Self {
        Self {
            name: name.into(),
            min_version: min_version.max(1),
            migration: None,
            state: Rc::new(Shared::default()),
        }
    }

    /// Runs `hook` inside every schema upgrade.
    pub fn with_migration(mut self, hook: MigrationHook) -> Self {
        self.migration = Some(hook);
        self
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens (or creates) the database now, so that an unusable IndexedDB shows up before the
    /// first write.
    pub async fn open(&self) -> Result<(), StoreError> {
        self.connection().await.map(drop)
    }

    /// The open connection, opening or upgrading it first if needed.
    async fn connection(&self) -> Result<Database, StoreError> {
        if let Some(db) = self.state.db.borrow().clone() {
            return Ok(db);
        }
        let _guard = self.state.open_lock.lock().await;
        if let Some(db) = self.state.db.borrow().clone() {
            return Ok(db);
        }
        let required = self.required_stores();
        let migration = self.migration.clone();
        // Open at the configured version (one upgrade for a new database); a database already
        // upgraded further (new collections bump it) is opened at its own version.
        let db = match open_database(&self.name, Some(self.min_version), &required, migration).await
        {
            Err(StoreError::Other { name, .. }) if name == "VersionError" => {
                open_database(&self.name, None, &required, self.migration.clone()).await?
            }
            other => other?,
        };
        let current = db.version() as u32;
        let missing = required.iter().any(|name| !has_store(&db, name));
        let db = if missing || current < self.min_version {
            db.close();
            let target = (current + 1).max(self.min_version);
            open_database(&self.name, Some(target), &required, self.migration.clone()).await?
        } else {
            db
        };
        self.install(db.clone());
        Ok(db)
    }

    fn required_stores(&self) -> Vec<String> {
        let mut stores: Vec<String> = vec![OUTBOX_STORE.to_owned(), META_STORE.to_owned()];
        stores.extend(self.state.collections.borrow().iter().cloned());
        stores
    }

    /// Keeps `db` as the connection and closes it when another tab asks to upgrade.
    fn install(&self, db: Database) {
        let generation = self.state.generation.get() + 1;
        self.state.generation.set(generation);
        *self.state.db.borrow_mut() = Some(db.clone());
        let Ok(mut changes) = db.version_changes() else {
            return;
        };
        let weak: Weak<Shared> = Rc::downgrade(&self.state);
        wasm_bindgen_futures::spawn_local(async move {
            // Ends when the connection closes or another tab wants a new version.
            let _ = changes.recv().await;
            if let Some(state) = weak.upgrade() {
                if state.generation.get() == generation {
                    if let Some(db) = state.db.borrow_mut().take() {
                        db.close();
                    }
                }
            }
        });
    }

    fn drop_connection(&self) {
        if let Some(db) = self.state.db.borrow_mut().take() {
            db.close();
        }
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let db = self.connection().await?;
        let collection: &str = &batch.collection;
        let stores = [collection, OUTBOX_STORE];
        let result = async {
            let tx = db.transaction(stores).with_mode(TransactionMode::Readwrite).build()?;
            let items = tx.object_store(collection)?;
            let outbox = tx.object_store(OUTBOX_STORE)?;
            for op in &batch.ops {
                let id: &str = &op.key.id;
                match &op.change {
                    Change::Put(payload) => {
                        let value = js_sys::JSON::parse(payload.as_str()).map_err(|e| {
                            IdbError::from(js_sys::Error::new(&format!(
                                "{}: invalid JSON: {}",
                                op.key,
                                js_error_message(&e)
                            )))
                        })?;
                        drop(items.put(value).with_key(id).primitive()?);
                    }
                    Change::Delete => drop(items.delete(id).primitive()?),
                }
                if op.sync_to_remote {
                    let entry = OutboxEntry {
                        collection: collection.to_owned(),
                        id: id.to_owned(),
                        delete: matches!(op.change, Change::Delete),
                        serial: op.serial,
                    };
                    let key = js_sys::Array::of2(&collection.into(), &id.into());
                    drop(outbox.put(to_js(&entry)?).with_key(JsValue::from(key)).primitive()?);
                }
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                let mut stats = self.state.stats.get();
                stats.write_transactions += 1;
                stats.items_written += batch.ops.len() as u64;
                self.state.stats.set(stats);
                Ok(())
            }
            Err(error) => Err(self.classify(error)),
        }
    }

    /// Maps an IndexedDB error, dropping the connection when it is no longer usable.
    fn classify(&self, error: IdbError) -> StoreError {
        let error = store_error(error);
        if matches!(error, StoreError::Unavailable(_)) {
            self.drop_connection();
        }
        error
    }

    async fn read_all(&self, collection: &str) -> Result<Vec<StoredItem>, StoreError> {
        let db = self.connection().await?;
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
        let (keys, values) = result.map_err(|e| self.classify(e))?;
        keys.into_iter()
            .zip(values)
            .map(|(key, value)| {
                let id = key.as_string().ok_or_else(|| {
                    StoreError::InvalidData(format!("{collection}: a key is not a string"))
                })?;
                Ok(StoredItem { json: stringify(&value)?, id })
            })
            .collect()
    }

    async fn read_items(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let db = self.connection().await?;
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
        let values = result.map_err(|e| self.classify(e))?;
        values
            .into_iter()
            .map(|value| match value {
                Some(value) if !value.is_undefined() => stringify(&value).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    async fn read_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let db = self.connection().await?;
        let result = async {
            let tx = db.transaction(META_STORE).build()?;
            let store = tx.object_store(META_STORE)?;
            store.get::<String, _, _>(key).primitive()?.await
        }
        .await;
        result.map_err(|e| self.classify(e))
    }

    async fn write_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let db = self.connection().await?;
        let result = async {
            let tx = db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build()?;
            let store = tx.object_store(META_STORE)?;
            drop(store.put(value).with_key(key).primitive()?);
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.classify(e))
    }

    async fn read_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let db = self.connection().await?;
        let result = async {
            let tx = db.transaction(OUTBOX_STORE).build()?;
            let store = tx.object_store(OUTBOX_STORE)?;
            let values: Vec<JsValue> =
                store.get_all::<JsValue>().primitive()?.await?.collect::<Result<_, _>>()?;
            Ok::<_, IdbError>(values)
        }
        .await;
        let values = result.map_err(|e| self.classify(e))?;
        let mut entries = values
            .iter()
            .map(|value| {
                let json = stringify(value)?;
                serde_json::from_str::<OutboxEntry>(&json)
                    .map_err(|e| StoreError::InvalidData(format!("outbox entry {json}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|entry| entry.serial);
        entries.truncate(limit);
        Ok(entries)
    }

    async fn count_outbox(&self) -> Result<usize, StoreError> {
        let db = self.connection().await?;
        let result = async {
            let tx = db.transaction(OUTBOX_STORE).build()?;
            let store = tx.object_store(OUTBOX_STORE)?;
            store.count().primitive()?.await
        }
        .await;
        result.map(|count| count as usize).map_err(|e| self.classify(e))
    }

    async fn ensure(&self, collections: &[String]) -> Result<(), StoreError> {
        {
            let mut known = self.state.collections.borrow_mut();
            for name in collections {
                known.insert(name.clone());
            }
        }
        let db = self.connection().await?;
        if collections.iter().all(|name| has_store(&db, name)) {
            return Ok(());
        }
        // Upgrade: the next connection() creates the missing stores.
        self.drop_connection();
        self.connection().await.map(drop)
    }
}

impl Drop for IndexedDbStore {
    fn drop(&mut self) {
        self.drop_connection();
    }
}

impl LocalStore for IndexedDbStore {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }

    fn prepare<'a>(&'a self, collections: &'a [String]) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.ensure(collections))
    }

    fn write_batch<'a>(&'a self, batch: &'a WriteBatch) -> LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write(batch))
    }

    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> LocalFuture<'a, Result<Vec<StoredItem>, StoreError>> {
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
        self.state.stats.get()
    }
}

fn has_store(db: &Database, name: &str) -> bool {
    db.object_store_names().any(|store| store == name)
}

async fn open_database(
    name: &str,
    version: Option<u32>,
    required: &[String],
    migration: Option<MigrationHook>,
) -> Result<Database, StoreError> {
    let required = required.to_vec();
    let upgrade = move |event: indexed_db_futures::database::VersionChangeEvent,
                        db: Database|
          -> indexed_db_futures::Result<()> {
        for store in &required {
            if !has_store(&db, store) {
                db.create_object_store(store.as_str()).build()?;
            }
        }
        if let Some(hook) = &migration {
            let step = Migration {
                old_version: event.old_version() as u32,
                new_version: event.new_version().unwrap_or_default() as u32,
            };
            hook(&db, step).map_err(|message| {
                IdbError::from(js_sys::Error::new(&format!("migration failed: {message}")))
            })?;
        }
        Ok(())
    };
    let opened = match version {
        Some(version) => {
            Database::open(name).with_version(version).with_on_upgrade_needed(upgrade).await
        }
        None => Database::open(name).with_on_upgrade_needed(upgrade).await,
    };
    opened.map_err(|error| match error {
        OpenDbError::Base(error) => match store_error(error) {
            StoreError::Other { name, message } if name != "VersionError" => {
                StoreError::Unavailable(format!("cannot open database: {name}: {message}"))
            }
            other => other,
        },
        other => StoreError::Unavailable(format!("cannot open database: {other}")),
    })
}

/// Classifies an IndexedDB error by its DOM exception name.
fn store_error(error: IdbError) -> StoreError {
    match error {
        IdbError::DomException(exception) => {
            let sys: web_sys::DomException = exception.into();
            StoreError::from_dom_exception(&sys)
        }
        IdbError::Serialisation(error) => StoreError::InvalidData(error.to_string()),
        IdbError::MissingData(error) => StoreError::InvalidData(error.to_string()),
        IdbError::Unknown(error) => {
            let value: JsValue = error.into();
            match value.dyn_into::<web_sys::DomException>() {
                Ok(exception) => StoreError::from_dom_exception(&exception),
                Err(value) => {
                    StoreError::Other { name: "Error".into(), message: js_error_message(&value) }
                }
            }
        }
    }
}

impl StoreError {
    /// Classifies a DOM exception raised by IndexedDB: `QuotaExceededError` → quota,
    /// `DataError`/`DataCloneError` → invalid data, `InvalidStateError`/`NotFoundError` (closed
    /// or deleted database) → unavailable, anything else (`AbortError`, `UnknownError`, ...) →
    /// other, retried.
    pub fn from_dom_exception(exception: &web_sys::DomException) -> Self {
        let (name, message) = (exception.name(), exception.message());
        match name.as_str() {
            "QuotaExceededError" => StoreError::QuotaExceeded(message),
            "DataError" | "DataCloneError" => StoreError::InvalidData(format!("{name}: {message}")),
            "InvalidStateError" | "NotFoundError" => {
                StoreError::Unavailable(format!("{name}: {message}"))
            }
            _ => StoreError::Other { name, message },
        }
    }
}

fn js_error_message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, IdbError> {
    let json = serde_json::to_string(value)
        .map_err(|e| IdbError::from(js_sys::Error::new(&e.to_string())))?;
    js_sys::JSON::parse(&json).map_err(IdbError::from)
}

fn stringify(value: &JsValue) -> Result<String, StoreError> {
    js_sys::JSON::stringify(value).map(String::from).map_err(|e| {
        StoreError::InvalidData(format!("stored value is not JSON: {}", js_error_message(&e)))
    })
}
