//! The runtime's shared state ([`Inner`]) and its loop: carry out every action the engine emits
//! (write a batch, complete a flush, tell subscribers), then arm one timer for the engine's next
//! deadline.
//!
//! The driver knows nothing of tabs or page events: `tabs.rs` and `lifecycle.rs` attach
//! themselves to an [`Inner`] (from `handle.rs`) and keep their handles in it, so imports flow one
//! way, towards this file.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use gloo_timers::callback::Timeout;
use persist_engine::{
    Action, Engine, FlushError, FlushId, MetricsSnapshot, Time, WriteBatch, WriteError,
};

use super::clock;
use super::options::PersistOptions;
use super::status::{Connection, ItemError, PersistStatus};
use super::subscribers::Subscribers;
use super::sync_state::SyncState;
use crate::local::{IndexedDbStore, LocalStore, MemoryStore};

/// Applies changes committed by another tab to one collection of a store: `Some(json)` is a put,
/// `None` a delete. Returns the items that could not be read.
pub(crate) type Applier = Rc<dyn Fn(&[(String, Option<String>)]) -> Vec<ItemError>>;
/// How the runtime holds an [`Applier`]: weakly, the store's listener owns it.
pub(super) type WeakApplier = Weak<dyn Fn(&[(String, Option<String>)]) -> Vec<ItemError>>;

/// Tells the other tabs which items a committed batch wrote (`tabs.rs`).
pub(super) trait Announcer {
    /// A batch this tab committed.
    fn announce(&self, node: &str, batch: &WriteBatch) {
        let ids = batch.ops.iter().map(|op| op.key.id.to_string()).collect();
        self.announce_items(node, &batch.collection, ids);
    }

    /// Items of `collection` this tab changed in storage (a commit, or a sync).
    fn announce_items(&self, node: &str, collection: &str, ids: Vec<String>);
}

/// [`PersistStatus::blocked`] while another tab blocks opening the database.
const BLOCKED_NOTE: &str = "waiting for another tab: it keeps this app's database open at an \
    older version. Close or reload the other tabs of this app; keep this one open until then, \
    its changes are not saved yet.";

/// The state of one runtime, shared by its handles (strongly) and its callbacks (weakly).
pub(super) struct Inner {
    pub(super) database: String,
    pub(super) engine: RefCell<Engine>,
    pub(super) store: RefCell<Rc<dyn LocalStore>>,
    pub(super) status: RefCell<PersistStatus>,
    pub(super) status_subscribers: Subscribers<PersistStatus>,
    pub(super) metrics_subscribers: Subscribers<MetricsSnapshot>,
    /// A notification of subscribers is scheduled (they are told outside any borrow).
    notify_scheduled: Cell<bool>,
    metrics_dirty: Cell<bool>,
    pub(super) flush_waiters: RefCell<HashMap<FlushId, oneshot::Sender<Result<(), FlushError>>>>,
    pub(super) ready_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// Stores still loading their saved data; writes wait until this is 0.
    pub(super) hydrating: Cell<usize>,
    timer: RefCell<Option<(Time, Timeout)>>,
    pub(super) appliers: RefCell<HashMap<String, Vec<WeakApplier>>>,
    /// Some store loaded its data from the local store: falling back to memory now would hide it.
    pub(super) loaded_from_storage: Cell<bool>,
    /// The tab channel, when `tabs.rs` attached one.
    pub(super) tabs: RefCell<Option<Box<dyn Announcer>>>,
    /// The page-exit listeners of `lifecycle.rs`: removed when dropped with the runtime.
    pub(super) page_exit: RefCell<Option<Box<dyn Any>>>,
    /// Names this runtime in tab messages, op ids and HLC stamps (random per page session).
    pub(super) node: String,
    /// The remote and what syncing with it keeps; `None` without a remote.
    pub(super) sync: Option<SyncState>,
}

impl Inner {
    /// A runtime on the storage `options` ask for (without its tab channel and page-exit
    /// listeners, which attach themselves).
    pub(super) fn new(options: &PersistOptions, engine: Engine) -> Rc<Inner> {
        let node = engine.node().to_owned();
        // Cyclic: the IndexedDB store reports a blocked open to the runtime that owns it.
        Rc::new_cyclic(|runtime: &Weak<Inner>| {
            let store = local_store(options, runtime.clone());
            let mut status = PersistStatus::new(store.kind());
            if options.remote.is_some() {
                status.sync.connection = Connection::Checking;
            }
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
                node,
                sync: options.remote.clone().map(|remote| {
                    SyncState::new(remote, options.push_batch, options.resolvers.clone())
                }),
            }
        })
    }

    /// Carries out every action the engine has, then re-arms the timer.
    pub(super) fn drive(self: &Rc<Self>) {
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
                // `sync.rs` runs it (or answers at once without a remote).
                Action::StartSync { id, .. } => self.start_sync(id),
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
                        tabs.announce(&inner.node, &batch);
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
        let pending_remote = engine.pending_remote();
        let mut status = self.status.borrow_mut();
        // Changes to push: the leader's count arrives in followers' status by message instead.
        if self.sync.as_ref().is_some_and(|sync| sync.leader.get())
            && status.sync.pending != pending_remote
        {
            status.sync.pending = pending_remote;
            self.schedule_notify();
        }
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
    pub(super) fn schedule_notify(self: &Rc<Self>) {
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
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Timers and listeners are dropped with their fields; waiters learn the runtime stopped.
        self.flush_waiters.borrow_mut().clear();
        self.ready_waiters.borrow_mut().clear();
    }
}

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
