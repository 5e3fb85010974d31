//! The yewdux side: [`install`] a persisted store from its `Store::new`, [`configure`] the runtime
//! of a context, and the listener that turns store changes into queued item changes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use yewdux::{Context, Dispatch, Listener};

use crate::engine::{Change, ItemKey};
use crate::error::Error;
use crate::local::{is_reserved_collection, StoreError, StoredItem};
use crate::parts::{parts_of, PartChange, Parts, Persist};
use crate::runtime::{PersistOptions, Persistence};

/// The runtime of a yewdux context, kept in the context itself.
#[derive(Default)]
struct RuntimeSlot(RefCell<Option<Persistence>>);

impl yewdux::store::Store for RuntimeSlot {
    fn new(_: &Context) -> Self {
        Self::default()
    }

    fn should_notify(&self, _: &Self) -> bool {
        false
    }
}

/// Sets up the persistence runtime of `cx` with `options`. Call it before any persisted store is
/// used (in `main`, before rendering); stores installed later use this runtime.
///
/// # Errors
/// - [`Error::AlreadyStarted`] when the context already has a runtime.
/// - [`Error::Config`] when the options' configuration is invalid.
pub fn configure(cx: &Context, options: PersistOptions) -> Result<Persistence, Error> {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    if slot.is_some() {
        return Err(Error::AlreadyStarted);
    }
    let persistence = Persistence::new(options)?;
    *slot = Some(persistence.clone());
    Ok(persistence)
}

/// The runtime of `cx`, started with default options if none runs yet.
pub fn persistence(cx: &Context) -> Persistence {
    let slot = cx.get::<RuntimeSlot>();
    let mut slot = slot.0.borrow_mut();
    slot.get_or_insert_with(|| {
        Persistence::new(PersistOptions::default()).expect("the default options are valid")
    })
    .clone()
}

/// The runtime of `cx`, if one runs.
pub fn try_persistence(cx: &Context) -> Option<Persistence> {
    cx.get::<RuntimeSlot>().0.borrow().clone()
}

