//! The sync run against the in-memory store and remote: every future is ready at once, so the
//! tests poll each exactly once.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use persist_engine::{BatchId, Change, ConflictStrategy, ItemKey, Payload, QueuedOp, WriteBatch};
use serde_json::json;

use super::*;
use crate::local::MemoryStore;
use crate::remote::MemoryRemote;

fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("in-memory futures are ready at once"),
    }
}

/// A device: a store whose local writes get serials and stamps from one counter.
struct Device {
    store: MemoryStore,
    node: &'static str,
    serial: u64,
}

impl Device {
    fn new(node: &'static str) -> Self {
        Device { store: MemoryStore::new(), node, serial: 0 }
    }

    fn write(&mut self, collection: &str, changes: &[(&str, Option<serde_json::Value>)]) {
        let ops = changes
            .iter()
            .map(|(id, value)| {
                self.serial += 1;
                let change = match value {
                    Some(value) => Change::Put(Payload::from(value.to_string())),
                    None => Change::Delete,
                };
                let mut op =
                    QueuedOp::new(ItemKey::new(Arc::from(collection), *id), change, self.serial);
                op.op_id = persist_protocol::OpId::new(format!("{}-{}", self.node, self.serial));
                op.hlc = persist_protocol::Hlc {
                    wall_ms: self.serial,
                    counter: 0,
                    node: self.node.into(),
                };
                op
            })
            .collect();
        let batch = WriteBatch { id: BatchId(self.serial), collection: Arc::from(collection), ops };
        ready(self.store.write_batch(&batch)).unwrap();
    }

    fn sync(&self, remote: &MemoryRemote, options: &RunOptions) -> Result<SyncReport, SyncFailure> {
        let (report, result) = ready(run(&self.store, remote, options, &|_, _| {}));
        result.map(|()| report)
    }

    fn items(&self, collection: &str) -> Vec<(String, serde_json::Value)> {
        self.store
            .snapshot(collection)
            .into_iter()
            .map(|(id, json)| (id, serde_json::from_str(&json).unwrap()))
            .collect()
    }

    fn outbox_len(&self) -> usize {
        ready(self.store.outbox_len()).unwrap()
    }
}

fn strategy(strategy: ConflictStrategy) -> RunOptions {
    RunOptions {
        rules: SyncRules { default: strategy, ..SyncRules::default() },
        ..RunOptions::default()
    }
}

#[test]
fn two_devices_converge_through_the_server_deletes_included() {
    let remote = MemoryRemote::new();
    let (mut a, mut b) = (Device::new("a"), Device::new("b"));
    a.write("files", &[("x", Some(json!({"n": 1}))), ("y", Some(json!(2)))]);
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(a.outbox_len(), 0, "acknowledged changes leave the outbox");
    let report = b.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(report.applied.changed.len(), 2);
    assert_eq!(b.items("files"), a.items("files"));
    b.write("files", &[("x", None)]);
    b.sync(&remote, &RunOptions::default()).unwrap();
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(a.items("files"), vec![("y".to_owned(), json!(2))]);
    assert_eq!(remote.record("files", "x").map(|r| r.deleted), Some(true), "a tombstone");
}

#[test]
fn nothing_leaves_the_outbox_before_the_server_answered() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    a.write("files", &[("x", Some(json!(1)))]);
    remote.set_reachable(false);
    let error = a.sync(&remote, &RunOptions::default()).unwrap_err();
    assert!(matches!(error, SyncFailure::Remote(ref e) if e.is_transient()), "{error:?}");
    assert_eq!(a.outbox_len(), 1);
    remote.set_reachable(true);
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!((a.outbox_len(), remote.items("files").len()), (0, 1));
}

