//! The browser runtime end to end, in headless Chromium: a real yewdux store, real IndexedDB,
//! real timers, BroadcastChannel and page-lifecycle events.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;
use yewdux::{Context, Dispatch};
use yewdux_persist::local::{LocalStore, MemoryStore, StorageKind, StoreError};
use yewdux_persist::{
    Collection, Error, Parts, Persist, PersistOptions, Persistence, RetryPolicy, SliceConfig,
};

wasm_bindgen_test_configure!(run_in_browser);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    name: String,
    content: String,
}

fn file(name: &str, content: &str) -> File {
    File { name: name.into(), content: content.into() }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Settings {
    theme: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Workspace {
    files: Collection<File>,
    settings: Settings,
    /// Not persisted.
    selected: Option<String>,
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
struct Seeded {
    files: Collection<File>,
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

fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

fn start(cx: &Context, options: PersistOptions) -> Persistence {
    yewdux_persist::configure(cx, options).expect("configure")
}

/// A dispatch of `S` whose store exists (yewdux creates stores lazily, on first use).
fn open<S: Persist>(cx: &Context) -> Dispatch<S> {
    let dispatch = Dispatch::<S>::new(cx);
    dispatch.get();
    dispatch
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Polls `condition` every 10 ms for up to `timeout_ms`.
async fn wait_until(timeout_ms: u32, mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..timeout_ms / 10 {
        if condition() {
            return true;
        }
        sleep_ms(10).await;
    }
    condition()
}

/// Reads one collection straight from IndexedDB with a fresh store (a second connection).
async fn stored(database: &str, collection: &str) -> Vec<(String, String)> {
    let store = yewdux_persist::local::IndexedDbStore::new(database, 1);
    store.prepare(&[collection.to_owned()]).await.expect("prepare");
    let loaded = store.load_all(collection).await.expect("load");
    loaded.items.into_iter().map(|item| (item.id, item.json)).collect()
}

#[wasm_bindgen_test]
async fn puts_and_deletes_round_trip_and_come_back_after_reopening() {
    let database = unique("round-trip");
    {
        let cx = Context::new();
        let persistence = start(&cx, PersistOptions::new(&database));
        let dispatch = open::<Workspace>(&cx);
        persistence.ready().await;
        dispatch.reduce_mut(|w| {
            w.files.insert("a.rs", file("a.rs", "fn a() {}"));
            w.files.insert("b.rs", file("b.rs", "fn b() {}"));
            w.files.insert("dir/c:d.rs", file("c.rs", "ünïcode ✓"));
            w.settings.theme = "dark".into();
            w.selected = Some("a.rs".into());
        });
        dispatch.reduce_mut(|w| {
            w.files.remove("b.rs");
            w.files.update("a.rs", |f| f.content = "fn a() { 1 }".into());
        });
        persistence.flush().await.expect("flush");
        assert_eq!(persistence.status().last_error, None);
        yewdux_persist::shutdown(&cx);
    }

    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(&database));
    let dispatch = open::<Workspace>(&cx);
    assert!(!persistence.status().ready, "not ready before the saved data is loaded");
    // A change made while loading is applied over the loaded data, not lost.
    dispatch.reduce_mut(|w| {
        w.files.insert("early.rs", file("early.rs", "typed during load"));
    });
    persistence.ready().await;
    let state = dispatch.get();
    assert_eq!(state.files.ids().collect::<Vec<_>>(), ["a.rs", "dir/c:d.rs", "early.rs"]);
    assert_eq!(state.files.get("a.rs"), Some(&file("a.rs", "fn a() { 1 }")));
    assert_eq!(state.files.get("dir/c:d.rs"), Some(&file("c.rs", "ünïcode ✓")));
    assert_eq!(state.settings.theme, "dark");
    assert_eq!(state.selected, None, "fields outside the parts are not persisted");
    assert_eq!(persistence.status().storage, StorageKind::IndexedDb);
    persistence.flush().await.expect("flush");
    let saved = stored(&database, "files").await;
    assert_eq!(saved.len(), 3, "the early change is saved too: {saved:?}");
}

#[wasm_bindgen_test]
async fn each_batch_is_one_transaction() {
    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(unique("batches")));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let before = persistence.storage_stats();
    dispatch.reduce_mut(|w| {
        for i in 0..25 {
            w.files.insert(format!("f{i:02}"), file("f", &i.to_string()));
        }
    });
    persistence.flush().await.expect("flush");
    let after = persistence.storage_stats();
    assert_eq!(after.write_transactions - before.write_transactions, 3, "25 ops, batches of 10");
    assert_eq!(after.items_written - before.items_written, 25);
}

#[wasm_bindgen_test]
async fn a_hundred_updates_of_one_key_in_the_debounce_window_make_one_write() {
    let database = unique("debounce");
    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(&database));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let before = persistence.storage_stats();
    for i in 0..100 {
        dispatch.reduce_mut(|w| {
            w.files.insert("typing.rs", file("typing.rs", &format!("version {i}")));
        });
    }
    assert_eq!(persistence.storage_stats(), before, "nothing is written inside the window");
    assert!(
        wait_until(2_000, || persistence.storage_stats().write_transactions
            > before.write_transactions)
        .await
    );
    sleep_ms(400).await; // a second write would have happened by now
    let after = persistence.storage_stats();
    assert_eq!(after.write_transactions - before.write_transactions, 1);
    assert_eq!(after.items_written - before.items_written, 1);
    assert_eq!(persistence.metrics().coalesced, 99);
    let saved = stored(&database, "files").await;
    assert_eq!(saved.len(), 1);
    assert!(saved[0].1.contains("version 99"), "{saved:?}");
}

#[wasm_bindgen_test]
async fn hydration_never_overwrites_saved_data_with_defaults() {
    let database = unique("hydrate");
    {
        let cx = Context::new();
        let persistence = start(&cx, PersistOptions::new(&database));
        let dispatch = open::<Seeded>(&cx);
        persistence.ready().await;
        // First run: the default item is saved, then edited.
        dispatch.reduce_mut(|s| {
            s.files.update("welcome", |f| f.content = "edited".into());
        });
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    {
        let cx = Context::new();
        let persistence = start(&cx, PersistOptions::new(&database));
        let dispatch = open::<Seeded>(&cx);
        persistence.ready().await;
        assert_eq!(dispatch.get().files.get("welcome").unwrap().content, "edited");
        persistence.flush().await.expect("flush");
        let saved = stored(&database, "seeded").await;
        assert!(saved[0].1.contains("edited"), "saved data must survive: {saved:?}");
        // Deleting every item must stick: the defaults do not come back on the next start.
        dispatch.reduce_mut(|s| s.files.clear());
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(&database));
    let dispatch = open::<Seeded>(&cx);
    persistence.ready().await;
    assert!(dispatch.get().files.is_empty(), "deleted defaults stay deleted");
}

#[wasm_bindgen_test]
async fn unreadable_saved_items_are_reported_and_kept() {
    let database = unique("unreadable");
    {
        let cx = Context::new();
        let persistence = start(&cx, PersistOptions::new(&database));
        open::<Workspace>(&cx);
        persistence.ready().await;
        // A record of another shape (e.g. written by an older app version).
        persistence
            .enqueue("files", "old.rs", yewdux_persist::engine::Change::put(r#"{"title":1}"#))
            .unwrap();
        persistence
            .enqueue(
                "files",
                "ok.rs",
                yewdux_persist::engine::Change::put(r#"{"name":"ok.rs","content":""}"#),
            )
            .unwrap();
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(&database));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    assert_eq!(dispatch.get().files.ids().collect::<Vec<_>>(), ["ok.rs"]);
    let errors = persistence.status().item_errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].id, "old.rs");
    // Editing other items never deletes the unreadable record.
    dispatch.reduce_mut(|w| w.files.clear());
    persistence.flush().await.expect("flush");
    let saved = stored(&database, "files").await;
    assert_eq!(saved.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["old.rs"]);
}

fn fast_retry_options(store: Rc<MemoryStore>) -> PersistOptions {
    let mut options = PersistOptions::new(unique("failing")).local_store(store);
    options = options.config({
        let mut config = yewdux_persist::PersistConfig::default();
        config.auto_sync.enabled = false;
        config.write_retry = RetryPolicy {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(100),
            jitter: 0.0,
        };
        config
    });
    options
}

#[wasm_bindgen_test]
async fn a_failing_store_keeps_data_queued_and_reports_the_error() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(&cx, fast_retry_options(Rc::clone(&store)));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    store.fail_next_writes(3, StoreError::QuotaExceeded("the quota has been exceeded".into()));
    dispatch.reduce_mut(|w| {
        w.files.insert("big.bin", file("big.bin", "lots"));
    });
    let error = persistence.flush().await.expect_err("the first write fails");
    assert!(matches!(error, Error::Flush(_)), "{error}");
    let status = persistence.status();
    assert!(status.last_error.as_deref().unwrap_or("").contains("quota"), "{status:?}");
    assert_eq!(status.queue_depth + status.in_flight, 1, "the change stays queued: {status:?}");
    assert!(store.snapshot("files").is_empty());
    assert!(persistence.metrics().failed_ops >= 1);
    assert!(persistence.metrics().quota_errors >= 1, "quota errors are counted on their own");

    // Backoff retries succeed once the store works again; nothing was dropped.
    assert!(wait_until(3_000, || store.snapshot("files").contains_key("big.bin")).await);
    assert!(wait_until(500, || persistence.status().last_error.is_none()).await);
    assert_eq!(persistence.status().queue_depth, 0);
}

/// A store whose `prepare` fails as if IndexedDB were unavailable (some private modes).
#[derive(Debug)]
struct Unavailable(MemoryStore);

impl LocalStore for Unavailable {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }
    fn prepare<'a>(
        &'a self,
        _: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("IndexedDB is disabled".into())) })
    }
    fn write_batch<'a>(
        &'a self,
        batch: &'a yewdux_persist::engine::WriteBatch,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.write_batch(batch)
    }
    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<yewdux_persist::local::LoadedItems, StoreError>,
    > {
        self.0.load_all(collection)
    }
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        self.0.load_items(collection, ids)
    }
    fn get_meta<'a>(
        &'a self,
        key: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Option<String>, StoreError>> {
        self.0.get_meta(key)
    }
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.set_meta(key, value)
    }
    fn outbox<'a>(
        &'a self,
        limit: usize,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<Vec<yewdux_persist::local::OutboxEntry>, StoreError>,
    > {
        self.0.outbox(limit)
    }
    fn outbox_len(&self) -> yewdux_persist::local::LocalFuture<'_, Result<usize, StoreError>> {
        self.0.outbox_len()
    }
    fn stats(&self) -> yewdux_persist::local::LocalStoreStats {
        self.0.stats()
    }
}