/// Stops the runtime of `cx`: takes it out of the context, so when your own handles are gone its
/// timers, page listeners and tab channel are dropped. Flush first if you want queued changes
/// written. Persisted stores of `cx` stop persisting.
pub fn shutdown(cx: &Context) -> Option<Persistence> {
    cx.get::<RuntimeSlot>().0.borrow_mut().take()
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
/// on its first `get`/`use_store`: `ready` only waits for stores that exist.
pub fn install<S: Persist>(cx: &Context, initial: S) -> S {
    let persistence = persistence(cx);
    let parts = Rc::new(parts_of::<S>());
    let shared = Rc::new(Shared {
        parts: Rc::clone(&parts),
        previous: RefCell::new(Rc::new(initial.clone())),
        suppress: Cell::new(false),
        hydrated: Cell::new(false),
    });
    cx.init_listener(|| PersistListener { shared: Rc::clone(&shared) });
    for part in &parts.list {
        let collection = part.collection().to_owned();
        let (cx, shared, part) = (cx.clone(), Rc::clone(&shared), Rc::clone(part));
        persistence.register_applier(
            &collection,
            Rc::new(move |changes| {
                if !shared.hydrated.get() {
                    return Vec::new(); // loading will read the newest values anyway
                }
                let mut errors = Vec::new();
                shared.suppress.set(true);
                Dispatch::<S>::new(&cx).reduce_mut(|state| errors = part.apply(state, changes));
                shared.suppress.set(false);
                errors
            }),
        );
    }
    persistence.begin_hydration();
    wasm_bindgen_futures::spawn_local(hydrate::<S>(cx.clone(), persistence, shared));
    initial
}

/// State shared by a store's listener, its loader and its tab appliers.
struct Shared<S> {
    parts: Rc<Parts<S>>,
    /// The state the listener saw last: changes are diffed against it.
    previous: RefCell<Rc<S>>,
    /// Set while the runtime itself updates the store (loading, other tabs): not re-persisted.
    suppress: Cell<bool>,
    /// Set once saved data is loaded.
    hydrated: Cell<bool>,
}

struct PersistListener<S> {
    shared: Rc<Shared<S>>,
}

impl<S: Persist> Listener for PersistListener<S> {
    type Store = S;

    fn on_change(&self, cx: &Context, state: Rc<S>) {
        let shared = &self.shared;
        if shared.suppress.get() {
            shared.previous.replace(state);
            return;
        }
        if !shared.hydrated.get() {
            // `previous` stays the initial state: changes made while loading are replayed over
            // the loaded data when it arrives.
            return;
        }
        let previous = shared.previous.replace(Rc::clone(&state));
        let Some(persistence) = try_persistence(cx) else { return };
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for part in &shared.parts.list {
            let collection: Arc<str> = Arc::from(part.collection());
            part.diff(&previous, &state, &mut |change| match change {
                PartChange::Change { id, change } => {
                    changes.push((ItemKey::new(Arc::clone(&collection), id), change));
                }
                PartChange::Error(error) => errors.push(error),
            });
        }
        if !changes.is_empty() {
            persistence.enqueue_many(changes);
        }
        persistence.report_item_errors(errors);
    }
}

fn initialized_key(collection: &str) -> String {
    format!("initialized:{collection}")
}

async fn hydrate<S: Persist>(cx: Context, persistence: Persistence, shared: Rc<Shared<S>>) {
    let collections = shared.parts.collections();
    if let Some(reserved) = collections.iter().find(|name| is_reserved_collection(name)) {
        persistence.report_error(format!(
            "collection name {reserved:?} is reserved (names starting with \"__\"); it is not persisted"
        ));
    }
    let collections: Vec<String> =
        collections.into_iter().filter(|name| !is_reserved_collection(name)).collect();

    if let Err(error) = persistence.local_store().prepare(&collections).await {
        match error {
            StoreError::Unavailable(reason) => {
                persistence.fall_back_to_memory(reason);
                let _ = persistence.local_store().prepare(&collections).await;
            }
            other => persistence.report_error(format!("preparing storage failed: {other}")),
        }
    }
    let store = persistence.local_store();

    // Read everything first, then apply in one store update.
    let mut loaded: Vec<Option<(Vec<StoredItem>, bool)>> = Vec::new();
    for part in &shared.parts.list {
        let name = part.collection();
        if is_reserved_collection(name) {
            loaded.push(None);
            continue;
        }
        let items = store.load_all(name).await;
        let initialized = store.get_meta(&initialized_key(name)).await;
        match (items, initialized) {
            (Ok(items), Ok(marker)) => loaded.push(Some((items, marker.is_some()))),
            (Err(error), _) | (_, Err(error)) => {
                persistence.report_error(format!("loading {name} failed: {error}"));
                loaded.push(None);
            }
        }
    }

    let mut errors = Vec::new();
    let mut first_runs = Vec::new();
    // Changes the app made while loading, replayed over the loaded data.
    let mut replayed: Vec<(ItemKey, Change)> = Vec::new();
    let initial = Rc::clone(&shared.previous.borrow());
    shared.suppress.set(true);
    Dispatch::<S>::new(&cx).reduce_mut(|state| {
        for (part, loaded) in shared.parts.list.iter().zip(&loaded) {
            let Some((items, initialized)) = loaded else { continue };
            if part.is_collection() && items.is_empty() && !initialized {
                first_runs.push(Rc::clone(part));
                continue;
            }
            let mut early: Vec<(String, Change)> = Vec::new();
            part.diff(&initial, state, &mut |change| match change {
                PartChange::Change { id, change } => early.push((id.to_owned(), change)),
                PartChange::Error(error) => errors.push(error),
            });
            errors.extend(part.load(state, items));
            let as_json: Vec<(String, Option<String>)> = early
                .iter()
                .map(|(id, change)| match change {
                    Change::Put(json) => (id.clone(), Some(json.as_str().to_owned())),
                    Change::Delete => (id.clone(), None),
                })
                .collect();
            errors.extend(part.apply(state, &as_json));
            let collection: Arc<str> = Arc::from(part.collection());
            replayed.extend(
                early
                    .into_iter()
                    .map(|(id, change)| (ItemKey::new(Arc::clone(&collection), id), change)),
            );
        }
    });
    shared.suppress.set(false);
    let state = cx.get::<S>();
    *shared.previous.borrow_mut() = Rc::clone(&state);
    shared.hydrated.set(true);

    // First run of a collection: save its initial items, and remember it was initialised so
    // deleting every item later does not bring the initial ones back.
    let mut changes = replayed;
    for part in &first_runs {
        let collection: Arc<str> = Arc::from(part.collection());
        part.snapshot(&state, &mut |change| match change {
            PartChange::Change { id, change } => {
                changes.push((ItemKey::new(Arc::clone(&collection), id), change));
            }
            PartChange::Error(error) => errors.push(error),
        });
    }
    for (part, loaded) in shared.parts.list.iter().zip(&loaded) {
        if matches!(loaded, Some((_, false))) {
            if let Err(error) = store.set_meta(&initialized_key(part.collection()), "true").await {
                persistence.report_error(format!("saving bookkeeping failed: {error}"));
            }
        }
    }
    if !changes.is_empty() {
        persistence.enqueue_many(changes);
    }
    persistence.report_item_errors(errors);
    persistence.end_hydration();
}
