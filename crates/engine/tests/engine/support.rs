//! A test driver for the engine: a virtual clock, a model local store (a `BTreeMap`) that
//! applies write batches, injectable write failures, and logs of everything the engine did.
//!
//! Every write is checked against the engine's contract as it happens: one batch in flight,
//! one collection per batch, at most `batch_size` ops, a key's writes in increasing serial order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use persist_protocol::Hlc;

use persist_engine::{
    Action, Change, Engine, EnqueueOutcome, FlushError, FlushId, ItemKey, SyncError, SyncId,
    SyncReason, SyncSummary, WriteBatch, WriteError,
};
use persist_engine::{PersistConfig, Time};

/// Shorthand for a time in milliseconds.
pub(crate) fn ms(millis: u64) -> Time {
    Time::from_millis(millis)
}

/// Shorthand for a duration in milliseconds.
pub(crate) fn dur(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(crate) fn key(collection: &str, id: &str) -> ItemKey {
    ItemKey::new(collection, id)
}

/// An item in the model store: its value (`None` once deleted) and the serial that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) value: Option<String>,
    pub(crate) serial: u64,
    pub(crate) hlc: Hlc,
}

/// One write batch the engine emitted.
#[derive(Debug, Clone)]
pub(crate) struct WriteLog {
    pub(crate) at: Time,
    pub(crate) batch: WriteBatch,
    pub(crate) result: Option<Result<(), WriteError>>,
}

impl WriteLog {
    pub(crate) fn ids(&self) -> Vec<String> {
        self.batch.ops.iter().map(|op| op.key.id.to_string()).collect()
    }
}

type Fault = Box<dyn FnMut(&WriteBatch) -> Option<WriteError>>;

pub(crate) struct Driver {
    pub(crate) engine: Engine,
    pub(crate) now: Time,
    /// The model local store.
    pub(crate) store: BTreeMap<ItemKey, Stored>,
    pub(crate) writes: Vec<WriteLog>,
    /// Scripted results of the next writes (`None` = success); after them, `fault` decides.
    pub(crate) scripted: VecDeque<Option<WriteError>>,
    pub(crate) fault: Fault,
    /// Writes complete on their own after this latency; `None`: the test calls `finish_write`.
    pub(crate) write_latency: Option<Duration>,
    pending_write: Option<(Time, WriteBatch)>,
    pub(crate) syncs: Vec<(Time, SyncId, SyncReason)>,
    pub(crate) running_sync: Option<SyncId>,
    pub(crate) flushes: Vec<(Time, FlushId, Result<(), FlushError>)>,
    pub(crate) metrics_changed: usize,
    /// Every accepted change by serial (mirrors the engine's numbering), and each key's latest.
    pub(crate) changes: BTreeMap<u64, (ItemKey, Change)>,
    pub(crate) latest: BTreeMap<ItemKey, u64>,
    /// What each flush must find durable: each key's latest serial at the flush call.
    flush_expectations: BTreeMap<FlushId, BTreeMap<ItemKey, u64>>,
}

impl Driver {
    pub(crate) fn new(config: PersistConfig) -> Self {
        Driver::with_seed(config, 1)
    }

    pub(crate) fn with_seed(config: PersistConfig, seed: u64) -> Self {
        Driver {
            engine: Engine::new(config, seed).expect("valid config"),
            now: Time::ZERO,
            store: BTreeMap::new(),
            writes: Vec::new(),
            scripted: VecDeque::new(),
            fault: Box::new(|_| None),
            write_latency: Some(Duration::ZERO),
            pending_write: None,
            syncs: Vec::new(),
            running_sync: None,
            flushes: Vec::new(),
            metrics_changed: 0,
            changes: BTreeMap::new(),
            latest: BTreeMap::new(),
            flush_expectations: BTreeMap::new(),
        }
    }

    /// Writes complete only when the test calls [`finish_write`](Self::finish_write).
    pub(crate) fn manual_writes(mut self) -> Self {
        self.write_latency = None;
        self
    }

    pub(crate) fn put(&mut self, key: &ItemKey, value: &str) -> EnqueueOutcome {
        self.enqueue(key, Change::put(value))
    }

    pub(crate) fn delete(&mut self, key: &ItemKey) -> EnqueueOutcome {
        self.enqueue(key, Change::Delete)
    }

