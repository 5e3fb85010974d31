//! Server configuration, built in code (tests, other crates' end-to-end tests) or by the
//! binary from its command line.

use std::path::PathBuf;
use std::time::Duration;

/// Where the records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// An embedded SQLite file (created with its parent folder when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user@host:port/db`); several servers may share it.
    Postgres(String),
}

impl DatabaseConfig {
    /// The default database: `./data/persist.sqlite3`.
    pub fn default_sqlite() -> Self {
        DatabaseConfig::Sqlite(PathBuf::from("data/persist.sqlite3"))
    }

    /// Reads `--database`: `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite:<path>` or a
    /// plain path is SQLite.
    pub fn parse(value: &str) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            DatabaseConfig::Postgres(value.to_owned())
        } else {
            let path = value.strip_prefix("sqlite://").or_else(|| value.strip_prefix("sqlite:"));
            DatabaseConfig::Sqlite(PathBuf::from(path.unwrap_or(value)))
        }
    }

    /// A description safe to log (the PostgreSQL password is hidden).
    pub fn describe(&self) -> String {
        match self {
            DatabaseConfig::Sqlite(path) => format!("sqlite:{}", path.display()),
            DatabaseConfig::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}://***@{}", &url[..scheme], &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

/// Size, rate, time and connection limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body, in bytes (larger → 413). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Largest body of the bulk import routes (`/v1/import`, `/api/storage/import`). Default 32 MiB.
    pub max_import_bytes: usize,
    /// Largest single value (its JSON text: compact for a push, as sent for an import or PUT), in
    /// bytes. Default 256 KiB.
    pub max_value_bytes: usize,
    /// Most bytes of values in one pull page (plus 256 per record); a page stops there and says
    /// `has_more`, and always carries at least one record. Default 4 MiB.
    pub max_page_bytes: u64,
    /// Bytes of pull pages held in memory at once on this instance, all users together: under
    /// load pages get smaller, and a pull waits when less than 256 KiB is left. `0` = no cap.
    /// Default 64 MiB.
    pub max_read_bytes_in_flight: u64,
    /// Exports (`/v1/export`, `/api/storage/export`) one user may be reading at once (more → 429
    /// `rate_limited`): each holds a database connection until its client has read it. `0` = no
    /// cap. Default 2.
    pub max_exports_per_user: usize,
    /// Exports running at once on this instance, all users together (more → 429). `0` = no cap.
    /// Default 8.
    pub max_exports: usize,
    /// Imports (`/v1/import`, `/api/storage/import`) one user may send at once (more → 429
    /// `rate_limited`, before the body is read): each holds up to `max_import_bytes` twice in
    /// memory while it is written. `0` = no cap. Default 1.
    pub max_imports_per_user: usize,
    /// Imports in progress at once on this instance, all users together (more → 429). `0` = no
    /// cap. Default 4.
    pub max_imports: usize,
    /// Most live records (tombstones not counted) one user may keep; a write past it is refused
    /// (a push op `rejected`, an import or PUT 507, code `quota_exceeded`); deletes always pass.
    /// `0` = no quota. Default 100,000.
    pub max_records_per_user: u64,
    /// Most bytes of live values (their JSON text) one user may keep; refused like
    /// `max_records_per_user`. `0` = no quota. Default 1 GiB.
    pub max_bytes_per_user: u64,
    /// Sustained requests per second per user; `0` turns rate limiting off. Default 100.
    pub rate_limit_per_second: f64,
    /// Requests a user may send at once before the sustained rate applies. Default 200.
    pub rate_limit_burst: u32,
    /// Sustained failed authentications per second per client address (TCP peer; IPv6 per /64):
    /// requests with a missing, unknown or revoked token, and the first lookup of a valid token
    /// not yet cached. Past it 429 `rate_limited` with `Retry-After`, before the database is
    /// asked. `0` turns it off. Default 20.
    pub anonymous_rate_limit_per_second: f64,
    /// Failed authentications a client address may make at once. Default 40.
    pub anonymous_rate_limit_burst: u32,
    /// Longest time a request may take to arrive and be answered: past it, 408 while the body is
    /// still arriving, 503 once it has arrived. Import and export routes get ten times this; a
    /// streamed answer (the event stream) is not cut. `Duration::ZERO` turns it off. Default 30 s.
    pub request_timeout: Duration,
    /// Event streams (`GET /v1/events`) one user may have open at once (more → 429
    /// `rate_limited`); `0` = no cap. Default 64.
    pub max_event_streams_per_user: usize,
    /// Event streams open at once on this instance, all users together (more → 429
    /// `rate_limited`); `0` = no cap. Default 10,000.
    pub max_event_streams: usize,
    /// Longest time a request's head (request line and headers) may take to arrive; past it the
    /// connection is closed. The clock also runs while a kept-alive connection waits for its next
    /// request, so an idle kept-alive connection is closed after this long too.
    /// `Duration::ZERO` turns it off. Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved either way for this long is closed: a stalled upload, a
    /// client that stopped reading its answer or its event stream (which sends a keep-alive
    /// comment every 15 s, so keep this above 15 s). It also runs while a handler works before
    /// its first byte, so keep it above the bulk routes' timeout (ten times `request_timeout`):
    /// an import or export may legitimately send nothing for that long. Stalls are bounded
    /// sooner by `request_timeout` for everything else. `Duration::ZERO` turns it off. Default
    /// 310 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Past it, new connections are not accepted: they wait in the
    /// kernel's listen backlog until a connection closes (or the kernel refuses them once the
    /// backlog is full). `0` = no cap. Default 1,024.
    pub max_connections: usize,
    /// Connections one client address (TCP peer; IPv6 per /64) may have open at once; past it a
    /// new connection is closed at once, so one client cannot take every slot of
    /// `max_connections`. Behind a reverse proxy every client has the proxy's address: raise it
    /// or turn it off there. `0` = no cap. Default 256.
    pub max_connections_per_address: usize,
    /// After a shutdown starts, how long in-flight requests get to finish; then the remaining
    /// connections are dropped and the server stops. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 32 * 1024 * 1024,
            max_value_bytes: 256 * 1024,
            max_page_bytes: 4 * 1024 * 1024,
            max_read_bytes_in_flight: 64 * 1024 * 1024,
            max_exports_per_user: 2,
            max_exports: 8,
            max_imports_per_user: 1,
            max_imports: 4,
            max_records_per_user: 100_000,
            max_bytes_per_user: 1024 * 1024 * 1024,
            rate_limit_per_second: 100.0,
            rate_limit_burst: 200,
            anonymous_rate_limit_per_second: 20.0,
            anonymous_rate_limit_burst: 40,
            request_timeout: Duration::from_secs(30),
            max_event_streams_per_user: 64,
            max_event_streams: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(310),
            max_connections: 1024,
            max_connections_per_address: 256,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything [`crate::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The database.
    pub database: DatabaseConfig,
    /// Origins allowed by CORS (`https://app.example`); empty = same origin only; `*` = any.
    pub cors_origins: Vec<String>,
    /// Size and rate limits.
    pub limits: Limits,
    /// A folder of static files (the built app) served for non-API paths, with `index.html` as
    /// the fallback of unknown paths (single-page app).
    pub static_dir: Option<PathBuf>,
    /// Development mode: only on loopback; creates a token of user `dev` for this run (revoked
    /// when the server stops, and by the next `dev` start if the server was killed) and serves it
    /// at `GET /dev-config.json`; allows CORS from any loopback origin.
    pub dev: bool,
    /// Where `dev` mode keeps this run's token for tools (tokens are stored hashed, so the plain
    /// token is kept in this file, mode 0600; removed when the server stops). Default: beside the
    /// SQLite file, or `data/dev-token`.
    pub dev_token_file: Option<PathBuf>,
    /// Unauthenticated `/api/storage/*` (CodeForge API) requests act as this user, for old
    /// CodeForge clients that cannot send headers. Off by default.
    pub codeforge_anonymous_user: Option<String>,
    /// Bearer token that `/metrics` requires. Without it, `/metrics` is served only when the
    /// server listens on a loopback address.
    pub metrics_token: Option<String>,
    /// How long op ids are remembered for idempotent retries. Default 7 days.
    pub op_retention: Duration,
    /// PostgreSQL connection pool size. Default 16.
    pub postgres_pool_size: usize,
    /// SQLite read connections. Default 4.
    pub sqlite_readers: usize,
}

impl ServerConfig {
    /// The defaults with another database.
    pub fn with_database(database: DatabaseConfig) -> Self {
        Self {
            database,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            static_dir: None,
            dev: false,
            dev_token_file: None,
            codeforge_anonymous_user: None,
            metrics_token: None,
            op_retention: Duration::from_secs(7 * 24 * 3600),
            postgres_pool_size: 16,
            sqlite_readers: 4,
        }
    }

    /// Where dev mode keeps its token.
    pub(crate) fn dev_token_path(&self) -> PathBuf {
        if let Some(path) = &self.dev_token_file {
            return path.clone();
        }
        match &self.database {
            DatabaseConfig::Sqlite(path) => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".dev-token");
                path.with_file_name(name)
            }
            DatabaseConfig::Postgres(_) => PathBuf::from("data/dev-token"),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::with_database(DatabaseConfig::default_sqlite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend() {
        assert_eq!(
            DatabaseConfig::parse("postgres://u@h/db"),
            DatabaseConfig::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(DatabaseConfig::parse("sqlite:a/b.db"), DatabaseConfig::Sqlite("a/b.db".into()));
        assert_eq!(DatabaseConfig::parse("x.db"), DatabaseConfig::Sqlite("x.db".into()));
    }

    #[test]
    fn describe_hides_the_password() {
        let url = DatabaseConfig::Postgres("postgres://u:secret@h:5432/db".into());
        assert_eq!(url.describe(), "postgres://***@h:5432/db");
    }

    #[test]
    fn dev_token_sits_beside_the_sqlite_file() {
        let config = ServerConfig::with_database(DatabaseConfig::Sqlite("data/x.sqlite3".into()));
        assert_eq!(config.dev_token_path(), PathBuf::from("data/x.sqlite3.dev-token"));
    }
}
