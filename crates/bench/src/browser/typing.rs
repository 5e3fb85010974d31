//! Benchmark 5: a typing burst. 10,000 dispatches over the 1,000 items of a collection store,
//! each edit appending one character to one item's text, ten edits in a row per item (a user
//! typing in one file, then the next), until the result is durable. Four ways to keep it:
//!
//! - (a) `persisted`: this crate with its defaults (per-item debounce, coalescing, batches);
//! - (b) `yewdux_storage`: yewdux's own `storage::StorageListener` (the whole store to
//!   localStorage on every change: what `yewdux::storage` offers);
//! - (c) `idb_per_change`: one IndexedDB transaction per change, as CodeForge's middleware did;
//! - (d) `idb_floor`: only the final 1,000 records, in one raw `indexed_db_futures` transaction:
//!   the least any IndexedDB persister must do.
//!
//! Each reports time to durable, transactions, bytes serialised and writes per key.

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{TransactionDurability, TransactionMode, TransactionOptions};
use yewdux::storage::{Area, StorageListener};
use yewdux::{Context, Dispatch};
use yewdux_persist::config::Durability;
use yewdux_persist::local::{
    BatchId, Change, IndexedDbStore, ItemKey, LocalStore, QueuedOp, WriteBatch,
};
use yewdux_persist::PersistOptions;

use super::{collection, log, now_ms, unique, Files, PlainFiles};
use crate::{file_id, file_record, Bench, FileRecord, COLLECTION};

/// Items in the store.
pub const ITEMS: usize = 1_000;
/// Dispatches in the burst.
pub const DISPATCHES: usize = 10_000;
/// Edits in a row to one item.
const RUN: usize = 10;

/// The item edit `k` changes: ten in a row per item, all items in turn.
fn item_of(edit: usize) -> usize {
    (edit / RUN) % ITEMS
}

fn type_one(record: &mut FileRecord) {
    record.content.push('x');
    record.revision += 1;
}

/// The records after the whole burst, computed without any store (for (c) and (d)).
fn final_records() -> Vec<(String, FileRecord)> {
    let mut records: Vec<(String, FileRecord)> =
        (0..ITEMS).map(|i| (file_id(i), file_record(i))).collect();
    for edit in 0..DISPATCHES {
        type_one(&mut records[item_of(edit)].1);
    }
    records
}

fn case(name: &str, ms: f64, transactions: f64, bytes: f64, writes_per_key: f64) -> Bench {
    Bench::new(format!("typing/{name}"), ms, "ms to durable")
        .param("items", ITEMS as u64)
        .param("dispatches", DISPATCHES as u64)
        .param("edits_in_a_row", RUN as u64)
        .number("transactions", transactions)
        .number("bytes_serialised", bytes)
        .number("writes_per_key", writes_per_key)
}

/// (a) This crate, default options.
async fn persisted() -> Bench {
    log("running typing/persisted ...");
    let cx = Context::new();
    let persistence =
        yewdux_persist::start(&cx, PersistOptions::new(unique("typing"))).expect("configure");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    dispatch.reduce_mut(|s| s.files = collection(ITEMS));
    persistence.flush().await.expect("the items are written");
    let (stats, metrics) = (persistence.storage_stats(), persistence.metrics());

    let started = now_ms();
    for edit in 0..DISPATCHES {
        let id = file_id(item_of(edit));
        dispatch.reduce_mut(|s| {
            s.files.update(&id, type_one);
        });
    }
    persistence.flush().await.expect("the burst is written");
    let ms = now_ms() - started;

    assert_eq!(persistence.status().last_error, None, "no write failed");
    let (after, metrics_after) = (persistence.storage_stats(), persistence.metrics());
    yewdux_persist::shutdown(&cx);
    let written = (after.items_written - stats.items_written) as f64;
    case(
        "persisted",
        ms,
        (after.write_transactions - stats.write_transactions) as f64,
        (metrics_after.bytes_written - metrics.bytes_written) as f64,
        written / ITEMS as f64,
    )
    .number("coalesced", (metrics_after.coalesced - metrics.coalesced) as f64)
}

