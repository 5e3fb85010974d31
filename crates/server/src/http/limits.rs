//! Rate limiting (per user, and per client address for requests that fail to authenticate) with
//! the `governor` crate, the caps on long-lived requests (event streams, exports), and the memory
//! pull pages may hold at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use persist_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// How often the limiters forget the keys whose budget is full again (see [`RateLimiter::check`]).
const FORGET_EVERY: Duration = Duration::from_secs(10);
/// The slowest refill honoured (a smaller rate would overflow `Duration`).
const SLOWEST_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A keyed rate limiter (generic cell rate algorithm, i.e. a token bucket per key): `burst`
/// requests at once, `per_second` sustained, per key. Answers past it are 429 `rate_limited` with
/// a `Retry-After`.
///
/// Memory stays bounded: governor keeps one state per key it has seen, so every
/// [`FORGET_EVERY`] the first request to come along drops the keys whose budget has refilled
/// completely (`retain_recent`: their state is indistinguishable from a fresh one) and returns the
/// freed capacity (`shrink_to_fit`). What is left are the keys that sent a request within the last
/// `burst / per_second` seconds plus the new keys of the last 10 s: a flood of addresses or users
/// costs memory for as long as it lasts, not for ever.
#[derive(Debug)]
pub(crate) struct RateLimiter<K: Hash + Eq + Clone> {
    /// `None` when the limit is off.
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    created: Instant,
    /// Milliseconds from `created` to the last sweep of forgotten keys.
    swept_ms: AtomicU64,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_second <= 0` (or not a number) disables the limiter.
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        let limiter = (per_second > 0.0).then(|| {
            let period = Duration::try_from_secs_f64(1.0 / per_second)
                .unwrap_or(SLOWEST_REFILL)
                .clamp(Duration::from_nanos(1), SLOWEST_REFILL);
            let quota = Quota::with_period(period)
                .expect("the period is at least 1 ns")
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            DefaultKeyedRateLimiter::keyed(quota)
        });
        Self { limiter, created: Instant::now(), swept_ms: AtomicU64::new(0) }
    }

    /// Takes one request from `key`'s budget, or answers 429 with a `Retry-After`.
    pub(crate) fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.forget_full_budgets(limiter);
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs_f64().ceil() as u64)
        })
    }

    /// At most once per [`FORGET_EVERY`] (whoever wins the race does it): drops the keys whose
    /// budget is full again.
    fn forget_full_budgets(&self, limiter: &DefaultKeyedRateLimiter<K>) {
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.swept_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last) >= FORGET_EVERY.as_millis() as u64;
        if due
            && self
                .swept_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many keys the limiter holds state for.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, DefaultKeyedRateLimiter::len)
    }
}

/// The key of a client address in the per-address limiter: the IPv4 address, or the /64 network
/// of an IPv6 address (one host usually holds a whole /64, so per-address keys would let it
/// spread its requests over 2^64 budgets). An IPv4-mapped IPv6 address counts as its IPv4.
pub(crate) fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Caps on long-lived requests running at once, per user and on the whole instance: open event
/// streams, exports being read. Each holds a [`Slot`] for its lifetime; dropping it (client gone,
/// token revoked, shutdown, answer sent) frees the place.
#[derive(Debug)]
pub(crate) struct Slots {
    /// What is capped, in the plural, for the error messages ("open event streams").
    what: &'static str,
    per_user: usize,
    total: Arc<Semaphore>,
    /// One semaphore per user holding a slot; an entry is removed when its last slot is freed.
    users: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Slots {
    /// `0` turns a cap off.
    pub(crate) fn new(what: &'static str, per_user: usize, total: usize) -> Self {
        let cap =
            |n: usize| if n == 0 { Semaphore::MAX_PERMITS } else { n.min(Semaphore::MAX_PERMITS) };
        Self {
            what,
            per_user: cap(per_user),
            total: Arc::new(Semaphore::new(cap(total))),
            users: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for one more stream of `user`, or 429 naming the cap that is reached.
    pub(crate) fn acquire(&self, user: &str) -> Result<Slot, ApiError> {
        // Acquired under the lock, so an entry whose permits are all available has no holder.
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let semaphore =
            users.entry(user.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_user)));
        let user_permit = Arc::clone(semaphore).try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many {} for this user (at most {} per user); try again when one ends",
                    self.what, self.per_user
                ),
            )
        })?;
        let Ok(total_permit) = Arc::clone(&self.total).try_acquire_owned() else {
            drop(user_permit);
            Self::forget_if_idle(&mut users, user, self.per_user);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("too many {} on this server; try again later", self.what),
            ));
        };
        Ok(Slot {
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

/// One long-lived request's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    user: String,
    per_user: usize,
    users: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(self.permits.take());
        Slots::forget_if_idle(&mut users, &self.user, self.per_user);
    }
}

/// The smallest share of [`ReadMemory`] a page waits for; a page always carries its first
/// record, so under pressure a page overruns its share by at most one value.
const MIN_PAGE_KIB: u32 = 256;
/// Chunks an answer held by a [`ReadMemory`] share is handed to hyper in: the share is freed when
/// the last chunk has been taken, i.e. once the answer is (nearly) on the wire.
const ANSWER_CHUNK: usize = 64 * 1024;

/// The bytes of pull pages held in memory at once on this instance (`--max-read-bytes-in-flight`).
/// Each page takes a share before it is read and keeps it until its answer has been sent: the
/// whole page budget (`--max-page-bytes`) when that much is free, else what is left, so under
/// load pages get smaller instead of waiting — only when less than [`MIN_PAGE_KIB`] is left does
/// a pull wait for a share.
///
/// Hand-written on a `tokio` semaphore (counted in KiB): it is a counter of bytes, not a rate,
/// which none of the limiter crates models.
#[derive(Debug)]
pub(crate) struct ReadMemory {
    kib: Option<Arc<Semaphore>>,
    max_page_kib: u32,
}

/// One page's share of [`ReadMemory`]: how many bytes the page may hold.
#[derive(Debug)]
pub(crate) struct PageShare {
    /// Freed when the share is dropped.
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl PageShare {
    /// The page's byte budget.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A body sending `answer` that keeps this share until the last chunk has been taken.
    pub(crate) fn body(self, answer: Vec<u8>) -> axum::body::Body {
        let answer = axum::body::Bytes::from(answer);
        let chunks = answer.len().div_ceil(ANSWER_CHUNK);
        let mut share = Some(self);
        let stream = futures_util::stream::iter((0..=chunks).filter_map(move |index| {
            if index == chunks {
                // The poll after the last chunk: the answer is in hyper's hands.
                drop(share.take());
                return None;
            }
            let end = ((index + 1) * ANSWER_CHUNK).min(answer.len());
            Some(Ok::<_, std::convert::Infallible>(answer.slice(index * ANSWER_CHUNK..end)))
        }));
        axum::body::Body::from_stream(stream)
    }
}

impl ReadMemory {
    /// `total_bytes == 0` turns the cap off (every page gets `max_page_bytes`).
    pub(crate) fn new(total_bytes: u64, max_page_bytes: u64) -> Self {
        let kib = |bytes: u64| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1);
        let max_page_kib = kib(max_page_bytes);
        let kib = (total_bytes > 0).then(|| {
            let total =
                (kib(total_bytes) as usize).clamp(MIN_PAGE_KIB as usize, Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(total))
        });
        Self { kib, max_page_kib }
    }

    /// A share for one page (waits only while less than [`MIN_PAGE_KIB`] is free).
    pub(crate) async fn page(&self) -> Result<PageShare, ApiError> {
        let Some(kib) = &self.kib else {
            return Ok(PageShare { _permit: None, bytes: u64::from(self.max_page_kib) * 1024 });
        };
        let want = self.max_page_kib;
        let permit = match Arc::clone(kib).try_acquire_many_owned(want) {
            Ok(permit) => permit,
            Err(_) => {
                let free = u32::try_from(kib.available_permits()).unwrap_or(u32::MAX).min(want);
                match Arc::clone(kib).try_acquire_many_owned(free) {
                    Ok(permit) if free >= MIN_PAGE_KIB.min(want) => permit,
                    _ => Arc::clone(kib)
                        .acquire_many_owned(MIN_PAGE_KIB.min(want))
                        .await
                        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "shutting down"))?,
                }
            }
        };
        let bytes = u64::from(permit.num_permits() as u32) * 1024;
        Ok(PageShare { _permit: Some(permit), bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_per_user_and_in_total_and_free_on_drop() {
        let slots = Slots::new("things", 2, 3);
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

    #[tokio::test]
    async fn pages_shrink_under_memory_pressure_and_wait_only_below_the_minimum() {
        let memory = ReadMemory::new(1024 * 1024, 512 * 1024);
        let first = memory.page().await.unwrap();
        assert_eq!(first.bytes(), 512 * 1024);
        let second = memory.page().await.unwrap();
        assert_eq!(second.bytes(), 512 * 1024);
        // Nothing left: the third waits until a share is freed, then takes the minimum.
        let waiting = tokio::spawn(async move { memory.page().await.map(|share| share.bytes()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a page was read with no memory left");
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), u64::from(MIN_PAGE_KIB) * 1024);
        drop(second);
    }

    #[tokio::test]
    async fn a_page_share_is_held_until_its_answer_is_taken() {
        use http_body_util::BodyExt;
        let memory = ReadMemory::new(1024 * 1024, 1024 * 1024);
        let share = memory.page().await.unwrap();
        let body = share.body(vec![b'x'; 3 * ANSWER_CHUNK + 1]);
        assert_eq!(memory.kib.as_ref().unwrap().available_permits(), 0);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 3 * ANSWER_CHUNK + 1);
        assert_eq!(memory.kib.as_ref().unwrap().available_permits(), 1024);
    }

    #[test]
    fn zero_turns_slot_caps_off() {
        let slots = Slots::new("things", 0, 0);
        let held: Vec<_> = (0..1000).map(|_| slots.acquire("a").unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }

    #[test]
    fn burst_then_limited_per_user() {
        let limiter = RateLimiter::new(0.001, 3);
        let (a, b) = ("a".to_owned(), "b".to_owned());
        for _ in 0..3 {
            limiter.check(&a).unwrap();
        }
        let refused = limiter.check(&a).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        // One request per 1,000 s: the next one is that far away.
        assert!(refused.retry_after_secs().unwrap() > 900, "{:?}", refused.retry_after_secs());
        limiter.check(&b).unwrap();
    }

    #[test]
    fn zero_or_odd_rates_disable_or_clamp_without_panicking() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..100 {
            limiter.check(&"a".to_owned()).unwrap();
        }
        assert_eq!(limiter.tracked(), 0);
        let limiter = RateLimiter::new(f64::NAN, 1);
        limiter.check(&1).unwrap();
        limiter.check(&1).unwrap();
        for rate in [1e-300, f64::INFINITY, 1e300] {
            let limiter = RateLimiter::new(rate, 0);
            limiter.check(&1).unwrap();
        }
    }

    #[test]
    fn keys_whose_budget_is_full_again_are_forgotten() {
        let mut limiter = RateLimiter::new(1_000_000.0, 1);
        for n in 0..10_000u32 {
            limiter.check(&n).unwrap();
        }
        assert_eq!(limiter.tracked(), 10_000);
        std::thread::sleep(Duration::from_millis(5));
        // Pretend the limiter (and so its last sweep) is older than the sweep interval.
        limiter.created -= FORGET_EVERY * 2;
        limiter.check(&u32::MAX).unwrap();
        assert!(limiter.tracked() <= 1, "{} keys kept", limiter.tracked());
    }

    #[test]
    fn ipv6_addresses_count_per_64_network() {
        let key = |text: &str| address_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
