//! Conflicts against a real `persist-server` (dev mode, started by `scripts/with-test-server.sh`)
//! in headless Chromium with real IndexedDB: two runtimes on two databases play two devices that
//! edit the same file. Edits of different lines merge by themselves; the same line changed on both
//! waits for the user, survives a reload, is never pushed meanwhile, and once resolved both
//! devices converge and the conflict does not come back.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use yewdux::{Context, Dispatch};
use yewdux_persist::conflict::{ConflictStrategy, MergeFallback, Resolution, ResolveOutcome};
use yewdux_persist::remote::{HttpRemote, Remote};
use yewdux_persist::{Collection, CollectionConfig, Parts, Persist, PersistOptions, Persistence};

wasm_bindgen_test_configure!(run_in_browser);

#[allow(clippy::option_env_unwrap)]
fn server() -> &'static str {
    option_env!("PERSIST_TEST_SERVER").expect(
        "PERSIST_TEST_SERVER is not set: run these tests through scripts/with-test-server.sh \
         (make test does)",
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    name: String,
    content: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Files {
    files: Collection<File>,
}

impl Persist for Files {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("files", |s| &s.files, |s| &mut s.files);
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

fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

async fn token() -> String {
    HttpRemote::new(server(), None)
        .dev_config()
        .await
        .expect("the test server is in dev mode")
        .token
}

struct Device {
    cx: Context,
    persistence: Persistence,
    dispatch: Dispatch<Files>,
}

/// A runtime on `database` whose files merge, then ask the user (the app's choice).
async fn device_on(database: &str, token: &str) -> Device {
    let cx = Context::new();
    let remote: Rc<dyn Remote> = Rc::new(HttpRemote::new(server(), Some(token.to_owned())));
    let merge =
        CollectionConfig::default().with_conflict(ConflictStrategy::Merge(MergeFallback::Manual));
    let options = PersistOptions::new(database).remote(remote).collection("files", merge);
    let persistence = yewdux_persist::start(&cx, options).expect("start");
    let dispatch = Dispatch::<Files>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    Device { cx, persistence, dispatch }
}

impl Device {
    fn write(&self, id: &str, content: &str) {
        let file = File { name: "notes.md".into(), content: content.to_owned() };
        let id = id.to_owned();
        self.dispatch.reduce_mut(move |s| {
            s.files.insert(id, file);
        });
    }

    fn content(&self, id: &str) -> Option<String> {
        self.dispatch.get().files.get(id).map(|file| file.content.clone())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        yewdux_persist::shutdown(&self.cx);
    }
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

async fn wait_until(timeout_ms: u32, mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..timeout_ms / 20 {
        if condition() {
            return true;
        }
        sleep_ms(20).await;
    }
    condition()
}

/// Two devices with the same file synced on both.
async fn two_devices_with(id: &str, content: &str) -> (Device, Device, String) {
    let token = token().await;
    let (a, b) = (device_on(&unique("a"), &token).await, device_on(&unique("b"), &token).await);
    a.write(id, content);
    a.persistence.sync_now().await.expect("A syncs");
    b.persistence.sync_now().await.expect("B syncs");
    assert_eq!(b.content(id).as_deref(), Some(content), "B has the file");
    (a, b, token)
}

#[wasm_bindgen_test]
async fn two_devices_editing_different_lines_of_a_file_are_merged_without_asking() {
    let id = unique("file");
    let (a, b, _) = two_devices_with(&id, "one\ntwo\nthree\n").await;
    a.write(&id, "ONE\ntwo\nthree\n");
    b.write(&id, "one\ntwo\nTHREE\n");
    a.persistence.sync_now().await.expect("A syncs first");
    b.persistence.sync_now().await.expect("B syncs: conflict, merged, pushed on top");
    a.persistence.sync_now().await.expect("A gets the merge");
    let merged = "ONE\ntwo\nTHREE\n";
    assert_eq!(b.content(&id).as_deref(), Some(merged), "B merged both edits");
    assert_eq!(a.content(&id).as_deref(), Some(merged), "A has the merge");
    let status = b.persistence.status().sync;
    assert!(status.merged >= 1, "counted as merged: {status:?}");
    assert_eq!(status.open_conflicts, 0, "nothing for the user");
    assert_eq!(status.pending, 0, "the merge was acknowledged");
}

#[wasm_bindgen_test]
async fn the_same_line_changed_on_both_waits_for_the_user_then_both_devices_converge() {
    let id = unique("file");
    let (a, b, token) = two_devices_with(&id, "one\ntwo\nthree\n").await;
    a.write(&id, "one\ntwo from A\nthree\n");
    b.write(&id, "one\ntwo from B\nthree\n");
    a.persistence.sync_now().await.expect("A syncs first");
    b.persistence.sync_now().await.expect("B syncs: a conflict for the user");
    let open = b.persistence.conflicts().await.expect("conflicts");
    assert_eq!(open.len(), 1, "{open:?}");
    let conflict = &open[0];
    assert_eq!(conflict.fields, vec!["content".to_owned()]);
    assert_eq!(conflict.base.as_ref().unwrap()["content"], "one\ntwo\nthree\n");
    assert_eq!(conflict.local.as_ref().unwrap()["content"], "one\ntwo from B\nthree\n");
    assert_eq!(conflict.remote.as_ref().unwrap()["content"], "one\ntwo from A\nthree\n");
    assert_eq!(b.persistence.status().sync.open_conflicts, 1);
    assert_eq!(
        b.persistence.status().sync.pending,
        0,
        "a change waiting for the user is not to sync"
    );
    assert_eq!(b.content(&id).as_deref(), Some("one\ntwo from B\nthree\n"), "B keeps its value");

    // It survives a reload, and is not pushed meanwhile (A still sees its own version).
    let database = b.persistence.database().to_owned();
    drop(b);
    let b = device_on(&database, &token).await;
    assert_eq!(b.persistence.conflicts().await.expect("conflicts").len(), 1, "still open");
    assert_eq!(b.content(&id).as_deref(), Some("one\ntwo from B\nthree\n"));
    b.persistence.sync_now().await.expect("B syncs");
    a.persistence.sync_now().await.expect("A syncs");
    assert_eq!(a.content(&id).as_deref(), Some("one\ntwo from A\nthree\n"), "not pushed");

    // A changes the line again while B's user looks at the conflict: a decision on what B's
    // user saw must not overwrite what they have not seen.
    let seen = b.persistence.conflicts().await.expect("conflicts").remove(0);
    a.write(&id, "one\ntwo from A, again\nthree\n");
    a.persistence.sync_now().await.expect("A syncs");
    b.persistence.sync_now().await.expect("B pulls it: the conflict shows the newer version");
    let stale = b.persistence.resolve_conflict(&seen, Resolution::KeepLocal).await;
    assert_eq!(stale.expect("resolve"), ResolveOutcome::RemoteChanged, "nothing written");
    let open = b.persistence.conflicts().await.expect("conflicts");
    assert_eq!(open.len(), 1, "still open");
    assert_eq!(open[0].remote.as_ref().unwrap()["content"], "one\ntwo from A, again\nthree\n");

    // Resolved by hand: both lines.
    let both = "one\ntwo from A, again\ntwo from B\nthree\n";
    let value = serde_json::json!({"name": "notes.md", "content": both});
    let resolved = b
        .persistence
        .resolve_conflict(&open[0], Resolution::Value(Some(value)))
        .await
        .expect("resolve");
    assert_eq!(resolved, ResolveOutcome::Resolved);
    assert_eq!(b.content(&id).as_deref(), Some(both), "the store shows the resolution");
    b.persistence.sync_now().await.expect("B pushes the resolution");
    a.persistence.sync_now().await.expect("A gets it");
    assert_eq!(a.content(&id).as_deref(), Some(both), "A converged");
    assert!(b.persistence.conflicts().await.expect("conflicts").is_empty());
    assert_eq!(b.persistence.status().sync.open_conflicts, 0);
    assert_eq!(b.persistence.status().sync.pending, 0, "accepted on the first push");
    // It never comes back: more syncs on both sides change nothing.
    b.persistence.sync_now().await.expect("B syncs again");
    a.persistence.sync_now().await.expect("A syncs again");
    assert!(b.persistence.conflicts().await.expect("conflicts").is_empty());
    assert!(a.persistence.conflicts().await.expect("conflicts").is_empty());
    let again = b.persistence.resolve_conflict(&open[0], Resolution::KeepLocal).await;
    assert_eq!(again.expect("resolve"), ResolveOutcome::NotOpen, "resolved once");
}

#[wasm_bindgen_test]
async fn resolving_in_one_tab_clears_the_conflict_in_every_tab() {
    let id = unique("file");
    let (a, b, token) = two_devices_with(&id, "x\n").await;
    a.write(&id, "from A\n");
    b.write(&id, "from B\n");
    a.persistence.sync_now().await.expect("A syncs first");
    b.persistence.sync_now().await.expect("B syncs: a conflict");
    // A second tab of device B.
    let tab = device_on(b.persistence.database(), &token).await;
    assert!(
        wait_until(5_000, || tab.persistence.status().sync.open_conflicts == 1).await,
        "the second tab shows the open conflict: {:?}",
        tab.persistence.status().sync
    );
    let open = tab.persistence.conflicts().await.expect("conflicts");
    let resolved = tab.persistence.resolve_conflict(&open[0], Resolution::KeepRemote).await;
    assert_eq!(resolved.expect("resolve"), ResolveOutcome::Resolved);
    assert!(
        wait_until(5_000, || b.persistence.status().sync.open_conflicts == 0
            && tab.persistence.status().sync.open_conflicts == 0)
        .await,
        "both tabs show none: {:?} / {:?}",
        b.persistence.status().sync,
        tab.persistence.status().sync
    );
    assert!(
        wait_until(5_000, || b.content(&id).as_deref() == Some("from A\n")).await,
        "the first tab shows the kept version"
    );
    // A strategy changed in one tab is the leader's too (it decides conflicts).
    tab.persistence.set_conflict_strategy("files", ConflictStrategy::LastWriterWins).unwrap();
    assert!(
        wait_until(3_000, || b.persistence.conflict_strategy("files")
            == ConflictStrategy::LastWriterWins)
        .await,
        "the other tab took the new strategy"
    );
    drop(a);
}
