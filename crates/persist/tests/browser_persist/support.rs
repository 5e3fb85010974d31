//! Stores, helpers and fault-injecting stores shared by the browser tests.

use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use yewdux::{Context, Dispatch};
use yewdux_persist::config::RetryPolicy;
use yewdux_persist::local::{LocalStore, MemoryStore, StorageKind, StoreError, WriteBatch};
use yewdux_persist::{Collection, CollectionConfig, Parts, Persist, PersistOptions, Persistence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct File {
    pub(crate) name: String,
    pub(crate) content: String,
}

pub(crate) fn file(name: &str, content: &str) -> File {
    File { name: name.into(), content: content.into() }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) theme: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Workspace {
    pub(crate) files: Collection<File>,
    pub(crate) settings: Settings,
    /// Not persisted.
    pub(crate) selected: Option<String>,
}

impl Persist for Workspace {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("files", |s| &s.files, |s| &mut s.files).singleton(
            "settings",
            |s| &s.settings,
            |s| &mut s.settings,
        );
    }
}

impl yewdux::store::Store for Workspace {
    fn new(cx: &Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }
    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

/// A store whose defaults hold an item, to prove saved data wins over defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seeded {
    pub(crate) files: Collection<File>,
}

impl Default for Seeded {
    fn default() -> Self {
        Self { files: [("welcome", file("welcome.md", "default"))].into_iter().collect() }
    }
}

impl Persist for Seeded {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("seeded", |s| &s.files, |s| &mut s.files);
    }
}

impl yewdux::store::Store for Seeded {
    fn new(cx: &Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }
    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

pub(crate) fn start(cx: &Context, options: PersistOptions) -> Persistence {
    yewdux_persist::start(cx, options).expect("start")
}

/// A dispatch of `S` whose store exists (yewdux creates stores lazily, on first use).
pub(crate) fn open<S: Persist>(cx: &Context) -> Dispatch<S> {
    let dispatch = Dispatch::<S>::new(cx);
    dispatch.get();
    dispatch
}

/// A fresh context, a runtime started on it with `options`, and store `S`, loaded.
pub(crate) struct Session<S: Persist> {
    pub(crate) cx: Context,
    pub(crate) persistence: Persistence,
    pub(crate) dispatch: Dispatch<S>,
}

/// Starts a [`Session`] and waits until its store has loaded its saved data.
pub(crate) async fn loaded<S: Persist>(options: PersistOptions) -> Session<S> {
    let cx = Context::new();
    let persistence = start(&cx, options);
    let dispatch = open::<S>(&cx);
    persistence.ready().await;
    Session { cx, persistence, dispatch }
}

pub(crate) async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Polls `condition` every 10 ms for up to `timeout_ms`.
pub(crate) async fn wait_until(timeout_ms: u32, mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..timeout_ms / 10 {
        if condition() {
            return true;
        }
        sleep_ms(10).await;
    }
    condition()
}

/// Reads one collection straight from IndexedDB with a fresh store (a second connection).
pub(crate) async fn stored(database: &str, collection: &str) -> Vec<(String, String)> {
    let store = yewdux_persist::local::IndexedDbStore::new(database, 1);
    store.prepare(&[collection.to_owned()]).await.expect("prepare");
    let loaded = store.load_all(collection).await.expect("load");
    loaded.items.into_iter().map(|item| (item.id, item.json)).collect()
}

pub(crate) fn fast_retry_options(store: Rc<MemoryStore>) -> PersistOptions {
    PersistOptions::new(unique("failing")).local_store(store).write_retry(RetryPolicy {
        initial: Duration::from_millis(20),
        multiplier: 2.0,
        max: Duration::from_millis(100),
        jitter: 0.0,
    })
}

/// Faults a test store injects around a real store.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Faults {
    /// `prepare` fails as if IndexedDB were unavailable (some private modes).
    pub(crate) unavailable: bool,
    /// Single-batch writes never finish, like a page frozen right after it began its first
    /// write; `write_all` (the page-exit path) still works.
    pub(crate) frozen_batches: bool,
    /// Loading this collection fails.
    pub(crate) broken_load: Option<&'static str>,
    /// Loads answer this many milliseconds late, as if the disk were slow.
    pub(crate) slow_load_ms: u32,
}

