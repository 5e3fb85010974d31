//! [`Error`]: everything the runtime's API can fail with, and the flush failure it carries.

pub use persist_engine::{
    ConfigError, FailedKey, FlushError, SyncError, WriteError, WriteErrorKind,
};
pub use persist_protocol::KeyError;

/// An error of the persistence runtime.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flush could not make every change durable; the failed changes stay queued and are
    /// retried.
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// The runtime was shut down before the operation ended.
    #[error("the persistence runtime stopped before this finished")]
    Stopped,
    /// A configuration value is invalid; nothing was changed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An item key or collection name the sync protocol refuses (reserved `__` prefix, control
    /// characters, too long...).
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// No persistence runtime runs in the (global) yewdux context.
    #[error("no persistence runtime runs in this yewdux context")]
    NotStarted,
    /// A sync was asked for, but no remote is configured (`PersistOptions::remote`).
    #[error("no remote server is configured")]
    NoRemote,
    /// A sync failed; what it did before failing stays done, the rest stays queued.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The local store failed (IndexedDB unavailable, quota, unreadable data); nothing was
    /// changed.
    #[error("local storage: {0}")]
    Storage(#[from] crate::local::StoreError),
    /// [`start`](crate::start) was called after the context's runtime had started.
    #[error("persistence already started in this context; call start before any persisted store is used")]
    AlreadyStarted,
}
