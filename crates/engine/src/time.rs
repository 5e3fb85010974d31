//! Virtual time for the sans-IO engine.
//!
//! The engine never reads a clock: the runtime passes [`Time`] values taken from its own
//! monotonic clock (`performance.now()` in the browser, a counter in tests). That keeps every
//! rule testable with exact, virtual instants.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A monotonic instant on the runtime's clock, in microseconds since the clock's origin.
///
/// Only differences between instants mean something; the origin is whatever the runtime uses
/// (page load for `performance.now()`). Arithmetic saturates instead of overflowing.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Time(u64);

impl Time {
    /// The clock's origin.
    pub const ZERO: Time = Time(0);

    /// The instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    /// The instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1_000))
    }

    /// The instant `millis` (fractional) milliseconds after the origin, as returned by
    /// `performance.now()`. Negative and NaN values map to the origin; huge values saturate.
    pub fn from_millis_f64(millis: f64) -> Time {
        // `as` saturates float-to-int conversions and maps NaN to 0.
        Time((millis * 1_000.0) as u64)
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the origin, with microsecond precision.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1_000.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturating: adding a huge duration gives the last representable instant.
    fn add(self, rhs: Duration) -> Time {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(micros))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.as_millis_f64())
    }
}

/// Serde for a `Duration` as whole milliseconds (how configs write durations: `"debounce_ms": 300`).
pub(crate) mod serde_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Serde for an `Option<Duration>` as whole milliseconds or null.
pub(crate) mod serde_option_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serde_millis::serialize(value, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        assert_eq!(Time::from_millis(3).as_micros(), 3_000);
        assert_eq!(Time::from_micros(1_500).as_millis_f64(), 1.5);
        assert_eq!(Time::from_millis_f64(2.25), Time::from_micros(2_250));
        assert_eq!(Time::from_millis_f64(-4.0), Time::ZERO);
        assert_eq!(Time::from_millis_f64(f64::NAN), Time::ZERO);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(10);
        assert_eq!(t + Duration::from_millis(5), Time::from_millis(15));
        assert_eq!(t + Duration::MAX, Time::from_micros(u64::MAX));
        assert_eq!(t.saturating_duration_since(Time::from_millis(4)), Duration::from_millis(6));
        assert_eq!(Time::ZERO.saturating_duration_since(t), Duration::ZERO);
        let mut u = t;
        u += Duration::from_micros(1);
        assert_eq!(u.as_micros(), 10_001);
        assert_eq!(u.to_string(), "10.001ms");
    }
}
