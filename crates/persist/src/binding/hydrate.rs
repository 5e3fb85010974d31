//! Loading a persisted store's saved data (hydration): read every collection, apply it in one
//! store update, replay the changes made meanwhile, save the first run's items.

use std::rc::Rc;
use std::sync::Arc;

use persist_engine::{Change, ItemKey};
use yewdux::{Context, Dispatch};

use super::parts::{Collected, PartChange, Persist};
use super::shared::Shared;
use crate::local::{LoadedItems, StoreError};
use crate::runtime::{ItemError, Persistence};

/// Delays before the retries of a failed load (transient IndexedDB errors happen, e.g. while
/// another tab upgrades the database).
const RETRY_DELAYS_MS: [u32; 3] = [50, 250, 1_000];

fn initialized_key(collection: &str) -> String {
    format!("initialized:{collection}")
}

/// Retries `attempt` after each of [`RETRY_DELAYS_MS`] while it fails.
async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut result = attempt().await;
    for delay in RETRY_DELAYS_MS {
        if result.is_ok() {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(delay).await;
        result = attempt().await;
    }
    result
}

/// What loading found for one collection.
struct Loaded {
    items: LoadedItems,
    /// The collection was saved before (its marker exists, or it has items).
    initialized: bool,
    /// Its "initialised" marker exists.
    marked: bool,
}

pub(super) async fn hydrate<S: Persist>(
    cx: Context,
    persistence: Persistence,
    shared: Rc<Shared<S>>,
) {
    let collections = shared.parts.collections();
    let prepared = with_retries(|| {
        let store = persistence.local_store();
        let collections = collections.clone();
        async move { store.prepare(&collections).await }
    })
    .await;
    if let Err(error) = prepared {
        if matches!(error, StoreError::Unavailable(_)) && persistence.can_fall_back_to_memory() {
            persistence.fall_back_to_memory(error.to_string());
            // A memory store cannot fail to prepare.
            let _ = persistence.local_store().prepare(&collections).await;
        }
    }

    // Read everything first, then apply in one store update.
    let mut loaded: Vec<Option<Loaded>> = Vec::new();
    for name in &collections {
        let result = with_retries(|| {
            let store = persistence.local_store();
            let name = name.clone();
            async move {
                let items = store.load_all(&name).await?;
                let marker = store.get_meta(&initialized_key(&name)).await?;
                let marked = marker.is_some();
                Ok(Loaded { initialized: marked || !items.items.is_empty(), marked, items })
            }
        })
        .await;
        match result {
            Ok(found) => {
                persistence.mark_loaded_from_storage();
                loaded.push(Some(found));
            }
            Err(error) => {
                persistence.report_collection_error(
                    name,
                    format!("saved data could not be loaded ({error}); changes are not saved"),
                );
                shared.unloaded.borrow_mut().insert(name.clone());
                loaded.push(None);
            }
        }
    }

    let mut errors: Vec<ItemError> = Vec::new();
    let mut first_runs = Vec::new();
    // Changes the app made while loading, replayed over the loaded data.
    let mut replayed: Vec<(ItemKey, Change)> = Vec::new();
    let initial = Rc::clone(&shared.previous.borrow());
    Dispatch::<S>::new(&cx).reduce_mut(|state| {
        for (part, found) in shared.parts.list.iter().zip(&loaded) {
            let Some(found) = found else { continue };
            let collection = part.collection();
            errors.extend(found.items.unreadable.iter().map(|item| ItemError {
                collection: collection.to_owned(),
                id: item.id.clone(),
                message: item.message.clone(),
            }));
            if part.is_collection() && !found.initialized {
                first_runs.push(Rc::clone(part));
                continue;
            }
            let mut early: Vec<(String, Change)> = Vec::new();
            part.diff(&initial, state, &mut |change| match change {
                PartChange::Change { id, change } => early.push((id.to_owned(), change)),
                PartChange::Error(error) => errors.push(error),
            });
            errors.extend(part.load(state, &found.items.items));
            let as_json: Vec<(String, Option<String>)> = early
                .iter()
                .map(|(id, change)| match change {
                    Change::Put(json) => (id.clone(), Some(json.as_str().to_owned())),
                    Change::Delete => (id.clone(), None),
                })
                .collect();
            errors.extend(part.apply(state, &as_json));
            let collection: Arc<str> = Arc::from(collection);
            replayed.extend(
                early
                    .into_iter()
                    .map(|(id, change)| (ItemKey::new(Arc::clone(&collection), id), change)),
            );
        }
        shared.mark_seen(state);
        shared.hydrated.set(true);
    });
    let state = cx.get::<S>();

    // First run of a collection: save its current items. Queued before anything else can run, so
    // no later change of the same item is queued before these.
    let mut collected = Collected { changes: replayed, errors };
    for part in &first_runs {
        part.snapshot(&state, &mut collected.sink(&**part));
    }
    persistence.enqueue_changes(collected.changes);
    persistence.report_item_errors(collected.errors);
    for (collection, ids) in shared.missed.take() {
        persistence.reread_from_storage(collection, ids);
    }
    persistence.end_hydration();

    // Remember which collections were initialised, once their first items are durable, so that
    // deleting every item later does not bring the initial ones back.
    let unmarked: Vec<String> = shared
        .parts
        .list
        .iter()
        .zip(&loaded)
        .filter(|(part, found)| {
            part.is_collection() && found.as_ref().is_some_and(|found| !found.marked)
        })
        .map(|(part, _)| part.collection().to_owned())
        .collect();
    if unmarked.is_empty() || persistence.flush().await.is_err() {
        // After a failed flush the marker stays unset: the next start saves the items again.
        return;
    }
    let store = persistence.local_store();
    for collection in unmarked {
        if let Err(error) = store.set_meta(&initialized_key(&collection), "true").await {
            persistence.report_error(format!("saving bookkeeping of {collection} failed: {error}"));
        }
    }
}
