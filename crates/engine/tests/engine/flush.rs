//! Rule 5: a flush completes only when everything enqueued before it is durable.

use crate::support::*;
use persist_engine::{FailedKey, FlushError, WriteError};

#[test]
fn flush_writes_at_once_and_completes_when_durable() {
    let mut d = Driver::new(quiet_config());
    d.write_latency = Some(dur(10));
    d.put(&key("files", "a"), "1");
    d.put(&key("models", "m"), "1");
    d.advance_to(ms(100));
    let id = d.flush();
    assert_eq!(d.write_times(), vec![(ms(100), ids(&["a"]))]);
    d.advance_to(ms(500));
    // Two batches of 10 ms each, one after the other.
    assert_eq!(d.write_times(), vec![(ms(100), ids(&["a"])), (ms(110), ids(&["m"]))]);
    assert_eq!(d.flushes, vec![(ms(120), id, Ok(()))]);
}

#[test]
fn a_flush_with_nothing_pending_completes_at_once() {
    let mut d = Driver::new(quiet_config());
    let id = d.flush();
    assert_eq!(d.flushes, vec![(ms(0), id, Ok(()))]);
    assert!(d.writes.is_empty());
}

#[test]
fn a_flush_waits_for_the_batch_in_flight_but_not_for_later_changes() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    let id = d.flush();
    d.put(&key("files", "b"), "1");
    assert!(d.flushes.is_empty(), "a is still in flight");
    d.advance_to(ms(320));
    d.finish_write();
    assert_eq!(d.flushes, vec![(ms(320), id, Ok(()))]);
    // b, enqueued after the flush, keeps its debounce.
    assert!(d.write_in_flight().is_none());
    d.advance_to(ms(610));
    assert_eq!(d.writes.last().unwrap().at, ms(600));
}

#[test]
fn a_flush_ignores_backoff() {
    let policy = persist_engine::RetryPolicy { initial: dur(10_000), ..Default::default() };
    let mut d = Driver::new(quiet_config().with_write_retry(policy));
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    assert_eq!(d.engine.queue_depth(), 1);
    d.advance_to(ms(400));
    let id = d.flush();
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["a"])), (ms(400), ids(&["a"]))]);
    assert_eq!(d.flushes, vec![(ms(400), id, Ok(()))]);
}

#[test]
fn a_failure_during_a_flush_is_reported_and_the_op_stays_queued() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("models", "b"));
    d.put(&a, "1");
    d.put(&b, "1");
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    let id = d.flush();
    let failed = vec![FailedKey { key: a.clone(), error: WriteError::transient("aborted") }];
    // b was still written before the flush completed.
    assert_eq!(d.value(&b), Some("1"));
    assert_eq!(d.flushes, vec![(ms(0), id, Err(FlushError { failed }))]);
    assert_eq!(d.engine.queue_depth(), 1);
    // The op is retried without another flush, once both its backoff (250 ms) and its
    // debounce (300 ms) have run out.
    d.advance_to(ms(1_000));
    assert_eq!(d.writes.last().unwrap().at, ms(300));
    assert_eq!(d.value(&a), Some("1"));
}

#[test]
fn a_superseded_op_counts_as_durable_when_its_newer_change_is() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    let a = key("files", "a");
    d.put(&a, "1");
    d.advance_to(ms(300));
    let first = d.flush();
    d.put(&a, "2");
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    d.finish_write();
    // "1" failed but "2" covers it: the flush goes on, writing "2" now.
    assert!(d.flushes.is_empty());
    assert_eq!(d.write_in_flight().unwrap().ops[0].change, persist_engine::Change::put("2"));
    d.advance_to(ms(305));
    d.finish_write();
    assert_eq!(d.flushes, vec![(ms(305), first, Ok(()))]);
    assert_eq!(d.value(&a), Some("2"));
}

#[test]
fn overlapping_flushes_each_complete_when_their_own_ops_are_durable() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.put(&a, "1");
    let first = d.flush();
    d.put(&b, "1");
    let second = d.flush();
    let third = d.flush();
    assert_eq!(d.write_in_flight().unwrap().ops.len(), 1, "a left alone, before b existed");
    d.advance_to(ms(5));
    d.finish_write();
    assert_eq!(d.flushes, vec![(ms(5), first, Ok(()))]);
    d.advance_to(ms(9));
    d.finish_write();
    assert_eq!(
        d.flushes,
        vec![(ms(5), first, Ok(())), (ms(9), second, Ok(())), (ms(9), third, Ok(()))]
    );
}

#[test]
fn flushes_wait_while_writes_are_paused() {
    let mut d = Driver::new(quiet_config());
    let a = key("files", "a");
    d.engine.pause_writes();
    d.put(&a, "1");
    d.put(&a, "2");
    let id = d.flush();
    d.advance_to(ms(5_000));
    assert!(d.writes.is_empty() && d.flushes.is_empty());
    assert_eq!(d.engine.poll_timeout(), None);
    d.engine.resume_writes(ms(5_000));
    d.drain();
    assert_eq!(d.write_times(), vec![(ms(5_000), ids(&["a"]))]);
    assert_eq!(d.flushes, vec![(ms(5_000), id, Ok(()))]);
    assert_eq!(d.value(&a), Some("2"));
}

#[test]
fn resuming_writes_sends_what_became_due_while_paused() {
    let mut d = Driver::new(quiet_config());
    d.engine.pause_writes();
    assert!(d.engine.writes_paused());
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(1_000));
    assert!(d.writes.is_empty());
    d.engine.resume_writes(ms(1_000));
    d.drain();
    assert_eq!(d.write_times(), vec![(ms(1_000), ids(&["a"]))]);
}

#[test]
fn a_flush_error_names_the_keys() {
    let failed = vec![FailedKey { key: key("files", "a"), error: WriteError::permanent("bad") }];
    let error = FlushError { failed };
    assert_eq!(error.to_string(), "1 item(s) could not be written: files:a (permanent error: bad)");
}

#[test]
fn a_flush_after_a_newer_change_waits_for_the_newer_one() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    let a = key("files", "a");
    d.put(&a, "1");
    d.advance_to(ms(300));
    d.put(&a, "2");
    let id = d.flush();
    d.finish_write();
    // "1" is durable, but the flush was called after "2".
    assert!(d.flushes.is_empty());
    d.advance_to(ms(310));
    d.finish_write();
    assert_eq!(d.flushes, vec![(ms(310), id, Ok(()))]);
    assert_eq!(d.value(&a), Some("2"));
}
