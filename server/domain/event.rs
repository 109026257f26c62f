//! Events as the store sends them, and the checks they must pass.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::code::Code;
use super::{time::parse_rfc3339_ms, Action};

/// Largest quantity one event may carry; more is a model fault, not a shopper.
pub const MAX_QUANTITY: i64 = 1000;
/// Most candidates one event may rank.
pub const MAX_CANDIDATES: usize = 50;
/// Most clips one event may reference.
pub const MAX_CLIPS: usize = 16;
/// Longest identifier (event, session, sku, camera) accepted.
pub const MAX_ID_LEN: usize = 128;

/// An identifier a store chooses (`event_id`, `session_id`, `sku`,
/// `camera_id`, `model_version`), as the OpenAPI document describes it: 1 to
/// [`MAX_ID_LEN`] characters, none of them a control character. A schema
/// only: the fields stay `String`, and [`check_id`] is the check.
pub struct ClientId;

/// What [`check_id`] refuses, as a JSON Schema pattern: any control
/// character (Unicode category Cc, which `char::is_control` tests).
pub const ID_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]+$";

impl utoipa::PartialSchema for ClientId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ID_LEN))
            .pattern(Some(ID_PATTERN))
            .description(Some(
                "An identifier the store chooses: 1 to 128 characters, no control characters",
            ))
            .into()
    }
}

impl ToSchema for ClientId {}

/// An event's kind, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum EventKind {
    /// The shopper took products.
    Pick,
    /// The shopper put products back.
    Return,
}

/// How exactly a camera window is cut, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum WindowAccuracy {
    /// From the keyframe at or before the window (the default).
    Keyframe,
    /// From the frame at the window's start.
    Frame,
}

/// One event as a store sends it to `POST /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The store's id for the event; replays with the same id are idempotent.
    #[schema(value_type = ClientId)]
    pub event_id: String,
    /// The store's id for the shopper's session.
    #[schema(value_type = ClientId)]
    pub session_id: String,
    /// `pick` or `return`.
    #[schema(value_type = EventKind)]
    pub kind: String,
    /// Units the model believes moved (1 to 1000).
    #[serde(deserialize_with = "super::whole::number")]
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
    /// When it happened, RFC 3339.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    /// Ranked guesses of the model, at most 50, each sku once.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub candidates: Vec<CandidateInput>,
    /// Clip ids (from `POST /api/v1/clips`) that show the event, each once;
    /// at most 16 clips and camera windows together.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub clips: Vec<String>,
    /// The model that produced the candidates.
    #[serde(default)]
    #[schema(value_type = Option<ClientId>)]
    pub model_version: Option<String>,
    /// Windows of camera footage (from `POST /api/v1/footage`) that show
    /// the event; Recount cuts a clip out of each.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub cameras: Vec<CameraWindowInput>,
}

/// A window of one camera's footage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraWindowInput {
    /// The camera.
    #[schema(value_type = ClientId)]
    pub camera_id: String,
    /// Start of the window, RFC 3339.
    #[schema(format = DateTime)]
    pub from: String,
    /// End of the window, RFC 3339: after `from`, at most 5 minutes later.
    #[schema(format = DateTime)]
    pub to: String,
    /// `keyframe` (default): a stream copy from the keyframe before `from`,
    /// fast and lossless; `frame`: re-encoded to start and end within one
    /// frame of the window.
    #[serde(default)]
    #[schema(value_type = Option<WindowAccuracy>)]
    pub accuracy: Option<String>,
}

/// A validated camera window, epoch ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraWindow {
    /// The camera.
    pub camera_id: String,
    /// Start, epoch ms.
    pub from: i64,
    /// End (exclusive), epoch ms.
    pub to: i64,
    /// Re-encode to cut within one frame of the window.
    pub frame_accurate: bool,
}

/// Longest camera window one event may ask for.
pub const MAX_WINDOW_MS: i64 = 5 * 60 * 1000;

/// One guess of the store's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateInput {
    /// Product sku from the store's catalog.
    #[schema(value_type = ClientId)]
    pub sku: String,
    /// Confidence in `[0, 1]`.
    #[schema(minimum = 0, maximum = 1)]
    pub confidence: f64,
}

