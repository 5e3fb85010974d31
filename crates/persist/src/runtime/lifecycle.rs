//! Flush when the page is hidden or left: the debounce window must not be a data-loss window.
//!
//! `visibilitychange` to hidden is the last event a browser reliably fires before it may freeze
//! or discard a tab (mobile browsers often never fire `pagehide` or `unload`); `pagehide` covers
//! navigations and closes. IndexedDB transactions started in these handlers are committed by the
//! browser even while the page goes away.

use std::rc::{Rc, Weak};

use gloo_events::EventListener;

use super::clock;
use super::driver::Inner;

/// Flushes `inner` whenever the page is hidden or left, for as long as the runtime lives (the
/// listeners are kept in it and removed when it drops).
pub(super) fn attach(inner: &Rc<Inner>) {
    if let Some(listeners) = PageExitListeners::attach(Rc::downgrade(inner)) {
        *inner.page_exit.borrow_mut() = Some(Box::new(listeners));
    }
}

/// The page-exit listeners; removed when dropped.
struct PageExitListeners {
    _visibility: EventListener,
    _page_hide: EventListener,
}

impl PageExitListeners {
    fn attach(runtime: Weak<Inner>) -> Option<Self> {
        let window = web_sys::window()?;
        let document = window.document()?;
        let visibility = {
            let runtime = runtime.clone();
            let target = document.clone();
            EventListener::new(&target, "visibilitychange", move |_| {
                if document.visibility_state() == web_sys::VisibilityState::Hidden {
                    flush(&runtime);
                }
            })
        };
        let page_hide = EventListener::new(&window, "pagehide", move |_| flush(&runtime));
        Some(Self { _visibility: visibility, _page_hide: page_hide })
    }
}

fn flush(runtime: &Weak<Inner>) {
    if let Some(inner) = runtime.upgrade() {
        inner.flush_on_exit();
    }
}

impl Inner {
    /// The page is being hidden or left: write everything queued at once. The engine writes one
    /// batch at a time and starts the next from the previous one's completion, which may never
    /// come once the page is gone; so every waiting op is also written right now, in one
    /// transaction created in this event's task (IndexedDB commits it even as the page unloads,
    /// and orders it after the batch already in flight). If the page lives on, the engine writes
    /// the same values again later, which is harmless.
    fn flush_on_exit(self: &Rc<Self>) {
        let batches = self.engine.borrow().snapshot_waiting();
        self.engine.borrow_mut().flush(clock::now());
        self.drive();
        if batches.is_empty() {
            return;
        }
        let store = self.store.borrow().clone();
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(error) = store.write_all(&batches).await {
                if let Some(inner) = weak.upgrade() {
                    inner.status.borrow_mut().last_error =
                        Some(format!("saving on page exit failed: {error}"));
                    inner.schedule_notify();
                }
            }
        });
    }
}
