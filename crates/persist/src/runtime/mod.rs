//! The browser runtime: drives the sans-IO [`Engine`] with IndexedDB, timers, page-lifecycle
//! events and a `BroadcastChannel`.
//!
//! Everything here is owned by one [`Persistence`] handle. Timers, event listeners and the channel
//! live inside it and are dropped with it; every callback holds only a weak reference, so nothing
//! keeps the runtime alive but its handles (and the tasks writing right now).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures::channel::oneshot;
use gloo_timers::callback::Timeout;

use crate::config::{AutoSyncConfigPatch, ConfigError, CollectionConfig, CollectionConfigPatch};
use crate::engine::{
    Action, AutoSyncStatus, Change, Engine, FlushError, FlushId, ItemKey, SyncError, WriteBatch,
    WriteError,
};
use crate::error::Error;
use crate::local::{IndexedDbStore, LocalStore, LocalStoreStats, MemoryStore, StorageKind};
use crate::metrics::MetricsSnapshot;
use crate::observe::{Subscribers, Subscription};
use crate::parts::ItemError;
use crate::time::Time;

pub(crate) mod clock;
mod lifecycle;
mod options;
mod status;
mod tabs;

pub use options::{PersistOptions, DEFAULT_DATABASE};
pub use status::PersistStatus;

/// [`PersistStatus::blocked`] while another tab blocks opening the database.
const BLOCKED_NOTE: &str = "waiting for another tab: it keeps this app's database open at an \
    older version. Close or reload the other tabs of this app; keep this one open until then, \
    its changes are not saved yet.";

/// The local store `options` ask for: a custom one, memory, or IndexedDB whose blocked opens
/// are reported to `runtime`'s status.
fn local_store(options: &PersistOptions, runtime: Weak<Inner>) -> Rc<dyn LocalStore> {
    if let Some(store) = options.custom_store.clone() {
        return store;
    }
    if options.memory_only {
        return Rc::new(MemoryStore::new());
    }
    let mut store = IndexedDbStore::new(&options.database, options.database_version)
        .with_durability(options.durability)
        .with_on_blocked(Rc::new(move |blocked| {
            if let Some(inner) = runtime.upgrade() {
                inner.status.borrow_mut().blocked = blocked.then(|| BLOCKED_NOTE.to_owned());
                inner.schedule_notify();
            }
        }));
    if let Some(hook) = options.migration.clone() {
        store = store.with_migration(hook);
    }
    Rc::new(store)
}

/// Applies changes committed by another tab to one collection of a store.
pub(crate) type Applier = Rc<dyn Fn(&[(String, Option<String>)]) -> Vec<ItemError>>;
type WeakApplier = Weak<dyn Fn(&[(String, Option<String>)]) -> Vec<ItemError>>;

/// A handle to a persistence runtime. Cheap to clone; the runtime stops (timers, page listeners,
/// tab channel) when the last handle is dropped. The yewdux context it runs for holds one handle
/// until [`shutdown`](crate::shutdown).
///
/// Most apps never create one by hand: [`install`](crate::install) makes one per yewdux context
/// on first use, and [`configure`](crate::configure) sets its options first.
#[derive(Clone)]
pub struct Persistence {
    inner: Rc<Inner>,
}

impl PartialEq for Persistence {
    /// Two handles are equal when they drive the same runtime.
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persistence")
            .field("database", &self.inner.database)
            .field("status", &*self.inner.status.borrow())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    database: String,
    engine: RefCell<Engine>,
    store: RefCell<Rc<dyn LocalStore>>,
    status: RefCell<PersistStatus>,
    status_subscribers: Subscribers<PersistStatus>,
    metrics_subscribers: Subscribers<MetricsSnapshot>,
    /// A notification of subscribers is scheduled (they are told outside any borrow).
    notify_scheduled: Cell<bool>,
    metrics_dirty: Cell<bool>,
    flush_waiters: RefCell<HashMap<FlushId, oneshot::Sender<Result<(), FlushError>>>>,
    ready_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Stores still loading their saved data; writes wait until this is 0.
    hydrating: Cell<usize>,
    timer: RefCell<Option<(Time, Timeout)>>,
    appliers: RefCell<HashMap<String, Vec<WeakApplier>>>,
    /// Some store loaded its data from the local store: falling back to memory now would hide it.
    loaded_from_storage: Cell<bool>,
    tabs: RefCell<Option<tabs::TabChannel>>,
    page_exit: RefCell<Option<lifecycle::PageExitListeners>>,
    tab_id: String,
}

