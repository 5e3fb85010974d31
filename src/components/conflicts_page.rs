//! The conflict page (`#/conflicts`): the library's `ConflictCenter` over the app's synced
//! collections, with a way back to the workspace. When the last open conflict is resolved, it
//! says so and returns to the workspace by itself (to the item that was open).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;
use yewdux_persist::{use_persistence, ConflictCenter};

use crate::ui::{navigate, Page};

/// The synced collections: their automatic conflict strategy is shown even without open
/// conflicts (`settings` stays on this device, so it never conflicts).
const SYNCED_COLLECTIONS: [&str; 3] = ["files", "models", "components"];

/// How long "No conflicts left" shows before the workspace comes back.
const RETURN_AFTER_MS: i32 = 1_500;

/// Calls `then` after `ms` milliseconds; the returned function cancels it.
fn after(ms: i32, then: impl FnOnce() + 'static) -> impl FnOnce() {
    let window = web_sys::window();
    let callback = Closure::once(then);
    let id = window.as_ref().and_then(|window| {
        window
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                ms,
            )
            .ok()
    });
    move || {
        if let (Some(window), Some(id)) = (window, id) {
            window.clear_timeout_with_handle(id);
        }
        drop(callback);
    }
}

#[function_component]
pub(crate) fn ConflictsPage() -> Html {
    let open = use_persistence().status.sync.open_conflicts;
    let previous = use_mut_ref(|| open);
    let all_resolved = use_state(|| false);
    {
        let all_resolved = all_resolved.clone();
        use_effect_with(open, move |&open| {
            let was = std::mem::replace(&mut *previous.borrow_mut(), open);
            let done = was > 0 && open == 0;
            all_resolved.set(done);
            let cancel = done.then(|| after(RETURN_AFTER_MS, || navigate(Page::Workspace)));
            move || {
                if let Some(cancel) = cancel {
                    cancel();
                }
            }
        });
    }
    let collections: Vec<AttrValue> =
        SYNCED_COLLECTIONS.iter().map(|c| AttrValue::Static(c)).collect();
    html! {
        <div class="conflicts-page">
            <p class="conflicts-back">
                <a href={Page::WORKSPACE_HASH}>{ "← Back to the workspace" }</a>
            </p>
            if *all_resolved {
                <p class="conflicts-done" role="status">
                    { "No conflicts left: back to the workspace in a moment." }
                </p>
            } else {
                <p class="hint">
                    { "The same items were changed here and on another device, and the changes \
                       could not be combined by themselves. Each item keeps this device's version \
                       (not synced) until you decide." }
                </p>
            }
            <ConflictCenter title="Conflicts" {collections} />
        </div>
    }
}
