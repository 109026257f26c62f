//! Supervisor endpoints of the dashboard: the snapshot, and a store's
//! confidence histogram, calibration, threshold recommendation and
//! staffing forecast.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::calibration::{CalibrationBin, WINDOW_MS};
use crate::domain::dashboard::{ConfidenceBin, Dashboard};
use crate::domain::recommend::{self, Recommendation};
use crate::domain::time::{date_and_weekday, format_rfc3339_ms, parse_date_ms};
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{Path, Query, SupervisorCaller};
use crate::http::query::RecommendationQuery;
use crate::review::admin::covered_store;
use crate::review::{dashboard, staffing};
use crate::sim::forecast::{history_days, Basis};
use crate::AppState;

/// The whole dashboard now (supervisors).
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "dashboard", security(("bearer" = [])),
    responses(
        (status = 200, body = Dashboard),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`role-forbidden`, `user-token-required`", body = ErrorBody),
    ))]
pub async fn get_dashboard(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
) -> Result<axum::Json<Dashboard>> {
    let c = &state.config;
    Ok(axum::Json(
        dashboard::snapshot_with_staffing(
            &state.db,
            &user.scope,
            state.now(),
            dashboard::Rules::of(c),
            &state.forecasts,
        )
        .await?,
    ))
}

/// Query of the confidence histogram.
#[derive(Debug, Deserialize, IntoParams)]
pub struct BinsQuery {
    /// UTC days to cover, today included (1 to 365, default 30).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 365)]
    pub days: Option<String>,
}

/// A store's resolved events per top-confidence bin.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ConfidenceBins {
    /// Store id.
    pub store_id: String,
    /// Start of the first day covered (RFC 3339, midnight UTC).
    pub from: String,
    /// End of the range: now (RFC 3339).
    pub to: String,
    /// The non-empty bins, lowest confidence first.
    pub bins: Vec<ConfidenceBin>,
}

/// Longest range of the confidence histogram.
const MAX_DAYS: i64 = 365;

/// Resolved events of a store by top confidence (supervisors): the input of
/// a threshold recommendation.
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/confidence-bins", tag = "dashboard",
    security(("bearer" = [])),
    params(("store_id" = String, Path), BinsQuery),
    responses(
        (status = 200, body = ConfidenceBins),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`invalid-days`", body = ErrorBody),
    ))]
pub async fn get_confidence_bins(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
    Query(query): Query<BinsQuery>,
) -> Result<axum::Json<ConfidenceBins>> {
    let days = match query.days.as_deref() {
        // The recommendation's window: these bins reproduce it.
        None => dashboard::RECOMMENDATION_DAYS,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                Error::new(
                    Code::InvalidDays,
                    format!("days must be a whole number from 1 to {MAX_DAYS}, not {text:?}"),
                )
            })?,
    };
    covered_store(&state.db, &user, &store_id).await?;
    let now = state.now();
    let from = dashboard::days_window_start(now, days);
    let bins = dashboard::confidence_bins(&state.db, &store_id, from, now).await?;
    Ok(axum::Json(ConfidenceBins {
        store_id,
        from: format_rfc3339_ms(from),
        to: format_rfc3339_ms(now),
        bins,
    }))
}

/// Which calibration to show.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CalibrationQuery {
    /// The model version (absent: the events that named none).
    pub model_version: Option<String>,
}

/// A store's calibration for one model version: the probability that the
/// model's top candidate is right beside its raw confidence.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StoreCalibration {
    /// Store id.
    pub store_id: String,
    /// The model version.
    pub model_version: Option<String>,
    /// Start of the labels it is fitted on (RFC 3339): 30 days back.
    pub from: String,
    /// Now (RFC 3339).
    pub to: String,
    /// Human-labelled events it is fitted on.
    pub labelled: u64,
    /// Ten bins of confidence, lowest first: mean confidence, labels, their
    /// effective size after weighting, and the calibrated probability.
    pub bins: Vec<CalibrationBin>,
}