/// An event that passed every check that needs no database.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    /// The store's id for the event.
    pub event_id: String,
    /// The store's id for the session.
    pub session_id: String,
    /// Pick or return.
    pub kind: Action,
    /// Units moved.
    pub quantity: i64,
    /// When, epoch ms.
    pub occurred_at: i64,
    /// Candidates in the order sent.
    pub candidates: Vec<CandidateInput>,
    /// Referenced clip ids.
    pub clips: Vec<String>,
    /// Model version, if sent.
    pub model_version: Option<String>,
    /// Camera windows to cut.
    pub cameras: Vec<CameraWindow>,
}

/// A refused event field: stable code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    /// Stable code.
    pub code: Code,
    /// Human explanation naming the field.
    pub message: String,
}

fn fail<T>(code: Code, message: impl Into<String>) -> Result<T, EventError> {
    Err(EventError {
        code,
        message: message.into(),
    })
}

/// Checks an identifier sent by a store: non-empty, bounded, printable.
pub fn check_id(field: &str, value: &str) -> Result<(), EventError> {
    // Characters, not bytes: the length the OpenAPI document states.
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_ID_LEN || value.chars().any(|c| c.is_control()) {
        return fail(
            Code::InvalidId,
            format!("{field} must be 1 to {MAX_ID_LEN} printable characters"),
        );
    }
    Ok(())
}

