//! Starting, running and stopping a server in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{admin, token};
use crate::config::ServerConfig;
use crate::connections::{self, ConnectionLimits};
use crate::error::ServerError;
use crate::http::{new_dev_token, revoke_dev_token, router, AppState};
use crate::storage::{self, EventHub, StorageOptions, TokenInfo};

/// A running server: its address, a way to stop it, and its task.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    state: AppState,
    dev_token: Option<String>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// Asks a server to stop gracefully: no new connections, in-flight requests finish (every
/// acknowledged write is durable before its answer is sent) within
/// [`Limits::shutdown_timeout`](crate::Limits::shutdown_timeout), after which the remaining
/// connections are dropped; event streams end, the database is closed. Cloneable; usable from a signal handler.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Starts the graceful shutdown (idempotent).
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl RunningServer {
    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The development token, when started with `dev`.
    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    /// Creates a bearer token for `user` in this server's database.
    ///
    /// # Errors
    /// - [`ServerError::Config`] for an invalid user name;
    /// - [`ServerError::Storage`] when the database fails.
    pub async fn create_token(&self, user: &str) -> Result<String, ServerError> {
        admin::insert_new_token(&*self.state.storage, user).await
    }

    /// Revokes the tokens of `user` (only the one whose id is `id`, when given; ids are shown by
    /// [`RunningServer::list_tokens`]) and returns how many were revoked. Takes effect at once on
    /// this server (its open event streams of those tokens end too); other servers sharing the
    /// database stop accepting them within 30 s (their token cache).
    ///
    /// # Errors
    /// - [`ServerError::Config`] for an invalid user name or id;
    /// - [`ServerError::Storage`] when the database fails.
    pub async fn revoke_tokens(&self, user: &str, id: Option<&str>) -> Result<u64, ServerError> {
        let revoked = admin::delete_tokens(&*self.state.storage, user, id).await?;
        self.state.tokens.clear();
        self.state.events.tokens_revoked();
        Ok(revoked)
    }

    /// The stored tokens (of `user` only, when given): user, id and creation time.
    ///
    /// # Errors
    /// [`ServerError::Storage`] when the database fails.
    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, ServerError> {
        Ok(self.state.storage.list_tokens(user).await?)
    }

    /// Stops gracefully and waits until the database is closed.
    ///
    /// # Errors
    /// Whatever made the server fail while running.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.shutdown();
        self.wait().await
    }

    /// Waits until the server has stopped (after a [`ShutdownHandle::shutdown`]).
    ///
    /// # Errors
    /// Whatever made the server fail while running.
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(ServerError::Io(std::io::Error::other(error))),
        }
    }
}

/// Opens the database (running migrations) and serves on `listener` until shut down.
///
/// # Errors
/// - [`ServerError::Config`]: `dev` on a non-loopback address, a bad CodeForge anonymous user name;
/// - [`ServerError::Storage`]: the database cannot be opened or migrated;
/// - [`ServerError::Io`]: the listener has no local address.
///
/// ```no_run
/// # async fn demo() -> Result<(), persist_server::ServerError> {
/// use persist_server::{DatabaseConfig, ServerConfig};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let config = ServerConfig::with_database(DatabaseConfig::Sqlite("/tmp/x.sqlite3".into()));
/// let server = persist_server::start(listener, config).await?;
/// let token = server.create_token("alice").await?;
/// println!("{} {token}", server.base_url());
/// server.shutdown().await?;
/// # Ok(()) }
/// ```
pub async fn start(
    listener: TcpListener,
    config: ServerConfig,
) -> Result<RunningServer, ServerError> {
    let addr = listener.local_addr()?;
    check_dev_address(config.dev, addr)?;
    if let Some(user) = &config.codeforge_anonymous_user {
        token::validate_user(user).map_err(ServerError::Config)?;
        tracing::warn!(
            user,
            "--codeforge-anonymous-user: unauthenticated /api/storage requests act as this user"
        );
    }
    let events = EventHub::new();
    let storage =
        storage::open(&config.database, &StorageOptions::from_config(&config), events.clone())
            .await?;
    let dev_token = if config.dev {
        let path = config.dev_token_path();
        let token = new_dev_token(&*storage, &path).await?;
        tracing::info!(path = %path.display(), "dev mode: token of user `dev` at /dev-config.json");
        Some(token)
    } else {
        None
    };
    let metrics_open = config.metrics_token.is_none() && addr.ip().is_loopback();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState::new(
        Arc::clone(&storage),
        config,
        metrics_open,
        events,
        shutdown_rx.clone(),
        dev_token.clone(),
    );
    let app = router(state.clone());
    let limits = ConnectionLimits::from_limits(&state.config.limits);
    let task_storage = Arc::clone(&storage);
    let dev_token_path = state.config.dev_token_path();
    let task_dev_token = dev_token.clone();
    let task = tokio::spawn(async move {
        connections::serve(listener, app, limits, shutdown_rx).await;
        if let Some(token) = task_dev_token {
            revoke_dev_token(&*task_storage, &dev_token_path, &token).await;
        }
        task_storage.close().await;
        tracing::info!("stopped");
        Ok(())
    });
    tracing::info!(%addr, "listening");
    Ok(RunningServer { addr, shutdown: ShutdownHandle(shutdown_tx), state, dev_token, task })
}

/// Binds `addr` and serves on it: [`start`] on a listener of its own. A configuration that may not
/// run on `addr` (`dev` on a non-loopback address) is refused before anything is bound. The
/// binary's way in; tests bind port 0 themselves and call [`start`].
///
/// # Errors
/// - [`ServerError::Io`]: `addr` cannot be bound;
/// - the errors of [`start`].
pub async fn start_on(
    addr: SocketAddr,
    config: ServerConfig,
) -> Result<RunningServer, ServerError> {
    check_dev_address(config.dev, addr)?;
    let listener = TcpListener::bind(addr).await?;
    start(listener, config).await
}

/// `--dev` hands a token to anyone who asks: only on loopback.
fn check_dev_address(dev: bool, addr: SocketAddr) -> Result<(), ServerError> {
    if dev && !addr.ip().is_loopback() {
        return Err(ServerError::Config(format!(
            "--dev serves a token without authentication and needs a loopback address, not {addr}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_refuses_non_loopback_addresses() {
        assert!(check_dev_address(true, "127.0.0.1:5001".parse().unwrap()).is_ok());
        assert!(check_dev_address(true, "[::1]:5001".parse().unwrap()).is_ok());
        let refused = check_dev_address(true, "0.0.0.0:5001".parse().unwrap()).unwrap_err();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        assert!(check_dev_address(false, "0.0.0.0:5001".parse().unwrap()).is_ok());
    }
}
