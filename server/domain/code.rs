//! The registry of every error code Recount answers with.
//!
//! A refusal anywhere — an event check here in the domain, a lease check in
//! the database layer, a bad header at the HTTP edge — names one [`Code`]
//! from this table, so the codes clients branch on are written down once,
//! with what each means. Which HTTP status a code answers with is decided
//! only at the HTTP edge (`crate::http::error::status`), so no layer below
//! it speaks HTTP.
//!
//! One spelling, `unknown-clip`, names two codes: a clip asked for by its
//! address that does not exist (404), and an event that names a clip the
//! store does not have (422). Both answers are part of the published API.

use std::fmt;

macro_rules! codes {
    ($( $name:ident = $code:literal, $meaning:literal; )*) => {
        /// A stable, kebab-case error code: what went wrong, for programs to
        /// branch on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(
                #[doc = $meaning]
                $name,
            )*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The code as clients see it, e.g. `lease-expired`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $code,)*
                }
            }

            /// When a request gets this code, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$name => $meaning,)*
                }
            }
        }
    };
}

codes! {
    // Who is calling.
    Unauthorized = "unauthorized",
        "no key or token, an unreadable or malformed `Authorization` header, or an unknown, rotated or expired key or token";
    InvalidCredentials = "invalid-credentials",
        "unknown username or wrong password (the same answer for both)";
    UserDisabled = "user-disabled",
        "the password is right but an admin disabled the user";
    UnknownUser = "unknown-user",
        "no user has this login name";
    OwnAccount = "own-account",
        "nobody disables their own account";
    InvalidRetention = "invalid-retention",
        "a store's `media_retention_days` outside 1 to 3650";
    UserExists = "user-exists",
        "a person with this login name exists already";
    InvalidUsername = "invalid-username",
        "a login name must be 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit";
    LabelerPaused = "labeler-paused",
        "a supervisor (or the gold-accuracy floor) paused the caller from the queue";
    InvalidWebhookUrl = "invalid-webhook-url",
        "a webhook URL that is not http(s) with a host, or carries a user name or password";
    NoWebhookUrl = "no-webhook-url",
        "a test delivery to a store that has no webhook URL";
    UnknownDelivery = "unknown-delivery",
        "no receipt delivery of this id for this store";
    DeliveryNotDead = "delivery-not-dead",
        "only a delivery that gave up (dead) is sent again";
    InvalidStores = "invalid-stores",
        "a store assignment names a store that does not exist or that the caller does not cover, or both `all_stores` and stores";
    TooManyAttempts = "too-many-attempts",
        "too many failed sign-ins for this username or address; `Retry-After` gives the seconds to wait";
    StoreKeyRequired = "store-key-required",
        "a user token was sent to a store endpoint";
    UserTokenRequired = "user-token-required",
        "a store key was sent to a queue, supervisor or admin endpoint";
    RoleForbidden = "role-forbidden",
        "the user's role is not allowed on this endpoint";
    CsrfFailed = "csrf-failed",
        "a request authenticated by the session cookie changes state without the page's CSRF token";
    Forbidden = "forbidden",
        "a labeler asked for the dashboard's live body, which is for supervisors only";

    // The request itself.
    NotFound = "not-found",
        "no such path, or no such static file";
    MethodNotAllowed = "method-not-allowed",
        "the path exists but not with this method";
    InvalidPath = "invalid-path",
        "a path segment is not valid (for example not UTF-8 after percent-decoding)";
    InvalidQuery = "invalid-query",
        "a malformed query string (for example `?limit=abc`)";
    MalformedJson = "malformed-json",
        "the body is not valid JSON";
    UnreadableBody = "unreadable-body",
        "the body could not be read";
    RequestTimeout = "request-timeout",
        "the request took longer than `request_timeout_ms`, or its body paused longer than `body_idle_timeout_ms`";
    BodyTooLarge = "body-too-large",
        "the JSON body is larger than `json_body_limit`";
    UnsupportedMediaType = "unsupported-media-type",
        "the `Content-Type` is not the one the endpoint reads (`application/json`, or `video/*` for uploads)";
    InvalidBody = "invalid-body",
        "valid JSON of the wrong shape: a missing or unknown field, a wrong type, an unknown enum value";

    // Catalog, events, sessions and receipts.
    TooManyProducts = "too-many-products",
        "more products in one catalog upload than allowed";
    InvalidName = "invalid-name",
        "a product name is blank or too long";
    InvalidPrice = "invalid-price",
        "a product price is negative";
    DuplicateSku = "duplicate-sku",
        "the same sku appears twice in one catalog upload";
    EmptyBatch = "empty-batch",
        "an empty array of events";
    BatchTooLarge = "batch-too-large",
        "more events in one batch than `max_batch_events`";
    InvalidId = "invalid-id",
        "an identifier (event, session, sku, camera, model version) is empty, too long or has control characters";
    InvalidKind = "invalid-kind",
        "an event's `kind` is not `pick` or `return`";
    InvalidQuantity = "invalid-quantity",
        "a quantity outside 1 to 1000";
    InvalidTimestamp = "invalid-timestamp",
        "a time that is not RFC 3339";
    TooManyCandidates = "too-many-candidates",
        "an event ranks more candidates than allowed";
    InvalidConfidence = "invalid-confidence",
        "a candidate's confidence outside `[0, 1]`";
    DuplicateCandidate = "duplicate-candidate",
        "the same sku twice among an event's candidates";
    TooManyClips = "too-many-clips",
        "an event names more clips and camera windows than allowed";
    DuplicateClip = "duplicate-clip",
        "an event names the same clip twice";
    InvalidWindow = "invalid-window",
        "a camera window that does not end after it starts or is too long, or a cut outside the clip";
    InvalidAccuracy = "invalid-accuracy",
        "a camera window's `accuracy` other than `keyframe` or `frame`";
    UnknownSku = "unknown-sku",
        "a sku that is not in the store's catalog";
    UnknownClipInEvent = "unknown-clip",
        "an event names a clip id that is not a clip of the caller's store";
    EventConflict = "event-conflict",
        "the `event_id` was already received with different content";
    SessionFinalized = "session-finalized",
        "the session's receipt is already final";
    SessionAlreadyExited = "session-already-exited",
        "the session already exited at another time";
    UnknownSession = "unknown-session",
        "no such session in this store";
    MissingStoreId = "missing-store-id",
        "a supervisor or admin did not name the store (`?store_id=`)";
    UnknownStore = "unknown-store",
        "no such store";

    // Uploads and media.
    UploadTooLarge = "upload-too-large",
        "the declared or received size of an upload exceeds `max_upload_bytes`";
    TooManyUploads = "too-many-uploads",
        "the store already sends `store_max_concurrent_uploads` uploads to this instance; `Retry-After` gives the seconds to wait";
    StorageFull = "storage-full",
        "the store's uploaded video would exceed `store_max_stored_bytes`";
    UploadIncomplete = "upload-incomplete",
        "the upload ended before its declared length";
    MissingCameraId = "missing-camera-id",
        "an upload without an `X-Camera-Id` header, or with an empty one";
    MissingFootageStart = "missing-footage-start",
        "a footage upload without its `X-Footage-Start` header";
    EmptyFile = "empty-file",
        "the uploaded file has no bytes";
    NotVideo = "not-video",
        "the upload is not a video container Recount reads (text, an image, a playlist…)";
    Truncated = "truncated",
        "the file ends before its index or frame data does: it was cut short";
    NoVideoStream = "no-video-stream",
        "a container without a video stream (audio or subtitles only)";
    UnsupportedCodec = "unsupported-codec",
        "a video codec outside the accepted list";
    CorruptVideo = "corrupt-video",
        "frames that fail to decode, or a stream whose frames contradict its header";
    DimensionsTooLarge = "dimensions-too-large",
        "width, height or pixel count over the configured limits";
    DurationTooLong = "duration-too-long",
        "the video lasts longer than the configured limit";
    MediaCrashed = "media-crashed",
        "the upload ended the media worker each time it was read: it most likely crashes the decoder";
    UnknownClip = "unknown-clip",
        "no such clip, or (for a store) a clip of another store";
    ClipNotReady = "clip-not-ready",
        "the clip's video, filmstrip or poster does not exist (yet)";
    ClipForbidden = "clip-forbidden",
        "a labeler without a live lease on a task that shows the clip";
    ClipErased = "clip-erased",
        "the clip's video was deleted: past its store's retention, or on the shopper's request";
    RangeNotSatisfiable = "range-not-satisfiable",
        "a byte `Range` that lies past the end of the file";

    // The review queue.
    UnknownTask = "unknown-task",
        "no such task";
    TooManyLeases = "too-many-leases",
        "the caller already holds `max_leases_per_labeler` live leases";
    InvalidWait = "invalid-wait",
        "a claim's `wait_ms` is above 25000";
    LeaseExpired = "lease-expired",
        "the caller's latest lease on this task ran out; claim the next task";
    LeaseYielded = "lease-yielded",
        "the caller's lease on this audit was taken back because receipt work they may take is waiting; claim the next task";
    LeaseNotHeld = "lease-not-held",
        "the caller never held a lease on this task, released it or already answered it";
    MissingAction = "missing-action",
        "a verdict without `action` whose `cant_tell` is not true";
    MissingSku = "missing-sku",
        "`pick` or `return` without `sku`";
    MissingQuantity = "missing-quantity",
        "`pick` or `return` without `quantity` on a blind task (its event's quantity is not shown, so it is not assumed)";
    NoteTooLong = "note-too-long",
        "a verdict's `note` is too long";
    VerdictConflict = "verdict-conflict",
        "the caller already answered this task differently";
    TaskNotEscalated = "task-not-escalated",
        "the task is not escalated (for example already resolved)";
    CantTellNotAllowed = "cant-tell-not-allowed",
        "a supervisor's resolution must give an action";
    InvalidPolicy = "invalid-policy",
        "a routing policy value out of range";

    // Receipts after finalization: corrections and disputes.
    ReceiptNotFinal = "receipt-not-final",
        "a dispute of a receipt that is not final yet";
    SkuNotOnReceipt = "sku-not-on-receipt",
        "a dispute names a sku the final receipt has no line for";
    DisputeOpen = "dispute-open",
        "a dispute of the same receipt line is still open";
    ReasonTooLong = "reason-too-long",
        "a dispute's `reason` is too long";
    UnknownDispute = "unknown-dispute",
        "no such dispute (or one of another store)";
    NotCorrectable = "not-correctable",
        "a correction of a task that is not resolved, or of a dispute or gold copy (correct the receipt by its dispute instead)";

    // Gold tasks.
    UnknownGold = "unknown-gold",
        "no such gold task";
    TaskIsGold = "task-is-gold",
        "the task is itself a gold copy";
    TaskNotResolved = "task-not-resolved",
        "the task is not resolved, so it has no known label";
    AlreadyGold = "already-gold",
        "the task is already gold (retired ones included)";

    // Dashboard and exports.
    InvalidDays = "invalid-days",
        "`days` is not a whole number in the accepted range";
    InvalidTarget = "invalid-target",
        "the recommendation's `target` is not a number above 0 and below 1";
    InvalidSimulation = "invalid-simulation",
        "a what-if or replay names an unknown policy or setting, too many policies, a day size out of range, or days without events";
    InvalidDate = "invalid-date",
        "a date is not a calendar day written YYYY-MM-DD";
    InvalidExport = "invalid-export",
        "an export's share, agreement, time range or shard size is out of bounds";
    TrainingNotAllowed = "training-not-allowed",
        "a store named by an export is unknown or does not allow training use";
    UnknownExport = "unknown-export",
        "no such export";
    UnknownExportFile = "unknown-export-file",
        "the export has no finished file of that name";

    // Our side.
    InternalError = "internal-error",
        "an unexpected failure on Recount's side; the details are logged, never sent";
    Unavailable = "unavailable",
        "the database is busy or unreachable; retry shortly";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and logs compare a code with its spelling.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_kebab_case() {
        for code in Code::ALL {
            let s = code.as_str();
            assert!(
                !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{s}"
            );
            assert!(
                !s.starts_with('-') && !s.ends_with('-') && !s.contains("--"),
                "{s}"
            );
            assert!(!code.meaning().is_empty(), "{s} has no meaning");
        }
    }

    #[test]
    fn codes_are_unique_but_for_the_one_shared_spelling() {
        let mut seen = std::collections::HashMap::new();
        for &code in Code::ALL {
            if let Some(first) = seen.insert(code.as_str(), code) {
                assert_eq!(
                    (first, code),
                    (Code::UnknownClipInEvent, Code::UnknownClip),
                    "{} twice",
                    code.as_str()
                );
            }
        }
        assert_eq!(seen.len(), Code::ALL.len() - 1);
    }

    #[test]
    fn a_code_compares_equal_to_its_spelling_only() {
        assert_eq!(Code::LeaseExpired, "lease-expired");
        assert_ne!(Code::LeaseExpired, "lease-not-held");
        assert_eq!(Code::UnknownClipInEvent.to_string(), "unknown-clip");
    }
}
