//! Supervisor pages: the live dashboard, the escalation queue, gold tasks,
//! the routing policy of each store and training-data exports.
//!
//! The dashboard and policy pages are rendered on the server, charts
//! included ([`super::dashboard_view`], [`super::charts`]); the dashboard
//! refreshes itself by fetching `/dashboard/live`, the same body as HTML.
//! Escalations and gold tasks are lists a supervisor acts on: their scripts
//! call the JSON API like any client, with the session cookie and the page's
//! CSRF token.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::charts;
use super::dashboard_view::{self, DashboardView};
use super::format::{count, duration_ms, percent};
use super::simulation_view::{PolicyPageQuery, ReplayView, WhatIfView};
use crate::auth::Role;
use crate::db::stores;
use crate::db::users::User;
use crate::domain::recommend::{self, Recommendation};
use crate::domain::routing::RoutingPolicy;
use crate::error::{Code, Error};
use crate::http::pages::{page, render, PageRefusal, SupervisorPage};
use crate::http::session;
use crate::review::dashboard;
use crate::AppState;

use crate::review::dashboard::RECOMMENDATION_DAYS;

/// Routes of the supervisor pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard_page))
        .route("/dashboard/live", get(dashboard_live))
        .route("/escalations", get(escalations_page))
        .route("/gold", get(gold_page))
        .route("/policy", get(policy_index))
        .route("/policy/{store_id}", get(policy_page))
        .route("/exports", get(exports_page))
        .route("/audit", get(super::audit_view::page))
        .route("/people", get(super::people_view::people))
        .route("/stores", get(super::people_view::stores_page))
        .route("/stores/{store_id}", get(super::people_view::store_page))
}

/// What every supervisor page's frame needs.
pub(super) struct Frame<'a> {
    pub(super) user: &'a User,
    pub(super) csrf: String,
    /// Which nav item is current.
    pub(super) section: &'static str,
    pub(super) is_admin: bool,
}

impl<'a> Frame<'a> {
    pub(super) fn new(user: &'a User, token: &str, section: &'static str) -> Frame<'a> {
        Frame {
            user,
            csrf: session::csrf_token(token),
            section,
            is_admin: user.role == Role::Admin,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    frame: Frame<'a>,
    body: String,
    refresh_ms: i64,
}

/// The dashboard's body: what the page shows and what `/dashboard/live`
/// answers.
#[derive(Template)]
#[template(path = "dashboard_body.html")]
pub(crate) struct DashboardBody<'a> {
    pub(crate) v: &'a DashboardView,
}

/// How often the open dashboard fetches a fresh body.
const REFRESH_MS: i64 = 5_000;

async fn dashboard_body(state: &AppState, user: &User) -> Result<String, Error> {
    let c = &state.config;
    let snapshot = dashboard::snapshot_with_staffing(
        &state.db,
        &user.scope,
        state.now(),
        dashboard::Rules::of(c),
        &state.forecasts,
    )
    .await?;
    let view = dashboard_view::view(&snapshot);
    DashboardBody { v: &view }
        .render()
        .map_err(|e| Error::Internal(anyhow::anyhow!("rendering the dashboard: {e}")))
}

async fn dashboard_page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    let body = match dashboard_body(&state, &user).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    render(&DashboardPage {
        frame: Frame::new(&user, &token, "dashboard"),
        body,
        refresh_ms: REFRESH_MS,
    })
}

/// The dashboard body alone, for the page's refresh: 401 once the session
/// is gone, so the page can say so instead of showing stale numbers.
async fn dashboard_live(
    State(state): State<AppState>,
    supervisor: Result<SupervisorPage, PageRefusal>,
) -> Response {
    let user = match supervisor {
        Ok(SupervisorPage { user, .. }) => user,
        Err(PageRefusal::SignIn { .. }) => {
            return Error::new(Code::Unauthorized, "the session ended; sign in again")
                .into_response()
        }
        Err(PageRefusal::NotSupervisor(_)) => {
            return Error::new(Code::Forbidden, "supervisors only").into_response()
        }
    };
    match dashboard_body(&state, &user).await {
        Ok(b) => page(b),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "escalations.html")]
struct EscalationsPage<'a> {
    frame: Frame<'a>,
}

async fn escalations_page(SupervisorPage { user, token }: SupervisorPage) -> Response {
    render(&EscalationsPage {
        frame: Frame::new(&user, &token, "escalations"),
    })
}

#[derive(Template)]
#[template(path = "gold.html")]
struct GoldPage<'a> {
    frame: Frame<'a>,
    min_accuracy: String,
    min_answers: u64,
    rate: String,
}

async fn gold_page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    render(&GoldPage {
        frame: Frame::new(&user, &token, "gold"),
        min_accuracy: percent(Some(state.config.gold_min_accuracy)),
        min_answers: state.config.gold_min_answers,
        rate: percent(Some(state.config.gold_rate)),
    })
}

