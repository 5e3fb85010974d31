//! The embedded SQLite backend: one writer thread with group commit, a few read connections.
//!
//! - `schema`: connection settings and migrations;
//! - `reads`: the read queries;
//! - `writes`: the mutations (push, upsert, delete, clear, tokens, op pruning);
//! - `writer`: the thread that runs the mutations in group-committed transactions;
//! - `bulk`: large upserts and clears, which the writer applies one bounded slice per turn;
//! - `checkpoint`: the thread that copies the WAL back into the database.

mod bulk;
mod checkpoint;
mod reads;
mod schema;
mod writer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use persist_protocol::{Revision, StatsResponse};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::raw::export_channel;
use super::{
    EventHub, ExportStream, Mutation, PullPage, Storage, StorageError, StorageOptions,
    StoredRecord, TokenInfo, WriteOutcome,
};
use writer::Job;
use writes::TokenChange;

/// SQLite storage. Writes go through a channel to the writer thread; reads run on a small pool of
/// read-only connections in blocking tasks.
#[derive(Debug)]
pub(crate) struct SqliteStorage {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer_done: Mutex<Option<oneshot::Receiver<()>>>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
    checkpointer: Mutex<checkpoint::Checkpointer>,
    path: PathBuf,
}

impl SqliteStorage {
    pub(crate) async fn open(
        path: &Path,
        options: &StorageOptions,
        events: EventHub,
    ) -> Result<Self, StorageError> {
        let path = path.to_path_buf();
        let readers_wanted = options.sqlite_readers.max(1);
        let retention = options.op_retention;
        let quota = options.quota;
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let writer = schema::open_writer(&path)?;
                let readers = (0..readers_wanted)
                    .map(|_| schema::open_reader(&path))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StorageError>((writer, readers))
            })
            .await
            .map_err(|e| StorageError::Database(format!("open task failed: {e}")))??
        };
        let (writer_conn, readers) = opened;
        let checkpointer = checkpoint::Checkpointer::start(&path)?;
        let (sender, receiver) = mpsc::channel(8192);
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer::run(writer_conn, receiver, events, retention, quota);
                let _ = done_tx.send(());
            })
            .map_err(|e| StorageError::Database(format!("cannot start the writer: {e}")))?;
        tracing::info!(path = %path.display(), "sqlite storage open (WAL, synchronous=FULL)");
        Ok(Self {
            jobs: Mutex::new(Some(sender)),
            writer_done: Mutex::new(Some(done_rx)),
            reader_permits: Semaphore::new(readers.len()),
            readers: Mutex::new(readers),
            checkpointer: Mutex::new(checkpointer),
            path,
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StorageError> {
        let guard = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.clone().ok_or_else(|| StorageError::Unavailable("the server is shutting down".into()))
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> Job,
    ) -> Result<T, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .send(job(reply))
            .await
            .map_err(|_| StorageError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StorageError::Unavailable("the writer has stopped".into()))?
    }

    /// Runs `query` on a read connection in a blocking task.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StorageError::Unavailable("storage closed".into()))?;
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = query(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StorageError::Database(format!("read task failed: {e}")))?;
        self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(conn);
        result
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn write(&self, ns: &str, mutation: Mutation) -> Result<WriteOutcome, StorageError> {
        let ns = ns.to_owned();
        self.submit(|reply| Job::Write { ns, mutation, reply }).await
    }

    async fn pull(
        &self,
        ns: &str,
        since: Revision,
        limit: u32,
        max_bytes: u64,
    ) -> Result<PullPage, StorageError> {
        let ns = ns.to_owned();
        self.read(move |conn| reads::pull(conn, &ns, since, limit, max_bytes)).await
    }

    /// On a connection of its own, not one of the pool's: an export lasts as long as its client
    /// takes to read it, and must not hold a reader the short requests wait for. (The HTTP layer
    /// caps how many exports run at once.)
    async fn export(&self, ns: &str) -> Result<ExportStream, StorageError> {
        let (ns, path) = (ns.to_owned(), self.path.clone());
        let (revision_tx, revision_rx) = oneshot::channel();
        let (batches_tx, batches) = export_channel();
        tokio::task::spawn_blocking(move || {
            let conn = match schema::open_reader(&path) {
                Ok(conn) => conn,
                Err(error) => {
                    let _ = revision_tx.send(Err(error));
                    return;
                }
            };
            let mut revision_tx = Some(revision_tx);
            let result = reads::export(
                &conn,
                &ns,
                |revision| {
                    if let Some(tx) = revision_tx.take() {
                        let _ = tx.send(Ok(revision));
                    }
                },
                |batch| batches_tx.blocking_send(batch).is_ok(),
            );
            if let Err(error) = result {
                match revision_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(Err(error));
                    }
                    None => {
                        let _ = batches_tx.blocking_send(Err(error));
                    }
                }
            }
        });
        let revision = revision_rx
            .await
            .map_err(|_| StorageError::Database("the export task stopped".into()))??;
        Ok(ExportStream { revision, batches })
    }

    async fn get(
        &self,
        ns: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StorageError> {
        let (ns, collection, id) = (ns.to_owned(), collection.to_owned(), id.to_owned());
        self.read(move |conn| reads::record(conn, &ns, &collection, &id)).await
    }

    async fn keys(&self, ns: &str) -> Result<Vec<(String, String)>, StorageError> {
        let ns = ns.to_owned();
        self.read(move |conn| reads::keys(conn, &ns)).await
    }

    async fn stats(&self, ns: &str) -> Result<StatsResponse, StorageError> {
        let ns = ns.to_owned();
        self.read(move |conn| reads::stats(conn, &ns)).await
    }

    async fn head(&self, ns: &str) -> Result<Revision, StorageError> {
        let ns = ns.to_owned();
        self.read(move |conn| reads::head(conn, &ns)).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.sender()?;
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn insert_token(&self, token_hash: &str, user: &str) -> Result<(), StorageError> {
        let change = TokenChange::Insert { hash: token_hash.to_owned(), user: user.to_owned() };
        self.submit(|reply| Job::Tokens { change, reply }).await.map(|_| ())
    }

    async fn revoke_tokens(&self, user: &str, id: Option<&str>) -> Result<u64, StorageError> {
        let change = TokenChange::Revoke { user: user.to_owned(), id: id.map(str::to_owned) };
        self.submit(|reply| Job::Tokens { change, reply }).await
    }

    async fn mark_dev_token(&self, token_hash: &str) -> Result<(), StorageError> {
        let change = TokenChange::MarkDev { hash: token_hash.to_owned() };
        self.submit(|reply| Job::Tokens { change, reply }).await.map(|_| ())
    }

    async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StorageError> {
        let user = user.map(str::to_owned);
        self.read(move |conn| reads::list_tokens(conn, user.as_deref())).await
    }

    async fn user_for_token(
        &self,
        token_hash: &str,
        with_dev: bool,
    ) -> Result<Option<String>, StorageError> {
        let hash = token_hash.to_owned();
        self.read(move |conn| reads::user_for_token(conn, &hash, with_dev)).await
    }

    async fn close(&self) {
        self.checkpointer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).stop();
        // Dropping the only sender lets the writer drain its queue and stop.
        drop(self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
        let done = self.writer_done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}
