//! The single writer thread: it takes queued writes, applies as many as are waiting in ONE
//! SQLite transaction (each in its own savepoint, so one push is all-or-nothing) and commits them
//! together — group commit: one fsync acknowledges many pushes.
//!
//! A large upsert or clear (see `bulk`) would hold that one thread for its whole duration, and so
//! make every other user wait; it becomes a bulk job instead, which each turn advances by one
//! bounded slice next to the turn's other jobs. Writes to the namespace of a bulk job wait until
//! it ends (in arrival order), so the job sees its namespace change under it only by itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::bulk::{self, Budget, Bulk, Step};
use super::writes::{self, TokenChange};
use crate::storage::{now_ms, EventHub, Mutation, Quota, StorageError, WriteOutcome};

/// Most jobs committed together.
const MAX_BATCH_JOBS: usize = 1024;
/// Group commits slower than this are logged.
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// How often old op ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

type WriteReply = oneshot::Sender<Result<WriteOutcome, StorageError>>;

/// A request to the writer thread.
#[derive(Debug)]
pub(super) enum Job {
    Write {
        ns: String,
        mutation: Mutation,
        reply: WriteReply,
    },
    /// Adds or deletes tokens; answers with the number of rows changed.
    Tokens {
        change: TokenChange,
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
}

/// A bulk job in progress and whom to answer when it ends.
struct Running {
    ns: String,
    bulk: Bulk,
    reply: WriteReply,
}

/// The bulk jobs in progress, and the writes waiting for their namespace's bulk job to end.
#[derive(Default)]
struct BulkJobs {
    running: VecDeque<Running>,
    /// In arrival order.
    waiting: Vec<Job>,
}

impl BulkJobs {
    fn busy(&self, ns: &str) -> bool {
        self.running.iter().any(|job| job.ns == ns)
    }

    fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Takes the waiting jobs whose namespace has no bulk job any more (in arrival order).
    fn released(&mut self) -> Vec<Job> {
        let (released, waiting) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|job| !matches!(job, Job::Write { ns, .. } if self.busy(ns)));
        self.waiting = waiting;
        released
    }

    /// Ends every bulk job with `error` (their slices so far stay committed).
    fn fail_all(&mut self, message: &str) {
        for job in self.running.drain(..) {
            let _ = job.reply.send(Err(StorageError::Unavailable(message.to_owned())));
        }
    }
}

/// Runs until every sender is dropped, then returns (all queued jobs answered, every bulk job
/// finished).
pub(super) fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    events: EventHub,
    op_retention: Duration,
    quota: Quota,
) {
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut bulk_jobs = BulkJobs::default();
    loop {
        // Writes released by a bulk job that ended go first: they arrived before any queued now.
        let mut batch = bulk_jobs.released();
        if batch.is_empty() && bulk_jobs.is_idle() {
            match jobs.blocking_recv() {
                Some(job) => batch.push(job),
                None => break,
            }
        }
        while batch.len() < MAX_BATCH_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let jobs_in_batch = batch.len();
        let started = Instant::now();
        commit_batch(&mut conn, batch, &mut bulk_jobs, &events, quota);
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
    Write(WriteReply, Result<WriteOutcome, StorageError>, String),
    Token(oneshot::Sender<Result<u64, StorageError>>, Result<u64, StorageError>),
    /// A bulk job's slice advanced its namespace to this head; the job goes on.
    Advanced(String, u64),
}

/// One turn: the batch's jobs, then one slice of each bulk job, in one transaction.
fn commit_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    bulk_jobs: &mut BulkJobs,
    events: &EventHub,
    quota: Quota,
) {
    let mut replies = Vec::with_capacity(batch.len() + bulk_jobs.running.len());
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = error.to_string();
        for job in batch {
            fail(job, StorageError::Unavailable(message.clone()));
        }
        bulk_jobs.fail_all(&message);
        return;
    }
    let now = now_ms();
    for job in batch {
        match job {
            Job::Write { ns, mutation, reply } => {
                if bulk_jobs.busy(&ns) {
                    bulk_jobs.waiting.push(Job::Write { ns, mutation, reply });
                    continue;
                }
                match bulk::is_large(conn, &ns, &mutation) {
                    Ok(false) => {
                        let result = in_savepoint(conn, |conn| {
                            writes::apply(conn, &ns, mutation, quota, now)
                        });
                        replies.push(Reply::Write(reply, result, ns));
                    }
                    // Its first slice runs below, after the turn's other jobs.
                    Ok(true) => match Bulk::start(conn, &ns, mutation) {
                        Ok(bulk) => bulk_jobs.running.push_back(Running { ns, bulk, reply }),
                        Err(error) => replies.push(Reply::Write(reply, Err(error), ns)),
                    },
                    Err(error) => replies.push(Reply::Write(reply, Err(error), ns)),
                }
            }
            Job::Tokens { change, reply } => {
                let result = in_savepoint(conn, |conn| writes::change_tokens(conn, change, now));
                replies.push(Reply::Token(reply, result));
            }
        }
    }
    run_slices(conn, bulk_jobs, &mut replies, quota, now);
    if let Err(error) = conn.execute_batch("COMMIT") {
        tracing::error!(%error, "group commit failed");
        let _ = conn.execute_batch("ROLLBACK");
        let message = format!("commit failed: {error}");
        // The bulk jobs' progress in memory is past what is committed: end them too.
        bulk_jobs.fail_all(&message);
        for reply in replies {
            match reply {
                Reply::Write(tx, _, _) => {
                    let _ = tx.send(Err(StorageError::Unavailable(message.clone())));
                }
                Reply::Token(tx, _) => {
                    let _ = tx.send(Err(StorageError::Unavailable(message.clone())));
                }
                Reply::Advanced(..) => {}
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
            Reply::Advanced(ns, head) => events.advanced(&ns, head),
        }
    }
}

/// Advances every bulk job by one slice, each in its own savepoint; together they get about
/// [`bulk::SLICE_BUDGET`]. A job that ends (done or failed) leaves `bulk_jobs` with its answer in
/// `replies`, sent once the turn commits.
fn run_slices(
    conn: &Connection,
    bulk_jobs: &mut BulkJobs,
    replies: &mut Vec<Reply>,
    quota: Quota,
    now: i64,
) {
    let deadline = Instant::now() + bulk::SLICE_BUDGET;
    let mut going_on = VecDeque::with_capacity(bulk_jobs.running.len());
    while let Some(mut job) = bulk_jobs.running.pop_front() {
        let mut budget = Budget::until(deadline);
        let ns = job.ns.as_str();
        match in_savepoint(conn, |conn| job.bulk.step(conn, ns, quota, now, &mut budget)) {
            Ok(Step::More(head)) => {
                if let Some(head) = head {
                    replies.push(Reply::Advanced(job.ns.clone(), head));
                }
                going_on.push_back(job);
            }
            Ok(Step::Done(outcome)) => replies.push(Reply::Write(job.reply, Ok(outcome), job.ns)),
            Err(error) => replies.push(Reply::Write(job.reply, Err(error), job.ns)),
        }
    }
    // The job that went first this turn goes last next turn: the deadline is shared fairly.
    going_on.rotate_left(usize::from(going_on.len() > 1));
    bulk_jobs.running = going_on;
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
