//! The dashboard snapshot as the page shows it: every number already written
//! for a person (see [`super::format`]) and every chart drawn as SVG on the
//! server (see [`super::charts`]), so the page needs no charting script and
//! the live refresh is a plain swap of server-rendered HTML.

use crate::domain::dashboard::{
    Dashboard, Disputes, ForecastState, HourlySeries, Rate, Staffing, StoreNeed, Window,
    WORKING_WINDOW_MS,
};
use crate::domain::time::{format_rfc3339_ms, parse_rfc3339_ms};

use super::charts;
use super::format::{count, duration_ms, number, rate};

/// Auto-accept error above this share is shown as a warning; the routing
/// recommendation aims under it too.
pub const TARGET_AUTO_ACCEPT_ERROR: f64 = crate::domain::recommend::DEFAULT_TARGET_ERROR;

/// A figure with its caption and an optional state class (`ok`, `warn`, `bad`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Stable id for tests and links.
    pub id: &'static str,
    /// What the number is.
    pub label: &'static str,
    /// The number.
    pub value: String,
    /// Interval, sample size or the second window.
    pub detail: String,
    /// CSS state class.
    pub state: &'static str,
}

/// One row of the queue table.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    /// Store name.
    pub store: String,
    /// Store id (links to its policy page).
    pub store_id: String,
    /// Tasks waiting for their clips.
    pub waiting: String,
    /// Ready tasks.
    pub ready: String,
    /// Leased tasks.
    pub leased: String,
    /// Escalated tasks.
    pub escalated: String,
    /// Age of the oldest ready task.
    pub oldest: String,
    /// Open tasks past their receipt deadline.
    pub past_deadline: String,
    /// Open tasks due within the deadline lead time.
    pub at_risk: String,
    /// Labelers its staffing forecast needs this hour (`…` while it is
    /// made, `–` without history).
    pub needed: String,
    /// `bad` when any task is late, `warn` when any is at risk.
    pub state: &'static str,
}

/// One row of the labeler table.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelerRow {
    /// Login name.
    pub username: String,
    /// Verdicts in the last day.
    pub verdicts: String,
    /// Verdicts per active hour.
    pub per_hour: String,
    /// Median handling time.
    pub median: String,
    /// Gold accuracy.
    pub gold: String,
    /// Its interval.
    pub gold_detail: String,
    /// Agreement with the final label.
    pub agreement: String,
    /// Its interval.
    pub agreement_detail: String,
    /// Flagged for low gold accuracy.
    pub flagged: bool,
}

/// One model version's calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Version string.
    pub version: String,
    /// Labelled events.
    pub total: String,
    /// Expected calibration error.
    pub ece: String,
    /// Reliability diagram (SVG).
    pub diagram: String,
}

/// Everything the dashboard body template shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardView {
    /// When the snapshot was taken, as "HH:MM:SS UTC".
    pub generated_at: String,
    /// The same, RFC 3339.
    pub generated_at_iso: String,
    /// Per-store queue rows.
    pub queue: Vec<QueueRow>,
    /// Totals over all stores.
    pub queue_total: QueueRow,
    /// Labelers working now and needed this hour.
    pub staffing: Vec<Tile>,
    /// Flow tiles.
    pub flow: Vec<Tile>,
    /// Receipt tiles.
    pub receipts: Vec<Tile>,
    /// Verdicts per hour chart (SVG).
    pub verdicts_chart: String,
    /// Receipt p95 per hour chart (SVG).
    pub receipts_chart: String,
    /// Labelers, flagged first.
    pub labelers: Vec<LabelerRow>,
    /// Flagged labelers' names.
    pub flagged: Vec<String>,
    /// Krippendorff's alpha tile.
    pub agreement: Tile,
    /// Calibration per model version.
    pub models: Vec<ModelRow>,
}

fn window(w: &Window) -> (String, String) {
    (
        duration_ms(w.hour),
        format!("last day {}", duration_ms(w.day)),
    )
}

