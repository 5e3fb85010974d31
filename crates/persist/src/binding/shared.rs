//! [`Shared`]: the bookkeeping of one persisted store, shared by its listener, its loader and its
//! tab appliers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use super::parts::{Parts, Persist};
use crate::runtime::Applier;

/// State shared by a store's listener, its loader and its tab appliers.
pub(super) struct Shared<S> {
    pub(super) parts: Rc<Parts<S>>,
    /// The state the listener saw last: changes are diffed against it.
    pub(super) previous: RefCell<Rc<S>>,
    /// Set once saved data is loaded.
    pub(super) hydrated: Cell<bool>,
    /// Collections whose saved data could not be loaded: not persisted this session.
    pub(super) unloaded: RefCell<BTreeSet<String>>,
    /// Items other tabs committed while loading: read again after loading.
    pub(super) missed: RefCell<Vec<(String, Vec<String>)>>,
    /// The tab appliers (the runtime holds them weakly).
    pub(super) appliers: RefCell<Vec<Applier>>,
}

impl<S: Persist> Shared<S> {
    /// Bookkeeping of a store that starts with `initial` and persists `parts`.
    pub(super) fn new(parts: Parts<S>, initial: S) -> Self {
        Shared {
            parts: Rc::new(parts),
            previous: RefCell::new(Rc::new(initial)),
            hydrated: Cell::new(false),
            unloaded: RefCell::new(BTreeSet::new()),
            missed: RefCell::new(Vec::new()),
            appliers: RefCell::new(Vec::new()),
        }
    }

    /// Records `state` as seen, from inside a runtime-made `reduce_mut`: the listener then diffs
    /// the notified state against it and finds nothing of the runtime's own update.
    pub(super) fn mark_seen(&self, state: &S) {
        *self.previous.borrow_mut() = Rc::new(state.clone());
    }
}
