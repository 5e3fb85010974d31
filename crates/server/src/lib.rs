//! `persist-server`: the sync server of yewdux-persist.
//!
//! - The sync protocol of [`persist_protocol`] at `/v1/*` (push, pull, export, import, events,
//!   stats), authenticated by bearer tokens, one namespace per user.
//! - CodeForge's key-value storage API at `/api/storage/*` and `/health`, on the same records,
//!   for the old CodeForge clients.
//! - SQLite embedded by default (WAL, `synchronous=FULL`, one writer thread with group commit), or
//!   PostgreSQL for several instances sharing one database (events via LISTEN/NOTIFY).
//! - Limits (body, value, per-user rate), CORS allowlist, Prometheus `/metrics`, graceful
//!   shutdown that loses no acknowledged write.
//!
//! Start one in-process (tests, other crates' end-to-end tests):
//!
//! ```no_run
//! # async fn demo() -> Result<(), persist_server::ServerError> {
//! use persist_server::{DatabaseConfig, ServerConfig};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = persist_server::start(
//!     listener,
//!     ServerConfig::with_database(DatabaseConfig::Sqlite("/tmp/persist.sqlite3".into())),
//! )
//! .await?;
//! let token = server.create_token("alice").await?;
//! // ... talk to server.base_url() with `Authorization: Bearer {token}` ...
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod auth;
mod config;
mod connections;
mod error;
mod http;
mod metrics;
mod server;
mod storage;

pub use auth::admin::{create_token, list_tokens, revoke_tokens};
pub use config::{DatabaseConfig, Limits, ServerConfig};
pub use error::ServerError;
pub use server::{start, start_on, RunningServer, ShutdownHandle};
pub use storage::{StorageError, TokenInfo};
