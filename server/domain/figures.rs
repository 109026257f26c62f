//! The dashboard's figures from rollup buckets: which buckets each window
//! takes, and the arithmetic on them (docs/dashboard.md, "Numbers").
//!
//! Windows are whole buckets, so they are the same whether a bucket was
//! filled by the rollup job, by the live tail, or partly by both:
//!
//! - last hour: the 60 minute buckets up to and including the current one;
//! - last day: the 24 hour buckets up to and including the current one;
//! - last 7 days: the 7 UTC days up to and including today.

use std::collections::{BTreeMap, BTreeSet};

use crate::dashboard::{
    Agreement, Dashboard, Disputes, Flow, HourlySeries, LabelerStats, ModelCalibration, Rate,
    Receipts, ReliabilityBin, Staffing, StoreQueue, Window,
};
use crate::histogram::Histogram;
use crate::rollup::{bucket, LabelerFlow, Rollup, StoreFlow, CALIBRATION_BINS, DAY, HOUR, MINUTE};
use crate::stats::{self, AlphaSums, BinTotals};
use crate::time::format_rfc3339_ms;

/// The windows of a snapshot taken at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// The instant of the snapshot.
    pub now: i64,
    /// Start of the last-hour window (a minute boundary).
    pub hour_from: i64,
    /// Start of the last-day window (an hour boundary).
    pub day_from: i64,
    /// Start of the 7-day window (a UTC day boundary).
    pub week_from: i64,
}

impl Windows {
    /// The windows ending at `now`.
    pub fn at(now: i64) -> Windows {
        Windows {
            now,
            hour_from: bucket(now, MINUTE) - 59 * MINUTE,
            day_from: bucket(now, HOUR) - 23 * HOUR,
            week_from: bucket(now, DAY) - 6 * DAY,
        }
    }

    /// The earliest instant any figure counts.
    pub fn earliest(&self) -> i64 {
        self.week_from.min(self.day_from).min(self.hour_from)
    }
}

/// What the dashboard reads live rather than from rollups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// Open tasks per store.
    pub queue: Vec<StoreQueue>,
    /// Sessions that exited and wait for their receipt.
    pub pending: i64,
    /// Of them, past their receipt deadline.
    pub pending_past_deadline: i64,
    /// How far the rollups reach.
    pub watermark: i64,
    /// Login names by user id.
    pub usernames: BTreeMap<String, String>,
    /// Shopper disputes of the last 7 days.
    pub disputes: Disputes,
    /// Labelers who held a task lately.
    pub working: i64,
}

/// The minimum gold accuracy and the answers needed before it counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoldRule {
    /// Below this accuracy a labeler is flagged.
    pub min_accuracy: f64,
    /// Fewer answers than this never flag.
    pub min_answers: u64,
}

/// Whether a gold accuracy flags its labeler.
fn flagged(gold: &Rate, rule: GoldRule) -> bool {
    crate::gold::flagged(gold.total, gold.count, rule.min_accuracy, rule.min_answers)
}

/// Store-level totals of the buckets of `grain` starting in `[from, ..)`.
fn store_total(rollup: &Rollup, grain: i64, from: i64) -> StoreFlow {
    let mut total = StoreFlow::default();
    for (k, v) in &rollup.stores {
        if k.grain == grain && k.start >= from {
            total.merge(v);
        }
    }
    total
}

/// Store-level totals per hour of the last day, oldest first.
fn store_hours(rollup: &Rollup, w: &Windows) -> Vec<StoreFlow> {
    let mut hours = vec![StoreFlow::default(); 24];
    for (k, v) in &rollup.stores {
        if k.grain == HOUR && k.start >= w.day_from {
            let i = ((k.start - w.day_from) / HOUR) as usize;
            if let Some(h) = hours.get_mut(i) {
                h.merge(v);
            }
        }
    }
    hours
}

fn series(w: &Windows, values: Vec<f64>) -> HourlySeries {
    HourlySeries {
        start: format_rfc3339_ms(w.day_from),
        values,
    }
}

