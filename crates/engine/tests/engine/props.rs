//! Property tests: random changes, time, failures, flushes, pauses and reconfigurations.
//!
//! The driver checks on every step that at most one batch is in flight, that batches hold one
//! collection and at most `batch_size` ops, that a key's writes reach the store in increasing
//! serial order (never an older value after a newer one), that each written op carries the
//! change enqueued with its serial, and that every completed flush found durable what it had to.
//! At the end, with failures switched off, everything must be written exactly as enqueued.

use std::cell::Cell;
use std::rc::Rc;

use crate::support::*;
use persist_engine::{
    AutoSyncConfigPatch, CollectionConfig, CollectionConfigPatch, PersistConfig, RetryPolicy,
};
use persist_engine::{SyncError, SyncReason, SyncSummary, WriteBatch, WriteError};
use proptest::prelude::*;

const COLLECTIONS: [&str; 3] = ["files", "models", "settings"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Each batch fails transiently with this probability (percent).
    Transient(u8),
    /// Each batch fails with a quota error with this probability (percent).
    Quota(u8),
    /// Every batch holding this item id fails permanently.
    PermanentId(u8),
}

#[derive(Debug, Clone)]
enum Event {
    Put(usize, u8),
    Delete(usize, u8),
    Advance(u16),
    Flush,
    SetFault(Fault),
    Pause,
    Resume,
    Configure(usize, u16, usize),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::None),
        (10u8..90).prop_map(Fault::Transient),
        (10u8..90).prop_map(Fault::Quota),
        (0u8..4).prop_map(Fault::PermanentId),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0..COLLECTIONS.len(), 0u8..4).prop_map(|(c, id)| Event::Put(c, id)),
        2 => (0..COLLECTIONS.len(), 0u8..4).prop_map(|(c, id)| Event::Delete(c, id)),
        5 => (0u16..800).prop_map(Event::Advance),
        1 => Just(Event::Flush),
        1 => fault().prop_map(Event::SetFault),
        1 => Just(Event::Pause),
        1 => Just(Event::Resume),
        1 => (0..COLLECTIONS.len(), 0u16..600, 1usize..5)
            .prop_map(|(c, debounce, batch)| Event::Configure(c, debounce, batch)),
    ]
}

fn collection_config() -> impl Strategy<Value = CollectionConfig> {
    (0u64..500, 0u64..1_500, 1usize..5, any::<bool>()).prop_map(|(debounce, extra, batch, sync)| {
        CollectionConfig {
            enabled: true,
            sync_to_remote: sync,
            debounce: dur(debounce),
            max_wait: dur(debounce + extra),
            batch_size: batch,
            ..CollectionConfig::default()
        }
    })
}

fn config() -> impl Strategy<Value = PersistConfig> {
    (collection_config(), collection_config(), 10u64..300, 0.0f64..0.5, any::<bool>()).prop_map(
        |(files, models, initial, jitter, auto_sync)| {
            let mut config = PersistConfig::default()
                .with_collection("files", files)
                .with_collection("models", models)
                .with_write_retry(RetryPolicy {
                    initial: dur(initial),
                    max: dur(5_000),
                    jitter,
                    ..RetryPolicy::default()
                });
            config.auto_sync.enabled = auto_sync;
            config
        },
    )
}

/// A fault injector whose mode the test can switch, deterministic from `seed`.
fn injector(mode: Rc<Cell<Fault>>, seed: u64) -> impl FnMut(&WriteBatch) -> Option<WriteError> {
    let state = Cell::new(seed);
    move |batch| {
        // SplitMix64 step: the test's own randomness, independent of the engine's.
        let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let roll = ((z ^ (z >> 31)) % 100) as u8;
        match mode.get() {
            Fault::None => None,
            Fault::Transient(p) => (roll < p).then(|| WriteError::transient("aborted")),
            Fault::Quota(p) => (roll < p).then(|| WriteError::quota_exceeded("full")),
            Fault::PermanentId(id) => {
                let hit = batch.ops.iter().any(|op| *op.key.id == *id.to_string());
                hit.then(|| WriteError::permanent("DataCloneError"))
            }
        }
    }
}

