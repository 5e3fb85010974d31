//! Native throughput of the sans-IO engine (`persist_engine::Engine`) on a virtual clock.
//!
//! Each case enqueues changes of ~300-byte file records, advancing the virtual clock by
//! `STEP_US` per enqueue (a burst of 50 changes per virtual millisecond), ticks the engine when
//! its timer is due (like the browser runtime), answers every write batch (immediately, or after
//! a virtual latency), then flushes. Wall time is measured with `Instant`; nothing is asserted.
//!
//! A case stops enqueuing after `MAX_WALL` of wall time (then flushes what it queued) so the
//! run stays bounded when the engine is slow; it then reports `capped` and `enqueues_done`.
//!
//! `cargo run --release -p persist-bench --bin engine-bench`

use std::time::{Duration, Instant};

use persist_bench::{file_json, table, Bench, COLLECTION};
use persist_engine::{Action, BatchId, Change, Engine, ItemKey, PersistConfig, SyncError, Time};

const ENQUEUES: usize = 100_000;
const STEP_US: u64 = 20;
const MAX_WALL: Duration = Duration::from_secs(45);

struct Case {
    name: &'static str,
    enqueues: usize,
    keys: usize,
    /// Virtual time a write batch takes (0: answered at once).
    write_latency_us: u64,
}

struct Outcome {
    enqueues_done: usize,
    batches: u64,
    ops_written: u64,
    coalesced: u64,
    wall: Duration,
    virtual_ms: f64,
}

/// The runtime's side: carries out actions, answering writes now or at `latency` later.
struct Driver {
    engine: Engine,
    now: Time,
    latency: Duration,
    in_flight: Option<(Time, BatchId)>,
    flushed: bool,
    batches: u64,
    ops: u64,
}

impl Driver {
    fn drain(&mut self) {
        loop {
            if let Some((due, id)) = self.in_flight {
                if due <= self.now {
                    self.in_flight = None;
                    self.engine.write_finished(self.now, id, Ok(()));
                }
            }
            if self.engine.poll_timeout().is_some_and(|deadline| deadline <= self.now) {
                self.engine.tick(self.now);
            }
            let Some(action) = self.engine.poll_action() else { break };
            match action {
                Action::Write(batch) => {
                    self.batches += 1;
                    self.ops += batch.ops.len() as u64;
                    self.in_flight = Some((self.now + self.latency, batch.id));
                }
                Action::FlushCompleted { result, .. } => {
                    result.expect("the flush completes");
                    self.flushed = true;
                }
                Action::StartSync { id, .. } => {
                    let error = SyncError::permanent("no remote in this benchmark");
                    self.engine.sync_finished(self.now, id, Err(error));
                }
                Action::MetricsChanged => {}
            }
        }
    }
}

fn run(case: &Case) -> Outcome {
    let mut config = PersistConfig::default();
    config.auto_sync.enabled = false;
    let keys: Vec<ItemKey> =
        (0..case.keys).map(|i| ItemKey::new(COLLECTION, format!("f{i:06}"))).collect();
    let payloads: Vec<Change> = (0..64).map(|i| Change::put(file_json(i))).collect();
    let mut driver = Driver {
        engine: Engine::new(config, 7).expect("the default config is valid"),
        now: Time::from_millis(1_000),
        latency: Duration::from_micros(case.write_latency_us),
        in_flight: None,
        flushed: false,
        batches: 0,
        ops: 0,
    };
    let start_time = driver.now;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    let mut enqueues_done = 0;
    for i in 0..case.enqueues {
        if i % 256 == 0 && started.elapsed() > MAX_WALL {
            break;
        }
        enqueues_done += 1;
        driver.now += Duration::from_micros(STEP_US);
        let key = if case.keys == case.enqueues {
            i
        } else {
            // xorshift: keys in random order, each changed enqueues / keys times on average.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % case.keys as u64) as usize
        };
        driver.engine.enqueue(driver.now, keys[key].clone(), payloads[i % 64].clone());
        driver.drain();
    }
    driver.engine.flush(driver.now);
    driver.drain();
    while !driver.flushed {
        driver.now += Duration::from_micros(STEP_US);
        driver.drain();
    }
    let wall = started.elapsed();
    let metrics = driver.engine.metrics();
    assert_eq!(metrics.successful_ops, driver.ops, "every emitted op was answered");
    Outcome {
        enqueues_done,
        batches: driver.batches,
        ops_written: driver.ops,
        coalesced: metrics.coalesced,
        wall,
        virtual_ms: driver.now.saturating_duration_since(start_time).as_secs_f64() * 1e3,
    }
}

fn main() {
    let case =
        |name, keys, write_latency_us| Case { name, enqueues: ENQUEUES, keys, write_latency_us };
    let cases = [
        case("engine/5k_keys_instant_writes", 5_000, 0),
        case("engine/100k_keys_instant_writes", ENQUEUES, 0),
        // Not in the brief: writes that take 1 ms (like IndexedDB) let batches fill up.
        case("engine/100k_keys_1ms_writes", ENQUEUES, 1_000),
    ];
    // Warm-up (caches, allocator), not reported.
    run(&Case { name: "warm-up", enqueues: 20_000, keys: 2_000, write_latency_us: 1_000 });
    let mut benches: Vec<Bench> = Vec::new();
    for case in &cases {
        eprintln!("running {} ...", case.name);
        let outcome = run(case);
        let rate = outcome.enqueues_done as f64 / outcome.wall.as_secs_f64();
        let mut bench = Bench::new(case.name, rate, "enqueues/s")
            .param("enqueues", case.enqueues as u64)
            .param("keys", case.keys as u64)
            .param("virtual_step_us", STEP_US)
            .param("write_latency_us", case.write_latency_us)
            .param("config", "default: debounce 300 ms, max_wait 2 s, batch 10")
            .param("capped", outcome.enqueues_done < case.enqueues)
            .number("enqueues_done", outcome.enqueues_done as f64)
            .number("wall_ms", outcome.wall.as_secs_f64() * 1e3)
            .number("batches", outcome.batches as f64)
            .number("ops_written", outcome.ops_written as f64)
            .number("coalesced", outcome.coalesced as f64)
            .number("ops_per_batch", outcome.ops_written as f64 / outcome.batches.max(1) as f64)
            .number("virtual_ms", outcome.virtual_ms);
        if let Some(baseline) = benches.first() {
            bench = bench.against(baseline);
        }
        println!("{}", bench.line());
        benches.push(bench);
    }
    println!(
        "{}",
        table("engine (native, virtual clock; wall time on a shared machine)", &benches)
    );
}