#[test]
fn a_push_whose_answer_was_lost_is_retried_with_the_same_op_ids_and_applies_once() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    a.write("files", &[("x", Some(json!(1))), ("y", Some(json!(2)))]);
    remote.lose_next_answers(1);
    assert!(a.sync(&remote, &RunOptions::default()).is_err());
    assert_eq!((remote.head(), a.outbox_len()), (2, 2), "applied there, still pending here");
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!((remote.head(), a.outbox_len()), (2, 0), "the retry wrote nothing new");
}

#[test]
fn the_outbox_drains_in_batches_of_the_configured_size() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    let values: Vec<(String, Option<serde_json::Value>)> =
        (0..250).map(|i| (format!("k{i:03}"), Some(json!(i)))).collect();
    let changes: Vec<(&str, Option<serde_json::Value>)> =
        values.iter().map(|(id, v)| (id.as_str(), v.clone())).collect();
    a.write("files", &changes);
    let report = a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(remote.push_counts(), (3, 250));
    assert_eq!((report.pushed, report.applied.acknowledged), (250, 250));
}

#[test]
fn server_wins_replaces_the_local_change_and_client_wins_pushes_it_again() {
    for (strategy_chosen, expected) in [
        (ConflictStrategy::ServerWins, json!("theirs")),
        (ConflictStrategy::ClientWins, json!("mine")),
    ] {
        let remote = MemoryRemote::new();
        let mut a = Device::new("a");
        a.write("files", &[("x", Some(json!("base")))]);
        a.sync(&remote, &RunOptions::default()).unwrap();
        remote.write("files", "x", Some(json!("theirs")));
        a.write("files", &[("x", Some(json!("mine")))]);
        let report = a.sync(&remote, &strategy(strategy_chosen)).unwrap();
        assert_eq!(report.applied.conflicts, 1, "{strategy_chosen:?}");
        assert_eq!(
            report.applied.overruled,
            usize::from(strategy_chosen == ConflictStrategy::ServerWins)
        );
        assert_eq!(
            a.items("files"),
            vec![("x".to_owned(), expected.clone())],
            "{strategy_chosen:?}"
        );
        assert_eq!(remote.items("files")["x"], expected, "{strategy_chosen:?}");
        assert_eq!(a.outbox_len(), 0);
    }
}

#[test]
fn a_pulled_change_over_a_pending_local_change_is_a_conflict_not_an_overwrite() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    a.write("files", &[("x", Some(json!("base")))]);
    a.sync(&remote, &RunOptions::default()).unwrap();
    remote.write("files", "x", Some(json!("theirs")));
    a.write("files", &[("x", Some(json!("mine")))]);
    // Pull only (nothing reachable for pushes would be the real case; here: apply a page).
    let page = ready(remote.pull(0, 100)).unwrap();
    let rules = SyncRules { default: ConflictStrategy::ClientWins, ..SyncRules::default() };
    let applied = ready(a.store.apply_sync(
        SyncBatch::Pulled { records: &page.records, checkpoint: page.next_since },
        &rules,
    ))
    .unwrap();
    assert_eq!((applied.conflicts, applied.changed.len()), (1, 0));
    assert_eq!(a.items("files"), vec![("x".to_owned(), json!("mine"))]);
    assert_eq!(a.outbox_len(), 1, "still to push, now on the server's revision");
}

#[test]
fn a_request_refused_as_a_whole_is_split_and_only_the_bad_op_is_dead_lettered() {
    let remote = MemoryRemote::new();
    remote.set_max_value_bytes(Some(20));
    let mut a = Device::new("a");
    a.write(
        "files",
        &[("a", Some(json!(1))), ("big", Some(json!("x".repeat(50)))), ("c", Some(json!(3)))],
    );
    let report = a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!((report.applied.acknowledged, report.applied.dead_lettered), (2, 1));
    assert_eq!(remote.items("files").len(), 2);
    let dead = ready(a.store.dead_letters()).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry.id, "big");
    assert_eq!(a.items("files").len(), 3, "the local value stays");
    // Retried once the server accepts it.
    remote.set_max_value_bytes(None);
    ready(a.store.settle_dead_letter("files", "big", true)).unwrap();
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(remote.items("files").len(), 3);
    assert!(ready(a.store.dead_letters()).unwrap().is_empty());
}

