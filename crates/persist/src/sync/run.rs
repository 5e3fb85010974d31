//! [`run`]: one sync.
//!
//! Push: the outbox drains oldest change first, in batches; each answer is applied to the
//! device (entries leave the outbox, known revisions move) in one local transaction, after the
//! server answered and never before. A request the server refuses as a whole (a 4xx that is not
//! about the token, e.g. a body too large) is split in halves until the op that cannot pass is
//! alone; that op goes to the dead letters, the others go through.
//!
//! Pull: pages from the stored checkpoint, each applied with its new checkpoint in one local
//! transaction. A server whose head is behind the checkpoint was reset or restored from a backup:
//! the pull starts again from 0 (records already known are skipped, nothing local is deleted).

use std::collections::HashMap;

use persist_protocol::{
    ErrorCode, PushOp, PushOutcome, PushRequest, Record, Revision, DEFAULT_PULL_LIMIT, MAX_PUSH_OPS,
};
use serde::{Deserialize, Serialize};

use crate::local::{
    LocalStore, OutboxEntry, PendingPush, PushAnswer, StoreError, SyncApplied, SyncBatch, SyncRules,
};
use crate::remote::{Remote, RemoteError, RemoteErrorKind};

/// What a running sync is doing, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncProgress {
    /// No sync is running.
    #[default]
    Idle,
    /// Pushing: changes answered so far, of the changes pending at the start.
    Pushing {
        /// Changes the server answered.
        done: usize,
        /// Changes pending when the sync started (more may be added meanwhile).
        total: usize,
    },
    /// Pulling: pages and records read so far.
    Pulling {
        /// Pages applied.
        pages: usize,
        /// Records read.
        records: usize,
    },
}

/// How a sync runs.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// Most ops per push.
    pub(crate) push_batch: usize,
    /// Records per pulled page.
    pub(crate) pull_page: u32,
    /// Pull everything again from revision 0 (after pushing).
    pub(crate) full_pull: bool,
    /// Conflict strategies.
    pub(crate) rules: SyncRules,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            push_batch: 100,
            pull_page: DEFAULT_PULL_LIMIT,
            full_pull: false,
            rules: SyncRules::default(),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SyncReport {
    /// Ops sent (retries of a split request counted once).
    pub(crate) pushed: usize,
    /// Records read from the server.
    pub(crate) pulled: usize,
    /// Pages read.
    pub(crate) pages: usize,
    /// What applying the answers did locally.
    pub(crate) applied: SyncApplied,
    /// The newest server revision seen.
    pub(crate) head: Revision,
    /// The revision each item acknowledged by this run's pushes got: when the pull brings these
    /// records back (our own writes), they are left out before touching the store.
    pub(crate) acknowledged: HashMap<(String, String), Revision>,
    /// The newest stamp of the server versions seen (pulled, or in a conflict answer): the
    /// runtime's clock observes it, so changes made after are stamped after it, and
    /// last-writer-wins never rests on this device's wall clock alone.
    pub(crate) newest_stamp: Option<persist_protocol::Hlc>,
}

impl SyncReport {
    fn saw(&mut self, stamp: Option<&persist_protocol::Hlc>) {
        if let Some(stamp) = stamp {
            if self.newest_stamp.as_ref().is_none_or(|newest| stamp > newest) {
                self.newest_stamp = Some(stamp.clone());
            }
        }
    }
}

/// Why a sync stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SyncFailure {
    /// The remote failed.
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The local store failed.
    #[error("local storage: {0}")]
    Store(#[from] StoreError),
}

/// Runs one sync: push everything pending, then pull. What was applied before a failure stays
/// applied (each step is its own transaction), and is in the report either way; the next sync
/// goes on from there.
pub(crate) async fn run(
    store: &dyn LocalStore,
    remote: &dyn Remote,
    options: &RunOptions,
    progress: &dyn Fn(SyncProgress, &SyncApplied),
) -> (SyncReport, Result<(), SyncFailure>) {
    let mut report = SyncReport::default();
    let mut result = push(store, remote, options, progress, &mut report).await;
    if result.is_ok() {
        result = pull(store, remote, options, progress, &mut report).await;
    }
    progress(SyncProgress::Idle, &report.applied);
    (report, result)
}