/// A store's calibration (supervisors): what charge-aware routing takes
/// the model's confidence to mean.
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/calibration", tag = "dashboard",
    security(("bearer" = [])),
    params(("store_id" = String, Path), CalibrationQuery),
    responses(
        (status = 200, body = StoreCalibration),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn get_calibration(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
    Query(query): Query<CalibrationQuery>,
) -> Result<axum::Json<StoreCalibration>> {
    let store = covered_store(&state.db, &user, &store_id).await?;
    let mut conn = state.db.reader().acquire().await?;
    let now = state.now();
    let model = query.model_version.as_deref();
    let fitted = crate::review::ingest::calibration_of(&mut conn, &store, model, now).await?;
    Ok(axum::Json(StoreCalibration {
        store_id,
        model_version: query.model_version,
        from: format_rfc3339_ms(now - WINDOW_MS),
        to: format_rfc3339_ms(now),
        labelled: fitted.bins.iter().map(|b| b.count).sum(),
        bins: fitted.bins,
    }))
}

/// The routing-threshold recommendation for a store (supervisors): from
/// its last 30 days of resolved events, the threshold with the lowest
/// review rate whose upper 95 % bound on the auto-accept error stays under
/// `target`, with every candidate threshold's expected review rate and
/// error (docs/dashboard.md, "Routing policy").
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/recommendation", tag = "dashboard",
    security(("bearer" = [])),
    params(("store_id" = String, Path), RecommendationQuery),
    responses(
        (status = 200, body = Recommendation),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`invalid-target`", body = ErrorBody),
    ))]
pub async fn get_recommendation(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
    Query(query): Query<RecommendationQuery>,
) -> Result<axum::Json<Recommendation>> {
    let target = recommend::parse_target(query.target.as_deref())
        .map_err(|m| Error::new(Code::InvalidTarget, m))?;
    let store = covered_store(&state.db, &user, &store_id).await?;
    Ok(axum::Json(
        dashboard::recommendation(&state.db, &store_id, state.now(), &store.policy, target).await?,
    ))
}

/// Which day to forecast.
#[derive(Debug, Deserialize, IntoParams)]
pub struct StaffingQuery {
    /// The UTC day, `YYYY-MM-DD` (default: today).
    #[param(format = Date)]
    pub date: Option<String>,
}

/// One hour of a staffing forecast.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StaffingHour {
    /// Start of the hour (RFC 3339, UTC).
    pub start: String,
    /// Shoppers expected to arrive in it.
    pub shoppers: f64,
    /// Labelers needed in it to hold p95 receipt latency within the SLA.
    pub labelers: i64,
}

/// A store's staffing forecast for one day.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StaffingForecast {
    /// Store id.
    pub store_id: String,
    /// The day (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// Its weekday: the history read is the same weekday of the four weeks
    /// before.
    pub weekday: String,
    /// The days of history read, most recent first (`YYYY-MM-DD`).
    pub history_days: Vec<String>,
    /// What the forecast took from them; absent when they had no shoppers
    /// (then `hours` is empty).
    pub basis: Option<Basis>,
    /// Share of events the store's policy sends to people on the forecast
    /// day.
    pub review_rate: Option<f64>,
    /// p95 receipt latency with the forecast crew, in seconds.
    pub latency_p95_s: Option<f64>,
    /// Labeler-hours over the day.
    pub labeler_hours: i64,
    /// Hours from the first with shoppers to the last with work.
    pub hours: Vec<StaffingHour>,
}

/// A store's staffing forecast (supervisors): labelers needed in each hour
/// of a day to hold p95 receipt latency within the store's SLA, simulated
/// from the same weekday of the last four weeks under the store's policy
/// (docs/economics.md, "Staffing").
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/staffing", tag = "dashboard",
    security(("bearer" = [])),
    params(("store_id" = String, Path), StaffingQuery),
    responses(
        (status = 200, body = StaffingForecast),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
        (status = 422, description = "`invalid-date`", body = ErrorBody),
    ))]
pub async fn get_staffing(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(store_id): Path<String>,
    Query(query): Query<StaffingQuery>,
) -> Result<axum::Json<StaffingForecast>> {
    let day = match query.date.as_deref() {
        None => staffing::day_start(state.now()),
        Some(text) => parse_date_ms(text).ok_or_else(|| {
            Error::new(
                Code::InvalidDate,
                format!("date must be a calendar day written YYYY-MM-DD, not {text:?}"),
            )
        })?,
    };
    let store = covered_store(&state.db, &user, &store_id).await?;
    let made = state.forecasts.get(&state.db, &store, day).await?;
    let (date, weekday) = date_and_weekday(day);
    let forecast = made.as_ref().as_ref();
    Ok(axum::Json(StaffingForecast {
        store_id,
        date,
        weekday,
        history_days: history_days(day)
            .into_iter()
            .map(|(from, _)| date_and_weekday(from).0)
            .collect(),
        basis: forecast.map(|f| f.basis.clone()),
        review_rate: forecast.map(|f| f.review_rate),
        latency_p95_s: forecast.map(|f| f.latency_p95_s),
        labeler_hours: forecast.map_or(0, |f| f.labeler_hours as i64),
        hours: forecast
            .map(|f| {
                f.hours
                    .iter()
                    .map(|h| StaffingHour {
                        start: format_rfc3339_ms(h.start),
                        shoppers: h.shoppers,
                        labelers: h.labelers as i64,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }))
}
