//! The audit trail page: the rows a supervisor may see, filtered by time,
//! action, who, store and subject, a page at a time, with the same filters
//! as a CSV download (`/api/v1/audit.csv`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::supervisor::Frame;
use crate::db::audit::{self, AuditRow};
use crate::db::stores;
use crate::domain::audit::Action;
use crate::error::Error;
use crate::http::pages::{render, SupervisorPage};
use crate::http::query::AuditQuery;
use crate::AppState;

/// Rows per page.
const PAGE_ROWS: i64 = 100;

/// What the filter form shows back.
#[derive(Default)]
struct Shown {
    from: String,
    to: String,
    actor: String,
    subject: String,
}

struct Choice {
    value: &'static str,
    selected: bool,
}

struct StoreChoice {
    id: String,
    name: String,
    selected: bool,
}

struct Row {
    at: String,
    actor_kind: &'static str,
    actor: String,
    action: &'static str,
    store: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    frame: Frame<'a>,
    q: Shown,
    actions: Vec<Choice>,
    stores: Vec<StoreChoice>,
    rows: Vec<Row>,
    csv_query: String,
    older: Option<String>,
    error: Option<String>,
    retention_days: i64,
}

/// `?name=value&…` of the filters that are set (`before` only for the
/// next page).
fn query_string(q: &AuditQuery, before: Option<&str>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("from", &q.from),
        ("to", &q.to),
        ("action", &q.action),
        ("actor", &q.actor),
        ("store_id", &q.store_id),
        ("subject", &q.subject),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            out.append_pair(name, v);
        }
    }
    if let Some(b) = before {
        out.append_pair("before", b);
    }
    let s = out.finish();
    if s.is_empty() {
        s
    } else {
        format!("?{s}")
    }
}

/// The audit page.
pub async fn page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
    Query(q): Query<AuditQuery>,
) -> Response {
    let stores = match stores::list(&state.db).await {
        Ok(s) => s,
        Err(e) => return Error::from(e).into_response(),
    };
    let names: std::collections::HashMap<String, String> = stores
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let filter = q.filter();
    let (rows, older, error) = match &filter {
        Ok(f) => match audit::list(&state.db, &user.scope, f, PAGE_ROWS + 1).await {
            Ok(mut rows) => {
                let more = rows.len() as i64 > PAGE_ROWS;
                rows.truncate(PAGE_ROWS as usize);
                let older = more
                    .then(|| rows.last().map(|r| query_string(&q, Some(&r.id))))
                    .flatten();
                (rows, older, None)
            }
            Err(e) => return Error::from(e).into_response(),
        },
        Err(message) => (Vec::new(), None, Some(message.clone())),
    };
    let selected_action = filter.as_ref().ok().and_then(|f| f.action);
    let selected_store = q.store_id.clone().unwrap_or_default();
    let shown = |v: &Option<String>| v.clone().unwrap_or_default();
    // A datetime-local input takes `YYYY-MM-DDTHH:MM` only: a time it
    // cannot show is left out (the error above says what was wrong).
    let local = |v: &Option<String>| {
        v.as_deref()
            .and_then(crate::http::query::parse_time)
            .map(|ms| crate::domain::time::format_rfc3339_ms(ms)[..16].to_string())
            .unwrap_or_default()
    };
    let view = AuditPage {
        frame: Frame::new(&user, &token, "audit"),
        q: Shown {
            from: local(&q.from),
            to: local(&q.to),
            actor: shown(&q.actor),
            subject: shown(&q.subject),
        },
        actions: Action::ALL
            .iter()
            .map(|a| Choice {
                value: a.as_str(),
                selected: Some(*a) == selected_action,
            })
            .collect(),
        stores: stores
            .iter()
            .filter(|s| user.scope.sees(&s.id))
            .map(|s| StoreChoice {
                id: s.id.clone(),
                name: s.name.clone(),
                selected: s.id == selected_store,
            })
            .collect(),
        rows: rows.into_iter().map(|r| row(r, &names)).collect(),
        csv_query: query_string(&q, None),
        older,
        retention_days: state.config.audit_retention_days,
        error,
    };
    let mut resp = render(&view);
    if view.error.is_some() {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
    }
    resp
}

/// A detail as people read it: for a change, only what changed (`key:
/// before → after`); anything else as compact JSON.
fn detail_text(detail: &serde_json::Value) -> String {
    let (Some(before), Some(after)) = (
        detail.get("before").and_then(|v| v.as_object()),
        detail.get("after").and_then(|v| v.as_object()),
    ) else {
        return detail.to_string();
    };
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| {
            let was = before.get(k).unwrap_or(&serde_json::Value::Null);
            format!("{k}: {was} → {v}")
        })
        .collect();
    if changed.is_empty() {
        "no change".into()
    } else {
        changed.join("; ")
    }
}

fn row(r: AuditRow, names: &std::collections::HashMap<String, String>) -> Row {
    Row {
        // To the second: the page is read by people; the CSV and the API
        // keep the milliseconds.
        at: crate::domain::time::format_rfc3339_ms(r.at)[..19].replace('T', " "),
        actor_kind: r.actor_kind.as_str(),
        actor: r.actor_name,
        action: r.action.as_str(),
        store: r
            .store_id
            .map(|id| names.get(&id).cloned().unwrap_or(id))
            .unwrap_or_else(|| "–".into()),
        subject: r.subject.unwrap_or_default(),
        detail: detail_text(&r.detail),
    }
}

#[cfg(test)]
mod tests {
    use super::detail_text;
    use serde_json::json;

    #[test]
    fn a_change_shows_only_what_changed() {
        let d = json!({"before": {"threshold": 0.9, "margin": 0.1}, "after": {"threshold": 0.85, "margin": 0.1}});
        assert_eq!(detail_text(&d), "threshold: 0.9 → 0.85");
        let same = json!({"before": {"a": 1}, "after": {"a": 1}});
        assert_eq!(detail_text(&same), "no change");
        let other = json!({"artifact": "video", "task_id": null});
        assert_eq!(
            detail_text(&other),
            r#"{"artifact":"video","task_id":null}"#
        );
    }
}
