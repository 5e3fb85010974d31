//! Loading saved data: never overwritten by defaults, unreadable items, loading failures.

use std::rc::Rc;

use wasm_bindgen_test::*;
use yewdux::Context;
use yewdux_persist::error::KeyError;
use yewdux_persist::local::{Change, LocalStore, MemoryStore};
use yewdux_persist::{Collection, Error, Parts, Persist, PersistOptions};

use crate::support::*;

#[wasm_bindgen_test]
async fn hydration_never_overwrites_saved_data_with_defaults() {
    let database = unique("hydrate");
    {
        let Session { cx, persistence, dispatch } =
            loaded::<Seeded>(PersistOptions::new(&database)).await;
        // First run: the default item is saved, then edited.
        dispatch.reduce_mut(|s| {
            s.files.update("welcome", |f| f.content = "edited".into());
        });
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    {
        let Session { cx, persistence, dispatch } =
            loaded::<Seeded>(PersistOptions::new(&database)).await;
        assert_eq!(dispatch.get().files.get("welcome").unwrap().content, "edited");
        persistence.flush().await.expect("flush");
        let saved = stored(&database, "seeded").await;
        assert!(saved[0].1.contains("edited"), "saved data must survive: {saved:?}");
        // Deleting every item must stick: the defaults do not come back on the next start.
        dispatch.reduce_mut(|s| s.files.clear());
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    let Session { cx: _cx, persistence: _persistence, dispatch } =
        loaded::<Seeded>(PersistOptions::new(&database)).await;
    assert!(dispatch.get().files.is_empty(), "deleted defaults stay deleted");
}

#[wasm_bindgen_test]
async fn unreadable_saved_items_are_reported_and_kept() {
    let database = unique("unreadable");
    {
        let Session { cx, persistence, .. } =
            loaded::<Workspace>(PersistOptions::new(&database)).await;
        // A record of another shape (e.g. written by an older app version).
        persistence.enqueue_raw("files", "old.rs", Change::put(r#"{"title":1}"#)).unwrap();
        persistence
            .enqueue_raw("files", "ok.rs", Change::put(r#"{"name":"ok.rs","content":""}"#))
            .unwrap();
        persistence.flush().await.expect("flush");
        yewdux_persist::shutdown(&cx);
    }
    let Session { cx: _cx, persistence, dispatch } =
        loaded::<Workspace>(PersistOptions::new(&database)).await;
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

/// A store whose collection names and item ids break the protocol's key rules.
#[derive(Debug, Clone, PartialEq, Default)]
struct Reserved {
    items: Collection<String>,
    colon: Collection<String>,
    kept: Collection<String>,
}

impl Persist for Reserved {
    fn parts(parts: &mut Parts<Self>) {
        parts
            .collection("__outbox", |s| &s.items, |s| &mut s.items)
            .collection("a:b", |s| &s.colon, |s| &mut s.colon)
            .collection("kept", |s| &s.kept, |s| &mut s.kept);
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
async fn names_the_protocol_refuses_are_not_persisted_and_say_why() {
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
        s.colon.insert("x", "not persisted".into());
        s.kept.insert("y", "persisted".into());
        s.kept.insert("line\nbreak", "kept in memory only".into());
    });
    persistence.flush().await.expect("flush");
    assert!(store.snapshot("__outbox").is_empty());
    assert!(store.snapshot("a:b").is_empty());
    assert_eq!(store.snapshot("kept").keys().collect::<Vec<_>>(), ["y"]);
    let status = persistence.status();
    let errors = &status.collection_errors;
    assert!(errors["__outbox"].contains("reserved"), "{errors:?}");
    assert!(errors["a:b"].contains("must not contain ':'"), "{errors:?}");
    let refused: Vec<String> = status.item_errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        refused,
        ["kept:line\nbreak: not saved: id must not contain control characters"],
        "the item stays in the app, with the reason"
    );
    assert_eq!(dispatch.get().kept.len(), 2);
    let refused = persistence.enqueue_raw("__meta", "x", Change::Delete);
    assert!(matches!(refused, Err(Error::InvalidKey(KeyError::ReservedCollection(_)))));
}

#[wasm_bindgen_test]
async fn a_collection_that_cannot_be_loaded_is_not_overwritten_with_defaults() {
    let store =
        faulty(MemoryStore::new(), Faults { broken_load: Some("files"), ..Faults::default() });
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
    assert!(store.inner.snapshot("files").is_empty(), "the unloaded collection is left alone");
    assert_eq!(store.inner.snapshot("settings").len(), 1, "other collections still work");
}

#[wasm_bindgen_test]
async fn a_tab_holding_an_old_version_open_is_shown_and_nothing_is_lost_meanwhile() {
    use indexed_db_futures::database::Database;

    let database = unique("blocked");
    // An old build of the app in another tab: it holds the database open at version 1 and
    // ignores `versionchange`, so our upgrade (object stores for our collections) must wait.
    let old_tab = Database::open(&database).with_version(1u8).await.expect("the old tab opens");
    let cx = Context::new();
    let persistence = start(&cx, PersistOptions::new(&database));
    let dispatch = open::<Workspace>(&cx);
    assert!(
        wait_until(3_000, || persistence.status().blocked.is_some()).await,
        "the wait is visible: {:?}",
        persistence.status()
    );
    assert!(!persistence.status().ready, "still loading");
    dispatch.reduce_mut(|w| w.files.insert("typed.rs", file("typed.rs", "while blocked")));

    old_tab.close();
    persistence.ready().await;
    persistence.flush().await.expect("flush once the other tab let go");
    assert_eq!(persistence.status().blocked, None, "cleared once the open went through");
    let saved = stored(&database, "files").await;
    assert!(
        saved.iter().any(|(id, json)| id == "typed.rs" && json.contains("while blocked")),
        "the change made while blocked is saved: {saved:?}"
    );
}
