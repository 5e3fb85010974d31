//! [`IndexedDbStore`]: the [`LocalStore`] on IndexedDB.
//!
//! One connection per store. Object stores are created on demand with a version upgrade; a
//! `versionchange` from another tab (which wants to upgrade) closes our connection at once and the
//! next operation reopens it, so tabs never block each other's upgrades.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::lock::Mutex;
use indexed_db_futures::database::Database;
use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{TransactionDurability, TransactionMode, TransactionOptions};
use wasm_bindgen::{JsCast, JsValue};

use super::{
    Durability, LoadedItems, LocalFuture, LocalStore, LocalStoreStats, OutboxEntry, StorageKind,
    StoreError, StoredItem, UnreadableItem, META_STORE, OUTBOX_STORE,
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
    durability: Durability,
    on_blocked: Option<BlockedHook>,
    state: Rc<Shared>,
}

/// Called with `true` when opening the database is blocked (another tab keeps it open at an
/// older version and does not close it) and with `false` once that open went through.
pub type BlockedHook = Rc<dyn Fn(bool)>;

#[derive(Default)]
struct Shared {
    db: RefCell<Option<Database>>,
    /// Bumped every time the connection is dropped, so a stale close never hits a new one.
    generation: Cell<u64>,
    /// Dropped when our connection closes, which ends its `versionchange` watcher.
    watcher_stop: RefCell<Option<oneshot::Sender<()>>>,
    /// Collections whose object stores must exist.
    collections: RefCell<BTreeSet<String>>,
    /// Serialises opening and upgrading.
    open_lock: Mutex<()>,
    stats: Cell<LocalStoreStats>,
}

impl Shared {
    fn close(&self) {
        self.watcher_stop.borrow_mut().take();
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }
}

impl fmt::Debug for IndexedDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexedDbStore")
            .field("name", &self.name)
            .field("min_version", &self.min_version)
            .field("durability", &self.durability)
            .field("collections", &self.state.collections.borrow())
            .field("open", &self.state.db.borrow().is_some())
            .finish()
    }
}

/// Attempts at opening a database that has all the object stores we need (another tab may
/// upgrade it at the same time, without our stores).
const OPEN_ATTEMPTS: usize = 4;

impl IndexedDbStore {
    /// A store on the database `name`, at version `min_version` or higher (the runtime bumps the
    /// version by one whenever it must create object stores for new collections).
    pub fn new(name: impl Into<String>, min_version: u32) -> Self {
        Self {
            name: name.into(),
            min_version: min_version.max(1),
            migration: None,
            durability: Durability::default(),
            on_blocked: None,
            state: Rc::new(Shared::default()),
        }
    }

    /// Runs `hook` inside every schema upgrade.
    pub fn with_migration(mut self, hook: MigrationHook) -> Self {
        self.migration = Some(hook);
        self
    }

    /// Calls `hook(true)` when an open or upgrade waits on another tab that keeps the database
    /// open at an older version (an old build of the app that ignores `versionchange`), and
    /// `hook(false)` when it went through. Meanwhile changes stay queued in memory only.
    pub fn with_on_blocked(mut self, hook: BlockedHook) -> Self {
        self.on_blocked = Some(hook);
        self
    }

