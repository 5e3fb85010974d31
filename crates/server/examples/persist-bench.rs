//! Load benchmark of persist-server on loopback (run by `scripts/server-bench.sh`).
//!
//! Starts the release server binary on a temp SQLite file (synchronous=FULL), creates tokens with
//! `token create`, then measures, each bounded in time:
//! - `push_max`: closed-loop pushes of 10 new items each, many concurrent clients;
//! - `push_80pct`: open-loop pushes at 80% of the 2,000 pushes/s goal (latency from the scheduled
//!   send time, so a stalled server cannot hide its queueing);
//! - `bulk_import`: `/v1/import` of many keys in 10,000-item requests;
//! - `codeforge_put`: the CodeForge API's single `PUT /api/storage/<key>` at 16 concurrent
//!   connections.
//!
//! Prints a table and one `BENCH {json}` line per benchmark. Goals are read, never asserted.
//! With `PERSIST_BENCH_TIMELINE=1` it also prints the slowest 100 ms windows of the paced run
//! (to tell a server-wide stall from scattered slow requests).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

/// Goal of the push benchmarks, pushes of 10 ops per second.
const PUSH_GOAL: f64 = 2_000.0;

#[derive(Debug, Clone)]
struct Options {
    server_bin: String,
    push_seconds: u64,
    paced_seconds: u64,
    put_seconds: u64,
    import_keys: usize,
    push_clients: usize,
}

