//! The PostgreSQL backend: a connection pool for requests, one listening connection for events.
//!
//! - `schema`: migrations;
//! - `reads`: the read queries;
//! - `writes`: the mutations (push, upsert, delete, clear, tokens, op pruning), one transaction
//!   each;
//! - `listen`: LISTEN/NOTIFY, so every instance hears every instance's commits.

mod listen;
mod reads;
mod schema;
mod writes;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use persist_protocol::{Revision, StatsResponse};
use tokio::task::JoinHandle;
use tokio_postgres::{IsolationLevel, NoTls};

use super::raw::export_channel;
use super::{
    EventHub, ExportStream, Mutation, PullPage, Quota, Storage, StorageError, StorageOptions,
    StoredRecord, TokenInfo, WriteOutcome,
};

/// PostgreSQL storage.
#[derive(Debug)]
pub(crate) struct PostgresStorage {
    pool: Pool,
    listener: JoinHandle<()>,
    pruner: JoinHandle<()>,
    quota: Quota,
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
        Ok(Self { pool, listener, pruner, quota: options.quota })
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
        let tx = begin_snapshot(&mut client).await?;
        let result = body(&tx).await?;
        tx.commit().await?;
        Ok(result)
    }
}

/// A repeatable-read, read-only transaction: every read in it sees one snapshot.
async fn begin_snapshot(
    client: &mut Object,
) -> Result<deadpool_postgres::Transaction<'_>, StorageError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

async fn prune_forever(pool: Pool, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        writes::prune_ops(&client, retention).await;
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn write(&self, ns: &str, mutation: Mutation) -> Result<WriteOutcome, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let outcome = writes::apply(&tx, ns, mutation, self.quota).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn pull(
        &self,
        ns: &str,
        since: Revision,
        limit: u32,
        max_bytes: u64,
    ) -> Result<PullPage, StorageError> {
        self.snapshot(async |tx| reads::pull(tx, ns, since, limit, max_bytes).await).await
    }

    /// A task of its own holds one pooled connection in a repeatable-read transaction for as long
    /// as the client takes to read the export (the HTTP layer caps how many run at once).
    async fn export(&self, ns: &str) -> Result<ExportStream, StorageError> {
        let client = self.client().await?;
        let ns = ns.to_owned();
        let (revision_tx, revision_rx) = tokio::sync::oneshot::channel::<Revision>();
        let (batches_tx, batches) = export_channel();
        tokio::spawn(async move {
            let mut client = client;
            let result = async {
                let tx = begin_snapshot(&mut client).await?;
                let revision = reads::head(&tx, &ns).await?;
                if revision_tx.send(revision).is_err() {
                    return Ok(());
                }
                reads::export(&tx, &ns, &batches_tx).await?;
                tx.commit().await?;
                Ok::<_, StorageError>(())
            }
            .await;
            if let Err(error) = result {
                // Before the revision went out, the request waiting for it reads the error from
                // the stream; after, the stream ends with it.
                let _ = batches_tx.send(Err(error)).await;
            }
        });
        let Ok(revision) = revision_rx.await else {
            // The task failed before the revision: its error is on the stream.
            let mut batches = batches;
            return Err(match batches.recv().await {
                Some(Err(error)) => error,
                _ => StorageError::Database("the export task stopped".into()),
            });
        };
        Ok(ExportStream { revision, batches })
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        reads::record(&self.client().await?, ns, collection, id).await
    }

    async fn keys(&self, ns: &str) -> Result<Vec<(String, String)>, StorageError> {
        reads::keys(&self.client().await?, ns).await
    }

    async fn stats(&self, ns: &str) -> Result<StatsResponse, StorageError> {
        self.snapshot(async |tx| reads::stats(tx, ns).await).await
    }

    async fn head(&self, ns: &str) -> Result<Revision, StorageError> {
        reads::head(&self.client().await?, ns).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn insert_token(&self, token_hash: &str, user: &str) -> Result<(), StorageError> {
        writes::insert_token(&self.client().await?, token_hash, user).await
    }

    async fn user_for_token(
        &self,
        token_hash: &str,
        with_dev: bool,
    ) -> Result<Option<String>, StorageError> {
        reads::user_for_token(&self.client().await?, token_hash, with_dev).await
    }

    async fn revoke_tokens(&self, user: &str, id: Option<&str>) -> Result<u64, StorageError> {
        writes::revoke_tokens(&self.client().await?, user, id).await
    }

    async fn mark_dev_token(&self, token_hash: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client.execute("UPDATE tokens SET dev = TRUE WHERE hash = $1", &[&token_hash]).await?;
        Ok(())
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StorageError> {
        reads::list_tokens(&self.client().await?, user).await
    }

    async fn close(&self) {
        self.listener.abort();
        self.pruner.abort();
        self.pool.close();
    }
}
