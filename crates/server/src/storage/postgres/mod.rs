//! The PostgreSQL backend: a connection pool for requests, one listening connection for events.

mod listen;
mod schema;
mod write;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use persist_protocol::{ExportResponse, PullResponse, Record, Revision, StatsResponse};
use tokio::task::JoinHandle;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{
    now_ms, record_from_row, revision_from_db, revision_to_db, EventHub, Mutation, Storage,
    StorageError, StorageOptions, TokenInfo, WriteOutcome, TOKEN_ID_LEN,
};

/// PostgreSQL storage.
#[derive(Debug)]
pub(crate) struct PostgresStorage {
    pool: Pool,
    listener: JoinHandle<()>,
    pruner: JoinHandle<()>,
}

impl PostgresStorage {
    pub(crate) async fn open(
        url: &str,
        options: &StorageOptions,
        events: EventHub,
    ) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StorageError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.postgres_pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StorageError::Unavailable(format!("pool: {e}")))?;
        {
            let mut client = pool.get().await?;
            schema::migrate(&mut client).await?;
        }
        let listener = tokio::spawn(listen::listen_forever(config, events));
        let pruner = tokio::spawn(prune_forever(pool.clone(), options.op_retention));
        tracing::info!("postgres storage open");
        Ok(Self { pool, listener, pruner })
    }

    async fn client(&self) -> Result<Object, StorageError> {
        Ok(self.pool.get().await?)
    }

    /// Runs reads in one repeatable-read, read-only transaction (the head and the rows agree).
    async fn snapshot<T>(
        &self,
        body: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let result = body(&tx).await?;
        tx.commit().await?;
        Ok(result)
    }
}

async fn prune_forever(pool: Pool, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        let Ok(client) = pool.get().await else {
            continue;
        };
        match client.execute("DELETE FROM ops WHERE created_at < $1", &[&cutoff]).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "pruned remembered op ids"),
            Err(error) => tracing::warn!(%error, "pruning op ids failed"),
        }
    }
}

async fn head_in(
    tx: &deadpool_postgres::Transaction<'_>,
    ns: &str,
) -> Result<Revision, StorageError> {
    let statement = tx.prepare_cached("SELECT revision FROM namespaces WHERE ns = $1").await?;
    Ok(tx.query_opt(&statement, &[&ns]).await?.map_or(0, |row| revision_from_db(row.get(0))))
}

const RECORD_COLUMNS: &str = "collection, id, value, revision, deleted, updated_at, hlc";

fn record(row: &Row) -> Result<Record, StorageError> {
    record_from_row(
        row.get(0),
        row.get(1),
        row.get::<_, Option<&str>>(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get::<_, Option<&str>>(6),
    )
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn write(&self, ns: &str, mutation: Mutation) -> Result<WriteOutcome, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let outcome = write::apply(&tx, ns, mutation).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn pull(
        &self,
        ns: &str,
        since: Revision,
        limit: u32,
    ) -> Result<PullResponse, StorageError> {
        self.snapshot(async |tx| {
            let head = head_in(tx, ns).await?;
            let statement = tx
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND revision > $2 \
                     ORDER BY revision LIMIT $3"
                ))
                .await?;
            let rows = tx
                .query(&statement, &[&ns, &revision_to_db(since), &(i64::from(limit) + 1)])
                .await?;
            let mut records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            let has_more = records.len() > limit as usize;
            records.truncate(limit as usize);
            let next_since = records.last().map_or(since, |r| r.revision);
            Ok(PullResponse { records, next_since, has_more, head })
        })
        .await
    }

    async fn export(&self, ns: &str) -> Result<ExportResponse, StorageError> {
        self.snapshot(async |tx| {
            let revision = head_in(tx, ns).await?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT {RECORD_COLUMNS} FROM records WHERE ns = $1 AND NOT deleted \
                         ORDER BY collection, id"
                    ),
                    &[&ns],
                )
                .await?;
            let records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            Ok(ExportResponse { revision, records })
        })
        .await
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Record>, StorageError> {
        let client = self.client().await?;
        write::read_record(&client, ns, collection, id).await
    }

    async fn keys(&self, ns: &str) -> Result<Vec<(String, String)>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT collection, id FROM records WHERE ns = $1 AND NOT deleted", &[&ns])
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn stats(&self, ns: &str) -> Result<StatsResponse, StorageError> {
        self.snapshot(async |tx| {
            let revision = head_in(tx, ns).await?;
            let rows = tx
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
        })
        .await
    }

    async fn head(&self, ns: &str) -> Result<Revision, StorageError> {
        let client = self.client().await?;
        let statement =
            client.prepare_cached("SELECT revision FROM namespaces WHERE ns = $1").await?;
        let row = client.query_opt(&statement, &[&ns]).await?;
        Ok(row.map_or(0, |row| revision_from_db(row.get(0))))
    }

    async fn check(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn insert_token(&self, token_hash: &str, user: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO tokens (hash, \"user\", created_at) VALUES ($1, $2, $3)",
                &[&token_hash, &user, &now_ms()],
            )
            .await?;
        Ok(())
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<String>, StorageError> {
        let client = self.client().await?;
        let statement =
            client.prepare_cached("SELECT \"user\" FROM tokens WHERE hash = $1").await?;
        Ok(client.query_opt(&statement, &[&token_hash]).await?.map(|row| row.get(0)))
    }

    async fn revoke_tokens(&self, user: &str, id: Option<&str>) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let id_len = TOKEN_ID_LEN as i32;
        Ok(client
            .execute(
                "DELETE FROM tokens WHERE \"user\" = $1 \
                 AND ($2::text IS NULL OR left(hash, $3) = $2::text)",
                &[&user, &id, &id_len],
            )
            .await?)
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StorageError> {
        let client = self.client().await?;
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

    async fn close(&self) {
        self.listener.abort();
        self.pruner.abort();
        self.pool.close();
    }
}