/// A real store (memory or IndexedDB) with [`Faults`].
#[derive(Debug)]
pub(crate) struct Faulty<S> {
    pub(crate) inner: S,
    pub(crate) faults: Faults,
}

pub(crate) type Fut<'a, T> = yewdux_persist::local::LocalFuture<'a, Result<T, StoreError>>;

impl<S: LocalStore> LocalStore for Faulty<S> {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }
    fn prepare<'a>(&'a self, collections: &'a [String]) -> Fut<'a, ()> {
        if self.faults.unavailable {
            return Box::pin(async {
                Err(StoreError::Unavailable("IndexedDB is disabled".into()))
            });
        }
        self.inner.prepare(collections)
    }
    fn write_batch<'a>(&'a self, batch: &'a WriteBatch) -> Fut<'a, ()> {
        if self.faults.frozen_batches {
            return Box::pin(std::future::pending());
        }
        self.inner.write_batch(batch)
    }
    fn write_all<'a>(&'a self, batches: &'a [WriteBatch]) -> Fut<'a, ()> {
        self.inner.write_all(batches)
    }
    fn load_all<'a>(&'a self, collection: &'a str) -> Fut<'a, yewdux_persist::local::LoadedItems> {
        if self.faults.broken_load == Some(collection) {
            return Box::pin(async {
                Err(StoreError::Other {
                    name: "UnknownError".into(),
                    message: "read failed".into(),
                })
            });
        }
        let delay = self.faults.slow_load_ms;
        Box::pin(async move {
            let loaded = self.inner.load_all(collection).await;
            if delay > 0 {
                sleep_ms(delay).await;
            }
            loaded
        })
    }
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> Fut<'a, Vec<Option<String>>> {
        self.inner.load_items(collection, ids)
    }
    fn get_meta<'a>(&'a self, key: &'a str) -> Fut<'a, Option<String>> {
        self.inner.get_meta(key)
    }
    fn set_meta<'a>(&'a self, key: &'a str, value: &'a str) -> Fut<'a, ()> {
        self.inner.set_meta(key, value)
    }
    fn outbox<'a>(&'a self, limit: usize) -> Fut<'a, Vec<yewdux_persist::local::OutboxEntry>> {
        self.inner.outbox(limit)
    }
    fn outbox_len(&self) -> Fut<'_, usize> {
        self.inner.outbox_len()
    }
    fn stats(&self) -> yewdux_persist::local::LocalStoreStats {
        self.inner.stats()
    }
}

pub(crate) fn faulty<S>(inner: S, faults: Faults) -> Rc<Faulty<S>> {
    Rc::new(Faulty { inner, faults })
}

pub(crate) fn set_visibility(state: Option<&str>) {
    let document = web_sys::window().unwrap().document().unwrap();
    let key = JsValue::from_str("visibilityState");
    match state {
        Some(state) => {
            let descriptor = js_sys::Object::new();
            js_sys::Reflect::set(&descriptor, &"value".into(), &state.into()).unwrap();
            js_sys::Reflect::set(&descriptor, &"configurable".into(), &true.into()).unwrap();
            js_sys::Object::define_property(&document, &key, &descriptor);
        }
        None => {
            js_sys::Reflect::delete_property(&document, &key).unwrap();
        }
    }
}

pub(crate) fn slow_debounce(database: String) -> PersistOptions {
    PersistOptions::new(database).default_collection(CollectionConfig {
        debounce: Duration::from_secs(10),
        max_wait: Duration::from_secs(20),
        ..CollectionConfig::default()
    })
}

pub(crate) fn window_event(name: &str) {
    web_sys::window().unwrap().dispatch_event(&web_sys::Event::new(name).unwrap()).unwrap();
}
