//! The yewdux side: [`install`] a persisted store from its `Store::new`, [`configure`] the runtime
//! of a context, and the listener that turns store changes into queued item changes.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};
use yewdux::{Context, Dispatch, Listener};

use crate::error::Error;
use crate::hydrate::hydrate;
use crate::local::is_reserved_collection;
use crate::parts::{parts_of, Collected, Part, Parts, Persist};
use crate::runtime::{Applier, PersistOptions, Persistence};

/// The runtime of a yewdux context, kept in the context itself.
#[derive(Default)]
struct RuntimeSlot(RefCell<Slot>);

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Running(Persistence),
    /// [`shutdown`] ran: stores created later are not persisted to the old database.
    Stopped,
}

impl yewdux::store::Store for RuntimeSlot {
    fn new(_: &Context) -> Self {
        Self::default()
    }

    fn should_notify(&self, _: &Self) -> bool {
        false
    }
}

/// Sets up the persistence runtime of `cx` with `options`. Call it before any persisted store is
/// used (in `main`, before rendering); stores installed later use this runtime. After
/// [`shutdown`] it starts a new runtime.
///
/// # Errors
/// - [`Error::AlreadyStarted`] when the context already has a runtime.
/// - [`Error::Config`] when the options' configuration is invalid.
pub fn configure(cx: &Context, options: PersistOptions) -> Result<Persistence, Error> {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    if matches!(*slot, Slot::Running(_)) {
        return Err(Error::AlreadyStarted);
    }
    let persistence = Persistence::new(options)?;
    *slot = Slot::Running(persistence.clone());
    Ok(persistence)
}

/// The runtime of `cx`, started with default options if none was configured. After
/// [`shutdown`], a memory-only runtime (nothing is written to the old database).
pub fn persistence(cx: &Context) -> Persistence {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    match &*slot {
        Slot::Running(persistence) => persistence.clone(),
        Slot::Empty => {
            let persistence =
                Persistence::new(PersistOptions::default()).expect("the default options are valid");
            *slot = Slot::Running(persistence.clone());
            persistence
        }
        Slot::Stopped => {
            let persistence = Persistence::new(PersistOptions::default().memory_only())
                .expect("the default options are valid");
            persistence.note_storage("memory-only: persistence was shut down in this context");
            *slot = Slot::Running(persistence.clone());
            persistence
        }
    }
}

/// The runtime of `cx`, if one runs.
pub fn try_persistence(cx: &Context) -> Option<Persistence> {
    match &*cx.get::<RuntimeSlot>().0.borrow() {
        Slot::Running(persistence) => Some(persistence.clone()),
        Slot::Empty | Slot::Stopped => None,
    }
}

/// Stops the runtime of `cx` and returns it. A runtime lives as long as its yewdux context (which
/// is usually the whole page); this takes it out, so that once your own handles are dropped its
/// timers, page listeners and tab channel are dropped too. Flush first if you want queued changes
/// written. Persisted stores of `cx` stop persisting.
pub fn shutdown(cx: &Context) -> Option<Persistence> {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    match std::mem::replace(&mut *slot, Slot::Stopped) {
        Slot::Running(persistence) => Some(persistence),
        Slot::Empty | Slot::Stopped => None,
    }
}

/// Creates store `S` in `cx` now (yewdux creates stores lazily, on first use), so its saved data
/// starts loading and [`Persistence::ready`] / `status().ready` wait for it. Call it for every
/// persisted store before rendering, so no component sees the defaults first.
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
/// the loaded data and saved. Still, show a loading state until [`Persistence::ready`] (or
/// `status().ready`) so users do not see defaults flash. Note that yewdux creates a store lazily,
/// on its first `get`/`use_store`: `ready` only waits for stores that exist, so call [`preload`]
/// for your persisted stores before rendering.
///
/// A collection whose saved data cannot be loaded (after retries) is not persisted in this
/// session, so its defaults never overwrite the saved data; the status says so
/// (`collection_errors`). Collection names starting with `__` are reserved and not persisted.
pub fn install<S: Persist>(cx: &Context, initial: S) -> S {
    let persistence = persistence(cx);
    let mut parts = parts_of::<S>();
    parts.list.retain(|part| {
        let reserved = is_reserved_collection(part.collection());
        if reserved {
            persistence.report_collection_error(
                part.collection(),
                "the name is reserved (names starting with \"__\"); it is not persisted".into(),
            );
        }
        !reserved
    });
    let shared = Rc::new(Shared {
        parts: Rc::new(parts),
        previous: RefCell::new(Rc::new(initial.clone())),
        hydrated: Cell::new(false),
        unloaded: RefCell::new(BTreeSet::new()),
        missed: RefCell::new(Vec::new()),
        appliers: RefCell::new(Vec::new()),
    });
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
) -> impl Fn(&[(String, Option<String>)]) -> Vec<crate::parts::ItemError> {
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

/// State shared by a store's listener, its loader and its tab appliers.
pub(crate) struct Shared<S> {
    pub(crate) parts: Rc<Parts<S>>,
    /// The state the listener saw last: changes are diffed against it.
    pub(crate) previous: RefCell<Rc<S>>,
    /// Set once saved data is loaded.
    pub(crate) hydrated: Cell<bool>,
    /// Collections whose saved data could not be loaded: not persisted this session.
    pub(crate) unloaded: RefCell<BTreeSet<String>>,
    /// Items other tabs committed while loading: read again after loading.
    pub(crate) missed: RefCell<Vec<(String, Vec<String>)>>,
    /// The tab appliers (the runtime holds them weakly).
    appliers: RefCell<Vec<Applier>>,
}

impl<S: Persist> Shared<S> {
    /// Records `state` as seen, from inside a runtime-made `reduce_mut`: the listener then diffs
    /// the notified state against it and finds nothing of the runtime's own update.
    pub(crate) fn mark_seen(&self, state: &S) {
        *self.previous.borrow_mut() = Rc::new(state.clone());
    }
}

struct PersistListener<S> {
    shared: Rc<Shared<S>>,
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
        if !collected.changes.is_empty() {
            persistence.enqueue_many(collected.changes);
        }
        persistence.report_item_errors(collected.errors);
    }
}
