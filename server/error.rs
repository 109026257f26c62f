//! The one error type of request handling, in no protocol's terms.
//!
//! A refusal carries a registry [`Code`] and a message meant for the caller;
//! which HTTP status that code answers with is decided only at the HTTP edge
//! ([`crate::http::error`]), so the database layer and the jobs can refuse
//! without knowing they are behind HTTP. Database and internal errors are
//! logged in full and answered with a generic message: their text can hold
//! SQL, file paths or secrets, and a client can do nothing with it anyway.

pub use crate::domain::code::Code;
use crate::media::{MediaCode, MediaError};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's fault, or a state the caller must handle.
    #[error("{code}: {message}")]
    Client {
        /// Stable code.
        code: Code,
        /// Explanation for the caller.
        message: String,
    },
    /// Too many attempts: the caller may retry after `retry_after_s`.
    #[error("{code}: {message}")]
    Throttled {
        /// Stable code.
        code: Code,
        /// Explanation for the caller.
        message: String,
        /// Seconds until a retry can succeed.
        retry_after_s: i64,
    },
    /// A database failure; details are logged, never sent.
    #[error(transparent)]
    Database(#[from] crate::db::Error),
    /// Anything else unexpected; details are logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of request handling.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal with its code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error::Client {
            code,
            message: message.into(),
        }
    }

    /// The refusal for a store id that names no store.
    pub fn unknown_store(store_id: &str) -> Error {
        Error::new(Code::UnknownStore, format!("no store {store_id:?}"))
    }

    /// The code the caller gets: the refusal's own, `unavailable` for a busy
    /// database, `internal-error` for anything else.
    pub fn code(&self) -> Code {
        match self {
            Error::Client { code, .. } | Error::Throttled { code, .. } => *code,
            Error::Database(e) if e.is_busy() => Code::Unavailable,
            Error::Database(_) | Error::Internal(_) => Code::InternalError,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Database(e.into())
    }
}

impl From<crate::domain::event::EventError> for Error {
    fn from(e: crate::domain::event::EventError) -> Error {
        Error::new(e.code, e.message)
    }
}

/// A media failure: the uploader's fault answers with the media code, ours
/// is an internal error.
impl From<MediaError> for Error {
    fn from(e: MediaError) -> Error {
        match media_code(e.code) {
            Some(code) => Error::new(code, e.message),
            None => Error::Internal(anyhow::anyhow!("media: {e}")),
        }
    }
}

/// The registry code of a media failure the uploader caused; `None` for
/// failures on our side. One exhaustive match: a new media code does not
/// compile until it is placed here, and the test below proves that exactly
/// the codes of the uploader's fault have a registry code.
fn media_code(code: MediaCode) -> Option<Code> {
    Some(match code {
        MediaCode::EmptyFile => Code::EmptyFile,
        MediaCode::NotVideo => Code::NotVideo,
        MediaCode::Truncated => Code::Truncated,
        MediaCode::NoVideoStream => Code::NoVideoStream,
        MediaCode::UnsupportedCodec => Code::UnsupportedCodec,
        MediaCode::CorruptVideo => Code::CorruptVideo,
        MediaCode::DimensionsTooLarge => Code::DimensionsTooLarge,
        MediaCode::DurationTooLong => Code::DurationTooLong,
        MediaCode::InvalidWindow => Code::InvalidWindow,
        MediaCode::Timeout
        | MediaCode::Cancelled
        | MediaCode::InvalidOptions
        | MediaCode::IoError
        | MediaCode::EncodeFailed
        | MediaCode::Crashed
        | MediaCode::Internal => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_media_code_of_the_uploaders_fault_keeps_its_code() {
        for &media in MediaCode::ALL {
            let e = Error::from(MediaError::new(media, "m"));
            assert_eq!(media_code(media).is_some(), media.client_fault(), "{media}");
            if media.client_fault() {
                assert_eq!(e.code().as_str(), media.as_str(), "{media}");
                assert!(matches!(e, Error::Client { .. }), "{media}");
            } else {
                assert_eq!(e.code(), Code::InternalError, "{media}");
            }
        }
    }

    #[test]
    fn event_errors_keep_their_code_and_message() {
        let e = Error::from(crate::domain::event::check_id("sku", "").unwrap_err());
        assert_eq!(e.code(), Code::InvalidId);
        assert_eq!(
            e.to_string(),
            "invalid-id: sku must be 1 to 128 printable characters"
        );
    }
}
