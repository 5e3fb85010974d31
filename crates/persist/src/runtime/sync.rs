//! The runtime's side of syncing: starts the sync runs the engine asks for (`crate::sync`), and
//! carries their results into the engine, the status, the yewdux stores and the other tabs;
//! follows the server's live events; the public sync API of [`Persistence`].
//!
//! A run first flushes the engine, so every change made before it is in the outbox; then it
//! pushes and pulls. Pulled changes reach the yewdux stores through the same appliers as other
//! tabs' commits (keys with a change queued in this tab are skipped: that change is newer), and
//! the other tabs hear of them over the tab channel.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures::channel::oneshot;
use persist_engine::{ItemKey, SyncError, SyncId, SyncSummary};

use super::driver::{Applier, Inner};
use super::handle::Persistence;
use super::status::{Connection, DeadLetterView};
use super::{clock, health, leader};
use crate::error::Error;
use crate::local::{QueuedKeys, SyncApplied, SyncRules};
use crate::remote::RemoteErrorKind;
use crate::sync::{run, RunOptions, SyncFailure, SyncProgress};

impl Inner {
    /// Starts sync run `id` (the engine asked for it).
    pub(super) fn start_sync(self: &Rc<Self>, id: SyncId) {
        let Some(state) = self.sync.as_ref() else {
            // No remote: answer at once so the engine does not wait forever.
            self.engine.borrow_mut().sync_finished(
                clock::now(),
                id,
                Err(SyncError::permanent("no remote server is configured")),
            );
            return;
        };
        if !leader::is_leader(self) {
            // Another tab talks to the server: ask it; this run ends for the engine now, and
            // `sync_now` callers when the leader reports a finished sync.
            self.engine.borrow_mut().sync_finished(clock::now(), id, Ok(SyncSummary::default()));
            let inner = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move {
                // This tab's changes go in the outbox first, where the leader reads them.
                inner.flush_all().await;
                let Some(state) = inner.sync.as_ref() else { return };
                // A sync the leader runs now may have started before the flush: wait for the
                // next one too.
                let status = inner.status.borrow().sync.clone();
                let target = status.syncs + 1 + u64::from(status.syncing);
                state.forwarded.borrow_mut().push((id, target));
                leader::ask_leader_to_sync(&inner);
            });
            return;
        }
        let options = RunOptions {
            push_batch: state.push_batch,
            full_pull: state.full_pull.replace(false),
            rules: self.sync_rules(),
            ..RunOptions::default()
        };
        self.status.borrow_mut().sync.syncing = true;
        self.schedule_notify();
        let inner = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            // Everything changed before this run goes in the outbox first.
            let flushed = inner.flush_all();
            let _ = flushed.await;
            let store = inner.store.borrow().clone();
            let remote = Rc::clone(&inner.sync.as_ref().expect("checked above").remote);
            let weak = Rc::downgrade(&inner);
            let progress = move |progress: SyncProgress, _: &SyncApplied| {
                if let Some(inner) = weak.upgrade() {
                    inner.status.borrow_mut().sync.progress = progress;
                    inner.schedule_notify();
                }
            };
            let (report, result) = run(&*store, &*remote, &options, &progress).await;
            if let Some(state) = inner.sync.as_ref() {
                state.seen.set(state.seen.get().max(report.head));
            }
            if let Some(stamp) = &report.newest_stamp {
                inner.engine.borrow_mut().observe_hlc(clock::now(), stamp);
            }
            inner.apply_remote_changes(&report.applied);
            let summary = SyncSummary {
                pushed: report.applied.acknowledged,
                pulled: report.pulled,
                conflicts: report.applied.conflicts,
            };
            let result = inner.note_sync_result(&report.applied, result).map(|()| summary);
            inner.refresh_sync_bookkeeping().await;
            let answer = result.clone().map(drop);
            inner.engine.borrow_mut().sync_finished(clock::now(), id, result);
            if let Some(state) = inner.sync.as_ref() {
                for waiter in state.waiters.borrow_mut().remove(&id).unwrap_or_default() {
                    let _ = waiter.send(answer.clone());
                }
            }
            inner.status.borrow_mut().sync.syncing = inner.engine.borrow().is_syncing();
            inner.drive();
            inner.schedule_notify();
        });
    }

    /// The conflict strategy of every configured collection.
    pub(super) fn sync_rules(self: &Rc<Self>) -> SyncRules {
        let weak = Rc::downgrade(self);
        let queued = QueuedKeys::new(move |collection, id| {
            weak.upgrade().is_some_and(|inner| {
                let key = ItemKey::new(Arc::<str>::from(collection), id);
                inner.engine.borrow().is_pending(&key)
            })
        });
        let engine = self.engine.borrow();
        let config = engine.config();
        SyncRules {
            // Nodes are `<device>.<session>` (see `handle.rs`).
            device: self.node.split_once('.').map(|(device, _)| device.to_owned()),
            default: config.default_collection.conflict,
            collections: config
                .collections
                .iter()
                .map(|(name, collection)| (name.clone(), collection.conflict))
                .collect(),
            resolvers: self.sync.as_ref().map(|state| state.resolvers.clone()).unwrap_or_default(),
            queued: Some(queued),
        }
    }

    /// Flushes the engine: resolves when everything queued before is durable (or failed).
    fn flush_all(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let (sender, receiver) = oneshot::channel();
        let id = self.engine.borrow_mut().flush(clock::now());
        self.flush_waiters.borrow_mut().insert(id, sender);
        self.drive();
        async move {
            let _ = receiver.await;
        }
    }

    /// The status after a run; the engine's view of the failure.
    fn note_sync_result(
        self: &Rc<Self>,
        applied: &SyncApplied,
        result: Result<(), SyncFailure>,
    ) -> Result<(), SyncError> {
        let mut status = self.status.borrow_mut();
        status.sync.conflicts += applied.conflicts;
        status.sync.overruled += applied.overruled;
        status.sync.merged += applied.merged;
        status.sync.progress = SyncProgress::Idle;
        status.sync.syncs += 1;
        match result {
            Ok(()) => {
                status.sync.last_sync_at = Some(clock::wall_millis(clock::now()));
                status.sync.last_error = None;
                if status.sync.connection != Connection::Online {
                    status.sync.connection = Connection::Online;
                    drop(status);
                    self.engine.borrow_mut().set_remote_available(clock::now(), true);
                }
                Ok(())
            }
            Err(SyncFailure::Store(error)) => {
                status.sync.last_error = Some(format!("local storage: {error}"));
                Err(SyncError::transient(format!("local storage: {error}")))
            }
            Err(SyncFailure::Remote(error)) => {
                status.sync.last_error = Some(error.message.clone());
                let connection = match error.kind {
                    RemoteErrorKind::Unreachable => Some(Connection::Offline),
                    RemoteErrorKind::Unauthorized => Some(Connection::SignedOut),
                    RemoteErrorKind::Busy { .. } => Some(Connection::Degraded),
                    _ => None,
                };
                let failure = if error.is_transient() {
                    SyncError::transient(error.message.clone())
                        .with_retry_after(error.retry_after())
                } else {
                    SyncError::permanent(error.message)
                };
                drop(status);
                if let Some(connection) = connection {
                    self.set_connection(connection);
                }
                Err(failure)
            }
        }
    }

    /// Records how the server is reached and tells the engine whether automatic syncs may run.
    pub(super) fn set_connection(self: &Rc<Self>, connection: Connection) {
        let previous = std::mem::replace(&mut self.status.borrow_mut().sync.connection, connection);
        if previous == connection {
            return;
        }
        let available = connection == Connection::Online;
        self.engine.borrow_mut().set_remote_available(clock::now(), available);
        self.drive();
        self.schedule_notify();
    }

    /// Brings pulled and conflict-resolved values into the yewdux stores, and tells the other
    /// tabs (which read them from storage).
    pub(super) fn apply_remote_changes(self: &Rc<Self>, applied: &SyncApplied) {
        let mut by_collection: BTreeMap<&str, Vec<(String, Option<String>)>> = BTreeMap::new();
        {
            let engine = self.engine.borrow();
            for (collection, id, value) in &applied.changed {
                let key = ItemKey::new(Arc::<str>::from(collection.as_str()), id.as_str());
                // A change queued here is newer than what the server said; it is pushed next.
                if !engine.is_pending(&key) {
                    by_collection.entry(collection).or_default().push((id.clone(), value.clone()));
                }
            }
        }
        let mut errors = Vec::new();
        for (collection, changes) in by_collection {
            let appliers: Vec<Applier> = self
                .appliers
                .borrow()
                .get(collection)
                .map(|list| list.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            for applier in appliers {
                errors.extend(applier(&changes));
            }
            if let Some(tabs) = self.tabs.borrow().as_ref() {
                let ids: Vec<String> = changes.into_iter().map(|(id, _)| id).collect();
                tabs.announce_items(&self.node, collection, ids);
            }
        }
        if !errors.is_empty() {
            self.status.borrow_mut().push_item_errors(errors);
        }
    }

    /// Counts the outbox for the engine and the status, and lists the dead letters.
    pub(super) async fn refresh_sync_bookkeeping(self: &Rc<Self>) {
        let store = self.store.borrow().clone();
        let pending = store.outbox_len().await;
        let dead = store.dead_letters().await;
        let open = store.conflicts().await.map(|open| open.len());
        if let Ok(open) = open {
            self.status.borrow_mut().sync.open_conflicts = open;
        }
        // A change waiting for the user's decision is not pushed: it is not "to sync".
        let pending = pending.map(|count| count.saturating_sub(open.unwrap_or(0)));
        if let Ok(count) = pending {
            self.status.borrow_mut().sync.pending = count;
            self.engine.borrow_mut().set_pending_remote(clock::now(), count);
        }
        if let Ok(dead) = dead {
            self.status.borrow_mut().sync.dead_letters = dead
                .into_iter()
                .map(|letter| DeadLetterView {
                    collection: letter.entry.collection,
                    id: letter.entry.id,
                    delete: letter.entry.delete,
                    message: letter.message,
                })
                .collect();
        }
        self.schedule_notify();
    }

    /// A follower heard that the leader finished a sync: the `sync_now` calls it forwarded end,
    /// with the leader's error if it failed.
    pub(super) fn finish_forwarded_syncs(&self) {
        let Some(state) = self.sync.as_ref() else { return };
        let status = self.status.borrow().sync.clone();
        self.engine.borrow_mut().set_pending_remote(clock::now(), status.pending);
        let answer = match status.last_error {
            Some(error) => Err(SyncError::transient(error)),
            None => Ok(()),
        };
        let done: Vec<SyncId> = {
            let mut forwarded = state.forwarded.borrow_mut();
            let (done, waiting) =
                forwarded.drain(..).partition(|(_, target)| *target <= status.syncs);
            *forwarded = waiting;
            done.into_iter().map(|(id, _)| id).collect()
        };
        for id in done {
            for waiter in state.waiters.borrow_mut().remove(&id).unwrap_or_default() {
                let _ = waiter.send(answer.clone());
            }
        }
    }

    /// Follows the server's live events: a change announced by another device starts a sync.
    pub(super) fn listen_to_server(self: &Rc<Self>) {
        let Some(state) = self.sync.as_ref() else { return };
        let weak = Rc::downgrade(self);
        let subscription = state.remote.subscribe(Rc::new(move |revision| {
            let Some(inner) = weak.upgrade() else { return };
            let Some(state) = inner.sync.as_ref() else { return };
            if revision > state.seen.get() {
                inner.engine.borrow_mut().sync_now(clock::now());
                inner.drive();
            }
        }));
        *state.events.borrow_mut() = subscription;
    }
}

