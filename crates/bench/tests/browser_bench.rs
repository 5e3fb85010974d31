//! Client benchmarks in headless Chromium (see `persist_bench::browser`). They print `BENCH`
//! lines and a table; they never assert timings. Run with `scripts/client-bench.sh`.
#![cfg(target_arch = "wasm32")]

use persist_bench::browser::{dispatch, hydration, idb, log, overhead, runtime, sync, typing};
use persist_bench::{table, Bench};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn print(benches: &[Bench]) {
    for bench in benches {
        log(&bench.line());
    }
}

/// One test so the benchmarks run in order, one at a time, and share one table.
#[wasm_bindgen_test]
async fn client_benchmarks() {
    let started = persist_bench::browser::now_ms();
    let mut all: Vec<Bench> = Vec::new();

    let writes = idb::run().await;
    print(&writes);
    let unbatched = writes.first().cloned();
    all.extend(writes);

    let whole = runtime::run(unbatched.as_ref()).await;
    print(std::slice::from_ref(&whole));
    all.push(whole);

    let dispatches = dispatch::run().await;
    print(&dispatches);
    all.extend(dispatches);

    let synced = sync::run().await;
    print(&synced);
    all.extend(synced);

    let typed = typing::run().await;
    print(&typed);
    all.extend(typed);

    log(&format!("performance.now() steps by {:.1} us here", overhead::clock_step_us()));
    let added = overhead::run().await;
    print(&added);
    all.extend(added);

    let hydrated = hydration::run().await;
    print(&hydrated);
    all.extend(hydrated);

    let seconds = (persist_bench::browser::now_ms() - started) / 1e3;
    log(&table(&format!("browser benchmarks (headless Chromium, {seconds:.1} s)"), &all));
}