fn tile(id: &'static str, label: &'static str, value: String, detail: String) -> Tile {
    Tile {
        id,
        label,
        value,
        detail,
        state: "",
    }
}

fn rate_tile(id: &'static str, label: &'static str, r: &Rate) -> Tile {
    let (value, detail) = rate(r);
    tile(id, label, value, detail)
}

/// Disputes per receipt over 7 days, with how they ended; `bad` while any
/// was upheld (an error that escaped review reached a shopper).
fn dispute_tile(d: &Disputes) -> Tile {
    let (value, _) = rate(&d.rate);
    let mut t = tile(
        "disputes",
        "Disputes per receipt (7 days)",
        value,
        format!(
            "{} upheld · {} confirmed · {} open",
            count(d.upheld),
            count(d.confirmed),
            count(d.open)
        ),
    );
    t.state = if d.upheld > 0 { "bad" } else { "" };
    t
}

/// A store's need this hour as its queue row shows it.
fn store_need(d: &Dashboard, store_id: &str) -> String {
    match d.staffing.stores.iter().find(|s| s.store_id == store_id) {
        Some(StoreNeed {
            needed: Some(n), ..
        }) => count(*n),
        Some(s) if s.forecast == ForecastState::Making => "…".into(),
        _ => "–".into(),
    }
}

/// "Working now" against "needed this hour": `bad` when fewer work than
/// the forecasts need, `ok` when enough do.
fn staffing_tiles(s: &Staffing) -> Vec<Tile> {
    let hour = parse_rfc3339_ms(&s.hour).unwrap_or(0);
    let clock = |ms: i64| format_rfc3339_ms(ms).get(11..16).unwrap_or("").to_string();
    let forecast = s.stores.iter().filter(|s| s.needed.is_some()).count();
    let making = s
        .stores
        .iter()
        .filter(|s| s.forecast == ForecastState::Making)
        .count();
    let mut detail = format!(
        "{}–{} UTC · {} of {} stores forecast",
        clock(hour),
        clock(hour + 3_600_000),
        count(forecast as i64),
        count(s.stores.len() as i64)
    );
    if making > 0 {
        detail.push_str(&format!(" · {} being made", count(making as i64)));
    }
    let needed = tile(
        "needed-now",
        "Labelers needed this hour",
        s.needed.map_or("–".into(), count),
        detail,
    );
    let mut working = tile(
        "working-now",
        "Labelers working now",
        count(s.working),
        format!("held a task in the last {} min", WORKING_WINDOW_MS / 60_000),
    );
    working.state = match s.needed {
        Some(n) if s.working < n => "bad",
        Some(_) => "ok",
        None => "",
    };
    vec![working, needed]
}

/// "HH:00" labels for the hours of a series.
fn hour_labels(series: &HourlySeries) -> Vec<String> {
    let start = parse_rfc3339_ms(&series.start).unwrap_or(0);
    (0..series.values.len())
        .map(|i| {
            let t = format_rfc3339_ms(start + i as i64 * 3_600_000);
            // "2026-11-25T14:00:00.000Z" -> "14:00"
            t.get(11..16).unwrap_or("").to_string()
        })
        .collect()
}

/// The counts of one queue row.
struct QueueCounts {
    waiting: i64,
    ready: i64,
    leased: i64,
    escalated: i64,
    oldest: Option<i64>,
    late: i64,
    at_risk: i64,
    needed: String,
}

fn queue_row(store: String, store_id: String, c: QueueCounts) -> QueueRow {
    let QueueCounts {
        waiting,
        ready,
        leased,
        escalated,
        oldest,
        late,
        at_risk,
        needed,
    } = c;
    QueueRow {
        store,
        store_id,
        waiting: count(waiting),
        ready: count(ready),
        leased: count(leased),
        escalated: count(escalated),
        oldest: duration_ms(oldest.map(|v| v as f64)),
        past_deadline: count(late),
        at_risk: count(at_risk),
        needed,
        state: if late > 0 {
            "bad"
        } else if at_risk > 0 {
            "warn"
        } else {
            ""
        },
    }
}