impl Persistence {
    /// Syncs now: pushes every local change made before the call, then pulls. Runs even when
    /// automatic sync is off or the server looked unreachable. Resolves when that sync ended.
    ///
    /// # Errors
    /// - [`Error::NoRemote`] without a remote.
    /// - [`Error::Sync`] when the sync failed (what it did before failing stays done; the rest
    ///   stays queued and is retried).
    /// - [`Error::Stopped`] when the runtime stopped first.
    pub fn sync_now(&self) -> impl Future<Output = Result<(), Error>> + 'static {
        let receiver = self.inner.sync.as_ref().map(|state| {
            let (sender, receiver) = oneshot::channel();
            let id = self.inner.engine.borrow_mut().sync_now(clock::now());
            state.waiters.borrow_mut().entry(id).or_default().push(sender);
            receiver
        });
        self.inner.drive();
        async move {
            let receiver = receiver.ok_or(Error::NoRemote)?;
            match receiver.await {
                Ok(result) => result.map_err(Error::Sync),
                Err(_) => Err(Error::Stopped),
            }
        }
    }

    /// Pulls everything from the server again (after pushing local changes, so nothing not yet
    /// synced is lost), e.g. after local data was cleared. Items the server does not have are
    /// left alone.
    ///
    /// # Errors
    /// Those of [`sync_now`](Self::sync_now).
    pub fn pull_all(&self) -> impl Future<Output = Result<(), Error>> + 'static {
        if let Some(state) = self.inner.sync.as_ref() {
            state.full_pull.set(true);
        }
        self.sync_now()
    }

    /// Makes sure the server has everything this device has: every stored item of the syncing
    /// collections with no pending change is queued again as a put of its current value, then a
    /// sync runs. Items the server has are written again with the same value (a new revision,
    /// which other devices skip as unchanged); items it lost are restored. Use it after the server lost data or to seed a new one.
    ///
    /// # Errors
    /// Those of [`sync_now`](Self::sync_now), and [`Error::Sync`] when the local store failed.
    pub fn push_all(&self) -> impl Future<Output = Result<(), Error>> + 'static {
        let handle = self.clone();
        async move {
            if handle.inner.sync.is_none() {
                return Err(Error::NoRemote);
            }
            let collections: Vec<String> = {
                let engine = handle.inner.engine.borrow();
                let appliers = handle.inner.appliers.borrow();
                appliers
                    .keys()
                    .filter(|name| engine.collection_config(name).sync_to_remote)
                    .cloned()
                    .collect()
            };
            let (prefix, stamp) = {
                let mut engine = handle.inner.engine.borrow_mut();
                let now = clock::now();
                engine.observe_hlc(now, &persist_protocol::Hlc::zero(""));
                let stamp = engine.hlc().clone();
                (format!("{}-all{}.{}", handle.inner.node, stamp.wall_ms, stamp.counter), stamp)
            };
            handle.flush().await?;
            let store = handle.inner.store.borrow().clone();
            store.mark_all_for_push(&collections, &prefix, &stamp).await.map_err(|error| {
                Error::Sync(SyncError::transient(format!("local storage: {error}")))
            })?;
            handle.inner.refresh_sync_bookkeeping().await;
            handle.sync_now().await
        }
    }

    /// Replaces the remote's bearer token (e.g. after signing in again): a signed-out runtime
    /// reconnects and syncs what waited.
    pub fn set_token(&self, token: Option<String>) {
        let Some(state) = self.inner.sync.as_ref() else { return };
        state.remote.set_token(token);
        // The event stream carries the token too: reopen it.
        state.events.borrow_mut().take();
        self.inner.listen_to_server();
        if self.inner.status.borrow().sync.connection == Connection::SignedOut {
            self.inner.set_connection(Connection::Checking);
        }
        self.check_connection_now();
        drop(self.sync_now());
    }

    /// Puts a dead letter back in the outbox (under a new op id) and syncs; a newer change of
    /// the same item, if any, supersedes it.
    pub fn retry_dead_letter(&self, collection: &str, id: &str) {
        self.settle_dead_letter(collection, id, true);
    }

    /// Forgets a dead letter; the local value stays as it is.
    pub fn discard_dead_letter(&self, collection: &str, id: &str) {
        self.settle_dead_letter(collection, id, false);
    }

    fn settle_dead_letter(&self, collection: &str, id: &str, retry: bool) {
        let inner = Rc::clone(&self.inner);
        let handle = self.clone();
        let (collection, id) = (collection.to_owned(), id.to_owned());
        wasm_bindgen_futures::spawn_local(async move {
            let store = inner.store.borrow().clone();
            if let Err(error) = store.settle_dead_letter(&collection, &id, retry).await {
                inner.status.borrow_mut().sync.last_error =
                    Some(format!("settling {collection}:{id} failed: {error}"));
            }
            inner.refresh_sync_bookkeeping().await;
            if retry && inner.sync.is_some() {
                drop(handle.sync_now());
            }
        });
    }

    /// Checks the server's health now. Resolves with the connection it found
    /// ([`Connection::LocalOnly`] without a remote).
    pub fn check_connection(&self) -> impl Future<Output = Connection> + 'static {
        let (sender, receiver) = oneshot::channel();
        if self.inner.sync.is_some() {
            health::check(&self.inner, Some(sender));
        } else {
            let _ = sender.send(Connection::LocalOnly);
        }
        async move { receiver.await.unwrap_or(Connection::LocalOnly) }
    }

    pub(super) fn check_connection_now(&self) {
        health::check(&self.inner, None);
    }

    /// Whether a remote is configured.
    pub fn has_remote(&self) -> bool {
        self.inner.sync.is_some()
    }
}
