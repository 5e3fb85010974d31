//! What the persistence engine did: totals, durations, recent history, live gauges.
//!
//! Durations are measured on the engine's virtual clock, from the moment the engine emitted an
//! action (a local write, a sync) to the moment the runtime reported its completion.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// How many completed operations [`MetricsSnapshot::history`] keeps.
pub const HISTORY_LEN: usize = 100;

/// What kind of operation an [`OperationRecord`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationKind {
    /// One local write batch (one transaction).
    LocalWrite,
    /// One sync run with the server.
    Sync,
}

/// One completed operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Local write or sync.
    pub kind: OperationKind,
    /// When it completed.
    pub at: Time,
    /// From emitting the action to its completion.
    pub duration: Duration,
    /// Ops written (a write batch), or records pushed plus pulled (a successful sync).
    pub ops: usize,
    /// Payload bytes of a write batch (0 for syncs).
    pub bytes: usize,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, if it failed.
    pub error: Option<String>,
}

/// A picture of the engine's metrics.
///
/// Counters and history start at zero and are cleared by `Engine::reset_metrics`; the gauges
/// (`queue_depth`, `in_flight`) always show the live state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Local write ops completed, successfully or not (a batch of n ops counts n).
    pub total_ops: u64,
    /// Local write ops written successfully.
    pub successful_ops: u64,
    /// Local write ops whose write failed (each failed attempt counts).
    pub failed_ops: u64,
    /// When the last operation (write or sync) completed.
    pub last_op_at: Option<Time>,
    /// Operations (write batches and syncs) completed.
    pub completed_operations: u64,
    /// Mean duration of all operations completed since the last reset.
    pub average_duration: Duration,
    /// 95th percentile (nearest rank) of the durations in `history`.
    pub p95_duration: Duration,
    /// The last [`HISTORY_LEN`] completed operations, oldest first.
    pub history: VecDeque<OperationRecord>,
    /// Ops waiting to be written (one per key).
    pub queue_depth: usize,
    /// Ops in the write batch in flight.
    pub in_flight: usize,
    /// Changes merged into a change of the same key that was still waiting.
    pub coalesced: u64,
    /// Payload bytes written successfully.
    pub bytes_written: u64,
    /// Failed write attempts whose error was [`QuotaExceeded`](crate::WriteErrorKind::QuotaExceeded).
    pub quota_errors: u64,
    /// Syncs that succeeded.
    pub syncs_ok: u64,
    /// Syncs that failed.
    pub syncs_failed: u64,
    /// Conflicts reported by successful syncs.
    pub conflicts: u64,
}

/// Keeps a [`MetricsSnapshot`] up to date and remembers whether it changed.
#[derive(Debug, Default)]
pub(crate) struct MetricsRecorder {
    snapshot: MetricsSnapshot,
    total_duration: Duration,
    changed: bool,
}

impl MetricsRecorder {
    pub(crate) fn snapshot(&self) -> &MetricsSnapshot {
        &self.snapshot
    }

