//! [`SyncState`]: what a runtime with a remote keeps about syncing. Its own file so the driver
//! can hold it without importing `sync.rs`, which imports the driver.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use futures::channel::oneshot;
use persist_engine::{SyncError, SyncId};
use persist_protocol::Revision;

use crate::local::Resolver;
use crate::remote::{Remote, Subscription};

/// Told how the sync run serving a `sync_now` ended.
pub(super) type SyncWaiter = oneshot::Sender<Result<(), SyncError>>;

/// What a runtime with a remote keeps about syncing.
pub(super) struct SyncState {
    pub(super) remote: Rc<dyn Remote>,
    pub(super) push_batch: usize,
    /// The app's conflict resolvers, per collection.
    pub(super) resolvers: BTreeMap<String, Resolver>,
    /// The next run pulls everything again (`Persistence::pull_all`).
    pub(super) full_pull: Cell<bool>,
    pub(super) waiters: RefCell<HashMap<SyncId, Vec<SyncWaiter>>>,
    pub(super) events: RefCell<Option<Box<dyn Subscription>>>,
    /// The newest server revision this runtime has seen; an event at or below it is our echo.
    pub(super) seen: Cell<Revision>,
    /// Whether this tab talks to the server (`leader.rs`).
    pub(super) leader: Cell<bool>,
    /// The lock request and follower channel of `leader.rs`, kept here so they end with the
    /// runtime.
    pub(super) leadership: RefCell<Option<Box<dyn std::any::Any>>>,
    /// Syncs a follower asked the leader for; they end when the leader reports a finished sync.
    /// Each with the leader's sync count that proves it done (`SyncStatus::syncs`).
    pub(super) forwarded: RefCell<Vec<(SyncId, u64)>>,
    /// The health checker of `health.rs`, kept here so it stops with the runtime.
    pub(super) health: RefCell<Option<Box<dyn std::any::Any>>>,
}

impl SyncState {
    pub(super) fn new(
        remote: Rc<dyn Remote>,
        push_batch: usize,
        resolvers: BTreeMap<String, Resolver>,
    ) -> Self {
        SyncState {
            remote,
            push_batch,
            resolvers,
            full_pull: Cell::new(false),
            waiters: RefCell::new(HashMap::new()),
            events: RefCell::new(None),
            seen: Cell::new(0),
            leader: Cell::new(false),
            leadership: RefCell::new(None),
            forwarded: RefCell::new(Vec::new()),
            health: RefCell::new(None),
        }
    }
}
