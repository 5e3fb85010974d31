//! One tab talks to the server: the tab holding the Web Lock `yewdux-persist/<db>/leader` runs
//! the syncs, the health checks and the event stream. The others wait in the lock's queue; when
//! the leader's page goes away the browser releases its lock and the next tab takes over at once.
//! Where Web Locks are missing (old browsers) every tab leads; op ids make a push applied once
//! and pulled records at or below an item's known revision are skipped, so nothing is applied
//! twice either way.
//!
//! Followers hear the leader over a `BroadcastChannel` of their own (`.../sync`): its sync status
//! (adopted as theirs, so every tab's dashboard shows the same), and items pulled (through the
//! ordinary tab channel of `tabs.rs`). A follower asked to sync (a change, `sync_now`) asks the
//! leader, and its `sync_now` resolves when the leader reports a finished sync.
//!
//! The lock is requested through `js_sys::Reflect` rather than web-sys' unstable `LockManager`
//! binding: its callback type changed between web-sys releases, and the dynamic call needs no
//! `--cfg=web_sys_unstable_apis` from apps that depend on this crate.

use std::any::Any;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use persist_engine::{CollectionConfigPatch, ConflictStrategy};
use serde::{Deserialize, Serialize};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use super::clock;
use super::driver::Inner;
use super::health;
use super::status::SyncStatus;
use super::subscribers::Subscription;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// A follower asks the leader to sync.
    Sync { from: String },
    /// A new tab asks the leader for its status.
    Hello { from: String },
    /// The leader's sync status.
    Status { from: String, status: SyncStatus },
    /// A tab changed a collection's conflict strategy: every tab takes it, so the leader (which
    /// decides conflicts) uses it whichever tab changed it.
    Strategy { from: String, collection: String, strategy: ConflictStrategy },
}

/// Called by the browser when the lock is granted; returns the promise it is held by.
type Granted = Closure<dyn FnMut(JsValue) -> JsValue>;
/// Swallows the rejection of a withdrawn lock request.
type Ignore = Closure<dyn FnMut(JsValue)>;

/// The lock request, the channel and the leader's status subscription; dropping it releases the
/// lock (or withdraws the request) and closes the channel.
struct Leadership {
    channel: web_sys::BroadcastChannel,
    _listener: EventListener,
    /// Resolves the promise the lock is held by: calling it releases the lock.
    release: RefCell<Option<js_sys::Function>>,
    /// Withdraws a lock request still waiting.
    abort: Option<web_sys::AbortController>,
    _granted: RefCell<Option<Granted>>,
    _reported: RefCell<Option<Subscription>>,
    _withdrawn: RefCell<Option<Ignore>>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(release) = self.release.get_mut().take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
        if let Some(abort) = &self.abort {
            abort.abort();
        }
        self.channel.close();
    }
}

/// Joins the election of `inner`'s database (no-op without a remote).
pub(super) fn attach(inner: &Rc<Inner>) {
    let Some(state) = inner.sync.as_ref() else { return };
    let Ok(channel) =
        web_sys::BroadcastChannel::new(&format!("yewdux-persist/{}/sync", inner.database))
    else {
        // No BroadcastChannel: no other tab can be coordinated with; lead alone.
        become_leader(inner);
        return;
    };
    let weak = Rc::downgrade(inner);
    let listener = EventListener::new(&channel, "message", move |event| {
        let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() else { return };
        let Some(text) = event.data().as_string() else { return };
        let Ok(message) = serde_json::from_str::<Message>(&text) else { return };
        if let Some(inner) = weak.upgrade() {
            receive(&inner, message);
        }
    });
    let abort = web_sys::AbortController::new().ok();
    let leadership = Rc::new(Leadership {
        channel,
        _listener: listener,
        release: RefCell::new(None),
        abort,
        _granted: RefCell::new(None),
        _reported: RefCell::new(None),
        _withdrawn: RefCell::new(None),
    });
    *state.leadership.borrow_mut() = Some(Box::new(Rc::clone(&leadership)) as Box<dyn Any>);
    if !request_lock(inner, &leadership) {
        become_leader(inner);
    }
    post(inner, &Message::Hello { from: inner.node.clone() });
}

fn leadership(inner: &Inner) -> Option<Rc<Leadership>> {
    let state = inner.sync.as_ref()?;
    let slot = state.leadership.borrow();
    slot.as_ref()?.downcast_ref::<Rc<Leadership>>().cloned()
}

fn post(inner: &Inner, message: &Message) {
    if let (Some(leadership), Ok(text)) = (leadership(inner), serde_json::to_string(message)) {
        let _ = leadership.channel.post_message(&text.into());
    }
}