    /// Records a completed operation; write op counts and bytes come from `record`.
    pub(crate) fn record(&mut self, record: OperationRecord) {
        let s = &mut self.snapshot;
        match record.kind {
            OperationKind::LocalWrite => {
                let ops = record.ops as u64;
                s.total_ops += ops;
                if record.ok {
                    s.successful_ops += ops;
                    s.bytes_written += record.bytes as u64;
                } else {
                    s.failed_ops += ops;
                }
            }
            OperationKind::Sync if record.ok => s.syncs_ok += 1,
            OperationKind::Sync => s.syncs_failed += 1,
        }
        s.last_op_at = Some(record.at);
        s.completed_operations += 1;
        self.total_duration += record.duration;
        let mean = self.total_duration.as_nanos() / u128::from(s.completed_operations);
        s.average_duration = Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX));
        if s.history.len() == HISTORY_LEN {
            s.history.pop_front();
        }
        s.history.push_back(record);
        s.p95_duration = p95(&s.history);
        self.changed = true;
    }

    pub(crate) fn add_coalesced(&mut self) {
        self.snapshot.coalesced += 1;
        self.changed = true;
    }

    pub(crate) fn add_quota_error(&mut self) {
        self.snapshot.quota_errors += 1;
        self.changed = true;
    }

    pub(crate) fn add_conflicts(&mut self, conflicts: usize) {
        self.snapshot.conflicts += conflicts as u64;
        self.changed = true;
    }

    /// Updates the live gauges.
    pub(crate) fn set_gauges(&mut self, queue_depth: usize, in_flight: usize) {
        let s = &mut self.snapshot;
        if (s.queue_depth, s.in_flight) != (queue_depth, in_flight) {
            s.queue_depth = queue_depth;
            s.in_flight = in_flight;
            self.changed = true;
        }
    }

    /// Marks a change visible outside the snapshot (auto-sync status, failed keys).
    pub(crate) fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Whether anything changed since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Clears counters and history; keeps the gauges.
    pub(crate) fn reset(&mut self) {
        let gauges = (self.snapshot.queue_depth, self.snapshot.in_flight);
        self.snapshot = MetricsSnapshot::default();
        (self.snapshot.queue_depth, self.snapshot.in_flight) = gauges;
        self.total_duration = Duration::ZERO;
        self.changed = true;
    }
}

/// Nearest-rank 95th percentile of the durations in `history`.
fn p95(history: &VecDeque<OperationRecord>) -> Duration {
    let mut durations: Vec<Duration> = history.iter().map(|r| r.duration).collect();
    if durations.is_empty() {
        return Duration::ZERO;
    }
    durations.sort_unstable();
    let rank = (durations.len() * 95).div_ceil(100);
    durations[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(at_ms: u64, duration_ms: u64, ops: usize, ok: bool) -> OperationRecord {
        OperationRecord {
            kind: OperationKind::LocalWrite,
            at: Time::from_millis(at_ms),
            duration: Duration::from_millis(duration_ms),
            ops,
            bytes: ops * 10,
            ok,
            error: (!ok).then(|| "boom".to_owned()),
        }
    }

    #[test]
    fn counts_ops_bytes_and_durations() {
        let mut m = MetricsRecorder::default();
        m.record(write(10, 4, 3, true));
        m.record(write(20, 8, 2, false));
        let s = m.snapshot();
        assert_eq!((s.total_ops, s.successful_ops, s.failed_ops), (5, 3, 2));
        assert_eq!(s.bytes_written, 30);
        assert_eq!(s.average_duration, Duration::from_millis(6));
        assert_eq!(s.p95_duration, Duration::from_millis(8));
        assert_eq!(s.last_op_at, Some(Time::from_millis(20)));
        assert!(m.take_changed());
        assert!(!m.take_changed());
    }

    #[test]
    fn history_keeps_the_last_hundred_and_p95_uses_it() {
        let mut m = MetricsRecorder::default();
        for i in 1..=150 {
            m.record(write(i, i, 1, true));
        }
        let s = m.snapshot();
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history.front().unwrap().at, Time::from_millis(51));
        // Durations 51..=150 ms: the 95th of 100 is 145 ms.
        assert_eq!(s.p95_duration, Duration::from_millis(145));
        // The average covers all 150 operations: (1 + 150) / 2 = 75.5 ms.
        assert_eq!(s.average_duration, Duration::from_micros(75_500));
    }

    #[test]
    fn reset_keeps_gauges() {
        let mut m = MetricsRecorder::default();
        m.record(write(1, 1, 1, true));
        m.set_gauges(4, 2);
        m.add_coalesced();
        m.reset();
        let s = m.snapshot();
        assert_eq!(s.total_ops, 0);
        assert_eq!(s.coalesced, 0);
        assert!(s.history.is_empty());
        assert_eq!((s.queue_depth, s.in_flight), (4, 2));
        m.record(write(2, 6, 1, true));
        assert_eq!(m.snapshot().average_duration, Duration::from_millis(6));
    }
}
