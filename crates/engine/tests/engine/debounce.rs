//! Rule 1: per-key debounce bounded by max wait, per collection.

use crate::support::*;
use persist_engine::EnqueueOutcome;
use persist_engine::{CollectionConfig, CollectionConfigPatch};

#[test]
fn each_key_waits_for_its_own_debounce() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.put(&a, "1");
    d.advance_to(ms(100));
    d.put(&b, "2");
    assert_eq!(d.engine.poll_timeout(), Some(ms(300)));
    d.advance_to(ms(1_000));
    // a's deadline did not take b along; b went at its own deadline.
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["a"])), (ms(400), ids(&["b"]))]);
}

#[test]
fn a_new_change_restarts_the_debounce_of_that_key_only() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.put(&a, "1");
    d.put(&b, "1");
    d.advance_to(ms(200));
    assert_eq!(d.put(&a, "2"), EnqueueOutcome::Coalesced);
    // The timeout is exact: b's deadline, then a's pushed-back one.
    assert_eq!(d.engine.poll_timeout(), Some(ms(300)));
    d.advance_to(ms(300));
    assert_eq!(d.engine.poll_timeout(), Some(ms(500)));
    d.advance_to(ms(1_000));
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["b"])), (ms(500), ids(&["a"]))]);
    assert_eq!(d.value(&a), Some("2"));
}

#[test]
fn max_wait_bounds_a_key_that_keeps_changing() {
    let mut d = Driver::new(quiet_config());
    let a = key("files", "a");
    // A change every 250 ms never lets the 300 ms debounce run out.
    for step in 0..=12u64 {
        d.advance_to(ms(step * 250));
        d.put(&a, &step.to_string());
    }
    // First change at 0 + max wait 2 s: written at 2000 with the latest value (step 7, 1750).
    assert_eq!(d.writes[0].at, ms(2_000));
    assert_eq!(d.writes[0].batch.ops[0].change, persist_engine::Change::put("7"));
    // The changes after it form a new pending op: first at 2000, last at 3000 → due 3300.
    d.advance_to(ms(10_000));
    assert_eq!(d.write_times(), vec![(ms(2_000), ids(&["a"])), (ms(3_300), ids(&["a"]))]);
    assert_eq!(d.value(&a), Some("12"));
}

#[test]
fn each_collection_uses_its_own_timing_and_unknown_collections_the_default() {
    let slow = CollectionConfig::default().with_debounce(dur(1_000)).with_max_wait(dur(5_000));
    let config = quiet_config().with_collection("settings", slow);
    let mut d = Driver::new(config);
    d.put(&key("settings", "theme"), "dark");
    d.put(&key("files", "a"), "1");
    d.put(&key("whatever", "x"), "1");
    d.advance_to(ms(5_000));
    let times: Vec<_> = d.writes.iter().map(|w| (w.at, w.batch.collection.to_string())).collect();
    assert_eq!(
        times,
        vec![
            (ms(300), "files".to_owned()),
            (ms(300), "whatever".to_owned()),
            (ms(1_000), "settings".to_owned())
        ]
    );
}

#[test]
fn reconfigured_debounce_applies_to_waiting_ops() {
    let mut d = Driver::new(quiet_config());
    let a = key("files", "a");
    d.put(&a, "1");
    d.advance_to(ms(100));
    // Like CodeForge's configurePersistence('files', {debounceMs: 500}).
    let patch = CollectionConfigPatch { debounce: Some(dur(500)), ..Default::default() };
    d.engine.configure_collection(d.now, "files", &patch).unwrap();
    assert_eq!(d.engine.collection_config("files").debounce, dur(500));
    assert_eq!(d.engine.poll_timeout(), Some(ms(500)));
    d.advance_to(ms(1_000));
    assert_eq!(d.write_times(), vec![(ms(500), ids(&["a"]))]);
}

#[test]
fn invalid_reconfiguration_changes_nothing() {
    let mut d = Driver::new(quiet_config());
    let patch = CollectionConfigPatch { debounce: Some(dur(5_000)), ..Default::default() };
    assert!(d.engine.configure_collection(d.now, "files", &patch).is_err());
    let patch = CollectionConfigPatch { batch_size: Some(0), ..Default::default() };
    assert!(d.engine.configure_collection(d.now, "files", &patch).is_err());
    assert_eq!(d.engine.collection_config("files"), &CollectionConfig::default());
    assert!(!d.engine.config().collections.contains_key("files"));
}

#[test]
fn disabled_collections_ignore_new_changes_but_write_queued_ones() {
    let mut d = Driver::new(quiet_config());
    let (a, b) = (key("files", "a"), key("files", "b"));
    d.put(&a, "1");
    d.engine.disable_collection(d.now, "files");
    assert_eq!(d.put(&b, "1"), EnqueueOutcome::Ignored);
    d.advance_to(ms(1_000));
    assert_eq!(d.write_times(), vec![(ms(300), ids(&["a"]))]);
    d.engine.enable_collection(d.now, "files");
    assert_eq!(d.put(&b, "1"), EnqueueOutcome::Queued);
    d.advance_to(ms(2_000));
    assert_eq!(d.write_times().last(), Some(&(ms(1_300), ids(&["b"]))));
}
