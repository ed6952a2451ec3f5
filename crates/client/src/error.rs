//! The client's one error type, [`ClientError`].
//!
//! It separates what the server *said* (an [`Api`](ClientError::Api) error from a non-2xx HTTP
//! answer, a [`Frame`](ClientError::Frame) error from an `error` WebSocket frame, a
//! [`Closed`](ClientError::Closed) socket with its close code) from what went wrong on the way
//! (transport, decoding, timeouts), so tests can assert on exact statuses and codes.

use chatnode_protocol::{ErrorBody, ErrorCode};

/// Result alias used throughout the crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How much of an unexpected body is kept in error messages.
const SNIPPET_CHARS: usize = 500;

/// Everything that can go wrong talking to a ChatNode server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A non-2xx HTTP answer. `code` and `message` come from the contract's body
    /// `{"error":{"code","message"}}` (a code newer than this client is
    /// [`ErrorCode::Unknown`]); when the body has another shape (a proxy's error page, say),
    /// `code` is `None` and `message` holds the start of the body.
    #[error("HTTP {status} {}: {message}", .code.map_or("(no error code)", ErrorCode::as_str))]
    Api {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
    },
    /// An `error` frame on the WebSocket (`{"type":"error","client_id"?,"code","message"}`).
    #[error("server error frame {code}: {message}")]
    Frame {
        client_id: Option<String>,
        code: ErrorCode,
        message: String,
    },
    /// The HTTP transport failed (connection refused, reset, timeout, ...).
    #[error("HTTP transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// The WebSocket transport failed (handshake, I/O, protocol violation).
    #[error("WebSocket error: {0}")]
    Ws(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// A body or frame did not have the expected shape.
    #[error("cannot decode {0}")]
    Decode(String),
    /// The WebSocket is closed; `code` is the close code the server sent, if any
    /// (4001 unauthenticated, 4008 too slow, 1001 shutdown, ...).
    #[error("WebSocket closed (code {code:?}): {reason}")]
    Closed { code: Option<u16>, reason: String },
    /// Nothing arrived in time (an `ack`, `ready`, `synced`, a close, ...).
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// An authenticated call was made without an access token (or a refresh without a
    /// refresh token).
    #[error("no {0} token: log in first")]
    NoToken(&'static str),
    /// The base URL or a path could not be turned into a URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The HTTP status of an [`Api`](ClientError::Api) error (or of a transport error that
    /// carries one).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The contract's error code of an [`Api`](ClientError::Api) or
    /// [`Frame`](ClientError::Frame) error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => *code,
            ClientError::Frame { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The close code of a [`Closed`](ClientError::Closed) error.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the server refused our credentials: HTTP 401, an `unauthenticated` error
    /// frame, or close code 4001.
    pub fn is_unauthenticated(&self) -> bool {
        match self {
            ClientError::Api { status, .. } => *status == 401,
            ClientError::Frame { code, .. } => *code == ErrorCode::Unauthenticated,
            ClientError::Closed { code, .. } => {
                *code == Some(chatnode_protocol::close_code::UNAUTHENTICATED)
            }
            _ => false,
        }
    }

    /// Builds an [`Api`](ClientError::Api) error from a status and a raw body, falling back
    /// gracefully when the body is not the contract's error shape.
    pub fn from_response(status: u16, body: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => ClientError::Api {
                status,
                code: Some(b.error.code),
                message: b.error.message,
            },
            Err(_) => ClientError::Api {
                status,
                code: None,
                message: snippet(body),
            },
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as E;
        match e {
            // A refused upgrade is an HTTP answer: report it like any other.
            E::Http(resp) => {
                let status = resp.status().as_u16();
                ClientError::from_response(status, resp.body().as_deref().unwrap_or_default())
            }
            other => ClientError::Ws(Box::new(other)),
        }
    }
}

/// The start of a body, lossily decoded, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_error_body() {
        let e = ClientError::from_response(
            409,
            br#"{"error":{"code":"email_taken","message":"that email is in use"}}"#,
        );
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.code(), Some(ErrorCode::EmailTaken));
        match e {
            ClientError::Api { message, .. } => assert_eq!(message, "that email is in use"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_code_newer_than_this_client_is_unknown_not_a_decode_failure() {
        let e = ClientError::from_response(
            400,
            br#"{"error":{"code":"invalid_username","message":"bad","field":"username"}}"#,
        );
        assert_eq!(e.code(), Some(ErrorCode::Unknown));
        assert_eq!(e.status(), Some(400));
        assert!(e.to_string().contains("bad"), "{e}");
    }

    #[test]
    fn falls_back_on_other_bodies() {
        let e = ClientError::from_response(502, b"Bad Gateway");
        assert_eq!(e.status(), Some(502));
        assert_eq!(e.code(), None);
        assert!(e.to_string().contains("Bad Gateway"), "{e}");

        let e = ClientError::from_response(404, b"");
        assert_eq!((e.status(), e.code()), (Some(404), None));

        // JSON, but not the contract's shape.
        let e = ClientError::from_response(400, br#"{"message":"nope"}"#);
        assert_eq!(e.code(), None);
        assert!(e.to_string().contains("nope"));
    }

    #[test]
    fn snippet_is_bounded_and_lossy() {
        let long = vec![b'a'; 10_000];
        let s = snippet(&long);
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
        assert_eq!(snippet(&[0xff, b'x']), "\u{fffd}x");
    }

    #[test]
    fn unauthenticated_detection() {
        assert!(ClientError::from_response(401, b"").is_unauthenticated());
        assert!(
            ClientError::Closed {
                code: Some(4001),
                reason: String::new()
            }
            .is_unauthenticated()
        );
        assert!(
            ClientError::Frame {
                client_id: None,
                code: ErrorCode::Unauthenticated,
                message: String::new()
            }
            .is_unauthenticated()
        );
        assert!(!ClientError::from_response(403, b"").is_unauthenticated());
        assert_eq!(
            ClientError::Closed {
                code: Some(4008),
                reason: String::new()
            }
            .close_code(),
            Some(4008)
        );
    }
}
