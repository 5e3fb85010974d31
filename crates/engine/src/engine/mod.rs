//! [`Engine`]: the state machine. This file holds its state, the events every part shares
//! (enqueue, tick, flush, configuration) and the drive loop; the local-write half is in
//! [`writes`](self::writes), the sync half in [`remote`](self::remote).

mod remote;
mod writes;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use persist_protocol::{Hlc, OpId};

use crate::action::{Action, BatchId, EnqueueOutcome, FailedKey, FlushId, QueuedOp, WriteBatch};
use crate::config::{
    AutoSyncConfig, AutoSyncConfigPatch, CollectionConfig, CollectionConfigPatch, ConfigError,
    PersistConfig,
};
use crate::flush::FlushTracker;
use crate::item::{Change, ItemKey};
use crate::metrics::{MetricsRecorder, MetricsSnapshot, OperationKind, OperationRecord};
use crate::queue::{Enqueued, PendingOp, WriteQueue};
use crate::rng::SplitMix64;
use crate::sync::{SyncScheduler, SyncStart};
use crate::time::Time;

/// The node name of an engine that was not given one with [`Engine::with_node`].
const DEFAULT_NODE: &str = "local";

/// The write batch being written by the runtime.
#[derive(Debug)]
struct InFlightBatch {
    id: BatchId,
    ops: Vec<PendingOp>,
    started: Time,
    bytes: usize,
    /// Ops that count towards the remote sync once written.
    remote_ops: usize,
}

/// The persistence state machine. See the [crate docs](crate).
#[derive(Debug)]
pub struct Engine {
    config: PersistConfig,
    rng: SplitMix64,
    queue: WriteQueue,
    in_flight: Option<InFlightBatch>,
    paused: bool,
    flushes: FlushTracker,
    sync: SyncScheduler,
    metrics: MetricsRecorder,
    actions: VecDeque<Action>,
    next_serial: u64,
    next_batch: u64,
    next_flush: u64,
    /// Names this client in op ids and HLC stamps.
    node: Arc<str>,
    /// Wall-clock epoch milliseconds of [`Time::ZERO`]: HLC stamps need wall time, and the engine
    /// reads no clock.
    wall_origin_ms: u64,
    clock: Hlc,
}

