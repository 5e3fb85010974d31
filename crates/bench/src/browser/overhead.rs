//! Benchmark 7: what persistence adds to one dispatch, at 100, 1,000 and 10,000 items: p50 and p99
//! of the time per dispatch with this crate, with yewdux's own `storage::StorageListener`
//! (localStorage) and with no listener, each change editing one item.
//!
//! The browser's clock is coarse (`performance.now()` is rounded, to 100 µs in a page that is not
//! cross-origin isolated), far coarser than one dispatch, so dispatches are timed in groups of
//! [`GROUP`] and the percentiles are those of the groups' per-dispatch means.

use yewdux::storage::{Area, StorageListener};
use yewdux::{Context, Dispatch};
use yewdux_persist::PersistOptions;

use super::{collection, log, now_ms, unique, Files, PlainFiles};
use crate::{file_id, Bench};

/// Store sizes.
pub const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// Timed dispatches per variant and size.
pub const DISPATCHES: usize = 2_000;
/// Dispatches per timed group.
pub const GROUP: usize = 20;
const WARM_UP: usize = 100;

/// µs per dispatch of each group of [`GROUP`] dispatches. Between groups the page gets its event
/// loop back (untimed): a page busy for tens of seconds stops answering the test runner, and the
/// persisted variant's timers run as they would between a user's keystrokes.
async fn timed(mut dispatch_one: impl FnMut(usize), items: usize) -> Vec<f64> {
    for k in 0..WARM_UP {
        dispatch_one(k * 7_919 % items);
    }
    let mut groups = Vec::with_capacity(DISPATCHES / GROUP);
    for g in 0..DISPATCHES / GROUP {
        let started = now_ms();
        for k in 0..GROUP {
            dispatch_one((WARM_UP + g * GROUP + k) * 7_919 % items);
        }
        groups.push((now_ms() - started) * 1e3 / GROUP as f64);
        gloo_timers::future::TimeoutFuture::new(0).await;
    }
    groups.sort_by(f64::total_cmp);
    groups
}

/// One change to item `i`.
fn bump<S: yewdux::store::Store + Clone + HasFiles>(dispatch: &Dispatch<S>, i: usize) {
    dispatch.reduce_mut(|s| {
        s.files().update(&file_id(i), |f| f.revision += 1);
    });
}

/// The files collection of either store.
trait HasFiles {
    fn files(&mut self) -> &mut yewdux_persist::Collection<crate::FileRecord>;
}

impl HasFiles for PlainFiles {
    fn files(&mut self) -> &mut yewdux_persist::Collection<crate::FileRecord> {
        &mut self.files
    }
}

impl HasFiles for Files {
    fn files(&mut self) -> &mut yewdux_persist::Collection<crate::FileRecord> {
        &mut self.files
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn none(items: usize) -> Vec<f64> {
    let cx = Context::new();
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(PlainFiles { files: collection(items) });
    timed(|i| bump(&dispatch, i), items).await
}

async fn yewdux_storage(items: usize) -> Vec<f64> {
    let cx = Context::new();
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(PlainFiles { files: collection(items) });
    cx.init_listener(|| StorageListener::<PlainFiles>::new(Area::Local));
    let groups = timed(|i| bump(&dispatch, i), items).await;
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.clear();
    }
    groups
}

async fn persisted(items: usize) -> Vec<f64> {
    let cx = Context::new();
    let persistence =
        yewdux_persist::start(&cx, PersistOptions::new(unique("overhead"))).expect("configure");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    dispatch.reduce_mut(|s| s.files = collection(items));
    persistence.flush().await.expect("the items are written");
    let groups = timed(|i| bump(&dispatch, i), items).await;
    persistence.flush().await.expect("the changes are written");
    assert_eq!(persistence.status().last_error, None, "no write failed");
    yewdux_persist::shutdown(&cx);
    groups
}

/// Runs every size: per size a `none`, a `yewdux_storage` and a `persisted` case; the persisted
/// case carries the µs it adds over no listener and its ratio to yewdux's storage listener.
pub async fn run() -> Vec<Bench> {
    let mut benches = Vec::new();
    for items in SIZES {
        log(&format!("running overhead/{items} ..."));
        let case = |name: &str, groups: &[f64]| {
            Bench::new(
                format!("overhead_{items}/{name}"),
                percentile(groups, 0.5),
                "us/dispatch p50",
            )
            .param("items", items as u64)
            .param("dispatches", DISPATCHES as u64)
            .param("timed_in_groups_of", GROUP as u64)
            .number("p99_us", percentile(groups, 0.99))
        };
        let bare = none(items).await;
        let storage = yewdux_storage(items).await;
        let persisted = persisted(items).await;
        let added = |groups: &[f64], p: f64| percentile(groups, p) - percentile(&bare, p);
        let storage_case = case("yewdux_storage", &storage)
            .number("added_p50_us", added(&storage, 0.5))
            .number("added_p99_us", added(&storage, 0.99));
        let persisted_case = case("persisted", &persisted)
            .number("added_p50_us", added(&persisted, 0.5))
            .number("added_p99_us", added(&persisted, 0.99))
            .against(&storage_case);
        benches.extend([case("no_listener", &bare), storage_case, persisted_case]);
    }
    benches
}

/// The smallest step `performance.now()` takes here, in µs (printed with the results, since it
/// bounds what a timing can resolve).
pub fn clock_step_us() -> f64 {
    let mut smallest = f64::INFINITY;
    let mut last = now_ms();
    for _ in 0..100_000 {
        let now = now_ms();
        if now > last {
            smallest = smallest.min(now - last);
            last = now;
        }
    }
    smallest * 1e3
}
