//! Benchmark 4: sync with a real `persist-server` on loopback (release build, SQLite with
//! `synchronous=FULL`, started by `scripts/with-test-server.sh`; its address is compiled in from
//! `PERSIST_TEST_SERVER`).
//!
//! - `sync/end_to_end`: 10,000 distinct item changes dispatched to a persisted store, until every
//!   one is acknowledged by the server (the outbox empty); items/s from the first dispatch. The
//!   baseline, in the same process, is the same dispatches persisted locally only (flushed to
//!   IndexedDB, no remote), so the ratio is what syncing costs on top.
//! - `sync/a_to_b`: a change dispatched on device A (debounce 0) until it is in device B's store,
//!   brought by the server's event stream (B never calls sync); p50 / p95 over 30 changes.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use yewdux::{Context, Dispatch};
use yewdux_persist::config::AutoSyncConfig;
use yewdux_persist::remote::HttpRemote;
use yewdux_persist::{CollectionConfig, PersistOptions, Persistence};

use super::{log, now_ms, unique, Files};
use crate::{file_id, file_record, Bench, COLLECTION};

/// Items changed in the end-to-end case.
pub const ITEMS: usize = 10_000;
/// Changes timed from A to B.
pub const HOPS: usize = 30;

// Read when the benchmark is built: `scripts/client-bench.sh` starts the server first.
#[allow(clippy::option_env_unwrap)]
fn server() -> &'static str {
    option_env!("PERSIST_TEST_SERVER")
        .expect("PERSIST_TEST_SERVER is not set: run scripts/client-bench.sh (it starts a server)")
}