impl Engine {
    /// An engine with `config`; `rng_seed` seeds the retry jitter (one seed, one replay).
    ///
    /// # Errors
    /// The errors of [`PersistConfig::validate`].
    pub fn new(config: PersistConfig, rng_seed: u64) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            sync: SyncScheduler::new(config.auto_sync.clone(), config.sync_retry.clone()),
            config,
            rng: SplitMix64::new(rng_seed),
            queue: WriteQueue::default(),
            in_flight: None,
            paused: false,
            flushes: FlushTracker::default(),
            metrics: MetricsRecorder::default(),
            actions: VecDeque::new(),
            next_serial: 1,
            next_batch: 1,
            next_flush: 1,
            node: Arc::from(DEFAULT_NODE),
            wall_origin_ms: 0,
            clock: Hlc::zero(DEFAULT_NODE),
        })
    }

    /// This engine, naming itself `node` and with [`Time::ZERO`] at `wall_origin_ms` (epoch
    /// milliseconds). `node` must be unique among the clients of one namespace (the browser
    /// runtime draws a random one per tab session): op ids are `<node>-<serial>` and HLC stamps
    /// break ties on it. Call before the first change.
    pub fn with_node(mut self, node: impl Into<String>, wall_origin_ms: u64) -> Self {
        let node: String = node.into();
        self.clock = Hlc { node: node.clone(), ..self.clock };
        self.node = Arc::from(node);
        self.wall_origin_ms = wall_origin_ms;
        self
    }

    /// The node this engine names itself in op ids and HLC stamps.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A stamp seen elsewhere (a record pulled from the server, another tab's change): local
    /// changes made after `now` are stamped after it, whatever this device's wall clock says.
    pub fn observe_hlc(&mut self, now: Time, remote: &Hlc) {
        let wall = self.wall_ms(now);
        self.clock.observe(remote, wall);
    }

    /// The newest stamp this engine issued or observed.
    pub fn hlc(&self) -> &Hlc {
        &self.clock
    }

    fn wall_ms(&self, now: Time) -> u64 {
        self.wall_origin_ms.saturating_add(now.as_micros() / 1_000)
    }

    /// The op the runtime writes for `op`: its op id is derived from its serial, so a retried
    /// write of the same change carries the same id.
    fn queued_op(&self, op: &PendingOp, sync_to_remote: bool) -> QueuedOp {
        QueuedOp {
            key: op.key.clone(),
            change: op.change.clone(),
            serial: op.serial,
            op_id: OpId::new(format!("{}-{}", self.node, op.serial)),
            hlc: Hlc { wall_ms: op.stamp.0, counter: op.stamp.1, node: self.node.to_string() },
            sync_to_remote,
            attempt: op.attempt,
        }
    }

    /// Records a change of `key`. Changes of a disabled collection are ignored.
    pub fn enqueue(&mut self, now: Time, key: ItemKey, change: Change) -> EnqueueOutcome {
        if !self.config.collection(&key.collection).enabled {
            return EnqueueOutcome::Ignored;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.clock.advance(self.wall_ms(now));
        let stamp = (self.clock.wall_ms, self.clock.counter);
        let outcome = match self.queue.enqueue(now, key, change, (serial, stamp), &self.config) {
            Enqueued::New => EnqueueOutcome::Queued,
            Enqueued::Coalesced => {
                self.metrics.add_coalesced();
                EnqueueOutcome::Coalesced
            }
        };
        self.drive(now);
        outcome
    }

    /// Time passed: starts the writes and syncs that are due at `now`.
    pub fn tick(&mut self, now: Time) {
        self.drive(now);
    }

    /// The next thing for the runtime to do. [`Action::MetricsChanged`] comes last, at most
    /// once per drain.
    pub fn poll_action(&mut self) -> Option<Action> {
        match self.actions.pop_front() {
            Some(action) => Some(action),
            None => self.metrics.take_changed().then_some(Action::MetricsChanged),
        }
    }

    /// When the runtime must call [`tick`](Self::tick) next, if anything is scheduled.
    pub fn poll_timeout(&self) -> Option<Time> {
        let write =
            if self.paused || self.in_flight.is_some() { None } else { self.queue.next_due() };
        [write, self.sync.next_wakeup()].into_iter().flatten().min()
    }

    /// Makes every waiting op due now, ignoring debounce, backoff and parking. The returned id
    /// comes back in an [`Action::FlushCompleted`] once every change enqueued before this call
    /// (including those in flight) is durable, or with the keys that failed meanwhile.
    pub fn flush(&mut self, now: Time) -> FlushId {
        let id = FlushId(self.next_flush);
        self.next_flush += 1;
        let in_flight = self.in_flight.iter().flat_map(|batch| &batch.ops);
        // The waiting op of a key is newer than its op in flight, so it comes last and wins.
        let waiting: BTreeMap<ItemKey, u64> =
            in_flight.chain(self.queue.iter()).map(|op| (op.key.clone(), op.serial)).collect();
        self.flushes.begin(id, waiting);
        self.drive(now);
        id
    }

    /// Stops emitting writes (ops keep queueing and coalescing), e.g. while hydrating or while
    /// the database reopens. A batch already in flight may still finish.
    pub fn pause_writes(&mut self) {
        self.paused = true;
    }

    /// Emits writes again, starting with those that became due meanwhile.
    pub fn resume_writes(&mut self, now: Time) {
        self.paused = false;
        self.drive(now);
    }

    /// Whether writes are paused.
    pub fn writes_paused(&self) -> bool {
        self.paused
    }

    /// A copy of every op waiting to be written (not the batch in flight), grouped in one batch
    /// per collection, in queue order. For the runtime's last-chance write when the page goes
    /// away: it writes them all at once without waiting for the one-batch-at-a-time schedule. The
    /// ops stay queued (writing the same value again later is harmless), so nothing here changes
    /// the engine's state.
    pub fn snapshot_waiting(&self) -> Vec<WriteBatch> {
        let mut batches: Vec<WriteBatch> = Vec::new();
        for op in self.queue.iter() {
            let collection = &op.key.collection;
            let queued = self.queued_op(op, self.config.collection(collection).sync_to_remote);
            match batches.iter_mut().find(|batch| &batch.collection == collection) {
                Some(batch) => batch.ops.push(queued),
                None => batches.push(WriteBatch {
                    id: BatchId(u64::MAX),
                    collection: collection.clone(),
                    ops: vec![queued],
                }),
            }
        }
        batches
    }

    /// Ops waiting to be written (one per key), not counting the batch in flight.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// Whether `key` has a change that is not durable yet (waiting or in flight): a value
    /// read from storage or another tab for it is older than the app's.
    pub fn is_pending(&self, key: &ItemKey) -> bool {
        self.queue.contains(key)
            || self
                .in_flight
                .as_ref()
                .is_some_and(|batch| batch.ops.iter().any(|op| &op.key == key))
    }

    /// Number of parked ops (their write failed permanently), in O(1).
    pub fn failed_count(&self) -> usize {
        self.queue.parked_len()
    }

    /// Ops in the write batch in flight.
    pub fn in_flight_ops(&self) -> usize {
        self.in_flight.as_ref().map_or(0, |batch| batch.ops.len())
    }

    /// Keys parked after a permanent write error, with their errors, in queue order. They are
    /// retried by the next flush or replaced by the key's next change.
    pub fn failed_keys(&self) -> Vec<FailedKey> {
        if self.queue.parked_len() == 0 {
            return Vec::new();
        }
        self.queue
            .iter()
            .filter(|op| op.parked)
            .filter_map(|op| {
                let error = op.last_error.clone()?;
                Some(FailedKey { key: op.key.clone(), error })
            })
            .collect()
    }

    /// The whole current configuration.
    pub fn config(&self) -> &PersistConfig {
        &self.config
    }

    /// The config that applies to collection `name`.
    pub fn collection_config(&self, name: &str) -> &CollectionConfig {
        self.config.collection(name)
    }

    /// Changes the config of collection `name` (starting from the default collection's if it has
    /// none). New debounce and max wait apply to ops already waiting.
    ///
    /// # Errors
    /// The errors of [`CollectionConfig::validate`]; nothing changes then.
    pub fn configure_collection(
        &mut self,
        now: Time,
        name: &str,
        patch: &CollectionConfigPatch,
    ) -> Result<(), ConfigError> {
        let patched = patch.apply(self.config.collection(name), &format!("collection {name:?}"))?;
        self.config.collections.insert(name.to_owned(), patched);
        self.queue.reindex(&self.config);
        self.metrics.mark_changed();
        self.drive(now);
        Ok(())
    }

    /// Persists the changes of collection `name` again.
    pub fn enable_collection(&mut self, now: Time, name: &str) {
        self.set_collection_enabled(now, name, true);
    }

    /// Ignores new changes of collection `name`; those already queued are still written.
    pub fn disable_collection(&mut self, now: Time, name: &str) {
        self.set_collection_enabled(now, name, false);
    }

    fn set_collection_enabled(&mut self, now: Time, name: &str, enabled: bool) {
        let changed = CollectionConfig { enabled, ..self.config.collection(name).clone() };
        self.config.collections.insert(name.to_owned(), changed);
        self.metrics.mark_changed();
        self.drive(now);
    }

    /// Changes the auto-sync config; a new interval takes effect at once.
    ///
    /// # Errors
    /// The errors of [`AutoSyncConfig::validate`]; nothing changes then.
    pub fn configure_auto_sync(
        &mut self,
        now: Time,
        patch: &AutoSyncConfigPatch,
    ) -> Result<(), ConfigError> {
        let start = self.sync.configure(now, patch)?;
        self.config.auto_sync = self.sync.config().clone();
        self.emit_sync(start);
        self.metrics.mark_changed();
        self.drive(now);
        Ok(())
    }

    /// The auto-sync config in force.
    pub fn auto_sync_config(&self) -> &AutoSyncConfig {
        self.sync.config()
    }

    /// Metrics so far (clone them to hand them to subscribers outside any borrow).
    pub fn metrics(&self) -> &MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Clears counters and history; live gauges stay.
    pub fn reset_metrics(&mut self) {
        self.metrics.reset();
    }

    /// Starts whatever is due: the next write batch, then timed syncs; completes flushes.
    fn drive(&mut self, now: Time) {
        self.start_next_write(now);
        let start = self.sync.poll(now);
        self.emit_sync(start);
        self.complete_flushes();
        self.metrics.set_gauges(self.queue.len(), self.in_flight_ops());
    }

    fn emit_sync(&mut self, start: Option<SyncStart>) {
        if let Some(SyncStart { id, reason }) = start {
            self.actions.push_back(Action::StartSync { id, reason });
            self.metrics.mark_changed();
        }
    }

    fn complete_flushes(&mut self) {
        for (id, result) in self.flushes.take_completed() {
            self.actions.push_back(Action::FlushCompleted { id, result });
        }
    }

    fn record(
        &mut self,
        kind: OperationKind,
        now: Time,
        started: Time,
        ops: usize,
        bytes: usize,
        error: Option<String>,
    ) {
        self.metrics.record(OperationRecord {
            kind,
            at: now,
            duration: now.saturating_duration_since(started),
            ops,
            bytes,
            ok: error.is_none(),
            error,
        });
    }
}
