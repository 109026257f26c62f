//! The one error type of request handling, turned into a response only at the
//! HTTP edge.
//!
//! Client errors carry a stable kebab-case code and a message meant for the
//! caller. Database and internal errors are logged in full and answered with a
//! generic message: their text can hold SQL, file paths or secrets, and a
//! client can do nothing with it anyway.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The code and message of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `lease-expired`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's fault, or a state the caller must handle.
    #[error("{code}: {message}")]
    Client {
        /// HTTP status.
        status: StatusCode,
        /// Stable code.
        code: &'static str,
        /// Explanation for the caller.
        message: String,
    },
    /// Too many attempts: 429 with `Retry-After`.
    #[error("{code}: {message}")]
    Throttled {
        /// Stable code.
        code: &'static str,
        /// Explanation for the caller.
        message: String,
        /// Seconds until a retry can succeed.
        retry_after_s: i64,
    },
    /// A database failure; details are logged, never sent.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected; details are logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of request handling.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A client error with status, code and message.
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Error {
        Error::Client {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Error {
        Error::client(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Error {
        Error::client(StatusCode::NOT_FOUND, code, message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::client(StatusCode::CONFLICT, code, message)
    }

    /// 422.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Error {
        Error::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Error {
        Error::client(StatusCode::FORBIDDEN, code, message)
    }

    /// The stable code, for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Client { code, .. } | Error::Throttled { code, .. } => code,
            Error::Database(e) if is_busy(e) => "unavailable",
            Error::Database(_) | Error::Internal(_) => "internal-error",
        }
    }
}

/// A database that is overloaded or restarting: worth retrying, not a bug.
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
        || e.as_database_error()
            .is_some_and(|d| d.message().contains("database is locked"))
}

impl From<crate::domain::event::EventError> for Error {
    fn from(e: crate::domain::event::EventError) -> Error {
        Error::unprocessable(e.code, e.message)
    }
}

/// Writes an error answer.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Client {
                status,
                code,
                message,
            } => error_response(*status, code, message),
            Error::Throttled {
                code,
                message,
                retry_after_s,
            } => {
                let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, code, message);
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(*retry_after_s),
                );
                response
            }
            Error::Database(e) if is_busy(e) => {
                tracing::warn!(error = %e, "database busy");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is busy; retry shortly",
                )
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                internal()
            }
            Error::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                internal()
            }
        }
    }
}

fn internal() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "an internal error occurred; it has been logged",
    )
}
