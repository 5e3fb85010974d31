//! Mutations on PostgreSQL, one transaction each: the namespace row is locked first, so writes to
//! one namespace are serialised across every server instance and revisions stay dense and ordered.
//! Token changes and op pruning are single statements.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use persist_protocol::{PushOutcome, Revision};

use super::{listen, reads};
use crate::storage::{
    now_ms, plan_push, revision_from_db, revision_to_db, Applied, Mutation, PushBatch, Quota,
    Remembered, StorageError, UpsertRow, Usage, WriteOp, WriteOutcome, TOKEN_ID_LEN,
};

/// Applies one mutation to namespace `ns` in `tx` (the caller commits). The namespace's usage
/// is read with its head under the namespace row's lock and stored with it.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    ns: &str,
    mutation: Mutation,
    quota: Quota,
) -> Result<WriteOutcome, StorageError> {
    let now = now_ms();
    let lock = tx
        .prepare_cached(
            "INSERT INTO namespaces (ns, revision) VALUES ($1, 0) \
             ON CONFLICT (ns) DO UPDATE SET revision = namespaces.revision \
             RETURNING revision, live_records, live_bytes",
        )
        .await?;
    let locked = tx.query_one(&lock, &[&ns]).await?;
    let start = revision_from_db(locked.get(0));
    let start_usage =
        Usage { records: revision_from_db(locked.get(1)), bytes: revision_from_db(locked.get(2)) };
    let mut head = start;
    let mut usage = start_usage;
    let applied = match mutation {
        Mutation::Push(ops) => {
            let mut batch = PushBatch::new(quota, usage);
            let outcomes = push(tx, ns, &ops, &mut head, &mut batch, now).await?;
            usage = batch.usage();
            Applied::Push(outcomes)
        }
        Mutation::Upsert(rows) => {
            usage = upserts_usage(tx, ns, &rows, usage).await?;
            quota.check(start_usage, usage).map_err(StorageError::QuotaExceeded)?;
            Applied::Upsert(upserts(tx, ns, &rows, &mut head, now).await?)
        }
        Mutation::Delete { collection, id } => {
            let old = reads::current_row(tx, ns, &collection, &id)
                .await?
                .filter(|row| !row.deleted)
                .map(|row| row.value_json.map_or(0, |value| value.len() as u64));
            if old.is_some() {
                head += 1;
                write_row(tx, ns, &collection, &id, None, head, now, None).await?;
                usage = usage.replace(old, None);
            }
            Applied::Delete(old.is_some())
        }
        Mutation::Clear => {
            let rows = tx
                .query(
                    "SELECT collection, id FROM records WHERE ns = $1 AND NOT deleted \
                     ORDER BY revision",
                    &[&ns],
                )
                .await?;
            for row in &rows {
                head += 1;
                let (collection, id): (String, String) = (row.get(0), row.get(1));
                write_row(tx, ns, &collection, &id, None, head, now, None).await?;
            }
            usage = Usage::default();
            Applied::Clear(rows.len() as u64)
        }
    };
    if usage != start_usage {
        let store = tx
            .prepare_cached(
                "UPDATE namespaces SET live_records = $2, live_bytes = $3 WHERE ns = $1",
            )
            .await?;
        let (records, bytes) = (revision_to_db(usage.records), revision_to_db(usage.bytes));
        tx.execute(&store, &[&ns, &records, &bytes]).await?;
    }
    if head != start {
        let store = tx.prepare_cached("UPDATE namespaces SET revision = $2 WHERE ns = $1").await?;
        tx.execute(&store, &[&ns, &revision_to_db(head)]).await?;
        // Delivered to every listening instance when (and only if) the transaction commits.
        let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
        tx.execute(&notify, &[&listen::CHANNEL, &listen::payload(ns, head)]).await?;
    }
    Ok(WriteOutcome { applied, head })
}

/// Each op: read what the plan needs, plan (pure), then write the row and remember the answer.
async fn push(
    tx: &Transaction<'_>,
    ns: &str,
    ops: &[WriteOp],
    head: &mut Revision,
    batch: &mut PushBatch,
    now: i64,
) -> Result<Vec<PushOutcome>, StorageError> {
    let remember = tx
        .prepare_cached("INSERT INTO ops (ns, op_id, result, created_at) VALUES ($1, $2, $3, $4)")
        .await?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let remembered = reads::remembered_outcome(tx, ns, &op.op_id)
            .await?
            .map(|text| Remembered::parse(&op.op_id, &text))
            .transpose()?;
        // A replayed op id gets its remembered answer: its row is read only for a conflict.
        let current = match &remembered {
            Some(answer) if !answer.needs_current() => None,
            _ => reads::current_row(tx, ns, &op.collection, &op.id).await?,
        };
        let plan = plan_push(op, remembered.as_ref(), current, *head, batch)?;
        if let Some(write) = &plan.write {
            let (value, hlc) = (write.value_json, write.hlc_json.as_deref());
            write_row(tx, ns, &op.collection, &op.id, value, write.revision, now, hlc).await?;
            *head = write.revision;
        }
        if let Some(stored) = &plan.remember {
            tx.execute(&remember, &[&ns, &op.op_id, stored, &now]).await?;
        }
        outcomes.push(plan.outcome);
    }
    Ok(outcomes)
}

