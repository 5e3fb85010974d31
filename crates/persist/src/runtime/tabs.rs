//! Tabs of the same app tell each other which items they committed, over a `BroadcastChannel`.
//!
//! A message names items, not values: the receiving tab reads the current values from IndexedDB.
//! Messages from different tabs may arrive in any order, but a read after a message always sees
//! at least that commit, so every tab converges on what the database holds.

use std::rc::Weak;

use gloo_events::EventListener;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;

use super::Inner;
use crate::engine::WriteBatch;

#[derive(Debug, Serialize, Deserialize)]
struct Committed {
    tab: String,
    collection: String,
    ids: Vec<String>,
}

/// The channel and its message listener; both closed when dropped.
pub(crate) struct TabChannel {
    channel: web_sys::BroadcastChannel,
    _listener: EventListener,
}

impl TabChannel {
    pub(crate) fn open(name: &str, runtime: Weak<Inner>) -> Option<Self> {
        let channel = web_sys::BroadcastChannel::new(name).ok()?;
        let listener = EventListener::new(&channel, "message", move |event| {
            let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else { return };
            let Some(text) = event.data().as_string() else { return };
            let Ok(message) = serde_json::from_str::<Committed>(&text) else { return };
            let Some(inner) = runtime.upgrade() else { return };
            if message.tab != inner.tab_id {
                inner.apply_from_other_tab(message.collection, message.ids);
            }
        });
        Some(Self { channel, _listener: listener })
    }

    pub(crate) fn announce(&self, tab: &str, batch: &WriteBatch) {
        let message = Committed {
            tab: tab.to_owned(),
            collection: batch.collection.to_string(),
            ids: batch.ops.iter().map(|op| op.key.id.to_string()).collect(),
        };
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
