//! Benchmark 6: hydration, the time from starting persistence to `ready` (every saved item in the
//! yewdux store) with 10,000 and 100,000 saved records, against yewdux's own storage
//! (`yewdux::storage::load` of the same store from localStorage, then `Dispatch::set`).
//!
//! The saved records are written beforehand straight through [`IndexedDbStore`] in large
//! transactions (seeding is not what is measured); the runtime then opens that database as an app
//! would on its next start.

use yewdux::storage::Area;
use yewdux::{Context, Dispatch};
use yewdux_persist::local::{
    BatchId, Change, IndexedDbStore, ItemKey, LocalStore, QueuedOp, WriteBatch,
};
use yewdux_persist::PersistOptions;

use super::{collection, log, now_ms, unique, Files, PlainFiles};
use crate::{file_id, file_json, Bench, COLLECTION};

/// Saved records per case.
pub const SIZES: [usize; 2] = [10_000, 100_000];
const SEED_BATCH: usize = 2_000;

/// Writes records `0..n` into database `name` as the runtime would have saved them.
async fn seed(name: &str, n: usize) {
    let store = IndexedDbStore::new(name, 1);
    store.prepare(&[COLLECTION.to_owned()]).await.expect("the database opens");
    for (b, start) in (0..n).step_by(SEED_BATCH).enumerate() {
        let ops = (start..(start + SEED_BATCH).min(n))
            .map(|i| QueuedOp {
                sync_to_remote: false,
                ..QueuedOp::new(
                    ItemKey::new(COLLECTION, file_id(i)),
                    Change::put(file_json(i)),
                    i as u64 + 1,
                )
            })
            .collect();
        let batch = WriteBatch { id: BatchId(b as u64 + 1), collection: COLLECTION.into(), ops };
        store.write_batch(&batch).await.expect("seeded");
    }
}

/// ms from `start` to `ready` over a database holding `n` records.
async fn persisted(n: usize) -> f64 {
    let name = unique("hydrate");
    seed(&name, n).await;
    let cx = Context::new();
    let started = now_ms();
    let persistence = yewdux_persist::start(&cx, PersistOptions::new(name)).expect("configure");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    let ms = now_ms() - started;
    assert_eq!(dispatch.get().files.len(), n, "every saved record is in the store");
    yewdux_persist::shutdown(&cx);
    ms
}

/// ms to load the same store from localStorage, or `None` when it does not fit there.
fn yewdux_storage(n: usize) -> Option<f64> {
    let storage = web_sys::window()?.local_storage().ok()??;
    let json = serde_json::to_string(&PlainFiles { files: collection(n) }).expect("serialises");
    let key = std::any::type_name::<PlainFiles>();
    if storage.set_item(key, &json).is_err() {
        log(&format!("hydration: {n} records ({} bytes) do not fit in localStorage", json.len()));
        return None;
    }
    drop(json);
    let cx = Context::new();
    let started = now_ms();
    let loaded =
        yewdux::storage::load::<PlainFiles>(Area::Local).expect("readable").expect("saved");
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(loaded);
    let ms = now_ms() - started;
    assert_eq!(dispatch.get().files.len(), n);
    let _ = storage.clear();
    Some(ms)
}

/// Runs both sizes.
pub async fn run() -> Vec<Bench> {
    let mut benches = Vec::new();
    for n in SIZES {
        log(&format!("running hydration/{n} ..."));
        let baseline = yewdux_storage(n).map(|ms| {
            Bench::new(format!("hydration/yewdux_storage_{n}"), ms, "ms to ready")
                .param("records", n as u64)
                .param("storage", "localStorage (one JSON string)")
        });
        let mut bench =
            Bench::new(format!("hydration/persisted_{n}"), persisted(n).await, "ms to ready")
                .param("records", n as u64)
                .param("storage", "IndexedDB (one record per item)");
        if let Some(baseline) = &baseline {
            bench = bench.against(baseline);
        } else {
            bench = bench.param("yewdux_storage", "does not fit in localStorage");
        }
        benches.push(bench);
        benches.extend(baseline);
    }
    benches
}