fn run(config: PersistConfig, seed: u64, latency: u16, events: &[Event]) -> Driver {
    let mut d = Driver::with_seed(config, seed);
    d.write_latency = Some(dur(u64::from(latency)));
    let mode = Rc::new(Cell::new(Fault::None));
    d.fault = Box::new(injector(Rc::clone(&mode), seed));
    let mut value = 0u64;
    let mut paused = false;
    for event in events {
        match *event {
            Event::Put(c, id) => {
                value += 1;
                d.put(&key(COLLECTIONS[c], &id.to_string()), &format!("v{value}"));
            }
            Event::Delete(c, id) => {
                d.delete(&key(COLLECTIONS[c], &id.to_string()));
            }
            Event::Advance(millis) => d.advance(dur(u64::from(millis))),
            Event::Flush => {
                d.flush();
            }
            Event::SetFault(fault) => mode.set(fault),
            Event::Pause => {
                paused = true;
                d.engine.pause_writes();
            }
            Event::Resume => {
                paused = false;
                d.engine.resume_writes(d.now);
                d.drain();
            }
            Event::Configure(c, debounce, batch_size) => {
                let patch = CollectionConfigPatch {
                    debounce: Some(dur(u64::from(debounce))),
                    max_wait: Some(dur(u64::from(debounce) + 500)),
                    batch_size: Some(batch_size),
                    ..CollectionConfigPatch::default()
                };
                d.engine.configure_collection(d.now, COLLECTIONS[c], &patch).expect("valid patch");
                d.drain();
            }
        }
        // A sync the runtime would answer: succeed, keeping the scheduler moving.
        if d.running_sync.is_some() {
            d.finish_sync_ok(1);
        }
        // Liveness: an op that is neither parked nor blocked has a wake-up time.
        let idle = !paused && d.write_in_flight().is_none();
        if idle && d.engine.queue_depth() > d.engine.failed_keys().len() {
            assert!(d.engine.poll_timeout().is_some(), "waiting ops but no timeout");
        }
    }
    // Failures off; flush until everything is durable.
    mode.set(Fault::None);
    d.engine.resume_writes(d.now);
    d.drain();
    for _ in 0..10 {
        d.flush();
        d.advance(dur(1_000));
        if d.engine.queue_depth() == 0 && d.engine.in_flight_ops() == 0 {
            break;
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn everything_enqueued_is_written_in_order_and_nothing_else(
        config in config(),
        seed in any::<u64>(),
        latency in 0u16..60,
        events in prop::collection::vec(event(), 1..80),
    ) {
        let d = run(config, seed, latency, &events);
        prop_assert_eq!(d.engine.queue_depth(), 0);
        prop_assert_eq!(d.engine.in_flight_ops(), 0);
        prop_assert!(d.engine.failed_keys().is_empty());
        d.assert_store_matches_changes();
        prop_assert_eq!(d.open_flushes(), 0, "every flush completed");
        // The final flush, with failures off, saw none.
        let (_, _, result) = d.flushes.last().expect("the final flush");
        prop_assert!(result.is_ok(), "{:?}", result);

        let m = d.engine.metrics();
        prop_assert_eq!(m.successful_ops + m.failed_ops, m.total_ops);
        let count = |ok: bool| -> u64 {
            d.writes
                .iter()
                .filter(|w| w.result.as_ref().is_some_and(|r| r.is_ok() == ok))
                .map(|w| w.batch.ops.len() as u64)
                .sum()
        };
        prop_assert_eq!(m.successful_ops, count(true));
        prop_assert_eq!(m.failed_ops, count(false));
        let bytes: usize = d
            .writes
            .iter()
            .filter(|w| w.result.as_ref().is_some_and(Result::is_ok))
            .map(|w| w.batch.bytes())
            .sum();
        prop_assert_eq!(m.bytes_written, bytes as u64);
        prop_assert_eq!((m.queue_depth, m.in_flight), (0, 0));
        prop_assert!(m.history.len() <= 100);
    }

    #[test]
    fn syncs_run_one_at_a_time_and_only_when_allowed(
        seed in any::<u64>(),
        steps in prop::collection::vec((0u8..8, 0u16..20_000), 1..60),
    ) {
        let mut config = PersistConfig::default();
        config.auto_sync.interval = dur(10_000);
        config.auto_sync.max_pending = 5;
        let mut d = Driver::with_seed(config, seed);
        let online = Rc::new(Cell::new(true));
        let enabled = Rc::new(Cell::new(true));
        let mut checked = 0;
        for (i, (kind, amount)) in steps.into_iter().enumerate() {
            match kind {
                0 => {
                    d.put(&key("files", &(amount % 7).to_string()), "v");
                }
                1 => d.advance(dur(u64::from(amount))),
                2 if d.running_sync.is_some() => {
                    let pushed = usize::from(amount % 4);
                    d.finish_sync(Ok(SyncSummary { pushed, pulled: 0, conflicts: 0 }));
                }
                3 if d.running_sync.is_some() => {
                    d.finish_sync(Err(if amount % 2 == 0 {
                        SyncError::transient("x")
                    } else {
                        SyncError::permanent("x")
                    }));
                }
                4 => {
                    online.set(!online.get());
                    d.engine.set_remote_available(d.now, online.get());
                    d.drain();
                }
                5 => {
                    d.sync_now();
                }
                6 => {
                    enabled.set(amount % 3 != 0);
                    let patch = AutoSyncConfigPatch {
                        enabled: Some(enabled.get()),
                        interval: Some(dur(1_000 + u64::from(amount))),
                        ..AutoSyncConfigPatch::default()
                    };
                    d.engine.configure_auto_sync(d.now, &patch).expect("valid");
                    d.drain();
                }
                _ => {
                    d.engine.set_pending_remote(d.now, usize::from(amount % 10));
                    d.drain();
                }
            }
            // Automatic syncs started since the last step respect online/enabled (a manual
            // follow-up may run regardless).
            for &(_, _, reason) in &d.syncs[checked..] {
                if reason != SyncReason::Manual {
                    prop_assert!(online.get() && enabled.get(), "step {}: {:?}", i, reason);
                }
            }
            checked = d.syncs.len();
            let status = d.engine.auto_sync_status(d.now);
            prop_assert_eq!(status.syncing, d.running_sync.is_some());
            if !(online.get() && enabled.get()) {
                prop_assert_eq!(status.next_sync_in, None);
            } else if d.running_sync.is_none() {
                // Liveness: with automatic syncs allowed and none running, one is scheduled.
                prop_assert!(status.next_sync_in.is_some(), "step {}: no sync scheduled", i);
            }
            // next_sync_in agrees with the timeout the runtime would arm.
            if let Some(next) = status.next_sync_in {
                let timeout = d.engine.poll_timeout().expect("a sync is scheduled");
                prop_assert!(timeout <= d.now + next);
            }
        }
        let m = d.engine.metrics();
        let finished = d.syncs.len() as u64 - u64::from(d.running_sync.is_some());
        prop_assert_eq!(m.syncs_ok + m.syncs_failed, finished);
    }
}
