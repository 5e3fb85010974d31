//! Rules 2 and 3: the keyed coalescing queue and batching.

use crate::support::*;
use persist_engine::CollectionConfig;
use persist_engine::{Change, EnqueueOutcome};

#[test]
fn the_latest_change_wins_and_keeps_the_first_position() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    assert_eq!(d.put(&a, "a1"), EnqueueOutcome::Queued);
    assert_eq!(d.put(&b, "b1"), EnqueueOutcome::Queued);
    assert_eq!(d.put(&a, "a2"), EnqueueOutcome::Coalesced);
    assert_eq!(d.engine.queue_depth(), 2);
    assert_eq!(d.engine.metrics().coalesced, 1);
    d.flush();
    let batch = &d.writes[0].batch;
    assert_eq!(d.writes[0].ids(), ids(&["a", "b"]));
    assert_eq!(batch.ops[0].change, Change::put("a2"));
    // The op carries the serial of its latest change: a1 = 1, b1 = 2, a2 = 3.
    let serials: Vec<u64> = batch.ops.iter().map(|op| op.serial).collect();
    assert_eq!(serials, vec![3, 2]);
}

#[test]
fn put_then_delete_writes_the_delete_and_delete_then_put_writes_the_put() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.put(&a, "old");
    d.flush();
    assert_eq!(d.value(&a), Some("old"));
    // The item exists from before: the delete must reach the store even though the put that
    // preceded it never did.
    d.put(&a, "new");
    assert_eq!(d.delete(&a), EnqueueOutcome::Coalesced);
    d.delete(&b);
    assert_eq!(d.put(&b, "back"), EnqueueOutcome::Coalesced);
    d.advance(dur(300));
    let last = &d.writes.last().unwrap().batch;
    let changes: Vec<_> = last.ops.iter().map(|op| op.change.clone()).collect();
    assert_eq!(changes, vec![Change::Delete, Change::put("back")]);
    assert_eq!(d.value(&a), None);
    assert!(d.store.contains_key(&a), "the delete was written");
    assert_eq!(d.value(&b), Some("back"));
    assert_eq!(d.engine.metrics().coalesced, 2);
}

#[test]
fn a_change_of_a_key_in_flight_is_queued_and_written_after_it() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    let a = key("files", "a");
    d.put(&a, "1");
    d.advance_to(ms(300));
    assert!(d.write_in_flight().is_some());
    assert_eq!(d.put(&a, "2"), EnqueueOutcome::Queued);
    assert_eq!((d.engine.queue_depth(), d.engine.in_flight_ops()), (1, 1));
    d.finish_write();
    d.advance_to(ms(600));
    assert!(d.write_in_flight().is_some());
    d.finish_write();
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["a"])), (ms(600), ids(&["a"]))]);
    assert_eq!(d.value(&a), Some("2"));
}

#[test]
fn batches_hold_at_most_batch_size_ops_and_leave_one_at_a_time() {
    let config =
        quiet_config().with_collection("files", CollectionConfig::default().with_batch_size(3));
    let mut d = Driver::new(config).manual_writes();
    for i in 0..7 {
        d.put(&key("files", &format!("k{i}")), "v");
    }
    d.advance_to(ms(300));
    assert_eq!(d.writes.len(), 1, "one batch in flight at a time");
    assert_eq!((d.engine.in_flight_ops(), d.engine.queue_depth()), (3, 4));
    d.advance_to(ms(400));
    d.finish_write();
    // The next due batch leaves as soon as the previous one finished.
    d.finish_write();
    d.finish_write();
    assert!(d.write_in_flight().is_none());
    assert_eq!(
        d.write_times(),
        vec![
            (ms(300), ids(&["k0", "k1", "k2"])),
            (ms(400), ids(&["k3", "k4", "k5"])),
            (ms(400), ids(&["k6"]))
        ]
    );
}

#[test]
fn batches_hold_one_collection_and_leave_in_order_of_their_oldest_op() {
    let mut d = Driver::new(quiet_config());
    d.put(&key("files", "f1"), "v");
    d.put(&key("models", "m1"), "v");
    d.put(&key("files", "f2"), "v");
    d.put(&key("models", "m2"), "v");
    d.put(&key("files", "f3"), "v");
    d.advance_to(ms(300));
    let batches: Vec<_> =
        d.writes.iter().map(|w| (w.batch.collection.to_string(), w.ids())).collect();
    assert_eq!(
        batches,
        vec![("files".into(), ids(&["f1", "f2", "f3"])), ("models".into(), ids(&["m1", "m2"]))]
    );
}

#[test]
fn only_due_ops_join_a_batch() {
    let mut d = Driver::new(quiet_config());
    d.put(&key("files", "a"), "v");
    d.advance_to(ms(200));
    d.put(&key("files", "b"), "v");
    d.advance_to(ms(300));
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["a"]))]);
    assert_eq!(d.engine.queue_depth(), 1);
}

#[test]
fn a_coalesced_key_keeps_its_turn_among_due_ops() {
    let config =
        quiet_config().with_collection("files", CollectionConfig::default().with_batch_size(2));
    let mut d = Driver::new(config);
    for id in ["a", "b", "c"] {
        d.put(&key("files", id), "1");
    }
    d.put(&key("files", "c"), "2");
    d.put(&key("files", "a"), "2");
    d.flush();
    assert_eq!(d.write_times(), vec![(ms(0), ids(&["a", "b"])), (ms(0), ids(&["c"]))]);
}

#[test]
fn snapshot_waiting_copies_every_waiting_op_per_collection_and_changes_nothing() {
    let mut d = Driver::new(quiet_config());
    let (a, b, m) = (key("files", "a"), key("files", "b"), key("models", "m"));
    d.put(&a, "a1");
    d.put(&m, "m1");
    d.delete(&b);
    d.put(&a, "a2");
    let snapshot = d.engine.snapshot_waiting();
    let shape: Vec<(String, Vec<String>)> = snapshot
        .iter()
        .map(|batch| {
            let ids = batch.ops.iter().map(|op| op.key.id.to_string()).collect();
            (batch.collection.to_string(), ids)
        })
        .collect();
    assert_eq!(shape, [("files".to_owned(), ids(&["a", "b"])), ("models".to_owned(), ids(&["m"]))]);
    assert_eq!(snapshot[0].ops[0].change, Change::put("a2"));
    assert_eq!(snapshot[0].ops[1].change, Change::Delete);
    // The ops are still queued and written normally.
    assert_eq!(d.engine.queue_depth(), 3);
    d.flush();
    assert_eq!(d.value(&a), Some("a2"));
    assert_eq!(d.value(&m), Some("m1"));
}
