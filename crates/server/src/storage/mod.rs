//! Storage behind one trait, with two backends: SQLite (embedded, one writer thread with group
//! commit) and PostgreSQL (several server instances share one database).
//!
//! Both backends keep the same tables: `namespaces` (one revision counter per user, and its usage
//! for quotas: live records and bytes of their values), `records` (one row per item, tombstones
//! included, indexed by revision for pulls), `ops` (op id → first answer, for idempotent retries)
//! and `tokens` (SHA-256 hashes of bearer tokens).

mod events;
mod postgres;
mod push;
mod quota;
mod raw;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persist_protocol::{Hlc, PushOutcome, Record, Revision, StatsResponse};

pub(crate) use events::{EventHub, HubEvent, Subscription};
pub(crate) use push::{plan_push, CurrentRow, PushBatch, Remembered};
pub(crate) use quota::{Quota, Usage};
pub(crate) use raw::{ExportChunk, ExportStream, PullPage, StoredRecord};

use crate::config::{DatabaseConfig, ServerConfig};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database cannot be reached or the server is shutting down (transient).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// A stored row could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The write would take the namespace past its quota; nothing of it was written.
    #[error("{0}")]
    QuotaExceeded(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        match error {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StorageError::Unavailable(error.to_string())
            }
            other => StorageError::Database(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.is_closed() || error.as_db_error().is_none() {
            StorageError::Unavailable(error.to_string())
        } else {
            StorageError::Database(error.to_string())
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        StorageError::Unavailable(error.to_string())
    }
}

/// One validated push op, its value already serialised.
#[derive(Debug, Clone)]
pub(crate) struct WriteOp {
    pub(crate) op_id: String,
    pub(crate) collection: String,
    pub(crate) id: String,
    pub(crate) base: Revision,
    pub(crate) delete: bool,
    pub(crate) value: serde_json::Value,
    /// Compact JSON of `value` (empty for a delete).
    pub(crate) value_json: String,
    pub(crate) hlc: Option<Hlc>,
}

/// One validated item of an upsert (CodeForge PUT, import).
#[derive(Debug, Clone)]
pub(crate) struct UpsertRow {
    pub(crate) collection: String,
    pub(crate) id: String,
    pub(crate) value_json: String,
}

/// A write to one namespace. Pushes, deletes and small upserts and clears are applied atomically;
/// a large upsert or clear may not be (see [`Mutation::Upsert`]).
#[derive(Debug)]
pub(crate) enum Mutation {
    /// Sync-protocol push: conditional on base revisions, idempotent by op id.
    Push(Vec<WriteOp>),
    /// Unconditional upserts (bulk import, CodeForge PUT) of distinct keys.
    ///
    /// The whole of it is checked against the quota before its first row is written (past it:
    /// `QuotaExceeded`, nothing written). **Not atomic when large on SQLite**: more than 1,024
    /// rows or 1 MiB of values are written in slices, each committed in its own writer turn so
    /// that other users' writes are served in between; if the server dies midway, the slices
    /// already committed stay written (resending finishes the job: upserts are idempotent).
    /// PostgreSQL applies it in one transaction.
    Upsert(Vec<UpsertRow>),
    /// Tombstone one live item (CodeForge DELETE).
    Delete { collection: String, id: String },
    /// Tombstone every live item (CodeForge clear). Sliced like a large upsert on SQLite when the
    /// namespace has more than 1,024 live records, so it may likewise stop halfway.
    Clear,
}

/// What a [`Mutation`] did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// One outcome per op, in order.
    Push(Vec<PushOutcome>),
    /// How many rows were written.
    Upsert(u64),
    /// Whether a live item was deleted.
    Delete(bool),
    /// How many items were tombstoned.
    Clear(u64),
}

/// The answer to a [`Mutation`]: what happened and the namespace's revision after it.
#[derive(Debug)]
pub(crate) struct WriteOutcome {
    pub(crate) applied: Applied,
    pub(crate) head: Revision,
}

/// Hex digits of a token's hash that name it in `token list` / `token revoke --id`.
pub(crate) const TOKEN_ID_LEN: usize = 12;

/// One stored token as `token list` shows it (never the token itself, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user (namespace) it acts as.
    pub user: String,
    /// The first 12 hex digits of its SHA-256 hash: its name for `token revoke --id`.
    pub id: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// Storage of records, op ids and tokens. Every method is scoped to one namespace (one user); no
