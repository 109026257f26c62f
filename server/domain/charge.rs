//! Expected charge error: what accepting the model's top candidate would
//! over- or under-charge a shopper, in cents, weighted by how likely each
//! thing that may really have happened is.
//!
//! The outcomes of an event are: each candidate was the product moved, or
//! nothing was. The top candidate is right with its calibrated probability
//! ([`super::calibration::Calibration::probability`]); the rest of the mass
//! is shared between the other candidates and "nothing" in proportion to
//! the model's own confidences, "nothing" getting what the confidences
//! leave unclaimed (`1 − Σ confidences`, when positive). Accepting the top
//! candidate `t` at `q` units charges `q · price_t`; if candidate `i` really
//! moved, the charge is off by `q · |price_t − price_i|`; if nothing moved,
//! by `q · price_t`. A confusion between two products of the same price can
//! make no wrong charge, however unsure the model is.

use super::calibration::Calibration;
use super::routing::{self, Exposure, Route, RoutingMode, RoutingPolicy};

/// One candidate as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priced {
    /// The model's confidence in it.
    pub confidence: f64,
    /// Its unit price in cents.
    pub unit_price_cents: i64,
}

/// What may really have happened, with probabilities summing to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcomes {
    /// The probability that each candidate (in the order given) moved.
    pub candidates: Vec<f64>,
    /// The probability that nothing moved.
    pub nothing: f64,
}

/// The outcome probabilities of an event whose top candidate (index `top`)
/// is right with probability `p_top`.
pub fn outcomes(candidates: &[Priced], top: usize, p_top: f64) -> Outcomes {
    let p_top = p_top.clamp(0.0, 1.0);
    let others: f64 = candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != top)
        .map(|(_, c)| c.confidence.max(0.0))
        .sum();
    let claimed: f64 = candidates.iter().map(|c| c.confidence.max(0.0)).sum();
    let unclaimed = (1.0 - claimed).max(0.0);
    let rest = 1.0 - p_top;
    let share = others + unclaimed;
    let scale = if share > 0.0 { rest / share } else { 0.0 };
    let probs: Vec<f64> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == top {
                p_top
            } else {
                c.confidence.max(0.0) * scale
            }
        })
        .collect();
    // With no other candidate and nothing unclaimed, the rest is "nothing":
    // something else than the top candidate happened, and the only other
    // outcome this rule knows is that nothing was taken.
    let nothing = if share > 0.0 { unclaimed * scale } else { rest };
    Outcomes {
        candidates: probs,
        nothing,
    }
}

/// The expected charge error, in cents, of accepting candidate `top` at
/// `quantity` units when the outcomes are `outcomes`.
pub fn expected_error_cents(
    candidates: &[Priced],
    top: usize,
    quantity: i64,
    outcomes: &Outcomes,
) -> f64 {
    let Some(accepted) = candidates.get(top) else {
        return 0.0;
    };
    let q = quantity.max(0) as f64;
    let price = accepted.unit_price_cents as f64;
    let wrong_product: f64 = candidates
        .iter()
        .zip(&outcomes.candidates)
        .map(|(c, p)| p * (price - c.unit_price_cents as f64).abs())
        .sum();
    q * (wrong_product + outcomes.nothing * price)
}

/// What accepting candidate `top` at `quantity` units risks, as
/// `charge-aware` routing weighs it: the expected charge error with the top
/// candidate right as often as `calibration` says, against what a review
/// costs. The server's ingest and the store-day simulator both route with
/// this, so they weigh an event alike.
pub fn exposure(
    candidates: &[Priced],
    top: usize,
    quantity: i64,
    calibration: &Calibration,
    review_cost_cents: f64,
) -> Exposure {
    let p_top = candidates
        .get(top)
        .map_or(0.0, |c| calibration.probability(c.confidence));
    let outcomes = outcomes(candidates, top, p_top);
    Exposure {
        expected_error_cents: expected_error_cents(candidates, top, quantity, &outcomes),
        review_cost_cents,
    }
}

/// The route of an event from its candidates priced from the catalog: the
/// top candidate's value for the high-value rule and, for a charge-aware
/// policy, what accepting it risks, weighed with `calibration` against
/// `review_cost_cents` ([`exposure`]). The server's ingest, the store-day
/// simulator and replay of history all route through this one function.
pub fn route_event(
    policy: &RoutingPolicy,
    candidates: &[Priced],
    quantity: i64,
    calibration: &Calibration,
    review_cost_cents: f64,
    audit_draw: f64,
) -> Route {
    let confidences: Vec<f64> = candidates.iter().map(|c| c.confidence).collect();
    let top = routing::top_index(&confidences);
    let top_value = top.map(|t| candidates[t].unit_price_cents * quantity);
    let exposure = match (policy.mode, top) {
        (RoutingMode::ChargeAware, Some(t)) => Some(exposure(
            candidates,
            t,
            quantity,
            calibration,
            review_cost_cents,
        )),
        _ => None,
    };
    routing::route(policy, &confidences, top_value, exposure, audit_draw)
}

/// The cost of one review in cents: a labeler's hourly cost over the hour's
/// share one task takes.
pub fn review_cost_cents(hourly_cost_cents: i64, median_handling_ms: i64) -> f64 {
    hourly_cost_cents.max(0) as f64 * median_handling_ms.max(0) as f64 / 3_600_000.0
}

/// Verdicts a store needs before its own median handling time replaces
/// the configured one.
pub const MIN_MEASURED: usize = 20;

