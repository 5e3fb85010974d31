//! Read queries of the PostgreSQL backend. Each takes a pooled client or a transaction
//! ([`GenericClient`]): requests read through the pool (several in one read-only snapshot when
//! the head and the rows must agree), and a mutation reads what it must look at first (an item's
//! current row) inside its own transaction.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use persist_protocol::{ExportResponse, PullResponse, Record, Revision, StatsResponse};
use tokio_postgres::Row;

use crate::storage::{
    record_from_row, revision_from_db, revision_to_db, CurrentRow, StorageError, TokenInfo,
    TOKEN_ID_LEN,
};

const RECORD_COLUMNS: &str = "collection, id, value, revision, deleted, updated_at, hlc";

fn record_of(row: &Row) -> Result<Record, StorageError> {
    record_from_row(
        row.get(0),
        row.get(1),
        row.get::<_, Option<&str>>(2),
        revision_from_db(row.get(3)),
        row.get(4),
        row.get(5),
        row.get::<_, Option<&str>>(6),
    )
}

pub(super) async fn head(client: &impl GenericClient, ns: &str) -> Result<Revision, StorageError> {
    let statement = client.prepare_cached("SELECT revision FROM namespaces WHERE ns = $1").await?;
    Ok(client.query_opt(&statement, &[&ns]).await?.map_or(0, |row| revision_from_db(row.get(0))))
}

/// Records after `since`, oldest first; run it in a snapshot so the head and the page agree.
pub(super) async fn pull(
    client: &impl GenericClient,
    ns: &str,
    since: Revision,
    limit: u32,
) -> Result<PullResponse, StorageError> {
    let head = head(client, ns).await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND revision > $2 \
             ORDER BY revision LIMIT $3"
        ))
        .await?;
    let rows =
        client.query(&statement, &[&ns, &revision_to_db(since), &(i64::from(limit) + 1)]).await?;
    let mut records = rows.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
    let has_more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_since = records.last().map_or(since, |r| r.revision);
    Ok(PullResponse { records, next_since, has_more, head })
}

/// Every live record; run it in a snapshot so the revision and the records agree.
pub(super) async fn export(
    client: &impl GenericClient,
    ns: &str,
) -> Result<ExportResponse, StorageError> {
    let revision = head(client, ns).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND NOT deleted \
                 ORDER BY collection, id"
            ),
            &[&ns],
        )
        .await?;
    let records = rows.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
    Ok(ExportResponse { revision, records })
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
) -> Result<Option<Record>, StorageError> {
    current_row(client, ns, collection, id)
        .await?
        .map(|row| row.into_record(collection.to_owned(), id.to_owned()))
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