fn window(hour: &Histogram, day: &Histogram, p: f64) -> Window {
    Window {
        hour: hour.percentile(p),
        day: day.percentile(p),
    }
}

/// The whole dashboard from buckets covering its windows and live state.
pub fn build(w: &Windows, live: Live, rollup: &Rollup, gold: GoldRule) -> Dashboard {
    let last_hour = store_total(rollup, MINUTE, w.hour_from);
    let last_day = store_total(rollup, HOUR, w.day_from);
    let hours = store_hours(rollup, w);
    let mut audited = (0, 0);
    for (k, m) in &rollup.models {
        if k.day >= w.week_from {
            audited.0 += m.audited_wrong;
            audited.1 += m.audited;
        }
    }
    let flow = Flow {
        verdicts_last_hour: last_hour.verdicts,
        verdicts_per_hour: series(w, hours.iter().map(|h| h.verdicts as f64).collect()),
        handling_p50_ms: window(&last_hour.handling, &last_day.handling, 50.0),
        handling_p90_ms: window(&last_hour.handling, &last_day.handling, 90.0),
        event_review_rate: Rate::new(last_day.events_reviewed, last_day.events),
        session_review_rate: Rate::new(last_day.receipts_reviewed, last_day.receipts),
        auto_accept_error: Rate::new(audited.0, audited.1),
    };
    let receipts = Receipts {
        finalized_last_hour: last_hour.receipts,
        finalized_last_day: last_day.receipts,
        p50_ms: window(&last_hour.latency, &last_day.latency, 50.0),
        p95_ms: window(&last_hour.latency, &last_day.latency, 95.0),
        p99_ms: window(&last_hour.latency, &last_day.latency, 99.0),
        pending: live.pending,
        pending_past_deadline: live.pending_past_deadline,
        p95_per_hour: series(
            w,
            hours
                .iter()
                .map(|h| h.latency.percentile(95.0).unwrap_or(0.0))
                .collect(),
        ),
        finalized_per_hour: series(w, hours.iter().map(|h| h.receipts as f64).collect()),
    };
    Dashboard {
        generated_at: format_rfc3339_ms(w.now),
        rollup_watermark: format_rfc3339_ms(live.watermark),
        queue: live.queue,
        flow,
        receipts,
        labelers: labelers(w, rollup, &live.usernames, gold),
        agreement: agreement(&last_day.alpha),
        models: models(w, rollup),
        disputes: live.disputes,
        staffing: Staffing {
            hour: format_rfc3339_ms(w.now - w.now.rem_euclid(HOUR)),
            working: live.working,
            needed: None,
            stores: Vec::new(),
        },
    }
}

fn agreement(sums: &AlphaSums) -> Agreement {
    Agreement {
        alpha: sums.alpha(),
        tasks: sums.units as i64,
        values: sums.values() as i64,
    }
}

