//! Rollups: additive summaries of the raw rows the dashboard counts, per
//! time bucket, so that a figure over a day is read from a few dozen rows
//! instead of recomputed from every event.
//!
//! Each fact is keyed by a timestamp that never changes once written, and
//! carries only what can no longer change by then: an event by its
//! `created_at` (its route) and by its `resolved_at` (its final label), a
//! verdict by its `created_at`, a task by its `resolved_at` (its verdicts),
//! a receipt by its `finalized_at`, a gold answer by its `answered_at`.
//! So a fact is counted into its buckets once, and buckets merge by plain
//! addition: the rollup job adds what arrived since its watermark, the
//! dashboard adds the live tail after it, and both use the functions here.
//!
//! Every decision about what a fact counts as (is the model right, which
//! confidence bin, which routing category) is made here, once.

use std::collections::BTreeMap;

use crate::dashboard::ConfidenceBin;
use crate::histogram::Histogram;
use crate::routing::ReviewReason;
use crate::stats::{self, AlphaSums};
use crate::Label;

/// One minute in milliseconds.
pub const MINUTE: i64 = 60_000;
/// One hour in milliseconds.
pub const HOUR: i64 = 3_600_000;
/// One (UTC) day in milliseconds.
pub const DAY: i64 = 86_400_000;

/// Grains of the store-level rollup: minutes for last-hour figures, hours
/// for last-day figures and hourly charts.
pub const STORE_GRAINS: [i64; 2] = [MINUTE, HOUR];
/// Grains of the labeler-level rollup: hours for last-day figures, days for
/// the 7-day gold accuracy.
pub const LABELER_GRAINS: [i64; 2] = [HOUR, DAY];
/// Bins of a model's reliability diagram.
pub const CALIBRATION_BINS: usize = 10;
/// Bins of the per-store confidence histogram (threshold recommendation).
pub const CONFIDENCE_BINS: usize = 100;

/// The start of the bucket of `grain` milliseconds holding `t`.
pub fn bucket(t: i64, grain: i64) -> i64 {
    t - t.rem_euclid(grain)
}

/// Whether the model's guess (its event kind, top candidate and quantity)
/// is the final label.
pub fn model_right(kind: &str, top_sku: Option<&str>, quantity: i64, label: &Label) -> bool {
    label.action.as_str() == kind && label.sku.as_deref() == top_sku && label.quantity == quantity
}

/// What happened to a resolved event, for the confidence histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Taken without a human.
    AutoAccepted,
    /// Reviewed whatever the threshold: small margin, high value, or no
    /// candidate at all.
    Forced,
    /// Reviewed because the top confidence was below the threshold.
    LowConfidence,
    /// A confident event drawn for the audit sample.
    Audited,
}

/// The category of an event from its route and reason (a review reason
/// this version does not know counts as forced).
pub fn category(
    reviewed: bool,
    reason: Option<ReviewReason>,
    top_confidence: Option<f64>,
) -> Category {
    match (reviewed, reason, top_confidence) {
        // An audit sample is settled with the model's answer and checked by
        // people (off the receipt's path, so routed `auto_accepted` since
        // audits stopped holding receipts; `review` before).
        (_, Some(ReviewReason::AuditSample), _) => Category::Audited,
        (false, _, _) => Category::AutoAccepted,
        (true, Some(ReviewReason::LowConfidence), Some(_)) => Category::LowConfidence,
        _ => Category::Forced,
    }
}

/// The confidence-histogram bin of a top confidence (`None`, for an event
/// without candidates, counts as 0).
pub fn confidence_bin(top_confidence: Option<f64>) -> i64 {
    stats::calibration_bin(
        top_confidence.unwrap_or(0.0).clamp(0.0, 1.0),
        CONFIDENCE_BINS,
    ) as i64
}

/// The stored key of a label, the "value" labelers agree on.
pub fn label_key(label: &Label) -> String {
    format!(
        "{}|{}|{}",
        label.action.as_str(),
        label.sku.as_deref().unwrap_or(""),
        label.quantity
    )
}