    pub(crate) fn enqueue(&mut self, key: &ItemKey, change: Change) -> EnqueueOutcome {
        let outcome = self.engine.enqueue(self.now, key.clone(), change.clone());
        if outcome != EnqueueOutcome::Ignored {
            let serial = self.changes.len() as u64 + 1;
            self.changes.insert(serial, (key.clone(), change));
            self.latest.insert(key.clone(), serial);
        }
        self.drain();
        outcome
    }

    pub(crate) fn flush(&mut self) -> FlushId {
        let id = self.engine.flush(self.now);
        self.flush_expectations.insert(id, self.latest.clone());
        self.drain();
        id
    }

    /// Checks that the store holds, for every key, the last change enqueued for it.
    pub(crate) fn assert_store_matches_changes(&self) {
        for (key, serial) in &self.latest {
            let (_, change) = &self.changes[serial];
            let stored = self.store.get(key);
            assert_eq!(stored.map(|s| s.serial), Some(*serial), "{key} holds its last change");
            let expected = match change {
                Change::Put(payload) => Some(payload.as_str()),
                Change::Delete => None,
            };
            assert_eq!(self.value(key), expected, "{key}");
        }
        assert!(self.store.keys().all(|k| self.latest.contains_key(k)), "nothing invented");
    }

    pub(crate) fn sync_now(&mut self) -> SyncId {
        let id = self.engine.sync_now(self.now);
        self.drain();
        id
    }

    /// Finishes the running sync.
    pub(crate) fn finish_sync(&mut self, result: Result<SyncSummary, SyncError>) {
        let id = self.running_sync.take().expect("a sync is running");
        assert!(self.engine.sync_finished(self.now, id, result));
        self.drain();
    }

    pub(crate) fn finish_sync_ok(&mut self, pushed: usize) {
        self.finish_sync(Ok(SyncSummary { pushed, pulled: 0, conflicts: 0 }));
    }

