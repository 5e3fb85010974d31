//! [`install`]: makes a store persisted (from its `Store::new`), and [`preload`] creates it early.
//!
//! Installing registers the store's listener, one applier per part for changes committed by other
//! tabs, and starts loading the saved data.

use std::rc::{Rc, Weak};

use yewdux::{Context, Dispatch};

use super::context::persistence;
use super::hydrate::hydrate;
use super::listener::PersistListener;
use super::parts::{parts_of, Part, Persist};
use super::shared::Shared;
use crate::runtime::{Applier, ItemError};

/// Creates store `S` in `cx` now (yewdux creates stores lazily, on first use), so its saved data
/// starts loading and [`Persistence::ready`](crate::Persistence::ready) / `status().ready` wait
/// for it. Call it for every persisted store before rendering, so no component sees the defaults
/// first.
pub fn preload<S: Persist>(cx: &Context) {
    cx.get::<S>();
}

/// Makes store `S` persisted: loads its saved data and writes every later change. Call it from
/// `Store::new` with the state to show until the saved data is loaded; it returns that state.
///
/// ```no_run
/// # use yewdux_persist::{Collection, Parts, Persist};
/// # #[derive(Clone, PartialEq, Default)]
/// # struct Notes { notes: Collection<String> }
/// # impl Persist for Notes {
/// #     fn parts(parts: &mut Parts<Self>) { parts.collection("notes", |s| &s.notes, |s| &mut s.notes); }
/// # }
/// impl yewdux::store::Store for Notes {
///     fn new(cx: &yewdux::Context) -> Self {
///         yewdux_persist::install(cx, Self::default())
///     }
///     fn should_notify(&self, old: &Self) -> bool {
///         self != old
///     }
/// }
/// ```
///
/// What happens:
/// - the store starts with `initial`; the runtime's status says not ready;
/// - saved items are loaded (one `getAll` per collection) and set in one update; items that cannot
///   be read back are left out of the state, reported in the status, and kept in storage;
/// - on the very first run of a collection (nothing saved yet) its current items are saved;
/// - from then on, every change of the store is diffed and only changed items are queued.
///
/// Changes the app makes before loading finishes are not lost: they are applied again on top of
/// the loaded data and saved. Still, show a loading state until
/// [`Persistence::ready`](crate::Persistence::ready) (or `status().ready`) so users do not see
/// defaults flash. Note that yewdux creates a store lazily, on its first `get`/`use_store`:
/// `ready` only waits for stores that exist, so call [`preload`] for your persisted stores before
/// rendering.
///
/// A collection whose saved data cannot be loaded (after retries) is not persisted in this
/// session, so its defaults never overwrite the saved data; the status says so
/// (`collection_errors`). So is a collection whose name the protocol refuses
/// ([`persist_protocol::validate_collection_name`]: empty, reserved `__` prefix, `:`, control
/// characters, over 128 bytes).
pub fn install<S: Persist>(cx: &Context, initial: S) -> S {
    let persistence = persistence(cx);
    let mut parts = parts_of::<S>();
    parts.list.retain(|part| match persist_protocol::validate_collection_name(part.collection()) {
        Ok(()) => true,
        Err(error) => {
            persistence.report_collection_error(
                part.collection(),
                format!("{error}; this collection is not persisted"),
            );
            false
        }
    });
    let shared = Rc::new(Shared::new(parts, initial.clone()));
    cx.init_listener(|| PersistListener { shared: Rc::clone(&shared) });
    for part in &shared.parts.list {
        let applier: Applier = Rc::new(tab_applier(cx.clone(), Rc::downgrade(&shared), part));
        // The runtime only holds it weakly: the store's listener (owned by the context) owns it.
        persistence.register_applier(part.collection(), Rc::downgrade(&applier));
        shared.appliers.borrow_mut().push(applier);
    }
    persistence.begin_hydration();
    wasm_bindgen_futures::spawn_local(hydrate::<S>(cx.clone(), persistence, shared));
    initial
}

/// Applies changes another tab committed to one part of the store.
fn tab_applier<S: Persist>(
    cx: Context,
    shared: Weak<Shared<S>>,
    part: &Rc<dyn Part<S>>,
) -> impl Fn(&[(String, Option<String>)]) -> Vec<ItemError> {
    let part = Rc::clone(part);
    move |changes| {
        let Some(shared) = shared.upgrade() else { return Vec::new() };
        if !shared.hydrated.get() {
            // Loading may have read these items before the other tab wrote them: read them
            // again once loading is done.
            let ids = changes.iter().map(|(id, _)| id.clone()).collect();
            shared.missed.borrow_mut().push((part.collection().to_owned(), ids));
            return Vec::new();
        }
        if shared.unloaded.borrow().contains(part.collection()) {
            return Vec::new();
        }
        let mut errors = Vec::new();
        Dispatch::<S>::new(&cx).reduce_mut(|state| {
            errors = part.apply(state, changes);
            // The runtime's own update is not a change to persist; changes other subscribers
            // make in reaction still are (they are diffed against this).
            shared.mark_seen(state);
        });
        errors
    }
}
