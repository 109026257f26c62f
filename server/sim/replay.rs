//! Replay of history: what each policy would have sent to people over a
//! store's past events, and the charge error of what it would have
//! auto-accepted, estimated from the human labels those events have.
//!
//! Every event a person reviewed has its label; of the events the store
//! auto-accepted, only the audit samples do, drawn at the audit rate. So an
//! event a policy would auto-accept counts with weight 1 when it was
//! reviewed, `1 / audit_rate` when it was audited, and 0 otherwise: the
//! Horvitz–Thompson estimate of the total charge error, unbiased when audits
//! were drawn at random, with a 95 % interval from its variance estimate
//! `Σ (1 − π) / π² · e²`. Audit samples themselves are not replayed (they
//! are drawn at random, not decided): a policy's audits are its audit rate
//! times what it auto-accepts.

use serde::Serialize;

use super::policy::SimPolicy;
use crate::domain::calibration::Calibration;
use crate::domain::charge::{self, Priced};
use crate::domain::routing::{self, Route};
use crate::domain::Action;

/// How a past event was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// A person's review settled it: its label is known.
    Reviewed,
    /// Auto-accepted and drawn for the audit sample: its label is known
    /// once the audit ended.
    Audited,
    /// Auto-accepted, not audited: its label is unknown.
    Accepted,
}

/// One past event as replay needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Past {
    /// The model's candidates (confidence, unit price now).
    pub candidates: Vec<Priced>,
    /// What the store reported (pick or return).
    pub action: Action,
    /// Units.
    pub quantity: i64,
    /// How it was settled.
    pub settled: Settled,
    /// What people found, when they did.
    pub label: Option<Found>,
}

/// What people found an event to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// Pick, return, or nothing.
    pub action: Action,
    /// Units.
    pub quantity: i64,
    /// Unit price of the product they named (0 for nothing).
    pub unit_price_cents: i64,
}

impl Past {
    /// What charging the top candidate would be off by, against what people
    /// found (a return counts negative): `None` when nobody labelled the
    /// event. Two products of one price make no error, as in
    /// [`charge::expected_error_cents`].
    fn charge_error(&self, top: usize) -> Option<f64> {
        let found = self.label?;
        let signed = |action: Action, cents: f64| match action {
            Action::Pick => cents,
            Action::Return => -cents,
            Action::None => 0.0,
        };
        let charged = signed(
            self.action,
            self.candidates[top].unit_price_cents as f64 * self.quantity as f64,
        );
        let owed = signed(
            found.action,
            found.unit_price_cents as f64 * found.quantity as f64,
        );
        Some((charged - owed).abs())
    }
}

/// What one policy would have done with the past.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replayed {
    /// The policy's name.
    pub policy: String,
    /// Events replayed.
    pub events: u64,
    /// Events it would have sent to people (audits aside).
    pub to_people: u64,
    /// `to_people` over `events`.
    pub review_rate: f64,
    /// Events it would have auto-accepted.
    pub auto_accepted: u64,
    /// Audit samples it would draw from them (its audit rate).
    pub expected_audits: f64,
    /// Of its auto-accepted events, how many have a human label
    /// (reviewed or audited): what the estimate rests on.
    pub labelled: u64,
    /// Estimated charge error of its auto-accepted events, in cents.
    pub charge_error_cents: Option<f64>,
    /// 95 % interval of the estimate, in cents.
    pub charge_error_low_cents: Option<f64>,
    /// Upper end.
    pub charge_error_high_cents: Option<f64>,
}

/// Replays `past` under each policy. `audit_rate` is the store's rate the
/// audits were drawn at; `calibration` and `review_cost_cents` are what
/// charge-aware routing weighs with (the store's, now).
pub fn replay(
    past: &[Past],
    policies: &[SimPolicy],
    audit_rate: f64,
    calibration: &Calibration,
    review_cost_cents: f64,
) -> Vec<Replayed> {
    policies
        .iter()
        .map(|p| one(past, p, audit_rate, calibration, review_cost_cents))
        .collect()
}

