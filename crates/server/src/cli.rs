//! The command line: `persist-server [serve] [flags]` and `persist-server token
//! create|list|revoke`. Every flag also reads an environment variable (shown in `--help`). Part
//! of the binary only: the library takes a [`ServerConfig`], however it was made.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use persist_server::{DatabaseConfig, Limits, ServerConfig, TokenInfo};

/// The yewdux-persist sync server: the sync protocol at /v1/*, CodeForge's key-value API at
/// /api/storage/*, health at /health, Prometheus metrics at /metrics, and the built app.
#[derive(Debug, Parser)]
#[command(name = "persist-server", version, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Flags of `serve` (also accepted without the subcommand).
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

/// The environment variable `PERSIST_CODEFORGE_ANONYMOUS_USER` had before CodeForge was called by
/// its name; still read when the new one is unset, so existing deployments keep working.
pub(crate) const OLD_ANONYMOUS_USER_ENV: &str = "PERSIST_LEGACY_ANONYMOUS_USER";

impl Cli {
    /// Parses the process's arguments and environment; exits with clap's message when they are
    /// wrong (as [`Parser::parse`] does).
    pub(crate) fn from_process() -> Cli {
        let mut cli = Cli::parse();
        let var = |name: &str| std::env::var_os(name);
        let read = match &mut cli.command {
            Some(Command::Serve(args)) => args.read_old_env_names(var),
            None => cli.serve.read_old_env_names(var),
            Some(Command::Token(_)) => Ok(()),
        };
        if let Err(error) = read {
            error.exit();
        }
        cli
    }
}

