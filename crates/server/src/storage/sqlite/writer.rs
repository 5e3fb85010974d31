//! The single writer thread: it takes queued writes, applies as many as are waiting in ONE
//! SQLite transaction (each in its own savepoint, so one push is all-or-nothing) and commits them
//! together — group commit: one fsync acknowledges many pushes.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::writes::{self, TokenChange};
use crate::storage::{now_ms, EventHub, Mutation, Quota, StorageError, WriteOutcome};

/// Most jobs committed together.
const MAX_BATCH_JOBS: usize = 1024;
/// Group commits slower than this are logged.
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// How often old op ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// A request to the writer thread.
#[derive(Debug)]
pub(super) enum Job {
    Write {
        ns: String,
        mutation: Mutation,
        reply: oneshot::Sender<Result<WriteOutcome, StorageError>>,
    },
    /// Adds or deletes tokens; answers with the number of rows changed.
    Tokens { change: TokenChange, reply: oneshot::Sender<Result<u64, StorageError>> },
}

/// Runs until every sender is dropped, then returns (all queued jobs answered).
pub(super) fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    events: EventHub,
    op_retention: Duration,
    quota: Quota,
) {
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let jobs_in_batch = batch.len();
        let started = Instant::now();
        commit_batch(&mut conn, batch, &events, quota);
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::warn!(jobs = jobs_in_batch, ?took, "slow group commit");
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            writes::prune_ops(&conn, op_retention);
        }
    }
    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(%error, "final checkpoint failed");
    }
    tracing::info!("sqlite writer stopped");
}

enum Reply {
    Write(
        oneshot::Sender<Result<WriteOutcome, StorageError>>,
        Result<WriteOutcome, StorageError>,
        String,
    ),
    Token(oneshot::Sender<Result<u64, StorageError>>, Result<u64, StorageError>),
}

fn commit_batch(conn: &mut Connection, batch: Vec<Job>, events: &EventHub, quota: Quota) {
    let mut replies = Vec::with_capacity(batch.len());
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = error.to_string();
        for job in batch {
            fail(job, StorageError::Unavailable(message.clone()));
        }
        return;
    }
    let now = now_ms();
    for job in batch {
        match job {
            Job::Write { ns, mutation, reply } => {
                let result =
                    in_savepoint(conn, |conn| writes::apply(conn, &ns, mutation, quota, now));
                replies.push(Reply::Write(reply, result, ns));
            }
            Job::Tokens { change, reply } => {
                let result = in_savepoint(conn, |conn| writes::change_tokens(conn, change, now));
                replies.push(Reply::Token(reply, result));
            }
        }
    }
    if let Err(error) = conn.execute_batch("COMMIT") {
        tracing::error!(%error, "group commit failed");
        let _ = conn.execute_batch("ROLLBACK");
        let message = format!("commit failed: {error}");
        for reply in replies {
            match reply {
                Reply::Write(tx, _, _) => {
                    let _ = tx.send(Err(StorageError::Unavailable(message.clone())));
                }
                Reply::Token(tx, _) => {
                    let _ = tx.send(Err(StorageError::Unavailable(message.clone())));
                }
            }
        }
        return;
    }
    for reply in replies {
        match reply {
            Reply::Write(tx, result, ns) => {
                if let Ok(outcome) = &result {
                    events.advanced(&ns, outcome.head);
                }
                let _ = tx.send(result);
            }
            Reply::Token(tx, result) => {
                let _ = tx.send(result);
            }
        }
    }
}

fn fail(job: Job, error: StorageError) {
    match job {
        Job::Write { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Job::Tokens { reply, .. } => {
            let _ = reply.send(Err(error));
        }
    }
}

/// Runs `body` in a savepoint: rolled back alone when it fails, so the batch's other jobs commit.
fn in_savepoint<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    conn.execute_batch("SAVEPOINT job")?;
    match body(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(error) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(error)
        }
    }
}
