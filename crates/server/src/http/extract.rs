//! Request extractors: who is asking. They live beside the router's state so that `auth` (token
//! lookups, caching) never needs to know about [`AppState`].

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::auth::bearer;
use crate::error::ApiError;

/// An authenticated, rate-limited user: the namespace a request works on.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let user = state.user_for_token(token).await?;
        state.limiter.check(&user)?;
        Ok(AuthUser(user))
    }
}

/// The user of a CodeForge storage API request: a bearer token as everywhere, or — only when
/// `--codeforge-anonymous-user` is set and the request carries no `Authorization` header — that
/// user.
#[derive(Debug, Clone)]
pub(crate) struct CodeForgeUser(pub(crate) String);

impl FromRequestParts<AppState> for CodeForgeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = match (bearer(&parts.headers), &state.config.codeforge_anonymous_user) {
            (Some(token), _) => state.user_for_token(token).await?,
            (None, Some(anonymous)) if !parts.headers.contains_key(header::AUTHORIZATION) => {
                anonymous.clone()
            }
            _ => return Err(ApiError::unauthorized()),
        };
        state.limiter.check(&user)?;
        Ok(CodeForgeUser(user))
    }
}
