//! The server's health: `/health` every 30 s while online, and after a failure at growing
//! intervals (1 s doubling to 60 s) until it answers again. The browser's `online` and `offline`
//! events only make the next check happen now; they are not trusted alone (a captive portal is
//! "online", a server down is not "offline"). The first good answer after a bad one starts a sync,
//! so queued changes drain by themselves.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::channel::oneshot;
use gloo_events::EventListener;
use gloo_timers::callback::Timeout;

use super::clock;
use super::driver::Inner;
use super::status::Connection;
use crate::remote::{Health, RemoteErrorKind};

/// Between checks while the server answers.
const HEALTHY_EVERY: Duration = Duration::from_secs(30);
/// After a failed check: the first delay, doubling up to the last.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// The timer of the next check and the browser's network listeners; dropped with the runtime.
struct Checker {
    timer: RefCell<Option<Timeout>>,
    failures: Cell<u32>,
    _listeners: Vec<EventListener>,
}

/// Starts checking `inner`'s remote (no-op without one).
pub(super) fn attach(inner: &Rc<Inner>) {
    let Some(state) = inner.sync.as_ref() else { return };
    let listeners = web_sys::window()
        .map(|window| {
            ["online", "offline"]
                .into_iter()
                .map(|name| {
                    let weak = Rc::downgrade(inner);
                    EventListener::new(&window, name, move |_| {
                        if let Some(inner) = weak.upgrade() {
                            check(&inner, None);
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let checker = Rc::new(Checker {
        timer: RefCell::new(None),
        failures: Cell::new(0),
        _listeners: listeners,
    });
    *state.health.borrow_mut() = Some(Box::new(checker));
    check(inner, None);
}

fn checker(inner: &Inner) -> Option<Rc<Checker>> {
    let state = inner.sync.as_ref()?;
    let health = state.health.borrow();
    health.as_ref()?.downcast_ref::<Rc<Checker>>().cloned()
}

/// Checks now; `done` learns the resulting connection.
pub(super) fn check(inner: &Rc<Inner>, done: Option<oneshot::Sender<Connection>>) {
    let Some(state) = inner.sync.as_ref() else { return };
    let remote = Rc::clone(&state.remote);
    let weak: Weak<Inner> = Rc::downgrade(inner);
    wasm_bindgen_futures::spawn_local(async move {
        let answer = remote.health().await;
        let Some(inner) = weak.upgrade() else { return };
        let before = inner.status.borrow().sync.connection;
        let connection = match answer {
            // Health needs no token: a signed-out runtime stays signed out until a new one.
            Ok(Health::Ok) if before == Connection::SignedOut => Connection::SignedOut,
            Ok(Health::Ok) => Connection::Online,
            Ok(Health::Degraded(_)) => Connection::Degraded,
            Err(error) if error.kind == RemoteErrorKind::Unauthorized => Connection::SignedOut,
            Err(error) if matches!(error.kind, RemoteErrorKind::Busy { .. }) => {
                Connection::Degraded
            }
            Err(_) => Connection::Offline,
        };
        inner.set_connection(connection);
        if connection == Connection::Online && before != Connection::Online {
            // Connected (first time, or back): sync what waited and pull what changed.
            inner.engine.borrow_mut().sync_now(clock::now());
            inner.drive();
        }
        if let Some(checker) = checker(&inner) {
            let delay = if connection == Connection::Online || connection == Connection::SignedOut {
                checker.failures.set(0);
                HEALTHY_EVERY
            } else {
                let failures = checker.failures.get();
                checker.failures.set(failures.saturating_add(1));
                (RETRY.0 * 2u32.saturating_pow(failures.min(16))).min(RETRY.1)
            };
            let weak = Rc::downgrade(&inner);
            let timer = Timeout::new(delay.as_millis() as u32, move || {
                if let Some(inner) = weak.upgrade() {
                    check(&inner, None);
                }
            });
            *checker.timer.borrow_mut() = Some(timer);
        }
        if let Some(done) = done {
            let _ = done.send(connection);
        }
    });
}
