//! Routing: does an event need a human, and why.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which rule decides whether a confident-looking event needs a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingMode {
    /// Review below a confidence threshold or margin (value-blind).
    #[default]
    Threshold,
    /// Review when the expected charge error of accepting the top candidate
    /// is worth at least a review ([`super::charge`]).
    ChargeAware,
}

impl RoutingMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Threshold => "threshold",
            RoutingMode::ChargeAware => "charge-aware",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<RoutingMode> {
        [RoutingMode::Threshold, RoutingMode::ChargeAware]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A store's routing policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoutingPolicy {
    /// `threshold` (today's rule) or `charge-aware`.
    #[serde(default)]
    pub mode: RoutingMode,
    /// What one review costs, in cents, for `charge-aware` routing; `null`
    /// takes it from the labeler hourly cost (`labeler_hourly_cost_cents`)
    /// and the store's median handling time (`review_handling_ms` until it
    /// has enough verdicts).
    #[serde(default)]
    pub review_cost_cents: Option<i64>,
    /// Review when the top candidate's confidence is below this.
    pub threshold: f64,
    /// Review when the top two candidates are closer than this.
    pub margin: f64,
    /// Share of confident events sent to review anyway, to measure the
    /// error rate of auto-accepted events without bias.
    pub audit_rate: f64,
    /// Agreeing verdicts an audit sample needs.
    pub audit_verdicts: i64,
    /// Events whose top candidate is worth at least this much (unit price ×
    /// quantity, in cents) need `audit_verdicts` agreeing verdicts too; `None`
    /// turns the rule off.
    pub high_value_cents: Option<i64>,
    /// Receipt deadline: milliseconds after exit.
    pub receipt_sla_ms: i64,
    /// How long after an event its shopper is expected to exit, used for the
    /// deadline of tasks whose session is still open.
    pub expected_exit_ms: i64,
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        RoutingPolicy {
            mode: RoutingMode::Threshold,
            review_cost_cents: None,
            threshold: 0.90,
            margin: 0.10,
            audit_rate: 0.02,
            audit_verdicts: 2,
            high_value_cents: None,
            receipt_sla_ms: 10 * 60 * 1000,
            expected_exit_ms: 5 * 60 * 1000,
        }
    }
}

/// Why a policy value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

impl RoutingPolicy {
    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        let err = |field, message| Err(PolicyError { field, message });
        if !unit(self.threshold) {
            return err("threshold", "must be between 0 and 1");
        }
        if !unit(self.margin) {
            return err("margin", "must be between 0 and 1");
        }
        if !unit(self.audit_rate) {
            return err("audit_rate", "must be between 0 and 1");
        }
        if !(1..=10).contains(&self.audit_verdicts) {
            return err("audit_verdicts", "must be between 1 and 10");
        }
        if matches!(self.high_value_cents, Some(v) if v < 0) {
            return err("high_value_cents", "must not be negative");
        }
        if self.receipt_sla_ms <= 0 {
            return err("receipt_sla_ms", "must be positive");
        }
        if self.expected_exit_ms < 0 {
            return err("expected_exit_ms", "must not be negative");
        }
        if matches!(self.review_cost_cents, Some(v) if v < 0) {
            return err("review_cost_cents", "must not be negative");
        }
        Ok(())
    }
}

/// Why an event went to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewReason {
    /// Top confidence below the threshold (or no candidate at all).
    LowConfidence,
    /// The top two candidates are too close.
    SmallMargin,
    /// A confident event drawn for the audit sample.
    AuditSample,
    /// A confident event whose value needs a second pair of eyes.
    HighValue,
    /// Accepting the top candidate risks a wrong charge worth at least a
    /// review (`charge-aware` routing).
    ChargeRisk,
    /// A shopper contested a line of the final receipt (never a routing
    /// decision: the reason of a dispute's task).
    Dispute,
}

