//! [`Persistence`]: the handle apps hold to flush, configure, observe and stop a runtime.

use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use persist_engine::{
    CollectionConfig, CollectionConfigPatch, ConfigError, Engine, MetricsSnapshot, Time,
};

use super::driver::Inner;
use super::options::PersistOptions;
use super::status::PersistStatus;
use super::subscribers::Subscription;
use super::{clock, leader, lifecycle, tabs};
use crate::error::Error;
use crate::local::{LocalStore, LocalStoreStats};

/// A handle to a persistence runtime. Cheap to clone; the runtime stops (timers, page listeners,
/// tab channel) when the last handle is dropped. The yewdux context it runs for holds one handle
/// until [`shutdown`](crate::shutdown).
///
/// Most apps never create one by hand: [`install`](crate::install) makes one per yewdux context
/// on first use, and [`start`](crate::start) sets its options first.
#[derive(Clone)]
pub struct Persistence {
    pub(super) inner: Rc<Inner>,
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

impl Persistence {
    /// Starts a runtime with `options`. IndexedDB is opened lazily by the first store that
    /// installs; if it cannot be opened the runtime falls back to memory and says so in
    /// [`status`](Self::status).
    ///
    /// # Errors
    /// - [`Error::Config`] when the options' engine configuration is invalid.
    pub fn new(options: PersistOptions) -> Result<Self, Error> {
        let seed = options.rng_seed.unwrap_or_else(clock::random_u64);
        let mut config = options.config.clone();
        if options.remote.is_none() {
            // Nothing to sync with: automatic syncs would only fail.
            config.auto_sync.enabled = false;
        }
        // `<device>.<session>`: the device part outlives the page, so a conflict with a version
        // this device wrote in an earlier session is recognised as its own (`local/plan.rs`).
        let node = format!("{}.{:08x}", device_id(&options.database), clock::random_u64() as u32);
        let engine = Engine::new(config, seed)?.with_node(node, clock::wall_origin_ms());
        let inner = Inner::new(&options, engine);
        if options.broadcast {
            tabs::attach(&inner, &options.database);
        }
        if options.flush_on_page_hide {
            lifecycle::attach(&inner);
        }
        if inner.sync.is_some() {
            // The tab that wins the election talks to the server (health, events, syncs).
            leader::attach(&inner);
        }
        Ok(Persistence { inner })
    }

    /// Writes everything queued now, ignoring debounce and backoff. Resolves when every change
    /// made before the call is durable in local storage, or with the keys that failed (they stay
    /// queued and are retried).
    ///
    /// While stores are still loading it first waits for them: changes made meanwhile are queued
    /// only once loading ends.
    ///
    /// # Errors
    /// - [`Error::Flush`] naming the items that could not be written (they stay queued).
    /// - [`Error::Stopped`] when the runtime stops before the flush completes.
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

    /// Changes one collection's configuration at runtime; new debounce and max wait apply to
    /// changes already waiting.
    ///
    /// # Errors
    /// [`ConfigError`] when the patched configuration is invalid; nothing changes then.
    pub fn configure_collection(
        &self,
        collection: &str,
        patch: CollectionConfigPatch,
    ) -> Result<(), ConfigError> {
        let now = clock::now();
        let result = self.inner.engine.borrow_mut().configure_collection(now, collection, &patch);
        self.inner.drive();
        result
    }

    /// Applies one patch to several collections, all or nothing.
    ///
    /// # Errors
    /// [`ConfigError`] when the patch is invalid for any of them; none changes then.
    pub fn configure_collections(
        &self,
        collections: &[&str],
        patch: CollectionConfigPatch,
    ) -> Result<(), ConfigError> {
        {
            let engine = self.inner.engine.borrow();
            for name in collections {
                patch.apply(engine.collection_config(name), &format!("collection {name:?}"))?;
            }
        }
        let now = clock::now();
        let mut engine = self.inner.engine.borrow_mut();
        for name in collections {
            engine.configure_collection(now, name, &patch)?;
        }
        drop(engine);
        self.inner.drive();
        Ok(())
    }

    /// Starts persisting a collection's changes again.
    pub fn enable_collection(&self, collection: &str) {
        self.inner.engine.borrow_mut().enable_collection(clock::now(), collection);
        self.inner.drive();
    }

    /// Stops persisting new changes of a collection (changes already queued are still written).
    pub fn disable_collection(&self, collection: &str) {
        self.inner.engine.borrow_mut().disable_collection(clock::now(), collection);
        self.inner.drive();
    }

    /// The configuration a collection uses now.
    pub fn collection_config(&self, collection: &str) -> CollectionConfig {
        self.inner.engine.borrow().collection_config(collection).clone()
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

    /// Queues a raw change of one item, bypassing the yewdux binding: a put's payload is JSON text
    /// that no store type checked (tests use it to save what a newer or older app version would).
    ///
    /// # Errors
    /// - [`Error::InvalidKey`] when the protocol refuses `(collection, id)` (reserved `__`
    ///   prefix, control characters, too long...).
    #[cfg(feature = "testing")]
    pub fn enqueue_raw(
        &self,
        collection: &str,
        id: &str,
        change: persist_engine::Change,
    ) -> Result<(), Error> {
        persist_protocol::validate_item_key(collection, id)?;
        let key = persist_engine::ItemKey::new(collection, id);
        self.inner.engine.borrow_mut().enqueue(clock::now(), key, change);
        self.inner.drive();
        Ok(())
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

/// This browser's id for `database`, kept in `localStorage` (read synchronously, unlike
/// IndexedDB); a random one per page session where `localStorage` is unavailable.
fn device_id(database: &str) -> String {
    let key = format!("yewdux-persist/{database}/device");
    let storage = web_sys::window().and_then(|window| window.local_storage().ok().flatten());
    if let Some(id) = storage.as_ref().and_then(|s| s.get_item(&key).ok().flatten()) {
        if !id.is_empty() && !id.contains('.') {
            return id;
        }
    }
    let id = format!("{:012x}", clock::random_u64() >> 16);
    if let Some(storage) = storage {
        let _ = storage.set_item(&key, &id);
    }
    id
}
