use serde::{Deserialize, Serialize};

/// Stable, machine-readable error codes. The wire form is snake_case (`"payload_too_large"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON or not of the expected shape (400).
    MalformedJson,
    /// A required field is missing, e.g. the CodeForge storage API's `value` (400).
    MissingField,
    /// A value is outside what the protocol accepts: bad key, too many ops... (400).
    InvalidInput,
    /// No or an unknown bearer token (401).
    Unauthorized,
    /// The token is valid but may not do this (403).
    Forbidden,
    /// The key or route does not exist (404).
    NotFound,
    /// The method is not allowed on this route (405).
    MethodNotAllowed,
    /// The body or a value is larger than the configured limit (413).
    PayloadTooLarge,
    /// The user sent more requests than the rate limit allows, or opened more event streams than
    /// the per-user or server-wide cap allows; the message says which (429).
    RateLimited,
    /// The request took longer than the server's limit to arrive and be answered (408). Safe to
    /// retry: a push is applied once however often it is sent.
    RequestTimeout,
    /// The server is shutting down or its database is unavailable (503).
    Unavailable,
    /// A bug or an unexpected storage failure (500).
    Internal,
    /// The write would take the user past their quota of live records or of stored value bytes
    /// (507). Not transient: it succeeds only once the user has deleted enough.
    QuotaExceeded,
}

impl ErrorCode {
    /// The HTTP status code that goes with this error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::MissingField | ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::QuotaExceeded => 507,
        }
    }

    /// `true` when retrying the same request later may succeed (408, 429, 503, 500).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RequestTimeout
                | ErrorCode::RateLimited
                | ErrorCode::Unavailable
                | ErrorCode::Internal
        )
    }
}

/// The JSON body of every error answer: `{"error": "<message>", "code": "<code>"}`. The `error`
/// field keeps the CodeForge storage API's shape, so old clients read it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message (CodeForge's messages where its API had one).
    pub error: String,
    /// Stable machine-readable code.
    pub code: ErrorCode,
}

impl ErrorBody {
    /// An error body with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: message.into(), code }
    }
}
