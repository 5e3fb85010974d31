//! [`PersistOptions`]: how the runtime is set up (database, storage, collection settings).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use persist_engine::config::RetryPolicy;
use persist_engine::{AutoSyncConfig, CollectionConfig, ConflictStrategy, PersistConfig};

use crate::local::{Durability, LocalStore, MigrationHook, Resolver};
use crate::remote::Remote;

/// Changes per push when the app does not choose.
pub const DEFAULT_PUSH_BATCH: usize = 100;

/// Database name used when the app does not choose one.
pub const DEFAULT_DATABASE: &str = "yewdux-persist";

/// How a [`Persistence`](crate::Persistence) runtime is set up.
///
/// ```
/// use std::time::Duration;
/// use yewdux_persist::{CollectionConfig, PersistOptions};
///
/// let options = PersistOptions::new("my-app")
///     .collection("files", CollectionConfig::default().with_debounce(Duration::from_millis(500)))
///     .collection("settings", CollectionConfig::default().local_only());
/// ```
#[derive(Clone)]
pub struct PersistOptions {
    pub(crate) database: String,
    pub(crate) database_version: u32,
    pub(crate) memory_only: bool,
    pub(crate) custom_store: Option<Rc<dyn LocalStore>>,
    pub(crate) config: PersistConfig,
    pub(crate) broadcast: bool,
    pub(crate) flush_on_page_hide: bool,
    pub(crate) migration: Option<MigrationHook>,
    pub(crate) rng_seed: Option<u64>,
    pub(crate) durability: Durability,
    pub(crate) remote: Option<Rc<dyn Remote>>,
    pub(crate) push_batch: usize,
    pub(crate) resolvers: BTreeMap<String, Resolver>,
}

impl fmt::Debug for PersistOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistOptions")
            .field("database", &self.database)
            .field("database_version", &self.database_version)
            .field("memory_only", &self.memory_only)
            .field("custom_store", &self.custom_store)
            .field("config", &self.config)
            .field("broadcast", &self.broadcast)
            .field("flush_on_page_hide", &self.flush_on_page_hide)
            .field("migration", &self.migration.is_some())
            .field("durability", &self.durability)
            .field("remote", &self.remote)
            .field("push_batch", &self.push_batch)
            .field("resolvers", &self.resolvers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for PersistOptions {
    fn default() -> Self {
        Self::new(DEFAULT_DATABASE)
    }
}

impl PersistOptions {
    /// Options for the IndexedDB database `database`, with CodeForge's defaults (300 ms debounce,
    /// batches of 10, 2 s max wait) and strict durability.
    pub fn new(database: impl Into<String>) -> Self {
        let mut config = PersistConfig::default();
        config.auto_sync.enabled = false;
        Self {
            database: database.into(),
            database_version: 1,
            memory_only: false,
            custom_store: None,
            config,
            broadcast: true,
            flush_on_page_hide: true,
            migration: None,
            rng_seed: None,
            durability: Durability::default(),
            remote: None,
            push_batch: DEFAULT_PUSH_BATCH,
            resolvers: BTreeMap::new(),
        }
    }

    /// Syncs with `remote` (e.g. [`HttpRemote`](crate::remote::HttpRemote)): pushes local
    /// changes, pulls the server's, checks its health, follows its live events. Switches
    /// automatic sync on (every 30 s, on each change, and at 50 pending changes; change it with
    /// [`auto_sync`](Self::auto_sync)). Without a remote, everything stays on the device.
    pub fn remote(mut self, remote: Rc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self.config.auto_sync.enabled = true;
        self
    }

    /// When automatic syncs happen (interval, on change, max pending); `enabled: false` leaves
    /// only manual syncs (`Persistence::sync_now`).
    pub fn auto_sync(mut self, config: AutoSyncConfig) -> Self {
        self.config.auto_sync = config;
        self
    }

    /// How failed syncs are retried: backoff with jitter, at most one auto-sync interval apart,
    /// never given up.
    pub fn sync_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.sync_retry = policy;
        self
    }

    /// Most changes per push request (default 100, at most the protocol's 1,000).
    pub fn push_batch(mut self, ops: usize) -> Self {
        self.push_batch = ops.clamp(1, persist_protocol::MAX_PUSH_OPS);
        self
    }

    /// Lets `resolver` decide the conflicts of `collection`, and sets the collection's strategy
    /// to [`ConflictStrategy::Custom`] (configure the collection first when it has other
    /// settings). The resolver returns `None` to leave a conflict to the user.
    pub fn resolver(mut self, collection: impl Into<String>, resolver: Resolver) -> Self {
        let collection = collection.into();
        let mut config = self
            .config
            .collections
            .get(&collection)
            .cloned()
            .unwrap_or_else(|| self.config.default_collection.clone());
        config.conflict = ConflictStrategy::Custom;
        self.config.collections.insert(collection.clone(), config);
        self.resolvers.insert(collection, resolver);
        self
    }

    /// The lowest IndexedDB version to open (bump it to run your migration hook). The runtime
    /// raises the version by itself when it must create object stores for new collections.
    pub fn database_version(mut self, version: u32) -> Self {
        self.database_version = version.max(1);
        self
    }

    /// Keeps everything in memory (nothing survives a reload).
    pub fn memory_only(mut self) -> Self {
        self.memory_only = true;
        self
    }

    /// Uses your own [`LocalStore`] (for example a wrapper that injects failures in tests).
    pub fn local_store(mut self, store: Rc<dyn LocalStore>) -> Self {
        self.custom_store = Some(store);
        self
    }

    /// Sets one collection's configuration.
    pub fn collection(mut self, name: impl Into<String>, config: CollectionConfig) -> Self {
        self.config.collections.insert(name.into(), config);
        self
    }

    /// Sets the configuration of collections without their own
    /// [`collection`](Self::collection) entry.
    pub fn default_collection(mut self, config: CollectionConfig) -> Self {
        self.config.default_collection = config;
        self
    }

    /// How failed local writes are retried (250 ms × 2ⁿ up to 30 s, ±20 % jitter by default).
    pub fn write_retry(mut self, policy: RetryPolicy) -> Self {
        self.config.write_retry = policy;
        self
    }

    /// Whether tabs tell each other of committed changes over a `BroadcastChannel` (default on).
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// Whether the queue is flushed when the page is hidden or left (default on).
    pub fn flush_on_page_hide(mut self, on: bool) -> Self {
        self.flush_on_page_hide = on;
        self
    }

    /// Runs `hook` inside every IndexedDB schema upgrade.
    pub fn migration(mut self, hook: MigrationHook) -> Self {
        self.migration = Some(hook);
        self
    }

    /// How IndexedDB makes committed batches durable: [`Durability::Strict`] (the default: on
    /// disk before the commit completes) or [`Durability::Relaxed`] (faster; may lose the last
    /// commits on an OS crash or power loss).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Seeds the engine's retry jitter (for reproducible tests); random by default.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The database name.
    pub fn database_name(&self) -> &str {
        &self.database
    }
}
