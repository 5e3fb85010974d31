//! The browser runtime: drives the sans-IO engine ([`persist_engine`]) with IndexedDB, timers,
//! page-lifecycle events and a `BroadcastChannel`.
//!
//! Everything is owned by one [`Persistence`] handle (`handle.rs`, the public API). Its shared
//! state and the loop that carries out the engine's actions live in `driver.rs`; what the yewdux
//! binding calls (queueing changes, loading bookkeeping) in `glue.rs`; the page-exit flush in
//! `lifecycle.rs`; other tabs' commits in `tabs.rs`; what users see in `status.rs`; the sync runs,
//! live events and the sync API in `sync.rs`, conflicts waiting for the user in `conflicts.rs`, the server's health in `health.rs`, which tab talks
//! to the server in `leader.rs`. Timers, event
//! listeners and the channel are dropped with the runtime; every callback holds only a weak
//! reference, so nothing keeps the runtime alive but its handles (and the tasks writing right
//! now).

pub(crate) mod clock;
mod conflicts;
mod driver;
mod glue;
mod handle;
mod health;
mod leader;
mod lifecycle;
mod options;
mod status;
mod subscribers;
mod sync;
mod sync_state;
mod tabs;

pub(crate) use driver::Applier;
pub use handle::{Persistence, WeakPersistence};
pub use options::{PersistOptions, DEFAULT_DATABASE, DEFAULT_PUSH_BATCH};
pub use status::{Connection, DeadLetterView, ItemError, PersistStatus, SyncStatus};
pub use subscribers::Subscription;
