//! The local-write half of the engine: emitting batches and handling their results.

use super::{Engine, InFlightBatch};
use crate::action::{Action, BatchId, WriteBatch, WriteError, WriteErrorKind};
use crate::metrics::OperationKind;
use crate::time::Time;

impl Engine {
    /// Emits the next due batch, unless paused or a batch is in flight (one at a time keeps
    /// the writes of a key in order).
    pub(super) fn start_next_write(&mut self, now: Time) {
        if self.paused || self.in_flight.is_some() {
            return;
        }
        let flushes = &self.flushes;
        let taken = self
            .queue
            .take_batch(now, &self.config, flushes.is_active(), |key| flushes.is_forced(key));
        let Some((collection, ops)) = taken else {
            return;
        };
        let id = BatchId(self.next_batch);
        self.next_batch += 1;
        let sync_to_remote = self.config.collection(&collection).sync_to_remote;
        let batch = WriteBatch {
            id,
            collection,
            ops: ops.iter().map(|op| self.queued_op(op, sync_to_remote)).collect(),
        };
        self.in_flight = Some(InFlightBatch {
            id,
            bytes: batch.bytes(),
            remote_ops: if sync_to_remote { ops.len() } else { 0 },
            ops,
            started: now,
        });
        self.actions.push_back(Action::Write(batch));
    }

    /// The runtime finished writing batch `id`. Returns `false` (and changes nothing) if `id`
    /// is not the batch in flight, e.g. a duplicate answer.
    ///
    /// On failure the ops go back to the queue at their old places:
    /// - transient and quota errors: retried after the write retry policy's backoff;
    /// - a permanent error on several ops: each is retried alone, to find the bad one;
    /// - a permanent error on one op: the op is parked (see [`Engine::failed_keys`]).
    ///
    /// A failed op whose key got a newer change meanwhile is dropped in favour of the newer.
    pub fn write_finished(
        &mut self,
        now: Time,
        id: BatchId,
        result: Result<(), WriteError>,
    ) -> bool {
        let Some(batch) = self.in_flight.take_if(|batch| batch.id == id) else {
            return false;
        };
        let op_count = batch.ops.len();
        match result {
            Ok(()) => {
                for op in &batch.ops {
                    self.flushes.written(&op.key, op.serial);
                }
                self.record(
                    OperationKind::LocalWrite,
                    now,
                    batch.started,
                    op_count,
                    batch.bytes,
                    None,
                );
                let start = self.sync.local_write(now, batch.remote_ops);
                self.emit_sync(start);
            }
            Err(error) => {
                if error.kind == WriteErrorKind::QuotaExceeded {
                    self.metrics.add_quota_error();
                }
                let message = Some(error.to_string());
                self.record(
                    OperationKind::LocalWrite,
                    now,
                    batch.started,
                    op_count,
                    batch.bytes,
                    message,
                );
                self.requeue_failed(now, batch.ops, &error);
            }
        }
        self.drive(now);
        true
    }

    fn requeue_failed(&mut self, now: Time, ops: Vec<crate::queue::PendingOp>, error: &WriteError) {
        let isolate = error.kind == WriteErrorKind::Permanent && ops.len() > 1;
        for mut op in ops {
            op.attempt = op.attempt.saturating_add(1);
            op.last_error = Some(error.clone());
            match error.kind {
                WriteErrorKind::Permanent if isolate => {
                    op.isolate = true;
                    op.not_before = None;
                }
                WriteErrorKind::Permanent => {
                    op.parked = true;
                    op.not_before = None;
                }
                WriteErrorKind::Transient | WriteErrorKind::QuotaExceeded => {
                    let delay = self.config.write_retry.backoff(op.attempt, self.rng.next_spread());
                    op.not_before = Some(now + delay);
                }
            }
            let (key, serial) = (op.key.clone(), op.serial);
            let kept = self.queue.requeue(op, &self.config);
            // Ops retried alone right away have not failed yet as far as a flush is concerned;
            // a superseded op is covered by its newer change.
            if kept && !isolate {
                self.flushes.failed(&key, serial, error);
            }
        }
    }
}
