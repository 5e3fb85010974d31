//! The sans-IO core of yewdux-persist: a state machine that decides what to write locally, when,
//! and when to sync, with no I/O, no timers, no clock and no async.
//!
//! # Design
//! The runtime (the browser driver in `yewdux-persist`, or a test) feeds the [`Engine`] events
//! stamped with the current [`Time`] from its own monotonic clock: an item changed, time passed,
//! a local write finished, a sync finished, the server became (un)reachable. The engine answers
//! with [`Action`]s: write this batch in one local transaction, start a sync, a flush completed,
//! the metrics changed. After every event the runtime drains [`Engine::poll_action`] and arms one
//! timer for [`Engine::poll_timeout`], on which it calls [`Engine::tick`].
//!
//! This crate depends on serde, thiserror and `persist-protocol` only. It cannot reach a browser,
//! a clock or a thread: the compiler, not a convention, keeps it pure (as `quinn-proto` beside
//! `quinn`). So every rule below is tested natively on a virtual clock in milliseconds, and a
//! whole run replays exactly from one seed (the only randomness is the retry jitter, seeded by
//! [`Engine::new`]).
//!
//! # Guarantees
//! - **Per-key debounce**: a key is written at `min(last change + debounce, first change +
//!   max_wait)` of its collection; other keys' deadlines never hurry it.
//! - **Coalescing**: one waiting op per key; the latest change wins and keeps the key's place.
//! - **Ordering**: one write batch in flight at a time, of one collection, at most `batch_size`
//!   ops, oldest first. A write never overwrites a newer change of the same key.
//! - **Nothing lost**: failed writes are retried with backoff (or parked after a permanent
//!   error, until the next flush or change); only a change superseded by a newer change of the
//!   same key is ever dropped.
//! - **Flush**: completes only when everything enqueued before it is durable, or reports the
//!   keys that failed.
//! - **Sync identity**: every written op carries an [`OpId`](persist_protocol::OpId) (unique per
//!   change: `<node>-<serial>`) and the [`Hlc`](persist_protocol::Hlc) stamp of its change, so the
//!   local store can record it in the outbox and a retried push is recognised by the server.
//! - **Auto-sync**: one sync at a time, requests meanwhile collapse into one follow-up. The
//!   first interval sync is due one interval after [`Time::ZERO`] (the runtime clock's origin);
//!   the server counts as reachable until [`Engine::set_remote_available`] says otherwise.
//!
//! ```
//! use std::time::Duration;
//! use persist_engine::{Action, Change, Engine, ItemKey, PersistConfig, Time};
//!
//! let mut engine = Engine::new(PersistConfig::default(), 7).unwrap();
//! let t0 = Time::from_millis(1_000);
//! engine.enqueue(t0, ItemKey::new("files", "a.rs"), Change::put(r#"{"name":"a.rs"}"#));
//! // Nothing to write yet: the 300 ms debounce runs.
//! assert_eq!(engine.poll_timeout(), Some(t0 + Duration::from_millis(300)));
//!
//! let t1 = t0 + Duration::from_millis(300);
//! engine.tick(t1);
//! let Some(Action::Write(batch)) = engine.poll_action() else { panic!("a write is due") };
//! assert_eq!(batch.ops[0].key.to_string(), "files:a.rs");
//! // ... the runtime writes the batch to IndexedDB, then:
//! engine.write_finished(t1 + Duration::from_millis(4), batch.id, Ok(()));
//! assert_eq!(engine.metrics().successful_ops, 1);
//! ```
//!
//! # Map
//! | module | what |
//! |---|---|
//! | [`Engine`] (`engine/`) | the state machine: events in, actions out; its write and sync halves |
//! | [`Action`] and friends (`action.rs`) | what the runtime must do and what it answers |
//! | [`ItemKey`], [`Change`] (`item.rs`) | what is persisted |
//! | `queue.rs` | the keyed coalescing write queue with per-key deadlines |
//! | `flush.rs` | which keys each flush still waits for |
//! | `sync.rs` | the auto-sync scheduler ([`AutoSyncStatus`]) |
//! | [`config`] | per-collection, auto-sync and retry settings, validated |
//! | [`metrics`] | totals, durations, history, gauges |
//! | [`Time`] (`time.rs`) | virtual monotonic time |
#![deny(missing_docs)]

mod action;
pub mod config;
mod engine;
mod flush;
mod item;
pub mod metrics;
mod queue;
mod rng;
mod sync;
mod time;

pub use action::{
    Action, BatchId, EnqueueOutcome, FailedKey, FlushError, FlushId, QueuedOp, SyncError, SyncId,
    SyncReason, SyncSummary, WriteBatch, WriteError, WriteErrorKind,
};
pub use config::{
    AutoSyncConfig, AutoSyncConfigPatch, CollectionConfig, CollectionConfigPatch, ConfigError,
    ConflictStrategy, MergeFallback, PersistConfig, RetryPolicy,
};
pub use engine::Engine;
pub use item::{Change, ItemKey, Payload};
pub use metrics::{MetricsSnapshot, OperationKind, OperationRecord};
pub use sync::AutoSyncStatus;
pub use time::Time;
