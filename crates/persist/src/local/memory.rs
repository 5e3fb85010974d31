//! [`MemoryStore`]: a [`LocalStore`] in memory. Used by tests and as the fallback when IndexedDB
//! cannot be opened; everything is lost on reload.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use persist_engine::{Change, WriteBatch};

use super::plan::{
    plan_batch, plan_resolution, ConflictWrite, EntryWrite, ItemPlan, ItemState, ItemWrite,
    KnownWrite,
};
use super::{
    Conflict, DeadLetter, ItemSync, LoadedItems, LocalFuture, LocalStore, LocalStoreStats,
    OutboxEntry, PendingPush, Resolution, ResolveOutcome, StorageKind, StoreError, StoredItem,
    SyncApplied, SyncBatch, SyncRules,
};
use persist_protocol::{OpId, Revision};

/// `__meta` key of the pull checkpoint (both stores).
pub(super) const CHECKPOINT_KEY: &str = "sync:checkpoint";

/// An in-memory [`LocalStore`].
///
/// Besides being a real store, it can fail on purpose (with the `testing` feature):
/// `MemoryStore::fail_next_writes` makes the next writes fail with a given error, to test how an
/// app behaves when storage breaks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    collections: RefCell<BTreeMap<String, BTreeMap<String, String>>>,
    outbox: RefCell<BTreeMap<(String, String), OutboxEntry>>,
    known: RefCell<BTreeMap<(String, String), ItemSync>>,
    dead: RefCell<BTreeMap<(String, String), DeadLetter>>,
    conflicts: RefCell<BTreeMap<(String, String), Conflict>>,
    meta: RefCell<BTreeMap<String, String>>,
    injected_failures: RefCell<VecDeque<StoreError>>,
    stats: Cell<LocalStoreStats>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes each of the next `count` calls of `write_batch` fail with `error` (and write
    /// nothing).
    #[cfg(feature = "testing")]
    pub fn fail_next_writes(&self, count: usize, error: StoreError) {
        let mut failures = self.injected_failures.borrow_mut();
        failures.extend(std::iter::repeat_n(error, count));
    }

    /// A snapshot of one collection: id → JSON text.
    pub fn snapshot(&self, collection: &str) -> BTreeMap<String, String> {
        self.collections.borrow().get(collection).cloned().unwrap_or_default()
    }

    /// Writes `batches` as one transaction: all or nothing.
    fn write_now(&self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        if let Some(error) = self.injected_failures.borrow_mut().pop_front() {
            return Err(error);
        }
        // Validate everything first so the transaction is all or nothing.
        for op in batches.iter().flat_map(|batch| &batch.ops) {
            if let Change::Put(payload) = &op.change {
                serde_json::from_str::<serde::de::IgnoredAny>(payload.as_str())
                    .map_err(|e| StoreError::InvalidData(format!("{}: not JSON: {e}", op.key)))?;
            }
        }
        for batch in batches {
            self.apply(batch);
        }
        let mut stats = self.stats.get();
        stats.write_transactions += 1;
        stats.items_written += batches.iter().map(|batch| batch.ops.len() as u64).sum::<u64>();
        self.stats.set(stats);
        Ok(())
    }

    fn apply(&self, batch: &WriteBatch) {
        let mut collections = self.collections.borrow_mut();
        let items = collections.entry(batch.collection.to_string()).or_default();
        let mut outbox = self.outbox.borrow_mut();
        for op in &batch.ops {
            match &op.change {
                Change::Put(payload) => {
                    items.insert(op.key.id.to_string(), payload.as_str().to_owned());
                }
                Change::Delete => {
                    items.remove(&*op.key.id);
                }
            }
            if op.sync_to_remote {
                let key = (op.key.collection.to_string(), op.key.id.to_string());
                outbox.insert(key, OutboxEntry::for_op(op));
            }
        }
    }
}

