//! Authentication: `Authorization: Bearer <token>` → the user whose namespace the request may
//! touch, with a short-lived cache of token lookups.

pub(crate) mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::http::AppState;

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

/// The user of a token, or 401.
pub(crate) async fn user_for_token(state: &AppState, token: &str) -> Result<String, ApiError> {
    let hash = token::hash(token);
    let user = match state.tokens.get(&hash) {
        Some(user) => user,
        None => {
            let generation = state.tokens.generation();
            let user = state.storage.user_for_token(&hash).await?;
            state.tokens.put(hash, user.clone(), generation);
            user
        }
    };
    user.ok_or_else(ApiError::unauthorized)
}

/// An authenticated, rate-limited user: the namespace a request works on.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let user = user_for_token(state, token).await?;
        state.limiter.check(&user)?;
        Ok(AuthUser(user))
    }
}

/// The user of a seed-API request: a bearer token as everywhere, or — only when
/// `--legacy-anonymous-user` is set and the request carries no `Authorization` header — that user.
#[derive(Debug, Clone)]
pub(crate) struct SeedUser(pub(crate) String);

impl FromRequestParts<AppState> for SeedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = match (bearer(&parts.headers), &state.config.legacy_anonymous_user) {
            (Some(token), _) => user_for_token(state, token).await?,
            (None, Some(anonymous)) if !parts.headers.contains_key(header::AUTHORIZATION) => {
                anonymous.clone()
            }
            _ => return Err(ApiError::unauthorized()),
        };
        state.limiter.check(&user)?;
        Ok(SeedUser(user))
    }
}