/// Builds the view of a snapshot.
pub fn view(d: &Dashboard) -> DashboardView {
    let generated = parse_rfc3339_ms(&d.generated_at).unwrap_or(0);
    let queue: Vec<QueueRow> = d
        .queue
        .iter()
        .map(|q| {
            queue_row(
                q.store_name.clone(),
                q.store_id.clone(),
                QueueCounts {
                    waiting: q.waiting,
                    ready: q.ready,
                    leased: q.leased,
                    escalated: q.escalated,
                    oldest: q.oldest_ready_ms,
                    late: q.past_deadline,
                    at_risk: q.at_risk,
                    needed: store_need(d, &q.store_id),
                },
            )
        })
        .collect();
    let queue_total = queue_row(
        "All stores".into(),
        String::new(),
        QueueCounts {
            waiting: d.queue.iter().map(|q| q.waiting).sum(),
            ready: d.queue.iter().map(|q| q.ready).sum(),
            leased: d.queue.iter().map(|q| q.leased).sum(),
            escalated: d.queue.iter().map(|q| q.escalated).sum(),
            oldest: d.queue.iter().filter_map(|q| q.oldest_ready_ms).max(),
            late: d.queue.iter().map(|q| q.past_deadline).sum(),
            at_risk: d.queue.iter().map(|q| q.at_risk).sum(),
            needed: d.staffing.needed.map_or("–".into(), count),
        },
    );
    let staffing = staffing_tiles(&d.staffing);

    let f = &d.flow;
    let (p50, p50_day) = window(&f.handling_p50_ms);
    let (p90, p90_day) = window(&f.handling_p90_ms);
    let mut error = rate_tile(
        "auto-accept-error",
        "Auto-accept error (audits, 7 days)",
        &f.auto_accept_error,
    );
    error.state = match (f.auto_accept_error.value, f.auto_accept_error.high) {
        (Some(v), _) if v > TARGET_AUTO_ACCEPT_ERROR => "bad",
        (Some(_), Some(high)) if high > TARGET_AUTO_ACCEPT_ERROR => "warn",
        (Some(_), _) => "ok",
        _ => "",
    };
    let flow = vec![
        tile(
            "verdicts-hour",
            "Verdicts, last hour",
            count(f.verdicts_last_hour),
            format!(
                "last day {}",
                count(f.verdicts_per_hour.values.iter().sum::<f64>().round() as i64)
            ),
        ),
        tile("handling-p50", "Handling time, median", p50, p50_day),
        tile("handling-p90", "Handling time, p90", p90, p90_day),
        rate_tile(
            "event-review-rate",
            "Events that needed a human (day)",
            &f.event_review_rate,
        ),
        rate_tile(
            "session-review-rate",
            "Sessions that needed a human (day)",
            &f.session_review_rate,
        ),
        error,
    ];

    let r = &d.receipts;
    let (r50, r50_day) = window(&r.p50_ms);
    let (r95, r95_day) = window(&r.p95_ms);
    let (r99, r99_day) = window(&r.p99_ms);
    let mut pending = tile(
        "receipts-pending",
        "Receipts pending",
        count(r.pending),
        format!("{} past deadline", count(r.pending_past_deadline)),
    );
    pending.state = if r.pending_past_deadline > 0 {
        "bad"
    } else {
        ""
    };
    let receipts = vec![
        tile(
            "receipts-finalized",
            "Receipts, last hour",
            count(r.finalized_last_hour),
            format!("last day {}", count(r.finalized_last_day)),
        ),
        tile("receipt-p50", "Receipt latency, median", r50, r50_day),
        tile("receipt-p95", "Receipt latency, p95", r95, r95_day),
        tile("receipt-p99", "Receipt latency, p99", r99, r99_day),
        pending,
        dispute_tile(&d.disputes),
    ];

    let mut labelers: Vec<LabelerRow> = d
        .labelers
        .iter()
        .map(|l| {
            let (gold, gold_detail) = rate(&l.gold_accuracy);
            let (agreement, agreement_detail) = rate(&l.agreement);
            LabelerRow {
                username: l.username.clone(),
                verdicts: count(l.verdicts),
                per_hour: number(Some(l.tasks_per_hour), 1),
                median: duration_ms(l.median_handling_ms),
                gold,
                gold_detail,
                agreement,
                agreement_detail,
                flagged: l.flagged,
            }
        })
        .collect();
    labelers.sort_by_key(|l| !l.flagged);
    let flagged = labelers
        .iter()
        .filter(|l| l.flagged)
        .map(|l| l.username.clone())
        .collect();

    let a = &d.agreement;
    let mut agreement = tile(
        "alpha",
        "Krippendorff's alpha (day)",
        number(a.alpha, 3),
        format!(
            "{} tasks with 2+ verdicts · {} verdicts",
            count(a.tasks),
            count(a.values)
        ),
    );
    agreement.state = match a.alpha {
        Some(v) if v >= 0.8 => "ok",
        Some(v) if v >= 0.667 => "warn",
        Some(_) => "bad",
        None => "",
    };

    let models = d
        .models
        .iter()
        .map(|m| ModelRow {
            version: m.model_version.clone(),
            total: count(m.total),
            ece: number(Some(m.ece), 3),
            diagram: charts::reliability_diagram(
                &format!("Reliability of {}", m.model_version),
                &m.bins,
                m.ece,
            ),
        })
        .collect();

    // An hour without receipts has no latency: a gap, not a zero.
    let p95_seconds: Vec<Option<f64>> = r
        .p95_per_hour
        .values
        .iter()
        .zip(&r.finalized_per_hour.values)
        .map(|(ms, n)| (*n > 0.0).then_some(ms / 1000.0))
        .collect();
    DashboardView {
        generated_at: format_rfc3339_ms(generated)
            .get(11..19)
            .map(|t| format!("{t} UTC"))
            .unwrap_or_default(),
        generated_at_iso: d.generated_at.clone(),
        queue,
        queue_total,
        staffing,
        flow,
        receipts,
        verdicts_chart: charts::bar_chart_hourly(
            "Verdicts per hour, last day",
            &f.verdicts_per_hour.values,
            &hour_labels(&f.verdicts_per_hour),
            "verdicts",
        ),
        receipts_chart: charts::line_chart(
            "Receipt latency p95 per hour (seconds)",
            &[("p95", &p95_seconds)],
            &hour_labels(&r.p95_per_hour),
            "s",
            None,
        ),
        labelers,
        flagged,
        agreement,
        models,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dashboard::*;

    fn rate(count: i64, total: i64) -> Rate {
        Rate::new(count, total)
    }

    fn series(values: Vec<f64>) -> HourlySeries {
        HourlySeries {
            start: "2026-11-24T11:00:00.000Z".into(),
            values,
        }
    }

    fn snapshot() -> Dashboard {
        Dashboard {
            generated_at: "2026-11-25T10:30:05.000Z".into(),
            rollup_watermark: "2026-11-25T10:29:50.000Z".into(),
            queue: vec![
                StoreQueue {
                    store_id: "s1".into(),
                    store_name: "Main St".into(),
                    waiting: 12,
                    ready: 1200,
                    leased: 40,
                    escalated: 3,
                    oldest_ready_ms: Some(185_000),
                    past_deadline: 2,
                    at_risk: 1,
                },
                StoreQueue {
                    store_id: "s2".into(),
                    store_name: "Airport".into(),
                    waiting: 0,
                    ready: 5,
                    leased: 1,
                    escalated: 0,
                    oldest_ready_ms: None,
                    past_deadline: 0,
                    at_risk: 0,
                },
            ],
            flow: Flow {
                verdicts_last_hour: 340,
                verdicts_per_hour: series(vec![300.0; 24]),
                handling_p50_ms: Window {
                    hour: Some(8_000.0),
                    day: Some(9_500.0),
                },
                handling_p90_ms: Window {
                    hour: Some(21_000.0),
                    day: None,
                },
                event_review_rate: rate(120, 1000),
                session_review_rate: rate(90, 400),
                auto_accept_error: rate(4, 500),
            },
            receipts: Receipts {
                finalized_last_hour: 50,
                finalized_last_day: 1100,
                p50_ms: Window {
                    hour: Some(30_000.0),
                    day: Some(31_000.0),
                },
                p95_ms: Window {
                    hour: Some(400_000.0),
                    day: None,
                },
                p99_ms: Window {
                    hour: None,
                    day: None,
                },
                pending: 7,
                pending_past_deadline: 1,
                p95_per_hour: series(vec![400_000.0; 24]),
                finalized_per_hour: series(vec![45.0; 24]),
            },
            labelers: vec![
                LabelerStats {
                    labeler_id: "u1".into(),
                    username: "ana".into(),
                    verdicts: 200,
                    tasks_per_hour: 51.25,
                    median_handling_ms: Some(7_000.0),
                    gold_accuracy: rate(19, 20),
                    agreement: rate(180, 190),
                    flagged: false,
                },
                LabelerStats {
                    labeler_id: "u2".into(),
                    username: "bob".into(),
                    verdicts: 150,
                    tasks_per_hour: 40.0,
                    median_handling_ms: Some(9_000.0),
                    gold_accuracy: rate(6, 12),
                    agreement: rate(100, 140),
                    flagged: true,
                },
            ],
            agreement: Agreement {
                alpha: Some(0.7432),
                tasks: 80,
                values: 170,
            },
            models: vec![ModelCalibration {
                model_version: "m<1>".into(),
                total: 300,
                ece: 0.0412,
                bins: vec![ReliabilityBin {
                    from: 0.5,
                    to: 0.6,
                    count: 300,
                    mean_confidence: 0.55,
                    accuracy: 0.6,
                }],
            }],
            disputes: Disputes::of(400, 4, 1, 2),
            staffing: Staffing {
                hour: "2026-11-25T10:00:00.000Z".into(),
                working: 3,
                needed: Some(4),
                stores: vec![
                    StoreNeed {
                        store_id: "s1".into(),
                        store_name: "Main St".into(),
                        forecast: ForecastState::Ready,
                        needed: Some(4),
                    },
                    StoreNeed {
                        store_id: "s2".into(),
                        store_name: "Airport".into(),
                        forecast: ForecastState::Making,
                        needed: None,
                    },
                ],
            },
        }
    }

    #[test]
    fn staffing_shows_working_against_needed() {
        let mut d = snapshot();
        let v = view(&d);
        assert_eq!(
            (v.queue[0].needed.as_str(), v.queue[1].needed.as_str()),
            ("4", "…")
        );
        assert_eq!(v.queue_total.needed, "4");
        let working = &v.staffing[0];
        assert_eq!((working.value.as_str(), working.state), ("3", "bad"));
        assert_eq!(
            v.staffing[1].detail,
            "10:00–11:00 UTC · 1 of 2 stores forecast · 1 being made"
        );
        d.staffing.working = 4;
        assert_eq!(view(&d).staffing[0].state, "ok", "enough at work");
        d.staffing.needed = None;
        d.staffing.stores[0] = StoreNeed {
            forecast: ForecastState::NoHistory,
            needed: None,
            ..d.staffing.stores[0].clone()
        };
        let v = view(&d);
        assert_eq!(
            (v.staffing[0].state, v.staffing[1].value.as_str()),
            ("", "–")
        );
        assert_eq!(v.queue[0].needed, "–");
    }

    #[test]
    fn the_view_writes_every_number_for_a_person() {
        let v = view(&snapshot());
        assert_eq!(v.generated_at, "10:30:05 UTC");
        assert_eq!(v.queue[0].ready, "1,200");
        assert_eq!(v.queue[0].oldest, "3 min 05 s");
        assert_eq!(v.queue[0].state, "bad", "tasks past their deadline");
        assert_eq!(v.queue[1].oldest, "–");
        assert_eq!(v.queue[1].state, "");
        let disputes = v.receipts.iter().find(|t| t.id == "disputes").unwrap();
        assert_eq!(disputes.value, "1.0 %");
        assert_eq!(disputes.detail, "1 upheld · 2 confirmed · 1 open");
        assert_eq!(
            disputes.state, "bad",
            "an upheld dispute is an error that escaped"
        );
        assert_eq!(v.queue_total.ready, "1,205");
        assert_eq!(
            (v.queue[0].waiting.as_str(), v.queue_total.waiting.as_str()),
            ("12", "12")
        );
        assert_eq!(v.queue_total.past_deadline, "2");
        assert_eq!(
            (v.queue[0].at_risk.as_str(), v.queue_total.at_risk.as_str()),
            ("1", "1")
        );
        let tile = |id: &str| {
            v.flow
                .iter()
                .chain(&v.receipts)
                .find(|t| t.id == id)
                .unwrap()
        };
        assert_eq!(tile("verdicts-hour").value, "340");
        assert_eq!(tile("verdicts-hour").detail, "last day 7,200");
        assert_eq!(tile("handling-p50").value, "8.0 s");
        assert_eq!(tile("handling-p50").detail, "last day 9.5 s");
        assert_eq!(tile("handling-p90").detail, "last day –");
        assert_eq!(tile("event-review-rate").value, "12.0 %");
        assert!(tile("event-review-rate").detail.ends_with("n = 1,000"));
        // 4 errors in 500 audits: 0.8 %, over the 0.5 % target.
        assert_eq!(tile("auto-accept-error").value, "0.80 %");
        assert_eq!(tile("auto-accept-error").state, "bad");
        assert_eq!(tile("receipt-p95").value, "6 min 40 s");
        assert_eq!(tile("receipt-p99").value, "–");
        assert_eq!(tile("receipts-pending").state, "bad");
        assert_eq!(v.labelers[0].username, "bob", "flagged labelers first");
        assert_eq!(v.flagged, vec!["bob".to_string()]);
        assert_eq!(v.labelers[1].per_hour, "51.2");
        assert_eq!(v.agreement.value, "0.743");
        assert_eq!(v.agreement.state, "warn");
        assert_eq!(v.models[0].ece, "0.041");
        assert!(v.models[0].diagram.contains("m&lt;1&gt;"), "titles escaped");
        assert!(v.verdicts_chart.starts_with("<svg"));
        assert!(v.receipts_chart.starts_with("<svg"));
    }

    #[test]
    fn audit_error_under_target_is_ok_only_when_its_interval_is() {
        let mut d = snapshot();
        d.flow.auto_accept_error = rate(1, 400);
        let v = view(&d);
        let t = v.flow.iter().find(|t| t.id == "auto-accept-error").unwrap();
        assert_eq!(t.state, "warn", "0.25 % but the upper bound is over 0.5 %");
        d.flow.auto_accept_error = rate(0, 5000);
        let v = view(&d);
        let t = v.flow.iter().find(|t| t.id == "auto-accept-error").unwrap();
        assert_eq!(t.state, "ok");
    }

    #[test]
    fn the_body_template_renders_an_empty_dashboard() {
        let mut d = snapshot();
        d.queue.clear();
        d.labelers.clear();
        d.models.clear();
        d.flow.verdicts_per_hour.values = vec![0.0; 24];
        let v = view(&d);
        let html =
            askama::Template::render(&super::super::supervisor::DashboardBody { v: &v }).unwrap();
        assert!(html.contains("No verdicts in the last day."));
        assert!(html.contains("No human-labelled events in the last 7 days."));
        assert!(!html.contains("flagged-alert"));
    }
}
