//! Per-user rate limiting: a token bucket per user, refilled continuously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

/// Buckets are forgotten once the map grows past this many users (full buckets first).
const MAX_TRACKED_USERS: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Allows `burst` requests at once and `per_second` sustained, per user.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_second <= 0` disables the limiter.
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from the user's bucket, or answers 429 with a `Retry-After`.
    pub(crate) fn check(&self, user: &str) -> Result<(), ApiError> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(user) {
            if buckets.len() >= MAX_TRACKED_USERS {
                self.forget_idle(&mut buckets, now);
            }
            buckets.insert(user.to_owned(), Bucket { tokens: self.burst, refilled_at: now });
        }
        let bucket = buckets.get_mut(user).expect("inserted above");
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_second).ceil() as u64;
            Err(ApiError::rate_limited(wait))
        }
    }

    fn forget_idle(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        buckets.retain(|_, b| {
            b.tokens + now.duration_since(b.refilled_at).as_secs_f64() * per_second < burst
        });
        if buckets.len() >= MAX_TRACKED_USERS {
            buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use persist_protocol::ErrorCode;

    use super::*;

    #[test]
    fn burst_then_limited_per_user() {
        let limiter = RateLimiter::new(0.001, 3);
        for _ in 0..3 {
            limiter.check("a").unwrap();
        }
        assert_eq!(limiter.check("a").unwrap_err().code(), ErrorCode::RateLimited);
        limiter.check("b").unwrap();
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..100 {
            limiter.check("a").unwrap();
        }
    }
}
