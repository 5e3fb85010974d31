//! Rule 4: failed writes are retried with backoff, isolated or parked; never dropped, never
//! written over a newer change.

use crate::support::*;
use persist_engine::RetryPolicy;
use persist_engine::{Change, EnqueueOutcome, FailedKey, WriteError, WriteErrorKind};

#[test]
fn transient_failures_retry_with_exponential_backoff() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.scripted
        .extend([Some(WriteError::transient("aborted")), Some(WriteError::transient("aborted"))]);
    d.put(&a, "1");
    d.put(&b, "1");
    d.advance_to(ms(5_000));
    // 300: fails → +250 ms; 550: fails → +500 ms; 1050: succeeds.
    let times: Vec<_> = d.writes.iter().map(|w| (w.at, w.ids(), w.batch.ops[0].attempt)).collect();
    assert_eq!(
        times,
        vec![
            (ms(300), ids(&["a", "b"]), 0),
            (ms(550), ids(&["a", "b"]), 1),
            (ms(1_050), ids(&["a", "b"]), 2)
        ]
    );
    assert_eq!(d.value(&a), Some("1"));
    assert_eq!(d.engine.queue_depth(), 0);
}

#[test]
fn backoff_is_capped_at_the_policy_max() {
    let policy = RetryPolicy { max: dur(1_000), ..RetryPolicy::default().without_jitter() };
    let mut d = Driver::new(quiet_config().with_write_retry(policy));
    d.fault = Box::new(|_| Some(WriteError::transient("db closing")));
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(6_000));
    let gaps: Vec<u64> =
        d.writes.windows(2).map(|w| (w[1].at.as_micros() - w[0].at.as_micros()) / 1_000).collect();
    assert_eq!(gaps, vec![250, 500, 1_000, 1_000, 1_000, 1_000]);
}

#[test]
fn jitter_spreads_retries_within_bounds_and_replays_from_the_seed() {
    let run = |seed: u64| {
        let mut config = quiet_config();
        config.write_retry.jitter = 0.2;
        let mut d = Driver::with_seed(config, seed);
        d.scripted.push_back(Some(WriteError::transient("x")));
        d.put(&key("files", "a"), "1");
        d.advance_to(ms(2_000));
        d.writes[1].at
    };
    let retry = run(9);
    assert!(retry >= ms(300 + 200) && retry <= ms(300 + 300), "{retry:?}");
    assert_eq!(run(9), retry, "same seed, same run");
    assert!((0..20).map(run).any(|t| t != retry), "jitter varies with the seed");
}

#[test]
fn a_failed_op_never_overwrites_a_newer_change_and_the_key_keeps_its_place() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    let (a, c) = (key("files", "a"), key("files", "c"));
    d.put(&a, "old");
    d.advance_to(ms(300));
    assert_eq!(d.write_in_flight().unwrap().ops[0].change, Change::put("old"));
    d.put(&c, "1");
    d.put(&a, "new");
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    d.finish_write();
    // The failed "old" is dropped; "new" takes a's old place (before c) and its backoff.
    assert_eq!(d.engine.queue_depth(), 2);
    d.flush();
    let batch = d.write_in_flight().unwrap().clone();
    assert_eq!(d.writes.last().unwrap().ids(), ids(&["a", "c"]));
    assert_eq!(batch.ops[0].change, Change::put("new"));
    d.finish_write();
    assert_eq!(d.value(&a), Some("new"));
    assert!(d.writes.iter().skip(1).all(|w| w.batch.ops[0].change != Change::put("old")));
}

#[test]
fn a_key_in_backoff_does_not_block_other_keys() {
    let policy = RetryPolicy { initial: dur(1_000), ..RetryPolicy::default().without_jitter() };
    let mut d = Driver::new(quiet_config().with_write_retry(policy));
    d.scripted.push_back(Some(WriteError::transient("aborted")));
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(400));
    d.put(&key("files", "b"), "1");
    d.advance_to(ms(3_000));
    assert_eq!(
        d.write_times(),
        vec![(ms(300), ids(&["a"])), (ms(700), ids(&["b"])), (ms(1_300), ids(&["a"]))]
    );
}

#[test]
fn a_permanent_error_in_a_batch_isolates_the_bad_op_and_parks_it() {
    let mut d = Driver::new(quiet_config());
    let bad = key("files", "bad");
    d.fault = Box::new(|batch| {
        let has_bad = batch.ops.iter().any(|op| &*op.key.id == "bad");
        has_bad.then(|| WriteError::permanent("DataCloneError"))
    });
    for id in ["a", "bad", "c"] {
        d.put(&key("files", id), "1");
    }
    d.advance_to(ms(5_000));
    assert_eq!(
        d.write_times(),
        vec![
            (ms(300), ids(&["a", "bad", "c"])),
            (ms(300), ids(&["a"])),
            (ms(300), ids(&["bad"])),
            (ms(300), ids(&["c"]))
        ]
    );
    let parked =
        vec![FailedKey { key: bad.clone(), error: WriteError::permanent("DataCloneError") }];
    assert_eq!(d.engine.failed_keys(), parked);
    assert!(d.engine.is_pending(&bad), "parked, not dropped");
    assert_eq!(d.engine.queue_depth(), 1);
    assert_eq!(d.engine.poll_timeout(), None, "a parked op is not retried by itself");

    // The next flush retries it (and reports it again).
    let flush = d.flush();
    assert_eq!(d.writes.len(), 5);
    let (_, _, result) = d.flush_result(flush).unwrap();
    assert_eq!(result.as_ref().unwrap_err().failed, parked);

    // A new change replaces it and is written normally.
    d.fault = Box::new(|_| None);
    assert_eq!(d.put(&bad, "fixed"), EnqueueOutcome::Coalesced);
    assert!(d.engine.failed_keys().is_empty());
    d.advance(dur(300));
    assert_eq!(d.value(&bad), Some("fixed"));
    assert_eq!(d.engine.queue_depth(), 0);
}

#[test]
fn quota_errors_back_off_and_are_counted_apart() {
    let mut d = Driver::new(quiet_config());
    d.scripted.push_back(Some(WriteError::quota_exceeded("QuotaExceededError")));
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    assert_eq!(d.engine.queue_depth(), 1);
    assert!(d.engine.failed_keys().is_empty(), "quota errors are not parked");
    let metrics = d.engine.metrics();
    assert_eq!(metrics.quota_errors, 1);
    let error = metrics.history[0].error.as_deref().unwrap();
    assert!(error.starts_with("quota exceeded"), "{error}");
    d.advance_to(ms(1_000));
    assert_eq!(d.writes.last().unwrap().at, ms(550));
    assert_eq!(d.value(&key("files", "a")), Some("1"));
}

#[test]
fn answers_for_unknown_or_finished_batches_are_ignored() {
    let mut d = Driver::new(quiet_config()).manual_writes();
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    let id = d.write_in_flight().unwrap().id;
    d.finish_write();
    // A duplicate answer, even a failure, changes nothing.
    assert!(!d.engine.write_finished(d.now, id, Err(WriteError::transient("dup"))));
    assert_eq!(d.engine.queue_depth(), 0);
    assert_eq!(d.engine.metrics().total_ops, 1);
    assert_eq!(d.engine.metrics().history[0].error, None);
    assert_eq!(WriteErrorKind::Permanent.to_string(), "permanent error");
}
