//! Local-first persistence and sync for [yewdux](https://docs.rs/yewdux) stores.
//!
//! Your store keeps its state in memory as usual; every change is diffed, debounced per item,
//! batched and written to IndexedDB in the background, and loaded back at start. Tabs of the
//! same app see each other's changes. A sans-IO [`engine`] decides what to write and when; the
//! browser runtime carries it out.
//!
//! # Add it to a store
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use yew::prelude::*;
//! use yewdux::prelude::*;
//! use yewdux_persist::{Collection, Parts, Persist};
//!
//! #[derive(Clone, PartialEq, Serialize, Deserialize)]
//! struct Note { title: String, body: String }
//!
//! #[derive(Clone, PartialEq, Default)]
//! struct Notes {
//!     notes: Collection<Note>,   // one IndexedDB record per note
//!     theme: String,             // one record
//!     selected: Option<String>,  // not listed below: not persisted
//! }
//!
//! // 1. Say which parts are persisted, each in its own collection.
//! impl Persist for Notes {
//!     fn parts(parts: &mut Parts<Self>) {
//!         parts
//!             .collection("notes", |s| &s.notes, |s| &mut s.notes)
//!             .singleton("theme", |s| &s.theme, |s| &mut s.theme);
//!     }
//! }
//!
//! // 2. Install from `Store::new`: loads saved data, then persists every change.
//! impl Store for Notes {
//!     fn new(cx: &yewdux::Context) -> Self {
//!         yewdux_persist::install(cx, Self::default())
//!     }
//!     fn should_notify(&self, old: &Self) -> bool {
//!         self != old
//!     }
//! }
//!
//! // 3. Use the store as always.
//! #[function_component]
//! fn App() -> Html {
//!     let (notes, dispatch) = use_store::<Notes>();
//!     let status = yewdux_persist::use_persistence().status;
//!     if !status.ready {
//!         return html! { <p>{ "Loading…" }</p> };
//!     }
//!     let add = dispatch.reduce_mut_callback(|s| {
//!         let id = format!("n{}", s.notes.len());
//!         s.notes.insert(id, Note { title: "New".into(), body: String::new() });
//!     });
//!     html! { <button onclick={add}>{ format!("{} notes", notes.notes.len()) }</button> }
//! }
//! ```
//! To choose the database name or per-collection settings, call [`configure`] with
//! [`PersistOptions`] before the first store is used.
//!
//! # What is durable when
//! - A change is in memory at once, and in IndexedDB after its collection's debounce (300 ms by
//!   default; a key that keeps changing is still written after `max_wait`, 2 s by default).
//! - Hiding the page (`visibilitychange` to hidden) or leaving it (`pagehide`) writes everything
//!   queued at once, so a normal close, reload or tab switch loses nothing.
//! - Batches commit with strict durability by default, so a hard crash (browser killed, OS crash,
//!   power loss) can lose at most the changes of the last debounce window (≤ `max_wait`).
//!   [`Persistence::flush`] makes everything durable on demand.
//! - A failed write is retried with backoff and stays queued; nothing is dropped. Items that
//!   cannot be read back are reported in [`PersistStatus::item_errors`] and left in storage; a
//!   collection that cannot be loaded is not persisted that session
//!   ([`PersistStatus::collection_errors`]), so defaults never overwrite saved data.
//!
//! # Features
//! | feature | default | what |
//! |---|---|---|
//! | `dashboard` | yes | the [`PersistenceDashboard`] component |
#![deny(missing_docs)]

mod collection;
mod config;
#[cfg(feature = "dashboard")]
mod dashboard;
pub mod engine;
mod error;
#[cfg(target_arch = "wasm32")]
mod global;
mod hooks;
mod hydrate;
mod listener;
pub mod local;
mod metrics;
mod observe;
mod parts;
mod runtime;
mod time;

pub use config::{
    AutoSyncConfig, AutoSyncConfigPatch, ConfigError, PersistConfig, RetryPolicy, CollectionConfig,
    CollectionConfigPatch,
};
pub use metrics::{MetricsSnapshot, OperationKind, OperationRecord, HISTORY_LEN};
pub use observe::{Subscribers, Subscription};
pub use time::Time;

pub use collection::Collection;
#[cfg(feature = "dashboard")]
pub use dashboard::{DashboardProps, PersistenceDashboard, DASHBOARD_CSS};
pub use error::Error;
#[cfg(target_arch = "wasm32")]
pub use global::{
    configure_persistence, disable_persistence, enable_persistence, flush_persistence,
    get_sync_metrics, reset_sync_metrics,
};
pub use hooks::{use_persistence, use_persistence_ready, UsePersistence};
pub use listener::{configure, install, persistence, preload, shutdown, try_persistence};
pub use local::Durability;
pub use parts::{ItemError, Parts, Persist, SINGLETON_ID};
pub use runtime::{PersistOptions, PersistStatus, Persistence, WeakPersistence, DEFAULT_DATABASE};
