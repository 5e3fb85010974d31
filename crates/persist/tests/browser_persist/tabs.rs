//! Tabs of one app (two yewdux contexts in one page) see each other's changes.

use std::time::Duration;

use wasm_bindgen_test::*;
use yewdux::Context;
use yewdux_persist::{CollectionConfig, PersistOptions};

use crate::support::*;

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

#[wasm_bindgen_test]
async fn concurrent_edits_in_two_tabs_converge_on_what_the_database_holds() {
    let database = unique("concurrent");
    let fast = |database: &str| {
        PersistOptions::new(database).default_collection(CollectionConfig {
            debounce: Duration::from_millis(5),
            max_wait: Duration::from_millis(20),
            ..CollectionConfig::default()
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

#[wasm_bindgen_test]
async fn a_change_another_tab_saves_while_this_one_loads_is_not_missed() {
    let database = unique("missed");
    let cx_b = Context::new();
    let tab_b = start(&cx_b, PersistOptions::new(&database));
    let b = open::<Workspace>(&cx_b);
    tab_b.ready().await;

    // Tab A reads its data, then takes 300 ms to answer; tab B saves meanwhile.
    let cx_a = Context::new();
    let slow = faulty(
        yewdux_persist::local::IndexedDbStore::new(&database, 1),
        Faults { slow_load_ms: 300, ..Faults::default() },
    );
    let tab_a = start(&cx_a, PersistOptions::new(&database).local_store(slow));
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
