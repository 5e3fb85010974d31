//! Rule 6: the auto-sync scheduler.

use crate::support::*;
use persist_engine::{AutoSyncConfigPatch, CollectionConfig, PersistConfig, RetryPolicy};
use persist_engine::{SyncError, SyncId, SyncReason, SyncSummary};
use SyncReason::*;

fn sync_config() -> PersistConfig {
    let mut config = quiet_config();
    config.auto_sync.enabled = true;
    config
}

fn sync_off_change() -> PersistConfig {
    let mut config = sync_config();
    config.auto_sync.sync_on_change = false;
    config
}

#[test]
fn interval_syncs_start_one_interval_after_the_previous_start() {
    let mut d = Driver::new(sync_off_change());
    d.advance_to(ms(30_000));
    d.advance_to(ms(31_000));
    d.finish_sync_ok(0);
    d.advance_to(ms(60_000));
    d.advance_to(ms(65_000));
    d.finish_sync_ok(0);
    d.advance_to(ms(95_000));
    assert_eq!(
        d.sync_reasons(),
        vec![(ms(30_000), Interval), (ms(60_000), Interval), (ms(90_000), Interval)]
    );
}

#[test]
fn an_interval_that_elapses_during_a_sync_becomes_its_follow_up() {
    let mut d = Driver::new(sync_off_change());
    d.advance_to(ms(70_000));
    assert_eq!(d.sync_reasons(), vec![(ms(30_000), Interval)]);
    d.finish_sync_ok(0);
    d.advance_to(ms(71_000));
    d.finish_sync_ok(0);
    d.advance_to(ms(100_000));
    assert_eq!(
        d.sync_reasons(),
        vec![(ms(30_000), Interval), (ms(70_000), Interval), (ms(100_000), Interval)]
    );
}

#[test]
fn a_local_write_starts_a_sync_when_sync_on_change_is_on() {
    let mut d = Driver::new(sync_config());
    d.put(&key("files", "a"), "1");
    d.put(&key("files", "b"), "1");
    d.advance_to(ms(300));
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange)]);
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 2);
    d.advance_to(ms(500));
    d.finish_sync_ok(2);
    let status = d.engine.auto_sync_status(d.now);
    assert_eq!(status.pending_changes, 0);
    assert_eq!((status.last_sync_at, status.last_sync_ok), (Some(ms(500)), Some(true)));
    // The interval counts from the sync's start.
    assert_eq!(status.next_sync_in, Some(dur(300 + 30_000 - 500)));
}

#[test]
fn local_only_collections_do_not_count_towards_the_sync() {
    let config =
        sync_config().with_collection("settings", CollectionConfig::default().local_only());
    let mut d = Driver::new(config);
    d.put(&key("settings", "theme"), "dark");
    d.advance_to(ms(1_000));
    assert!(!d.writes[0].batch.ops[0].sync_to_remote);
    assert!(d.syncs.is_empty());
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 0);
}

#[test]
fn reaching_max_pending_forces_a_sync_even_without_sync_on_change() {
    let mut config = sync_off_change();
    config.auto_sync.max_pending = 3;
    let mut d = Driver::new(config);
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        d.advance_to(ms(100 * i as u64));
        d.put(&key("files", id), "1");
    }
    d.advance_to(ms(450));
    assert!(d.syncs.is_empty());
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 2);
    d.advance_to(ms(500));
    assert_eq!(d.sync_reasons(), vec![(ms(500), MaxPending)]);
}

#[test]
fn requests_during_a_sync_collapse_into_one_follow_up() {
    let mut d = Driver::new(sync_config());
    let first = d.sync_now();
    assert_eq!(d.syncs, vec![(ms(0), first, Manual)]);
    for id in ["a", "b", "c"] {
        d.put(&key("files", id), "1");
        d.advance(dur(400));
    }
    let second = d.sync_now();
    assert_eq!(d.sync_now(), second, "one follow-up serves every request");
    assert_ne!(second, first);
    assert_eq!(d.syncs.len(), 1);
    d.finish_sync_ok(0);
    // The follow-up starts right away; it covers the manual request.
    assert_eq!(d.syncs, vec![(ms(0), first, Manual), (d.now, second, Manual)]);
    d.finish_sync_ok(3);
    assert_eq!(d.syncs.len(), 2);
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 0);
}

