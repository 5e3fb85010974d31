//! The yewdux side: how a store says what is persisted ([`Persist`], [`Parts`], [`Collection`]),
//! installing it from `Store::new` ([`install`]), the runtime of a yewdux context ([`start`],
//! [`persistence`], [`shutdown`]), and the listener, loader and tab appliers that connect a store
//! to the runtime.
//!
//! One change, from dispatch to the runtime: yewdux calls the store's listener
//! (`listener.rs`), which diffs the previous and the new state part by part (`parts.rs`, with
//! [`Collection`]'s structural sharing so only changed items are looked at) and hands the changed
//! items to the runtime. Loading saved data at start is `hydrate.rs`; both share the store's
//! bookkeeping in `shared.rs`.
//!
//! Imports flow one way: `collection` ← `parts` ← `shared` ← {`listener`, `hydrate`} ←
//! `install`; `context` (the runtime slot of a yewdux context) is used by `listener` and
//! `install`. Nothing here is imported by the runtime.

mod collection;
mod context;
mod hydrate;
mod install;
mod listener;
mod parts;
mod shared;

pub use collection::Collection;
pub use context::{persistence, shutdown, start, try_persistence};
pub use install::{install, preload};
pub use parts::{Parts, Persist, SINGLETON_ID};
