//! Local-first persistence and sync for yewdux stores.
#![deny(missing_docs)]

mod collection;
mod config;
pub mod engine;
mod error;
mod listener;
pub mod local;
mod metrics;
mod observe;
mod parts;
mod runtime;
mod time;

pub use config::{
    AutoSyncConfig, AutoSyncConfigPatch, ConfigError, PersistConfig, RetryPolicy, SliceConfig,
    SliceConfigPatch,
};
pub use metrics::{MetricsSnapshot, OperationKind, OperationRecord, HISTORY_LEN};
pub use observe::{Subscribers, Subscription};
pub use time::Time;

pub use collection::Collection;
pub use error::Error;
pub use listener::{configure, install, persistence, shutdown, try_persistence};
pub use parts::{ItemError, Parts, Persist, SINGLETON_ID};
pub use runtime::{PersistOptions, PersistStatus, Persistence, DEFAULT_DATABASE};
