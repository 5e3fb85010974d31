//! Development mode: a token for user `dev`, handed to the app at `GET /dev-config.json`.

use std::path::Path;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use persist_protocol::{DevConfig, ErrorCode};

use super::AppState;
use crate::auth::token;
use crate::error::ApiError;
use crate::storage::{Storage, StorageError, TOKEN_ID_LEN};

/// The user of development mode.
pub(crate) const DEV_USER: &str = "dev";

/// `GET /dev-config.json` → `{"token": "...", "user": "dev"}`, only to requests whose `Host` is
/// a loopback name: a page of another site that a DNS rebinding points at 127.0.0.1 sends its
/// own host name, and gets 403.
pub(super) async fn config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<DevConfig>, ApiError> {
    let token = state.dev_token.clone().ok_or_else(|| ApiError::not_found("not in dev mode"))?;
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    if !host.is_some_and(is_loopback_host) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the dev token is served only to a loopback Host (127.0.0.1, localhost, [::1])",
        ));
    }
    Ok(Json(DevConfig { token, user: DEV_USER.to_owned() }))
}

/// Whether a `Host` header names this machine's loopback: `127.0.0.1`, `localhost` or `[::1]`,
/// with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => return inside == "::1",
            Some((inside, port)) => {
                return inside == "::1" && port.strip_prefix(':').is_some_and(valid_port)
            }
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost")
}

/// `:<digits>` after a host name.
fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

/// Makes the development token of this run: the one an earlier run kept in `path` is revoked
/// first (a server that was killed could not revoke its own), then a fresh one is stored, marked
/// as the development token (which a server started without `--dev` refuses) and kept in `path`
/// (mode 0600) for tools. [`revoke_dev_token`] ends it when the server stops.
///
/// Only the token of this `path` is touched, so several dev servers sharing a PostgreSQL
/// database (each with its own token file) do not revoke each other's.
pub(crate) async fn new_dev_token(
    storage: &dyn Storage,
    path: &Path,
) -> Result<String, StorageError> {
    if let Ok(earlier) = std::fs::read_to_string(path) {
        revoke(storage, earlier.trim()).await?;
    }
    let fresh =
        token::generate().map_err(|e| StorageError::Database(format!("no randomness: {e}")))?;
    let hash = token::hash(&fresh);
    storage.insert_token(&hash, DEV_USER).await?;
    storage.mark_dev_token(&hash).await?;
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        write_private(path, &format!("{fresh}\n"))
    };
    if let Err(error) = write() {
        tracing::warn!(%error, path = %path.display(), "cannot keep the dev token in a file");
    }
    Ok(fresh)
}

/// Ends this run's development token when its server stops: revoked in the database, its file
/// removed.
pub(crate) async fn revoke_dev_token(storage: &dyn Storage, path: &Path, token: &str) {
    if let Err(error) = revoke(storage, token).await {
        tracing::warn!(%error, "cannot revoke the dev token");
    }
    let _ = std::fs::remove_file(path);
}

/// Revokes one development token (by the id its hash gives it).
async fn revoke(storage: &dyn Storage, token: &str) -> Result<(), StorageError> {
    if token.is_empty() {
        return Ok(());
    }
    let hash = token::hash(token);
    storage.revoke_tokens(DEV_USER, Some(&hash[..TOKEN_ID_LEN])).await?;
    Ok(())
}

/// Writes `contents` to `path`, readable by the owner only (0600) from the start: a new file is
/// created with that mode, an existing one is narrowed before anything is written to it.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[cfg(unix)]
    #[test]
    fn token_file_is_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.path().join("dev-token");
        super::write_private(&fresh, "secret\n").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "secret\n");
        let old = dir.path().join("old-token");
        std::fs::write(&old, "older and longer\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&old, "new\n").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new\n");
    }

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in
            ["127.0.0.1", "127.0.0.1:5001", "localhost", "LocalHost:8080", "[::1]", "[::1]:5001"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:5001",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "127.0.0.1:5001@evil",
            "[::1]x",
            "[::2]:5001",
            "127.0.0.1:port",
            "",
            "0.0.0.0:5001",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