    /// How committed writes are made durable ([`Durability::Strict`] by default).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
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
        // Open at the configured version (one upgrade for a new database); a database already
        // upgraded further (new collections bump it) is opened at its own version.
        let mut db = match self.open_database(Some(self.min_version), &required).await {
            Err(StoreError::Other { name, .. }) if name == "VersionError" => {
                self.open_database(None, &required).await?
            }
            other => other?,
        };
        let mut attempts = 1;
        while required.iter().any(|name| !has_store(&db, name)) || version(&db) < self.min_version {
            if attempts == OPEN_ATTEMPTS {
                db.close();
                return Err(StoreError::Unavailable(format!(
                    "database {} still lacks object stores after {OPEN_ATTEMPTS} upgrades",
                    self.name
                )));
            }
            attempts += 1;
            let target = (version(&db) + 1).max(self.min_version);
            db.close();
            db = match self.open_database(Some(target), &required).await {
                // Another tab upgraded past `target` meanwhile: take its version and check again.
                Err(StoreError::Other { name, .. }) if name == "VersionError" => {
                    self.open_database(None, &required).await?
                }
                other => other?,
            };
        }
        self.install(db.clone());
        Ok(db)
    }

    async fn open_database(
        &self,
        version: Option<u32>,
        required: &[String],
    ) -> Result<Database, StoreError> {
        let blocked = Rc::new(Cell::new(false));
        let opened = open_database(
            &self.name,
            version,
            required,
            &self.migration,
            &self.on_blocked,
            &blocked,
        )
        .await;
        if let (true, Some(hook)) = (blocked.get(), &self.on_blocked) {
            hook(false);
        }
        opened
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
        let (stop, stopped) = oneshot::channel::<()>();
        *self.state.watcher_stop.borrow_mut() = Some(stop);
        let weak: Weak<Shared> = Rc::downgrade(&self.state);
        wasm_bindgen_futures::spawn_local(async move {
            // Ends when another tab wants a new version, or when we close this connection
            // ourselves (IndexedDB fires no `close` event then, so `stopped` ends the wait).
            let change = Box::pin(changes.recv());
            if let Either::Left((Some(_), _)) = select(change, stopped).await {
                if let Some(state) = weak.upgrade() {
                    if state.generation.get() == generation {
                        state.close();
                    }
                }
            }
        });
    }

    fn drop_connection(&self) {
        self.state.close();
    }

    /// Writes `batches` in one readwrite transaction over their collections and the outbox.
    async fn write(&self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        // Everything that can fail on bad data happens before the transaction opens, so a bad
        // value is reported as such (and never retried), not as a failed transaction.
        let prepared = prepare_batches(batches)?;
        let collections: Vec<String> =
            batches.iter().map(|batch| batch.collection.to_string()).collect();
        let db = self.connection().await?;
        if collections.iter().any(|name| !has_store(&db, name)) {
            // A collection nobody prepared (e.g. `Persistence::enqueue` of a new name).
            self.ensure(&collections).await?;
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
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                let mut stats = self.state.stats.get();
                stats.write_transactions += 1;
                stats.items_written += batches.iter().map(|b| b.ops.len() as u64).sum::<u64>();
                self.state.stats.set(stats);
                Ok(())
            }
            // An abort without a failed request: the commit itself failed, typically on the
            // storage quota, or the connection was closed under it. Retry, do not park.
            Err(IdbError::MissingData(error)) => Err(StoreError::Other {
                name: "AbortError".into(),
                message: format!("transaction aborted ({error}; possibly the storage quota)"),
            }),
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

    async fn read_all(&self, collection: &str) -> Result<LoadedItems, StoreError> {
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
                Some(value) if !value.is_undefined() => from_stored(&value).map(Some),
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
        self.state.stats.get()
    }
}

fn has_store(db: &Database, name: &str) -> bool {
    db.object_store_names().any(|store| store == name)
}

fn version(db: &Database) -> u32 {
    db.version() as u32
}

async fn open_database(
    name: &str,
    version: Option<u32>,
    required: &[String],
    migration: &Option<MigrationHook>,
    on_blocked: &Option<BlockedHook>,
    blocked: &Rc<Cell<bool>>,
) -> Result<Database, StoreError> {
    let notify = on_blocked.clone();
    let flag = Rc::clone(blocked);
    let on_blocked = move |_event: indexed_db_futures::database::VersionChangeEvent| {
        flag.set(true);
        if let Some(hook) = &notify {
            hook(true);
        }
        Ok(())
    };
    let required = required.to_vec();
    let migration = migration.clone();
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
            Database::open(name)
                .with_version(version)
                .with_on_blocked(on_blocked)
                .with_on_upgrade_needed(upgrade)
                .await
        }
        None => {
            Database::open(name).with_on_blocked(on_blocked).with_on_upgrade_needed(upgrade).await
        }
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

