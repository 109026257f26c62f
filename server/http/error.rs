//! Errors as HTTP answers: the status of every registry code, the one body
//! shape (`{"error":{"code","message"}}`) and the OpenAPI description of
//! that shape with every code it can carry.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Code, Error};

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

/// The HTTP status a code answers with.
pub fn status(code: Code) -> StatusCode {
    use Code::*;
    match code {
        MalformedJson | UnreadableBody | InvalidPath | InvalidQuery | UploadIncomplete => {
            StatusCode::BAD_REQUEST
        }
        Unauthorized | InvalidCredentials => StatusCode::UNAUTHORIZED,
        StoreKeyRequired | UserTokenRequired | RoleForbidden | CsrfFailed | Forbidden
        | ClipForbidden | LeaseNotHeld | UserDisabled | LabelerPaused => StatusCode::FORBIDDEN,
        NotFound | UnknownSession | UnknownStore | UnknownClip | ClipNotReady | UnknownTask
        | UnknownGold | UnknownExport | UnknownExportFile | UnknownDispute | UnknownUser
        | UnknownDelivery => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ClipErased => StatusCode::GONE,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        EventConflict | SessionFinalized | SessionAlreadyExited | TooManyLeases | LeaseExpired
        | LeaseYielded | VerdictConflict | TaskNotEscalated | TaskIsGold | TaskNotResolved
        | AlreadyGold | ReceiptNotFinal | DisputeOpen | NotCorrectable | OwnAccount
        | UserExists | DeliveryNotDead => StatusCode::CONFLICT,
        BodyTooLarge | UploadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        InvalidBody | TooManyProducts | InvalidName | InvalidPrice | DuplicateSku | EmptyBatch
        | BatchTooLarge | InvalidId | InvalidKind | InvalidQuantity | InvalidTimestamp
        | TooManyCandidates | InvalidConfidence | DuplicateCandidate | TooManyClips
        | DuplicateClip | InvalidWindow | InvalidAccuracy | UnknownSku | UnknownClipInEvent
        | MissingStoreId | MissingCameraId | MissingFootageStart | EmptyFile | NotVideo
        | Truncated | NoVideoStream | UnsupportedCodec | CorruptVideo | DimensionsTooLarge
        | DurationTooLong | MediaCrashed | MissingAction | MissingSku | MissingQuantity
        | NoteTooLong | CantTellNotAllowed | InvalidPolicy | InvalidDays | InvalidTarget
        | InvalidSimulation | InvalidDate | InvalidExport | TrainingNotAllowed
        | SkuNotOnReceipt | ReasonTooLong | InvalidStores | InvalidRetention | InvalidUsername
        | InvalidWebhookUrl | NoWebhookUrl | InvalidWait => StatusCode::UNPROCESSABLE_ENTITY,
        TooManyAttempts | TooManyUploads => StatusCode::TOO_MANY_REQUESTS,
        StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Writes an error answer with the code's status.
pub fn error_response(code: Code, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_string(),
            message: message.to_string(),
        },
    };
    (status(code), Json(body)).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Client { code, message } => error_response(*code, message),
            Error::Throttled {
                code,
                message,
                retry_after_s,
            } => {
                let mut response = error_response(*code, message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
                response
            }
            Error::Database(e) => match self.code() {
                Code::Unavailable => {
                    tracing::warn!(error = %e, "database busy");
                    error_response(Code::Unavailable, "the database is busy; retry shortly")
                }
                _ => {
                    tracing::error!(error = %e, "database error");
                    internal()
                }
            },
            Error::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                internal()
            }
        }
    }
}

fn internal() -> Response {
    error_response(
        Code::InternalError,
        "an internal error occurred; it has been logged",
    )
}

/// Lists every registry code as the `enum` of `ErrorDetail.code` in the
/// OpenAPI document; applied once every route (and so `ErrorDetail`) is in it.
pub struct ErrorCodes;

impl utoipa::Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let detail = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("ErrorDetail"));
        let Some(RefOr::T(Schema::Object(detail))) = detail else {
            panic!("the OpenAPI document has no ErrorDetail schema to list the codes in");
        };
        let Some(RefOr::T(Schema::Object(code))) = detail.properties.get_mut("code") else {
            panic!("ErrorDetail has no code property");
        };
        code.enum_values = Some(spellings().map(serde_json::Value::from).collect());
    }
}

/// Every code's spelling once, in the registry's order.
pub fn spellings() -> impl Iterator<Item = &'static str> {
    let mut seen = std::collections::HashSet::new();
    Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(move |s| seen.insert(*s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_answers_with_a_client_or_server_error_status() {
        for &code in Code::ALL {
            let s = status(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code}: {s}");
        }
        assert_eq!(status(Code::LeaseExpired), StatusCode::CONFLICT);
        assert_eq!(status(Code::TooManyAttempts), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn a_shared_spelling_means_different_statuses() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            assert!(
                seen.insert((code.as_str(), status(code))),
                "{code} with {} twice",
                status(code)
            );
        }
        assert_eq!(status(Code::UnknownClip), StatusCode::NOT_FOUND);
        assert_eq!(
            status(Code::UnknownClipInEvent),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn server_faults_are_exactly_the_internal_and_busy_codes() {
        // `storage-full` is the one 5xx a client causes: 507 says the
        // store's quota is used up (retrying the same upload cannot help,
        // unlike a fault of ours).
        let server: Vec<Code> = Code::ALL
            .iter()
            .copied()
            .filter(|c| status(*c).is_server_error() && *c != Code::StorageFull)
            .collect();
        assert_eq!(server, [Code::InternalError, Code::Unavailable]);
        assert_eq!(status(Code::StorageFull), StatusCode::INSUFFICIENT_STORAGE);
    }

    #[test]
    fn spellings_list_each_code_once() {
        let all: Vec<&str> = spellings().collect();
        assert_eq!(all.len(), Code::ALL.len() - 1);
        assert_eq!(all.iter().filter(|s| **s == "unknown-clip").count(), 1);
    }
}
