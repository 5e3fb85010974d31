//! The runtime's clocks and randomness: the engine's monotonic [`Time`] from
//! `performance.now()`, wall time for display and HLC stamps, and random numbers for ids.

use persist_engine::Time;

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

/// Wall-clock epoch milliseconds of [`Time::ZERO`], the engine's origin (its HLC stamps need wall
/// time; the engine reads no clock itself).
pub(crate) fn wall_origin_ms() -> u64 {
    // `as` saturates: a clock before 1970 gives 0.
    (js_sys::Date::now() - monotonic_millis()).max(0.0) as u64
}

/// 53 random bits (what a JavaScript number carries), for seeds and ids.
pub(crate) fn random_u64() -> u64 {
    (js_sys::Math::random() * 2f64.powi(53)) as u64
}