#[wasm_bindgen_test]
async fn without_indexeddb_the_app_keeps_working_in_memory_and_says_so() {
    let cx = Context::new();
    let options = PersistOptions::new(unique("unavailable"))
        .local_store(Rc::new(Unavailable(MemoryStore::new())));
    let persistence = start(&cx, options);
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let status = persistence.status();
    assert_eq!(status.storage, StorageKind::Memory);
    assert!(status.storage_note.unwrap().contains("IndexedDB is disabled"));
    dispatch.reduce_mut(|w| {
        w.files.insert("a", file("a", "b"));
    });
    persistence.flush().await.expect("memory writes work");
    assert_eq!(persistence.storage_stats().items_written, 1);
}

#[wasm_bindgen_test]
async fn two_contexts_see_each_others_changes_through_broadcast_channel() {
    let database = unique("tabs");
    let (cx_a, cx_b) = (Context::new(), Context::new());
    let (tab_a, tab_b) = (
        start(&cx_a, PersistOptions::new(&database)),
        start(&cx_b, PersistOptions::new(&database)),
    );
    let (a, b) = (open::<Workspace>(&cx_a), open::<Workspace>(&cx_b));
    tab_a.ready().await;
    tab_b.ready().await;

    a.reduce_mut(|w| {
        w.files.insert("shared.rs", file("shared.rs", "from a"));
    });
    tab_a.flush().await.expect("flush a");
    assert!(
        wait_until(2_000, || b.get().files.get("shared.rs").map(|f| f.content.as_str())
            == Some("from a"))
        .await,
        "tab b never saw tab a's change"
    );

    b.reduce_mut(|w| {
        w.files.update("shared.rs", |f| f.content = "from b".into());
        w.settings.theme = "solarized".into();
    });
    tab_b.flush().await.expect("flush b");
    assert!(
        wait_until(2_000, || {
            let state = a.get();
            state.files.get("shared.rs").map(|f| f.content.as_str()) == Some("from b")
                && state.settings.theme == "solarized"
        })
        .await,
        "tab a never saw tab b's change"
    );

    b.reduce_mut(|w| {
        w.files.remove("shared.rs");
    });
    tab_b.flush().await.expect("flush b");
    assert!(wait_until(2_000, || a.get().files.is_empty()).await, "delete did not reach tab a");
    // Applying another tab's change is not written again.
    sleep_ms(400).await;
    assert_eq!(tab_a.storage_stats().write_transactions, 1);
}

