//! Token administration: create, list and revoke bearer tokens, from the command line (on a
//! database no server needs to be running on) or through a [`RunningServer`](crate::RunningServer).

use std::sync::Arc;

use super::token;
use crate::config::{DatabaseConfig, ServerConfig};
use crate::error::ServerError;
use crate::storage::{self, EventHub, Storage, StorageOptions, TokenInfo};

/// Creates a bearer token for `user` in `database` (migrating it first) and returns it. Only its
/// SHA-256 hash is stored: the token cannot be shown again.
///
/// # Errors
/// - [`ServerError::Config`] for an invalid user name;
/// - [`ServerError::Storage`] when the database cannot be opened or written.
pub async fn create_token(database: &DatabaseConfig, user: &str) -> Result<String, ServerError> {
    token::validate_user(user).map_err(ServerError::Config)?;
    let storage = open_for_tokens(database).await?;
    let result = insert_new_token(&*storage, user).await;
    storage.close().await;
    result
}

/// Revokes the tokens of `user` in `database` (only the one whose id is `id`, when given) and
/// returns how many were revoked. Running servers stop accepting them within 30 s (their token
/// cache).
///
/// # Errors
/// - [`ServerError::Config`] for an invalid user name or id;
/// - [`ServerError::Storage`] when the database cannot be opened or written.
pub async fn revoke_tokens(
    database: &DatabaseConfig,
    user: &str,
    id: Option<&str>,
) -> Result<u64, ServerError> {
    token::validate_user(user).map_err(ServerError::Config)?;
    let storage = open_existing(database).await?;
    let result = delete_tokens(&*storage, user, id).await;
    storage.close().await;
    result
}

/// The stored tokens in `database` (of `user` only, when given).
///
/// # Errors
/// [`ServerError::Storage`] when the database cannot be opened or read.
pub async fn list_tokens(
    database: &DatabaseConfig,
    user: Option<&str>,
) -> Result<Vec<TokenInfo>, ServerError> {
    let storage = open_existing(database).await?;
    let result = storage.list_tokens(user).await.map_err(ServerError::from);
    storage.close().await;
    result
}

/// Like [`open_for_tokens`], but a SQLite file that does not exist is an error instead of a new
/// empty database (a mistyped `--database` must not list nothing or revoke nothing silently).
async fn open_existing(database: &DatabaseConfig) -> Result<Arc<dyn Storage>, ServerError> {
    if let DatabaseConfig::Sqlite(path) = database {
        if !path.is_file() {
            return Err(ServerError::Config(format!("no database at {}", path.display())));
        }
    }
    open_for_tokens(database).await
}

/// Opens (and migrates) `database` with the default options, for one token command.
async fn open_for_tokens(database: &DatabaseConfig) -> Result<Arc<dyn Storage>, ServerError> {
    let options = StorageOptions::from_config(&ServerConfig::with_database(database.clone()));
    Ok(storage::open(database, &options, EventHub::new()).await?)
}

/// Revokes the tokens of `user` (only the one named `id`, when given) in an open `storage`.
pub(crate) async fn delete_tokens(
    storage: &dyn Storage,
    user: &str,
    id: Option<&str>,
) -> Result<u64, ServerError> {
    token::validate_user(user).map_err(ServerError::Config)?;
    if let Some(id) = id {
        token::validate_id(id).map_err(ServerError::Config)?;
    }
    Ok(storage.revoke_tokens(user, id).await?)
}

/// Stores the hash of a fresh token for `user` in an open `storage`; returns the token.
pub(crate) async fn insert_new_token(
    storage: &dyn Storage,
    user: &str,
) -> Result<String, ServerError> {
    token::validate_user(user).map_err(ServerError::Config)?;
    let fresh = token::generate()
        .map_err(|e| ServerError::Config(format!("no randomness available: {e}")))?;
    storage.insert_token(&token::hash(&fresh), user).await?;
    Ok(fresh)
}
