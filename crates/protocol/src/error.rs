//! The error shape of the contract: `{"error": {"code": "snake_case_code", "message": "..."}}`.
//!
//! [`ErrorCode`] is the closed list of codes this server emits; each has one HTTP status.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed JSON, wrong types, missing or invalid fields.
    InvalidRequest,
    /// 401: no token, a bad or expired token, wrong login or password.
    Unauthenticated,
    /// 403: the caller may not do this.
    Forbidden,
    /// 403: a direct conversation or request needs a friendship.
    NotFriends,
    /// 403: one of the two people blocked the other.
    Blocked,
    /// 404: no such object, or the caller may not know it exists.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the state does not allow it (e.g. already friends).
    Conflict,
    /// 409: registration with an email, phone or username already in use.
    EmailTaken,
    PhoneTaken,
    UsernameTaken,
    /// 413: the body is larger than allowed.
    TooLarge,
    /// 415: the body is not JSON (or not an accepted media type).
    UnsupportedMediaType,
    /// 429: slow down; see `Retry-After`.
    RateLimited,
    /// 500: a fault of the server (never for bad input).
    Internal,
    /// 503: a dependency is unavailable.
    Unavailable,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest => 400,
            Unauthenticated => 401,
            Forbidden | NotFriends | Blocked => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict | EmailTaken | PhoneTaken | UsernameTaken => 409,
            TooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            NotFriends => "not_friends",
            Blocked => "blocked",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            EmailTaken => "email_taken",
            PhoneTaken => "phone_taken",
            UsernameTaken => "username_taken",
            TooLarge => "too_large",
            UnsupportedMediaType => "unsupported_media_type",
            RateLimited => "rate_limited",
            Internal => "internal",
            Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// A snake_case code; clients branch on it. Codes may be added over time.
    pub code: String,
    /// Human-readable text; do not parse.
    pub message: String,
    /// For validation errors, the request field at fault (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
