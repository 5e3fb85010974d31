//! What is measured while an attack runs: a `/health` prober, a victim user pushing one small op
//! at a time, the server's memory; then the report (one `HOSTILE {json}` line) and the budgets.
//!
//! The prober and the victim run on a runtime of their own, on their own thread: the attack's
//! client work (building or reading tens of MiB) must not delay their timers, or the latency they
//! record would be the test client's, not the server's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::server::{Rss, RssSampler, Server};

/// The budgets.
const RSS_BUDGET_BYTES: u64 = 256 * 1024 * 1024;
const HEALTH_BUDGET: Duration = Duration::from_millis(100);
const VICTIM_P99_BUDGET: Duration = Duration::from_millis(100);

/// A probe that gets no answer within this counts as this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// ~20 pushes/s: far below the per-user rate limit (100/s), so the victim is never throttled.
const PUSH_EVERY: Duration = Duration::from_millis(50);
/// Bounds one victim push, so a stuck server cannot hang the suite.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The prober, the victim and the memory sampler, running.
#[derive(Debug)]
pub(crate) struct Watch {
    name: &'static str,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Observed>,
    rss: RssSampler,
    victim: String,
    attack_started: Instant,
}

/// What the prober and the victim saw; samples are `(start, latency)`.
#[derive(Debug, Default)]
struct Observed {
    health: Vec<(Instant, Duration)>,
    /// Probes not answered 200 and what they got instead: a status, `timeout`, `error` or `cut`.
    health_failures: Vec<(Instant, String)>,
    pushes: Vec<(Instant, Duration)>,
    push_errors: Vec<String>,
    /// Victim ops answered `applied`: op number → value.
    acked: BTreeMap<u64, Value>,
}

impl Watch {
    /// Starts watching `server`, waits until the victim's first push and the first probe were
    /// answered (its token is then cached, as a real user's is), and returns: the attack starts
    /// now, and only samples taken from now on count.
    pub(crate) fn start(name: &'static str, server: &Server, victim: &str) -> Watch {
        let rss = server.sample_rss();
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, ready) = (Arc::clone(&stop), Arc::clone(&ready));
            let (base, token) = (server.base.clone(), victim.to_owned());
            std::thread::spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(observe(base, token, stop, ready))
            })
        };
        let waiting = Instant::now();
        while !ready.load(Ordering::Relaxed) && waiting.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(ready.load(Ordering::Relaxed), "{name}: the victim's first push got no answer");
        Watch { name, stop, thread, rss, victim: victim.to_owned(), attack_started: Instant::now() }
    }

    /// Time since the attack started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.attack_started.elapsed()
    }

    /// Stops watching, checks that every acknowledged victim write is stored (on a restarted
    /// server when the attack killed this one), prints the `HOSTILE` line and answers the report.
    /// `facts` are the attack's own figures, added to the line.
    pub(crate) async fn finish(self, server: &mut Server, facts: Map<String, Value>) -> Report {
        let attack_took = self.attack_started.elapsed();
        self.stop.store(true, Ordering::Relaxed);
        let observed =
            tokio::task::spawn_blocking(move || self.thread.join().unwrap()).await.unwrap();
        let rss = self.rss.finish();
        let warnings = server.warnings();
        let restarted = !server.alive();
        if restarted {
            server.restart();
        }
        let lost = lost_writes(server, &self.victim, &observed.acked).await;

        let since = |samples: &[(Instant, Duration)]| -> Vec<Duration> {
            let mut kept: Vec<_> = samples
                .iter()
                .filter(|(at, _)| *at >= self.attack_started)
                .map(|(_, took)| *took)
                .collect();
            kept.sort();
            kept
        };
        let health = since(&observed.health);
        let mut health_failures = BTreeMap::new();
        for (_, failure) in
            observed.health_failures.iter().filter(|(at, _)| *at >= self.attack_started)
        {
            *health_failures.entry(failure.clone()).or_insert(0) += 1;
        }
        let pushes = since(&observed.pushes);
        let mut line = json!({
            "attack": self.name,
            "binary": crate::server::binary().rsplit('/').next().unwrap_or_default(),
            "attack_s": round(attack_took.as_secs_f64()),
            "rss_peak_mb": mb(rss.peak()),
            "rss_sampled_max_mb": mb(rss.sampled_max),
            "rss_exceeded": rss.exceeded,
            "health_probes": health.len(),
            "health_failures": health_failures,
            "health_max_ms": ms(health.last().copied()),
            "health_p99_ms": ms(p99(&health)),
            "victim_pushes": pushes.len(),
            "victim_p99_ms": ms(p99(&pushes)),
            "victim_max_ms": ms(pushes.last().copied()),
            "victim_acked": observed.acked.len(),
            "victim_errors": observed.push_errors.len(),
            "victim_lost": lost.len(),
            "server_warnings": warnings,
        });
        line.as_object_mut().unwrap().extend(facts);
        println!("HOSTILE {line}");
        Report {
            name: self.name,
            rss,
            health_max: health.last().copied(),
            victim_p99: p99(&pushes),
            push_errors: observed.push_errors,
            lost,
            failures: Vec::new(),
        }
    }
}

