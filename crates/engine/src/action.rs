//! What the engine asks the runtime to do, and what the runtime answers.

use std::fmt;

use persist_protocol::{Hlc, OpId};
use serde::{Deserialize, Serialize};

use crate::item::{Change, ItemKey};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}#{}", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// Identifies one [`WriteBatch`]; unique per engine.
    BatchId
);
id_type!(
    /// Identifies one flush request; unique per engine.
    FlushId
);
id_type!(
    /// Identifies one sync run; unique per engine.
    SyncId
);

/// Something the runtime must do, drained with `Engine::poll_action`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these ops in one local transaction, then call `Engine::write_finished`.
    Write(WriteBatch),
    /// Run a sync with the server, then call `Engine::sync_finished` with this id.
    StartSync {
        /// The run's id.
        id: SyncId,
        /// Why it runs.
        reason: SyncReason,
    },
    /// A flush requested with `Engine::flush` has completed.
    FlushCompleted {
        /// The flush's id.
        id: FlushId,
        /// `Ok` when everything enqueued before the flush is durable.
        result: Result<(), FlushError>,
    },
    /// Metrics or status changed: read `Engine::metrics` / `Engine::auto_sync_status` and tell
    /// the subscribers. Emitted at most once per drain, after the other actions.
    MetricsChanged,
}

/// Ops of one collection to write in one local transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    /// Answer with this id.
    pub id: BatchId,
    /// The collection (object store) all ops belong to.
    pub collection: std::sync::Arc<str>,
    /// The ops, in queue order; at most one per key.
    pub ops: Vec<QueuedOp>,
}

impl WriteBatch {
    /// Payload bytes of the batch.
    pub fn bytes(&self) -> usize {
        self.ops.iter().map(|op| op.change.bytes()).sum()
    }
}

/// One item change to write.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedOp {
    /// The item.
    pub key: ItemKey,
    /// Its latest change.
    pub change: Change,
    /// Serial of the change (engine-wide, increasing with every enqueue). A later write of the
    /// same key always carries a higher serial.
    pub serial: u64,
    /// The id the change is pushed with: `<node>-<serial>`, the same for every write attempt of
    /// this change, different for every change.
    pub op_id: OpId,
    /// When the change was made, on the engine's hybrid logical clock (last-writer-wins compares
    /// these, never wall clocks).
    pub hlc: Hlc,
    /// Whether this write should also be pushed to the server (record it in the outbox).
    pub sync_to_remote: bool,
    /// How many earlier write attempts of this op failed (0 on the first try).
    pub attempt: u32,
}

impl QueuedOp {
    /// An op outside any engine, for a store's own tests and tools: first attempt, synced,
    /// op id `local-<serial>`, stamped at wall time 0 with `serial` as the logical counter.
    pub fn new(key: ItemKey, change: Change, serial: u64) -> Self {
        let counter = u32::try_from(serial).unwrap_or(u32::MAX);
        QueuedOp {
            key,
            change,
            serial,
            op_id: OpId::new(format!("local-{serial}")),
            hlc: Hlc { wall_ms: 0, counter, node: "local".to_owned() },
            sync_to_remote: true,
            attempt: 0,
        }
    }
}

/// What `Engine::enqueue` did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new op was queued for the key.
    Queued,
    /// The key already had a waiting op; the new change replaced it and kept its place.
    Coalesced,
    /// The key's collection is disabled; nothing was queued.
    Ignored,
}

/// Why a local write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WriteErrorKind {
    /// May succeed later (transaction aborted, database closing): retried with backoff.
    Transient,
    /// The storage quota is full: retried with backoff, reported separately.
    QuotaExceeded,
    /// Will fail again with the same data (e.g. a value the store cannot clone).
    Permanent,
}

impl fmt::Display for WriteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteErrorKind::Transient => "transient error",
            WriteErrorKind::QuotaExceeded => "quota exceeded",
            WriteErrorKind::Permanent => "permanent error",
        })
    }
}

/// A failed local write, as reported by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WriteError {
    /// How the engine reacts.
    pub kind: WriteErrorKind,
    /// What the store said.
    pub message: String,
}

impl WriteError {
    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        WriteError { kind: WriteErrorKind::Transient, message: message.into() }
    }

    /// A quota error.
    pub fn quota_exceeded(message: impl Into<String>) -> Self {
        WriteError { kind: WriteErrorKind::QuotaExceeded, message: message.into() }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        WriteError { kind: WriteErrorKind::Permanent, message: message.into() }
    }
}

/// A key whose write failed, with the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedKey {
    /// The item.
    pub key: ItemKey,
    /// Its last write error.
    pub error: WriteError,
}

impl fmt::Display for FailedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.key, self.error)
    }
}

/// A flush that could not make everything durable. The failed ops stay queued for retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{} item(s) could not be written: {}", failed.len(), describe(failed))]
pub struct FlushError {
    /// The keys whose writes failed during the flush, ordered by key, with their last error.
    pub failed: Vec<FailedKey>,
}

fn describe(failed: &[FailedKey]) -> String {
    let parts: Vec<String> = failed.iter().map(ToString::to_string).collect();
    parts.join(", ")
}

/// Why a sync starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncReason {
    /// The auto-sync interval elapsed.
    Interval,
    /// A local write added pending changes and `sync_on_change` is on.
    OnChange,
    /// Pending changes reached `max_pending`.
    MaxPending,
    /// `Engine::sync_now` was called.
    Manual,
    /// Retry after a failed sync.
    Retry,
    /// The server became reachable again with changes pending.
    Online,
}

/// What a successful sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// Local changes the server accepted (subtracted from the pending count).
    pub pushed: usize,
    /// Remote changes applied locally.
    pub pulled: usize,
    /// Conflicts found.
    pub conflicts: usize,
}

/// A failed sync, as reported by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("sync failed: {message}")]
pub struct SyncError {
    /// What went wrong.
    pub message: String,
    /// Whether retrying soon may help (network error, 5xx, 429); if not, the next sync waits
    /// for the interval.
    pub transient: bool,
    /// How long the server asked to wait (`Retry-After`): no automatic sync starts before.
    #[serde(default, with = "crate::time::serde_option_millis", rename = "retry_after_ms")]
    pub retry_after: Option<std::time::Duration>,
}

impl SyncError {
    /// A transient sync error.
    pub fn transient(message: impl Into<String>) -> Self {
        SyncError { message: message.into(), transient: true, retry_after: None }
    }

    /// This error, with the wait the server asked for.
    pub fn with_retry_after(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// A sync error that retrying soon will not fix (e.g. bad credentials).
    pub fn permanent(message: impl Into<String>) -> Self {
        SyncError { message: message.into(), transient: false, retry_after: None }
    }
}
