//! The app's frame: a loading screen until saved data is loaded, then header, sidebar, editor
//! (or the conflict page, `#/conflicts`) and the optional persistence panel, in the chosen
//! theme.

use wasm_bindgen::JsCast;
use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::{use_persistence_ready, PersistenceDashboard};

use super::conflicts_page::ConflictsPage;
use super::editor::EditorPane;
use super::header::Header;
use super::settings_form::apply_autosave_debounce;
use super::sidebar::Sidebar;
use crate::store::Settings;
use crate::ui::{current_hash, Page, Ui};

/// Keeps `Ui::page` on the page the URL hash names, from the start and on every `hashchange`
/// (links, back and forward buttons). The listener goes with the shell.
#[hook]
fn use_hash_route() {
    let dispatch = use_dispatch::<Ui>();
    use_effect_with((), move |_| {
        let follow = move || {
            if let Some(page) = Page::from_hash(&current_hash()) {
                dispatch.reduce_mut(|ui| ui.page = page);
            }
        };
        follow();
        let listener = wasm_bindgen::closure::Closure::<dyn Fn()>::new(follow);
        let window = web_sys::window();
        if let Some(window) = &window {
            let _ = window
                .add_event_listener_with_callback("hashchange", listener.as_ref().unchecked_ref());
        }
        move || {
            if let Some(window) = &window {
                let _ = window.remove_event_listener_with_callback(
                    "hashchange",
                    listener.as_ref().unchecked_ref(),
                );
            }
            drop(listener);
        }
    });
}

#[function_component]
pub(crate) fn Shell() -> Html {
    let settings = use_store_value::<Settings>();
    // Only readiness matters here: re-rendering the whole shell on every queue change would
    // redraw the editor while the user types.
    let ready = use_persistence_ready();
    let cx = use_context::<yewdux::Context>().expect("App provides the context");
    let panel_open = *use_selector(|ui: &Ui| ui.panel_open);
    let page = *use_selector(|ui: &Ui| ui.page);
    use_hash_route();
    {
        // The saved autosave debounce takes effect once settings are loaded.
        let debounce = settings.autosave_debounce_ms;
        let runtime = yewdux_persist::persistence(&cx);
        use_effect_with((ready, debounce), move |(ready, ms)| {
            if *ready {
                // A saved value was valid when it was saved; if the limits changed since, the
                // default stays and the settings form shows the error on the next edit.
                let _ = apply_autosave_debounce(&runtime, *ms);
            }
        });
    }

    if !ready {
        return html! {
            <div class="app loading" role="status" aria-live="polite">
                <div class="spinner" aria-hidden="true"></div>
                <p>{ "Loading workspace…" }</p>
            </div>
        };
    }
    let theme = settings.theme.as_str();
    html! {
        <div
            class={classes!("app", format!("theme-{theme}"))}
            data-theme={theme}
            style={format!("--editor-font-size: {}px", settings.font_size)}
        >
            <a class="skip-link" href="#editor">{ "Skip to editor" }</a>
            <Header />
            <div class={classes!("layout", panel_open.then_some("with-panel"))}>
                <Sidebar />
                if page == Page::Conflicts {
                    <main class="editor conflicts" id="editor"><ConflictsPage /></main>
                } else {
                    <EditorPane />
                }
                if panel_open {
                    <aside class="panel" id="persistence-panel" aria-label="Persistence">
                        <PersistenceDashboard title="Persistence" conflicts_href={Page::CONFLICTS_HASH} />
                    </aside>
                }
            </div>
        </div>
    }
}
