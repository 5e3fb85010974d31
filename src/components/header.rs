//! The top bar: app name, save and sync indicators, the open-conflict link, persistence panel
//! toggle.

use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::status::{Connection, StorageKind, SyncStatus};
use yewdux_persist::{use_persistence, PersistStatus};

use crate::ui::{Page, Ui};

/// The header's conflict link text: `None` without open conflicts.
pub(crate) fn conflicts_label(open: usize) -> Option<String> {
    match open {
        0 => None,
        1 => Some("1 conflict".to_owned()),
        n => Some(format!("{n} conflicts")),
    }
}

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

/// What the sync indicator says, and its CSS state; `None` without a server.
pub(crate) fn sync_state(sync: &SyncStatus) -> Option<(&'static str, String)> {
    let waiting = match sync.pending {
        0 => String::new(),
        1 => " · 1 change to sync".to_owned(),
        n => format!(" · {n} changes to sync"),
    };
    let (state, label) = match sync.connection {
        Connection::LocalOnly => return None,
        Connection::Online if sync.pending == 0 && !sync.syncing => ("saved", "online · synced"),
        Connection::Online => ("saving", "online · syncing"),
        Connection::Checking => ("saving", "connecting"),
        Connection::Degraded => ("warning", "server degraded"),
        Connection::Offline => ("warning", "offline"),
        Connection::SignedOut => ("error", "signed out"),
    };
    let waiting = if sync.connection == Connection::Online { String::new() } else { waiting };
    Some((state, format!("{label}{waiting}")))
}

#[function_component]
fn SyncIndicator() -> Html {
    let persistence = use_persistence();
    let Some((state, text)) = sync_state(&persistence.status.sync) else {
        return Html::default();
    };
    let title = persistence.status.sync.last_error.clone().unwrap_or_else(|| text.clone());
    html! {
        <p class={classes!("save-indicator", "sync-indicator", state)} role="status" aria-live="polite" {title}>
            <span class="dot" aria-hidden="true"></span>
            <span class="sync-text">{ text }</span>
        </p>
    }
}

/// "N conflicts", a link to the conflict page, while conflicts wait for the user.
#[function_component]
fn ConflictsLink() -> Html {
    let persistence = use_persistence();
    let on_page = *use_selector(|ui: &Ui| ui.page == Page::Conflicts);
    let Some(text) = conflicts_label(persistence.status.sync.open_conflicts) else {
        return Html::default();
    };
    html! {
        <a
            id="conflicts-link"
            class={classes!("conflicts-link", on_page.then_some("active"))}
            href={Page::CONFLICTS_HASH}
            aria-current={on_page.then_some("page")}
            title="Changes that conflict with the server's: decide which to keep"
        >
            { text }
        </a>
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
            <SyncIndicator />
            <ConflictsLink />
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_indicator_says_where_changes_are() {
        let mut sync = SyncStatus::default();
        assert_eq!(sync_state(&sync), None, "no server: nothing to say");
        sync.connection = Connection::Online;
        assert_eq!(sync_state(&sync).unwrap().1, "online · synced");
        sync.connection = Connection::Offline;
        sync.pending = 3;
        assert_eq!(sync_state(&sync).unwrap(), ("warning", "offline · 3 changes to sync".into()));
        sync.connection = Connection::SignedOut;
        sync.pending = 1;
        assert_eq!(sync_state(&sync).unwrap().1, "signed out · 1 change to sync");
    }

    #[test]
    fn the_conflict_link_counts_open_conflicts() {
        assert_eq!(conflicts_label(0), None);
        assert_eq!(conflicts_label(1).as_deref(), Some("1 conflict"));
        assert_eq!(conflicts_label(4).as_deref(), Some("4 conflicts"));
    }
}
