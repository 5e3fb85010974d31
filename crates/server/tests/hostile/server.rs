//! The server under attack: the real binary as a child process on SQLite in a temp dir, with a
//! thread that samples its resident memory and kills it past a safety ceiling.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Past this resident size the server is killed and the attack recorded as "exceeded": the
/// pre-hardening binary reached 4.3 GB on one attack, and the machine runs other work too.
pub(crate) const KILL_RSS_BYTES: u64 = 1536 * 1024 * 1024;

/// How often the sampler reads `/proc/<pid>/status`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The binary under test: the one cargo built with this test, or `PERSIST_HOSTILE_BINARY` (an
/// older build, for before/after figures).
pub(crate) fn binary() -> String {
    match std::env::var("PERSIST_HOSTILE_BINARY") {
        Ok(path) if !path.is_empty() => path,
        _ => env!("CARGO_BIN_EXE_persist-server").to_owned(),
    }
}

/// A running server child and what is needed to restart it on the same database.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) database: String,
    child: Arc<Mutex<Child>>,
    settings: Vec<(String, String)>,
    log: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl Server {
    /// Creates a database in a fresh temp dir, a token for each of `users`, and starts the server.
    /// `settings` are environment variables (`PERSIST_…`) on top of the defaults: variables, not
    /// flags, because an older binary ignores a variable it does not know but refuses an unknown
    /// flag, so one suite runs against builds from before and after a flag existed.
    pub(crate) fn start(settings: &[(&str, &str)], users: &[&str]) -> (Server, Vec<String>) {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let database = dir.path().join("persist.sqlite3").to_str().unwrap().to_owned();
        let tokens = users.iter().map(|user| create_token(&database, user)).collect();
        let settings: Vec<_> =
            settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let log = dir.path().join("server.log");
        let (child, base) = spawn(&database, &settings, &log);
        let child = Arc::new(Mutex::new(child));
        (Server { base, database, child, settings, log, _dir: dir }, tokens)
    }

    /// Kills this process and starts a fresh one on the same database: seeding data costs memory
    /// of its own, and a fresh process's `VmHWM` is then the attack's peak alone. SQLite commits
    /// before it acknowledges, so a kill loses nothing acknowledged.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let (child, base) = spawn(&self.database, &self.settings, &self.log);
        self.child = Arc::new(Mutex::new(child));
        self.base = base;
    }

    /// `true` while the process runs.
    pub(crate) fn alive(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`.
    pub(crate) fn address(&self) -> &str {
        self.base.strip_prefix("http://").unwrap()
    }

    pub(crate) fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Lines of the server's log at `WARN` or above (slow commits, refused requests, …).
    pub(crate) fn warnings(&self) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).count()
    }

    /// Starts sampling the process's memory until [`RssSampler::finish`].
    pub(crate) fn sample_rss(&self) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let child = Arc::clone(&self.child);
        let pid = child.lock().unwrap().id();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || sample(pid, &child, &stop))
        };
        RssSampler { stop, thread }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the sampler saw.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rss {
    /// The largest `VmRSS` sampled.
    pub(crate) sampled_max: u64,
    /// The last `VmHWM` read: the process's peak, spikes between samples included.
    pub(crate) high_water: u64,
    /// The process was killed for passing [`KILL_RSS_BYTES`].
    pub(crate) exceeded: bool,
}

impl Rss {
    /// The peak in bytes.
    pub(crate) fn peak(&self) -> u64 {
        self.sampled_max.max(self.high_water)
    }
}

/// A running memory sampler.
#[derive(Debug)]
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Rss>,
}

impl RssSampler {
    pub(crate) fn finish(self) -> Rss {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn sample(pid: u32, child: &Mutex<Child>, stop: &AtomicBool) -> Rss {
    let mut rss = Rss::default();
    let path = format!("/proc/{pid}/status");
    while !stop.load(Ordering::Relaxed) {
        // Gone (exited, or killed below): the last figures stand.
        let Ok(status) = std::fs::read_to_string(&path) else { break };
        let field = |name: &str| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.trim().strip_suffix("kB")?;
                rest.trim().parse::<u64>().ok().map(|kb| kb * 1024)
            })
        };
        // A zombie has no memory lines: keep what was read while it ran.
        let Some(now) = field("VmRSS:") else { break };
        rss.sampled_max = rss.sampled_max.max(now);
        rss.high_water = rss.high_water.max(field("VmHWM:").unwrap_or(0));
        if now > KILL_RSS_BYTES {
            rss.exceeded = true;
            let _ = child.lock().unwrap().kill();
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    rss
}

/// `persist-server token create <user>`: the token is the last line of output.
fn create_token(database: &str, user: &str) -> String {
    let output = Command::new(binary())
        .args(["token", "create", user, "--database", database])
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

/// Starts the binary on a free loopback port; answers the child and its base URL.
fn spawn(database: &str, settings: &[(String, String)], log: &PathBuf) -> (Child, String) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        // The server's defaults, whatever this shell exports (`PERSIST_*`, `RUST_LOG`).
        .env_clear()
        .env("PERSIST_LOG", "warn")
        .envs(settings.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(log);
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