/// The figures of one attack and the checks that failed; [`Report::assert`] fails the test with
/// every failed check at once, so one run shows all of an attack's problems.
#[derive(Debug)]
pub(crate) struct Report {
    name: &'static str,
    rss: Rss,
    health_max: Option<Duration>,
    victim_p99: Option<Duration>,
    push_errors: Vec<String>,
    lost: Vec<u64>,
    failures: Vec<String>,
}

impl Report {
    /// An attack-specific check.
    pub(crate) fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// Checks the budgets every attack shares, then fails with everything that failed.
    pub(crate) fn assert(mut self) {
        let rss = self.rss;
        self.check(!rss.exceeded, format!("killed at {} MB of RSS", mb(rss.peak())));
        self.check(
            rss.peak() <= RSS_BUDGET_BYTES,
            format!("RSS peaked at {} MB (budget {} MB)", mb(rss.peak()), mb(RSS_BUDGET_BYTES)),
        );
        // No sample at all means the prober was starved for the whole attack: a failure too.
        let health = self.health_max.unwrap_or(PROBE_TIMEOUT);
        self.check(health <= HEALTH_BUDGET, format!("/health took up to {health:?}"));
        let victim = self.victim_p99.unwrap_or(PUSH_TIMEOUT);
        self.check(victim <= VICTIM_P99_BUDGET, format!("the victim's push p99 was {victim:?}"));
        let errors = &self.push_errors;
        self.check(errors.is_empty(), format!("{} victim pushes failed: {errors:?}", errors.len()));
        let lost = &self.lost;
        self.check(lost.is_empty(), format!("acknowledged victim writes lost: {lost:?}"));
        assert!(self.failures.is_empty(), "{}: {}", self.name, self.failures.join("; "));
    }
}

