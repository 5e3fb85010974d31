//! Read queries of the PostgreSQL backend. Each takes a pooled client or a transaction
//! ([`GenericClient`]): requests read through the pool (several in one read-only snapshot when
//! the head and the rows must agree), and a mutation reads what it must look at first (an item's
//! current row) inside its own transaction.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use persist_protocol::{Revision, StatsResponse};
use tokio::sync::mpsc;
use tokio_postgres::Row;

use crate::storage::raw::{record_cost, ExportBatch, PageBudget, EXPORT_BATCH_BYTES};
use crate::storage::{
    revision_from_db, revision_to_db, CurrentRow, ExportChunk, PullPage, StorageError,
    StoredRecord, TokenInfo, TOKEN_ID_LEN,
};

const RECORD_COLUMNS: &str = "collection, id, value, revision, deleted, updated_at, hlc";

fn stored_record(row: &Row) -> Result<StoredRecord, StorageError> {
    StoredRecord::from_row(
        row.get(0),
        row.get(1),
        row.get(2),
        revision_from_db(row.get(3)),
        row.get(4),
        row.get(5),
        row.get(6),
    )
}

pub(super) async fn head(client: &impl GenericClient, ns: &str) -> Result<Revision, StorageError> {
    let statement = client.prepare_cached("SELECT revision FROM namespaces WHERE ns = $1").await?;
    Ok(client.query_opt(&statement, &[&ns]).await?.map_or(0, |row| revision_from_db(row.get(0))))
}

/// Records after `since`, oldest first; run it in a snapshot so the head and the page agree.
///
/// Two queries: the revisions and sizes of up to `limit + 1` rows decide where the page ends
/// (a few bytes per row), then only that page's rows are fetched. A client cannot make the
/// server fetch 5,000 large values to answer a page of a few.
pub(super) async fn pull(
    client: &impl GenericClient,
    ns: &str,
    since: Revision,
    limit: u32,
    max_bytes: u64,
) -> Result<PullPage, StorageError> {
    let head = head(client, ns).await?;
    let sizes = client
        .prepare_cached(
            "SELECT revision, size FROM records WHERE ns = $1 AND revision > $2 \
             ORDER BY revision LIMIT $3",
        )
        .await?;
    let since_db = revision_to_db(since);
    let rows = client.query(&sizes, &[&ns, &since_db, &(i64::from(limit) + 1)]).await?;
    let mut budget = PageBudget::new(limit, max_bytes);
    let (mut last, mut has_more) = (None, false);
    for row in &rows {
        if !budget.admit(record_cost(u64::try_from(row.get::<_, i64>(1)).unwrap_or(0))) {
            has_more = true;
            break;
        }
        last = Some(row.get::<_, i64>(0));
    }
    let Some(last) = last else {
        return Ok(PullPage { records: Vec::new(), next_since: since, has_more: false, head });
    };
    let page = client
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND revision > $2 \
             AND revision <= $3 ORDER BY revision"
        ))
        .await?;
    let records = client
        .query(&page, &[&ns, &since_db, &last])
        .await?
        .iter()
        .map(stored_record)
        .collect::<Result<Vec<_>, _>>()?;
    let next_since = records.last().map_or(since, |r| r.revision);
    Ok(PullPage { records, next_since, has_more, head })
}

/// Rows an export fetches per round trip: with values of at most a few hundred KiB, a few MiB.
const EXPORT_FETCH_ROWS: i32 = 16;

/// Reads every live record of `ns` in the transaction `tx` (repeatable read: one snapshot)
/// through a portal, a few rows per round trip, in batches of about [`EXPORT_BATCH_BYTES`] sent
/// to `batches`, which waits while the previous batch is still being written out; once nobody
/// listens (the client went away) the export stops.
pub(super) async fn export(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
    batches: &mpsc::Sender<ExportBatch>,
) -> Result<(), StorageError> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND NOT deleted \
             ORDER BY collection, id"
        ))
        .await?;
    let portal = tx.bind(&statement, &[&ns]).await?;
    let (mut batch, mut bytes) = (Vec::new(), 0u64);
    loop {
        let rows = tx.query_portal(&portal, EXPORT_FETCH_ROWS).await?;
        let done = rows.len() < EXPORT_FETCH_ROWS as usize;
        for row in &rows {
            let record = stored_record(row)?;
            bytes += record.cost();
            batch.push(record);
        }
        if bytes >= EXPORT_BATCH_BYTES || (done && !batch.is_empty()) {
            let records = ExportChunk::Records(std::mem::take(&mut batch));
            if batches.send(Ok(records)).await.is_err() {
                return Ok(());
            }
            bytes = 0;
        }
        if done {
            let _ = batches.send(Ok(ExportChunk::End)).await;
            return Ok(());
        }
    }
}

