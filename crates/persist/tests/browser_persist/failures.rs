//! Storage that fails: errors are reported and nothing queued is dropped.

use std::rc::Rc;

use wasm_bindgen_test::*;
use yewdux::Context;
use yewdux_persist::local::{MemoryStore, StorageKind, StoreError};
use yewdux_persist::{Error, PersistOptions};

use crate::support::*;

#[wasm_bindgen_test]
async fn a_failing_store_keeps_data_queued_and_reports_the_error() {
    let store = Rc::new(MemoryStore::new());
    let Session { cx: _cx, persistence, dispatch } =
        loaded::<Workspace>(fast_retry_options(Rc::clone(&store))).await;
    store.fail_next_writes(3, StoreError::QuotaExceeded("the quota has been exceeded".into()));
    dispatch.reduce_mut(|w| {
        w.files.insert("big.bin", file("big.bin", "lots"));
    });
    let error = persistence.flush().await.expect_err("the first write fails");
    assert!(matches!(error, Error::Flush(_)), "{error}");
    let status = persistence.status();
    assert!(status.last_error.as_deref().unwrap_or("").contains("quota"), "{status:?}");
    assert_eq!(status.queue_depth + status.in_flight, 1, "the change stays queued: {status:?}");
    assert!(store.snapshot("files").is_empty());
    assert!(persistence.metrics().failed_ops >= 1);
    assert!(persistence.metrics().quota_errors >= 1, "quota errors are counted on their own");

    // Backoff retries succeed once the store works again; nothing was dropped.
    assert!(wait_until(3_000, || store.snapshot("files").contains_key("big.bin")).await);
    assert!(wait_until(500, || persistence.status().last_error.is_none()).await);
    assert_eq!(persistence.status().queue_depth, 0);
}

#[wasm_bindgen_test]
async fn without_indexeddb_the_app_keeps_working_in_memory_and_says_so() {
    let cx = Context::new();
    let options = PersistOptions::new(unique("unavailable"))
        .local_store(faulty(MemoryStore::new(), Faults { unavailable: true, ..Faults::default() }));
    let persistence = start(&cx, options);
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let status = persistence.status();
    assert_eq!(status.storage, StorageKind::Memory);
    assert!(status.storage_note.unwrap().contains("IndexedDB is disabled"));
    dispatch.reduce_mut(|w| {
        w.files.insert("a", file("a", "b"));
    });
    persistence.flush().await.expect("memory writes work");
    assert_eq!(persistence.storage_stats().items_written, 1);
}
