//! WAL checkpoints off the writer thread. With SQLite's automatic checkpoints the committing
//! writer copies the WAL into the database (and fsyncs it) inline, stalling every push queued
//! behind it; here a separate connection runs passive checkpoints, which never block the writer.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::schema;
use crate::storage::StorageError;

/// How often the WAL is copied back into the database. Small, frequent checkpoints interfere
/// less with the writer's WAL fsyncs than large ones (p99 at 80 % load on the 2-core VM: 7–18 ms
/// at 50 ms, up to 88 ms at 250 ms; 10 ms was no better than 50 ms).
const EVERY: Duration = Duration::from_millis(50);

/// The checkpointer thread; stops when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Self, StorageError> {
        let conn = schema::open_checkpointer(path)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    let started = std::time::Instant::now();
                    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(%error, "wal checkpoint failed");
                    }
                    tracing::debug!(took = ?started.elapsed(), "wal checkpoint");
                }
            })
            .map_err(|e| StorageError::Database(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