#[test]
fn a_server_that_was_reset_gets_everything_again_and_loses_nothing_here() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    a.write("files", &[("x", Some(json!(1))), ("y", Some(json!(1))), ("z", Some(json!(1)))]);
    a.sync(&remote, &RunOptions::default()).unwrap();
    // Restored from an older backup: its head (1) is behind this device's checkpoint (3).
    remote.reset();
    remote.write("files", "other", Some(json!(9)));
    // A local change of x, based on a revision the server no longer has.
    a.write("files", &[("x", Some(json!(2)))]);
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(remote.items("files")["x"], json!(2), "re-pushed as new");
    assert_eq!(a.items("files").len(), 4, "the pull restarted from 0 and found `other`");
}

#[test]
fn a_full_pull_reads_everything_again_without_touching_pending_changes() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    remote.write("files", "x", Some(json!(1)));
    a.sync(&remote, &RunOptions::default()).unwrap();
    // Lost locally (e.g. cleared by hand); a normal pull would not bring it back.
    ready(a.store.apply_sync(
        SyncBatch::Pulled { records: &[], checkpoint: remote.head() },
        &SyncRules::default(),
    ))
    .unwrap();
    a.write("files", &[("x", None), ("mine", Some(json!(5)))]);
    let full = RunOptions { full_pull: true, ..RunOptions::default() };
    a.sync(&remote, &full).unwrap();
    assert_eq!(remote.items("files").len(), 1, "pending changes were pushed first");
    assert_eq!(a.items("files"), vec![("mine".to_owned(), json!(5))]);
}

#[test]
fn push_all_gives_a_server_that_lost_everything_the_devices_items_again() {
    let remote = MemoryRemote::new();
    let mut a = Device::new("a");
    a.write("files", &[("x", Some(json!(1))), ("y", Some(json!(2)))]);
    a.sync(&remote, &RunOptions::default()).unwrap();
    let stamp = persist_protocol::Hlc { wall_ms: 99, counter: 0, node: "a".into() };
    // Nothing lost yet: the re-sent items are written again with the same values.
    assert_eq!(ready(a.store.mark_all_for_push(&["files".into()], "a-all1", &stamp)).unwrap(), 2);
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!((a.outbox_len(), remote.items("files")["y"].clone()), (0, json!(2)));
    remote.reset();
    assert_eq!(ready(a.store.mark_all_for_push(&["files".into()], "a-all2", &stamp)).unwrap(), 2);
    a.sync(&remote, &RunOptions::default()).unwrap();
    assert_eq!(remote.items("files").len(), 2, "written again");
    assert_eq!(a.outbox_len(), 0);
}

#[test]
fn a_newer_edit_is_not_overruled_by_this_devices_own_older_edit_whose_answer_was_lost() {
    // Found by the simulation: x=2 is applied but its answer lost; x=3 replaces it in the
    // outbox and is pushed on the old base, so it conflicts with x=2, which is ours.
    let remote = MemoryRemote::new();
    let mut a = Device::new("dev1.s1");
    let rules = SyncRules { device: Some("dev1".into()), ..SyncRules::default() };
    let options = RunOptions { rules, ..RunOptions::default() };
    a.write("files", &[("x", Some(json!(1)))]);
    a.sync(&remote, &options).unwrap();
    a.write("files", &[("x", Some(json!(2)))]);
    remote.lose_next_answers(1);
    assert!(a.sync(&remote, &options).is_err());
    a.write("files", &[("x", Some(json!(3)))]);
    let report = a.sync(&remote, &options).unwrap();
    assert_eq!(report.applied.overruled, 0);
    assert_eq!(remote.items("files")["x"], json!(3), "the newest edit wins");
    assert_eq!(a.items("files"), vec![("x".to_owned(), json!(3))]);
}
