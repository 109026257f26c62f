//! The audit trail: who did what, when, to what. Each recorded action is an
//! [`Action`]; the rows are written in the same transaction as the change
//! they record and never updated.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! actions {
    ($( $name:ident = $text:literal, $meaning:literal; )*) => {
        /// Something the audit trail records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Action {
            $(
                #[doc = $meaning]
                #[serde(rename = $text)]
                $name,
            )*
        }

        impl Action {
            /// Every action, in the order of the table.
            pub const ALL: &'static [Action] = &[$(Action::$name),*];

            /// The stored spelling, e.g. `policy.changed`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Action::$name => $text,)*
                }
            }

            /// What it records, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Action::$name => $meaning,)*
                }
            }

            /// Parses the stored spelling.
            pub fn parse(s: &str) -> Option<Action> {
                match s {
                    $($text => Some(Action::$name),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    PolicyChanged = "policy.changed", "a store's routing policy changed (before and after)";
    BlindReviewChanged = "blind-review.changed", "a store's blind review was turned on or off";
    TrainingConsentChanged = "training.changed", "a store allowed or forbade the use of its data for training";
    StoreCreated = "store.created", "a store was created";
    StoreSettingsChanged = "store.changed", "a store's name, webhook URL or retention changed (before and after)";
    KeyRotated = "store.key-rotated", "a store's API key was replaced";
    WebhookSecretRotated = "store.webhook-secret-rotated", "a store's webhook secret was replaced";
    WebhookRedelivered = "webhook.redelivered", "a dead webhook delivery was sent again";
    UserCreated = "user.created", "a person was added (or their password and role set again)";
    UserDisabled = "user.disabled", "a person was disabled";
    UserEnabled = "user.enabled", "a disabled person was enabled";
    SessionsRevoked = "user.signed-out", "every token and console session of a person was ended";
    PasswordReset = "user.password-reset", "a person's password was reset";
    StoresAssigned = "user.stores", "the stores a person covers changed";
    UserPaused = "user.paused", "a labeler was paused from the queue (by a supervisor or the gold-accuracy floor)";
    UserResumed = "user.resumed", "a paused labeler was let back into the queue";
    ExportCreated = "export.created", "a training-data export was asked for";
    ExportDeleted = "export.deleted", "a training-data export was deleted";
    LabelCorrected = "label.corrected", "a supervisor corrected a resolved label";
    ClipViewed = "clip.viewed", "someone watched a clip's video, filmstrip or poster";
    MediaErased = "media.erased", "a shopper's video was erased on the store's request";
    MediaExpired = "media.expired", "the retention job deleted video past its store's retention time";
}

/// The schema of an action: its stored spellings. Written by hand, as
/// the names come from the table above (and `Action`, the label's action,
/// is another schema).
impl utoipa::PartialSchema for Action {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("What the audit trail records, e.g. `policy.changed`"))
            .enum_values(Some(Action::ALL.iter().map(|a| a.as_str())))
            .into()
    }
}

impl ToSchema for Action {
    fn name() -> std::borrow::Cow<'static, str> {
        "AuditAction".into()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A labeler, supervisor or admin, by their id.
    User,
    /// A store system with its API key, by the store id.
    Store,
    /// Someone at the command line of the server (`recount …`).
    Operator,
    /// Recount itself: a background job.
    System,
}

impl ActorKind {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Store => "store",
            ActorKind::Operator => "operator",
            ActorKind::System => "system",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<ActorKind> {
        match s {
            "user" => Some(ActorKind::User),
            "store" => Some(ActorKind::Store),
            "operator" => Some(ActorKind::Operator),
            "system" => Some(ActorKind::System),
            _ => None,
        }
    }
}

/// Who acted, as the trail names them: the name is kept as it was then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// What kind of actor.
    pub kind: ActorKind,
    /// The user's or store's id; none for the operator and the system.
    pub id: Option<String>,
    /// The username, store name, or what ran (`cli`, the job's name).
    pub name: String,
}

impl Actor {
    /// Someone at the command line.
    pub fn operator() -> Actor {
        Actor {
            kind: ActorKind::Operator,
            id: None,
            name: "cli".into(),
        }
    }

    /// A background job of Recount.
    pub fn system(job: &str) -> Actor {
        Actor {
            kind: ActorKind::System,
            id: None,
            name: job.into(),
        }
    }
}

/// One line of the CSV download: quotes a field when it holds a comma, a
/// quote, a line break or starts with a character a spreadsheet would read
/// as a formula (so an audit export opened in one runs nothing).
pub fn csv_field(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let value = if formula {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) || formula {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for a in Action::ALL {
            assert!(seen.insert(a.as_str()), "{a} twice");
            assert_eq!(Action::parse(a.as_str()), Some(*a));
            assert!(!a.meaning().is_empty());
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::json!(a.as_str())
            );
        }
        assert_eq!(Action::parse("policy"), None);
        for k in [
            ActorKind::User,
            ActorKind::Store,
            ActorKind::Operator,
            ActorKind::System,
        ] {
            assert_eq!(ActorKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_needed_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_field("-1"), "\"'-1\"");
        assert_eq!(csv_field(""), "");
    }
}