#[test]
fn a_failed_sync_keeps_pending_changes_and_retries_with_capped_backoff() {
    let mut config = sync_config();
    config.auto_sync.interval = dur(3_000);
    config.sync_retry =
        RetryPolicy { initial: dur(1_000), max: dur(60_000), ..RetryPolicy::default() }
            .without_jitter();
    let mut d = Driver::new(config);
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    d.advance_to(ms(400));
    d.finish_sync(Err(SyncError::transient("502")));
    let status = d.engine.auto_sync_status(d.now);
    assert_eq!((status.pending_changes, status.last_sync_ok), (1, Some(false)));
    assert_eq!(status.last_error.as_deref(), Some("502"));
    assert_eq!(status.next_sync_in, Some(dur(1_000)));
    for until in [1_400, 3_400, 6_400] {
        d.advance_to(ms(until));
        d.finish_sync(Err(SyncError::transient("502")));
    }
    d.advance_to(ms(9_400));
    // 1 s, 2 s, then 4 s and 8 s capped at the 3 s interval.
    assert_eq!(
        d.sync_reasons(),
        vec![
            (ms(300), OnChange),
            (ms(1_400), Retry),
            (ms(3_400), Retry),
            (ms(6_400), Retry),
            (ms(9_400), Retry)
        ]
    );
    d.finish_sync_ok(1);
    let status = d.engine.auto_sync_status(d.now);
    assert_eq!((status.pending_changes, status.last_sync_ok), (0, Some(true)));
    assert_eq!(status.next_sync_in, Some(dur(3_000)));
}

#[test]
fn a_server_asking_to_wait_holds_back_retries_and_intervals_until_then() {
    let mut config = sync_config();
    config.auto_sync.interval = dur(3_000);
    config.sync_retry =
        RetryPolicy { initial: dur(1_000), max: dur(60_000), ..RetryPolicy::default() }
            .without_jitter();
    let mut d = Driver::new(config);
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    let busy = SyncError::transient("429").with_retry_after(Some(dur(10_000)));
    d.finish_sync(Err(busy));
    // Backoff alone says 1 s and the interval 3 s; the server said 10 s.
    d.advance_to(ms(10_299));
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange)]);
    d.advance_to(ms(10_300));
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange), (ms(10_300), Retry)]);
}

#[test]
fn a_non_transient_failure_waits_for_the_interval() {
    let mut d = Driver::new(sync_config());
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(300));
    d.finish_sync(Err(SyncError::permanent("401 unauthorized")));
    d.advance_to(ms(40_000));
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange), (ms(30_300), Interval)]);
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 1);
}

#[test]
fn pushed_is_subtracted_without_going_below_zero() {
    let mut d = Driver::new(sync_off_change());
    d.engine.set_pending_remote(d.now, 5);
    d.sync_now();
    d.finish_sync(Ok(SyncSummary { pushed: 7, pulled: 2, conflicts: 1 }));
    assert_eq!(d.engine.auto_sync_status(d.now).pending_changes, 0);
    assert_eq!(d.engine.metrics().conflicts, 1);
}

#[test]
fn a_changed_interval_takes_effect_at_once() {
    let mut d = Driver::new(sync_off_change());
    d.advance_to(ms(31_000));
    d.finish_sync_ok(0);
    d.advance_to(ms(40_000));
    let patch = AutoSyncConfigPatch { interval: Some(dur(20_000)), ..Default::default() };
    d.engine.configure_auto_sync(d.now, &patch).unwrap();
    assert_eq!(d.engine.poll_timeout(), Some(ms(50_000)));
    assert_eq!(d.engine.auto_sync_status(d.now).next_sync_in, Some(dur(10_000)));
    d.advance_to(ms(45_000));
    // Last start 30 s + 10 s is already past: the sync starts now.
    let patch = AutoSyncConfigPatch { interval: Some(dur(10_000)), ..Default::default() };
    d.engine.configure_auto_sync(d.now, &patch).unwrap();
    d.drain();
    assert_eq!(d.sync_reasons(), vec![(ms(30_000), Interval), (ms(45_000), Interval)]);
    // An invalid patch changes nothing.
    let bad = AutoSyncConfigPatch { interval: Some(dur(0)), ..Default::default() };
    assert!(d.engine.configure_auto_sync(d.now, &bad).is_err());
    assert_eq!(d.engine.auto_sync_config().interval, dur(10_000));
}