/// An event as ingested (gold copies are never facts).
#[derive(Debug, Clone, PartialEq)]
pub struct EventCreated {
    /// Store id.
    pub store_id: String,
    /// `created_at`.
    pub at: i64,
    /// Routed to review.
    pub reviewed: bool,
}

/// An event with its final label.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResolved {
    /// Store id.
    pub store_id: String,
    /// `resolved_at`.
    pub at: i64,
    /// The model version; `None` when the store sent none.
    pub model_version: Option<String>,
    /// Routed to review (else auto-accepted).
    pub reviewed: bool,
    /// Why it went to review.
    pub reason: Option<ReviewReason>,
    /// The top candidate's confidence; `None` without candidates.
    pub top_confidence: Option<f64>,
    /// Whether the model's guess is the final label.
    pub model_right: bool,
}

/// A verdict as given (gold answers included: they are labelers' work).
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictGiven {
    /// Store of the task.
    pub store_id: String,
    /// Who answered.
    pub labeler_id: String,
    /// `created_at`.
    pub at: i64,
    /// Claim to verdict.
    pub handling_ms: i64,
}

/// A resolved review task with all its verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResolved {
    /// Store id.
    pub store_id: String,
    /// `resolved_at`.
    pub at: i64,
    /// The event's final label.
    pub label: Label,
    /// Each verdict: labeler and label, `None` for "can't tell".
    pub verdicts: Vec<(String, Option<Label>)>,
}

/// A final receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptFinalized {
    /// Store id.
    pub store_id: String,
    /// `finalized_at`.
    pub at: i64,
    /// Exit to final receipt.
    pub latency_ms: i64,
    /// Some event of the session went to review.
    pub reviewed: bool,
}

/// A labeler's answer to a gold task.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldAnswered {
    /// Who answered.
    pub labeler_id: String,
    /// `answered_at`.
    pub at: i64,
    /// Matched the known answer.
    pub correct: bool,
}

/// Key of a store-level bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey {
    /// Bucket width in milliseconds.
    pub grain: i64,
    /// Bucket start (epoch ms).
    pub start: i64,
    /// Store id.
    pub store_id: String,
}

/// What a store-level bucket counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFlow {
    /// Events ingested (by `created_at`).
    pub events: i64,
    /// Of them, routed to review.
    pub events_reviewed: i64,
    /// Verdicts given (by `created_at`).
    pub verdicts: i64,
    /// Their handling times.
    pub handling: Histogram,
    /// Receipts finalized (by `finalized_at`).
    pub receipts: i64,
    /// Of them, sessions with an event routed to review.
    pub receipts_reviewed: i64,
    /// Their latencies.
    pub latency: Histogram,
    /// Agreement sums over tasks resolved (by `resolved_at`).
    pub alpha: AlphaSums,
}

impl StoreFlow {
    /// Adds `other`.
    pub fn merge(&mut self, other: &StoreFlow) {
        self.events += other.events;
        self.events_reviewed += other.events_reviewed;
        self.verdicts += other.verdicts;
        self.handling.merge(&other.handling);
        self.receipts += other.receipts;
        self.receipts_reviewed += other.receipts_reviewed;
        self.latency.merge(&other.latency);
        self.alpha.merge(&other.alpha);
    }
}

/// Key of a labeler-level bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelerKey {
    /// Bucket width in milliseconds.
    pub grain: i64,
    /// Bucket start (epoch ms).
    pub start: i64,
    /// User id.
    pub labeler_id: String,
}

/// What a labeler-level bucket counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelerFlow {
    /// Verdicts given (by `created_at`).
    pub verdicts: i64,
    /// Their handling times.
    pub handling: Histogram,
    /// Verdicts on tasks resolved (by the task's `resolved_at`).
    pub judged: i64,
    /// Of them, equal to the final label.
    pub agreed: i64,
    /// Gold answers (by `answered_at`).
    pub gold_answers: i64,
    /// Of them, correct.
    pub gold_correct: i64,
}

