//! The workspace editor: a small Yew + yewdux app whose files, models, components and settings
//! are persisted to IndexedDB by `yewdux-persist`.
//!
//! `run()` (wasm32 only) starts it in the page on the global yewdux context. Tests (or an
//! embedding app) render [`App`] with their own context instead:
//!
//! ```no_run
//! use persist_app::{persist_options, App, AppProps};
//!
//! let cx = yewdux::Context::new();
//! yewdux_persist::start(&cx, persist_options("my-test-db")).unwrap();
//! let document = web_sys::window().unwrap().document().unwrap();
//! let root = document.create_element("div").unwrap();
//! document.body().unwrap().append_child(&root).unwrap();
//! yew::Renderer::<App>::with_root_and_props(root, AppProps { context: cx }).render();
//! ```

use std::fmt;

use yew::prelude::*;
use yewdux_persist::{CollectionConfig, PersistOptions};

mod actions;
mod components;
mod dom;
pub mod store;
mod ui;

use store::{Settings, Workspace};

/// The IndexedDB database of the app.
pub const DATABASE: &str = "workspace-editor";

/// How the app persists its stores, in the IndexedDB database `database`.
///
/// - `files`, `models`, `components`: the default 300 ms debounce (changed at runtime by the
///   autosave setting), 2 s max wait, batches of 10.
/// - `settings`: kept on this device only, never synced to a server.
pub fn persist_options(database: &str) -> PersistOptions {
    PersistOptions::new(database).collection("settings", CollectionConfig::default().local_only())
}

/// Props of [`App`].
#[derive(Clone, PartialEq, Properties)]
pub struct AppProps {
    /// The yewdux context holding the app's stores and its persistence runtime (configure it
    /// with [`persist_options`] before rendering).
    pub context: yewdux::Context,
}

impl fmt::Debug for AppProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppProps").finish_non_exhaustive()
    }
}

/// The whole app, on the stores of `props.context`.
#[function_component]
pub fn App(props: &AppProps) -> Html {
    // Create the persisted stores now: the runtime reports "not ready" only for stores that
    // exist, and the loading screen must show until both are loaded.
    use_memo(props.context.clone(), |cx| {
        yewdux_persist::preload::<Workspace>(cx);
        yewdux_persist::preload::<Settings>(cx);
    });
    html! {
        <ContextProvider<yewdux::Context> context={props.context.clone()}>
            <components::Shell />
        </ContextProvider<yewdux::Context>>
    }
}

/// Starts the app in `<body>`, persisted to [`DATABASE`] through the global yewdux context.
#[cfg(target_arch = "wasm32")]
pub fn run() {
    let context = yewdux::Context::global();
    yewdux_persist::start(&context, persist_options(DATABASE))
        .expect("run() is called once, with valid options");
    yew::Renderer::<App>::with_props(AppProps { context }).render();
}