fn one(
    past: &[Past],
    policy: &SimPolicy,
    audit_rate: f64,
    calibration: &Calibration,
    review_cost_cents: f64,
) -> Replayed {
    let r = &policy.routing;
    let cost = r.review_cost_cents.map_or(review_cost_cents, |c| c as f64);
    let (mut to_people, mut accepted, mut labelled) = (0u64, 0u64, 0u64);
    let (mut total, mut variance) = (0.0, 0.0);
    for e in past {
        // No audit draw: audits are counted from the rate, not replayed.
        let route = charge::route_event(r, &e.candidates, e.quantity, calibration, cost, 1.0);
        let confidences: Vec<f64> = e.candidates.iter().map(|c| c.confidence).collect();
        // An event without candidates is never auto-accepted.
        let Some(top) = routing::top_index(&confidences).filter(|_| route == Route::AutoAccepted)
        else {
            to_people += 1;
            continue;
        };
        accepted += 1;
        let pi = match e.settled {
            Settled::Reviewed => 1.0,
            Settled::Audited if audit_rate > 0.0 => audit_rate,
            _ => continue,
        };
        let Some(error) = e.charge_error(top) else {
            continue;
        };
        labelled += 1;
        total += error / pi;
        variance += (1.0 - pi) / (pi * pi) * error * error;
    }
    let events = past.len() as u64;
    let estimate = (labelled > 0 || accepted == 0).then_some(total);
    let half = 1.96 * variance.sqrt();
    Replayed {
        policy: policy.name.clone(),
        events,
        to_people,
        review_rate: if events == 0 {
            0.0
        } else {
            to_people as f64 / events as f64
        },
        auto_accepted: accepted,
        expected_audits: accepted as f64 * r.audit_rate,
        labelled,
        charge_error_cents: estimate,
        charge_error_low_cents: estimate.map(|t| (t - half).max(0.0)),
        charge_error_high_cents: estimate.map(|t| t + half),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(conf: f64, settled: Settled, label_sku: Option<&str>) -> Past {
        Past {
            candidates: vec![
                Priced {
                    confidence: conf,
                    unit_price_cents: 300,
                },
                Priced {
                    confidence: 1.0 - conf,
                    unit_price_cents: 500,
                },
            ],
            action: Action::Pick,
            quantity: 1,
            settled,
            label: label_sku.map(|s| Found {
                action: Action::Pick,
                quantity: 1,
                unit_price_cents: if s == "a" { 300 } else { 500 },
            }),
        }
    }

    fn policy(spec: &str) -> SimPolicy {
        SimPolicy::parse(spec).unwrap()
    }

    #[test]
    fn reviewed_events_weigh_one_and_audits_the_inverse_of_their_rate() {
        // Four events a threshold of 0.5 auto-accepts: one reviewed and
        // wrong (200 off), one audited and wrong (200 off, stands for 10),
        // one audited and right, one never labelled.
        let events = [
            past(0.8, Settled::Reviewed, Some("b")),
            past(0.95, Settled::Audited, Some("b")),
            past(0.95, Settled::Audited, Some("a")),
            past(0.95, Settled::Accepted, None),
        ];
        let cal = Calibration::default();
        let r = &replay(
            &events,
            &[policy("threshold,threshold=0.5,margin=0")],
            0.1,
            &cal,
            5.0,
        )[0];
        assert_eq!(
            (r.events, r.to_people, r.auto_accepted, r.labelled),
            (4, 0, 4, 3)
        );
        // 200 / 1 + 200 / 0.1 + 0 = 2200.
        assert!((r.charge_error_cents.unwrap() - 2200.0).abs() < 1e-9);
        // Variance: 0 for the reviewed one, (1 − 0.1) / 0.01 · 200² = 3.6 M.
        let half = 1.96 * (3_600_000.0f64).sqrt();
        assert!((r.charge_error_high_cents.unwrap() - (2200.0 + half)).abs() < 1e-6);
        assert_eq!(r.charge_error_low_cents, Some(0.0));
        assert!((r.expected_audits - 4.0 * 0.02).abs() < 1e-12);
    }

    #[test]
    fn a_stricter_policy_sends_more_to_people_and_leaves_less_error() {
        let events = [
            past(0.8, Settled::Reviewed, Some("b")),
            past(0.95, Settled::Audited, Some("b")),
        ];
        let cal = Calibration::default();
        let out = replay(
            &events,
            &[
                policy("threshold,threshold=0.5,margin=0"),
                policy("threshold,threshold=0.9,margin=0"),
                policy("threshold,threshold=0.99,margin=0"),
            ],
            0.5,
            &cal,
            5.0,
        );
        let rates: Vec<u64> = out.iter().map(|r| r.to_people).collect();
        assert_eq!(rates, [0, 1, 2]);
        let errors: Vec<f64> = out.iter().map(|r| r.charge_error_cents.unwrap()).collect();
        assert_eq!(errors, [200.0 + 400.0, 400.0, 0.0]);
    }

    #[test]
    fn without_labels_among_its_auto_accepts_there_is_no_estimate() {
        let events = [past(0.95, Settled::Accepted, None)];
        let r = &replay(
            &events,
            &[policy("baseline")],
            0.02,
            &Calibration::default(),
            5.0,
        )[0];
        assert_eq!((r.auto_accepted, r.labelled), (1, 0));
        assert_eq!(r.charge_error_cents, None);
    }
}
