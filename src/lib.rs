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

/// Starts the app in `<body>`, persisted to [`DATABASE`] through the global yewdux context and
/// synced with the server that serves it (`make run`, or `trunk serve`'s proxy): the token comes
/// from the server's `/dev-config.json` (dev mode), and a fresh one is fetched whenever the server
/// says the token is no longer valid. Without a server the app works on locally.
#[cfg(target_arch = "wasm32")]
pub fn run() {
    use std::rc::Rc;
    use yewdux_persist::remote::{HttpRemote, Remote};

    wasm_bindgen_futures::spawn_local(async {
        let context = yewdux::Context::global();
        let remote = HttpRemote::new("", None);
        remote.set_token(remote.dev_config().await.ok().map(|config| config.token));
        let options = persist_options(DATABASE).remote(Rc::new(remote.clone()));
        yewdux_persist::start(&context, options).expect("run() is called once, with valid options");
        renew_token_when_signed_out(&context, remote);
        yew::Renderer::<App>::with_props(AppProps { context }).render();
    });
}

/// Fetches a new dev token whenever the runtime reports "signed out" (at most every 10 s): the
/// server was restarted with a new token, or the old one was revoked.
#[cfg(target_arch = "wasm32")]
fn renew_token_when_signed_out(
    context: &yewdux::Context,
    remote: yewdux_persist::remote::HttpRemote,
) {
    use std::cell::Cell;
    use std::rc::Rc;
    use yewdux_persist::status::Connection;

    let persistence = yewdux_persist::persistence(context);
    let weak = persistence.downgrade();
    let last_try = Rc::new(Cell::new(f64::NEG_INFINITY));
    persistence
        .subscribe_status(move |status| {
            let now = js_sys::Date::now();
            if status.sync.connection != Connection::SignedOut || now - last_try.get() < 10_000.0 {
                return;
            }
            last_try.set(now);
            let (weak, remote) = (weak.clone(), remote.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let (Ok(config), Some(persistence)) = (remote.dev_config().await, weak.upgrade())
                {
                    persistence.set_token(Some(config.token));
                }
            });
        })
        .detach();
}