fn set_visibility(state: Option<&str>) {
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

fn slow_debounce(database: String) -> PersistOptions {
    PersistOptions::new(database).default_slice(SliceConfig {
        debounce: Duration::from_secs(10),
        max_wait: Duration::from_secs(20),
        ..SliceConfig::default()
    })
}

#[wasm_bindgen_test]
async fn hiding_the_page_flushes_at_once() {
    let database = unique("hidden");
    let cx = Context::new();
    let persistence = start(&cx, slow_debounce(database.clone()));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    dispatch.reduce_mut(|w| {
        w.files.insert("draft.md", file("draft.md", "unsaved words"));
    });
    sleep_ms(50).await;
    assert_eq!(persistence.storage_stats().write_transactions, 0, "still debouncing");

    // Visible → visibilitychange does nothing.
    let document = web_sys::window().unwrap().document().unwrap();
    document.dispatch_event(&web_sys::Event::new("visibilitychange").unwrap()).unwrap();
    sleep_ms(50).await;
    assert_eq!(persistence.storage_stats().write_transactions, 0);

    set_visibility(Some("hidden"));
    document.dispatch_event(&web_sys::Event::new("visibilitychange").unwrap()).unwrap();
    set_visibility(None);
    assert!(wait_until(1_000, || persistence.status().queue_depth == 0).await);
    persistence.flush().await.expect("nothing left to flush");
    assert_eq!(stored(&database, "files").await.len(), 1);

    // pagehide flushes too.
    dispatch.reduce_mut(|w| {
        w.files.insert("second.md", file("second.md", "more"));
    });
    let before = persistence.storage_stats().write_transactions;
    let window = web_sys::window().unwrap();
    window.dispatch_event(&web_sys::Event::new("pagehide").unwrap()).unwrap();
    assert!(wait_until(1_000, || persistence.storage_stats().write_transactions > before).await);
    assert_eq!(stored(&database, "files").await.len(), 2);
}

#[wasm_bindgen_test]
async fn shutdown_stops_timers_and_listeners() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(
        &cx,
        slow_debounce(unique("stopped")).local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let weak = persistence.downgrade();
    yewdux_persist::shutdown(&cx);
    drop(persistence);
    assert!(weak.upgrade().is_none(), "nothing keeps the runtime alive after shutdown");

    dispatch.reduce_mut(|w| {
        w.files.insert("late.md", file("late.md", "after shutdown"));
    });
    window_event("pagehide");
    sleep_ms(100).await;
    assert_eq!(store.stats().write_transactions, 0, "a stopped runtime writes nothing");
}

fn window_event(name: &str) {
    web_sys::window().unwrap().dispatch_event(&web_sys::Event::new(name).unwrap()).unwrap();
}

#[wasm_bindgen_test]
async fn configure_after_start_is_refused_and_slices_can_be_disabled() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(
        &cx,
        PersistOptions::new(unique("slices")).local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    assert!(matches!(
        yewdux_persist::configure(&cx, PersistOptions::default()),
        Err(Error::AlreadyStarted)
    ));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    persistence.disable("files");
    dispatch.reduce_mut(|w| {
        w.files.insert("ignored", file("ignored", ""));
        w.settings.theme = "kept".into();
    });
    persistence.flush().await.expect("flush");
    assert!(store.snapshot("files").is_empty());
    assert_eq!(store.snapshot("settings").len(), 1);
    persistence.enable("files");
    dispatch.reduce_mut(|w| {
        w.files.insert("saved", file("saved", ""));
    });
    persistence.flush().await.expect("flush");
    assert_eq!(store.snapshot("files").keys().collect::<Vec<_>>(), ["saved"]);
    let patch = yewdux_persist::SliceConfigPatch { batch_size: Some(0), ..Default::default() };
    assert!(persistence.configure("files", patch).is_err(), "batch size 0 is refused");
}

#[wasm_bindgen_test]
async fn concurrent_edits_in_two_tabs_converge_on_what_the_database_holds() {
    let database = unique("concurrent");
    let fast = |database: &str| {
        PersistOptions::new(database).default_slice(SliceConfig {
            debounce: Duration::from_millis(5),
            max_wait: Duration::from_millis(20),
            ..SliceConfig::default()
        })
    };
    let (cx_a, cx_b) = (Context::new(), Context::new());
    let (tab_a, tab_b) = (start(&cx_a, fast(&database)), start(&cx_b, fast(&database)));
    let (a, b) = (open::<Workspace>(&cx_a), open::<Workspace>(&cx_b));
    tab_a.ready().await;
    tab_b.ready().await;

    for round in 0..30 {
        a.reduce_mut(|w| {
            w.files.insert("shared", file("shared", &format!("a{round}")));
            w.files.insert(format!("a-{}", round % 5), file("a", &round.to_string()));
        });
        b.reduce_mut(|w| {
            w.files.insert("shared", file("shared", &format!("b{round}")));
            if round % 7 == 0 {
                w.files.remove("a-1");
            }
        });
        sleep_ms(3 + round % 11).await;
    }
    tab_a.flush().await.expect("flush a");
    tab_b.flush().await.expect("flush b");

    let converged = wait_until(3_000, || a.get().files == b.get().files).await;
    let saved = stored(&database, "files").await;
    let in_a: Vec<(String, String)> = a
        .get()
        .files
        .iter()
        .map(|(id, f)| (id.to_owned(), serde_json::to_string(f).unwrap()))
        .collect();
    assert!(converged, "tabs disagree: {:?} vs {:?}", a.get().files, b.get().files);
    assert_eq!(in_a, saved, "the tabs show what the database holds");
}

/// The seed's global functions act on the runtime of yewdux's global context. The only test that
/// uses the global context.
#[wasm_bindgen_test]
async fn the_seed_global_functions_drive_the_global_runtime() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::global();
    let persistence = start(
        &cx,
        slow_debounce(unique("global")).local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;

    yewdux_persist::disable_persistence("settings").unwrap();
    dispatch.reduce_mut(|w| {
        w.files.insert("g.rs", file("g.rs", "global"));
        w.settings.theme = "not saved".into();
    });
    yewdux_persist::flush_persistence().await.expect("flush");
    assert_eq!(store.snapshot("files").len(), 1, "flushed despite the 10 s debounce");
    assert!(store.snapshot("settings").is_empty());
    yewdux_persist::enable_persistence("settings").unwrap();
    let patch = yewdux_persist::SliceConfigPatch { batch_size: Some(0), ..Default::default() };
    assert!(yewdux_persist::configure_persistence("files", patch).is_err());
    assert_eq!(yewdux_persist::get_sync_metrics().unwrap().successful_ops, 1);
    yewdux_persist::reset_sync_metrics();
    assert_eq!(yewdux_persist::get_sync_metrics().unwrap().total_ops, 0);
    yewdux_persist::shutdown(&cx);
    assert!(matches!(yewdux_persist::flush_persistence().await, Err(Error::NotStarted)));
}

/// A store whose single-batch writes never finish, like a page frozen right after it began
/// its first write; `write_all` (the page-exit path) still works.
#[derive(Debug)]
struct Frozen(MemoryStore);

impl LocalStore for Frozen {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }
    fn prepare<'a>(
        &'a self,
        collections: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.prepare(collections)
    }
    fn write_batch<'a>(
        &'a self,
        _: &'a yewdux_persist::engine::WriteBatch,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::pending())
    }
    fn write_all<'a>(
        &'a self,
        batches: &'a [yewdux_persist::engine::WriteBatch],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.write_all(batches)
    }
    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<yewdux_persist::local::LoadedItems, StoreError>,
    > {
        self.0.load_all(collection)
    }
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        self.0.load_items(collection, ids)
    }
    fn get_meta<'a>(
        &'a self,
        key: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Option<String>, StoreError>> {
        self.0.get_meta(key)
    }
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.set_meta(key, value)
    }
    fn outbox<'a>(
        &'a self,
        limit: usize,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<Vec<yewdux_persist::local::OutboxEntry>, StoreError>,
    > {
        self.0.outbox(limit)
    }
    fn outbox_len(&self) -> yewdux_persist::local::LocalFuture<'_, Result<usize, StoreError>> {
        self.0.outbox_len()
    }
    fn stats(&self) -> yewdux_persist::local::LocalStoreStats {
        self.0.stats()
    }
}