impl Persistence {
    /// Starts a runtime with `options`. IndexedDB is opened lazily by the first store that
    /// installs; if it cannot be opened the runtime falls back to memory and says so in
    /// [`status`](Self::status).
    ///
    /// # Errors
    /// - [`Error::Config`] when the options' engine configuration is invalid.
    pub fn new(options: PersistOptions) -> Result<Self, Error> {
        let seed =
            options.rng_seed.unwrap_or_else(|| (js_sys::Math::random() * 2f64.powi(53)) as u64);
        let mut config = options.config.clone();
        // No remote is wired into the browser runtime yet: automatic syncs would only fail.
        config.auto_sync.enabled = false;
        let engine = Engine::new(config, seed)?;
        // Cyclic: the IndexedDB store reports a blocked open to the runtime that owns it.
        let inner = Rc::new_cyclic(|runtime: &Weak<Inner>| {
            let store = local_store(&options, runtime.clone());
            let mut status = PersistStatus::new(store.kind());
            if options.memory_only {
                status.storage_note = Some("memory-only by configuration".into());
            }
            Inner {
                database: options.database.clone(),
                engine: RefCell::new(engine),
                store: RefCell::new(store),
                status: RefCell::new(status),
                status_subscribers: Subscribers::new(),
                metrics_subscribers: Subscribers::new(),
                notify_scheduled: Cell::new(false),
                metrics_dirty: Cell::new(false),
                flush_waiters: RefCell::new(HashMap::new()),
                ready_waiters: RefCell::new(Vec::new()),
                hydrating: Cell::new(0),
                timer: RefCell::new(None),
                appliers: RefCell::new(HashMap::new()),
                loaded_from_storage: Cell::new(false),
                tabs: RefCell::new(None),
                page_exit: RefCell::new(None),
                tab_id: format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64),
            }
        });
        if options.broadcast {
            let channel_name = format!("yewdux-persist/{}", options.database);
            *inner.tabs.borrow_mut() = tabs::TabChannel::open(&channel_name, Rc::downgrade(&inner));
        }
        if options.flush_on_page_hide {
            *inner.page_exit.borrow_mut() =
                lifecycle::PageExitListeners::attach(Rc::downgrade(&inner));
        }
        Ok(Persistence { inner })
    }

    /// Writes everything queued now, ignoring debounce and backoff. Resolves when every change
    /// made before the call is durable in local storage, or with the keys that failed (they stay
    /// queued and are retried).
    ///
    /// While stores are still loading it first waits for them: changes made meanwhile are queued
    /// only once loading ends.
    pub fn flush(&self) -> impl Future<Output = Result<(), Error>> + 'static {
        let loading = (self.inner.hydrating.get() > 0).then(|| self.ready());
        let inner = Rc::clone(&self.inner);
        async move {
            if let Some(loading) = loading {
                loading.await;
            }
            let (sender, receiver) = oneshot::channel();
            let id = inner.engine.borrow_mut().flush(clock::now());
            inner.flush_waiters.borrow_mut().insert(id, sender);
            inner.drive();
            drop(inner);
            match receiver.await {
                Ok(result) => result.map_err(Error::Flush),
                Err(_) => Err(Error::Stopped),
            }
        }
    }

    /// A weak handle: does not keep the runtime alive.
    pub fn downgrade(&self) -> WeakPersistence {
        WeakPersistence { inner: Rc::downgrade(&self.inner) }
    }

    /// Resolves once every installed store has loaded its saved data.
    pub fn ready(&self) -> impl Future<Output = ()> + 'static {
        let receiver = if self.inner.hydrating.get() == 0 {
            None
        } else {
            let (sender, receiver) = oneshot::channel();
            self.inner.ready_waiters.borrow_mut().push(sender);
            Some(receiver)
        };
        async move {
            if let Some(receiver) = receiver {
                let _ = receiver.await;
            }
        }
    }

    /// Changes one slice's configuration at runtime (like the seed's `configurePersistence`).
    /// Nothing changes when the patch is invalid.
    pub fn configure(&self, slice: &str, patch: CollectionConfigPatch) -> Result<(), ConfigError> {
        let result = self.inner.engine.borrow_mut().configure_collection(clock::now(), slice, &patch);
        self.inner.drive();
        result
    }

    /// Applies one patch to several slices, all or nothing: when the patch is invalid for any of
    /// them, none changes.
    pub fn configure_many(
        &self,
        slices: &[&str],
        patch: CollectionConfigPatch,
    ) -> Result<(), ConfigError> {
        {
            let engine = self.inner.engine.borrow();
            for slice in slices {
                patch.apply(engine.collection_config(slice), &format!("slice {slice:?}"))?;
            }
        }
        let now = clock::now();
        let mut engine = self.inner.engine.borrow_mut();
        for slice in slices {
            engine.configure_collection(now, slice, &patch)?;
        }
        drop(engine);
        self.inner.drive();
        Ok(())
    }

    /// Starts persisting a slice again.
    pub fn enable(&self, slice: &str) {
        self.inner.engine.borrow_mut().enable_collection(clock::now(), slice);
        self.inner.drive();
    }

    /// Stops persisting new changes of a slice (changes already queued are still written).
    pub fn disable(&self, slice: &str) {
        self.inner.engine.borrow_mut().disable_collection(clock::now(), slice);
        self.inner.drive();
    }

    /// Changes the automatic sync configuration; takes effect at once.
    pub fn configure_auto_sync(&self, patch: AutoSyncConfigPatch) -> Result<(), ConfigError> {
        let result = self.inner.engine.borrow_mut().configure_auto_sync(clock::now(), &patch);
        self.inner.drive();
        result
    }

    /// The configuration a slice uses now.
    pub fn collection_config(&self, slice: &str) -> CollectionConfig {
        self.inner.engine.borrow().collection_config(slice).clone()
    }

    /// Current metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.engine.borrow().metrics().clone()
    }

    /// Calls `callback` with new metrics whenever they change, until the subscription is dropped.
    pub fn subscribe_metrics(&self, callback: impl Fn(&MetricsSnapshot) + 'static) -> Subscription {
        self.inner.metrics_subscribers.subscribe(callback)
    }

    /// Sets counters and history back to zero.
    pub fn reset_metrics(&self) {
        self.inner.engine.borrow_mut().reset_metrics();
        self.inner.drive();
    }

    /// Automatic sync status: pending changes, last and next sync.
    pub fn auto_sync_status(&self) -> AutoSyncStatus {
        self.inner.engine.borrow().auto_sync_status(clock::now())
    }

    /// Wall-clock epoch milliseconds of an engine instant (metrics carry engine instants).
    pub fn wall_time(&self, at: Time) -> f64 {
        clock::wall_millis(at)
    }

    /// Current status.
    pub fn status(&self) -> PersistStatus {
        self.inner.status.borrow().clone()
    }

    /// Calls `callback` with the new status whenever it changes, until the subscription is
    /// dropped.
    pub fn subscribe_status(&self, callback: impl Fn(&PersistStatus) + 'static) -> Subscription {
        self.inner.status_subscribers.subscribe(callback)
    }

    /// Counters of the local store (transactions committed, items written).
    pub fn storage_stats(&self) -> LocalStoreStats {
        self.inner.store.borrow().stats()
    }

    /// The local store in use.
    pub fn local_store(&self) -> Rc<dyn LocalStore> {
        self.inner.store.borrow().clone()
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// Queues a change of one item (what the yewdux listener does for you). A put's payload must
    /// be JSON text.
    ///
    /// # Errors
    /// - [`Error::ReservedCollection`] for collection names starting with `__`.
    pub fn enqueue(&self, collection: &str, id: &str, change: Change) -> Result<(), Error> {
        if crate::local::is_reserved_collection(collection) {
            return Err(Error::ReservedCollection(collection.to_owned()));
        }
        let key = ItemKey::new(collection, id);
        self.inner.engine.borrow_mut().enqueue(clock::now(), key, change);
        self.inner.drive();
        Ok(())
    }

    pub(crate) fn enqueue_many(&self, changes: impl IntoIterator<Item = (ItemKey, Change)>) {
        let now = clock::now();
        {
            let mut engine = self.inner.engine.borrow_mut();
            for (key, change) in changes {
                engine.enqueue(now, key, change);
            }
        }
        self.inner.drive();
    }

    pub(crate) fn report_item_errors(&self, errors: Vec<ItemError>) {
        if errors.is_empty() {
            return;
        }
        self.inner.status.borrow_mut().push_item_errors(errors);
        self.inner.schedule_notify();
    }

    pub(crate) fn report_error(&self, message: String) {
        self.inner.status.borrow_mut().last_error = Some(message);
        self.inner.schedule_notify();
    }

    pub(crate) fn report_collection_error(&self, collection: &str, message: String) {
        self.inner.status.borrow_mut().collection_errors.insert(collection.to_owned(), message);
        self.inner.schedule_notify();
    }

    pub(crate) fn note_storage(&self, note: &str) {
        self.inner.status.borrow_mut().storage_note = Some(note.to_owned());
    }

    pub(crate) fn mark_loaded_from_storage(&self) {
        self.inner.loaded_from_storage.set(true);
    }

    /// Memory fallback is only allowed before any store loaded data from the local store (after
    /// that, switching would hide saved data and lose new changes on reload).
    pub(crate) fn can_fall_back_to_memory(&self) -> bool {
        !self.inner.loaded_from_storage.get()
            && self.inner.store.borrow().kind() != StorageKind::Memory
    }

    /// Reads items again from storage and applies them (changes another tab made while a store
    /// was loading).
    pub(crate) fn reread_from_storage(&self, collection: String, ids: Vec<String>) {
        Rc::clone(&self.inner).apply_from_other_tab(collection, ids);
    }

    /// Switches to memory storage because IndexedDB cannot be used.
    pub(crate) fn fall_back_to_memory(&self, reason: String) {
        *self.inner.store.borrow_mut() = Rc::new(MemoryStore::new());
        let mut status = self.inner.status.borrow_mut();
        status.storage = StorageKind::Memory;
        status.storage_note = Some(format!("memory-only: {reason}"));
        drop(status);
        self.inner.schedule_notify();
    }

    pub(crate) fn begin_hydration(&self) {
        let count = self.inner.hydrating.get();
        if count == 0 {
            self.inner.engine.borrow_mut().pause_writes();
        }
        self.inner.hydrating.set(count + 1);
        self.inner.status.borrow_mut().ready = false;
        self.inner.schedule_notify();
    }

    pub(crate) fn end_hydration(&self) {
        let count = self.inner.hydrating.get().saturating_sub(1);
        self.inner.hydrating.set(count);
        if count == 0 {
            self.inner.engine.borrow_mut().resume_writes(clock::now());
            self.inner.status.borrow_mut().ready = true;
            for waiter in self.inner.ready_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
            self.inner.drive();
            self.inner.schedule_notify();
        }
    }

    pub(crate) fn register_applier(&self, collection: &str, applier: WeakApplier) {
        self.inner.appliers.borrow_mut().entry(collection.to_owned()).or_default().push(applier);
    }
}