async fn token() -> String {
    HttpRemote::new(server(), None).dev_config().await.expect("the server is in dev mode").token
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

async fn started(options: PersistOptions) -> (Context, Persistence, Dispatch<Files>) {
    let cx = Context::new();
    let persistence = yewdux_persist::start(&cx, options).expect("start");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    (cx, persistence, dispatch)
}

/// Dispatches `ITEMS` changes, each a new value (the server and the local store may already hold
/// these ids from an earlier case: the first sync pulls them).
fn dispatch_all(dispatch: &Dispatch<Files>) {
    let salt = (js_sys::Math::random() * 1e12) as u64;
    for i in 0..ITEMS {
        let mut record = file_record(i);
        record.revision = salt;
        dispatch.reduce_mut(move |s| {
            s.files.insert(file_id(i), record);
        });
    }
}

/// Dispatch then flush, locally only: the baseline.
async fn local_only(batch_size: usize) -> Bench {
    let config = CollectionConfig::default().with_batch_size(batch_size);
    let options = PersistOptions::new(unique("sync-local")).collection(COLLECTION, config);
    let (cx, persistence, dispatch) = started(options).await;
    let start = now_ms();
    dispatch_all(&dispatch);
    persistence.flush().await.expect("flushed");
    let total = now_ms() - start;
    yewdux_persist::shutdown(&cx);
    Bench::new(format!("sync/local_only_b{batch_size}"), ITEMS as f64 / total * 1e3, "items/s")
        .param("items", ITEMS as u64)
        .param("batch_size", batch_size as u64)
        .number("total_ms", total)
}

/// How the end-to-end case syncs.
#[derive(Debug, Clone, Copy)]
struct Mode {
    batch_size: usize,
    push_batch: usize,
    /// Automatic syncs on (on change, as apps run) or only the final manual ones.
    auto: bool,
}

/// Dispatch until the server acknowledged every item.
async fn end_to_end(token: &str, mode: Mode, baseline: &Bench) -> Bench {
    let Mode { batch_size, push_batch, auto } = mode;
    let remote = Rc::new(HttpRemote::new(server(), Some(token.to_owned())));
    let config = CollectionConfig::default().with_batch_size(batch_size);
    let mut options = PersistOptions::new(unique("sync-e2e"))
        .collection(COLLECTION, config)
        .remote(remote)
        .push_batch(push_batch);
    if !auto {
        options = options.auto_sync(AutoSyncConfig { enabled: false, ..AutoSyncConfig::default() });
    }
    let (cx, persistence, dispatch) = started(options).await;
    // Connected and idle before the clock starts.
    persistence.sync_now().await.expect("first sync");
    // When the phases of the syncs happen: time spent pushing (from each sync's start to its
    // first page pulled) and pulling (from there to its end), summed over the syncs.
    let phases = Rc::new(std::cell::RefCell::new(Phases::default()));
    let _watch = {
        let phases = Rc::clone(&phases);
        persistence.subscribe_status(move |status| phases.borrow_mut().see(&status.sync.progress))
    };
    let start = now_ms();
    dispatch_all(&dispatch);
    persistence.flush().await.expect("flushed");
    let flushed = now_ms();
    let mut rounds = 0;
    while persistence.status().sync.pending > 0 || rounds == 0 {
        persistence.sync_now().await.expect("sync");
        rounds += 1;
        assert!(rounds < 50, "the outbox drains: {:?}", persistence.status().sync);
    }
    let total = now_ms() - start;
    let status = persistence.status();
    assert!(status.sync.dead_letters.is_empty() && status.sync.last_error.is_none());
    yewdux_persist::shutdown(&cx);
    let (pushing, pulling, batches) = {
        let phases = phases.borrow();
        (phases.pushing, phases.pulling, phases.batches)
    };
    let name =
        format!("sync/end_to_end_b{batch_size}_p{push_batch}{}", if auto { "" } else { "_manual" });
    Bench::new(name, ITEMS as f64 / total * 1e3, "items/s")
        .param("items", ITEMS as u64)
        .param("batch_size", batch_size as u64)
        .param("push_batch", push_batch as u64)
        .param("auto_sync", auto)
        .number("total_ms", total)
        .number("local_flush_ms", flushed - start)
        .number("sync_ms", total - (flushed - start))
        .number("pushing_ms", pushing)
        .number("pulling_ms", pulling)
        .number("push_batches", batches as f64)
        .against(baseline)
}

/// Sums the time a runtime spends in each phase of its syncs, from its status updates.
#[derive(Debug, Default)]
struct Phases {
    last: Option<(f64, &'static str)>,
    pushing: f64,
    pulling: f64,
    batches: usize,
}

impl Phases {
    fn see(&mut self, progress: &yewdux_persist::status::SyncProgress) {
        use yewdux_persist::status::SyncProgress;
        let now = now_ms();
        let phase = match progress {
            SyncProgress::Idle => "idle",
            SyncProgress::Pushing { .. } => "pushing",
            SyncProgress::Pulling { .. } => "pulling",
        };
        if let Some((since, previous)) = self.last {
            // A phase is timed up to the next update: pushing runs until the first page pulled.
            match previous {
                "pushing" => self.pushing += now - since,
                "pulling" => self.pulling += now - since,
                _ => {}
            }
        }
        if phase == "pushing" {
            self.batches += 1;
        }
        self.last = Some((now, phase));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// From a dispatch on A to the item in B's store.
async fn a_to_b(token: &str) -> Bench {
    let fast =
        CollectionConfig::default().with_debounce(Duration::ZERO).with_max_wait(Duration::ZERO);
    let options = |name: &str| {
        PersistOptions::new(unique(name))
            .collection(COLLECTION, fast.clone())
            .remote(Rc::new(HttpRemote::new(server(), Some(token.to_owned()))))
    };
    let (cx_a, a, dispatch_a) = started(options("sync-a")).await;
    // B syncs only when an event arrives: no interval, no on-change.
    let quiet = AutoSyncConfig {
        interval: Duration::from_secs(3_600),
        sync_on_change: false,
        ..AutoSyncConfig::default()
    };
    let (cx_b, b, dispatch_b) = started(options("sync-b").auto_sync(quiet)).await;
    a.sync_now().await.expect("A connects");
    b.sync_now().await.expect("B connects");
    sleep_ms(500).await; // B's event stream is open.
    let seen = Rc::new(Cell::new(f64::NAN));
    let target = Rc::new(std::cell::RefCell::new(String::new()));
    let _watch = {
        let (seen, target) = (Rc::clone(&seen), Rc::clone(&target));
        dispatch_b.subscribe(move |state: Rc<Files>| {
            if seen.get().is_nan() && state.files.contains(&target.borrow()) {
                seen.set(now_ms());
            }
        })
    };
    let mut samples = Vec::with_capacity(HOPS);
    for hop in 0..HOPS {
        let id = format!("hop-{hop}-{}", (js_sys::Math::random() * 1e9) as u64);
        *target.borrow_mut() = id.clone();
        seen.set(f64::NAN);
        let start = now_ms();
        let record = file_record(hop);
        dispatch_a.reduce_mut(move |s| {
            s.files.insert(id, record);
        });
        for _ in 0..500 {
            if !seen.get().is_nan() {
                break;
            }
            sleep_ms(2).await;
        }
        assert!(!seen.get().is_nan(), "B got hop {hop}");
        samples.push(seen.get() - start);
        sleep_ms(50).await;
    }
    yewdux_persist::shutdown(&cx_a);
    yewdux_persist::shutdown(&cx_b);
    samples.sort_by(f64::total_cmp);
    Bench::new("sync/a_to_b_p50", percentile(&samples, 0.5), "ms")
        .param("changes", HOPS as u64)
        .param("debounce_ms", 0u64)
        .number("p95_ms", percentile(&samples, 0.95))
        .number("min_ms", samples[0])
        .number("max_ms", samples[samples.len() - 1])
}

/// Every sync case, in order.
pub async fn run() -> Vec<Bench> {
    log("running sync/* against the server ...");
    let token = token().await;
    let mut out = Vec::new();
    for batch_size in [10, 100] {
        let baseline = local_only(batch_size).await;
        let push_batch = yewdux_persist::config::DEFAULT_PUSH_BATCH;
        let synced =
            end_to_end(&token, Mode { batch_size, push_batch, auto: true }, &baseline).await;
        out.push(baseline);
        out.push(synced);
    }
    // Where the time goes: the same with the largest pushes, and with one manual sync at the end.
    let baseline = out[2].clone();
    for mode in [
        Mode { batch_size: 100, push_batch: 1_000, auto: true },
        Mode { batch_size: 100, push_batch: 1_000, auto: false },
    ] {
        out.push(end_to_end(&token, mode, &baseline).await);
    }
    out.push(a_to_b(&token).await);
    out
}
