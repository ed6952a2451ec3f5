//! One error type for the whole server, rendered as the contract's
//! `{"error": {"code", "message"}}` body.
//!
//! Domain code returns [`Error::Api`] for anything a client caused or may learn about; every
//! other failure is [`Error::Internal`], which is logged with its details and shown to the
//! client only as a generic 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatnode_protocol::{ApiError, ErrorBody, ErrorCode, ServerFrame};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{code}: {message}")]
    Api {
        code: ErrorCode,
        message: String,
        field: Option<&'static str>,
        retry_after: Option<u64>,
    },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Api {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    /// A 400 `invalid_request` about one request field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Api {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
            field: Some(field),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "authentication required")
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Error::Api {
            code: ErrorCode::RateLimited,
            message: "too many requests; slow down".into(),
            field: None,
            retry_after: Some(retry_after.max(1)),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The client-facing (code, message) pair; internal details are replaced.
    pub fn public(&self) -> (ErrorCode, String) {
        match self {
            Error::Api { code, message, .. } => (*code, message.clone()),
            Error::Internal(_) => (ErrorCode::Internal, "internal server error".into()),
        }
    }
}

/// What a client is told while the server's disk is full: nothing was written, nothing acked
/// is lost, and the server takes writes again by itself once there is room.
pub fn disk_full() -> Error {
    Error::Api {
        code: ErrorCode::Unavailable,
        message: "the server's disk is full; nothing was saved, try again later".into(),
        field: None,
        retry_after: Some(5),
    }
}

impl Error {
    /// A file system error: a full disk (ENOSPC, EDQUOT) is [`disk_full`], anything else
    /// internal.
    pub fn io(e: std::io::Error) -> Error {
        // ENOSPC and EDQUOT on Linux.
        if matches!(e.raw_os_error(), Some(28) | Some(122)) {
            tracing::warn!(error = %e, "disk full");
            return disk_full();
        }
        Error::Internal(anyhow::Error::new(e))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13); PostgreSQL's disk_full (53100).
        if let sqlx::Error::Database(db) = &e
            && matches!(db.code().as_deref(), Some("13") | Some("53100"))
        {
            tracing::warn!(error = %e, "database write refused: disk full");
            return disk_full();
        }
        Error::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Error::Internal(anyhow::Error::new(e).context("encryption at rest"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let (code, message) = self.public();
        let (field, retry_after) = match &self {
            Error::Api {
                field, retry_after, ..
            } => (field.map(str::to_owned), *retry_after),
            Error::Internal(_) => (None, None),
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ApiError {
                code,
                message,
                field,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The WebSocket `error` frame that answers a request, with the client's `client_id` when it had one.
pub fn error_frame(client_id: Option<String>, e: &Error) -> ServerFrame {
    if let Error::Internal(inner) = e {
        tracing::error!(error = %format!("{inner:#}"), "request failed");
    }
    let (code, message) = e.public();
    ServerFrame::Error {
        client_id,
        code,
        message,
    }
}
