//! Rule 7: metrics on the engine's virtual clock.

use crate::support::*;
use persist_engine::{Action, Change, Engine, SyncError, SyncSummary, WriteError};
use persist_engine::{MetricsSnapshot, OperationKind, PersistConfig};

#[test]
fn durations_run_from_emitting_an_action_to_its_completion() {
    let mut config = quiet_config();
    config.auto_sync.enabled = true;
    let mut d = Driver::new(config);
    d.write_latency = Some(dur(10));
    d.put(&key("files", "a"), r#"{"n":1}"#);
    d.advance_to(ms(300));
    // The write completes at 310 and starts a sync (on change) that takes 90 ms.
    d.advance_to(ms(400));
    d.finish_sync(Ok(SyncSummary { pushed: 1, pulled: 4, conflicts: 0 }));
    let m = d.engine.metrics();
    let history: Vec<_> =
        m.history.iter().map(|r| (r.kind, r.at, r.duration, r.ops, r.bytes, r.ok)).collect();
    assert_eq!(
        history,
        vec![
            (OperationKind::LocalWrite, ms(310), dur(10), 1, 7, true),
            (OperationKind::Sync, ms(400), dur(90), 5, 0, true)
        ]
    );
    assert_eq!(m.average_duration, dur(50));
    assert_eq!(m.p95_duration, dur(90));
    assert_eq!(m.last_op_at, Some(ms(400)));
    assert_eq!((m.syncs_ok, m.syncs_failed, m.completed_operations), (1, 0, 2));
}

#[test]
fn op_counts_bytes_and_failures_add_up() {
    let mut d = Driver::new(quiet_config());
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    d.put(&key("files", "a"), "12345");
    d.put(&key("files", "b"), "123");
    d.delete(&key("files", "c"));
    d.advance_to(ms(1_000));
    let m = d.engine.metrics();
    assert_eq!((m.total_ops, m.successful_ops, m.failed_ops), (6, 3, 3));
    assert_eq!(m.bytes_written, 8, "only successful writes count; deletes weigh nothing");
    assert_eq!(m.history[0].error.as_deref(), Some("transient error: aborted"));
    assert_eq!((m.queue_depth, m.in_flight), (0, 0));
}

#[test]
fn failed_syncs_are_counted_and_recorded() {
    let mut config = quiet_config();
    config.auto_sync.enabled = true;
    let mut d = Driver::new(config);
    d.sync_now();
    d.advance_to(ms(20));
    d.finish_sync(Err(SyncError::transient("timeout")));
    let m = d.engine.metrics();
    assert_eq!((m.syncs_ok, m.syncs_failed), (0, 1));
    assert_eq!(m.history[0].error.as_deref(), Some("sync failed: timeout"));
    assert_eq!(m.history[0].duration, dur(20));
    assert_eq!(m.total_ops, 0, "syncs are not local write ops");
}

#[test]
fn gauges_follow_the_queue_live() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    d.put(&key("files", "a"), "1");
    d.put(&key("files", "b"), "1");
    assert_eq!((d.engine.metrics().queue_depth, d.engine.metrics().in_flight), (2, 0));
    d.advance_to(ms(300));
    assert_eq!((d.engine.metrics().queue_depth, d.engine.metrics().in_flight), (0, 2));
    d.finish_write();
    assert_eq!((d.engine.metrics().queue_depth, d.engine.metrics().in_flight), (0, 0));
}

#[test]
fn reset_clears_counters_but_not_gauges() {
    let mut d = Driver::new(quiet_config());
    d.put(&key("files", "a"), "1");
    d.put(&key("files", "a"), "2");
    d.advance_to(ms(300));
    d.put(&key("files", "b"), "1");
    d.engine.reset_metrics();
    let m = d.engine.metrics();
    assert_eq!((m.total_ops, m.coalesced, m.history.len(), m.last_op_at), (0, 0, 0, None));
    assert_eq!(m.queue_depth, 1);
}

#[test]
fn metrics_changed_comes_once_per_drain_and_only_after_changes() {
    fn drain(engine: &mut Engine) -> Vec<Action> {
        std::iter::from_fn(|| engine.poll_action()).collect()
    }
    let mut engine = Engine::new(quiet_config(), 1).unwrap();
    engine.enqueue(ms(0), key("files", "a"), Change::put("1"));
    engine.enqueue(ms(1), key("files", "b"), Change::put("1"));
    engine.enqueue(ms(2), key("files", "a"), Change::put("2"));
    assert_eq!(drain(&mut engine), vec![Action::MetricsChanged]);
    assert!(drain(&mut engine).is_empty());
    engine.tick(ms(100));
    assert!(drain(&mut engine).is_empty(), "nothing visible changed");
    engine.tick(ms(301));
    let actions = drain(&mut engine);
    assert!(matches!(actions[..], [Action::Write(_), Action::MetricsChanged]), "{actions:?}");
}

#[test]
fn history_keeps_the_last_hundred_operations() {
    let mut d = Driver::new(quiet_config());
    for i in 0..120u64 {
        d.put(&key("files", "a"), &i.to_string());
        d.flush();
    }
    let m = d.engine.metrics();
    assert_eq!(m.history.len(), 100);
    assert_eq!(m.total_ops, 120);
    assert_eq!(m.completed_operations, 120);
}

#[test]
fn metrics_changes_are_announced_once_per_drain_and_serialise() {
    let mut engine = Engine::new(PersistConfig::default(), 1).unwrap();
    engine.enqueue(ms(0), key("files", "a"), Change::put("1"));
    engine.enqueue(ms(1), key("files", "b"), Change::put("2"));
    let mut announced = Vec::new();
    while let Some(action) = engine.poll_action() {
        if action == Action::MetricsChanged {
            announced.push(engine.metrics().queue_depth);
        }
    }
    assert_eq!(announced, vec![2], "one announcement for both changes, after them");
    assert_eq!(engine.poll_action(), None, "nothing changed since");
    let json = serde_json::to_string(engine.metrics()).unwrap();
    assert_eq!(&serde_json::from_str::<MetricsSnapshot>(&json).unwrap(), engine.metrics());
}
