//! Mutations on SQLite, run by the writer thread inside its group-commit transaction: pushes,
//! upserts, deletes, clears, token changes, and pruning of old op ids. Large upserts and clears
//! are cut into slices by `bulk`, which reuses the row and namespace helpers here.

use std::time::Duration;

use persist_protocol::{PushOutcome, Revision};
use rusqlite::{params, Connection, OptionalExtension};

use super::reads;
use crate::storage::{
    now_ms, plan_push, revision_from_db, revision_to_db, Applied, Mutation, PushBatch, Quota,
    Remembered, StorageError, UpsertRow, Usage, WriteOp, WriteOutcome, TOKEN_ID_LEN,
};

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
    /// Marks one token as the development token.
    MarkDev {
        hash: String,
    },
}

/// Applies one mutation to namespace `ns` (the caller holds the transaction and a savepoint).
/// The namespace's usage is read with its head and stored with it, in the same transaction.
pub(super) fn apply(
    conn: &Connection,
    ns: &str,
    mutation: Mutation,
    quota: Quota,
    now: i64,
) -> Result<WriteOutcome, StorageError> {
    let (start, start_usage) = namespace(conn, ns)?;
    let mut head = start;
    let mut usage = start_usage;
    let applied = match mutation {
        Mutation::Push(ops) => {
            let mut batch = PushBatch::new(quota, usage);
            let outcomes = apply_push(conn, ns, &ops, &mut head, &mut batch, now)?;
            usage = batch.usage();
            Applied::Push(outcomes)
        }
        Mutation::Upsert(rows) => {
            usage = upserts_usage(conn, ns, &rows, usage)?;
            quota.check(start_usage, usage).map_err(StorageError::QuotaExceeded)?;
            Applied::Upsert(apply_upserts(conn, ns, &rows, &mut head, now)?)
        }
        Mutation::Delete { collection, id } => {
            let old = reads::current_row(conn, ns, &collection, &id)?
                .filter(|row| !row.deleted)
                .map(|row| row.value_json.map_or(0, |value| value.len() as u64));
            if old.is_some() {
                head += 1;
                write_row(conn, ns, &collection, &id, None, head, now, None)?;
                usage = usage.replace(old, None);
            }
            Applied::Delete(old.is_some())
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
            usage = Usage::default();
            Applied::Clear(keys.len() as u64)
        }
    };
    if head != start || usage != start_usage {
        store_namespace(conn, ns, head, usage)?;
    }
    Ok(WriteOutcome { applied, head })
}

/// Stores the namespace's head and usage (creating its row for a first write).
pub(super) fn store_namespace(
    conn: &Connection,
    ns: &str,
    head: Revision,
    usage: Usage,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO namespaces (ns, revision, live_records, live_bytes) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (ns) DO UPDATE SET revision = excluded.revision, \
         live_records = excluded.live_records, live_bytes = excluded.live_bytes",
    )?
    .execute(params![
        ns,
        revision_to_db(head),
        revision_to_db(usage.records),
        revision_to_db(usage.bytes)
    ])?;
    Ok(())
}

/// The namespace's head and usage (zero for a namespace never written).
pub(super) fn namespace(conn: &Connection, ns: &str) -> Result<(Revision, Usage), StorageError> {
    let row: Option<(i64, i64, i64)> = conn
        .prepare_cached("SELECT revision, live_records, live_bytes FROM namespaces WHERE ns = ?1")?
        .query_row(params![ns], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    Ok(row.map_or((0, Usage::default()), |(revision, records, bytes)| {
        let usage = Usage { records: revision_from_db(records), bytes: revision_from_db(bytes) };
        (revision_from_db(revision), usage)
    }))
}

/// The usage after upserting `rows` (distinct keys): each replaces the item's live value, if any.
fn upserts_usage(
    conn: &Connection,
    ns: &str,
    rows: &[UpsertRow],
    mut usage: Usage,
) -> Result<Usage, StorageError> {
    let mut live_size = conn.prepare_cached(
        "SELECT size FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND deleted = 0",
    )?;
    for row in rows {
        let old: Option<i64> =
            live_size.query_row(params![ns, row.collection, row.id], |r| r.get(0)).optional()?;
        usage = usage.replace(old.map(revision_from_db), Some(row.value_json.len() as u64));
    }
    Ok(usage)
}

/// Each op: read what the plan needs, plan (pure), then write the row and remember the answer.
fn apply_push(
    conn: &Connection,
    ns: &str,
    ops: &[WriteOp],
    head: &mut Revision,
    batch: &mut PushBatch,
    now: i64,
) -> Result<Vec<PushOutcome>, StorageError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let remembered = reads::remembered_outcome(conn, ns, &op.op_id)?
            .map(|text| Remembered::parse(&op.op_id, &text))
            .transpose()?;
        // A replayed op id gets its remembered answer: its row is read only for a conflict.
        let current = match &remembered {
            Some(answer) if !answer.needs_current() => None,
            _ => reads::current_row(conn, ns, &op.collection, &op.id)?,
        };
        let plan = plan_push(op, remembered.as_ref(), current, *head, batch)?;
        if let Some(write) = &plan.write {
            let (value, hlc) = (write.value_json, write.hlc_json.as_deref());
            write_row(conn, ns, &op.collection, &op.id, value, write.revision, now, hlc)?;
            *head = write.revision;
        }
        if let Some(stored) = &plan.remember {
            conn.prepare_cached(
                "INSERT INTO ops (ns, op_id, result, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![ns, op.op_id, stored, now])?;
        }
        outcomes.push(plan.outcome);
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

/// Adds or deletes tokens; returns the number of rows changed.
pub(super) fn change_tokens(
    conn: &Connection,
    change: TokenChange,
    now: i64,
) -> Result<u64, StorageError> {
    let changed = match change {
        TokenChange::Insert { hash, user } => conn
            .prepare_cached("INSERT INTO tokens (hash, user, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![hash, user, now])?,
        TokenChange::Revoke { user, id } => conn
            .prepare_cached(
                "DELETE FROM tokens WHERE user = ?1 AND (?2 IS NULL OR substr(hash, 1, ?3) = ?2)",
            )?
            .execute(params![user, id, TOKEN_ID_LEN as i64])?,
        TokenChange::MarkDev { hash } => {
            conn.prepare_cached("UPDATE tokens SET dev = 1 WHERE hash = ?1")?.execute([hash])?
        }
    };
    Ok(changed as u64)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn write_row(
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

/// Forgets op ids older than `retention`.
pub(super) fn prune_ops(conn: &Connection, retention: Duration) {
    let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    match conn.execute("DELETE FROM ops WHERE created_at < ?1", params![cutoff]) {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "pruned remembered op ids"),
        Err(error) => tracing::warn!(%error, "pruning op ids failed"),
    }
}
