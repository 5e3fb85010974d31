//! Benchmark 3: the cost of one dispatch in a big store (10,000 items, each dispatch changes one
//! item), with persistence installed (diff + serialise the changed item + enqueue), against a
//! listener serialising the whole store on every change (yewdux's storage listener), and against
//! no listener at all. Same process, same records, one yewdux context per variant.

use std::rc::Rc;

use yewdux::store::Store;
use yewdux::{Context, Dispatch};
use yewdux_persist::{Collection, PersistOptions};

use super::{collection, log, now_ms, unique, Files, PlainFiles, WholeStoreJson};
use crate::{file_id, Bench, FileRecord};

/// Items in the store.
pub const ITEMS: usize = 10_000;
/// Timed dispatches per variant.
pub const DISPATCHES: usize = 1_000;
const WARM_UP: usize = 50;
const CHUNK: usize = 100;

/// Dispatches changing one item each (spread over the store); returns the ms of each chunk of
/// [`CHUNK`].
fn dispatch_all<S: Store + Clone>(
    dispatch: &Dispatch<S>,
    files: fn(&mut S) -> &mut Collection<FileRecord>,
    range: std::ops::Range<usize>,
) -> Vec<f64> {
    let ids: Vec<String> = range.map(|i| file_id(i * 7_919 % ITEMS)).collect();
    let mut chunks = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let started = now_ms();
        for id in chunk {
            dispatch.reduce_mut(|s| {
                files(s).update(id, |f| f.revision += 1);
            });
        }
        chunks.push(now_ms() - started);
    }
    chunks
}

/// µs per dispatch over all chunks.
fn per_dispatch(chunks: &[f64]) -> f64 {
    chunks.iter().sum::<f64>() * 1e3 / DISPATCHES as f64
}

fn bare() -> Vec<f64> {
    let cx = Context::new();
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(PlainFiles { files: collection(ITEMS) });
    dispatch_all(&dispatch, |s| &mut s.files, 0..WARM_UP);
    dispatch_all(&dispatch, |s| &mut s.files, WARM_UP..WARM_UP + DISPATCHES)
}

fn whole_store_json() -> (Vec<f64>, usize) {
    let cx = Context::new();
    let listener = WholeStoreJson::default();
    let bytes = Rc::clone(&listener.bytes);
    cx.init_listener(move || listener);
    let dispatch = Dispatch::<PlainFiles>::new(&cx);
    dispatch.set(PlainFiles { files: collection(ITEMS) });
    dispatch_all(&dispatch, |s| &mut s.files, 0..WARM_UP);
    bytes.set(0);
    let chunks = dispatch_all(&dispatch, |s| &mut s.files, WARM_UP..WARM_UP + DISPATCHES);
    (chunks, bytes.get() / DISPATCHES)
}

/// Returns the chunks and the ms the flush of the dispatched changes took afterwards.
async fn persisted() -> (Vec<f64>, f64) {
    let cx = Context::new();
    let persistence =
        yewdux_persist::start(&cx, PersistOptions::new(unique("dispatch"))).expect("configure");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    dispatch.reduce_mut(|s| s.files = collection(ITEMS));
    persistence.flush().await.expect("the initial items are written");
    dispatch_all(&dispatch, |s| &mut s.files, 0..WARM_UP);
    persistence.flush().await.expect("the warm-up changes are written");
    let chunks = dispatch_all(&dispatch, |s| &mut s.files, WARM_UP..WARM_UP + DISPATCHES);
    let started = now_ms();
    persistence.flush().await.expect("the changes are written");
    let flush_ms = now_ms() - started;
    assert_eq!(persistence.status().last_error, None, "no write failed");
    yewdux_persist::shutdown(&cx);
    (chunks, flush_ms)
}

/// Runs the three variants; ratios are against the whole-store JSON listener.
pub async fn run() -> Vec<Bench> {
    let case = |name: &str, chunks: &[f64]| {
        // First and last 100 dispatches: a cost that grows with the write queue shows here.
        let chunk_us = |ms: Option<&f64>| ms.copied().unwrap_or_default() * 1e3 / CHUNK as f64;
        Bench::new(format!("dispatch_10k/{name}"), per_dispatch(chunks), "us/dispatch")
            .param("items", ITEMS as u64)
            .param("dispatches", DISPATCHES as u64)
            .param("change", "one item per dispatch (Collection::update)")
            .number("first_100_us", chunk_us(chunks.first()))
            .number("last_100_us", chunk_us(chunks.last()))
    };
    log("running dispatch_10k/whole_store_json ...");
    let (chunks, bytes) = whole_store_json();
    let json = case("whole_store_json", &chunks).number("json_bytes_per_dispatch", bytes as f64);
    log("running dispatch_10k/no_listener ...");
    let none = case("no_listener", &bare()).against(&json);
    log("running dispatch_10k/persisted ...");
    let (chunks, flush_ms) = persisted().await;
    let persisted = case("persisted", &chunks)
        .number("vs_no_listener", per_dispatch(&chunks) / none.value)
        .number("flush_after_ms", flush_ms)
        .against(&json);
    vec![json, none, persisted]
}
