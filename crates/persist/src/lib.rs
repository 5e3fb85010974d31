//! Local-first persistence for [yewdux](https://docs.rs/yewdux) stores.
//!
//! Your store keeps its state in memory as usual; every change is diffed, debounced per item,
//! batched and written to IndexedDB in the background, and loaded back at start. Tabs of the
//! same app see each other's changes. A sans-IO engine ([`persist_engine`]) decides what to write
//! and when; the browser runtime carries it out.
//!
//! # Add it to a store
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use yew::prelude::*;
//! use yewdux::prelude::*;
//! use yewdux_persist::prelude::*;
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
//!     if !use_persistence_ready() {
//!         return html! { <p>{ "Loading…" }</p> };
//!     }
//!     let add = dispatch.reduce_mut_callback(|s| {
//!         let id = format!("n{}", s.notes.len());
//!         s.notes.insert(id, Note { title: "New".into(), body: String::new() });
//!     });
//!     html! { <button onclick={add}>{ format!("{} notes", notes.notes.len()) }</button> }
//! }
//! ```
//! To choose the database name or per-collection settings, call [`start`] with
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
//! # The API
//! The root holds what an app needs; everything else is one module away:
//!
//! | module | what |
//! |---|---|
//! | [`prelude`] | the handful of names most apps import |
//! | [`config`] | [`CollectionConfig`], [`CollectionConfigPatch`], retry policy, durability |
//! | [`status`] | [`PersistStatus`], item errors, storage kind, subscriptions |
//! | [`metrics`] | [`MetricsSnapshot`], the operation history, engine time |
//! | [`error`] | [`Error`] and the flush failure it carries |
//! | [`ui`] | [`use_persistence`], [`use_persistence_ready`], [`PersistenceDashboard`] |
//! | [`conflict`] | conflict strategies, open conflicts, resolutions, the app's own resolver |
//! | [`local`] | the [`LocalStore`](local::LocalStore) trait to store elsewhere; IndexedDB and memory stores |
//! | [`merge`] | three-way merge of JSON values (conflict resolution), line diffs |
//! | [`remote`] | the [`Remote`](remote::Remote) trait and the servers to sync with: [`HttpRemote`](remote::HttpRemote) (our protocol, live events), [`CodeForgeRemote`](remote::CodeForgeRemote), [`MemoryRemote`](remote::MemoryRemote) for tests |
//! | `codeforge` (browser only) | CodeForge's global functions (`flush_persistence()`, ...) for ported code |
//!
//! Inside, the crate is layered: `binding/` (the yewdux side: parts, collection, listener,
//! loading) → `runtime/` (the browser driver of the engine, sync runs, health, leader tab) →
//! `sync/` (one sync run, no I/O of its own) → `remote/` and `local/` (the server, and IndexedDB
//! or memory), with `ui/` on top.
//!
//! # Sync
//! Give [`PersistOptions::remote`] a server and every change also reaches it: pushed after it is
//! durable locally, acknowledged before it leaves the outbox, pulled by the other devices (live,
//! through the server's event stream), with conflicts found by revision. Offline, everything
//! stays queued; the status ([`PersistStatus::sync`]) and the dashboard say where changes are. See `ARCHITECTURE.md` in the crate for the path of one change.
//!
//! # Features
//! | feature | default | what |
//! |---|---|---|
//! | `dashboard` | yes | the [`PersistenceDashboard`] component |
//! | `conflict-center` | yes | the [`ConflictCenter`] component: open conflicts, their differences, resolving them, per-collection strategies |
//! | `testing` | no | failure injection in [`MemoryStore`](local::MemoryStore) and raw enqueues, for your tests |
#![deny(missing_docs)]

mod binding;
#[cfg(target_arch = "wasm32")]
pub mod codeforge;
pub mod error;
pub mod local;
pub mod merge;
pub mod remote;
mod runtime;
mod sync;
pub mod ui;

pub use binding::{install, persistence, preload, shutdown, start, try_persistence};
pub use binding::{Collection, Parts, Persist};
pub use error::Error;
pub use persist_engine::{CollectionConfig, CollectionConfigPatch, MetricsSnapshot};
pub use runtime::{PersistOptions, PersistStatus, Persistence, WeakPersistence};
#[cfg(feature = "dashboard")]
pub use ui::PersistenceDashboard;
pub use ui::{use_persistence, use_persistence_ready};
#[cfg(feature = "conflict-center")]
pub use ui::{ConflictCenter, ConflictCenterProps, CONFLICT_CENTER_CSS};

/// The names most apps import: `use yewdux_persist::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "conflict-center")]
    pub use crate::ui::ConflictCenter;
    #[cfg(feature = "dashboard")]
    pub use crate::ui::PersistenceDashboard;
    pub use crate::ui::{use_persistence, use_persistence_ready};
    pub use crate::{install, preload, Collection, Parts, Persist, PersistOptions, Persistence};
}

/// Settings: per collection, retries, durability, the database.
pub mod config {
    pub use crate::local::{Durability, Migration, MigrationHook, Schema};
    pub use crate::runtime::{PersistOptions, DEFAULT_DATABASE, DEFAULT_PUSH_BATCH};
    pub use persist_engine::config::RetryPolicy;
    pub use persist_engine::{
        AutoSyncConfig, CollectionConfig, CollectionConfigPatch, ConfigError, ConflictStrategy,
        MergeFallback,
    };
}

/// Conflicts: how each collection decides them ([`ConflictStrategy`](conflict::ConflictStrategy),
/// set per collection in [`CollectionConfig::conflict`]), the ones left to the user
/// ([`Conflict`](conflict::Conflict), listed by [`Persistence::conflicts`] and settled with a
/// [`Resolution`](conflict::Resolution) by [`Persistence::resolve_conflict`]), and an app's own
/// [`Resolver`](conflict::Resolver) ([`PersistOptions::resolver`]).
///
/// How merging works is in [`merge`].
pub mod conflict {
    pub use crate::local::{Conflict, ConflictCase, Resolution, ResolveOutcome, Resolver};
    pub use crate::merge::Side;
    pub use persist_engine::{ConflictStrategy, MergeFallback};
}

/// What the runtime reports: its status, the items it could not handle, and subscriptions.
pub mod status {
    pub use crate::binding::SINGLETON_ID;
    pub use crate::local::StorageKind;
    pub use crate::runtime::{
        Connection, DeadLetterView, ItemError, PersistStatus, Subscription, SyncStatus,
    };
    pub use crate::sync::SyncProgress;
}

/// What the runtime measured: totals, durations, the last operations, on the engine's clock
/// (turn an instant into wall time with [`Persistence::wall_time`]).
pub mod metrics {
    pub use persist_engine::metrics::HISTORY_LEN;
    pub use persist_engine::{MetricsSnapshot, OperationKind, OperationRecord, Time};
}