pub(super) async fn keys(
    client: &impl GenericClient,
    ns: &str,
) -> Result<Vec<(String, String)>, StorageError> {
    let rows = client
        .query("SELECT collection, id FROM records WHERE ns = $1 AND NOT deleted", &[&ns])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Counts and sizes; run it in a snapshot so the revision and the counts agree.
pub(super) async fn stats(
    client: &impl GenericClient,
    ns: &str,
) -> Result<StatsResponse, StorageError> {
    let revision = head(client, ns).await?;
    let rows = client
        .query(
            "SELECT collection, COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM records \
             WHERE ns = $1 AND NOT deleted GROUP BY collection",
            &[&ns],
        )
        .await?;
    let mut collections = BTreeMap::new();
    let (mut total_keys, mut total_size_bytes) = (0u64, 0u64);
    for row in &rows {
        let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        total_keys += count;
        total_size_bytes += u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
        collections.insert(row.get(0), count);
    }
    Ok(StatsResponse { total_keys, total_size_bytes, revision, collections })
}

/// The current row of an item, all a push needs (the rule and a conflict answer) in one query.
pub(super) async fn current_row(
    client: &impl GenericClient,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<CurrentRow>, StorageError> {
    let statement = client
        .prepare_cached(
            "SELECT value, revision, deleted, updated_at, hlc FROM records \
             WHERE ns = $1 AND collection = $2 AND id = $3",
        )
        .await?;
    Ok(client.query_opt(&statement, &[&ns, &collection, &id]).await?.map(|row| CurrentRow {
        value_json: row.get(0),
        revision: revision_from_db(row.get(1)),
        deleted: row.get(2),
        updated_at: row.get(3),
        hlc_json: row.get(4),
    }))
}

/// One full record (live or tombstone).
pub(super) async fn record(
    client: &impl GenericClient,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredRecord>, StorageError> {
    current_row(client, ns, collection, id)
        .await?
        .map(|row| row.into_stored(collection.to_owned(), id.to_owned()))
        .transpose()
}

/// The answer stored under an op id by an earlier push (JSON), if any.
pub(super) async fn remembered_outcome(
    client: &impl GenericClient,
    ns: &str,
    op_id: &str,
) -> Result<Option<String>, StorageError> {
    let statement =
        client.prepare_cached("SELECT result FROM ops WHERE ns = $1 AND op_id = $2").await?;
    Ok(client.query_opt(&statement, &[&ns, &op_id]).await?.map(|row| row.get(0)))
}

pub(super) async fn user_for_token(
    client: &impl GenericClient,
    token_hash: &str,
    with_dev: bool,
) -> Result<Option<String>, StorageError> {
    let statement = client
        .prepare_cached("SELECT \"user\" FROM tokens WHERE hash = $1 AND (NOT dev OR $2)")
        .await?;
    Ok(client.query_opt(&statement, &[&token_hash, &with_dev]).await?.map(|row| row.get(0)))
}

pub(super) async fn list_tokens(
    client: &impl GenericClient,
    user: Option<&str>,
) -> Result<Vec<TokenInfo>, StorageError> {
    let id_len = TOKEN_ID_LEN as i32;
    let rows = client
        .query(
            "SELECT \"user\", left(hash, $2), created_at FROM tokens \
             WHERE $1::text IS NULL OR \"user\" = $1::text ORDER BY \"user\", created_at, hash",
            &[&user, &id_len],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| TokenInfo { user: row.get(0), id: row.get(1), created_at_ms: row.get(2) })
        .collect())
}