    /// Runs the clock forward to `target`, ticking the engine at each of its timeouts and
    /// completing writes whose latency ran out.
    pub(crate) fn advance_to(&mut self, target: Time) {
        assert!(target >= self.now, "time runs forward");
        for _ in 0..100_000 {
            let write_done = self.pending_write.as_ref().map(|(t, _)| *t);
            let next = [self.engine.poll_timeout(), write_done].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= target) else {
                self.now = target;
                self.engine.tick(target);
                self.drain();
                return;
            };
            self.now = next.max(self.now);
            if write_done.is_some_and(|t| t <= self.now) {
                let (_, batch) = self.pending_write.take().expect("checked");
                self.complete(batch);
            } else {
                self.engine.tick(self.now);
            }
            self.drain();
        }
        panic!("engine keeps asking to be woken up at {:?}: busy loop", self.now);
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.advance_to(self.now + by);
    }

    /// Completes the write in flight (manual mode) with the scripted/fault result.
    pub(crate) fn finish_write(&mut self) {
        let (_, batch) = self.pending_write.take().expect("a write is in flight");
        self.complete(batch);
        self.drain();
    }

    /// The batch in flight on the runtime side.
    pub(crate) fn write_in_flight(&self) -> Option<&WriteBatch> {
        self.pending_write.as_ref().map(|(_, batch)| batch)
    }

    fn complete(&mut self, batch: WriteBatch) {
        let scripted = self.scripted.pop_front();
        let failure = match scripted {
            Some(result) => result,
            None => (self.fault)(&batch),
        };
        let result = match failure {
            Some(error) => Err(error),
            None => {
                for op in &batch.ops {
                    let value = match &op.change {
                        Change::Put(payload) => Some(payload.as_str().to_owned()),
                        Change::Delete => None,
                    };
                    let enqueued = self.changes.get(&op.serial).map(|(k, c)| (k, c));
                    assert_eq!(enqueued, Some((&op.key, &op.change)), "serial {}", op.serial);
                    if let Some(old) = self.store.get(&op.key) {
                        assert!(
                            old.serial < op.serial,
                            "{} written with serial {} after serial {}",
                            op.key,
                            op.serial,
                            old.serial
                        );
                        assert!(old.hlc < op.hlc, "{}: stamp {} after {}", op.key, op.hlc, old.hlc);
                    }
                    let stored = Stored { value, serial: op.serial, hlc: op.hlc.clone() };
                    self.store.insert(op.key.clone(), stored);
                }
                Ok(())
            }
        };
        let log = self.writes.iter_mut().rev().find(|w| w.batch.id == batch.id);
        log.expect("logged").result = Some(result.clone());
        assert!(self.engine.write_finished(self.now, batch.id, result));
    }

    /// Handles every action the engine has, checking the write invariants.
    pub(crate) fn drain(&mut self) {
        let mut metrics_changed_this_drain = 0;
        while let Some(action) = self.engine.poll_action() {
            assert_eq!(metrics_changed_this_drain, 0, "MetricsChanged must come last");
            match action {
                Action::Write(batch) => {
                    assert!(self.pending_write.is_none(), "two write batches in flight");
                    let limit = self.engine.collection_config(&batch.collection).batch_size;
                    assert!(!batch.ops.is_empty() && batch.ops.len() <= limit, "batch size");
                    assert!(
                        batch.ops.iter().all(|op| op.key.collection == batch.collection),
                        "a batch mixes collections"
                    );
                    for op in &batch.ops {
                        let expected = format!("{}-{}", self.engine.node(), op.serial);
                        assert_eq!(op.op_id.as_str(), expected, "op ids follow the serial");
                        assert_eq!(op.hlc.node, self.engine.node(), "stamped by this engine");
                    }
                    self.writes.push(WriteLog { at: self.now, batch: batch.clone(), result: None });
                    match self.write_latency {
                        Some(latency) if latency.is_zero() => self.complete(batch),
                        Some(latency) => self.pending_write = Some((self.now + latency, batch)),
                        None => self.pending_write = Some((Time::from_micros(u64::MAX), batch)),
                    }
                }
                Action::StartSync { id, reason } => {
                    assert!(self.running_sync.is_none(), "two syncs running");
                    self.running_sync = Some(id);
                    self.syncs.push((self.now, id, reason));
                }
                Action::FlushCompleted { id, result } => {
                    self.check_flush(id, &result);
                    self.flushes.push((self.now, id, result));
                }
                Action::MetricsChanged => {
                    metrics_changed_this_drain += 1;
                    self.metrics_changed += 1;
                }
            }
        }
    }

    /// A completed flush found durable every key's latest change at the flush call, except
    /// the keys it reports as failed.
    fn check_flush(&mut self, id: FlushId, result: &Result<(), FlushError>) {
        let expected = self.flush_expectations.remove(&id).expect("each flush completes once");
        let failed: Vec<&ItemKey> = match result {
            Ok(()) => Vec::new(),
            Err(error) => error.failed.iter().map(|f| &f.key).collect(),
        };
        for (key, serial) in expected {
            if failed.contains(&&key) {
                continue;
            }
            let durable = self.store.get(&key).map_or(0, |s| s.serial);
            assert!(durable >= serial, "{id}: {key} durable at {durable}, needed {serial}");
        }
    }

    /// Flushes not completed yet.
    pub(crate) fn open_flushes(&self) -> usize {
        self.flush_expectations.len()
    }

    /// The batches written so far, as (time, ids, ok).
    pub(crate) fn write_times(&self) -> Vec<(Time, Vec<String>)> {
        self.writes.iter().map(|w| (w.at, w.ids())).collect()
    }

    /// The stored value of `key` (`None` if absent or deleted).
    pub(crate) fn value(&self, key: &ItemKey) -> Option<&str> {
        self.store.get(key).and_then(|s| s.value.as_deref())
    }

    pub(crate) fn flush_result(
        &self,
        id: FlushId,
    ) -> Option<&(Time, FlushId, Result<(), FlushError>)> {
        self.flushes.iter().find(|(_, f, _)| *f == id)
    }

    pub(crate) fn sync_reasons(&self) -> Vec<(Time, SyncReason)> {
        self.syncs.iter().map(|(t, _, r)| (*t, *r)).collect()
    }
}

/// Ids written by the logged batch, for comparisons.
pub(crate) fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Default config with auto-sync off and exact (jitter-free) retry delays.
pub(crate) fn quiet_config() -> PersistConfig {
    let mut config = PersistConfig::default();
    config.auto_sync.enabled = false;
    config.write_retry.jitter = 0.0;
    config.sync_retry.jitter = 0.0;
    config
}
