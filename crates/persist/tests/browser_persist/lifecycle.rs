//! Page exit and shutdown.

use std::rc::Rc;

use wasm_bindgen_test::*;
use yewdux::Context;
use yewdux_persist::local::{LocalStore, MemoryStore};

use crate::support::*;

#[wasm_bindgen_test]
async fn hiding_the_page_flushes_at_once() {
    let database = unique("hidden");
    let Session { cx: _cx, persistence, dispatch } =
        loaded::<Workspace>(slow_debounce(database.clone())).await;
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

#[wasm_bindgen_test]
async fn leaving_the_page_writes_every_queued_change_at_once() {
    let frozen = faulty(MemoryStore::new(), Faults { frozen_batches: true, ..Faults::default() });
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
        wait_until(1_000, || frozen.inner.snapshot("files").len() == 25).await,
        "only {} files were written",
        frozen.inner.snapshot("files").len()
    );
    assert_eq!(frozen.inner.snapshot("settings").len(), 1);
    assert_eq!(frozen.inner.stats().write_transactions, 1, "one transaction for everything");
}