/// The usage after upserting `rows` (distinct keys): each replaces the item's live value, if any.
/// One query per chunk sums the live rows the upserts replace.
async fn upserts_usage(
    tx: &Transaction<'_>,
    ns: &str,
    rows: &[UpsertRow],
    mut usage: Usage,
) -> Result<Usage, StorageError> {
    const CHUNK: usize = 5_000;
    let replaced = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(r.size), 0)::BIGINT FROM records r \
             JOIN UNNEST($2::text[], $3::text[]) AS t(c, i) \
             ON r.ns = $1 AND r.collection = t.c AND r.id = t.i WHERE NOT r.deleted",
        )
        .await?;
    for chunk in rows.chunks(CHUNK) {
        let collections: Vec<&str> = chunk.iter().map(|r| r.collection.as_str()).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let row = tx.query_one(&replaced, &[&ns, &collections, &ids]).await?;
        let (count, bytes): (i64, i64) = (row.get(0), row.get(1));
        let added: u64 = chunk.iter().map(|r| r.value_json.len() as u64).sum();
        usage.records =
            (usage.records + chunk.len() as u64).saturating_sub(revision_from_db(count));
        usage.bytes = (usage.bytes + added).saturating_sub(revision_from_db(bytes));
    }
    Ok(usage)
}

async fn upserts(
    tx: &Transaction<'_>,
    ns: &str,
    rows: &[UpsertRow],
    head: &mut Revision,
    now: i64,
) -> Result<u64, StorageError> {
    if rows.is_empty() {
        return Ok(0);
    }
    // One statement per chunk of rows (UNNEST), so a bulk import is a few round trips.
    const CHUNK: usize = 5_000;
    let statement = tx
        .prepare_cached(
            "INSERT INTO records (ns, collection, id, value, revision, deleted, updated_at, hlc, size) \
             SELECT $1, c, i, v, r, FALSE, $2, NULL, octet_length(v) \
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::bigint[]) AS t(c, i, v, r) \
             ON CONFLICT (ns, collection, id) DO UPDATE SET value = excluded.value, \
             revision = excluded.revision, deleted = FALSE, updated_at = excluded.updated_at, \
             hlc = NULL, size = excluded.size",
        )
        .await?;
    for chunk in rows.chunks(CHUNK) {
        let collections: Vec<&str> = chunk.iter().map(|r| r.collection.as_str()).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let values: Vec<&str> = chunk.iter().map(|r| r.value_json.as_str()).collect();
        let revisions: Vec<i64> =
            (1..=chunk.len() as u64).map(|n| revision_to_db(*head + n)).collect();
        *head += chunk.len() as u64;
        tx.execute(&statement, &[&ns, &now, &collections, &ids, &values, &revisions]).await?;
    }
    Ok(rows.len() as u64)
}

#[allow(clippy::too_many_arguments)]
async fn write_row(
    tx: &Transaction<'_>,
    ns: &str,
    collection: &str,
    id: &str,
    value_json: Option<&str>,
    revision: Revision,
    now: i64,
    hlc_json: Option<&str>,
) -> Result<(), StorageError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO records (ns, collection, id, value, revision, deleted, updated_at, hlc, size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (ns, collection, id) DO UPDATE SET value = excluded.value, \
             revision = excluded.revision, deleted = excluded.deleted, \
             updated_at = excluded.updated_at, hlc = excluded.hlc, size = excluded.size",
        )
        .await?;
    let size = value_json.map_or(0, str::len) as i64;
    tx.execute(
        &statement,
        &[
            &ns,
            &collection,
            &id,
            &value_json,
            &revision_to_db(revision),
            &value_json.is_none(),
            &now,
            &hlc_json,
            &size,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_token(
    client: &impl GenericClient,
    token_hash: &str,
    user: &str,
) -> Result<(), StorageError> {
    client
        .execute(
            "INSERT INTO tokens (hash, \"user\", created_at) VALUES ($1, $2, $3)",
            &[&token_hash, &user, &now_ms()],
        )
        .await?;
    Ok(())
}

/// Deletes every token of `user`, or only the one whose id (hash prefix) is `id`.
pub(super) async fn revoke_tokens(
    client: &impl GenericClient,
    user: &str,
    id: Option<&str>,
) -> Result<u64, StorageError> {
    let id_len = TOKEN_ID_LEN as i32;
    Ok(client
        .execute(
            "DELETE FROM tokens WHERE \"user\" = $1 \
             AND ($2::text IS NULL OR left(hash, $3) = $2::text)",
            &[&user, &id, &id_len],
        )
        .await?)
}

/// Forgets op ids older than `retention`.
pub(super) async fn prune_ops(client: &impl GenericClient, retention: Duration) {
    let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    match client.execute("DELETE FROM ops WHERE created_at < $1", &[&cutoff]).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "pruned remembered op ids"),
        Err(error) => tracing::warn!(%error, "pruning op ids failed"),
    }
}
