//! Development mode: a token for user `dev`, handed to the app at `GET /dev-config.json`.

use std::path::Path;

use axum::extract::State;
use axum::Json;
use persist_protocol::DevConfig;

use super::AppState;
use crate::auth::token;
use crate::error::ApiError;
use crate::storage::{Storage, StorageError};

/// The user of development mode.
pub(crate) const DEV_USER: &str = "dev";

/// `GET /dev-config.json` → `{"token": "...", "user": "dev"}`.
pub(super) async fn config(State(state): State<AppState>) -> Result<Json<DevConfig>, ApiError> {
    let token = state.dev_token.clone().ok_or_else(|| ApiError::not_found("not in dev mode"))?;
    Ok(Json(DevConfig { token, user: DEV_USER.to_owned() }))
}

/// Reuses the token kept in `path` when the database still knows it, else creates one and keeps
/// it there (mode 0600).
pub(crate) async fn ensure_dev_token(
    storage: &dyn Storage,
    path: &Path,
) -> Result<String, StorageError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if storage.user_for_token(&token::hash(&existing)).await?.as_deref() == Some(DEV_USER) {
            return Ok(existing);
        }
    }
    let fresh =
        token::generate().map_err(|e| StorageError::Database(format!("no randomness: {e}")))?;
    storage.insert_token(&token::hash(&fresh), DEV_USER).await?;
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, format!("{fresh}\n"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    };
    if let Err(error) = write() {
        tracing::warn!(%error, path = %path.display(), "cannot keep the dev token; a new one is made next start");
    }
    Ok(fresh)
}
