//! Starting servers for tests (in-process, or the real binary) and talking to them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use persist_server::{DatabaseConfig, RunningServer, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, from `PERSIST_TEST_POSTGRES_URL`. Fails loudly when it is unset,
    /// unless `PERSIST_SKIP_POSTGRES=1` says to skip.
    pub(crate) fn postgres() -> Option<Backend> {
        match std::env::var("PERSIST_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var("PERSIST_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("PERSIST_SKIP_POSTGRES=1: skipping the PostgreSQL run of this test");
                None
            }
            _ => panic!(
                "PERSIST_TEST_POSTGRES_URL is not set. Run scripts/server-test.sh (it starts a \
                 throwaway PostgreSQL on 127.0.0.1 and sets it), or set PERSIST_SKIP_POSTGRES=1 \
                 to skip the PostgreSQL half of the suite explicitly."
            ),
        }
    }

    /// A database for one test: a fresh SQLite file in `dir`, or the shared PostgreSQL database
    /// (tests stay apart through unique user names, i.e. namespaces).
    pub(crate) fn database(&self, dir: &std::path::Path) -> DatabaseConfig {
        match self {
            Backend::Sqlite => DatabaseConfig::Sqlite(dir.join("persist.sqlite3")),
            Backend::Postgres(url) => DatabaseConfig::Postgres(url.clone()),
        }
    }
}

/// A unique name (user names must not collide across tests sharing one PostgreSQL database).
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The test defaults: rate limiting and the per-address connection cap off (every test client
/// shares 127.0.0.1; tests that need a limit turn it on), small pools.
pub(crate) fn test_config(database: DatabaseConfig) -> ServerConfig {
    let mut config = ServerConfig::with_database(database);
    config.limits.rate_limit_per_second = 0.0;
    config.limits.anonymous_rate_limit_per_second = 0.0;
    config.limits.max_connections_per_address = 0;
    config.postgres_pool_size = 4;
    config.sqlite_readers = 2;
    config
}

/// A server started in-process on 127.0.0.1:0.
pub(crate) struct TestServer {
    pub(crate) server: Option<RunningServer>,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) database: DatabaseConfig,
    pub(crate) dir: tempfile::TempDir,
}

/// A user and its token.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) token: String,
}

impl TestServer {
    pub(crate) async fn start(backend: &Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub(crate) async fn start_with(
        backend: &Backend,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(backend.database(dir.path()));
        tweak(&mut config);
        Self::start_config(config, dir).await
    }

    pub(crate) async fn start_config(config: ServerConfig, dir: tempfile::TempDir) -> Self {
        let database = config.database.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = persist_server::start(listener, config).await.unwrap();
        TestServer {
            base: server.base_url(),
            server: Some(server),
            http: reqwest::Client::new(),
            database,
            dir,
        }
    }

    pub(crate) fn running(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    pub(crate) async fn user(&self, prefix: &str) -> User {
        let name = unique(prefix);
        let token = self.running().create_token(&name).await.unwrap();
        User { token }
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; returns the status and the JSON body (`Null` when the body is empty).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, value)
    }

    /// Sends raw bytes.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn get(&self, path: &str, user: &User) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    pub(crate) async fn post(&self, path: &str, user: &User, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&user.token), Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, user: &User, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(&user.token), Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str, user: &User) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(&user.token), None).await
    }

    /// Pushes and expects 200.
    pub(crate) async fn push(&self, user: &User, ops: Value) -> Value {
        let (status, body) = self.post("/v1/push", user, serde_json::json!({ "ops": ops })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Pulls every page since `since`.
    pub(crate) async fn pull_all(&self, user: &User, since: u64, limit: u32) -> Vec<Value> {
        let mut since = since;
        let mut records = Vec::new();
        loop {
            let (status, page) =
                self.get(&format!("/v1/pull?since={since}&limit={limit}"), user).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            records.extend(page["records"].as_array().unwrap().iter().cloned());
            since = page["next_since"].as_u64().unwrap();
            if !page["has_more"].as_bool().unwrap() {
                return records;
            }
        }
    }
}

/// A put op.
pub(crate) fn put_op(
    op_id: &str,
    collection: &str,
    id: &str,
    value: Value,
    base: Option<u64>,
) -> Value {
    serde_json::json!({
        "op_id": op_id, "collection": collection, "id": id, "value": value, "base_revision": base
    })
}

/// A delete op.
pub(crate) fn delete_op(op_id: &str, collection: &str, id: &str, base: Option<u64>) -> Value {
    serde_json::json!({
        "op_id": op_id, "collection": collection, "id": id, "delete": true, "base_revision": base
    })
}

/// The `persist-server` binary built with the tests.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_persist-server");

/// `persist-server token create <user>`: the token is the last line of output.
pub(crate) fn binary_create_token(database: &str, user: &str) -> String {
    let output = Command::new(BINARY)
        .args(["token", "create", user, "--database", database])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

/// Starts the binary on a free loopback port (`configure` adds flags or environment variables);
/// returns the child and its base URL.
pub(crate) fn spawn_binary(
    database: &str,
    configure: impl FnOnce(&mut Command),
) -> (Child, String) {
    let mut command = Command::new(BINARY);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--rate-limit", "0"])
        .args(["--anonymous-rate-limit", "0"])
        .env("PERSIST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    configure(&mut command);
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("persist-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, base)
}

impl TestServer {
    /// A user with a unique name: its name (the namespace) and its token.
    pub(crate) async fn named_user(&self, prefix: &str) -> (String, User) {
        let name = unique(prefix);
        let token = self.running().create_token(&name).await.unwrap();
        (name, User { token })
    }

    /// The usage counters kept in namespace `ns`'s row (live records, bytes of their values), read
    /// from the database itself; `(0, 0)` when it has no row.
    pub(crate) async fn stored_usage(&self, ns: &str) -> (u64, u64) {
        let query = "SELECT live_records, live_bytes FROM namespaces WHERE ns = $1";
        let row: Option<(i64, i64)> = match &self.database {
            DatabaseConfig::Sqlite(path) => {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
                let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
                let mut statement = conn.prepare(&query.replace("$1", "?1")).unwrap();
                let mut rows = statement.query([ns]).unwrap();
                rows.next().unwrap().map(|row| (row.get(0).unwrap(), row.get(1).unwrap()))
            }
            DatabaseConfig::Postgres(url) => {
                let (client, connection) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let task = tokio::spawn(connection);
                let row = client.query_opt(query, &[&ns]).await.unwrap();
                drop(client);
                let _ = task.await;
                row.map(|row| (row.get(0), row.get(1)))
            }
        };
        row.map_or((0, 0), |(records, bytes)| (records as u64, bytes as u64))
    }

    /// The answers remembered under op ids of namespace `ns`, read from the database itself.
    pub(crate) async fn remembered_answers(&self, ns: &str) -> Vec<String> {
        let query = "SELECT result FROM ops WHERE ns = $1 ORDER BY op_id";
        match &self.database {
            DatabaseConfig::Sqlite(path) => {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
                let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
                let mut statement = conn.prepare(&query.replace("$1", "?1")).unwrap();
                let rows = statement.query_map([ns], |row| row.get(0)).unwrap();
                rows.collect::<Result<_, _>>().unwrap()
            }
            DatabaseConfig::Postgres(url) => {
                let (client, connection) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                let task = tokio::spawn(connection);
                let rows = client.query(query, &[&ns]).await.unwrap();
                drop(client);
                let _ = task.await;
                rows.iter().map(|row| row.get(0)).collect()
            }
        }
    }
}
