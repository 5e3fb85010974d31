//! Flush when the page is hidden or left: the debounce window must not be a data-loss window.
//!
//! `visibilitychange` to hidden is the last event a browser reliably fires before it may freeze
//! or discard a tab (mobile browsers often never fire `pagehide` or `unload`); `pagehide` covers
//! navigations and closes. IndexedDB transactions started in these handlers are committed by the
//! browser even while the page goes away.

use std::rc::Weak;

use gloo_events::EventListener;

use super::Inner;

/// The page-exit listeners; removed when dropped.
pub(crate) struct PageExitListeners {
    _visibility: EventListener,
    _page_hide: EventListener,
}

impl PageExitListeners {
    pub(crate) fn attach(runtime: Weak<Inner>) -> Option<Self> {
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