impl LocalStore for MemoryStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Memory
    }

    fn prepare<'a>(&'a self, collections: &'a [String]) -> LocalFuture<'a, Result<(), StoreError>> {
        let mut all = self.collections.borrow_mut();
        for name in collections {
            all.entry(name.clone()).or_default();
        }
        Box::pin(async { Ok(()) })
    }

    fn write_batch<'a>(&'a self, batch: &'a WriteBatch) -> LocalFuture<'a, Result<(), StoreError>> {
        let result = self.write_now(std::slice::from_ref(batch));
        Box::pin(async move { result })
    }

    fn write_all<'a>(
        &'a self,
        batches: &'a [WriteBatch],
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        let result = if batches.is_empty() { Ok(()) } else { self.write_now(batches) };
        Box::pin(async move { result })
    }

    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> LocalFuture<'a, Result<LoadedItems, StoreError>> {
        let items = self
            .snapshot(collection)
            .into_iter()
            .map(|(id, json)| StoredItem { id, json })
            .collect();
        Box::pin(async move { Ok(LoadedItems { items, unreadable: Vec::new() }) })
    }

    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        let collections = self.collections.borrow();
        let items = collections.get(collection);
        let found = ids.iter().map(|id| items.and_then(|items| items.get(id).cloned())).collect();
        Box::pin(async move { Ok(found) })
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> LocalFuture<'a, Result<Option<String>, StoreError>> {
        let value = self.meta.borrow().get(key).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        self.meta.borrow_mut().insert(key.to_owned(), value.to_owned());
        Box::pin(async { Ok(()) })
    }

    fn outbox<'a>(&'a self, limit: usize) -> LocalFuture<'a, Result<Vec<OutboxEntry>, StoreError>> {
        let mut entries: Vec<OutboxEntry> = self.outbox.borrow().values().cloned().collect();
        entries.sort_by(|a, b| a.push_order().cmp(&b.push_order()));
        entries.truncate(limit);
        Box::pin(async move { Ok(entries) })
    }

    fn outbox_len(&self) -> LocalFuture<'_, Result<usize, StoreError>> {
        let len = self.outbox.borrow().len();
        Box::pin(async move { Ok(len) })
    }

    fn stats(&self) -> LocalStoreStats {
        self.stats.get()
    }

    fn pending_pushes(
        &self,
        limit: usize,
    ) -> LocalFuture<'_, Result<Vec<PendingPush>, StoreError>> {
        // Items with an open conflict wait for the user.
        let open = self.conflicts.borrow();
        let mut entries: Vec<OutboxEntry> = self
            .outbox
            .borrow()
            .iter()
            .filter(|(key, _)| !open.contains_key(*key))
            .map(|(_, entry)| entry.clone())
            .collect();
        entries.sort_by(|a, b| a.push_order().cmp(&b.push_order()));
        entries.truncate(limit);
        let collections = self.collections.borrow();
        let known = self.known.borrow();
        let pending = entries
            .into_iter()
            .map(|mut entry| {
                let key = (entry.collection.clone(), entry.id.clone());
                if entry.base_revision.is_none() {
                    entry.base_revision = known.get(&key).map(|k| k.revision);
                }
                let value = if entry.delete {
                    None
                } else {
                    collections
                        .get(&entry.collection)
                        .and_then(|items| items.get(&entry.id))
                        .cloned()
                };
                PendingPush { entry, value }
            })
            .collect();
        Box::pin(async move { Ok(pending) })
    }

    fn apply_sync<'a>(
        &'a self,
        batch: SyncBatch<'a>,
        rules: &'a SyncRules,
    ) -> LocalFuture<'a, Result<SyncApplied, StoreError>> {
        let result = self.apply_sync_now(batch, rules);
        Box::pin(async move { result })
    }

    fn checkpoint(&self) -> LocalFuture<'_, Result<Revision, StoreError>> {
        let value = self.meta.borrow().get(CHECKPOINT_KEY).and_then(|v| v.parse().ok());
        Box::pin(async move { Ok(value.unwrap_or(0)) })
    }

    fn reset_checkpoint(&self) -> LocalFuture<'_, Result<(), StoreError>> {
        self.meta.borrow_mut().remove(CHECKPOINT_KEY);
        Box::pin(async { Ok(()) })
    }

    fn mark_all_for_push<'a>(
        &'a self,
        collections: &'a [String],
        prefix: &'a str,
        stamp: &'a persist_protocol::Hlc,
    ) -> LocalFuture<'a, Result<usize, StoreError>> {
        let items = self.collections.borrow();
        let mut outbox = self.outbox.borrow_mut();
        let mut added = 0;
        for collection in collections {
            for id in items.get(collection).into_iter().flat_map(|items| items.keys()) {
                let key = (collection.clone(), id.clone());
                if let std::collections::btree_map::Entry::Vacant(slot) = outbox.entry(key) {
                    slot.insert(OutboxEntry::resend(collection, id, prefix, stamp, added));
                    added += 1;
                }
            }
        }
        Box::pin(async move { Ok(added as usize) })
    }

    fn dead_letters(&self) -> LocalFuture<'_, Result<Vec<DeadLetter>, StoreError>> {
        let letters = self.dead.borrow().values().cloned().collect();
        Box::pin(async move { Ok(letters) })
    }

    fn settle_dead_letter<'a>(
        &'a self,
        collection: &'a str,
        id: &'a str,
        retry: bool,
    ) -> LocalFuture<'a, Result<(), StoreError>> {
        let key = (collection.to_owned(), id.to_owned());
        if let Some(letter) = self.dead.borrow_mut().remove(&key) {
            let mut outbox = self.outbox.borrow_mut();
            if retry && !outbox.contains_key(&key) {
                outbox.insert(key, letter.retried());
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn conflicts(&self) -> LocalFuture<'_, Result<Vec<Conflict>, StoreError>> {
        let open = self.conflicts.borrow().values().cloned().collect();
        Box::pin(async move { Ok(open) })
    }

    fn resolve_conflict<'a>(
        &'a self,
        seen: &'a Conflict,
        resolution: &'a Resolution,
        stamp: &'a persist_protocol::Hlc,
        keep_base: bool,
    ) -> LocalFuture<'a, Result<(ResolveOutcome, SyncApplied), StoreError>> {
        let key = (seen.collection.clone(), seen.id.clone());
        let state = self.state_of(&key);
        let mut report = SyncApplied::default();
        let outcome = match state.conflict.as_ref() {
            None => ResolveOutcome::NotOpen,
            Some(open) if open.remote_revision != seen.remote_revision => {
                ResolveOutcome::RemoteChanged
            }
            Some(open) => {
                let plan = plan_resolution(open, &state, resolution, stamp, keep_base);
                report.add(&seen.collection, &seen.id, &plan);
                self.carry_out(vec![(key, plan)]);
                ResolveOutcome::Resolved
            }
        };
        Box::pin(async move { Ok((outcome, report)) })
    }
}

