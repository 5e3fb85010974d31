//! Read queries of the SQLite backend: run on the read connections, and by the writer thread for
//! what a mutation must look at first (the namespace head, an item's current row).

use std::collections::BTreeMap;

use persist_protocol::{Revision, StatsResponse};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::storage::raw::{ExportBatch, PageBudget, EXPORT_BATCH_BYTES};
use crate::storage::{
    revision_from_db, revision_to_db, CurrentRow, ExportChunk, PullPage, StorageError,
    StoredRecord, TokenInfo, TOKEN_ID_LEN,
};

const RECORD_COLUMNS: &str = "collection, id, value, revision, deleted, updated_at, hlc";

fn stored_record(row: &Row<'_>) -> Result<StoredRecord, StorageError> {
    StoredRecord::from_row(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        revision_from_db(row.get(3)?),
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    )
}

pub(super) fn head(conn: &Connection, ns: &str) -> Result<Revision, StorageError> {
    let revision: Option<i64> = conn
        .prepare_cached("SELECT revision FROM namespaces WHERE ns = ?1")?
        .query_row(params![ns], |row| row.get(0))
        .optional()?;
    Ok(revision.map_or(0, revision_from_db))
}

/// One page of changes. Rows are read one at a time and the page stops at its budget, so no
/// more than the page (plus one row) is ever held.
pub(super) fn pull(
    conn: &Connection,
    ns: &str,
    since: Revision,
    limit: u32,
    max_bytes: u64,
) -> Result<PullPage, StorageError> {
    // One read transaction, so the head and the page agree.
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        let head = head(conn, ns)?;
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE ns = ?1 AND revision > ?2 \
             ORDER BY revision LIMIT ?3"
        ))?;
        let mut rows = statement.query(params![ns, revision_to_db(since), i64::from(limit) + 1])?;
        let mut budget = PageBudget::new(limit, max_bytes);
        let (mut records, mut has_more) = (Vec::new(), false);
        while let Some(row) = rows.next()? {
            let record = stored_record(row)?;
            if !budget.admit(record.cost()) {
                has_more = true;
                break;
            }
            records.push(record);
        }
        let next_since = records.last().map_or(since, |r| r.revision);
        Ok(PullPage { records, next_since, has_more, head })
    })();
    conn.execute_batch("COMMIT")?;
    result
}

/// Reads every live record of `ns` from one snapshot, in batches of about
/// [`EXPORT_BATCH_BYTES`], handing each to `send`, which blocks while the previous batch is still
/// being written out and answers `false` once nobody listens (the client went away): the export
/// stops there. Runs on its own connection in its own thread (see `SqliteStorage::export`).
pub(super) fn export(
    conn: &Connection,
    ns: &str,
    revision: impl FnOnce(Revision),
    mut send: impl FnMut(ExportBatch) -> bool,
) -> Result<(), StorageError> {
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        revision(head(conn, ns)?);
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE ns = ?1 AND deleted = 0 \
             ORDER BY collection, id"
        ))?;
        let mut rows = statement.query(params![ns])?;
        let (mut batch, mut bytes) = (Vec::new(), 0u64);
        while let Some(row) = rows.next()? {
            let record = stored_record(row)?;
            bytes += record.cost();
            batch.push(record);
            if bytes >= EXPORT_BATCH_BYTES {
                if !send(Ok(ExportChunk::Records(std::mem::take(&mut batch)))) {
                    return Ok(());
                }
                bytes = 0;
            }
        }
        if (batch.is_empty() || send(Ok(ExportChunk::Records(batch)))) && send(Ok(ExportChunk::End))
        {
            tracing::debug!(ns, "export read");
        }
        Ok(())
    })();
    conn.execute_batch("COMMIT")?;
    result
}

pub(super) fn keys(conn: &Connection, ns: &str) -> Result<Vec<(String, String)>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT collection, id FROM records WHERE ns = ?1 AND deleted = 0")?
        .query_map(params![ns], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

pub(super) fn stats(conn: &Connection, ns: &str) -> Result<StatsResponse, StorageError> {
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        let revision = head(conn, ns)?;
        let mut collections = BTreeMap::new();
        let (mut total_keys, mut total_size_bytes) = (0u64, 0u64);
        let mut statement = conn.prepare_cached(
            "SELECT collection, COUNT(*), COALESCE(SUM(size), 0) FROM records \
             WHERE ns = ?1 AND deleted = 0 GROUP BY collection",
        )?;
        let rows = statement.query_map(params![ns], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (collection, count, size) = row?;
            let count = u64::try_from(count).unwrap_or(0);
            total_keys += count;
            total_size_bytes += u64::try_from(size).unwrap_or(0);
            collections.insert(collection, count);
        }
        Ok(StatsResponse { total_keys, total_size_bytes, revision, collections })
    })();
    conn.execute_batch("COMMIT")?;
    result
}

pub(super) fn list_tokens(
    conn: &Connection,
    user: Option<&str>,
) -> Result<Vec<TokenInfo>, StorageError> {
    let mut statement = conn.prepare_cached(
        "SELECT user, substr(hash, 1, ?2), created_at FROM tokens \
         WHERE ?1 IS NULL OR user = ?1 ORDER BY user, created_at, hash",
    )?;
    let rows = statement.query_map(params![user, TOKEN_ID_LEN as i64], |row| {
        Ok(TokenInfo { user: row.get(0)?, id: row.get(1)?, created_at_ms: row.get(2)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn user_for_token(
    conn: &Connection,
    hash: &str,
    with_dev: bool,
) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT user FROM tokens WHERE hash = ?1 AND (dev = 0 OR ?2)")?
        .query_row(params![hash, with_dev], |row| row.get(0))
        .optional()?)
}

/// The current row of an item, all a push needs (the rule and a conflict answer) in one query.
pub(super) fn current_row(
    conn: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<CurrentRow>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT value, revision, deleted, updated_at, hlc FROM records \
             WHERE ns = ?1 AND collection = ?2 AND id = ?3",
        )?
        .query_row(params![ns, collection, id], |row| {
            Ok(CurrentRow {
                value_json: row.get(0)?,
                revision: revision_from_db(row.get(1)?),
                deleted: row.get(2)?,
                updated_at: row.get(3)?,
                hlc_json: row.get(4)?,
            })
        })
        .optional()?)
}

/// One full record (live or tombstone).
pub(super) fn record(
    conn: &Connection,
    ns: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredRecord>, StorageError> {
    current_row(conn, ns, collection, id)?
        .map(|row| row.into_stored(collection.to_owned(), id.to_owned()))
        .transpose()
}

/// The answer stored under an op id by an earlier push (JSON), if any.
pub(super) fn remembered_outcome(
    conn: &Connection,
    ns: &str,
    op_id: &str,
) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT result FROM ops WHERE ns = ?1 AND op_id = ?2")?
        .query_row(params![ns, op_id], |row| row.get(0))
        .optional()?)
}
