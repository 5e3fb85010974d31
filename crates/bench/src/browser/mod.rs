//! The browser benchmarks (wasm32 only), run by `tests/browser_bench.rs` in headless Chromium.

use std::cell::Cell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use yewdux::{Context, Listener};
use yewdux_persist::{Collection, Parts, Persist};

use crate::{file_id, file_record, FileRecord, COLLECTION};

pub mod dispatch;
pub mod hydration;
pub mod idb;
pub mod overhead;
pub mod runtime;
pub mod sync;
pub mod typing;

/// `performance.now()`, in milliseconds.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|window| window.performance()).expect("performance").now()
}

/// Prints a line to the console (shown by `wasm-pack test -- --nocapture`).
pub fn log(line: &str) {
    web_sys::console::log_1(&line.into());
}

/// A database name no earlier run used.
pub fn unique(name: &str) -> String {
    format!("bench-{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

/// A collection of records `0..n`.
pub fn collection(n: usize) -> Collection<FileRecord> {
    (0..n).map(|i| (file_id(i), file_record(i))).collect()
}

/// A persisted store: one collection of file records, installed with `yewdux_persist::install`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Files {
    /// One IndexedDB record per file.
    pub files: Collection<FileRecord>,
}

impl Persist for Files {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection(COLLECTION, |s| &s.files, |s| &mut s.files);
    }
}

impl yewdux::store::Store for Files {
    fn new(cx: &Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }

    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

/// The same store without persistence (the baselines).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlainFiles {
    /// The files.
    pub files: Collection<FileRecord>,
}

impl yewdux::store::Store for PlainFiles {
    fn new(_: &Context) -> Self {
        Self::default()
    }

    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

/// What yewdux's built-in storage listener does on every change: serialise the whole store
/// with `serde_json::to_string` (it then writes the text to localStorage; that part is left out,
/// so this baseline is a lower bound).
#[derive(Debug, Default)]
pub struct WholeStoreJson {
    /// Bytes serialised so far (keeps the work observable).
    pub bytes: Rc<Cell<usize>>,
}

impl Listener for WholeStoreJson {
    type Store = PlainFiles;

    fn on_change(&self, _: &Context, state: Rc<PlainFiles>) {
        let json = serde_json::to_string(&*state).expect("the store serialises");
        self.bytes.set(self.bytes.get() + json.len());
    }
}
