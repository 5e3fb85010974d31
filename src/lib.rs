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
use yewdux_persist::conflict::{ConflictStrategy, MergeFallback, Resolution, Resolver, Side};
use yewdux_persist::merge::merge3;
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
///
/// Conflicts (the server changed an item this device also changed) are decided per collection:
/// - `files`: three-way merge, the rest asked in the conflict page, by the app's own resolver
///   ([`files_resolver`]). A file is mostly text typed by a person: edits to different lines (or
///   to the name and the content) combine, and two edits of the same lines are never thrown away
///   silently — the user picks or edits. Its `updatedAt` stamp changes with every edit on every
///   device, so it is not a decision: the newer stamp is kept.
/// - `components`: the same, for the same reason: the template is hand-written text, and a
///   props list edited on both sides is the user's call.
/// - `models`: merge, and for a field changed on both sides the newer change wins
///   ([`MergeFallback::LastWriterWins`]). A model is a name and a short field list (a list is
///   merged as a whole); redoing the lost edit is quick, while a model stuck in a conflict would
///   keep every editor of it from syncing.
/// - `settings`: last writer wins ([`ConflictStrategy::LastWriterWins`]): a preference's newest
///   choice is the one the user wants, and asking about a theme would be noise. (It is
///   local-only today, so this only matters once it syncs.)
pub fn persist_options(database: &str) -> PersistOptions {
    let merge_or_ask = ConflictStrategy::Merge(MergeFallback::Manual);
    PersistOptions::new(database)
        .resolver("files", files_resolver())
        .collection("components", CollectionConfig::default().with_conflict(merge_or_ask))
        .collection(
            "models",
            CollectionConfig::default()
                .with_conflict(ConflictStrategy::Merge(MergeFallback::LastWriterWins)),
        )
        .collection(
            "settings",
            CollectionConfig::default()
                .local_only()
                .with_conflict(ConflictStrategy::LastWriterWins),
        )
}

/// How a conflict over a file is decided: the three-way merge of its fields (its content line by
/// line); when the only field changed on both sides is `updatedAt` (every edit stamps it, and two
/// first-run workspaces differ only there), the newer stamp; anything else changed on both sides
/// is left to the user (`None`).
pub fn files_resolver() -> Resolver {
    Resolver::new(|case| match merge3(case.base, case.local, case.remote, None) {
        Ok(merged) => Some(Resolution::Value(merged)),
        Err(fields) if fields.iter().all(|field| field == "updatedAt") => {
            let stamp = |value: Option<&serde_json::Value>| {
                value.and_then(|v| v.get("updatedAt")).and_then(serde_json::Value::as_f64)
            };
            let newer =
                if stamp(case.local) >= stamp(case.remote) { Side::Local } else { Side::Remote };
            merge3(case.base, case.local, case.remote, Some(newer)).ok().map(Resolution::Value)
        }
        Err(_) => None,
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yewdux_persist::conflict::{ConflictCase, Resolution};
    use yewdux_persist::remote::protocol::Hlc;

    use super::files_resolver;

    fn decide(
        base: serde_json::Value,
        local: serde_json::Value,
        remote: serde_json::Value,
    ) -> Option<Resolution> {
        let stamp = Hlc { wall_ms: 1, counter: 0, node: "d.s".into() };
        files_resolver().decide(&ConflictCase {
            collection: "files",
            id: "f",
            base: Some(&base),
            local: Some(&local),
            local_hlc: &stamp,
            remote: Some(&remote),
            remote_hlc: None,
        })
    }

    #[test]
    fn a_files_edits_merge_and_the_newer_stamp_is_kept() {
        let base = json!({"content": "a\nb\nc\n", "updatedAt": 1.0});
        let local = json!({"content": "A\nb\nc\n", "updatedAt": 3.0});
        let remote = json!({"content": "a\nb\nC\n", "updatedAt": 2.0});
        let merged = json!({"content": "A\nb\nC\n", "updatedAt": 3.0});
        assert_eq!(decide(base, local, remote), Some(Resolution::Value(Some(merged))));
    }

    #[test]
    fn the_same_line_changed_on_both_sides_is_left_to_the_user() {
        let base = json!({"content": "a\n", "updatedAt": 1.0});
        let local = json!({"content": "mine\n", "updatedAt": 3.0});
        let remote = json!({"content": "theirs\n", "updatedAt": 2.0});
        assert_eq!(decide(base, local, remote), None);
    }
}