/// method can reach another namespace's rows.
#[async_trait]
pub(crate) trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// Applies a mutation (in one transaction, except a large upsert or clear on SQLite: see
    /// [`Mutation::Upsert`]); returns after all of it is durable.
    async fn write(&self, ns: &str, mutation: Mutation) -> Result<WriteOutcome, StorageError>;
    /// Records with `revision > since`, oldest first: at most `limit` of them and at most
    /// `max_bytes` of values (plus a small cost per record), but always at least one.
    async fn pull(
        &self,
        ns: &str,
        since: Revision,
        limit: u32,
        max_bytes: u64,
    ) -> Result<PullPage, StorageError>;
    /// Every live record, read from one snapshot in batches as fast as the caller takes them.
    async fn export(&self, ns: &str) -> Result<ExportStream, StorageError>;
    /// One record (live or tombstone).
    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError>;
    /// `(collection, id)` of every live record.
    async fn keys(&self, ns: &str) -> Result<Vec<(String, String)>, StorageError>;
    /// Counts and sizes of the live records.
    async fn stats(&self, ns: &str) -> Result<StatsResponse, StorageError>;
    /// The namespace's newest revision.
    async fn head(&self, ns: &str) -> Result<Revision, StorageError>;
    /// A cheap query proving the database answers.
    async fn check(&self) -> Result<(), StorageError>;
    /// Stores a token hash for a user.
    async fn insert_token(&self, token_hash: &str, user: &str) -> Result<(), StorageError>;
    /// The user a token hash belongs to. A development token ([`mark_dev_token`]) counts only
    /// `with_dev` (a server in development mode): `None` otherwise.
    ///
    /// [`mark_dev_token`]: Storage::mark_dev_token
    async fn user_for_token(
        &self,
        token_hash: &str,
        with_dev: bool,
    ) -> Result<Option<String>, StorageError>;
    /// Deletes the tokens of `user` (only the one named `id`, when given); returns how many.
    async fn revoke_tokens(&self, user: &str, id: Option<&str>) -> Result<u64, StorageError>;
    /// Marks the token with this hash as the development token, which only a server in
    /// development mode accepts (see [`user_for_token`]).
    ///
    /// [`user_for_token`]: Storage::user_for_token
    async fn mark_dev_token(&self, token_hash: &str) -> Result<(), StorageError>;
    /// The stored tokens (of `user` only, when given), by user, then creation time.
    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StorageError>;
    /// Finishes queued writes and closes the database.
    async fn close(&self);
}

/// Options common to both backends.
#[derive(Debug, Clone)]
pub(crate) struct StorageOptions {
    pub(crate) op_retention: Duration,
    pub(crate) postgres_pool_size: usize,
    pub(crate) sqlite_readers: usize,
    pub(crate) quota: Quota,
}

impl StorageOptions {
    /// The storage part of a server's configuration.
    pub(crate) fn from_config(config: &ServerConfig) -> Self {
        Self {
            op_retention: config.op_retention,
            postgres_pool_size: config.postgres_pool_size,
            sqlite_readers: config.sqlite_readers,
            quota: Quota {
                max_records: config.limits.max_records_per_user,
                max_bytes: config.limits.max_bytes_per_user,
            },
        }
    }
}

/// Opens (and migrates) the configured database.
pub(crate) async fn open(
    database: &DatabaseConfig,
    options: &StorageOptions,
    events: EventHub,
) -> Result<Arc<dyn Storage>, StorageError> {
    match database {
        DatabaseConfig::Sqlite(path) => {
            Ok(Arc::new(sqlite::SqliteStorage::open(path, options, events).await?))
        }
        DatabaseConfig::Postgres(url) => {
            Ok(Arc::new(postgres::PostgresStorage::open(url, options, events).await?))
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses a stored row's JSON columns back into a [`Record`].
pub(crate) fn record_from_row(
    collection: String,
    id: String,
    value_json: Option<&str>,
    revision: Revision,
    deleted: bool,
    updated_at: i64,
    hlc_json: Option<&str>,
) -> Result<Record, StorageError> {
    let value = match value_json {
        Some(text) if !deleted => serde_json::from_str(text)
            .map_err(|e| StorageError::Corrupt(format!("value of {collection}:{id}: {e}")))?,
        _ => serde_json::Value::Null,
    };
    let hlc = match hlc_json {
        Some(text) => serde_json::from_str(text).ok(),
        None => None,
    };
    Ok(Record { collection, id, value, revision, deleted, updated_at, hlc })
}

/// Revisions are `BIGINT`/`INTEGER` (signed) in both databases and never negative.
pub(crate) fn revision_from_db(value: i64) -> Revision {
    u64::try_from(value).unwrap_or(0)
}

/// Revisions as the databases' signed integers.
pub(crate) fn revision_to_db(value: Revision) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
