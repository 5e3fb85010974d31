//! Authentication: `Authorization: Bearer <token>` → the user whose namespace the request may
//! touch, with a short-lived cache of token lookups.
//!
//! Nothing here knows about the router's state: the axum extractors that use these functions live
//! in `http::extract`, so `http` depends on `auth` and never the other way round.

pub(crate) mod admin;
pub(crate) mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::storage::Storage;

/// How long a token lookup is trusted before the database is asked again (also how often an
/// open event stream checks that its token still exists).
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most cached lookups; the cache is emptied when it grows past this.
const CACHE_MAX: usize = 100_000;

/// Token hash → user, remembered for [`CACHE_TTL`]. Only tokens that exist are remembered: an
/// unknown token is asked about again each time (what bounds that is the per-address rate limit
/// every lookup of an uncached token is charged to, see `http::AppState::authenticate`), so a
/// flood of random tokens can neither fill the cache nor push the valid tokens out of it.
#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
    /// Most cached lookups; the cache is emptied when it grows past this.
    max: usize,
    /// Bumped by [`TokenCache::clear`]: a lookup that started before a revocation must not put
    /// its (possibly stale) answer back afterwards.
    generation: AtomicU64,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_MAX)
    }
}

impl TokenCache {
    fn with_capacity(max: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), max, generation: AtomicU64::new(0) }
    }

    fn get(&self, hash: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(user, _)| user.clone())
    }

    /// Forgets every lookup (after tokens were revoked), including the ones in flight.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Remembers that the token `hash` is `user`'s, found at `generation`, unless the cache was
    /// cleared since.
    fn put(&self, hash: String, user: String, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= self.max {
            // Expired entries first; everything only if all are fresh (more than `max` valid
            // tokens used within 30 s).
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(hash, (user, Instant::now()));
    }
}

/// The bearer token of a request, if it sent one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The user of a token, or 401. Asks `storage` only when `cache` has no fresh answer, and then
/// only once `before_lookup` agrees (the caller's rate limit: its error is answered instead). The
/// development token counts only `with_dev` (a server started with `--dev`).
pub(crate) async fn user_for_token(
    cache: &TokenCache,
    storage: &dyn Storage,
    token: &str,
    with_dev: bool,
    before_lookup: impl FnOnce() -> Result<(), ApiError>,
) -> Result<String, ApiError> {
    let hash = token::hash(token);
    if let Some(user) = cache.get(&hash) {
        return Ok(user);
    }
    before_lookup()?;
    let generation = cache.generation();
    let user = storage.user_for_token(&hash, with_dev).await?.ok_or_else(ApiError::unauthorized)?;
    cache.put(hash, user.clone(), generation);
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseConfig, ServerConfig};
    use crate::storage::{self, EventHub, StorageOptions};

    /// Random tokens used to be remembered as "unknown" beside the valid ones; once the cache
    /// was full it was emptied, valid tokens included, so every flood of random tokens sent
    /// every user's next request to the database.
    #[tokio::test]
    async fn unknown_tokens_do_not_push_valid_tokens_out_of_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let database = DatabaseConfig::Sqlite(dir.path().join("cache.sqlite3"));
        let token = admin::create_token(&database, "alice").await.unwrap();
        let options = StorageOptions::from_config(&ServerConfig::with_database(database.clone()));
        let storage = storage::open(&database, &options, EventHub::new()).await.unwrap();
        let cache = TokenCache::with_capacity(8);
        let lookups = std::cell::Cell::new(0);
        let count = || {
            lookups.set(lookups.get() + 1);
            Ok(())
        };

        let user = user_for_token(&cache, &*storage, &token, false, count).await.unwrap();
        assert_eq!((user.as_str(), lookups.get()), ("alice", 1));
        for n in 0..100 {
            let random = format!("not-a-token-{n}");
            let refused = user_for_token(&cache, &*storage, &random, false, count).await;
            assert_eq!(refused.unwrap_err().code(), persist_protocol::ErrorCode::Unauthorized);
        }
        assert_eq!(lookups.get(), 101);
        user_for_token(&cache, &*storage, &token, false, count).await.unwrap();
        assert_eq!(
            lookups.get(),
            101,
            "alice's token was looked up again: pushed out of the cache"
        );

        // A refused lookup is answered with the caller's error, storage not asked.
        let refused =
            user_for_token(&cache, &*storage, "another", false, || Err(ApiError::rate_limited(1)))
                .await;
        assert_eq!(refused.unwrap_err().code(), persist_protocol::ErrorCode::RateLimited);
        storage.close().await;
    }
}