impl Options {
    fn parse() -> Self {
        let mut options = Options {
            server_bin: "target/release/persist-server".into(),
            push_seconds: 20,
            paced_seconds: 15,
            put_seconds: 15,
            import_keys: 500_000,
            push_clients: 64,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        for pair in args.chunks(2) {
            let value = pair.get(1).cloned().unwrap_or_default();
            let number = || value.parse().expect("a number");
            match pair[0].as_str() {
                "--server-bin" => options.server_bin = value.clone(),
                "--push-seconds" => options.push_seconds = number() as u64,
                "--paced-seconds" => options.paced_seconds = number() as u64,
                "--put-seconds" => options.put_seconds = number() as u64,
                "--import-keys" => options.import_keys = number(),
                "--push-clients" => options.push_clients = number(),
                other => panic!("unknown flag {other}"),
            }
        }
        options
    }
}

/// The outcome of one benchmark.
#[derive(Debug, Default)]
struct Outcome {
    name: &'static str,
    requests: u64,
    units: u64,
    unit: &'static str,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    note: String,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.units as f64 / self.seconds
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &str, users: usize) -> (Server, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("bench.sqlite3").display().to_string();
    let tokens = (0..users)
        .map(|i| {
            let output = Command::new(bin)
                .args(["token", "create", &format!("bench{i}"), "--database", &database])
                .output()
                .expect("token create");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let stdout = String::from_utf8(output.stdout).expect("utf-8");
            stdout.lines().last().expect("a token line").trim().to_owned()
        })
        .collect();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .args([
            "--rate-limit",
            "0",
            "--anonymous-rate-limit",
            "0",
            "--log",
            "warn",
            "--max-import-bytes",
            "67108864",
        ])
        // The bulk import writes 500,000 keys to one user, past the default record quota; usage
        // is still counted (the quota's cost is paid), only the limit is off.
        .args(["--max-records-per-user", "0"])
        // The bulk import sends two requests at once for one user (the default allows one).
        .args(["--max-imports-per-user", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server's first line");
    let base =
        line.trim().strip_prefix("persist-server listening on ").expect("address").to_owned();
    (Server { child, base, _dir: dir }, tokens)
}

fn push_body(client: usize, n: u64) -> String {
    let mut ops = Vec::with_capacity(10);
    for j in 0..10 {
        ops.push(format!(
            r#"{{"op_id":"c{client}-{n}-{j}","collection":"files","id":"c{client}/f{n}-{j}","value":{{"id":"f{n}-{j}","name":"file {n}.rs","content":"fn main() {{ println!(\"{n}\"); }}","language":"rust","updatedAt":{n}}}}}"#
        ));
    }
    format!(r#"{{"ops":[{}]}}"#, ops.join(","))
}

/// Sends one push; `true` when every op was applied.
async fn send_push(http: &reqwest::Client, url: &str, token: &str, body: String) -> bool {
    let sent = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let Ok(response) = sent else { return false };
    if !response.status().is_success() {
        return false;
    }
    let Ok(text) = response.bytes().await else {
        return false;
    };
    let text = String::from_utf8_lossy(&text);
    text.matches("\"applied\"").count() == 10
}

/// Runs `workers` closed loops until `seconds` pass: each calls `request(worker, n)` for
/// n = 0, 1, ... and records the latency of every successful request. Returns the sorted
/// latencies (µs), the error count and the seconds taken.
async fn closed_loop<F, Fut>(workers: usize, seconds: u64, request: F) -> (Vec<u32>, u64, f64)
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (request, errors) = (request.clone(), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let sent_at = Instant::now();
                if request(worker, n).await {
                    latencies.push(sent_at.elapsed().as_micros() as u32);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.expect("load task"));
    }
    let seconds_taken = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    (latencies_us, errors.load(Ordering::Relaxed), seconds_taken)
}

async fn push_max(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    clients: usize,
    seconds: u64,
) -> Outcome {
    let url = format!("{base}/v1/push");
    let (http, tokens) = (http.clone(), tokens.to_vec());
    let (latencies_us, errors, seconds) = closed_loop(clients, seconds, move |client, n| {
        let (http, url, token) = (http.clone(), url.clone(), tokens[client % tokens.len()].clone());
        async move { send_push(&http, &url, &token, push_body(client, n)).await }
    })
    .await;
    Outcome {
        name: "push_max",
        requests: latencies_us.len() as u64,
        units: latencies_us.len() as u64,
        unit: "acked pushes/s (10 ops each)",
        errors,
        seconds,
        latencies_us,
        note: format!("{clients} concurrent clients, closed loop"),
    }
}

async fn push_paced(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    rate: f64,
    seconds: u64,
) -> Outcome {
    let url = format!("{base}/v1/push");
    let clients = 64usize;
    let per_client = Duration::from_secs_f64(clients as f64 / rate);
    let total_per_client = (rate * seconds as f64 / clients as f64).round() as u64;
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let begin = tokio::time::Instant::from_std(started);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, token) = (http.clone(), url.clone(), tokens[client % tokens.len()].clone());
        let errors = Arc::clone(&errors);
        let offset = per_client.mul_f64(client as f64 / clients as f64);
        tasks.push(tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, per_client);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut latencies = Vec::new();
            for n in 0..total_per_client {
                let scheduled = ticks.tick().await;
                let body = push_body(client + 1000, n);
                if send_push(&http, &url, &token, body).await {
                    let offset = scheduled.duration_since(begin).as_millis() as u64;
                    latencies.push((offset, scheduled.elapsed().as_micros() as u32));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut timed = Vec::new();
    for task in tasks {
        timed.extend(task.await.expect("client task"));
    }
    if std::env::var_os("PERSIST_BENCH_TIMELINE").is_some() {
        print_timeline(&timed);
    }
    let mut latencies_us: Vec<u32> = timed.iter().map(|(_, latency)| *latency).collect();
    let seconds_taken = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Outcome {
        name: "push_80pct",
        requests: latencies_us.len() as u64,
        units: latencies_us.len() as u64,
        unit: "acked pushes/s (10 ops each)",
        errors: errors.load(Ordering::Relaxed),
        seconds: seconds_taken,
        latencies_us,
        note: format!("open loop at {rate:.0} pushes/s, latency from scheduled send"),
    }
}

async fn bulk_import(http: &reqwest::Client, base: &str, token: &str, keys: usize) -> Outcome {
    const PER_REQUEST: usize = 10_000;
    let url = format!("{base}/v1/import");
    let bodies: Vec<String> = (0..keys.div_ceil(PER_REQUEST))
        .map(|chunk| {
            let start = chunk * PER_REQUEST;
            let end = (start + PER_REQUEST).min(keys);
            let items: Vec<String> = (start..end)
                .map(|i| {
                    format!(
                        r#"{{"collection":"import","id":"k{i}","value":{{"n":{i},"name":"item {i}"}}}}"#
                    )
                })
                .collect();
            format!(r#"{{"items":[{}]}}"#, items.join(","))
        })
        .collect();
    let errors = Arc::new(AtomicU64::new(0));
    let imported = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
        let (errors, imported, queue) = (errors.clone(), imported.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(body) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let sent_at = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let answer = match response {
                    Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
                    _ => None,
                };
                match answer.and_then(|a| a["imported"].as_u64()) {
                    Some(count) => {
                        imported.fetch_add(count, Ordering::Relaxed);
                        latencies.push(sent_at.elapsed().as_micros() as u32);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.expect("import task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Outcome {
        name: "bulk_import",
        requests: latencies_us.len() as u64,
        units: imported.load(Ordering::Relaxed),
        unit: "keys/s",
        errors: errors.load(Ordering::Relaxed),
        seconds,
        latencies_us,
        note: format!("{keys} keys, {PER_REQUEST} per request, 2 concurrent"),
    }
}

async fn codeforge_puts(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    seconds: u64,
) -> Outcome {
    let connections = 16;
    let (http, base, tokens) = (http.clone(), base.to_owned(), tokens.to_vec());
    let (latencies_us, errors, seconds) = closed_loop(connections, seconds, move |connection, n| {
        let url = format!("{base}/api/storage/files:cf-{connection}-{n}");
        let body = format!(
            r#"{{"value":{{"id":"cf-{n}","name":"file{n}.ts","content":"export const x = {n};","language":"typescript","path":"/src/file{n}.ts","updatedAt":{n}}}}}"#
        );
        let request = http
            .put(url)
            .bearer_auth(&tokens[connection % tokens.len()])
            .header("content-type", "application/json")
            .body(body)
            .send();
        async move {
            match request.await {
                Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;
    Outcome {
        name: "codeforge_put",
        requests: latencies_us.len() as u64,
        units: latencies_us.len() as u64,
        unit: "PUTs/s",
        errors,
        seconds,
        latencies_us,
        note: format!("{connections} concurrent connections"),
    }
}

fn print_timeline(timed: &[(u64, u32)]) {
    let mut windows = std::collections::BTreeMap::<u64, (u32, usize)>::new();
    for (offset, latency) in timed {
        let window = windows.entry(offset / 100).or_default();
        window.0 = window.0.max(*latency);
        window.1 += 1;
    }
    let mut worst: Vec<_> = windows.into_iter().collect();
    worst.sort_by_key(|(_, (max, _))| std::cmp::Reverse(*max));
    for (window, (max, count)) in worst.iter().take(15) {
        eprintln!(
            "t={:>6} ms  max {:>8.2} ms  ({count} pushes)",
            window * 100,
            f64::from(*max) / 1000.0
        );
    }
}

fn report(outcomes: &[Outcome]) {
    println!();
    println!(
        "| {:<12} | {:>12} | {:<30} | {:>9} | {:>9} | {:>6} | {:>8} | note",
        "benchmark", "rate", "unit", "p50 ms", "p99 ms", "errors", "requests"
    );
    println!(
        "|{:-<14}|{:->14}|{:-<32}|{:->11}|{:->11}|{:->8}|{:->10}|------",
        "", "", "", "", "", "", ""
    );
    for o in outcomes {
        println!(
            "| {:<12} | {:>12.0} | {:<30} | {:>9.2} | {:>9.2} | {:>6} | {:>8} | {}",
            o.name,
            o.rate(),
            o.unit,
            o.percentile_ms(0.50),
            o.percentile_ms(0.99),
            o.errors,
            o.requests,
            o.note
        );
    }
    println!();
    for o in outcomes {
        let line = json!({
            "name": o.name,
            "rate": (o.rate() * 10.0).round() / 10.0,
            "unit": o.unit,
            "p50_ms": (o.percentile_ms(0.50) * 100.0).round() / 100.0,
            "p99_ms": (o.percentile_ms(0.99) * 100.0).round() / 100.0,
            "errors": o.errors,
            "requests": o.requests,
            "seconds": (o.seconds * 100.0).round() / 100.0,
            "backend": "sqlite synchronous=FULL",
            "note": o.note,
        });
        println!("BENCH {line}");
    }
}

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let mut outcomes = Vec::new();
        {
            let (server, tokens) = start_server(&options.server_bin, 16);
            eprintln!("push_max: {} s ...", options.push_seconds);
            let max =
                push_max(&http, &server.base, &tokens, options.push_clients, options.push_seconds)
                    .await;
            let paced_rate = 0.8 * PUSH_GOAL.min(max.rate().max(1.0));
            outcomes.push(max);
            eprintln!("push_80pct: {} s at {paced_rate:.0}/s ...", options.paced_seconds);
            outcomes.push(
                push_paced(&http, &server.base, &tokens, paced_rate, options.paced_seconds).await,
            );
        }
        {
            let (server, tokens) = start_server(&options.server_bin, 16);
            eprintln!("bulk_import: {} keys ...", options.import_keys);
            outcomes.push(bulk_import(&http, &server.base, &tokens[0], options.import_keys).await);
            eprintln!("codeforge_put: {} s ...", options.put_seconds);
            outcomes.push(codeforge_puts(&http, &server.base, &tokens, options.put_seconds).await);
        }
        report(&outcomes);
    });
}
