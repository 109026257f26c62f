//! How many labelers a policy needs: the routing of the day alone (who
//! would go to people, at what expected charge error, bringing how much
//! work each hour), and the smallest crew that holds p95 receipt latency
//! within the SLA.

use super::day::Day;
use super::draw::{Drawn, HOUR};
use super::engine::{self, Run, Staffing};
use super::figures::Figures;
use super::policy::SimPolicy;
use super::CurvePoint;
use crate::domain::calibration::Calibration;
use crate::domain::routing::Route;

/// What a policy's routing alone makes of a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Events whose receipt waits for a person.
    pub to_people: u64,
    /// Events of the day.
    pub events: u64,
    /// Receipts of the day.
    pub receipts: u64,
    /// Expected charge error of the events settled with the model's answer
    /// (at the model's true accuracy).
    pub expected_error: f64,
    /// Verdicts asked for by tasks created in each hour from opening.
    pub verdicts_by_hour: Vec<f64>,
}

impl Routed {
    /// The curve's point for it.
    pub fn point(&self, threshold: Option<f64>) -> CurvePoint {
        CurvePoint {
            threshold,
            review_rate: self.to_people as f64 / self.events.max(1) as f64,
            expected_error_per_1000_cents: self.expected_error * 1_000.0
                / self.receipts.max(1) as f64,
        }
    }
}

/// Routes every event of the day by `policy`, with no queue and the
/// calibration the day starts with.
pub fn routing_pass(day: &Day, drawn: &Drawn, policy: &SimPolicy) -> Routed {
    let mut r = Routed {
        to_people: 0,
        events: drawn.events.len() as u64,
        receipts: drawn.shoppers.len() as u64,
        expected_error: 0.0,
        verdicts_by_hour: vec![0.0; engine::span_hours(day, drawn) + 1],
    };
    let prior = Calibration::default();
    for (i, e) in drawn.events.iter().enumerate() {
        let route = engine::route_event(policy, day, drawn, i, &prior);
        let Route::Review {
            required_verdicts, ..
        } = route
        else {
            r.expected_error += e.true_expected_error_cents;
            continue;
        };
        let hour = ((e.at / HOUR) as usize).min(r.verdicts_by_hour.len() - 1);
        r.verdicts_by_hour[hour] += required_verdicts as f64;
        if engine::purpose(policy, route).is_some_and(|p| p.holds_receipt()) {
            r.to_people += 1;
        } else {
            r.expected_error += e.true_expected_error_cents;
        }
    }
    r
}

/// How far past the SLA p99 may go in a crew that "holds the SLA": p95
/// alone would let the last 5 % of receipts wait hours behind supervisors
/// flooded with escalated work.
pub const TAIL: f64 = 2.0;

/// The smallest crew, shaped like the work each hour brings, with which
/// `policy` holds p95 receipt latency within the SLA (and p99 within
/// [`TAIL`] times it); and its figures.
///
/// Each hour gets `ceil(k · offered load)` labelers (at least one), where
/// the offered load is the labeler time the hour's tasks ask for; `k` is
/// searched by bisection. A crew shaped by the load is what a scheduler
/// would staff; the same rule for every policy keeps them comparable.
pub fn needed(day: &Day, drawn: &Drawn, policy: &SimPolicy) -> (Staffing, Figures) {
    let routed = routing_pass(day, drawn, policy);
    let spec = &day.labelers;
    let mean_ms = spec.handling_median_seconds
        * 1_000.0
        * (spec.handling_sigma * spec.handling_sigma / 2.0).exp();
    let load: Vec<f64> = routed
        .verdicts_by_hour
        .iter()
        .map(|v| v * mean_ms / HOUR as f64)
        .collect();
    let plan = |k: f64| Staffing {
        per_hour: load
            .iter()
            .map(|l| ((l * k).ceil() as u32).max(1))
            .collect(),
    };
    let sla_s = day.sla_minutes * 60.0;
    let holds = |f: &Figures| {
        f.latency_p95_s <= sla_s && f.latency_p99_s <= TAIL * sla_s && f.unfinished == 0
    };
    let run = |k: f64| {
        let staffing = plan(k);
        let figures = Run::figures(day, drawn, policy, &staffing);
        (staffing, figures)
    };
    let mut hi = 1.0;
    let mut best = run(hi);
    while !holds(&best.1) && hi < 64.0 {
        hi *= 2.0;
        best = run(hi);
    }
    let mut lo = if hi == 1.0 { 0.0 } else { hi / 2.0 };
    // Bisect until the two ends staff the same hours.
    while plan(hi).hours() > plan(lo).hours() && hi - lo > 1e-3 {
        let mid = (lo + hi) / 2.0;
        let tried = run(mid);
        if holds(&tried.1) {
            hi = mid;
            best = tried;
        } else {
            lo = mid;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routing::ReviewReason;

    /// With a calibrated model and the calibration a store starts with,
    /// charge-aware routing reviews exactly the events whose expected
    /// charge error is largest: for any number of reviews, no other choice
    /// of events leaves less expected error auto-accepted. So no routing
    /// rule beats its review-rate / error curve on such a day.
    #[test]
    fn charge_aware_reviews_the_largest_expected_errors_first() {
        let day = Day {
            shoppers: 400,
            ..Day::default()
        };
        let drawn = Drawn::new(&day, 3);
        let prior = Calibration::default();
        for cents in [1, 5, 20, 80] {
            let policy = SimPolicy::parse(&format!(
                "charge-aware,review-cost-cents={cents},audit-rate=0"
            ))
            .unwrap();
            let (mut reviewed, mut accepted) = (Vec::new(), Vec::new());
            for (i, e) in drawn.events.iter().enumerate() {
                match engine::route_event(&policy, &day, &drawn, i, &prior) {
                    Route::Review {
                        reason: ReviewReason::ChargeRisk,
                        ..
                    } => reviewed.push(e.true_expected_error_cents),
                    Route::AutoAccepted => accepted.push(e.true_expected_error_cents),
                    other => panic!("no other rule applies: {other:?}"),
                }
            }
            let least_reviewed = reviewed.iter().copied().fold(f64::INFINITY, f64::min);
            let most_accepted = accepted.iter().copied().fold(0.0, f64::max);
            assert!(!reviewed.is_empty() && !accepted.is_empty(), "{cents} ¢");
            assert!(
                least_reviewed + 1e-9 >= most_accepted,
                "{cents} ¢: reviewed {least_reviewed} < accepted {most_accepted}"
            );
            assert!(least_reviewed + 1e-9 >= cents as f64 && most_accepted < cents as f64);
        }
    }
}
