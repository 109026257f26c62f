//! Query strings that the JSON API and the pages both read.

use serde::Deserialize;
use utoipa::IntoParams;

/// Query of the threshold recommendation (the API's and the policy page's).
#[derive(Debug, Deserialize, IntoParams)]
pub struct RecommendationQuery {
    /// Highest acceptable auto-accept error rate, above 0 and below 1
    /// (default 0.005).
    #[param(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 1)]
    pub target: Option<String>,
}

/// Filters of the audit trail (the API's, its CSV download's and the audit
/// page's).
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// At or after this time: RFC 3339, or `YYYY-MM-DDTHH:MM` or
    /// `YYYY-MM-DD` in UTC.
    pub from: Option<String>,
    /// Before this time, in the same forms.
    pub to: Option<String>,
    /// Only this action, e.g. `policy.changed` or `clip.viewed`; empty: any.
    #[param(value_type = Option<ActionFilter>, inline)]
    pub action: Option<String>,
    /// Only this actor: a username, store name, `cli` or job name.
    pub actor: Option<String>,
    /// Only rows about this store.
    pub store_id: Option<String>,
    /// Only rows about this clip, task, export, session or username.
    pub subject: Option<String>,
    /// Rows older than this row id (the `next_before` of the last page).
    pub before: Option<String>,
    /// Rows per page (default 100, at most 500).
    pub limit: Option<i64>,
}

/// The schema of the audit's `action` filter: an action's stored spelling,
/// or empty (a form's "any").
pub struct ActionFilter;

impl utoipa::PartialSchema for ActionFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names =
            std::iter::once("").chain(crate::domain::audit::Action::ALL.iter().map(|a| a.as_str()));
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for ActionFilter {}

impl AuditQuery {
    /// The database filter, or why a field cannot be read. Empty fields (a
    /// form's blanks) filter nothing.
    pub fn filter(&self) -> Result<crate::db::audit::Filter, String> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
            given(v)
                .map(|t| {
                    parse_time(t).ok_or_else(|| {
                        format!("{name} {t:?} is not an RFC 3339 time, YYYY-MM-DDTHH:MM or a date")
                    })
                })
                .transpose()
        };
        let action = given(&self.action)
            .map(|a| {
                crate::domain::audit::Action::parse(a)
                    .ok_or_else(|| format!("no audit action {a:?}"))
            })
            .transpose()?;
        Ok(crate::db::audit::Filter {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            action,
            actor: given(&self.actor).map(str::to_string),
            store_id: given(&self.store_id).map(str::to_string),
            subject: given(&self.subject).map(str::to_string),
            before_id: given(&self.before).map(str::to_string),
        })
    }
}

/// A time as people type it into a filter: RFC 3339, a browser's
/// `datetime-local` value (UTC) or a date (its midnight, UTC).
pub fn parse_time(t: &str) -> Option<i64> {
    use crate::domain::time::{parse_date_ms, parse_rfc3339_ms};
    parse_rfc3339_ms(t)
        .or_else(|| parse_rfc3339_ms(&format!("{t}:00Z")))
        .or_else(|| parse_date_ms(t))
}
