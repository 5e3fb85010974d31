//! The single writer thread: it takes queued writes, applies as many as are waiting in ONE
//! SQLite transaction (each in its own savepoint, so one push is all-or-nothing) and commits them
//! together — group commit: one fsync acknowledges many pushes.

use std::time::{Duration, Instant};

use persist_protocol::{PushOutcome, Revision};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::storage::{
    decide, now_ms, record_from_row, revision_from_db, revision_to_db, Applied, Decision, EventHub,
    Mutation, StorageError, StoredRow, UpsertRow, WriteOp, WriteOutcome, TOKEN_ID_LEN,
};

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

/// A change to the tokens table.
#[derive(Debug)]
pub(super) enum TokenChange {
    Insert {
        hash: String,
        user: String,
    },
    /// Every token of `user`, or only the one whose id (hash prefix) is `id`.
    Revoke {
        user: String,
        id: Option<String>,
    },
}

/// Runs until every sender is dropped, then returns (all queued jobs answered).
pub(super) fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    events: EventHub,
    op_retention: Duration,
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
        commit_batch(&mut conn, batch, &events);
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::warn!(jobs = jobs_in_batch, ?took, "slow group commit");
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            prune_ops(&conn, op_retention);
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

fn commit_batch(conn: &mut Connection, batch: Vec<Job>, events: &EventHub) {
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
                let result = in_savepoint(conn, |conn| apply(conn, &ns, mutation, now));
                replies.push(Reply::Write(reply, result, ns));
            }
            Job::Tokens { change, reply } => {
                let result = in_savepoint(conn, |conn| change_tokens(conn, change, now));
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

fn change_tokens(conn: &Connection, change: TokenChange, now: i64) -> Result<u64, StorageError> {
    let changed = match change {
        TokenChange::Insert { hash, user } => conn
            .prepare_cached("INSERT INTO tokens (hash, user, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![hash, user, now])?,
        TokenChange::Revoke { user, id } => conn
            .prepare_cached(
                "DELETE FROM tokens WHERE user = ?1 AND (?2 IS NULL OR substr(hash, 1, ?3) = ?2)",
            )?
            .execute(params![user, id, TOKEN_ID_LEN as i64])?,
    };
    Ok(changed as u64)
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

fn apply(
    conn: &Connection,
    ns: &str,
    mutation: Mutation,
    now: i64,
) -> Result<WriteOutcome, StorageError> {
    let start = load_head(conn, ns)?;
    let mut head = start;
    let applied = match mutation {
        Mutation::Push(ops) => Applied::Push(apply_push(conn, ns, &ops, &mut head, now)?),
        Mutation::Upsert(rows) => Applied::Upsert(apply_upserts(conn, ns, &rows, &mut head, now)?),
        Mutation::Delete { collection, id } => {
            let live = read_row(conn, ns, &collection, &id)?.is_some_and(|row| !row.deleted);
            if live {
                head += 1;
                write_row(conn, ns, &collection, &id, None, head, now, None)?;
            }
            Applied::Delete(live)
        }
        Mutation::Clear => {
            let keys: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT collection, id FROM records WHERE ns = ?1 AND deleted = 0 \
                     ORDER BY revision",
                )?
                .query_map(params![ns], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (collection, id) in &keys {
                head += 1;
                write_row(conn, ns, collection, id, None, head, now, None)?;
            }
            Applied::Clear(keys.len() as u64)
        }
    };
    if head != start {
        conn.prepare_cached(
            "INSERT INTO namespaces (ns, revision) VALUES (?1, ?2) \
             ON CONFLICT (ns) DO UPDATE SET revision = excluded.revision",
        )?
        .execute(params![ns, revision_to_db(head)])?;
    }
    Ok(WriteOutcome { applied, head })
}

fn apply_push(
    conn: &Connection,
    ns: &str,
    ops: &[WriteOp],
    head: &mut Revision,
    now: i64,
) -> Result<Vec<PushOutcome>, StorageError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let remembered: Option<String> = conn
            .prepare_cached("SELECT result FROM ops WHERE ns = ?1 AND op_id = ?2")?
            .query_row(params![ns, op.op_id], |row| row.get(0))
            .optional()?;
        if let Some(text) = remembered {
            let outcome = serde_json::from_str(&text)
                .map_err(|e| StorageError::Corrupt(format!("op {}: {e}", op.op_id)))?;
            outcomes.push(outcome);
            continue;
        }
        let current = read_row(conn, ns, &op.collection, &op.id)?;
        let outcome = match decide(op, current.as_ref()) {
            Decision::Write => {
                *head += 1;
                let value = (!op.delete).then_some(op.value_json.as_str());
                let hlc = op.hlc.as_ref().and_then(|h| serde_json::to_string(h).ok());
                write_row(conn, ns, &op.collection, &op.id, value, *head, now, hlc.as_deref())?;
                PushOutcome::Applied { revision: *head }
            }
            Decision::AlreadyThere(revision) => PushOutcome::Applied { revision },
            Decision::Conflict => {
                PushOutcome::Conflict { current: read_record(conn, ns, &op.collection, &op.id)? }
            }
        };
        let stored = serde_json::to_string(&outcome)
            .map_err(|e| StorageError::Database(format!("encode outcome: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO ops (ns, op_id, result, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![ns, op.op_id, stored, now])?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn apply_upserts(
    conn: &Connection,
    ns: &str,
    rows: &[UpsertRow],
    head: &mut Revision,
    now: i64,
) -> Result<u64, StorageError> {
    for row in rows {
        *head += 1;
        write_row(conn, ns, &row.collection, &row.id, Some(&row.value_json), *head, now, None)?;
    }
    Ok(rows.len() as u64)
}

fn load_head(conn: &Connection, ns: &str) -> Result<Revision, StorageError> {
    let revision: Option<i64> = conn
        .prepare_cached("SELECT revision FROM namespaces WHERE ns = ?1")?
        .query_row(params![ns], |row| row.get(0))
        .optional()?;
    Ok(revision.map_or(0, revision_from_db))
}

fn read_row(
    conn: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredRow>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT revision, deleted, value FROM records \
             WHERE ns = ?1 AND collection = ?2 AND id = ?3",
        )?
        .query_row(params![ns, collection, id], |row| {
            Ok(StoredRow {
                revision: revision_from_db(row.get(0)?),
                deleted: row.get(1)?,
                value_json: row.get(2)?,
            })
        })
        .optional()?)
}

/// Reads a full record (the conflict answer).
pub(super) fn read_record(
    conn: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<persist_protocol::Record>, StorageError> {
    let row = conn
        .prepare_cached(
            "SELECT value, revision, deleted, updated_at, hlc FROM records \
             WHERE ns = ?1 AND collection = ?2 AND id = ?3",
        )?
        .query_row(params![ns, collection, id], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<String>>(4)?,
            ))
        })
        .optional()?;
    row.map(|(value, revision, deleted, updated_at, hlc)| {
        record_from_row(
            collection.to_owned(),
            id.to_owned(),
            value.as_deref(),
            revision,
            deleted,
            updated_at,
            hlc.as_deref(),
        )
    })
    .transpose()
}

#[allow(clippy::too_many_arguments)]
fn write_row(
    conn: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
    value_json: Option<&str>,
    revision: Revision,
    now: i64,
    hlc_json: Option<&str>,
) -> Result<(), StorageError> {
    let size = value_json.map_or(0, str::len) as i64;
    conn.prepare_cached(
        "INSERT INTO records (ns, collection, id, value, revision, deleted, updated_at, hlc, size) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (ns, collection, id) DO UPDATE SET value = excluded.value, \
         revision = excluded.revision, deleted = excluded.deleted, \
         updated_at = excluded.updated_at, hlc = excluded.hlc, size = excluded.size",
    )?
    .execute(params![
        ns,
        collection,
        id,
        value_json,
        revision_to_db(revision),
        value_json.is_none(),
        now,
        hlc_json,
        size
    ])?;
    Ok(())
}

fn prune_ops(conn: &Connection, retention: Duration) {
    let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    match conn.execute("DELETE FROM ops WHERE created_at < ?1", params![cutoff]) {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "pruned remembered op ids"),
        Err(error) => tracing::warn!(%error, "pruning op ids failed"),
    }
}