/// Subcommands.
// Parsed once per process: the size of `ServeArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve HTTP (the default).
    Serve(ServeArgs),
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token for USER (its namespace) and print it on the last line of output. Only a
    /// SHA-256 hash is stored: keep the printed token.
    Create {
        /// The user (namespace) the token acts as.
        user: String,
        /// The database.
        #[arg(long, env = "PERSIST_DATABASE", default_value = "data/persist.sqlite3")]
        database: String,
    },
    /// List the stored tokens (of USER only, when given): user, id, creation time. Tokens
    /// themselves are not stored and cannot be shown.
    List {
        /// Only this user's tokens.
        user: Option<String>,
        /// The database.
        #[arg(long, env = "PERSIST_DATABASE", default_value = "data/persist.sqlite3")]
        database: String,
    },
    /// Revoke every token of USER, or with --id only that one. Running servers stop accepting a
    /// revoked token within 30 s (their token cache).
    Revoke {
        /// The user whose tokens are revoked.
        user: String,
        /// Only the token with this id (12 hex digits, from `token list`).
        #[arg(long)]
        id: Option<String>,
        /// The database.
        #[arg(long, env = "PERSIST_DATABASE", default_value = "data/persist.sqlite3")]
        database: String,
    },
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PERSIST_LISTEN", default_value = "127.0.0.1:5001")]
    pub(crate) listen: SocketAddr,
    /// The database: a SQLite file path (or `sqlite:<path>`), or a `postgres://` URL.
    #[arg(long, env = "PERSIST_DATABASE", default_value = "data/persist.sqlite3")]
    pub(crate) database: String,
    /// Origins allowed by CORS (repeat or comma-separate; `*` for any). Default: same origin only.
    #[arg(long = "cors-origin", env = "PERSIST_CORS_ORIGINS", value_delimiter = ',')]
    pub(crate) cors_origins: Vec<String>,
    /// Largest request body in bytes (413 past it).
    #[arg(long, env = "PERSIST_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub(crate) max_body_bytes: usize,
    /// Largest body of /v1/import and /api/storage/import in bytes.
    #[arg(long, env = "PERSIST_MAX_IMPORT_BYTES", default_value_t = Limits::default().max_import_bytes)]
    pub(crate) max_import_bytes: usize,
    /// Largest single value (its JSON text) in bytes (a push op is rejected, a PUT gets 413).
    #[arg(long, env = "PERSIST_MAX_VALUE_BYTES", default_value_t = Limits::default().max_value_bytes)]
    pub(crate) max_value_bytes: usize,
    /// Most bytes of values in one pull page (a page stops there with has_more; it always
    /// carries at least one record).
    #[arg(long, env = "PERSIST_MAX_PAGE_BYTES", default_value_t = Limits::default().max_page_bytes)]
    pub(crate) max_page_bytes: u64,
    /// Bytes of pull pages held in memory at once, all users together (pages shrink under load,
    /// a pull waits below 256 KiB left); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_READ_BYTES_IN_FLIGHT", default_value_t = Limits::default().max_read_bytes_in_flight)]
    pub(crate) max_read_bytes_in_flight: u64,
    /// Exports one user may be reading at once (429 past it); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_EXPORTS_PER_USER", default_value_t = Limits::default().max_exports_per_user)]
    pub(crate) max_exports_per_user: usize,
    /// Exports running at once on this instance (429 past it); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_EXPORTS", default_value_t = Limits::default().max_exports)]
    pub(crate) max_exports: usize,
    /// Imports one user may send at once (429 past it, before the body is read); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_IMPORTS_PER_USER", default_value_t = Limits::default().max_imports_per_user)]
    pub(crate) max_imports_per_user: usize,
    /// Imports in progress at once on this instance (429 past it); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_IMPORTS", default_value_t = Limits::default().max_imports)]
    pub(crate) max_imports: usize,
    /// Most live records one user may keep (a push op past it is rejected `quota_exceeded`, an
    /// import or PUT gets 507); deletes always pass; 0 = no quota.
    #[arg(long, env = "PERSIST_MAX_RECORDS_PER_USER", default_value_t = Limits::default().max_records_per_user)]
    pub(crate) max_records_per_user: u64,
    /// Most bytes of live values (their JSON text) one user may keep, refused like
    /// --max-records-per-user; 0 = no quota.
    #[arg(long, env = "PERSIST_MAX_BYTES_PER_USER", default_value_t = Limits::default().max_bytes_per_user)]
    pub(crate) max_bytes_per_user: u64,
    /// Sustained requests per second per user (429 past it); 0 disables rate limiting.
    #[arg(long, env = "PERSIST_RATE_LIMIT", default_value_t = Limits::default().rate_limit_per_second)]
    pub(crate) rate_limit: f64,
    /// Requests a user may send in a burst before the sustained rate applies.
    #[arg(long, env = "PERSIST_RATE_LIMIT_BURST", default_value_t = Limits::default().rate_limit_burst)]
    pub(crate) rate_limit_burst: u32,
    /// Sustained failed authentications per second per client address (TCP peer; IPv6 per /64):
    /// requests with a missing, unknown or revoked token, and the first lookup of a valid token
    /// not yet cached; 429 past it, before the database is asked; 0 disables it. Behind a reverse
    /// proxy every client shares the proxy's address: raise it or turn it off there.
    #[arg(long, env = "PERSIST_ANONYMOUS_RATE_LIMIT", default_value_t = Limits::default().anonymous_rate_limit_per_second)]
    pub(crate) anonymous_rate_limit: f64,
    /// Failed authentications a client address may make in a burst.
    #[arg(long, env = "PERSIST_ANONYMOUS_RATE_LIMIT_BURST", default_value_t = Limits::default().anonymous_rate_limit_burst)]
    pub(crate) anonymous_rate_limit_burst: u32,
    /// Seconds a request may take to arrive and be answered (past it: 408 while the body is still
    /// arriving, else 503; import/export get 10×; the event stream is not cut); 0 turns it off.
    #[arg(long, env = "PERSIST_REQUEST_TIMEOUT_SECS", default_value_t = Limits::default().request_timeout.as_secs())]
    pub(crate) request_timeout_secs: u64,
    /// Event streams (GET /v1/events) one user may have open at once (429 past it); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_EVENT_STREAMS_PER_USER", default_value_t = Limits::default().max_event_streams_per_user)]
    pub(crate) max_event_streams_per_user: usize,
    /// Event streams open at once on this instance, all users together (429 past it); 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_EVENT_STREAMS", default_value_t = Limits::default().max_event_streams)]
    pub(crate) max_event_streams: usize,
    /// Seconds a request's head (request line and headers) may take to arrive, and a kept-alive
    /// connection may wait for its next request; past it the connection is closed. 0 turns it off.
    #[arg(long, env = "PERSIST_HEADER_READ_TIMEOUT_SECS", default_value_t = Limits::default().header_read_timeout.as_secs())]
    pub(crate) header_read_timeout_secs: u64,
    /// Seconds a connection may go without a byte moving either way (a stalled upload, a client
    /// that stopped reading its answer or event stream) before it is closed; keep it above the
    /// event stream's 15 s keep-alive. 0 turns it off.
    #[arg(long, env = "PERSIST_IDLE_TIMEOUT_SECS", default_value_t = Limits::default().idle_timeout.as_secs())]
    pub(crate) idle_timeout_secs: u64,
    /// Connections served at once; further ones wait in the kernel's listen backlog until one
    /// closes (the kernel refuses them once the backlog is full). 0 = no cap.
    #[arg(long, env = "PERSIST_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub(crate) max_connections: usize,
    /// Connections one client address (IPv6: its /64) may have open; past it new ones are closed
    /// at once. Behind a reverse proxy raise it or set 0 (no cap).
    #[arg(long, env = "PERSIST_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = Limits::default().max_connections_per_address)]
    pub(crate) max_connections_per_address: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/Ctrl-C; then the remaining
    /// connections are dropped and the process exits.
    #[arg(long, env = "PERSIST_SHUTDOWN_TIMEOUT_SECS", default_value_t = Limits::default().shutdown_timeout.as_secs())]
    pub(crate) shutdown_timeout_secs: u64,
    /// Serve the built app from this folder (unknown non-API paths get its index.html).
    #[arg(long, env = "PERSIST_STATIC_DIR")]
    pub(crate) static_dir: Option<PathBuf>,
    /// Development mode (loopback only): creates a token of user `dev` for this run (revoked when
    /// the server stops), serves it at GET /dev-config.json and allows CORS from loopback
    /// origins.
    #[arg(long, env = "PERSIST_DEV")]
    pub(crate) dev: bool,
    /// Where --dev keeps this run's token for tools (default: beside the SQLite file, or
    /// data/dev-token with PostgreSQL); the next --dev start revokes the token it names.
    #[arg(long, env = "PERSIST_DEV_TOKEN_FILE")]
    pub(crate) dev_token_file: Option<PathBuf>,
    /// Let unauthenticated /api/storage/* requests act as USER (old CodeForge clients that
    /// cannot send headers). Off by default; anyone who can reach the server can then use that
    /// namespace. The old names still work: --legacy-anonymous-user, and
    /// PERSIST_LEGACY_ANONYMOUS_USER (read when PERSIST_CODEFORGE_ANONYMOUS_USER is unset).
    #[arg(
        long,
        env = "PERSIST_CODEFORGE_ANONYMOUS_USER",
        value_name = "USER",
        // The flag's name before CodeForge was called by its name; kept for existing scripts.
        alias = "legacy-anonymous-user"
    )]
    pub(crate) codeforge_anonymous_user: Option<String>,
    /// Bearer token required by /metrics. Without it, /metrics is served only on a loopback
    /// listen address.
    #[arg(long, env = "PERSIST_METRICS_TOKEN", hide_env_values = true)]
    pub(crate) metrics_token: Option<String>,
    /// Days op ids are remembered, so a retried push gets its first answer.
    #[arg(long, env = "PERSIST_OP_RETENTION_DAYS", default_value_t = 7)]
    pub(crate) op_retention_days: u64,
    /// PostgreSQL connection pool size (per server instance).
    #[arg(long, env = "PERSIST_PG_POOL_SIZE", default_value_t = 16)]
    pub(crate) pg_pool_size: usize,
    /// Log filter (tracing's EnvFilter syntax; RUST_LOG overrides it).
    #[arg(long, env = "PERSIST_LOG", default_value = "info")]
    pub(crate) log: String,
}

