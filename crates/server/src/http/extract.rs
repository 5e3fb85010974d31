//! Request extractors: who is asking. They live beside the router's state so that `auth` (token
//! lookups, caching) never needs to know about [`AppState`].

use std::convert::Infallible;
use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use persist_protocol::ErrorCode;

use super::{peer_address, AppState};
use crate::auth::bearer;
use crate::error::ApiError;

/// The client's address, when the request came through `connections::serve`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(peer_address(&parts.extensions)))
    }
}

/// An authenticated, rate-limited user: the namespace a request works on.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = peer_address(&parts.extensions);
        let user = state.authenticate(bearer(&parts.headers), peer).await?;
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
        let peer = peer_address(&parts.extensions);
        let user = match (bearer(&parts.headers), &state.config.codeforge_anonymous_user) {
            (None, Some(anonymous)) if !parts.headers.contains_key(header::AUTHORIZATION) => {
                check_anonymous(parts, state)?;
                anonymous.clone()
            }
            (token, _) => state.authenticate(token, peer).await?,
        };
        state.limiter.check(&user)?;
        Ok(CodeForgeUser(user))
    }
}

/// What an anonymous CodeForge request must show, since no token proves it comes from the user's
/// own client (cross-site request forgery): a write (`POST`, `PUT`) has
/// `Content-Type: application/json`, which no page of another site can send without a CORS
/// preflight, and a request with an `Origin` comes from this server's own origin or one of the
/// CORS origins (any loopback origin in dev mode).
fn check_anonymous(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let forbidden = |message: &str| Err(ApiError::new(ErrorCode::Forbidden, message));
    if matches!(parts.method, Method::POST | Method::PUT) && !is_json(&parts.headers) {
        return forbidden(
            "anonymous CodeForge writes need Content-Type: application/json (or a bearer token)",
        );
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts.headers.get(header::HOST).and_then(|host| host.to_str().ok());
        let own = origin
            .to_str()
            .ok()
            .and_then(origin_host)
            .zip(host)
            .is_some_and(|(origin, host)| origin.eq_ignore_ascii_case(host));
        if !own && !super::origin_allowed(&state.config, origin) {
            return forbidden(
                "anonymous CodeForge requests are accepted only from this server's origin and \
                 its CORS origins (or with a bearer token)",
            );
        }
    }
    Ok(())
}

/// Whether the body is declared JSON (`application/json`, parameters such as `charset` allowed).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The `host[:port]` of an origin such as `https://app.example:8443`.
fn origin_host(origin: &str) -> Option<&str> {
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{is_json, origin_host};

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("text/plain; application/json"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn origin_hosts() {
        assert_eq!(origin_host("https://app.example:8443"), Some("app.example:8443"));
        assert_eq!(origin_host("http://127.0.0.1:5001"), Some("127.0.0.1:5001"));
        assert_eq!(origin_host("null"), None);
    }
}
