//! The connection of an [`IndexedDbStore`](super::IndexedDbStore): opened lazily, upgraded when
//! object stores are missing (new collections, an older layout), closed at once when another tab
//! asks to upgrade (`versionchange`) and reopened by the next operation, so tabs never block each
//! other's upgrades. An open that another tab blocks is reported through the blocked hook.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};

use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::lock::Mutex;
use indexed_db_futures::database::{Database, VersionChangeEvent};
use indexed_db_futures::error::Error as IdbError;

use super::errors::{is_version_error, open_error, store_error};
use super::layout::{self, has_store, MigrationHook, BOOKKEEPING_STORES};
use crate::local::StoreError;

/// Called with `true` when opening the database is blocked (another tab keeps it open at an
/// older version and does not close it) and with `false` once that open went through.
pub type BlockedHook = Rc<dyn Fn(bool)>;

/// Attempts at opening a database that has all the object stores we need (another tab may
/// upgrade it at the same time, without our stores).
const OPEN_ATTEMPTS: usize = 4;

/// One database connection, opened on demand.
pub(super) struct Connection {
    pub(super) name: String,
    pub(super) min_version: u32,
    pub(super) migration: Option<MigrationHook>,
    pub(super) on_blocked: Option<BlockedHook>,
    state: Rc<State>,
}

#[derive(Default)]
struct State {
    db: RefCell<Option<Database>>,
    /// Bumped every time the connection is dropped, so a stale close never hits a new one.
    generation: Cell<u64>,
    /// Dropped when our connection closes, which ends its `versionchange` watcher.
    watcher_stop: RefCell<Option<oneshot::Sender<()>>>,
    /// Collections whose object stores must exist.
    collections: RefCell<BTreeSet<String>>,
    /// Serialises opening and upgrading.
    open_lock: Mutex<()>,
}

impl State {
    fn close(&self) {
        self.watcher_stop.borrow_mut().take();
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }
}

impl Connection {
    pub(super) fn new(name: String, min_version: u32) -> Self {
        Self {
            name,
            min_version: min_version.max(1),
            migration: None,
            on_blocked: None,
            state: Rc::new(State::default()),
        }
    }

    /// Whether a connection is open now.
    pub(super) fn is_open(&self) -> bool {
        self.state.db.borrow().is_some()
    }

    /// The collections known to need an object store.
    pub(super) fn collections(&self) -> Vec<String> {
        self.state.collections.borrow().iter().cloned().collect()
    }

    /// The open connection, opening or upgrading it first if needed.
    pub(super) async fn get(&self) -> Result<Database, StoreError> {
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
        let mut db = match self.open(Some(self.min_version), &required).await {
            Err(error) if is_version_error(&error) => self.open(None, &required).await?,
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
            db = match self.open(Some(target), &required).await {
                // Another tab upgraded past `target` meanwhile: take its version and check again.
                Err(error) if is_version_error(&error) => self.open(None, &required).await?,
                other => other?,
            };
        }
        if let Err(error) = layout::upgrade_first_layout_entries(&db).await {
            db.close();
            return Err(store_error(error));
        }
        self.install(db.clone());
        Ok(db)
    }

    /// Makes sure `collections` have object stores (upgrading the database when they do not).
    pub(super) async fn ensure(&self, collections: &[String]) -> Result<(), StoreError> {
        {
            let mut known = self.state.collections.borrow_mut();
            for name in collections {
                known.insert(name.clone());
            }
        }
        let db = self.get().await?;
        if collections.iter().all(|name| has_store(&db, name)) {
            return Ok(());
        }
        // Upgrade: the next open creates the missing stores.
        self.close();
        self.get().await.map(drop)
    }

    /// Maps an IndexedDB error, dropping the connection when it is no longer usable.
    pub(super) fn classify(&self, error: IdbError) -> StoreError {
        let error = store_error(error);
        if matches!(error, StoreError::Unavailable(_)) {
            self.close();
        }
        error
    }

    /// Closes the connection; the next operation reopens it.
    pub(super) fn close(&self) {
        self.state.close();
    }

    fn required_stores(&self) -> Vec<String> {
        let mut stores: Vec<String> = BOOKKEEPING_STORES.map(str::to_owned).to_vec();
        stores.extend(self.state.collections.borrow().iter().cloned());
        stores
    }

    /// Opens at `version` (the current one when `None`), upgrading to today's layout with
    /// `required` stores, and reports a blocked open to the hook while it waits.
    async fn open(
        &self,
        version: Option<u32>,
        required: &[String],
    ) -> Result<Database, StoreError> {
        let blocked = Rc::new(Cell::new(false));
        let on_blocked = {
            let (hook, flag) = (self.on_blocked.clone(), Rc::clone(&blocked));
            move |_event: VersionChangeEvent| {
                flag.set(true);
                if let Some(hook) = &hook {
                    hook(true);
                }
                Ok(())
            }
        };
        let upgrade = {
            let (required, hook) = (required.to_vec(), self.migration.clone());
            move |event: VersionChangeEvent, db: Database| {
                layout::upgrade(&event, &db, &required, hook.as_ref())
            }
        };
        let opened = match version {
            Some(version) => {
                Database::open(&self.name)
                    .with_version(version)
                    .with_on_blocked(on_blocked)
                    .with_on_upgrade_needed(upgrade)
                    .await
            }
            None => {
                Database::open(&self.name)
                    .with_on_blocked(on_blocked)
                    .with_on_upgrade_needed(upgrade)
                    .await
            }
        };
        if let (true, Some(hook)) = (blocked.get(), &self.on_blocked) {
            hook(false);
        }
        opened.map_err(open_error)
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
        let weak: Weak<State> = Rc::downgrade(&self.state);
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
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

fn version(db: &Database) -> u32 {
    db.version() as u32
}
