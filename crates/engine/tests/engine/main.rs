//! The engine's rules, natively, on a virtual clock: one test binary, one module per rule.
//!
//! `support` is the driver every module uses: a virtual clock, a model local store, injectable
//! write failures and logs of everything the engine did.

mod support;

mod autosync;
mod config;
mod debounce;
mod failures;
mod flush;
mod identity;
mod metrics;
mod props;
mod queue;