impl ServeArgs {
    /// Fills in what clap cannot: `--codeforge-anonymous-user` from [`OLD_ANONYMOUS_USER_ENV`]
    /// when neither the flag (or its alias) nor `PERSIST_CODEFORGE_ANONYMOUS_USER` gave it. `var`
    /// reads an environment variable (the process's in the binary, a map in tests). Like clap, a
    /// set but empty variable counts as set, and one that is not UTF-8 is an error.
    pub(crate) fn read_old_env_names(
        &mut self,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(), clap::Error> {
        if self.codeforge_anonymous_user.is_none() {
            if let Some(value) = var(OLD_ANONYMOUS_USER_ENV) {
                let value = value.into_string().map_err(|_| {
                    Cli::command().error(
                        ErrorKind::InvalidUtf8,
                        format!("{OLD_ANONYMOUS_USER_ENV} is not valid UTF-8"),
                    )
                })?;
                self.codeforge_anonymous_user = Some(value);
            }
        }
        Ok(())
    }

    /// The server configuration these flags describe.
    pub(crate) fn to_config(&self) -> ServerConfig {
        let mut config = ServerConfig::with_database(DatabaseConfig::parse(&self.database));
        config.cors_origins = self
            .cors_origins
            .iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        config.limits = Limits {
            max_body_bytes: self.max_body_bytes,
            max_import_bytes: self.max_import_bytes,
            max_value_bytes: self.max_value_bytes,
            max_page_bytes: self.max_page_bytes,
            max_read_bytes_in_flight: self.max_read_bytes_in_flight,
            max_exports_per_user: self.max_exports_per_user,
            max_exports: self.max_exports,
            max_imports_per_user: self.max_imports_per_user,
            max_imports: self.max_imports,
            max_records_per_user: self.max_records_per_user,
            max_bytes_per_user: self.max_bytes_per_user,
            rate_limit_per_second: self.rate_limit,
            rate_limit_burst: self.rate_limit_burst,
            anonymous_rate_limit_per_second: self.anonymous_rate_limit,
            anonymous_rate_limit_burst: self.anonymous_rate_limit_burst,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_event_streams_per_user: self.max_event_streams_per_user,
            max_event_streams: self.max_event_streams,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        };
        config.static_dir = self.static_dir.clone();
        config.dev = self.dev;
        config.dev_token_file = self.dev_token_file.clone();
        config.codeforge_anonymous_user = self.codeforge_anonymous_user.clone();
        config.metrics_token = self.metrics_token.clone().filter(|t| !t.is_empty());
        config.op_retention = Duration::from_secs(self.op_retention_days.max(1) * 24 * 3600);
        config.postgres_pool_size = self.pg_pool_size;
        config
    }
}

/// `token list`'s output: a header and one line per token.
pub(crate) fn token_table(tokens: &[TokenInfo]) -> String {
    let width = tokens.iter().map(|t| t.user.chars().count()).max().unwrap_or(0).max(4);
    let mut out = format!("{:<width$}  {:<12}  created (UTC)\n", "user", "id");
    for token in tokens {
        let created = chrono::DateTime::from_timestamp_millis(token.created_at_ms).map_or_else(
            || token.created_at_ms.to_string(),
            |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
        );
        out.push_str(&format!("{:<width$}  {:<12}  {created}\n", token.user, token.id));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_flags_parse() {
        let cli =
            Cli::try_parse_from(["persist-server", "--listen", "127.0.0.1:9", "--dev"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.serve.dev);
        let cli = Cli::try_parse_from([
            "persist-server",
            "serve",
            "--database",
            "postgres://x@y/z",
            "--cors-origin",
            "https://a.example,https://b.example",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve expected") };
        let config = args.to_config();
        assert_eq!(config.database, DatabaseConfig::Postgres("postgres://x@y/z".into()));
        assert_eq!(config.cors_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn token_list_shows_ids_and_times_never_tokens() {
        let tokens = [TokenInfo {
            user: "alice".into(),
            id: "ba7816bf8f01".into(),
            created_at_ms: 1_764_115_200_000,
        }];
        let table = token_table(&tokens);
        assert_eq!(
            table,
            "user   id            created (UTC)\nalice  ba7816bf8f01  2025-11-26 00:00:00\n"
        );
    }

    #[test]
    fn token_revoke_takes_a_user_and_an_optional_id() {
        let cli = Cli::try_parse_from([
            "persist-server",
            "token",
            "revoke",
            "bob",
            "--id",
            "0123456789ab",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Token(TokenCommand::Revoke { ref user, id: Some(ref id), .. }))
                if user == "bob" && id == "0123456789ab"
        ));
        assert!(
            Cli::try_parse_from(["persist-server", "token", "revoke"]).is_err(),
            "a user is required"
        );
    }

    #[test]
    fn token_create_takes_a_user() {
        let cli = Cli::try_parse_from(["persist-server", "token", "create", "alice"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Token(TokenCommand::Create { ref user, .. })) if user == "alice"
        ));
    }

    #[test]
    fn the_anonymous_user_flag_has_its_new_name_and_its_old_one() {
        for flag in ["--codeforge-anonymous-user", "--legacy-anonymous-user"] {
            let cli = Cli::try_parse_from(["persist-server", flag, "old-client"]).unwrap();
            assert_eq!(
                cli.serve.to_config().codeforge_anonymous_user.as_deref(),
                Some("old-client"),
                "{flag}"
            );
        }
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["persist-server", "serve"].iter().chain(args)).unwrap();
        let Some(Command::Serve(args)) = cli.command else { panic!("serve expected") };
        args
    }

    #[test]
    fn the_old_environment_variable_is_read_when_nothing_else_names_the_user() {
        let old_only = |name: &str| (name == OLD_ANONYMOUS_USER_ENV).then(|| OsString::from("bob"));
        let mut args = serve_args(&[]);
        args.read_old_env_names(old_only).unwrap();
        assert_eq!(args.to_config().codeforge_anonymous_user.as_deref(), Some("bob"));
        // The flag (and so the new variable, which clap reads into it) wins over the old name.
        let mut args = serve_args(&["--codeforge-anonymous-user", "alice"]);
        args.read_old_env_names(old_only).unwrap();
        assert_eq!(args.to_config().codeforge_anonymous_user.as_deref(), Some("alice"));
        // Neither: off.
        let mut args = serve_args(&[]);
        args.read_old_env_names(|_| None).unwrap();
        assert_eq!(args.to_config().codeforge_anonymous_user, None);
    }
}