/// (b) yewdux's storage listener: localStorage writes are synchronous, so the last dispatch's
/// return is "durable" as far as the page can tell.
async fn yewdux_storage() -> Bench {
    log("running typing/yewdux_storage ...");
    let cx = Context::new();
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(PlainFiles { files: collection(ITEMS) });
    cx.init_listener(|| StorageListener::<PlainFiles>::new(Area::Local));
    let store_bytes = serde_json::to_string(&*dispatch.get()).expect("serialises").len();

    // Timed in slices of 100 dispatches with the event loop given back in between (untimed): a
    // page that stays busy for a minute stops answering the test runner.
    let mut ms = 0.0;
    for slice in (0..DISPATCHES).collect::<Vec<_>>().chunks(100) {
        let started = now_ms();
        for &edit in slice {
            let id = file_id(item_of(edit));
            dispatch.reduce_mut(|s| {
                s.files.update(&id, type_one);
            });
        }
        ms += now_ms() - started;
        gloo_timers::future::TimeoutFuture::new(0).await;
    }

    let saved = yewdux::storage::load::<PlainFiles>(Area::Local).expect("readable").expect("saved");
    assert_eq!(saved.files, dispatch.get().files, "localStorage holds the final store");
    clear_local_storage();
    // Every change writes the whole store: every key, every time.
    case(
        "yewdux_storage",
        ms,
        DISPATCHES as f64,
        (store_bytes * DISPATCHES) as f64,
        DISPATCHES as f64,
    )
    .param("storage", "localStorage (whole store per change)")
}

fn clear_local_storage() {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.clear();
    }
}

/// (c) One IndexedDB transaction per change, each carrying the changed item (no outbox: all
/// CodeForge's middleware wrote).
async fn idb_per_change() -> Bench {
    log("running typing/idb_per_change ...");
    let store = IndexedDbStore::new(unique("typing-tx"), 1).with_durability(Durability::Strict);
    store.prepare(&[COLLECTION.to_owned()]).await.expect("the database opens");
    let mut records: Vec<(String, FileRecord)> =
        (0..ITEMS).map(|i| (file_id(i), file_record(i))).collect();
    let before = store.stats();

    let started = now_ms();
    let mut bytes = 0usize;
    for edit in 0..DISPATCHES {
        let (id, record) = &mut records[item_of(edit)];
        type_one(record);
        let json = serde_json::to_string(record).expect("serialises");
        bytes += json.len();
        let op = QueuedOp {
            sync_to_remote: false,
            ..QueuedOp::new(
                ItemKey::new(COLLECTION, id.clone()),
                Change::put(json),
                edit as u64 + 1,
            )
        };
        let batch = WriteBatch {
            id: BatchId(edit as u64 + 1),
            collection: COLLECTION.into(),
            ops: vec![op],
        };
        store.write_batch(&batch).await.expect("the change is written");
    }
    let ms = now_ms() - started;

    let after = store.stats();
    let transactions = (after.write_transactions - before.write_transactions) as f64;
    assert_eq!(transactions as usize, DISPATCHES);
    case("idb_per_change", ms, transactions, bytes as f64, (DISPATCHES / ITEMS) as f64)
}

/// (d) The floor: the final 1,000 records in one transaction of raw `indexed_db_futures` (the
/// records serialised once each and stored as objects, as this crate stores them).
async fn idb_floor() -> Bench {
    log("running typing/idb_floor ...");
    let records = final_records();
    let name = unique("typing-floor");
    let db = Database::open(&name)
        .with_version(1u8)
        .with_on_upgrade_needed(|_, db: Database| {
            db.create_object_store(COLLECTION).build()?;
            Ok(())
        })
        .await
        .expect("the database opens");

    let started = now_ms();
    let mut bytes = 0usize;
    let tx = db
        .transaction(COLLECTION)
        .with_mode(TransactionMode::Readwrite)
        .with_options(TransactionOptions::new().with_durability(TransactionDurability::Strict))
        .build()
        .expect("a transaction");
    let store = tx.object_store(COLLECTION).expect("the store");
    for (id, record) in &records {
        let json = serde_json::to_string(record).expect("serialises");
        bytes += json.len();
        let value = js_sys::JSON::parse(&json).expect("JSON");
        drop(store.put(value).with_key(id.as_str()).primitive().expect("a put"));
    }
    tx.commit().await.expect("the transaction commits");
    let ms = now_ms() - started;
    db.close();
    case("idb_floor", ms, 1.0, bytes as f64, 1.0)
}

/// Runs the four cases; ratios are "times slower than (a)" for (b) and (c) and "times (d)" for
/// (a), so the goals read straight off the table.
pub async fn run() -> Vec<Bench> {
    let floor = idb_floor().await;
    let persisted = persisted().await;
    let per_change = idb_per_change().await;
    let storage = yewdux_storage().await;
    let persisted = persisted.against(&floor);
    let per_change = per_change.against(&persisted);
    let storage = storage.against(&persisted);
    vec![persisted, storage, per_change, floor]
}