/// Labelers with a verdict in the last day, and labelers flagged on their
/// last 7 days of gold answers though quiet today (a flag stays visible
/// until the accuracy recovers or the answers age out): flagged first, then
/// lowest gold accuracy, then lowest agreement (labelers without a figure
/// after those with one), then by name.
fn labelers(
    w: &Windows,
    rollup: &Rollup,
    usernames: &BTreeMap<String, String>,
    gold: GoldRule,
) -> Vec<LabelerStats> {
    let mut day: BTreeMap<&str, (LabelerFlow, BTreeSet<i64>)> = BTreeMap::new();
    let mut week: BTreeMap<&str, LabelerFlow> = BTreeMap::new();
    for (k, v) in &rollup.labelers {
        if k.grain == HOUR && k.start >= w.day_from {
            let e = day.entry(k.labeler_id.as_str()).or_default();
            e.0.merge(v);
            if v.verdicts > 0 {
                e.1.insert(k.start);
            }
        } else if k.grain == DAY && k.start >= w.week_from {
            week.entry(k.labeler_id.as_str()).or_default().merge(v);
        }
    }
    let mut out: Vec<LabelerStats> = day
        .into_iter()
        .filter(|(_, (f, _))| f.verdicts > 0)
        .map(|(id, (f, active_hours))| {
            let g = week.get(id).cloned().unwrap_or_default();
            let gold_accuracy = Rate::new(g.gold_correct, g.gold_answers);
            LabelerStats {
                labeler_id: id.to_string(),
                username: usernames.get(id).cloned().unwrap_or_default(),
                verdicts: f.verdicts,
                tasks_per_hour: f.verdicts as f64 / active_hours.len().max(1) as f64,
                median_handling_ms: f.handling.percentile(50.0),
                flagged: flagged(&gold_accuracy, gold),
                gold_accuracy,
                agreement: Rate::new(f.agreed, f.judged),
            }
        })
        .collect();
    let listed: BTreeSet<String> = out.iter().map(|l| l.labeler_id.clone()).collect();
    for (id, g) in &week {
        let gold_accuracy = Rate::new(g.gold_correct, g.gold_answers);
        if listed.contains(*id) || !flagged(&gold_accuracy, gold) {
            continue;
        }
        out.push(LabelerStats {
            labeler_id: id.to_string(),
            username: usernames.get(*id).cloned().unwrap_or_default(),
            verdicts: 0,
            tasks_per_hour: 0.0,
            median_handling_ms: None,
            flagged: true,
            gold_accuracy,
            agreement: Rate::new(0, 0),
        });
    }
    let lowest_first = |r: &Rate| r.value.unwrap_or(f64::INFINITY);
    out.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(lowest_first(&a.gold_accuracy).total_cmp(&lowest_first(&b.gold_accuracy)))
            .then(lowest_first(&a.agreement).total_cmp(&lowest_first(&b.agreement)))
            .then_with(|| a.username.cmp(&b.username))
    });
    out
}

