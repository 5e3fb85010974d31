//! Client-side benchmarks of `yewdux-persist`. They measure and print; they never assert timings.
//!
//! - `engine-bench` (native binary): the sans-IO engine on a virtual clock.
//! - `tests/browser_bench.rs` (headless Chromium, `wasm-pack test --release`): IndexedDB write
//!   throughput by batch size and durability, the whole runtime from dispatch to flush, the cost
//!   of one dispatch in a big store, sync with a real server, and the comparisons with the
//!   alternatives: a typing burst, the time a dispatch adds by store size, hydration (the
//!   `browser` module, wasm32 only).
//!
//! Each case prints one `BENCH {json}` line ([`Bench::line`]) and every run ends with a table
//! ([`table`]). Run them all with `scripts/client-bench.sh`.
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
pub mod browser;
mod record;
mod report;

pub use record::{file_id, file_json, file_record, FileRecord, COLLECTION};
pub use report::{table, Bench};
