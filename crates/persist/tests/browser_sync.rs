//! Sync against a real `persist-server` (dev mode, started by `scripts/with-test-server.sh`,
//! whose address is compiled in from `PERSIST_TEST_SERVER`), in headless Chromium with real
//! IndexedDB. Two runtimes on two databases play two devices.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use yewdux::{Context, Dispatch};
use yewdux_persist::local::LocalFuture;
use yewdux_persist::remote::protocol::{PullResponse, PushRequest, PushResponse, Revision};
use yewdux_persist::remote::{
    CodeForgeRemote, EventCallback, Health, HttpRemote, Remote, RemoteError, RemoteErrorKind,
    Subscription,
};
use yewdux_persist::status::Connection;
use yewdux_persist::{Collection, Parts, Persist, PersistOptions, Persistence};

wasm_bindgen_test_configure!(run_in_browser);

// Not `env!`: the crate's other targets (and clippy) build without a server; only running these
// tests needs one, and then the message says how.
#[allow(clippy::option_env_unwrap)]
fn server() -> &'static str {
    option_env!("PERSIST_TEST_SERVER").expect(
        "PERSIST_TEST_SERVER is not set: run these tests through scripts/with-test-server.sh \
         (make test does)",
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Docs {
    docs: Collection<Doc>,
}

impl Persist for Docs {
    fn parts(parts: &mut Parts<Self>) {
        parts.collection("docs", |s| &s.docs, |s| &mut s.docs);
    }
}

impl yewdux::store::Store for Docs {
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

/// A device: its own database, its own runtime, the store loaded.
struct Device {
    cx: Context,
    persistence: Persistence,
    dispatch: Dispatch<Docs>,
}

async fn device(remote: Rc<dyn Remote>) -> Device {
    device_on(&unique("sync"), remote).await
}

/// A runtime on `database`: two of them on one database are two tabs of one browser.
async fn device_on(database: &str, remote: Rc<dyn Remote>) -> Device {
    let cx = Context::new();
    let options = PersistOptions::new(database).remote(remote);
    let persistence = yewdux_persist::start(&cx, options).expect("start");
    let dispatch = Dispatch::<Docs>::new(&cx);
    dispatch.get();
    persistence.ready().await;
    Device { cx, persistence, dispatch }
}

impl Device {
    fn put(&self, id: &str, text: &str) {
        let doc = Doc { text: text.to_owned() };
        let id = id.to_owned();
        self.dispatch.reduce_mut(move |s| {
            s.docs.insert(id, doc);
        });
    }

    fn text(&self, id: &str) -> Option<String> {
        self.dispatch.get().docs.get(id).map(|doc| doc.text.clone())
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

/// A namespace of its own per test: every test signs in as `dev`, so items are named uniquely.
fn http(token: &str) -> Rc<dyn Remote> {
    Rc::new(HttpRemote::new(server(), Some(token.to_owned())))
}

#[wasm_bindgen_test]
async fn a_change_made_on_one_device_reaches_the_other_deletes_included() {
    let token = token().await;
    let (a, b) = (device(http(&token)).await, device(http(&token)).await);
    let id = unique("doc");
    a.put(&id, "hello");
    a.persistence.sync_now().await.expect("A syncs");
    assert_eq!(a.persistence.status().sync.pending, 0, "acknowledged: the outbox is empty");
    b.persistence.sync_now().await.expect("B syncs");
    assert_eq!(b.text(&id).as_deref(), Some("hello"));
    let gone = id.clone();
    b.dispatch.reduce_mut(move |s| {
        s.docs.remove(&gone);
    });
    b.persistence.sync_now().await.expect("B syncs its delete");
    a.persistence.sync_now().await.expect("A syncs");
    assert_eq!(a.text(&id), None);
    assert_eq!(a.persistence.status().sync.connection, Connection::Online);
}

#[wasm_bindgen_test]
async fn another_devices_change_arrives_by_itself_through_the_event_stream() {
    let token = token().await;
    let (a, b) = (device(http(&token)).await, device(http(&token)).await);
    assert!(
        wait_until(5_000, || b.persistence.status().sync.connection == Connection::Online).await,
        "B connects"
    );
    // Let B's first sync and its event stream settle.
    sleep_ms(500).await;
    let id = unique("live");
    a.put(&id, "from A");
    a.persistence.sync_now().await.expect("A syncs");
    // B never calls sync and its interval is 30 s away: only the event can bring it.
    assert!(
        wait_until(3_000, || b.text(&id).as_deref() == Some("from A")).await,
        "B got A's change from the server's event within 3 s"
    );
}

/// [`HttpRemote`] behind a switch: "unplugged", every call fails as unreachable.
#[derive(Debug)]
struct Cable {
    remote: HttpRemote,
    unplugged: Cell<bool>,
}

impl Cable {
    fn down(&self) -> Result<(), RemoteError> {
        if self.unplugged.get() {
            Err(RemoteError::new(RemoteErrorKind::Unreachable, "unplugged"))
        } else {
            Ok(())
        }
    }
}

impl Remote for Cable {
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>> {
        Box::pin(async move {
            self.down()?;
            self.remote.push(request).await
        })
    }
    fn pull(
        &self,
        since: Revision,
        limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>> {
        Box::pin(async move {
            self.down()?;
            self.remote.pull(since, limit).await
        })
    }
    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>> {
        Box::pin(async move {
            self.down()?;
            self.remote.health().await
        })
    }
    fn subscribe(&self, on_change: EventCallback) -> Option<Box<dyn Subscription>> {
        self.remote.subscribe(on_change)
    }
}

#[wasm_bindgen_test]
async fn offline_the_app_keeps_every_change_and_the_outbox_drains_when_the_server_is_back() {
    let token = token().await;
    let cable = Rc::new(Cable {
        remote: HttpRemote::new(server(), Some(token.clone())),
        unplugged: Cell::new(true),
    });
    let a = device(cable.clone()).await;
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("offline{i}"))).collect();
    for id in &ids {
        a.put(id, "written offline");
    }
    assert!(a.persistence.sync_now().await.is_err(), "unreachable");
    let status = a.persistence.status();
    assert_eq!((status.sync.connection, status.sync.pending), (Connection::Offline, 3));
    assert!(status.sync.dead_letters.is_empty());
    // Back: the health check notices and the outbox drains without a sync call.
    cable.unplugged.set(false);
    assert_eq!(a.persistence.check_connection().await, Connection::Online);
    assert!(
        wait_until(5_000, || a.persistence.status().sync.pending == 0).await,
        "drained: {:?}",
        a.persistence.status().sync
    );
    let b = device(http(&token)).await;
    b.persistence.sync_now().await.expect("B syncs");
    for id in &ids {
        assert_eq!(b.text(id).as_deref(), Some("written offline"));
    }
}

#[wasm_bindgen_test]
async fn a_refused_token_signs_out_keeps_everything_queued_and_a_new_token_resumes() {
    let a = device(http("not-a-valid-token")).await;
    let id = unique("signed-out");
    a.put(&id, "kept");
    assert!(a.persistence.sync_now().await.is_err());
    let status = a.persistence.status();
    assert_eq!((status.sync.connection, status.sync.pending), (Connection::SignedOut, 1));
    assert!(status.sync.dead_letters.is_empty(), "a 401 is not the change's fault");
    a.persistence.set_token(Some(token().await));
    assert!(
        wait_until(5_000, || a.persistence.status().sync.pending == 0).await,
        "synced with the new token: {:?}",
        a.persistence.status().sync
    );
    assert_eq!(a.persistence.status().sync.connection, Connection::Online);
}

#[wasm_bindgen_test]
async fn a_change_the_server_rejects_goes_to_the_dead_letters_and_can_be_discarded() {
    let token = token().await;
    let a = device(http(&token)).await;
    let (big, small) = (unique("too-big"), unique("fine"));
    // Past the server's 256 KiB value limit, under its 1 MiB body limit.
    a.put(&big, &"x".repeat(300 * 1024));
    a.put(&small, "fine");
    a.persistence.sync_now().await.expect("the sync itself succeeds");
    let status = a.persistence.status();
    assert_eq!(status.sync.pending, 0);
    assert_eq!(status.sync.dead_letters.len(), 1);
    assert_eq!(status.sync.dead_letters[0].id, big);
    assert_eq!(a.text(&big).map(|t| t.len()), Some(300 * 1024), "the local value stays");
    a.persistence.discard_dead_letter("docs", &big);
    assert!(wait_until(3_000, || a.persistence.status().sync.dead_letters.is_empty()).await);
}

#[wasm_bindgen_test]
async fn the_outbox_survives_a_reload_and_drains_in_the_next_session() {
    let token = token().await;
    let database = unique("reload");
    let id = unique("kept");
    {
        let cable = Rc::new(Cable {
            remote: HttpRemote::new(server(), Some(token.clone())),
            unplugged: Cell::new(true),
        });
        let before = device_on(&database, cable).await;
        before.put(&id, "before the reload");
        before.persistence.flush().await.expect("durable locally");
        assert_eq!(before.persistence.status().sync.pending, 1, "counted when written");
        assert!(before.persistence.sync_now().await.is_err(), "offline");
        assert_eq!(before.persistence.status().sync.pending, 1);
    } // the page goes away
    let after = device_on(&database, http(&token)).await;
    assert_eq!(after.text(&id).as_deref(), Some("before the reload"));
    assert!(
        wait_until(5_000, || after.persistence.status().sync.pending == 0
            && after.persistence.status().sync.last_sync_at.is_some())
        .await,
        "the next session drained it: {:?}",
        after.persistence.status().sync
    );
    let other = device(http(&token)).await;
    other.persistence.sync_now().await.expect("syncs");
    assert_eq!(other.text(&id).as_deref(), Some("before the reload"));
}

#[wasm_bindgen_test]
async fn two_tabs_elect_one_leader_and_another_takes_over_when_it_closes() {
    let token = token().await;
    let database = unique("tabs");
    let first = device_on(&database, http(&token)).await;
    let second = device_on(&database, http(&token)).await;
    let leaders =
        || [&first, &second].iter().filter(|tab| tab.persistence.status().sync.leader).count();
    assert!(wait_until(3_000, || leaders() == 1).await, "exactly one leader");
    assert!(first.persistence.status().sync.leader, "the first tab asked first");
    // The follower's change goes out through the leader.
    let id = unique("from-follower");
    second.put(&id, "via the leader");
    second.persistence.sync_now().await.expect("the leader synced");
    assert_eq!(second.persistence.status().sync.connection, Connection::Online, "leader's status");
    let other = device(http(&token)).await;
    other.persistence.sync_now().await.expect("syncs");
    assert_eq!(other.text(&id).as_deref(), Some("via the leader"));
    // The leader closes: the follower takes over within a few seconds.
    drop(first);
    assert!(
        wait_until(3_000, || second.persistence.status().sync.leader).await,
        "the second tab leads now"
    );
    let later = unique("after-takeover");
    second.put(&later, "new leader");
    second.persistence.sync_now().await.expect("syncs itself");
    other.persistence.sync_now().await.expect("syncs");
    assert_eq!(other.text(&later).as_deref(), Some("new leader"));
}

#[wasm_bindgen_test]
async fn the_codeforge_remote_round_trips_through_the_servers_storage_api() {
    let token = token().await;
    let legacy = device(Rc::new(CodeForgeRemote::new(server(), Some(token.clone())))).await;
    let modern = device(http(&token)).await;
    let id = unique("legacy");
    legacy.put(&id, "through /api/storage");
    legacy.persistence.sync_now().await.expect("the CodeForge device syncs");
    assert_eq!(legacy.persistence.status().sync.pending, 0);
    modern.persistence.sync_now().await.expect("the protocol device syncs");
    assert_eq!(modern.text(&id).as_deref(), Some("through /api/storage"), "same records");
    let back = unique("modern");
    modern.put(&back, "through /v1");
    modern.persistence.sync_now().await.expect("syncs");
    legacy.persistence.sync_now().await.expect("pulls the export");
    assert_eq!(legacy.text(&back).as_deref(), Some("through /v1"));
    assert_eq!(legacy.persistence.status().sync.connection, Connection::Online);
}