async fn push(
    store: &dyn LocalStore,
    remote: &dyn Remote,
    options: &RunOptions,
    progress: &dyn Fn(SyncProgress, &SyncApplied),
    report: &mut SyncReport,
) -> Result<(), SyncFailure> {
    let limit = options.push_batch.clamp(1, remote.max_push_ops().min(MAX_PUSH_OPS));
    let total = store.outbox_len().await?;
    // Client-wins re-pushes a change after a conflict; another device may keep winning the race.
    // Bound the rounds so one sync ends; the next one goes on.
    let max_rounds = 2 * total.div_ceil(limit) + 4;
    let mut done = 0;
    for _ in 0..max_rounds {
        let pending = store.pending_pushes(limit).await?;
        if pending.is_empty() {
            break;
        }
        let mut sent = Vec::with_capacity(pending.len());
        let mut ops = Vec::with_capacity(pending.len());
        let mut unreadable = Vec::new();
        for item in pending {
            match push_op(&item.entry, item.value.as_deref()) {
                Ok(op) => {
                    ops.push(op);
                    sent.push(item);
                }
                Err(message) => unreadable.push(PushAnswer {
                    entry: item.entry,
                    value: item.value,
                    outcome: rejected(message),
                }),
            }
        }
        let (mut answers, head) = send(remote, &sent, ops).await?;
        report.head = report.head.max(head);
        for answer in &answers {
            match &answer.outcome {
                PushOutcome::Applied { revision } => {
                    let key = (answer.entry.collection.clone(), answer.entry.id.clone());
                    report.acknowledged.insert(key, *revision);
                }
                PushOutcome::Conflict { current: Some(current) } => {
                    report.saw(current.hlc.as_ref());
                }
                _ => {}
            }
        }
        answers.extend(unreadable);
        report.pushed += answers.len();
        let applied = store.apply_sync(SyncBatch::Pushed(&answers), &options.rules).await?;
        report.applied.merge(applied);
        done += answers.len();
        progress(SyncProgress::Pushing { done, total: total.max(done) }, &report.applied);
    }
    Ok(())
}

/// Sends `ops` (made from `entries`, same order) and pairs each entry with its answer. A request
/// refused as a whole is split; a single op refused that way is answered as rejected.
async fn send(
    remote: &dyn Remote,
    entries: &[PendingPush],
    ops: Vec<PushOp>,
) -> Result<(Vec<PushAnswer>, Revision), SyncFailure> {
    let mut answers = Vec::with_capacity(ops.len());
    let mut head = 0;
    // Pending slices, as (start, end) into entries/ops, processed front first.
    let mut todo = vec![(0, ops.len())];
    while let Some((start, end)) = todo.pop() {
        if start == end {
            continue;
        }
        let request = PushRequest { ops: ops[start..end].to_vec() };
        match remote.push(&request).await {
            Ok(response) => {
                if response.results.len() != request.ops.len()
                    || response.results.iter().zip(&request.ops).any(|(r, op)| r.op_id != op.op_id)
                {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Protocol,
                        "the push answer does not match the ops sent",
                    )
                    .into());
                }
                head = head.max(response.revision);
                let pairs = entries[start..end].iter().cloned().zip(response.results);
                answers.extend(pairs.map(|(sent, result)| PushAnswer {
                    entry: sent.entry,
                    value: sent.value,
                    outcome: result.outcome,
                }));
            }
            Err(error) if matches!(error.kind, RemoteErrorKind::Rejected { .. }) => {
                if end - start == 1 {
                    let sent = entries[start].clone();
                    answers.push(PushAnswer {
                        entry: sent.entry,
                        value: sent.value,
                        outcome: rejected(error.message),
                    });
                } else {
                    let middle = start + (end - start) / 2;
                    todo.push((middle, end));
                    todo.push((start, middle));
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok((answers, head))
}

fn rejected(message: String) -> PushOutcome {
    PushOutcome::Rejected { code: ErrorCode::InvalidInput, message }
}

/// The op pushing `entry` with the item's value.
fn push_op(entry: &OutboxEntry, value: Option<&str>) -> Result<PushOp, String> {
    let mut op = match (entry.delete, value) {
        (false, Some(json)) => {
            let value = serde_json::from_str(json)
                .map_err(|e| format!("the stored value is not JSON: {e}"))?;
            PushOp::put(
                entry.op_id.clone(),
                &entry.collection,
                &entry.id,
                value,
                entry.base_revision,
            )
        }
        // A delete, or an item no longer stored under a put entry (removed by hand): delete.
        _ => PushOp::delete(entry.op_id.clone(), &entry.collection, &entry.id, entry.base_revision),
    };
    op.hlc = Some(entry.hlc.clone());
    Ok(op)
}

async fn pull(
    store: &dyn LocalStore,
    remote: &dyn Remote,
    options: &RunOptions,
    progress: &dyn Fn(SyncProgress, &SyncApplied),
    report: &mut SyncReport,
) -> Result<(), SyncFailure> {
    if options.full_pull {
        store.reset_checkpoint().await?;
    }
    let mut since: Revision = store.checkpoint().await?;
    let mut restarted = false;
    loop {
        let page = remote.pull(since, options.pull_page).await?;
        if page.head < since && !restarted {
            // The server is behind what this device saw: reset or restored. Read it all again.
            restarted = true;
            since = 0;
            store.reset_checkpoint().await?;
            continue;
        }
        report.head = report.head.max(page.head);
        for record in &page.records {
            report.saw(record.hlc.as_ref());
        }
        let count = page.records.len();
        // Our own writes coming back: already applied, with this very revision.
        let records: Vec<Record> = page
            .records
            .into_iter()
            .filter(|r| {
                let key = (r.collection.clone(), r.id.clone());
                report.acknowledged.get(&key).is_none_or(|acked| *acked < r.revision)
            })
            .collect();
        let batch = SyncBatch::Pulled { records: &records, checkpoint: page.next_since };
        let applied = store.apply_sync(batch, &options.rules).await?;
        report.applied.merge(applied);
        report.pulled += count;
        report.pages += 1;
        progress(
            SyncProgress::Pulling { pages: report.pages, records: report.pulled },
            &report.applied,
        );
        if !page.has_more || page.next_since <= since {
            break;
        }
        since = page.next_since;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