/// A store in the export form.
struct ExportStore {
    id: String,
    name: String,
    allowed: bool,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage<'a> {
    frame: Frame<'a>,
    stores: Vec<ExportStore>,
}

async fn exports_page(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    match stores::list(&state.db).await {
        Ok(list) => render(&ExportsPage {
            frame: Frame::new(&user, &token, "exports"),
            stores: list
                .into_iter()
                .filter(|s| user.scope.sees(&s.id))
                .map(|s| ExportStore {
                    id: s.id,
                    name: s.name,
                    allowed: s.training_allowed,
                })
                .collect(),
        }),
        Err(e) => Error::from(e).into_response(),
    }
}

/// One store in the policy index.
struct StoreRow {
    id: String,
    name: String,
    threshold: String,
    margin: String,
    audit_rate: String,
    sla: String,
}

#[derive(Template)]
#[template(path = "policy_index.html")]
struct PolicyIndex<'a> {
    frame: Frame<'a>,
    stores: Vec<StoreRow>,
}

async fn policy_index(
    State(state): State<AppState>,
    SupervisorPage { user, token }: SupervisorPage,
) -> Response {
    let stores = match stores::list(&state.db).await {
        Ok(s) => s,
        Err(e) => return Error::from(e).into_response(),
    };
    render(&PolicyIndex {
        frame: Frame::new(&user, &token, "policy"),
        stores: stores
            .into_iter()
            .filter(|s| user.scope.sees(&s.id))
            .map(|s| StoreRow {
                threshold: format!("{:.2}", s.policy.threshold),
                margin: format!("{:.2}", s.policy.margin),
                audit_rate: percent(Some(s.policy.audit_rate)),
                sla: duration_ms(Some(s.policy.receipt_sla_ms as f64)),
                id: s.id,
                name: s.name,
            })
            .collect(),
    })
}