impl Inner {
    /// Carries out every action the engine has, then re-arms the timer.
    fn drive(self: &Rc<Self>) {
        loop {
            let action = self.engine.borrow_mut().poll_action();
            let Some(action) = action else { break };
            match action {
                Action::Write(batch) => self.spawn_write(batch),
                Action::FlushCompleted { id, result } => {
                    if let Some(waiter) = self.flush_waiters.borrow_mut().remove(&id) {
                        let _ = waiter.send(result);
                    }
                }
                Action::StartSync { id, .. } => {
                    // No remote is wired into this runtime yet: answer at once so the engine
                    // keeps its pending count and does not wait forever.
                    self.engine.borrow_mut().sync_finished(
                        clock::now(),
                        id,
                        Err(SyncError::permanent("no remote server is configured")),
                    );
                }
                Action::MetricsChanged => {
                    self.metrics_dirty.set(true);
                    self.schedule_notify();
                }
            }
        }
        self.refresh_status();
        self.arm_timer();
    }

    fn spawn_write(self: &Rc<Self>, batch: WriteBatch) {
        let inner = Rc::clone(self);
        let store = self.store.borrow().clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = store.write_batch(&batch).await;
            let now = clock::now();
            match &result {
                Ok(()) => {
                    let mut status = inner.status.borrow_mut();
                    status.last_error = None;
                    status.last_saved_at = Some(clock::wall_millis(now));
                    drop(status);
                    if let Some(tabs) = inner.tabs.borrow().as_ref() {
                        tabs.announce(&inner.tab_id, &batch);
                    }
                }
                Err(error) => {
                    inner.status.borrow_mut().last_error =
                        Some(format!("saving {} failed: {error}", batch.collection));
                }
            }
            inner.engine.borrow_mut().write_finished(
                now,
                batch.id,
                result.map_err(WriteError::from),
            );
            inner.drive();
            inner.schedule_notify();
        });
    }

    fn arm_timer(self: &Rc<Self>) {
        let next = self.engine.borrow().poll_timeout();
        let mut timer = self.timer.borrow_mut();
        match next {
            None => *timer = None,
            Some(deadline) => {
                if matches!(&*timer, Some((armed, _)) if *armed == deadline) {
                    return;
                }
                let delay = deadline.saturating_duration_since(clock::now());
                // Round up so the engine is never woken a hair before its deadline.
                // gloo passes the delay to setTimeout as an i32: clamp, or far deadlines (a huge
                // debounce) would wrap negative and fire at once, forever.
                let millis = delay.as_micros().div_ceil(1_000).min(i32::MAX as u128) as u32;
                let weak = Rc::downgrade(self);
                let timeout = Timeout::new(millis, move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.timer.borrow_mut().take();
                        inner.engine.borrow_mut().tick(clock::now());
                        inner.drive();
                    }
                });
                *timer = Some((deadline, timeout));
            }
        }
    }

    fn refresh_status(self: &Rc<Self>) {
        let engine = self.engine.borrow();
        let queue_depth = engine.queue_depth();
        let in_flight = engine.in_flight_ops();
        let mut status = self.status.borrow_mut();
        // Listing failed keys walks the queue: only when some exist (or just stopped existing).
        let failed_keys: Vec<String> =
            if engine.failed_count() == 0 && status.failed_keys.is_empty() {
                Vec::new()
            } else {
                engine
                    .failed_keys()
                    .iter()
                    .map(|failed| format!("{}: {}", failed.key, failed.error))
                    .collect()
            };
        drop(engine);
        if status.queue_depth != queue_depth
            || status.in_flight != in_flight
            || status.failed_keys != failed_keys
        {
            status.queue_depth = queue_depth;
            status.in_flight = in_flight;
            status.failed_keys = failed_keys;
            drop(status);
            self.schedule_notify();
        }
    }

    /// Tells subscribers in a later microtask, outside every borrow, once per burst.
    fn schedule_notify(self: &Rc<Self>) {
        if self.notify_scheduled.replace(true) {
            return;
        }
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let Some(inner) = weak.upgrade() else { return };
            inner.notify_scheduled.set(false);
            let status = inner.status.borrow().clone();
            inner.status_subscribers.notify(&status);
            if inner.metrics_dirty.replace(false) {
                let metrics = inner.engine.borrow().metrics().clone();
                inner.metrics_subscribers.notify(&metrics);
            }
        });
    }

    /// The page is being hidden or left: write everything queued at once. The engine writes one
    /// batch at a time and starts the next from the previous one's completion, which may never
    /// come once the page is gone; so every waiting op is also written right now, in one
    /// transaction created in this event's task (IndexedDB commits it even as the page unloads,
    /// and orders it after the batch already in flight). If the page lives on, the engine writes
    /// the same values again later, which is harmless.
    fn flush_on_exit(self: &Rc<Self>) {
        let batches = self.engine.borrow().snapshot_waiting();
        self.engine.borrow_mut().flush(clock::now());
        self.drive();
        if batches.is_empty() {
            return;
        }
        let store = self.store.borrow().clone();
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(error) = store.write_all(&batches).await {
                if let Some(inner) = weak.upgrade() {
                    inner.status.borrow_mut().last_error =
                        Some(format!("saving on page exit failed: {error}"));
                    inner.schedule_notify();
                }
            }
        });
    }

    /// Applies items another tab committed, skipping keys this tab is about to overwrite.
    fn apply_from_other_tab(self: &Rc<Self>, collection: String, ids: Vec<String>) {
        if !self.appliers.borrow().contains_key(&collection) {
            return;
        }
        let ids: Vec<String> = {
            let engine = self.engine.borrow();
            let name: Arc<str> = Arc::from(collection.as_str());
            ids.into_iter()
                .filter(|id| !engine.is_pending(&ItemKey::new(Arc::clone(&name), id.as_str())))
                .collect()
        };
        if ids.is_empty() {
            return;
        }
        let weak: Weak<Inner> = Rc::downgrade(self);
        let store = self.store.borrow().clone();
        wasm_bindgen_futures::spawn_local(async move {
            let values = store.load_items(&collection, &ids).await;
            let Some(inner) = weak.upgrade() else { return };
            let values = match values {
                Ok(values) => values,
                Err(error) => {
                    inner.status.borrow_mut().last_error =
                        Some(format!("reading changes from another tab failed: {error}"));
                    inner.schedule_notify();
                    return;
                }
            };
            // A change queued while reading wins over what the other tab wrote.
            let changes: Vec<(String, Option<String>)> = {
                let engine = inner.engine.borrow();
                let name: Arc<str> = Arc::from(collection.as_str());
                ids.into_iter()
                    .zip(values)
                    .filter(|(id, _)| {
                        !engine.is_pending(&ItemKey::new(Arc::clone(&name), id.as_str()))
                    })
                    .collect()
            };
            let appliers: Vec<Applier> = inner
                .appliers
                .borrow()
                .get(&collection)
                .map(|list| list.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            let mut errors = Vec::new();
            for applier in appliers {
                errors.extend(applier(&changes));
            }
            if !errors.is_empty() {
                inner.status.borrow_mut().push_item_errors(errors);
                inner.schedule_notify();
            }
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Timers and listeners are dropped with their fields; waiters learn the runtime stopped.
        self.flush_waiters.borrow_mut().clear();
        self.ready_waiters.borrow_mut().clear();
    }
}

/// A weak handle to a runtime (see [`Persistence::downgrade`]).
#[derive(Debug, Clone)]
pub struct WeakPersistence {
    inner: Weak<Inner>,
}

impl WeakPersistence {
    /// The runtime, if it still runs.
    pub fn upgrade(&self) -> Option<Persistence> {
        self.inner.upgrade().map(|inner| Persistence { inner })
    }
}
