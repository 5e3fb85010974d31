//! Changes reach IndexedDB: round trips, batching, debounce, configuration, CodeForge's global functions.

use std::rc::Rc;

use wasm_bindgen_test::*;
use yewdux::Context;
use yewdux_persist::local::{LocalStore, MemoryStore, StorageKind};
use yewdux_persist::{Error, PersistOptions};

use crate::support::*;

#[wasm_bindgen_test]
async fn puts_and_deletes_round_trip_and_come_back_after_reopening() {
    let database = unique("round-trip");
    {
        let Session { cx, persistence, dispatch } =
            loaded::<Workspace>(PersistOptions::new(&database)).await;
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
    let Session { cx: _cx, persistence, dispatch } =
        loaded::<Workspace>(PersistOptions::new(unique("batches"))).await;
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
    let Session { cx: _cx, persistence, dispatch } =
        loaded::<Workspace>(PersistOptions::new(&database)).await;
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
async fn starting_twice_is_refused_and_collections_can_be_disabled() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::new();
    let persistence = start(
        &cx,
        PersistOptions::new(unique("collections"))
            .local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    assert!(matches!(
        yewdux_persist::start(&cx, PersistOptions::default()),
        Err(Error::AlreadyStarted)
    ));
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;
    persistence.disable_collection("files");
    dispatch.reduce_mut(|w| {
        w.files.insert("ignored", file("ignored", ""));
        w.settings.theme = "kept".into();
    });
    persistence.flush().await.expect("flush");
    assert!(store.snapshot("files").is_empty());
    assert_eq!(store.snapshot("settings").len(), 1);
    persistence.enable_collection("files");
    dispatch.reduce_mut(|w| {
        w.files.insert("saved", file("saved", ""));
    });
    persistence.flush().await.expect("flush");
    assert_eq!(store.snapshot("files").keys().collect::<Vec<_>>(), ["saved"]);
    let patch = yewdux_persist::CollectionConfigPatch { batch_size: Some(0), ..Default::default() };
    assert!(persistence.configure_collection("files", patch).is_err(), "batch size 0 is refused");
}

/// CodeForge's global functions act on the runtime of yewdux's global context. The only test that
/// uses the global context.
#[wasm_bindgen_test]
async fn codeforges_global_functions_drive_the_global_runtime() {
    let store = Rc::new(MemoryStore::new());
    let cx = Context::global();
    let persistence = start(
        &cx,
        slow_debounce(unique("global")).local_store(Rc::clone(&store) as Rc<dyn LocalStore>),
    );
    let dispatch = open::<Workspace>(&cx);
    persistence.ready().await;

    yewdux_persist::codeforge::disable_persistence("settings").unwrap();
    dispatch.reduce_mut(|w| {
        w.files.insert("g.rs", file("g.rs", "global"));
        w.settings.theme = "not saved".into();
    });
    yewdux_persist::codeforge::flush_persistence().await.expect("flush");
    assert_eq!(store.snapshot("files").len(), 1, "flushed despite the 10 s debounce");
    assert!(store.snapshot("settings").is_empty());
    yewdux_persist::codeforge::enable_persistence("settings").unwrap();
    let patch = yewdux_persist::CollectionConfigPatch { batch_size: Some(0), ..Default::default() };
    assert!(yewdux_persist::codeforge::configure_persistence("files", patch).is_err());
    assert_eq!(yewdux_persist::codeforge::get_sync_metrics().unwrap().successful_ops, 1);
    yewdux_persist::codeforge::reset_sync_metrics();
    assert_eq!(yewdux_persist::codeforge::get_sync_metrics().unwrap().total_ops, 0);
    yewdux_persist::shutdown(&cx);
    assert!(matches!(yewdux_persist::codeforge::flush_persistence().await, Err(Error::NotStarted)));
}