#[wasm_bindgen_test]
async fn leaving_the_page_writes_every_queued_change_at_once() {
    let frozen = Rc::new(Frozen(MemoryStore::new()));
    let cx = Context::new();
    let persistence = start(
        &cx,
        slow_debounce(unique("exit")).local_store(Rc::clone(&frozen) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    dispatch.reduce_mut(|w| {
        for i in 0..25 {
            w.files.insert(format!("f{i:02}"), file("f", &i.to_string()));
        }
        w.settings.theme = "dark".into();
    });
    // The engine's first batch (10 files) starts and never finishes: without the exit write,
    // the other 16 changes would wait for it forever.
    window_event("pagehide");
    assert!(
        wait_until(1_000, || frozen.0.snapshot("files").len() == 25).await,
        "only {} files were written",
        frozen.0.snapshot("files").len()
    );
    assert_eq!(frozen.0.snapshot("settings").len(), 1);
    assert_eq!(frozen.0.stats().write_transactions, 1, "one transaction for everything");
}

#[wasm_bindgen_test]
async fn a_flush_during_loading_waits_for_the_changes_made_meanwhile() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(
        &cx,
        slow_debounce(unique("early-flush")).local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    dispatch.reduce_mut(|w| {
        w.files.insert("early", file("early", "before ready"));
    });
    assert!(!persistence.status().ready);
    persistence.flush().await.expect("flush");
    assert!(store.snapshot("files").contains_key("early"), "{:?}", store.snapshot("files"));
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Reserved {
    items: Collection<String>,
    kept: Collection<String>,
}

impl Persist for Reserved {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("__outbox", |s| &s.items, |s| &mut s.items).collection(
            "kept",
            |s| &s.kept,
            |s| &mut s.kept,
        );
    }
}

impl yewdux::store::Store for Reserved {
    fn new(cx: &Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }
    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

#[wasm_bindgen_test]
async fn reserved_collection_names_are_refused_with_a_clear_error() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(
        &cx,
        PersistOptions::new(unique("reserved"))
            .local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Reserved>(&cx);
    persistence.ready().await;
    dispatch.reduce_mut(|s| {
        s.items.insert("x", "not persisted".into());
        s.kept.insert("y", "persisted".into());
    });
    persistence.flush().await.expect("flush");
    assert!(store.snapshot("__outbox").is_empty());
    assert_eq!(store.snapshot("kept").len(), 1);
    let errors = persistence.status().collection_errors;
    assert!(errors["__outbox"].contains("reserved"), "{errors:?}");
    let refused = persistence.enqueue("__meta", "x", yewdux_persist::engine::Change::Delete);
    assert!(matches!(refused, Err(Error::ReservedCollection(_))));
}

/// A store that cannot load one collection.
#[derive(Debug)]
struct BrokenLoad(MemoryStore, &'static str);

impl LocalStore for BrokenLoad {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }
    fn prepare<'a>(
        &'a self,
        collections: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.prepare(collections)
    }
    fn write_batch<'a>(
        &'a self,
        batch: &'a yewdux_persist::engine::WriteBatch,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.write_batch(batch)
    }
    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<yewdux_persist::local::LoadedItems, StoreError>,
    > {
        if collection == self.1 {
            return Box::pin(async {
                Err(StoreError::Other {
                    name: "UnknownError".into(),
                    message: "read failed".into(),
                })
            });
        }
        self.0.load_all(collection)
    }
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        self.0.load_items(collection, ids)
    }
    fn get_meta<'a>(
        &'a self,
        key: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Option<String>, StoreError>> {
        self.0.get_meta(key)
    }
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.set_meta(key, value)
    }
    fn outbox<'a>(
        &'a self,
        limit: usize,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<Vec<yewdux_persist::local::OutboxEntry>, StoreError>,
    > {
        self.0.outbox(limit)
    }
    fn outbox_len(&self) -> yewdux_persist::local::LocalFuture<'_, Result<usize, StoreError>> {
        self.0.outbox_len()
    }
    fn stats(&self) -> yewdux_persist::local::LocalStoreStats {
        self.0.stats()
    }
}

