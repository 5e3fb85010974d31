//! Notes: a tiny Yew app that uses only yewdux-persist's public API — one persisted store, the
//! `use_persistence` hook and the dashboard. Build it with `trunk build` in this folder (or see
//! `scripts/e2e-test.sh`, which builds it and checks a note survives a reload).
// The app only runs in a browser; a native build (the workspace's clippy) compiles it unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use serde::{Deserialize, Serialize};
use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::prelude::*;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[derive(Clone, PartialEq, Default)]
struct Notes {
    notes: Collection<Note>, // one IndexedDB record per note
    draft: String,           // one record, so a half-typed note survives a reload too
}

impl Persist for Notes {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("notes", |s| &s.notes, |s| &mut s.notes).singleton(
            "draft",
            |s| &s.draft,
            |s| &mut s.draft,
        );
    }
}

impl Store for Notes {
    fn new(cx: &yewdux::Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }
    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

#[function_component]
fn App() -> Html {
    let (state, dispatch) = use_store::<Notes>();
    let persistence = use_persistence();
    if !use_persistence_ready() {
        return html! { <p>{ "Loading…" }</p> };
    }
    let oninput = dispatch.reduce_mut_callback_with(|s, e: InputEvent| {
        s.draft = e.target_unchecked_into::<web_sys::HtmlInputElement>().value();
    });
    let add = dispatch.reduce_mut_callback(|s| {
        let id = format!("{:06}", s.notes.len() + 1);
        s.notes.insert(id, Note { text: std::mem::take(&mut s.draft) });
    });
    html! {
        <main>
            <h1>{ format!("Notes ({})", state.notes.len()) }</h1>
            <input id="draft" value={state.draft.clone()} {oninput} />
            <button id="add" onclick={add}>{ "Add" }</button>
            <ul>{ for state.notes.iter().map(|(id, note)| html! { <li key={id}>{ &note.text }</li> }) }</ul>
            <p>{ format!("{} change(s) waiting to be saved", persistence.status.queue_depth) }</p>
            <PersistenceDashboard title="Notes storage" />
        </main>
    }
}

fn main() {
    // A browser app: built for wasm32 by trunk (natively there is nothing to run).
    #[cfg(target_arch = "wasm32")]
    {
        let cx = yewdux::Context::global();
        yewdux_persist::start(&cx, PersistOptions::new("notes-example")).expect("started once");
        yewdux_persist::preload::<Notes>(&cx);
        yew::Renderer::<App>::new().render();
    }
}