/// Calibration per model version over the last 7 days, by version name.
fn models(w: &Windows, rollup: &Rollup) -> Vec<ModelCalibration> {
    let mut per_model: BTreeMap<&str, BTreeMap<usize, BinTotals>> = BTreeMap::new();
    for (k, m) in &rollup.models {
        if k.day < w.week_from {
            continue;
        }
        let t = per_model
            .entry(k.model_version.as_str())
            .or_default()
            .entry(k.bin as usize)
            .or_default();
        t.count += m.labelled as u64;
        t.right += m.correct as u64;
        t.confidence_sum += m.confidence_micros as f64 / 1e6;
    }
    per_model
        .into_iter()
        .map(|(version, totals)| {
            let c = stats::calibration_from_totals(&totals, CALIBRATION_BINS);
            ModelCalibration {
                model_version: version.to_string(),
                total: c.total as i64,
                ece: c.ece,
                bins: c
                    .bins
                    .into_iter()
                    .map(|b| ReliabilityBin {
                        from: b.from,
                        to: b.to,
                        count: b.count as i64,
                        mean_confidence: b.mean_confidence,
                        accuracy: b.accuracy,
                    })
                    .collect(),
            }
        })
        .filter(|m| m.total > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{EventCreated, GoldAnswered, ReceiptFinalized, VerdictGiven};

    const NOW: i64 = 1_795_600_800_000 + 30 * MINUTE + 15_000; // 10:30:15 UTC

    #[test]
    fn windows_are_whole_buckets_ending_with_the_current_one() {
        let w = Windows::at(NOW);
        assert_eq!(w.hour_from, NOW - 15_000 - 59 * MINUTE);
        assert_eq!(w.day_from, NOW - 30 * MINUTE - 15_000 - 23 * HOUR);
        assert_eq!(w.week_from, bucket(NOW, DAY) - 6 * DAY);
        assert_eq!(w.earliest(), w.week_from);
    }

    #[test]
    fn figures_take_only_the_buckets_of_their_window() {
        let w = Windows::at(NOW);
        let mut r = Rollup::default();
        for (minutes_ago, handling) in [(0, 1_000), (59, 2_000), (61, 4_000), (23 * 60 + 31, 8_000)]
        {
            r.verdict_given(&VerdictGiven {
                store_id: "s".into(),
                labeler_id: "ann".into(),
                at: NOW - minutes_ago * MINUTE,
                handling_ms: handling,
            });
        }
        r.event_created(&EventCreated {
            store_id: "s".into(),
            at: NOW,
            reviewed: true,
        });
        r.event_created(&EventCreated {
            store_id: "s".into(),
            at: NOW - 2 * HOUR,
            reviewed: false,
        });
        r.receipt_finalized(&ReceiptFinalized {
            store_id: "s".into(),
            at: NOW,
            latency_ms: 700,
            reviewed: false,
        });
        for i in 0..10 {
            r.gold_answered(&GoldAnswered {
                labeler_id: "ann".into(),
                at: NOW - i * DAY / 2,
                correct: i < 7,
            });
        }
        let live = Live {
            usernames: [("ann".to_string(), "Ann".to_string())].into(),
            ..Live::default()
        };
        let d = build(
            &w,
            live,
            &r,
            GoldRule {
                min_accuracy: 0.8,
                min_answers: 10,
            },
        );
        // 59 minutes ago is inside the hour (its minute bucket is the 60th).
        assert_eq!(d.flow.verdicts_last_hour, 2);
        // The day window starts at 11:00 yesterday: 23 h 31 min ago (10:59)
        // is out, three verdicts count.
        let per_hour: f64 = d.flow.verdicts_per_hour.values.iter().sum();
        assert_eq!((per_hour, d.flow.verdicts_per_hour.values.len()), (3.0, 24));
        assert_eq!(d.flow.verdicts_per_hour.values[23], 1.0);
        assert_eq!(d.flow.event_review_rate.count, 1);
        assert_eq!(d.flow.event_review_rate.total, 2);
        assert_eq!(d.receipts.finalized_per_hour.values[23], 1.0);
        assert_eq!(d.receipts.p95_per_hour.values[0], 0.0);
        let ann = &d.labelers[0];
        assert_eq!((ann.username.as_str(), ann.verdicts), ("Ann", 3));
        // Three verdicts in two hours (09:00 and 10:00).
        assert_eq!(ann.tasks_per_hour, 1.5);
        // Gold: 10 answers over 4.5 days, 7 right: 0.7 < 0.8 → flagged.
        assert_eq!((ann.gold_accuracy.count, ann.gold_accuracy.total), (7, 10));
        assert!(ann.flagged);
    }

    #[test]
    fn a_flagged_labeler_quiet_today_stays_listed() {
        let w = Windows::at(NOW);
        let mut r = Rollup::default();
        // Bob: 10 gold answers two to three days ago, 6 right; nothing today.
        // Cid: 10 right, also quiet today: not listed.
        for i in 0..10 {
            for (who, correct) in [("bob", i < 6), ("cid", true)] {
                r.gold_answered(&GoldAnswered {
                    labeler_id: who.into(),
                    at: NOW - 2 * DAY - i * HOUR,
                    correct,
                });
            }
        }
        r.verdict_given(&VerdictGiven {
            store_id: "s".into(),
            labeler_id: "ann".into(),
            at: NOW,
            handling_ms: 1_000,
        });
        let d = build(
            &w,
            Live::default(),
            &r,
            GoldRule {
                min_accuracy: 0.8,
                min_answers: 10,
            },
        );
        let listed: Vec<(&str, bool, i64)> = d
            .labelers
            .iter()
            .map(|l| (l.labeler_id.as_str(), l.flagged, l.verdicts))
            .collect();
        assert_eq!(listed, [("bob", true, 0), ("ann", false, 1)]);
        assert_eq!(d.labelers[0].gold_accuracy, Rate::new(6, 10));
        assert_eq!(d.labelers[0].agreement.total, 0);
    }

    #[test]
    fn gold_needs_enough_answers_to_flag() {
        let rule = GoldRule {
            min_accuracy: 0.8,
            min_answers: 10,
        };
        assert!(!flagged(&Rate::new(0, 9), rule));
        assert!(flagged(&Rate::new(7, 10), rule));
        assert!(!flagged(&Rate::new(8, 10), rule));
        assert!(!flagged(
            &Rate::new(0, 0),
            GoldRule {
                min_accuracy: 0.8,
                min_answers: 0
            }
        ));
    }
}
