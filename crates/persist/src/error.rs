//! [`Error`]: everything the runtime's API can fail with.

use crate::config::ConfigError;
use crate::engine::FlushError;

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
    /// Collection names starting with `__` are kept for the runtime's own stores.
    #[error("collection name {0:?} is reserved (names starting with \"__\")")]
    ReservedCollection(String),
    /// No persistence runtime runs in the (global) yewdux context.
    #[error("no persistence runtime runs in this yewdux context")]
    NotStarted,
    /// [`configure`](crate::configure) was called after the context's runtime had started.
    #[error("persistence already started in this context; call configure before any persisted store is used")]
    AlreadyStarted,
}
