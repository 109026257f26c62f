//! What the supervisor dashboard shows: one snapshot answered by
//! `GET /api/v1/dashboard` and drawn by the dashboard page.
//!
//! Plain values only; `review::dashboard` fills them from the rollup tables and
//! the live tail, `domain::stats` does the arithmetic.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The whole dashboard at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dashboard {
    /// When the snapshot was taken (RFC 3339).
    pub generated_at: String,
    /// How far the rollups reach (RFC 3339); rows after it were counted live.
    pub rollup_watermark: String,
    /// Open work per store.
    pub queue: Vec<StoreQueue>,
    /// Work done and what needed a human.
    pub flow: Flow,
    /// Receipt latency.
    pub receipts: Receipts,
    /// One row per labeler active in the last day, slowest-accuracy first.
    pub labelers: Vec<LabelerStats>,
    /// Agreement among labelers on tasks with several verdicts (last day).
    pub agreement: Agreement,
    /// Calibration per model version (last 7 days).
    pub models: Vec<ModelCalibration>,
    /// Shopper disputes of final receipts (last 7 days).
    pub disputes: Disputes,
    /// Labelers working now against those the stores' forecasts need.
    pub staffing: Staffing,
}

/// Labelers at work now and the labelers needed this hour by each store's
/// staffing forecast (`GET /api/v1/stores/{id}/staffing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Staffing {
    /// Start of the hour the forecasts are read at (RFC 3339).
    pub hour: String,
    /// Labelers who held a task in the last [`WORKING_WINDOW_MS`].
    pub working: i64,
    /// Labelers the stores need this hour, summed over stores with a
    /// forecast; absent when none has one yet.
    pub needed: Option<i64>,
    /// Each store's need this hour.
    pub stores: Vec<StoreNeed>,
}

/// How recently a labeler held a task to count as working.
pub const WORKING_WINDOW_MS: i64 = 15 * 60_000;

/// Where a store's staffing forecast for today stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForecastState {
    /// Made.
    Ready,
    /// Being computed.
    Making,
    /// No shoppers on the same weekday in the last four weeks.
    NoHistory,
}

/// One store's forecast need this hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreNeed {
    /// Store id.
    pub store_id: String,
    /// Store name.
    pub store_name: String,
    /// Where its forecast stands.
    pub forecast: ForecastState,
    /// Labelers needed this hour, when the forecast is ready.
    pub needed: Option<i64>,
}

/// Shopper disputes over the last 7 days: how often receipts are contested,
/// and how often the shopper was right (an error that escaped review).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disputes {
    /// Disputes opened per receipt finalized.
    pub rate: Rate,
    /// Disputes upheld (the receipt was adjusted) per receipt finalized.
    pub upheld_rate: Rate,
    /// Disputes opened.
    pub opened: i64,
    /// Of them, upheld.
    pub upheld: i64,
    /// Of them, confirmed.
    pub confirmed: i64,
    /// Of them, still open.
    pub open: i64,
}

impl Default for Disputes {
    fn default() -> Disputes {
        Disputes::of(0, 0, 0, 0)
    }
}

impl Disputes {
    /// The figures of `opened` disputes (`upheld` and `confirmed` of them)
    /// against `receipts` finalized.
    pub fn of(receipts: i64, opened: i64, upheld: i64, confirmed: i64) -> Disputes {
        Disputes {
            rate: Rate::new(opened, receipts),
            upheld_rate: Rate::new(upheld, receipts),
            opened,
            upheld,
            confirmed,
            open: (opened - upheld - confirmed).max(0),
        }
    }
}

/// Open review work of one store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreQueue {
    /// Store id.
    pub store_id: String,
    /// Store name.
    pub store_name: String,
    /// Tasks whose clips are still being processed: not claimable yet.
    pub waiting: i64,
    /// Tasks waiting for a labeler.
    pub ready: i64,
    /// Tasks a labeler holds now.
    pub leased: i64,
    /// Tasks waiting for a supervisor.
    pub escalated: i64,
    /// Age in milliseconds of the oldest ready task, if any.
    pub oldest_ready_ms: Option<i64>,
    /// Open tasks (waiting, ready, leased, escalated) whose receipt deadline
    /// has passed.
    pub past_deadline: i64,
    /// Open tasks whose receipt deadline is due within `deadline_lead_ms`
    /// (not yet passed): the ones the deadline guarantee hands to
    /// supervisors if nobody settles them.
    pub at_risk: i64,
}

/// An estimated share with its 95 % Wilson interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rate {
    /// Numerator.
    pub count: i64,
    /// Denominator.
    pub total: i64,
    /// `count / total`, absent when `total` is 0.
    pub value: Option<f64>,
    /// Lower end of the 95 % interval.
    pub low: Option<f64>,
    /// Upper end of the 95 % interval.
    pub high: Option<f64>,
}