impl ReviewReason {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::LowConfidence => "low-confidence",
            ReviewReason::SmallMargin => "small-margin",
            ReviewReason::AuditSample => "audit-sample",
            ReviewReason::HighValue => "high-value",
            ReviewReason::ChargeRisk => "charge-risk",
            ReviewReason::Dispute => "dispute",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<ReviewReason> {
        [
            ReviewReason::LowConfidence,
            ReviewReason::SmallMargin,
            ReviewReason::AuditSample,
            ReviewReason::HighValue,
            ReviewReason::ChargeRisk,
            ReviewReason::Dispute,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The routing decision for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The model's top candidate is taken as the label.
    AutoAccepted,
    /// A review task is created.
    Review {
        /// Why.
        reason: ReviewReason,
        /// Agreeing verdicts needed to resolve it.
        required_verdicts: i64,
    },
}

/// What accepting an event's top candidate risks, for `charge-aware`
/// routing: the expected charge error and what a review costs, in cents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    /// Expected over- or under-charge of accepting the top candidate.
    pub expected_error_cents: f64,
    /// What one review costs.
    pub review_cost_cents: f64,
}

/// Decides the route of an event.
///
/// The rules that send an event to people whatever the threshold (no
/// candidate, high value, small margin) are checked before the threshold, so
/// a recorded `low-confidence` with a top candidate means the threshold
/// alone decided: the threshold recommendation counts such events as ones a
/// lower threshold would auto-accept, and the others as forced. High value
/// comes first of all, so an expensive event needs `audit_verdicts`
/// agreeing verdicts however sure or close the model's call.
///
/// In `charge-aware` mode the margin and threshold rules give way to one:
/// review (`charge-risk`) when the expected charge error of accepting the
/// top candidate is at least the cost of a review (`exposure`; an event
/// without one is reviewed). No candidate and high value still force a
/// review, and the audit sample is drawn as in threshold mode.
///
/// `confidences` are the candidates' confidences in the order given by the
/// store (not necessarily sorted); `top_value_cents` is the top candidate's
/// unit price times quantity; `audit_draw` is a uniform draw in `[0, 1)` made
/// by the caller, so the decision itself stays deterministic.
pub fn route(
    policy: &RoutingPolicy,
    confidences: &[f64],
    top_value_cents: Option<i64>,
    exposure: Option<Exposure>,
    audit_draw: f64,
) -> Route {
    let (top, second) = top_two(confidences);
    let Some(top) = top else {
        return review(ReviewReason::LowConfidence, 1);
    };
    if let (Some(limit), Some(value)) = (policy.high_value_cents, top_value_cents) {
        if value >= limit {
            return review(ReviewReason::HighValue, policy.audit_verdicts);
        }
    }
    match policy.mode {
        RoutingMode::Threshold => {
            if top - second.unwrap_or(0.0) < policy.margin {
                return review(ReviewReason::SmallMargin, 1);
            }
            if top < policy.threshold {
                return review(ReviewReason::LowConfidence, 1);
            }
        }
        RoutingMode::ChargeAware => {
            let worth_a_review =
                exposure.is_none_or(|e| e.expected_error_cents >= e.review_cost_cents);
            if worth_a_review {
                return review(ReviewReason::ChargeRisk, 1);
            }
        }
    }
    if audit_draw < policy.audit_rate {
        return review(ReviewReason::AuditSample, policy.audit_verdicts);
    }
    Route::AutoAccepted
}

fn review(reason: ReviewReason, required_verdicts: i64) -> Route {
    Route::Review {
        reason,
        required_verdicts,
    }
}

/// The highest and second-highest confidence.
fn top_two(confidences: &[f64]) -> (Option<f64>, Option<f64>) {
    let mut top: Option<f64> = None;
    let mut second: Option<f64> = None;
    for &c in confidences {
        if top.is_none_or(|t| c > t) {
            second = top;
            top = Some(c);
        } else if second.is_none_or(|s| c > s) {
            second = Some(c);
        }
    }
    (top, second)
}

/// Index of the top candidate (the first one on ties).
pub fn top_index(confidences: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &c) in confidences.iter().enumerate() {
        if best.is_none_or(|b| c > confidences[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RoutingPolicy {
        RoutingPolicy::default()
    }

    #[test]
    fn confident_clear_event_is_auto_accepted_when_not_drawn() {
        assert_eq!(
            route(&policy(), &[0.97, 0.02], None, None, 0.5),
            Route::AutoAccepted
        );
    }

    #[test]
    fn low_top_confidence_goes_to_review() {
        assert_eq!(
            route(&policy(), &[0.89, 0.01], None, None, 0.5),
            review(ReviewReason::LowConfidence, 1)
        );
    }

    #[test]
    fn threshold_is_inclusive() {
        assert_eq!(
            route(&policy(), &[0.90, 0.0], None, None, 0.5),
            Route::AutoAccepted
        );
    }

    #[test]
    fn close_second_candidate_goes_to_review() {
        let p = RoutingPolicy {
            threshold: 0.5,
            ..policy()
        };
        assert_eq!(
            route(&p, &[0.55, 0.50], None, None, 0.5),
            review(ReviewReason::SmallMargin, 1)
        );
    }

    #[test]
    fn unsorted_candidates_are_ranked_by_confidence() {
        let p = RoutingPolicy {
            threshold: 0.5,
            ..policy()
        };
        assert_eq!(
            route(&p, &[0.50, 0.55], None, None, 0.5),
            review(ReviewReason::SmallMargin, 1)
        );
        assert_eq!(top_index(&[0.2, 0.7, 0.1]), Some(1));
        assert_eq!(top_index(&[0.5, 0.5]), Some(0));
        assert_eq!(top_index(&[]), None);
    }

    #[test]
    fn rules_that_hold_at_any_threshold_come_before_it() {
        let p = RoutingPolicy {
            high_value_cents: Some(10_000),
            ..policy()
        };
        // Unsure and close: the margin rule would send it at any threshold.
        assert_eq!(
            route(&p, &[0.55, 0.50], None, None, 0.5),
            review(ReviewReason::SmallMargin, 1)
        );
        // Unsure and expensive: as many verdicts as a confident expensive one.
        assert_eq!(
            route(&p, &[0.40], Some(25_000), None, 0.5),
            review(ReviewReason::HighValue, 2)
        );
        // Expensive and close: value first, so it needs agreeing verdicts
        // too (a close call on an expensive item is the riskiest kind).
        assert_eq!(
            route(&p, &[0.95, 0.90], Some(25_000), None, 0.5),
            review(ReviewReason::HighValue, 2)
        );
        // Unsure only: the threshold alone decides.
        assert_eq!(
            route(&p, &[0.55, 0.30], Some(500), None, 0.5),
            review(ReviewReason::LowConfidence, 1)
        );
    }

    #[test]
    fn no_candidates_means_low_confidence() {
        assert_eq!(
            route(&policy(), &[], None, None, 0.5),
            review(ReviewReason::LowConfidence, 1)
        );
    }

    #[test]
    fn single_candidate_margin_is_its_confidence() {
        assert_eq!(
            route(&policy(), &[0.95], None, None, 0.5),
            Route::AutoAccepted
        );
    }

    #[test]
    fn audit_draw_below_rate_samples_a_confident_event_with_two_verdicts() {
        assert_eq!(
            route(&policy(), &[0.99], None, None, 0.019),
            review(ReviewReason::AuditSample, 2)
        );
        assert_eq!(
            route(&policy(), &[0.99], None, None, 0.02),
            Route::AutoAccepted
        );
    }

    #[test]
    fn unsure_events_are_never_counted_as_audit_samples() {
        assert_eq!(
            route(&policy(), &[0.5], None, None, 0.0),
            review(ReviewReason::LowConfidence, 1)
        );
    }

    #[test]
    fn high_value_rule_applies_only_when_set() {
        let p = RoutingPolicy {
            high_value_cents: Some(10_000),
            ..policy()
        };
        assert_eq!(
            route(&p, &[0.99], Some(10_000), None, 0.5),
            review(ReviewReason::HighValue, 2)
        );
        assert_eq!(
            route(&p, &[0.99], Some(9_999), None, 0.5),
            Route::AutoAccepted
        );
        assert_eq!(
            route(&policy(), &[0.99], Some(1_000_000), None, 0.5),
            Route::AutoAccepted
        );
    }

    #[test]
    fn policy_values_out_of_range_are_refused() {
        let bad = RoutingPolicy {
            threshold: 1.5,
            ..policy()
        };
        assert_eq!(bad.validate().unwrap_err().field, "threshold");
        let bad = RoutingPolicy {
            audit_rate: f64::NAN,
            ..policy()
        };
        assert_eq!(bad.validate().unwrap_err().field, "audit_rate");
        let bad = RoutingPolicy {
            audit_verdicts: 0,
            ..policy()
        };
        assert_eq!(bad.validate().unwrap_err().field, "audit_verdicts");
        assert!(policy().validate().is_ok());
    }

    #[test]
    fn reasons_round_trip_through_their_stored_spelling() {
        for r in [
            ReviewReason::LowConfidence,
            ReviewReason::SmallMargin,
            ReviewReason::AuditSample,
            ReviewReason::HighValue,
        ] {
            assert_eq!(ReviewReason::parse(r.as_str()), Some(r));
        }
    }

    fn exposure(expected_error_cents: f64, review_cost_cents: f64) -> Option<Exposure> {
        Some(Exposure {
            expected_error_cents,
            review_cost_cents,
        })
    }

    fn charge_aware() -> RoutingPolicy {
        RoutingPolicy {
            mode: RoutingMode::ChargeAware,
            audit_rate: 0.0,
            ..policy()
        }
    }

    #[test]
    fn charge_aware_routing_reviews_what_can_be_charged_wrong() {
        let p = charge_aware();
        // 0.55 between two products of one price: nothing at stake.
        assert_eq!(
            route(&p, &[0.55, 0.45], Some(349), exposure(0.0, 4.0), 0.5),
            Route::AutoAccepted
        );
        // 0.92 on a 40-dollar item: 368 cents at stake.
        assert_eq!(
            route(&p, &[0.92, 0.05], Some(4000), exposure(368.75, 4.0), 0.5),
            review(ReviewReason::ChargeRisk, 1)
        );
        // No exposure known: a person looks.
        assert_eq!(
            route(&p, &[0.99], Some(100), None, 0.5),
            review(ReviewReason::ChargeRisk, 1)
        );
        // Forced rules and the audit draw stay.
        assert_eq!(
            route(&p, &[], None, None, 0.5),
            review(ReviewReason::LowConfidence, 1)
        );
        let audited = RoutingPolicy {
            audit_rate: 0.02,
            ..p
        };
        assert_eq!(
            route(&audited, &[0.6, 0.4], Some(100), exposure(0.0, 4.0), 0.01),
            review(ReviewReason::AuditSample, 2)
        );
    }

    /// Grids of events: confidences, values, exposures and draws.
    fn grid() -> Vec<(Vec<f64>, Option<i64>, f64, f64)> {
        let mut out = Vec::new();
        for top in [0.0, 0.3, 0.5, 0.6, 0.75, 0.89, 0.9, 0.95, 0.99, 1.0] {
            for second in [0.0, 0.05, 0.2, 0.45] {
                for value in [None, Some(0), Some(500), Some(20_000)] {
                    for error in [0.0, 0.5, 3.0, 50.0, 1e6] {
                        for draw in [0.0, 0.01, 0.5, 0.99] {
                            let confidences = if second > 0.0 {
                                vec![top, second]
                            } else {
                                vec![top]
                            };
                            out.push((confidences, value, error, draw));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_higher_threshold_never_reviews_less() {
        let thresholds: Vec<f64> = (50..=99).map(|t| t as f64 / 100.0).collect();
        for (confidences, value, _, draw) in grid() {
            let mut reviewed_before = false;
            for &threshold in &thresholds {
                let p = RoutingPolicy {
                    threshold,
                    ..policy()
                };
                let reviewed = route(&p, &confidences, value, None, draw) != Route::AutoAccepted;
                assert!(
                    reviewed || !reviewed_before,
                    "{confidences:?} at {threshold}: reviewed below, accepted above"
                );
                reviewed_before = reviewed;
            }
        }
    }

    #[test]
    fn review_cost_zero_reviews_everything_and_a_huge_one_only_what_is_forced() {
        let p = RoutingPolicy {
            high_value_cents: Some(10_000),
            audit_rate: 0.02,
            ..charge_aware()
        };
        for (confidences, value, error, draw) in grid() {
            let free = route(&p, &confidences, value, exposure(error, 0.0), draw);
            assert_ne!(free, Route::AutoAccepted, "{confidences:?} {error}");
            let dear = route(&p, &confidences, value, exposure(error, f64::MAX), draw);
            let forced =
                confidences.is_empty() || value.is_some_and(|v| v >= 10_000) || draw < 0.02;
            assert_eq!(
                dear != Route::AutoAccepted,
                forced,
                "{confidences:?} {value:?} {draw}"
            );
            if let Route::Review { reason, .. } = dear {
                assert_ne!(reason, ReviewReason::ChargeRisk);
            }
        }
    }

    #[test]
    fn modes_and_reasons_keep_their_stored_spelling() {
        for m in [RoutingMode::Threshold, RoutingMode::ChargeAware] {
            assert_eq!(RoutingMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(
            ReviewReason::parse("charge-risk"),
            Some(ReviewReason::ChargeRisk)
        );
        let bad = RoutingPolicy {
            review_cost_cents: Some(-1),
            ..policy()
        };
        assert_eq!(bad.validate().unwrap_err().field, "review_cost_cents");
    }
}
