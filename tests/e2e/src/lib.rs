//! Helpers of the end-to-end tests: start the real server on the built app, start ChromeDriver
//! and drive headless Chromium through a minimal WebDriver client.
//!
//! The tests need the app and the notes example built by Trunk: `scripts/e2e-test.sh` builds them
//! and sets `PERSIST_E2E_DIST` and `PERSIST_E2E_NOTES_DIST`. Without them they fail with a clear
//! message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The browser flags that keep headless Chromium off the network and working as root.
const CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
];

/// The built app (Trunk's `dist`), from `PERSIST_E2E_DIST`.
pub fn dist_dir() -> PathBuf {
    built("PERSIST_E2E_DIST")
}

/// The built notes example (`crates/persist/examples/notes`), from `PERSIST_E2E_NOTES_DIST`.
pub fn notes_dist_dir() -> PathBuf {
    built("PERSIST_E2E_NOTES_DIST")
}

fn built(variable: &str) -> PathBuf {
    let dir = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{variable} is not set: run scripts/e2e-test.sh (it builds with trunk first)")
    });
    assert!(dir.join("index.html").is_file(), "{} has no index.html", dir.display());
    dir
}

/// The real server on 127.0.0.1, serving the built app in dev mode (as `make run` does).
#[derive(Debug)]
pub struct Server {
    /// The running server.
    pub running: persist_server::RunningServer,
    config: persist_server::ServerConfig,
    _data: tempfile::TempDir,
}

/// A server stopped by [`Server::stop`]: its database and address are kept for
/// [`start_again`](StoppedServer::start_again).
#[derive(Debug)]
pub struct StoppedServer {
    addr: std::net::SocketAddr,
    config: persist_server::ServerConfig,
    data: tempfile::TempDir,
}

impl StoppedServer {
    /// Starts the server again on the same address and database (a restart, as a user would).
    pub async fn start_again(self) -> Server {
        let running = persist_server::start_on(self.addr, self.config.clone())
            .await
            .expect("the server starts again");
        Server { running, config: self.config, _data: self.data }
    }
}

impl Server {
    /// Starts it on a free port with a fresh SQLite database, serving the app.
    pub async fn start() -> Server {
        Server::serving(dist_dir()).await
    }

    /// Starts it on a free port with a fresh SQLite database, serving the built files in `dist`.
    pub async fn serving(dist: PathBuf) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = persist_server::ServerConfig::with_database(
            persist_server::DatabaseConfig::Sqlite(data.path().join("e2e.sqlite3")),
        );
        config.static_dir = Some(dist);
        config.dev = true;
        let running = persist_server::start(listener, config.clone()).await.expect("server starts");
        Server { running, config, _data: data }
    }

    /// Stops the server (its open connections, the browsers' event streams included, are cut).
    pub async fn stop(self) -> StoppedServer {
        let addr = self.running.local_addr();
        self.running.shutdown().await.expect("shutdown");
        StoppedServer { addr, config: self.config, data: self._data }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.running.base_url().trim_end_matches('/').to_owned()
    }
}

/// A ChromeDriver process and one headless Chromium session on it; both end when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    endpoint: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts ChromeDriver (`CHROMEDRIVER` or `/usr/bin/chromedriver`) and a session.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": CHROME_ARGS,
        }}}});
        let session = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json::<Value>()
            .await
            .expect("session json");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Browser { driver, port, endpoint: format!("{base}/session/{id}"), session: id, http }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.endpoint));
        let request = if body.is_null() { request } else { request.json(&body) };
        let answer: Value =
            request.send().await.expect("webdriver request").json().await.expect("json");
        if answer["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.command(reqwest::Method::POST, "/refresh", json!({})).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.run("return document.body ? document.body.innerText : ''", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains every one of `needles`, or panics with the text.
    pub async fn wait_for_text(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text().await;
            if needles.iter().all(|needle| text.contains(needle)) {
                return text;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {needles:?}; page:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let clicked = self
            .run(
                "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e",
                json!([css]),
            )
            .await;
        assert_eq!(clicked, json!(true), "no element {css}");
    }

    /// Types `text` into the first element matching `css` (a real WebDriver keyboard input).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = element
            .as_object()
            .and_then(|map| map.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {element}"))
            .to_owned();
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    /// A PNG of the window (WebDriver's screenshot).
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("a base64 PNG")
    }

    /// Sets the window's size in CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }
}

impl Drop for Browser {
    /// Ends the session first (ChromeDriver then closes Chromium; killing only ChromeDriver would
    /// leave Chromium running), with a plain blocking request since `drop` cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // ChromeDriver answers once Chromium has quit; the first bytes are enough.
                let mut answer = [0u8; 512];
                let _ = stream.read(&mut answer);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
