//! The error shape of the contract: `{"error": {"code": "snake_case_code", "message": "..."}}`,
//! and the `code` of WebSocket `error` frames.
//!
//! [`ErrorCode`] is the closed list of codes this server emits; each has one HTTP status.
//! Clients branch on the enum, never on strings: the Rust client through this crate, the web
//! client through the generated `ErrorCode` union (`web/src/lib/protocol.gen.ts`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A snake_case error code. Codes may be added over time (a new code is an extension of the
/// contract); a client built against an older list decodes them as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
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
    /// 503: a dependency is unavailable (also: the server's disk is full).
    Unavailable,
    /// 400: a reaction that is not one emoji.
    InvalidEmoji,
    /// 400: a user may put at most 20 different emoji on one message.
    TooManyReactions,
    /// 403: the account is suspended (the message says why and until when).
    AccountSuspended,
    /// 403: registration is closed, or needs a valid invite code.
    RegistrationClosed,
    /// 413: an upload would pass the account's upload quota (the message has the numbers).
    QuotaExceeded,
    /// Any code this build does not know: a newer server may send codes added after this
    /// crate was built, and decoding such a body or frame must not fail. Branch on the codes
    /// you know and treat `Unknown` like a generic failure of the request (its `message`
    /// still says what happened).
    ///
    /// Decoding only: the server never sends it, so it is left out of the OpenAPI document
    /// and the TypeScript union, and serializing it is an error (re-encoding could not give
    /// back the code that was received).
    #[serde(other, skip_serializing)]
    #[ts(skip)]
    Unknown,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest | InvalidEmoji | TooManyReactions => 400,
            Unauthenticated => 401,
            Forbidden | NotFriends | Blocked | AccountSuspended | RegistrationClosed => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            Conflict | EmailTaken | PhoneTaken | UsernameTaken => 409,
            TooLarge | QuotaExceeded => 413,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            Internal | Unknown => 500,
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
            InvalidEmoji => "invalid_emoji",
            TooManyReactions => "too_many_reactions",
            AccountSuspended => "account_suspended",
            RegistrationClosed => "registration_closed",
            QuotaExceeded => "quota_exceeded",
            Unknown => "unknown",
        }
    }
}

impl ErrorCode {
    /// Every code the server may send (all but [`ErrorCode::Unknown`]).
    pub const ALL: [ErrorCode; 21] = {
        use ErrorCode::*;
        [
            InvalidRequest,
            Unauthenticated,
            Forbidden,
            NotFriends,
            Blocked,
            NotFound,
            MethodNotAllowed,
            Conflict,
            EmailTaken,
            PhoneTaken,
            UsernameTaken,
            TooLarge,
            UnsupportedMediaType,
            RateLimited,
            Internal,
            Unavailable,
            InvalidEmoji,
            TooManyReactions,
            AccountSuspended,
            RegistrationClosed,
            QuotaExceeded,
        ]
    };

    /// The code for a snake_case string; [`ErrorCode::Unknown`] for any other string (the same
    /// rule as decoding JSON).
    pub fn parse(s: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Unknown)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ApiError {
    /// A snake_case code; clients branch on it. Codes may be added over time.
    pub code: ErrorCode,
    /// Human-readable text; do not parse.
    pub message: String,
    /// For validation errors, the request field at fault (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_snake_case_strings_of_the_contract() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("unknown"), ErrorCode::Unknown);
    }

    #[test]
    fn an_unknown_code_decodes_and_keeps_the_rest_of_the_body() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":"added_in_v9","message":"a newer server","field":"x"}}"#,
        )
        .unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
        assert_eq!(body.error.message, "a newer server");
        assert_eq!(body.error.field.as_deref(), Some("x"));
        // Never re-encoded as a code that was not received.
        assert!(serde_json::to_string(&ErrorCode::Unknown).is_err());
    }
}