impl LabelerFlow {
    /// Adds `other`.
    pub fn merge(&mut self, other: &LabelerFlow) {
        self.verdicts += other.verdicts;
        self.handling.merge(&other.handling);
        self.judged += other.judged;
        self.agreed += other.agreed;
        self.gold_answers += other.gold_answers;
        self.gold_correct += other.gold_correct;
    }
}

/// Key of a model-calibration bucket (one UTC day).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelKey {
    /// Day start (epoch ms).
    pub day: i64,
    /// Model version, empty when the store sent none.
    pub model_version: String,
    /// Calibration bin, `0..CALIBRATION_BINS`.
    pub bin: i64,
}

/// What a model-calibration bucket counts: human-labelled events with a
/// top confidence (by `resolved_at`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelFlow {
    /// Events with a human label.
    pub labelled: i64,
    /// Of them, the model's guess was the label.
    pub correct: i64,
    /// Sum of their top confidences in millionths (an integer, so sums are
    /// exact in any order).
    pub confidence_micros: i64,
    /// Audit samples among them.
    pub audited: i64,
    /// Of those, the model's guess was wrong.
    pub audited_wrong: i64,
}

impl ModelFlow {
    /// Adds `other`.
    pub fn merge(&mut self, other: &ModelFlow) {
        self.labelled += other.labelled;
        self.correct += other.correct;
        self.confidence_micros += other.confidence_micros;
        self.audited += other.audited;
        self.audited_wrong += other.audited_wrong;
    }
}

/// Key of a confidence-histogram bucket (one store, one UTC day, one bin).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfidenceKey {
    /// Store id.
    pub store_id: String,
    /// Day start (epoch ms).
    pub day: i64,
    /// Bin, `0..CONFIDENCE_BINS`.
    pub bin: i64,
}

/// Adds the counts of `other` to `bin` (the bin index stays).
pub fn merge_confidence(bin: &mut ConfidenceBin, other: &ConfidenceBin) {
    bin.events += other.events;
    bin.forced += other.forced;
    bin.low_confidence += other.low_confidence;
    bin.low_confidence_wrong += other.low_confidence_wrong;
    bin.audited += other.audited;
    bin.audited_wrong += other.audited_wrong;
    bin.auto_accepted += other.auto_accepted;
}

/// Buckets of every kind, as counted from facts or read back from storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Store-level buckets.
    pub stores: BTreeMap<StoreKey, StoreFlow>,
    /// Labeler-level buckets.
    pub labelers: BTreeMap<LabelerKey, LabelerFlow>,
    /// Model calibration per day.
    pub models: BTreeMap<ModelKey, ModelFlow>,
    /// Confidence histogram per store and day.
    pub confidence: BTreeMap<ConfidenceKey, ConfidenceBin>,
}

impl Rollup {
    fn store(&mut self, store_id: &str, at: i64, mut f: impl FnMut(&mut StoreFlow)) {
        for grain in STORE_GRAINS {
            let key = StoreKey {
                grain,
                start: bucket(at, grain),
                store_id: store_id.to_string(),
            };
            f(self.stores.entry(key).or_default());
        }
    }

    fn labeler(&mut self, labeler_id: &str, at: i64, mut f: impl FnMut(&mut LabelerFlow)) {
        for grain in LABELER_GRAINS {
            let key = LabelerKey {
                grain,
                start: bucket(at, grain),
                labeler_id: labeler_id.to_string(),
            };
            f(self.labelers.entry(key).or_default());
        }
    }

    /// Counts an ingested event.
    pub fn event_created(&mut self, e: &EventCreated) {
        self.store(&e.store_id, e.at, |s| {
            s.events += 1;
            s.events_reviewed += i64::from(e.reviewed);
        });
    }

