//! Benchmark 2: the whole runtime. 2,000 distinct item changes dispatched to a persisted yewdux
//! store, then `Persistence::flush`: changes/s from the first dispatch to the flush, the
//! transactions it took, and the time spent in the dispatches alone.

use yewdux::{Context, Dispatch};
use yewdux_persist::{PersistOptions, Persistence};

use super::{log, now_ms, unique, Files};
use crate::{file_id, file_record, Bench};

/// Item changes dispatched.
pub const CHANGES: usize = 2_000;

/// Runs the benchmark with the default options (strict durability, batches of 10, 300 ms
/// debounce). `unbatched` is the strict one-op-per-transaction IndexedDB case of benchmark 1,
/// what an unbatched persister would reach.
pub async fn run(unbatched: Option<&Bench>) -> Bench {
    log("running runtime/dispatch_then_flush ...");
    let cx = Context::new();
    let persistence: Persistence =
        yewdux_persist::start(&cx, PersistOptions::new(unique("runtime"))).expect("configure");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    let before = persistence.storage_stats();
    let records: Vec<_> = (0..CHANGES).map(|i| (file_id(i), file_record(i))).collect();

    let started = now_ms();
    for (id, record) in records {
        dispatch.reduce_mut(move |s| {
            s.files.insert(id, record);
        });
    }
    let dispatched = now_ms();
    persistence.flush().await.expect("the flush completes");
    let flushed = now_ms();

    let after = persistence.storage_stats();
    let status = persistence.status();
    assert_eq!(status.last_error, None, "no write failed");
    assert_eq!(after.items_written - before.items_written, CHANGES as u64);
    yewdux_persist::shutdown(&cx);

    let total = flushed - started;
    let dispatch_ms = dispatched - started;
    let config = persistence.collection_config(crate::COLLECTION);
    let mut bench =
        Bench::new("runtime/dispatch_then_flush", CHANGES as f64 / total * 1e3, "changes/s")
            .param("changes", CHANGES as u64)
            .param("batch_size", config.batch_size as u64)
            .param("debounce_ms", config.debounce.as_millis() as u64)
            .param("durability", "strict")
            .number("total_ms", total)
            .number("transactions", (after.write_transactions - before.write_transactions) as f64)
            .number("dispatch_ms", dispatch_ms)
            .number("dispatch_us_each", dispatch_ms * 1e3 / CHANGES as f64)
            .number("flush_ms", flushed - dispatched)
            .number("flush_changes_per_s", CHANGES as f64 / (flushed - dispatched) * 1e3);
    if let Some(unbatched) = unbatched {
        bench = bench.against(unbatched);
    }
    bench
}
