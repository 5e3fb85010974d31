//! Tabs of the same app tell each other which items they committed, over a `BroadcastChannel`,
//! and apply what the others committed to their own stores.
//!
//! A message names items, not values: the receiving tab reads the current values from IndexedDB.
//! Messages from different tabs may arrive in any order, but a read after a message always sees
//! at least that commit, so every tab converges on what the database holds.

use std::rc::{Rc, Weak};
use std::sync::Arc;

use gloo_events::EventListener;
use persist_engine::ItemKey;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;

use super::driver::{Announcer, Applier, Inner};

#[derive(Debug, Serialize, Deserialize)]
struct Committed {
    tab: String,
    collection: String,
    ids: Vec<String>,
}

/// Opens the tab channel of `database` and attaches it to the runtime: the runtime announces its
/// commits on it and applies what the other tabs announce. Without `BroadcastChannel` support the
/// runtime works alone.
pub(super) fn attach(inner: &Rc<Inner>, database: &str) {
    let name = format!("yewdux-persist/{database}");
    if let Some(channel) = TabChannel::open(&name, Rc::downgrade(inner)) {
        *inner.tabs.borrow_mut() = Some(Box::new(channel));
    }
}

/// The channel and its message listener; both closed when dropped.
struct TabChannel {
    channel: web_sys::BroadcastChannel,
    _listener: EventListener,
}

impl TabChannel {
    fn open(name: &str, runtime: Weak<Inner>) -> Option<Self> {
        let channel = web_sys::BroadcastChannel::new(name).ok()?;
        let listener = EventListener::new(&channel, "message", move |event| {
            let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else { return };
            let Some(text) = event.data().as_string() else { return };
            let Ok(message) = serde_json::from_str::<Committed>(&text) else { return };
            let Some(inner) = runtime.upgrade() else { return };
            if message.tab != inner.node {
                inner.apply_from_other_tab(message.collection, message.ids);
            }
        });
        Some(Self { channel, _listener: listener })
    }
}

impl Announcer for TabChannel {
    fn announce_items(&self, tab: &str, collection: &str, ids: Vec<String>) {
        let message = Committed { tab: tab.to_owned(), collection: collection.to_owned(), ids };
        if let Ok(text) = serde_json::to_string(&message) {
            // A closed channel only means no other tab listens any more.
            let _ = self.channel.post_message(&text.into());
        }
    }
}

impl Drop for TabChannel {
    fn drop(&mut self) {
        self.channel.close();
    }
}

impl Inner {
    /// Applies items another tab committed, skipping keys this tab is about to overwrite.
    pub(super) fn apply_from_other_tab(self: &Rc<Self>, collection: String, ids: Vec<String>) {
        if !self.appliers.borrow().contains_key(&collection) {
            return;
        }
        let ids: Vec<String> = {
            let engine = self.engine.borrow();
            let name: Arc<str> = Arc::from(collection.as_str());
            ids.into_iter()
                .filter(|id| !engine.is_pending(&ItemKey::new(Arc::clone(&name), id.as_str())))
                .collect()
        };
        if ids.is_empty() {
            return;
        }
        let weak: Weak<Inner> = Rc::downgrade(self);
        let store = self.store.borrow().clone();
        wasm_bindgen_futures::spawn_local(async move {
            let values = store.load_items(&collection, &ids).await;
            let Some(inner) = weak.upgrade() else { return };
            let values = match values {
                Ok(values) => values,
                Err(error) => {
                    inner.status.borrow_mut().last_error =
                        Some(format!("reading changes from another tab failed: {error}"));
                    inner.schedule_notify();
                    return;
                }
            };
            // A change queued while reading wins over what the other tab wrote.
            let changes: Vec<(String, Option<String>)> = {
                let engine = inner.engine.borrow();
                let name: Arc<str> = Arc::from(collection.as_str());
                ids.into_iter()
                    .zip(values)
                    .filter(|(id, _)| {
                        !engine.is_pending(&ItemKey::new(Arc::clone(&name), id.as_str()))
                    })
                    .collect()
            };
            let appliers: Vec<Applier> = inner
                .appliers
                .borrow()
                .get(&collection)
                .map(|list| list.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            let mut errors = Vec::new();
            for applier in appliers {
                errors.extend(applier(&changes));
            }
            if !errors.is_empty() {
                inner.status.borrow_mut().push_item_errors(errors);
                inner.schedule_notify();
            }
        });
    }
}