/// Requests the lock; `false` when Web Locks are not available.
fn request_lock(inner: &Rc<Inner>, leadership: &Rc<Leadership>) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let navigator = js_sys::Reflect::get(&window, &"navigator".into()).unwrap_or_default();
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).unwrap_or_default();
    if !locks.is_object() {
        return false;
    }
    let Ok(request) = js_sys::Reflect::get(&locks, &"request".into())
        .and_then(|f| f.dyn_into::<js_sys::Function>())
    else {
        return false;
    };
    let name = format!("yewdux-persist/{}/leader", inner.database);
    let options = js_sys::Object::new();
    if let Some(abort) = &leadership.abort {
        let _ = js_sys::Reflect::set(&options, &"signal".into(), &abort.signal());
    }
    let (weak_inner, weak_leadership) = (Rc::downgrade(inner), Rc::downgrade(leadership));
    let granted = Closure::once(move |_lock: JsValue| -> JsValue {
        let (Some(inner), Some(leadership)) = (weak_inner.upgrade(), weak_leadership.upgrade())
        else {
            // The runtime stopped while waiting: let the next tab have it.
            return js_sys::Promise::resolve(&JsValue::UNDEFINED).into();
        };
        // Held until this promise resolves: when the runtime stops, or the page goes away.
        let mut release = None;
        let held = js_sys::Promise::new(&mut |resolve, _reject| release = Some(resolve));
        *leadership.release.borrow_mut() = release;
        become_leader(&inner);
        held.into()
    });
    let Ok(answer) = request.call3(&locks, &name.into(), &options, granted.as_ref()) else {
        return false;
    };
    // A withdrawn request rejects with AbortError: expected, not worth a console error.
    if let Ok(answer) = answer.dyn_into::<js_sys::Promise>() {
        let ignore = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        let _ = answer.catch(&ignore);
        *leadership._withdrawn.borrow_mut() = Some(ignore);
    }
    *leadership._granted.borrow_mut() = Some(granted);
    true
}

/// This tab now talks to the server.
fn become_leader(inner: &Rc<Inner>) {
    let Some(state) = inner.sync.as_ref() else { return };
    if state.leader.replace(true) {
        return;
    }
    inner.status.borrow_mut().sync.leader = true;
    health::attach(inner);
    inner.listen_to_server();
    let counting = Rc::clone(inner);
    wasm_bindgen_futures::spawn_local(async move {
        counting.refresh_sync_bookkeeping().await;
    });
    // Tell the followers whenever the sync status changes.
    if let Some(leadership) = leadership(inner) {
        let weak: Weak<Inner> = Rc::downgrade(inner);
        let last = RefCell::new(None::<SyncStatus>);
        let subscription = inner.status_subscribers.subscribe(move |status| {
            let Some(inner) = weak.upgrade() else { return };
            if last.borrow().as_ref() != Some(&status.sync) {
                *last.borrow_mut() = Some(status.sync.clone());
                post(
                    &inner,
                    &Message::Status { from: inner.node.clone(), status: status.sync.clone() },
                );
            }
        });
        *leadership._reported.borrow_mut() = Some(subscription);
    }
    inner.schedule_notify();
}

fn receive(inner: &Rc<Inner>, message: Message) {
    let Some(state) = inner.sync.as_ref() else { return };
    match message {
        Message::Sync { .. } if state.leader.get() => {
            inner.engine.borrow_mut().sync_now(clock::now());
            inner.drive();
        }
        Message::Hello { .. } if state.leader.get() => {
            let status = inner.status.borrow().sync.clone();
            post(inner, &Message::Status { from: inner.node.clone(), status });
        }
        Message::Strategy { from, collection, strategy } if from != inner.node => {
            let patch = CollectionConfigPatch { conflict: Some(strategy), ..Default::default() };
            // Valid wherever it was valid: only the strategy changes.
            let _ =
                inner.engine.borrow_mut().configure_collection(clock::now(), &collection, &patch);
            inner.schedule_notify();
        }
        Message::Status { status, .. } if !state.leader.get() => {
            let finished = !status.syncing;
            inner.status.borrow_mut().sync = SyncStatus { leader: false, ..status };
            if finished {
                inner.finish_forwarded_syncs();
            }
            inner.schedule_notify();
        }
        _ => {}
    }
}

/// Whether this tab talks to the server.
pub(super) fn is_leader(inner: &Inner) -> bool {
    inner.sync.as_ref().is_some_and(|state| state.leader.get())
}

/// Tells the other tabs that `collection`'s conflict strategy is now `strategy`.
pub(super) fn announce_strategy(inner: &Inner, collection: &str, strategy: ConflictStrategy) {
    let message =
        Message::Strategy { from: inner.node.clone(), collection: collection.to_owned(), strategy };
    post(inner, &message);
}

/// Asks the leader tab to sync.
pub(super) fn ask_leader_to_sync(inner: &Inner) {
    post(inner, &Message::Sync { from: inner.node.clone() });
}