    /// Counts a resolved event: its confidence bin and, with a human label
    /// and a confidence, its model's calibration.
    pub fn event_resolved(&mut self, e: &EventResolved) {
        let category = category(e.reviewed, e.reason, e.top_confidence);
        let wrong = i64::from(!e.model_right);
        let bin = confidence_bin(e.top_confidence);
        let key = ConfidenceKey {
            store_id: e.store_id.clone(),
            day: bucket(e.at, DAY),
            bin,
        };
        let b = self.confidence.entry(key).or_insert_with(|| ConfidenceBin {
            bin,
            ..ConfidenceBin::default()
        });
        b.events += 1;
        match category {
            Category::AutoAccepted => b.auto_accepted += 1,
            Category::Forced => b.forced += 1,
            Category::LowConfidence => {
                b.low_confidence += 1;
                b.low_confidence_wrong += wrong;
            }
            Category::Audited => {
                b.audited += 1;
                b.audited_wrong += wrong;
            }
        }
        let human_label = e.reviewed || category == Category::Audited;
        if let (true, Some(confidence)) = (human_label, e.top_confidence) {
            let key = ModelKey {
                day: bucket(e.at, DAY),
                model_version: e.model_version.clone().unwrap_or_default(),
                bin: stats::calibration_bin(confidence.clamp(0.0, 1.0), CALIBRATION_BINS) as i64,
            };
            let m = self.models.entry(key).or_default();
            m.labelled += 1;
            m.correct += i64::from(e.model_right);
            m.confidence_micros += (confidence * 1e6).round() as i64;
            if category == Category::Audited {
                m.audited += 1;
                m.audited_wrong += wrong;
            }
        }
    }

    /// Counts a verdict for its store and its labeler.
    pub fn verdict_given(&mut self, v: &VerdictGiven) {
        self.store(&v.store_id, v.at, |s| {
            s.verdicts += 1;
            s.handling.record(v.handling_ms);
        });
        self.labeler(&v.labeler_id, v.at, |l| {
            l.verdicts += 1;
            l.handling.record(v.handling_ms);
        });
    }

    /// Counts a resolved task: each verdict against the final label, and the
    /// labels for alpha ("can't tell" is a missing value there). Only a task
    /// with two or more verdicts says anything about agreement: with one,
    /// the final label is that verdict (or a supervisor's call on it), and
    /// the labeler would agree with themselves.
    pub fn task_resolved(&mut self, t: &TaskResolved) {
        if t.verdicts.len() >= 2 {
            for (labeler_id, answer) in &t.verdicts {
                let agreed = answer.as_ref() == Some(&t.label);
                self.labeler(labeler_id, t.at, |l| {
                    l.judged += 1;
                    l.agreed += i64::from(agreed);
                });
            }
        }
        let values: Vec<String> = t
            .verdicts
            .iter()
            .flat_map(|(_, a)| a.as_ref().map(label_key))
            .collect();
        let mut sums = AlphaSums::default();
        sums.add_unit(&values);
        if sums.units > 0 {
            self.store(&t.store_id, t.at, |s| s.alpha.merge(&sums));
        }
    }

    /// Counts a final receipt.
    pub fn receipt_finalized(&mut self, r: &ReceiptFinalized) {
        self.store(&r.store_id, r.at, |s| {
            s.receipts += 1;
            s.receipts_reviewed += i64::from(r.reviewed);
            s.latency.record(r.latency_ms);
        });
    }

