//! The top bar: app name, save indicator, persistence panel toggle.

use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::status::StorageKind;
use yewdux_persist::{use_persistence, PersistStatus};

use crate::ui::Ui;

/// What the save indicator says, and its CSS state.
pub(crate) fn save_state(status: &PersistStatus) -> (&'static str, String) {
    if let Some(error) = &status.last_error {
        ("error", format!("Not saved: {error}"))
    } else if !status.failed_keys.is_empty() {
        ("error", format!("Not saved: {}", status.failed_keys.join(", ")))
    } else if status.queue_depth + status.in_flight > 0 {
        ("saving", "Saving…".to_owned())
    } else if status.storage == StorageKind::Memory {
        ("warning", "Kept in memory only".to_owned())
    } else {
        ("saved", "All changes saved".to_owned())
    }
}

#[function_component]
fn SaveIndicator() -> Html {
    let persistence = use_persistence();
    let status = &persistence.status;
    let (state, text) = save_state(status);
    let title = status.storage_note.clone().unwrap_or_else(|| text.clone());
    html! {
        <p class={classes!("save-indicator", state)} role="status" aria-live="polite" {title}>
            <span class="dot" aria-hidden="true"></span>
            <span class="save-text">{ text }</span>
        </p>
    }
}

#[function_component]
pub(crate) fn Header() -> Html {
    let (panel_open, dispatch) = (use_selector(|ui: &Ui| ui.panel_open), use_dispatch::<Ui>());
    let toggle = dispatch.reduce_mut_callback(|ui| ui.panel_open = !ui.panel_open);
    html! {
        <header class="topbar">
            <h1 class="brand">{ "Workspace editor" }</h1>
            <SaveIndicator />
            <button
                class="button ghost"
                aria-expanded={panel_open.to_string()}
                aria-controls={panel_open.then_some("persistence-panel")}
                onclick={toggle}
            >
                { "Persistence panel" }
            </button>
        </header>
    }
}
