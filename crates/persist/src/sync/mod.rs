//! One sync with the remote, from start to end: push the outbox, then pull from the checkpoint.
//! Generic over the [`LocalStore`](crate::local::LocalStore) and the
//! [`Remote`](crate::remote::Remote), with no timers and no browser API, so it runs natively in
//! tests against [`MemoryStore`](crate::local::MemoryStore) and
//! [`MemoryRemote`](crate::remote::MemoryRemote). When to sync is the engine's business; what an
//! answer means for an item is `local/plan.rs`'s.

mod run;
// Native only: the browser test build compiles unit tests too, and the simulation is a native
// workload.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod sim;

pub use run::SyncProgress;
pub(crate) use run::{run, RunOptions, SyncFailure};