    /// Counts a gold answer.
    pub fn gold_answered(&mut self, g: &GoldAnswered) {
        self.labeler(&g.labeler_id, g.at, |l| {
            l.gold_answers += 1;
            l.gold_correct += i64::from(g.correct);
        });
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &Rollup) {
        for (k, v) in &other.stores {
            self.stores.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.labelers {
            self.labelers.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.models {
            self.models.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.confidence {
            let bin = k.bin;
            merge_confidence(
                self.confidence
                    .entry(k.clone())
                    .or_insert_with(|| ConfidenceBin {
                        bin,
                        ..ConfidenceBin::default()
                    }),
                v,
            );
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
            && self.labelers.is_empty()
            && self.models.is_empty()
            && self.confidence.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn pick(sku: &str, qty: i64) -> Label {
        Label::new(Action::Pick, Some(sku.into()), qty)
    }

    #[test]
    fn buckets_start_at_their_grain() {
        assert_eq!(bucket(3 * HOUR + 5 * MINUTE + 7, HOUR), 3 * HOUR);
        assert_eq!(
            bucket(3 * HOUR + 5 * MINUTE + 7, MINUTE),
            3 * HOUR + 5 * MINUTE
        );
        assert_eq!(bucket(-1, MINUTE), -MINUTE);
    }

    #[test]
    fn the_model_is_right_only_with_action_sku_and_quantity() {
        assert!(model_right("pick", Some("milk"), 2, &pick("milk", 2)));
        assert!(!model_right("pick", Some("milk"), 1, &pick("milk", 2)));
        assert!(!model_right("pick", Some("cola"), 2, &pick("milk", 2)));
        assert!(!model_right("return", Some("milk"), 2, &pick("milk", 2)));
        assert!(!model_right(
            "pick",
            None,
            1,
            &Label::new(Action::None, None, 0)
        ));
    }

    #[test]
    fn categories_follow_the_routing_reason() {
        use ReviewReason::*;
        assert_eq!(category(false, None, Some(0.99)), Category::AutoAccepted);
        assert_eq!(
            category(true, Some(AuditSample), Some(0.99)),
            Category::Audited
        );
        assert_eq!(
            category(true, Some(LowConfidence), Some(0.4)),
            Category::LowConfidence
        );
        assert_eq!(category(true, Some(LowConfidence), None), Category::Forced);
        assert_eq!(
            category(true, Some(SmallMargin), Some(0.93)),
            Category::Forced
        );
        assert_eq!(
            category(true, Some(HighValue), Some(0.99)),
            Category::Forced
        );
        assert_eq!(category(true, None, Some(0.99)), Category::Forced);
        assert_eq!(confidence_bin(Some(0.905)), 90);
        assert_eq!(confidence_bin(Some(1.0)), 99);
        assert_eq!(confidence_bin(None), 0);
    }

    fn facts() -> Vec<Rollup> {
        // Five one-fact rollups spread over two hours and two stores.
        let mut out = Vec::new();
        for i in 0..5i64 {
            let mut r = Rollup::default();
            let at = i * 40 * MINUTE + 1;
            let store = if i % 2 == 0 { "a" } else { "b" };
            r.event_created(&EventCreated {
                store_id: store.into(),
                at,
                reviewed: i % 3 == 0,
            });
            r.event_resolved(&EventResolved {
                store_id: store.into(),
                at,
                model_version: Some("m1".into()),
                reviewed: i % 2 == 0,
                reason: (i % 2 == 0).then_some(ReviewReason::LowConfidence),
                top_confidence: Some(0.5 + i as f64 / 10.0),
                model_right: i != 2,
            });
            r.verdict_given(&VerdictGiven {
                store_id: store.into(),
                labeler_id: "ann".into(),
                at,
                handling_ms: 1_000 * (i + 1),
            });
            r.task_resolved(&TaskResolved {
                store_id: store.into(),
                at,
                label: pick("milk", 1),
                verdicts: vec![
                    ("ann".into(), Some(pick("milk", 1))),
                    ("bob".into(), Some(pick("cola", i))),
                ],
            });
            r.receipt_finalized(&ReceiptFinalized {
                store_id: store.into(),
                at,
                latency_ms: 500 * i,
                reviewed: true,
            });
            r.gold_answered(&GoldAnswered {
                labeler_id: "bob".into(),
                at,
                correct: i > 0,
            });
            out.push(r);
        }
        out
    }

    #[test]
    fn merging_in_any_grouping_gives_the_same_buckets() {
        let parts = facts();
        let mut forward = Rollup::default();
        for p in &parts {
            forward.merge(p);
        }
        let mut pairs = Rollup::default();
        let mut second = Rollup::default();
        for p in parts.iter().rev().skip(2) {
            second.merge(p);
        }
        pairs.merge(&parts[4]);
        pairs.merge(&parts[3]);
        pairs.merge(&second);
        assert_eq!(forward, pairs);
        let a_hour0 = &forward.stores[&StoreKey {
            grain: HOUR,
            start: 0,
            store_id: "a".into(),
        }];
        // Facts 0 (minute 0) and 2 (minute 80) are store a; only 0 is in hour 0.
        assert_eq!(
            (a_hour0.events, a_hour0.events_reviewed, a_hour0.verdicts),
            (1, 1, 1)
        );
        let ann_day = &forward.labelers[&LabelerKey {
            grain: DAY,
            start: 0,
            labeler_id: "ann".into(),
        }];
        assert_eq!(
            (ann_day.verdicts, ann_day.judged, ann_day.agreed),
            (5, 5, 5)
        );
        let bob_day = &forward.labelers[&LabelerKey {
            grain: DAY,
            start: 0,
            labeler_id: "bob".into(),
        }];
        assert_eq!(
            (
                bob_day.judged,
                bob_day.agreed,
                bob_day.gold_answers,
                bob_day.gold_correct
            ),
            (5, 0, 5, 4)
        );
    }

    #[test]
    fn resolved_events_fill_confidence_bins_and_calibration() {
        let mut r = Rollup::default();
        let ev = |reason: Option<ReviewReason>, conf: Option<f64>, right| EventResolved {
            store_id: "s".into(),
            at: 5,
            model_version: None,
            reviewed: reason.is_some(),
            reason,
            top_confidence: conf,
            model_right: right,
        };
        r.event_resolved(&ev(None, Some(0.97), true));
        r.event_resolved(&ev(Some(ReviewReason::AuditSample), Some(0.975), false));
        r.event_resolved(&ev(Some(ReviewReason::LowConfidence), Some(0.42), false));
        r.event_resolved(&ev(Some(ReviewReason::LowConfidence), None, false));
        let bin97 = &r.confidence[&ConfidenceKey {
            store_id: "s".into(),
            day: 0,
            bin: 97,
        }];
        assert_eq!(
            (
                bin97.events,
                bin97.auto_accepted,
                bin97.audited,
                bin97.audited_wrong
            ),
            (2, 1, 1, 1)
        );
        let bin0 = &r.confidence[&ConfidenceKey {
            store_id: "s".into(),
            day: 0,
            bin: 0,
        }];
        assert_eq!((bin0.events, bin0.forced), (1, 1));
        // Calibration: only the two reviewed events with a confidence.
        let m9 = r.models[&ModelKey {
            day: 0,
            model_version: String::new(),
            bin: 9,
        }];
        assert_eq!(
            (
                m9.labelled,
                m9.correct,
                m9.confidence_micros,
                m9.audited,
                m9.audited_wrong
            ),
            (1, 0, 975_000, 1, 1)
        );
        let m4 = r.models[&ModelKey {
            day: 0,
            model_version: String::new(),
            bin: 4,
        }];
        assert_eq!((m4.labelled, m4.correct, m4.audited), (1, 0, 0));
        assert_eq!(r.models.len(), 2);
    }

    #[test]
    fn a_lone_verdict_is_not_counted_as_agreement() {
        let mut r = Rollup::default();
        r.task_resolved(&TaskResolved {
            store_id: "s".into(),
            at: 0,
            label: pick("milk", 1),
            verdicts: vec![("ann".into(), Some(pick("milk", 1)))],
        });
        assert!(r.labelers.is_empty(), "one verdict agrees with itself");
        assert!(r.stores.is_empty());
    }

    #[test]
    fn cant_tell_is_a_missing_value_for_alpha_and_a_disagreement_for_the_labeler() {
        let mut r = Rollup::default();
        r.task_resolved(&TaskResolved {
            store_id: "s".into(),
            at: 0,
            label: pick("milk", 1),
            verdicts: vec![("ann".into(), None), ("bob".into(), Some(pick("milk", 1)))],
        });
        assert!(r.stores.is_empty(), "one value left: not pairable");
        let ann = &r.labelers[&LabelerKey {
            grain: HOUR,
            start: 0,
            labeler_id: "ann".into(),
        }];
        assert_eq!((ann.judged, ann.agreed), (1, 0));
    }
}
