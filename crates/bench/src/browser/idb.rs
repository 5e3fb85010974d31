//! Benchmark 1: IndexedDB write throughput of [`IndexedDbStore::write_batch`] by batch size and
//! durability, a fresh database per case.

use yewdux_persist::config::Durability;
use yewdux_persist::local::{
    BatchId, Change, IndexedDbStore, ItemKey, LocalStore, QueuedOp, WriteBatch,
};

use super::{log, now_ms, unique};
use crate::{file_id, file_json, Bench, COLLECTION};

/// Item puts per case.
pub const OPS: usize = 2_000;

/// `ops` puts of records `0..ops`, `per_batch` to a batch; with `outbox`, each op also writes
/// its outbox entry, as the runtime does for a collection that syncs (the default).
fn batches(ops: usize, per_batch: usize, outbox: bool) -> Vec<WriteBatch> {
    let items: Vec<QueuedOp> = (0..ops)
        .map(|i| QueuedOp {
            sync_to_remote: outbox,
            ..QueuedOp::new(
                ItemKey::new(COLLECTION, file_id(i)),
                Change::put(file_json(i)),
                i as u64 + 1,
            )
        })
        .collect();
    items
        .chunks(per_batch)
        .enumerate()
        .map(|(n, ops)| WriteBatch {
            id: BatchId(n as u64 + 1),
            collection: COLLECTION.into(),
            ops: ops.to_vec(),
        })
        .collect()
}

/// Writes `ops` records in batches of `per_batch` to a new database; returns the elapsed ms.
async fn write(ops: usize, per_batch: usize, durability: Durability, outbox: bool) -> f64 {
    let store = IndexedDbStore::new(unique("idb"), 1).with_durability(durability);
    store.prepare(&[COLLECTION.to_owned()]).await.expect("the database opens");
    let batches = batches(ops, per_batch, outbox);
    let started = now_ms();
    for batch in &batches {
        store.write_batch(batch).await.expect("the batch is written");
    }
    let elapsed = now_ms() - started;
    let stats = store.stats();
    assert_eq!(stats.write_transactions, batches.len() as u64, "one transaction per batch");
    assert_eq!(stats.items_written, ops as u64);
    elapsed
}

/// Runs the six cases (batches of 1, 10, 100; strict and relaxed), each against the strict
/// one-op-per-transaction baseline, then two cases without outbox entries (local-only
/// collections) that show what the outbox costs.
pub async fn run() -> Vec<Bench> {
    // Warm-up (JIT, IndexedDB backend start-up), not reported.
    write(200, 10, Durability::Strict, true).await;
    let mut cases: Vec<(usize, Durability, bool)> = Vec::new();
    for durability in [Durability::Strict, Durability::Relaxed] {
        cases.extend([1, 10, 100].map(|per_batch| (per_batch, durability, true)));
    }
    cases.extend([(1, Durability::Strict, false), (100, Durability::Strict, false)]);
    let mut benches: Vec<Bench> = Vec::new();
    for (per_batch, durability, outbox) in cases {
        let label = format!("{durability:?}").to_lowercase();
        let suffix = if outbox { "" } else { "_no_outbox" };
        let name = format!("idb_write/batch{per_batch}_{label}{suffix}");
        log(&format!("running {name} ..."));
        let ms = write(OPS, per_batch, durability, outbox).await;
        let transactions = OPS.div_ceil(per_batch);
        let mut bench = Bench::new(name, OPS as f64 / ms * 1e3, "ops/s")
            .param("ops", OPS as u64)
            .param("batch_size", per_batch as u64)
            .param("durability", label)
            .param("record_bytes", file_json(0).len() as u64)
            .param("outbox_entry_per_op", outbox)
            .number("total_ms", ms)
            .number("transactions", transactions as f64)
            .number("ms_per_transaction", ms / transactions as f64);
        if let Some(baseline) = benches.first() {
            bench = bench.against(baseline);
        }
        benches.push(bench);
    }
    benches
}