#[wasm_bindgen_test]
async fn a_collection_that_cannot_be_loaded_is_not_overwritten_with_defaults() {
    let store = Rc::new(BrokenLoad(MemoryStore::new(), "files"));
    let cx = Context::new();
    let persistence = start(
        &cx,
        PersistOptions::new(unique("broken-load"))
            .local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    let status = persistence.status();
    assert!(status.collection_errors["files"].contains("read failed"), "{status:?}");
    dispatch.reduce_mut(|w| {
        w.files.insert("a", file("a", "would overwrite saved data"));
        w.settings.theme = "dark".into();
    });
    persistence.flush().await.expect("flush");
    assert!(store.0.snapshot("files").is_empty(), "the unloaded collection is left alone");
    assert_eq!(store.0.snapshot("settings").len(), 1, "other collections still work");
}

/// An IndexedDB store whose loads answer late, as if the disk were slow.
#[derive(Debug)]
struct SlowLoad(yewdux_persist::local::IndexedDbStore);

impl LocalStore for SlowLoad {
    fn kind(&self) -> StorageKind {
        StorageKind::IndexedDb
    }
    fn prepare<'a>(
        &'a self,
        collections: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.prepare(collections)
    }
    fn write_batch<'a>(
        &'a self,
        batch: &'a yewdux_persist::engine::WriteBatch,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.write_batch(batch)
    }
    fn load_all<'a>(
        &'a self,
        collection: &'a str,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<yewdux_persist::local::LoadedItems, StoreError>,
    > {
        Box::pin(async move {
            let loaded = self.0.load_all(collection).await;
            sleep_ms(300).await;
            loaded
        })
    }
    fn load_items<'a>(
        &'a self,
        collection: &'a str,
        ids: &'a [String],
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Vec<Option<String>>, StoreError>> {
        self.0.load_items(collection, ids)
    }
    fn get_meta<'a>(
        &'a self,
        key: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<Option<String>, StoreError>> {
        self.0.get_meta(key)
    }
    fn set_meta<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> yewdux_persist::local::LocalFuture<'a, Result<(), StoreError>> {
        self.0.set_meta(key, value)
    }
    fn outbox<'a>(
        &'a self,
        limit: usize,
    ) -> yewdux_persist::local::LocalFuture<
        'a,
        Result<Vec<yewdux_persist::local::OutboxEntry>, StoreError>,
    > {
        self.0.outbox(limit)
    }
    fn outbox_len(&self) -> yewdux_persist::local::LocalFuture<'_, Result<usize, StoreError>> {
        self.0.outbox_len()
    }
    fn stats(&self) -> yewdux_persist::local::LocalStoreStats {
        self.0.stats()
    }
}

#[wasm_bindgen_test]
async fn a_change_another_tab_saves_while_this_one_loads_is_not_missed() {
    let database = unique("missed");
    let cx_b = Context::new();
    let tab_b = start(&cx_b, PersistOptions::new(&database));
    let b = open::<Workspace>(&cx_b);
    tab_b.ready().await;

    // Tab A reads its data, then takes 300 ms to answer; tab B saves meanwhile.
    let cx_a = Context::new();
    let slow = SlowLoad(yewdux_persist::local::IndexedDbStore::new(&database, 1));
    let tab_a = start(&cx_a, PersistOptions::new(&database).local_store(Rc::new(slow)));
    let a = open::<Workspace>(&cx_a);
    sleep_ms(100).await;
    b.reduce_mut(|w| {
        w.files.insert("from-b", file("from-b", "saved while a loads"));
    });
    tab_b.flush().await.expect("flush b");
    assert!(!tab_a.status().ready, "tab a is still loading");
    tab_a.ready().await;
    assert!(
        wait_until(2_000, || a.get().files.contains("from-b")).await,
        "tab a never got tab b's change"
    );
}
