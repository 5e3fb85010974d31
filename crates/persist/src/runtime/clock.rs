//! The runtime's clocks: the engine's monotonic [`Time`] from `performance.now()`, and wall time
//! for display.

use crate::time::Time;

/// Now, on the monotonic clock the engine runs on.
pub(crate) fn now() -> Time {
    Time::from_millis_f64(monotonic_millis())
}

fn monotonic_millis() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Wall-clock epoch milliseconds of a monotonic instant (for "last saved 3 s ago").
pub(crate) fn wall_millis(at: Time) -> f64 {
    js_sys::Date::now() - (monotonic_millis() - at.as_millis_f64())
}