/// The address the prober and the victim connect from; attackers use 127.0.0.1.
const BYSTANDER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The prober and the victim, until `stop`.
async fn observe(
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
) -> Observed {
    // A new connection per probe, as a load balancer's health check makes: a server that stops
    // accepting must show here, not hide behind a kept-alive connection.
    // The prober and the victim come from another client address than the attacker (all of
    // 127.0.0.0/8 is loopback): the server's per-address limits (connections, failed
    // authentications) are meant to tell them apart, as they would on a real network.
    let prober = reqwest::Client::builder()
        .local_address(BYSTANDER)
        .pool_max_idle_per_host(0)
        .timeout(PROBE_TIMEOUT)
        .build()
        .unwrap();
    // The victim keeps its connection, as the app does.
    let victim =
        reqwest::Client::builder().local_address(BYSTANDER).timeout(PUSH_TIMEOUT).build().unwrap();
    let mut observed = Observed::default();
    let health_url = format!("{base}/health");
    let push_url = format!("{base}/v1/push");
    let probe_ready = AtomicBool::new(false);
    let push_ready = AtomicBool::new(false);
    let mark_ready = || {
        if probe_ready.load(Ordering::Relaxed) && push_ready.load(Ordering::Relaxed) {
            ready.store(true, Ordering::Relaxed);
        }
    };
    let health = async {
        let (mut samples, mut failures) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let answer = prober.get(&health_url).send().await;
            let failure = match answer {
                Ok(response) if response.status() == 200 => match response.bytes().await {
                    Ok(_) => None,
                    Err(_) => Some("cut".to_owned()),
                },
                // 503 "degraded": the database did not answer the check within its second.
                Ok(response) => Some(response.status().as_u16().to_string()),
                Err(error) if error.is_timeout() => Some("timeout".to_owned()),
                Err(_) => Some("error".to_owned()),
            };
            // A failed probe counts as the timeout: it was not answered (well) in time.
            let took = if failure.is_none() { started.elapsed() } else { PROBE_TIMEOUT };
            failures.extend(failure.map(|failure| (started, failure)));
            samples.push((started, took));
            probe_ready.store(true, Ordering::Relaxed);
            mark_ready();
            tokio::time::sleep(PROBE_EVERY).await;
        }
        (samples, failures)
    };
    let pushes = async {
        let (mut samples, mut errors, mut acked) = (Vec::new(), Vec::new(), BTreeMap::new());
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let value = json!({ "n": n, "note": "victim" });
            let op = json!({
                "op_id": format!("victim-{n}"), "collection": "victim", "id": format!("k{n}"),
                "value": value.clone(),
            });
            let started = Instant::now();
            let answer = victim
                .post(&push_url)
                .bearer_auth(&token)
                .json(&json!({ "ops": [op] }))
                .send()
                .await;
            let outcome = match answer {
                Ok(response) if response.status() == 200 => response.json::<Value>().await.ok(),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    errors
                        .push(format!("{status}: {}", body.chars().take(120).collect::<String>()));
                    None
                }
                Err(error) => {
                    errors.push(format!("{error}"));
                    None
                }
            };
            let took = started.elapsed();
            if let Some(body) = outcome {
                if body["results"][0]["status"] == "applied" {
                    acked.insert(n, value);
                } else {
                    errors.push(format!("not applied: {}", body["results"][0]));
                }
            }
            samples.push((started, took));
            push_ready.store(true, Ordering::Relaxed);
            mark_ready();
            tokio::time::sleep(PUSH_EVERY.saturating_sub(took)).await;
        }
        (samples, errors, acked)
    };
    let ((health, failures), (pushes, errors, acked)) = tokio::join!(health, pushes);
    observed.health = health;
    observed.health_failures = failures;
    observed.pushes = pushes;
    observed.push_errors = errors;
    observed.acked = acked;
    observed
}

/// The acknowledged victim ops whose value the server does not have (pulled page by page).
async fn lost_writes(server: &Server, victim: &str, acked: &BTreeMap<u64, Value>) -> Vec<u64> {
    let http = reqwest::Client::builder().local_address(BYSTANDER).build().unwrap();
    let mut stored = BTreeMap::new();
    let mut since = 0;
    // Bounded: the victim wrote a few hundred records at most.
    for _ in 0..100 {
        let url = server.url(&format!("/v1/pull?since={since}&limit=1000"));
        let response = http.get(url).bearer_auth(victim).send().await.unwrap();
        assert_eq!(response.status(), 200, "the victim cannot pull");
        let page: Value = response.json().await.unwrap();
        for record in page["records"].as_array().unwrap() {
            stored.insert(record["id"].as_str().unwrap().to_owned(), record["value"].clone());
        }
        since = page["next_since"].as_u64().unwrap();
        if page["has_more"] != true {
            break;
        }
    }
    acked
        .iter()
        .filter(|(n, value)| stored.get(&format!("k{n}")) != Some(value))
        .map(|(n, _)| *n)
        .collect()
}

/// The 99th percentile of sorted samples.
fn p99(sorted: &[Duration]) -> Option<Duration> {
    let rank = (sorted.len() * 99).div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}

fn ms(took: Option<Duration>) -> Value {
    took.map_or(Value::Null, |t| json!(round(t.as_secs_f64() * 1000.0)))
}

fn mb(bytes: u64) -> f64 {
    round(bytes as f64 / (1024.0 * 1024.0))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