/// The object key that marks a record stored as JSON text (see [`LOSSLESS_WRAPPER_KEY`]).
///
/// Items are stored as plain objects (readable in the browser's dev tools), except items whose
/// JSON holds numbers a JavaScript number cannot carry exactly (integers past 2^53, more than 15
/// significant digits): those are stored as `{"__yp_json": "<the JSON text>"}` so nothing changes
/// on the way through IndexedDB.
pub const LOSSLESS_WRAPPER_KEY: &str = "__yp_json";

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
                        to_stored(payload.as_str()).map(Some).map_err(|message| {
                            StoreError::InvalidData(format!("{}: {message}", op.key))
                        })
                    }
                    Change::Delete => Ok(None),
                })
                .collect()
        })
        .collect()
}

/// The JS value stored for an item's JSON text.
fn to_stored(json: &str) -> Result<JsValue, String> {
    let value =
        js_sys::JSON::parse(json).map_err(|e| format!("not JSON: {}", js_error_message(&e)))?;
    if numbers_fit_in_f64(json) {
        return Ok(value);
    }
    let wrapper = js_sys::Object::new();
    js_sys::Reflect::set(&wrapper, &LOSSLESS_WRAPPER_KEY.into(), &json.into())
        .map_err(|e| js_error_message(&e))?;
    Ok(wrapper.into())
}

/// The JSON text of a stored value (unwrapping [`LOSSLESS_WRAPPER_KEY`] records).
fn from_stored(value: &JsValue) -> Result<String, StoreError> {
    if value.is_object() {
        let keys = js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>());
        if keys.length() == 1 && keys.get(0).as_string().as_deref() == Some(LOSSLESS_WRAPPER_KEY) {
            if let Some(json) = js_sys::Reflect::get(value, &LOSSLESS_WRAPPER_KEY.into())
                .ok()
                .and_then(|text| text.as_string())
            {
                return Ok(json);
            }
        }
    }
    stringify(value)
}

/// `false` when a number literal of `json` has more than 15 significant digits, i.e. may not
/// survive a round trip through a JavaScript number. Conservative and cheap: one pass, no
/// allocation; strings are skipped.
pub(crate) fn numbers_fit_in_f64(json: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    // Significant digits of the current number so far; `None` outside a number's mantissa.
    let mut significant: Option<usize> = None;
    let mut in_exponent = false;
    for byte in json.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'0'..=b'9' if !in_exponent => {
                let count = significant.get_or_insert(0);
                // Leading zeros (0.000123) are not significant.
                if *count > 0 || byte != b'0' {
                    *count += 1;
                    if *count > 15 {
                        return false;
                    }
                }
            }
            b'0'..=b'9' | b'+' => {}
            b'.' => {}
            b'-' if !in_exponent => significant = None,
            b'-' => {}
            b'e' | b'E' => in_exponent = true,
            other => {
                in_string = other == b'"';
                significant = None;
                in_exponent = false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::numbers_fit_in_f64;

    #[test]
    fn numbers_past_fifteen_significant_digits_are_flagged() {
        assert!(numbers_fit_in_f64(r#"{"a":1,"b":-2.5e300,"c":"12345678901234567890"}"#));
        assert!(numbers_fit_in_f64("[0.000000000000000000001, 123456789012345]"));
        assert!(numbers_fit_in_f64(r#"{"s":"a \" 12345678901234567"}"#));
        assert!(!numbers_fit_in_f64(r#"{"id":9007199254740993}"#));
        assert!(!numbers_fit_in_f64("[1.0000000000000001]"));
        assert!(!numbers_fit_in_f64("-1234567890123456"));
    }
}
