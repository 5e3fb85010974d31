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

/// Token hash → user, remembered for [`CACHE_TTL`].
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// Bumped by [`TokenCache::clear`]: a lookup that started before a revocation must not put
    /// its (possibly stale) answer back afterwards.
    generation: AtomicU64,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Option<String>> {
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

    /// Remembers a lookup made at `generation`, unless the cache was cleared since.
    fn put(&self, hash: String, user: Option<String>, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CACHE_MAX {
            entries.clear();
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

/// The user of a token, or 401. Asks `storage` only when `cache` has no fresh answer. The
/// development token counts only `with_dev` (a server started with `--dev`).
pub(crate) async fn user_for_token(
    cache: &TokenCache,
    storage: &dyn Storage,
    token: &str,
    with_dev: bool,
) -> Result<String, ApiError> {
    let hash = token::hash(token);
    let user = match cache.get(&hash) {
        Some(user) => user,
        None => {
            let generation = cache.generation();
            let user = storage.user_for_token(&hash, with_dev).await?;
            cache.put(hash, user.clone(), generation);
            user
        }
    };
    user.ok_or_else(ApiError::unauthorized)
}