#[test]
fn disabled_auto_sync_only_syncs_on_demand() {
    let mut config = sync_config();
    config.auto_sync.enabled = false;
    let mut d = Driver::new(config);
    for i in 0..60 {
        d.put(&key("files", &format!("k{i}")), "1");
    }
    d.advance_to(ms(100_000));
    assert!(d.syncs.is_empty());
    let status = d.engine.auto_sync_status(d.now);
    assert_eq!((status.enabled, status.pending_changes, status.next_sync_in), (false, 60, None));
    d.sync_now();
    assert_eq!(d.sync_reasons(), vec![(ms(100_000), Manual)]);
}

#[test]
fn offline_keeps_changes_and_coming_back_syncs_them() {
    let mut d = Driver::new(sync_config());
    d.engine.set_remote_available(d.now, false);
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(60_000));
    assert!(d.syncs.is_empty(), "no automatic sync offline");
    let status = d.engine.auto_sync_status(d.now);
    assert_eq!((status.online, status.pending_changes, status.next_sync_in), (false, 1, None));
    assert_eq!(d.engine.poll_timeout(), None);
    d.engine.set_remote_available(d.now, true);
    d.drain();
    assert_eq!(d.sync_reasons(), vec![(ms(60_000), Online)]);
}

#[test]
fn a_manual_sync_runs_even_offline() {
    let mut d = Driver::new(sync_config());
    d.engine.set_remote_available(d.now, false);
    d.sync_now();
    assert_eq!(d.sync_reasons(), vec![(ms(0), Manual)]);
}

#[test]
fn a_rising_outbox_count_forces_a_sync_once() {
    let mut d = Driver::new(sync_off_change());
    d.engine.set_pending_remote(d.now, 49);
    d.drain();
    assert!(d.syncs.is_empty());
    d.engine.set_pending_remote(d.now, 50);
    d.drain();
    d.finish_sync_ok(0);
    // The outbox is stuck at 50 (say, conflicts): no sync loop.
    d.engine.set_pending_remote(d.now, 50);
    d.drain();
    assert_eq!(d.sync_reasons(), vec![(ms(0), MaxPending)]);
}

#[test]
fn answers_for_unknown_syncs_are_ignored() {
    let mut d = Driver::new(sync_config());
    let id = d.sync_now();
    assert!(!d.engine.sync_finished(d.now, SyncId(99), Ok(SyncSummary::default())));
    assert!(d.engine.is_syncing());
    d.finish_sync_ok(0);
    assert!(!d.engine.sync_finished(d.now, id, Ok(SyncSummary::default())));
    assert_eq!(d.engine.metrics().syncs_ok, 1);
}

#[test]
fn an_interval_follow_up_dropped_offline_is_rearmed() {
    // Found by the sync property test: the interval elapsed during a sync (so it waited as the
    // follow-up), the server went away before the sync ended, and no interval was ever
    // scheduled again.
    let mut config = sync_config();
    config.auto_sync.interval = dur(10_000);
    let mut d = Driver::new(config);
    d.put(&key("files", "a"), "1");
    d.advance_to(ms(10_300));
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange)]);
    d.engine.set_remote_available(d.now, false);
    d.advance_to(ms(10_800));
    d.finish_sync_ok(1);
    assert_eq!(d.syncs.len(), 1, "no automatic follow-up offline");
    d.advance_to(ms(20_000));
    d.engine.set_remote_available(d.now, true);
    d.drain();
    // The overdue interval (300 + 10 s) fires as soon as the server is back.
    assert_eq!(d.sync_reasons(), vec![(ms(300), OnChange), (ms(20_000), Interval)]);
}