impl Rate {
    /// `count` of `total` with its 95 % Wilson interval.
    pub fn new(count: i64, total: i64) -> Rate {
        let interval = u64::try_from(count)
            .ok()
            .zip(u64::try_from(total).ok())
            .and_then(|(c, n)| crate::stats::wilson_interval(c, n, 1.96));
        Rate {
            count,
            total,
            value: (total > 0).then(|| count as f64 / total as f64),
            low: interval.map(|i| i.0),
            high: interval.map(|i| i.1),
        }
    }
}

/// Counts per hour for a chart: `hours[i]` starts at `start + i` hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HourlySeries {
    /// Start of the first hour (RFC 3339).
    pub start: String,
    /// One value per hour, oldest first; the last hour is still running.
    pub values: Vec<f64>,
}

/// Throughput and routing over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Flow {
    /// Verdicts in the last hour.
    pub verdicts_last_hour: i64,
    /// Verdicts per hour over the last day (chart).
    pub verdicts_per_hour: HourlySeries,
    /// Median milliseconds from claim to verdict (last hour, last day).
    pub handling_p50_ms: Window,
    /// 90th percentile of the same.
    pub handling_p90_ms: Window,
    /// Events that went to review, of events ingested (last day).
    pub event_review_rate: Rate,
    /// Sessions with at least one reviewed event, of sessions finalized (last day).
    pub session_review_rate: Rate,
    /// Audit samples whose human label differs from the model's guess, of
    /// audit samples resolved (last 7 days): the estimated error of
    /// auto-accepted events.
    pub auto_accept_error: Rate,
}

/// A figure over the last hour and over the last day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Window {
    /// Last hour.
    pub hour: Option<f64>,
    /// Last day.
    pub day: Option<f64>,
}

/// Receipt latency (exit to final receipt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Receipts {
    /// Receipts finalized in the last hour.
    pub finalized_last_hour: i64,
    /// Receipts finalized in the last day.
    pub finalized_last_day: i64,
    /// Median latency in milliseconds.
    pub p50_ms: Window,
    /// 95th percentile.
    pub p95_ms: Window,
    /// 99th percentile.
    pub p99_ms: Window,
    /// Sessions that exited and wait for their receipt.
    pub pending: i64,
    /// Of them, those past their receipt deadline.
    pub pending_past_deadline: i64,
    /// p95 latency per hour over the last day (chart); 0 for an hour in
    /// which no receipt was finalized (see `finalized_per_hour`).
    pub p95_per_hour: HourlySeries,
    /// Receipts finalized per hour over the last day (chart), the same hours
    /// as `p95_per_hour`.
    pub finalized_per_hour: HourlySeries,
}

/// One labeler over the last day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LabelerStats {
    /// User id.
    pub labeler_id: String,
    /// Login name.
    pub username: String,
    /// Verdicts in the last day (gold answers included).
    pub verdicts: i64,
    /// Verdicts per hour of activity: verdicts over the hours in which the
    /// labeler gave at least one.
    pub tasks_per_hour: f64,
    /// Median handling time in milliseconds.
    pub median_handling_ms: Option<f64>,
    /// Gold answers that matched the known label (last 7 days).
    pub gold_accuracy: Rate,
    /// Verdicts that matched the task's final label, of verdicts on tasks
    /// resolved in the last day.
    pub agreement: Rate,
    /// Gold accuracy is below the configured minimum over enough answers.
    pub flagged: bool,
}

/// Krippendorff's alpha (nominal) over tasks with two or more verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agreement {
    /// Alpha, absent when undefined (fewer than two pairable values or no
    /// variation at all).
    pub alpha: Option<f64>,
    /// Tasks with two or more verdicts that it covers.
    pub tasks: i64,
    /// Verdicts in those tasks.
    pub values: i64,
}

/// How well one model version's confidence matches how often it is right,
/// over events a human labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelCalibration {
    /// The store's model version string.
    pub model_version: String,
    /// Human-labelled events counted.
    pub total: i64,
    /// Expected calibration error: `Σ (n_b / N) · |accuracy_b − confidence_b|`.
    pub ece: f64,
    /// Non-empty bins of the reliability diagram, lowest confidence first.
    pub bins: Vec<ReliabilityBin>,
}

/// One bar of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReliabilityBin {
    /// Lower edge of the confidence range.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Events in the bin.
    pub count: i64,
    /// Their mean top confidence.
    pub mean_confidence: f64,
    /// The share the model got right.
    pub accuracy: f64,
}

/// Events of one store in one top-confidence bin, by what happened to them;
/// the input of the threshold recommendation (see `domain::recommend`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfidenceBin {
    /// Bin index: the bin covers `[bin / 100, (bin + 1) / 100)`, the last
    /// one includes 1.0.
    pub bin: i64,
    /// Resolved events in the bin.
    pub events: i64,
    /// Sent to review whatever the threshold: small margin or high value
    /// (and events with no candidate).
    pub forced: i64,
    /// Sent to review for low confidence, with a human label.
    pub low_confidence: i64,
    /// Of those, where the human label differs from the model's guess.
    pub low_confidence_wrong: i64,
    /// Audit samples with a human label.
    pub audited: i64,
    /// Of those, where the human label differs from the model's guess.
    pub audited_wrong: i64,
    /// Auto-accepted without a human.
    pub auto_accepted: i64,
}
