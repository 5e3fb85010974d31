//! What the yewdux binding (`crate::binding`) calls on a runtime: queueing a store's changes
//! (validating their keys first), the loading bookkeeping, error reports, and the appliers that
//! bring other tabs' commits into the stores. Not public: apps use [`Persistence`]'s own API.

use std::rc::Rc;

use persist_engine::{Change, ItemKey};

use super::clock;
use super::driver::WeakApplier;
use super::handle::Persistence;
use super::status::ItemError;
use crate::local::{MemoryStore, StorageKind};

impl Persistence {
    /// Queues a store's changes. Items whose key the protocol refuses (an id that is empty, too
    /// long or holds control characters) are not queued: they stay in the app's memory and are
    /// reported in the status, each with the reason.
    pub(crate) fn enqueue_changes(&self, changes: Vec<(ItemKey, Change)>) {
        if changes.is_empty() {
            return;
        }
        let now = clock::now();
        let mut refused = Vec::new();
        {
            let mut engine = self.inner.engine.borrow_mut();
            for (key, change) in changes {
                match persist_protocol::validate_item_key(&key.collection, &key.id) {
                    Ok(()) => {
                        engine.enqueue(now, key, change);
                    }
                    Err(error) => refused.push(ItemError {
                        collection: key.collection.to_string(),
                        id: key.id.to_string(),
                        message: format!("not saved: {error}"),
                    }),
                }
            }
        }
        self.inner.drive();
        self.report_item_errors(refused);
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
