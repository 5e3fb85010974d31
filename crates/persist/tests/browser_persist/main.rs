//! The browser runtime end to end, in headless Chromium: a real yewdux store, real IndexedDB,
//! real timers, BroadcastChannel and page-lifecycle events.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::wasm_bindgen_test_configure;

wasm_bindgen_test_configure!(run_in_browser);

mod failures;
mod lifecycle;
mod loading;
mod saving;
mod support;
mod tabs;