impl EventInput {
    /// Checks everything that needs no database.
    pub fn validate(&self) -> Result<ValidEvent, EventError> {
        check_id("event_id", &self.event_id)?;
        check_id("session_id", &self.session_id)?;
        let kind = match self.kind.as_str() {
            "pick" => Action::Pick,
            "return" => Action::Return,
            other => {
                return fail(
                    Code::InvalidKind,
                    format!("kind must be \"pick\" or \"return\", not {other:?}"),
                )
            }
        };
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return fail(
                Code::InvalidQuantity,
                format!(
                    "quantity must be between 1 and {MAX_QUANTITY}, not {}",
                    self.quantity
                ),
            );
        }
        let Some(occurred_at) = parse_rfc3339_ms(&self.occurred_at) else {
            return fail(
                Code::InvalidTimestamp,
                format!(
                    "occurred_at must be an RFC 3339 timestamp, not {:?}",
                    self.occurred_at
                ),
            );
        };
        if self.candidates.len() > MAX_CANDIDATES {
            return fail(
                Code::TooManyCandidates,
                format!("at most {MAX_CANDIDATES} candidates per event"),
            );
        }
        for (i, c) in self.candidates.iter().enumerate() {
            check_id(&format!("candidates[{i}].sku"), &c.sku)?;
            if !(c.confidence.is_finite() && (0.0..=1.0).contains(&c.confidence)) {
                return fail(
                    Code::InvalidConfidence,
                    format!(
                        "candidates[{i}].confidence must be between 0 and 1, not {}",
                        c.confidence
                    ),
                );
            }
            if self.candidates[..i].iter().any(|o| o.sku == c.sku) {
                return fail(
                    Code::DuplicateCandidate,
                    format!("candidates[{i}].sku {:?} is listed twice", c.sku),
                );
            }
        }
        if self.clips.len() > MAX_CLIPS {
            return fail(
                Code::TooManyClips,
                format!("at most {MAX_CLIPS} clips per event"),
            );
        }
        if let Some(v) = &self.model_version {
            check_id("model_version", v)?;
        }
        if let Some(dup) = self
            .clips
            .iter()
            .enumerate()
            .find(|(i, c)| self.clips[..*i].contains(c))
        {
            return fail(
                Code::DuplicateClip,
                format!("clips[{}] {:?} is listed twice", dup.0, dup.1),
            );
        }
        if self.clips.len() + self.cameras.len() > MAX_CLIPS {
            return fail(
                Code::TooManyClips,
                format!("at most {MAX_CLIPS} clips and camera windows per event"),
            );
        }
        let mut cameras = Vec::with_capacity(self.cameras.len());
        for (i, w) in self.cameras.iter().enumerate() {
            check_id(&format!("cameras[{i}].camera_id"), &w.camera_id)?;
            let (Some(from), Some(to)) = (parse_rfc3339_ms(&w.from), parse_rfc3339_ms(&w.to))
            else {
                return fail(
                    Code::InvalidTimestamp,
                    format!("cameras[{i}].from and .to must be RFC 3339 timestamps"),
                );
            };
            if to <= from || to - from > MAX_WINDOW_MS {
                return fail(
                    Code::InvalidWindow,
                    format!(
                        "cameras[{i}] must end after it starts and last at most {MAX_WINDOW_MS} ms"
                    ),
                );
            }
            let frame_accurate = match w.accuracy.as_deref() {
                None | Some("keyframe") => false,
                Some("frame") => true,
                Some(other) => {
                    return fail(
                        Code::InvalidAccuracy,
                        format!(
                        "cameras[{i}].accuracy must be \"keyframe\" or \"frame\", not {other:?}"
                    ),
                    )
                }
            };
            cameras.push(CameraWindow {
                camera_id: w.camera_id.clone(),
                from,
                to,
                frame_accurate,
            });
        }
        Ok(ValidEvent {
            event_id: self.event_id.clone(),
            session_id: self.session_id.clone(),
            kind,
            quantity: self.quantity,
            occurred_at,
            candidates: self.candidates.clone(),
            clips: self.clips.clone(),
            model_version: self.model_version.clone(),
            cameras,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EventInput {
        EventInput {
            event_id: "e1".into(),
            session_id: "s1".into(),
            kind: "pick".into(),
            quantity: 1,
            occurred_at: "2026-11-25T10:00:00Z".into(),
            candidates: vec![
                CandidateInput {
                    sku: "a".into(),
                    confidence: 0.7,
                },
                CandidateInput {
                    sku: "b".into(),
                    confidence: 0.2,
                },
            ],
            clips: vec![],
            model_version: Some("m1".into()),
            cameras: vec![],
        }
    }

    fn code(e: EventInput) -> &'static str {
        e.validate().unwrap_err().code.as_str()
    }

    #[test]
    fn a_well_formed_event_passes() {
        let v = input().validate().unwrap();
        assert_eq!(v.kind, Action::Pick);
        assert_eq!(v.occurred_at, 1_795_600_800_000);
    }

    #[test]
    fn each_bad_field_has_its_code() {
        assert_eq!(
            code(EventInput {
                quantity: -1,
                ..input()
            }),
            "invalid-quantity"
        );
        assert_eq!(
            code(EventInput {
                quantity: 0,
                ..input()
            }),
            "invalid-quantity"
        );
        assert_eq!(
            code(EventInput {
                kind: "grab".into(),
                ..input()
            }),
            "invalid-kind"
        );
        assert_eq!(
            code(EventInput {
                occurred_at: "noon".into(),
                ..input()
            }),
            "invalid-timestamp"
        );
        assert_eq!(
            code(EventInput {
                event_id: String::new(),
                ..input()
            }),
            "invalid-id"
        );
        let mut e = input();
        e.candidates[1].confidence = 1.01;
        assert_eq!(code(e), "invalid-confidence");
        let mut e = input();
        e.candidates[1].confidence = -0.1;
        assert_eq!(code(e), "invalid-confidence");
        let mut e = input();
        e.candidates[1].sku = "a".into();
        assert_eq!(code(e), "duplicate-candidate");
        let window = |from: &str, to: &str| EventInput {
            cameras: vec![CameraWindowInput {
                camera_id: "cam".into(),
                from: from.into(),
                to: to.into(),
                accuracy: None,
            }],
            ..input()
        };
        assert_eq!(
            code(window("2026-11-25T10:00:05Z", "2026-11-25T10:00:01Z")),
            "invalid-window"
        );
        assert_eq!(
            code(window("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z")),
            "invalid-window"
        );
        assert_eq!(code(window("soon", "later")), "invalid-timestamp");
        let twice = EventInput {
            clips: vec!["c1".into(), "c1".into()],
            ..input()
        };
        assert_eq!(code(twice), "duplicate-clip");
        let ok = window("2026-11-25T10:00:00Z", "2026-11-25T10:00:04Z")
            .validate()
            .unwrap();
        assert_eq!(ok.cameras[0].to - ok.cameras[0].from, 4000);
    }
}