/// What labeler time costs: an hourly cost and how long a review takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaborCost {
    /// An hour of a labeler, in cents.
    pub hourly_cents: i64,
    /// How long a review takes, in milliseconds.
    pub handling_ms: i64,
}

impl LaborCost {
    /// The same cost with the median of `handling_ms` (a store's recent
    /// verdicts) as the time a review takes, once there are
    /// [`MIN_MEASURED`] of them.
    pub fn measured(self, handling_ms: &[i64]) -> LaborCost {
        if handling_ms.len() < MIN_MEASURED {
            return self;
        }
        let times: Vec<f64> = handling_ms.iter().map(|&ms| ms as f64).collect();
        match super::stats::percentile(&times, 50.0) {
            Some(median) => LaborCost {
                handling_ms: median.round() as i64,
                ..self
            },
            None => self,
        }
    }

    /// What one review costs, in cents.
    pub fn review_cents(self) -> f64 {
        review_cost_cents(self.hourly_cents, self.handling_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(confidence: f64, unit_price_cents: i64) -> Priced {
        Priced {
            confidence,
            unit_price_cents,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn two_products_of_one_price_cannot_be_charged_wrong() {
        // The example: 0.55 against 0.45, the same price, nothing
        // unclaimed: whatever the calibration, no charge can be wrong.
        let cands = [c(0.55, 349), c(0.45, 349)];
        for p_top in [0.3, 0.55, 0.9] {
            let o = outcomes(&cands, 0, p_top);
            assert!(close(o.nothing, 0.0));
            assert!(close(expected_error_cents(&cands, 0, 1, &o), 0.0));
        }
    }

    #[test]
    fn a_hand_worked_case() {
        // Top 0.70 at 400 (calibrated 0.80), second 0.20 at 250, 0.10
        // unclaimed. The other 0.20 of mass splits 0.20 : 0.10, so the
        // second moved with 0.1333… and nothing with 0.0666….
        let cands = [c(0.70, 400), c(0.20, 250)];
        let o = outcomes(&cands, 0, 0.80);
        assert!(close(o.candidates[0], 0.80));
        assert!(close(o.candidates[1], 0.2 * 2.0 / 3.0));
        assert!(close(o.nothing, 0.2 / 3.0));
        assert!(close(o.candidates.iter().sum::<f64>() + o.nothing, 1.0));
        // Two units: 2 · (0.1333… · 150 + 0.0666… · 400) = 2 · (20 + 26.666…)
        let e = expected_error_cents(&cands, 0, 2, &o);
        assert!(close(e, 2.0 * (20.0 + 80.0 / 3.0)), "{e}");
    }

    #[test]
    fn a_confident_expensive_item_can_cost_more_than_an_unsure_cheap_one() {
        // 0.92 on a 40-dollar item with a 5-dollar neighbour, calibrated to
        // 0.90: 0.1 of mass spread over the neighbour and nothing.
        let tv = [c(0.92, 4000), c(0.05, 500)];
        let e_tv = expected_error_cents(&tv, 0, 1, &outcomes(&tv, 0, 0.90));
        // 0.55 between two 1.29 products.
        let milk = [c(0.55, 129), c(0.45, 129)];
        let e_milk = expected_error_cents(&milk, 0, 1, &outcomes(&milk, 0, 0.55));
        assert!(e_tv > 100.0 && close(e_milk, 0.0), "{e_tv} {e_milk}");
    }

    #[test]
    fn a_lone_candidate_leaves_the_rest_to_nothing() {
        let one = [c(0.97, 150)];
        let o = outcomes(&one, 0, 0.9);
        assert!(close(o.nothing, 0.1));
        assert!(close(
            expected_error_cents(&one, 0, 3, &o),
            3.0 * 0.1 * 150.0
        ));
        // A confidence of 1 claims everything: the rest still goes to
        // nothing, not lost.
        let sure = [c(1.0, 150)];
        let o = outcomes(&sure, 0, 0.9);
        assert!(close(o.nothing, 0.1));
    }

    #[test]
    fn the_error_grows_as_the_top_candidate_is_believed_less() {
        let cands = [c(0.6, 300), c(0.3, 120), c(0.05, 900)];
        let mut last = -1.0;
        for k in (0..=100).rev() {
            let p = k as f64 / 100.0;
            let e = expected_error_cents(&cands, 0, 1, &outcomes(&cands, 0, p));
            assert!(e >= last - 1e-9, "at p = {p}");
            last = e;
        }
        assert!(close(
            expected_error_cents(&cands, 0, 1, &outcomes(&cands, 0, 1.0)),
            0.0
        ));
    }

    #[test]
    fn a_stores_own_handling_time_counts_once_there_is_enough_of_it() {
        let labor = LaborCost {
            hourly_cents: 2250,
            handling_ms: 8000,
        };
        assert!(close(labor.review_cents(), 5.0));
        let few = vec![60_000; MIN_MEASURED - 1];
        assert_eq!(labor.measured(&few), labor);
        let mut many = vec![60_000; MIN_MEASURED];
        many.push(1_000);
        let m = labor.measured(&many);
        assert_eq!(m.handling_ms, 60_000);
        assert!(close(m.review_cents(), 37.5));
        let even: Vec<i64> = (1..=20).map(|i| i * 1000).collect();
        assert_eq!(labor.measured(&even).handling_ms, 10_500);
    }

    #[test]
    fn review_cost_follows_the_hour() {
        // 18 dollars an hour, 8 s a task: 4 cents.
        assert!(close(review_cost_cents(1800, 8000), 4.0));
        assert!(close(review_cost_cents(-5, 8000), 0.0));
    }
}
