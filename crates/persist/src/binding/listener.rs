//! The yewdux listener of a persisted store: on every dispatch it diffs the previous and the new
//! state part by part and queues only the changed items. Runs synchronously inside every
//! notifying reduce, so it must stay O(changed items): unchanged items are skipped by pointer.

use std::rc::Rc;

use yewdux::{Context, Listener};

use super::context::try_persistence;
use super::parts::{Collected, Persist};
use super::shared::Shared;

pub(super) struct PersistListener<S> {
    pub(super) shared: Rc<Shared<S>>,
}

impl<S: Persist> Listener for PersistListener<S> {
    type Store = S;

    fn on_change(&self, cx: &Context, _: Rc<S>) {
        let shared = &self.shared;
        if !shared.hydrated.get() {
            // `previous` stays the initial state: changes made while loading are replayed over
            // the loaded data when it arrives.
            return;
        }
        // The store's current state, not the notified one: when a subscriber dispatches while
        // being notified, later subscribers get an older state after the newer one.
        let state = cx.get::<S>();
        let previous = shared.previous.replace(Rc::clone(&state));
        let Some(persistence) = try_persistence(cx) else { return };
        let unloaded = shared.unloaded.borrow();
        let mut collected = Collected::default();
        for part in shared.parts.list.iter().filter(|part| !unloaded.contains(part.collection())) {
            part.diff(&previous, &state, &mut collected.sink(&**part));
        }
        persistence.enqueue_changes(collected.changes);
        persistence.report_item_errors(collected.errors);
    }
}