/// One row of the recommendation table.
struct CandidateRow {
    threshold: String,
    review_rate: String,
    error: String,
    interval: String,
    auto_accepted: String,
    marker: &'static str,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage<'a> {
    frame: Frame<'a>,
    store_id: String,
    store_name: String,
    policy: RoutingPolicy,
    high_value: String,
    recommendation: Recommendation,
    recommended_threshold: Option<String>,
    summary: String,
    target: String,
    target_options: Vec<TargetOption>,
    chart: String,
    rows: Vec<CandidateRow>,
    days: i64,
    mode: &'static str,
    review_cost: String,
    default_cost: String,
    calibration_model: String,
    calibration: Vec<CalibrationRow>,
    what_if: WhatIfView,
    replay: ReplayView,
}

/// One bin of the store's calibration, for people.
struct CalibrationRow {
    range: String,
    confidence: String,
    labels: String,
    probability: String,
}

/// A choice of the target error on the policy page.
struct TargetOption {
    /// The `target` query value (a share).
    value: String,
    /// As people read it.
    label: String,
    selected: bool,
}

/// The offered targets, with `current` among them (also when it came from
/// the address and is not one of the usual ones).
fn target_options(current: f64) -> Vec<TargetOption> {
    let mut values: Vec<f64> = recommend::TARGET_CHOICES.to_vec();
    if !values.iter().any(|v| (v - current).abs() < 1e-12) {
        values.push(current);
        values.sort_by(f64::total_cmp);
    }
    values
        .into_iter()
        .map(|v| TargetOption {
            value: v.to_string(),
            label: percent(Some(v)),
            selected: (v - current).abs() < 1e-12,
        })
        .collect()
}

/// Thresholds shown in the table: every tenth plus the current and the
/// recommended one (the chart shows all of them).
fn candidate_rows(rec: &Recommendation) -> Vec<CandidateRow> {
    let current = rec.current.as_ref().map(|c| c.threshold);
    let recommended = rec.recommended.as_ref().map(|c| c.threshold);
    let same = |a: f64, b: Option<f64>| b.is_some_and(|b| (a - b).abs() < 1e-9);
    rec.candidates
        .iter()
        .filter(|c| {
            let hundredths = (c.threshold * 100.0).round() as i64;
            (hundredths % 5 == 0 && c.threshold >= 0.5)
                || same(c.threshold, current)
                || same(c.threshold, recommended)
        })
        .rev()
        .map(|c| CandidateRow {
            threshold: format!("{:.2}", c.threshold),
            review_rate: percent(Some(c.review_rate)),
            error: percent(c.error),
            interval: match (c.error_low, c.error_high) {
                (Some(l), Some(h)) => format!("{} – {}", percent(Some(l)), percent(Some(h))),
                _ => "no estimate".into(),
            },
            auto_accepted: count(c.auto_accepted.round() as i64),
            marker: match (same(c.threshold, current), same(c.threshold, recommended)) {
                (true, true) => "current, recommended",
                (true, false) => "current",
                (false, true) => "recommended",
                _ => "",
            },
        })
        .collect()
}

async fn policy_page(
    State(state): State<AppState>,
    supervisor: Result<SupervisorPage, PageRefusal>,
    Path(store_id): Path<String>,
    Query(query): Query<PolicyPageQuery>,
) -> Response {
    let target = recommend::parse_target(query.target.as_deref());
    let SupervisorPage { user, token } = match (supervisor, &query.target, &target) {
        (Ok(s), _, _) => s,
        // Back here after signing in, with the same target (a number
        // printed by Rust needs no escaping in a query).
        (Err(refusal), Some(_), Ok(t)) => {
            return refusal
                .returning_to(format!("/policy/{store_id}?target={t}"))
                .into_response()
        }
        (Err(refusal), _, _) => return refusal.into_response(),
    };
    // Who asks is checked first: a bad target is only worth telling a
    // supervisor.
    let target = match target {
        Ok(t) => t,
        Err(m) => return Error::new(Code::InvalidTarget, m).into_response(),
    };
    let store = match crate::review::admin::covered_store(&state.db, &user, &store_id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let rec =
        match dashboard::recommendation(&state.db, &store.id, state.now(), &store.policy, target)
            .await
        {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
    let summary = match (&rec.recommended, &rec.current) {
        (Some(r), Some(c)) => format!(
            "Threshold {:.2} would send {} of events to review (now {} at {:.2}) with an estimated auto-accept error of {} (95 % CI {} – {}).",
            r.threshold,
            percent(Some(r.review_rate)),
            percent(Some(c.review_rate)),
            c.threshold,
            percent(r.error),
            percent(r.error_low),
            percent(r.error_high),
        ),
        (Some(r), None) => format!(
            "Threshold {:.2} would send {} of events to review with an estimated auto-accept error of {}.",
            r.threshold,
            percent(Some(r.review_rate)),
            percent(r.error)
        ),
        (None, _) => rec
            .reason_if_none
            .as_deref()
            .map(super::capitalize)
            .unwrap_or_else(|| "No threshold qualifies.".into()),
    };
    let chart = charts::review_error_curve(
        "Review rate and estimated auto-accept error by threshold",
        &rec.candidates
            .iter()
            .map(charts::CurvePoint::from)
            .collect::<Vec<_>>(),
        rec.target_error,
        rec.current.as_ref().map(|c| c.threshold),
        rec.recommended.as_ref().map(|c| c.threshold),
    );
    let (model, fitted) = match dashboard::latest_calibration(&state.db, &store, state.now()).await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let calibration = fitted
        .bins
        .iter()
        .map(|b| CalibrationRow {
            range: format!("{:.1} – {:.1}", b.from, b.to),
            confidence: format!("{:.3}", b.confidence),
            labels: if b.count == 0 {
                "–".into()
            } else {
                format!("{} (≈ {:.0})", count(b.count as i64), b.effective)
            },
            probability: format!("{:.3}", b.probability),
        })
        .collect();
    let review_cost = match state.db.reader().acquire().await {
        Ok(mut conn) => {
            crate::review::ingest::review_cost_of(&mut conn, &store, state.config.labor_cost())
                .await
        }
        Err(e) => Err(e.into()),
    };
    let review_cost = match review_cost {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let what_if = WhatIfView::of(&query, &store.policy, review_cost).await;
    let replay = match ReplayView::of(&state, &store.id, &query).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let refused = what_if.error.is_some() || replay.error.is_some();
    let page = render(&PolicyPage {
        what_if,
        replay,
        frame: Frame::new(&user, &token, "policy"),
        mode: store.policy.mode.as_str(),
        review_cost: store
            .policy
            .review_cost_cents
            .map(|v| v.to_string())
            .unwrap_or_default(),
        default_cost: format!("{:.1}", state.config.labor_cost().review_cents()),
        calibration_model: model.unwrap_or_else(|| "events without a model version".into()),
        calibration,
        high_value: store
            .policy
            .high_value_cents
            .map(|v| v.to_string())
            .unwrap_or_default(),
        recommended_threshold: rec
            .recommended
            .as_ref()
            .map(|c| format!("{:.2}", c.threshold)),
        rows: candidate_rows(&rec),
        summary,
        target: percent(Some(rec.target_error)),
        target_options: target_options(rec.target_error),
        chart,
        recommendation: rec,
        store_id: store.id,
        store_name: store.name,
        policy: store.policy,
        days: RECOMMENDATION_DAYS,
    });
    if refused {
        // The page, with the reason beside the form, under the code's status.
        let mut page = page;
        *page.status_mut() = crate::http::error::status(Code::InvalidSimulation);
        return page;
    }
    page
}