impl MemoryStore {
    /// What `key` looks like now, for the plans.
    fn state_of(&self, key: &(String, String)) -> ItemState {
        ItemState {
            entry: self.outbox.borrow().get(key).cloned(),
            known: self.known.borrow().get(key).cloned(),
            local: self
                .collections
                .borrow()
                .get(&key.0)
                .and_then(|items| items.get(&key.1))
                .cloned(),
            conflict: self.conflicts.borrow().get(key).cloned(),
        }
    }

    fn apply_sync_now(
        &self,
        batch: SyncBatch<'_>,
        rules: &SyncRules,
    ) -> Result<SyncApplied, StoreError> {
        let keys = batch.keys();
        let mut states = keys.into_iter().map(|key| (key.clone(), self.state_of(&key))).collect();
        let (plans, report) = plan_batch(&batch, rules, &mut states);
        self.carry_out(plans);
        if let SyncBatch::Pulled { checkpoint, .. } = batch {
            self.meta.borrow_mut().insert(CHECKPOINT_KEY.to_owned(), checkpoint.to_string());
        }
        Ok(report)
    }
}

impl MemoryStore {
    /// Writes `plans` (what `plan.rs` decided).
    fn carry_out(&self, plans: Vec<((String, String), ItemPlan)>) {
        let mut collections = self.collections.borrow_mut();
        let (mut outbox, mut known) = (self.outbox.borrow_mut(), self.known.borrow_mut());
        let mut conflicts = self.conflicts.borrow_mut();
        for (key, plan) in plans {
            match plan.item {
                ItemWrite::Keep => {}
                ItemWrite::Put(json) => {
                    collections.entry(key.0.clone()).or_default().insert(key.1.clone(), json);
                }
                ItemWrite::Delete => {
                    collections.entry(key.0.clone()).or_default().remove(&key.1);
                }
            }
            match plan.entry {
                EntryWrite::Keep => {}
                EntryWrite::Remove => drop(outbox.remove(&key)),
                EntryWrite::Replace(entry) => drop(outbox.insert(key.clone(), entry)),
            }
            match plan.known {
                KnownWrite::Keep => {}
                KnownWrite::Set(sync) => drop(known.insert(key.clone(), sync)),
                KnownWrite::Clear => drop(known.remove(&key)),
            }
            match plan.conflict {
                ConflictWrite::Keep => {}
                ConflictWrite::Set(open) => drop(conflicts.insert(key.clone(), *open)),
                ConflictWrite::Remove => drop(conflicts.remove(&key)),
            }
            if let Some(letter) = plan.dead {
                self.dead.borrow_mut().insert(key, letter);
            }
        }
    }
}

impl DeadLetter {
    /// The change back in the outbox under a new op id (the old one has its rejection
    /// remembered by the server), its base taken from the item's known revision again.
    pub(crate) fn retried(&self) -> OutboxEntry {
        let mut entry = self.entry.clone();
        entry.op_id = OpId::new(format!("{}!{}", self.entry.op_id, self.retries + 1));
        entry.base_revision = None;
        entry
    }
}
