//! Per-user rate limiting (a token bucket per user, refilled continuously), and the caps on open
//! event streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use persist_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Caps the event streams open at once: per user and on the whole instance. A stream holds an
/// [`EventStreamSlot`] for its lifetime; dropping the stream (client gone, token revoked,
/// shutdown) frees it.
#[derive(Debug)]
pub(crate) struct EventStreamSlots {
    per_user: usize,
    total: Arc<Semaphore>,
    /// One semaphore per user with a stream open; an entry is removed when its last slot is freed.
    users: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl EventStreamSlots {
    /// `0` turns a cap off.
    pub(crate) fn new(per_user: usize, total: usize) -> Self {
        let cap =
            |n: usize| if n == 0 { Semaphore::MAX_PERMITS } else { n.min(Semaphore::MAX_PERMITS) };
        Self {
            per_user: cap(per_user),
            total: Arc::new(Semaphore::new(cap(total))),
            users: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for one more stream of `user`, or 429 naming the cap that is reached.
    pub(crate) fn acquire(&self, user: &str) -> Result<EventStreamSlot, ApiError> {
        // Acquired under the lock, so an entry whose permits are all available has no holder.
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let semaphore =
            users.entry(user.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_user)));
        let user_permit = Arc::clone(semaphore).try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many open event streams for this user (at most {} per user); close one",
                    self.per_user
                ),
            )
        })?;
        let Ok(total_permit) = Arc::clone(&self.total).try_acquire_owned() else {
            drop(user_permit);
            Self::forget_if_idle(&mut users, user, self.per_user);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many open event streams on this server; try again later",
            ));
        };
        Ok(EventStreamSlot {
            user: user.to_owned(),
            per_user: self.per_user,
            users: Arc::clone(&self.users),
            permits: Some((user_permit, total_permit)),
        })
    }

    fn forget_if_idle(users: &mut HashMap<String, Arc<Semaphore>>, user: &str, per_user: usize) {
        if users.get(user).is_some_and(|s| s.available_permits() == per_user) {
            users.remove(user);
        }
    }
}

/// One open event stream's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct EventStreamSlot {
    user: String,
    per_user: usize,
    users: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Drop for EventStreamSlot {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(self.permits.take());
        EventStreamSlots::forget_if_idle(&mut users, &self.user, self.per_user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_slots_cap_per_user_and_in_total_and_free_on_drop() {
        let slots = EventStreamSlots::new(2, 3);
        let a1 = slots.acquire("a").unwrap();
        let _a2 = slots.acquire("a").unwrap();
        assert_eq!(slots.acquire("a").unwrap_err().code(), ErrorCode::RateLimited);
        let _b1 = slots.acquire("b").unwrap();
        assert_eq!(slots.acquire("c").unwrap_err().code(), ErrorCode::RateLimited);
        drop(a1);
        let _a3 = slots.acquire("a").unwrap();
        drop(_b1);
        assert!(!slots.users.lock().unwrap().contains_key("b"));
        assert!(!slots.users.lock().unwrap().contains_key("c"));
    }

    #[test]
    fn zero_turns_event_stream_caps_off() {
        let slots = EventStreamSlots::new(0, 0);
        let held: Vec<_> = (0..1000).map(|_| slots.acquire("a").unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }

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
