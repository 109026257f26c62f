//! The store-day simulator (`recount simulate`): a day of shoppers, a
//! model and a crew, run through the server's own rules on a virtual clock
//! for several policies side by side, with the same random draws, to show
//! how many reviews, labeler-hours, late receipts and wrong charges each
//! policy costs. `docs/economics.md` describes the standard day and what
//! it shows.
//!
//! It uses [`crate::domain`] only: no database, no clock, no I/O but the
//! command's own output.

pub mod cli;
pub mod day;
pub mod draw;
pub mod engine;
pub mod figures;
pub mod forecast;
pub mod policy;
pub mod render;
pub mod replay;
pub mod staffing;
pub mod whatif;

use serde::Serialize;

use day::Day;
use draw::Drawn;
use engine::Staffing;
use figures::Figures;
use policy::{SimPolicy, Tune};

use crate::domain::routing::RoutingMode;

/// One policy's outcome on the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyOutcome {
    /// The figures, with the day's shifts when it gives some, else with the
    /// staffing the policy needs.
    pub figures: Figures,
    /// Labeler-hours needed to hold p95 receipt latency within the SLA.
    pub needed_labeler_hours: u64,
    /// Labelers needed in each hour from opening.
    pub needed_per_hour: Vec<u32>,
    /// The threshold used, for threshold routing.
    pub threshold: Option<f64>,
}

/// A point of the review-rate / charge-error curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The confidence threshold (or, for a policy mark, none).
    pub threshold: Option<f64>,
    /// Share of events whose receipt waits for a person.
    pub review_rate: f64,
    /// Expected charge error per 1,000 receipts, in cents.
    pub expected_error_per_1000_cents: f64,
}

/// What `recount simulate` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed of the day's draws.
    pub seed: u64,
    /// Shoppers and events of the day.
    pub shoppers: u64,
    /// Events of the day.
    pub events: u64,
    /// One outcome per policy, in the order given.
    pub policies: Vec<PolicyOutcome>,
    /// Threshold routing at thresholds 0.50 to 0.99.
    pub curve: Vec<CurvePoint>,
    /// Where each policy sits on the curve's axes, in policy order.
    pub marks: Vec<CurvePoint>,
}

/// Runs `policies` over the day `day` drawn from `seed`.
pub fn simulate(day: &Day, seed: u64, policies: &[SimPolicy]) -> Report {
    let drawn = Drawn::new(day, seed);
    let policies: Vec<SimPolicy> = policies.iter().map(|p| prepare(day, &drawn, p)).collect();
    let threshold_policy = SimPolicy::parse("threshold").expect("a known policy");
    let curve = (50..100)
        .map(|t| {
            let mut p = prepare(day, &drawn, &threshold_policy);
            p.routing.threshold = t as f64 / 100.0;
            staffing::routing_pass(day, &drawn, &p).point(Some(p.routing.threshold))
        })
        .collect();
    let marks = policies
        .iter()
        .map(|p| staffing::routing_pass(day, &drawn, p).point(None))
        .collect();
    let outcomes = policies
        .iter()
        .map(|p| {
            let (needed, at_needed) = staffing::needed(day, &drawn, p);
            let figures = if day.labelers.shifts.is_empty() {
                at_needed
            } else {
                engine::Run::figures(day, &drawn, p, &Staffing::of_shifts(day))
            };
            PolicyOutcome {
                figures,
                needed_labeler_hours: needed.hours(),
                needed_per_hour: needed.per_hour,
                threshold: (p.routing.mode == RoutingMode::Threshold)
                    .then_some(p.routing.threshold),
            }
        })
        .collect();
    Report {
        seed,
        shoppers: drawn.shoppers.len() as u64,
        events: drawn.events.len() as u64,
        policies: outcomes,
        curve,
        marks,
    }
}

/// A policy as it runs on `day`: the day's SLA; for `tuned` the lowest
/// threshold whose expected charge error is no more than charge-aware
/// routing's (same review cost, audit rate and margin); for `matched` the
/// highest review cost whose expected charge error is no more than the
/// baseline's. Both bisect: a higher threshold never reviews less, a higher
/// review cost never more.
pub fn prepare(day: &Day, drawn: &Drawn, policy: &SimPolicy) -> SimPolicy {
    let mut p = policy.clone();
    p.routing.receipt_sla_ms = (day.sla_minutes * draw::MINUTE as f64).round() as i64;
    p.tune = Tune::Nothing;
    let error_of = |q: &SimPolicy| staffing::routing_pass(day, drawn, q).expected_error;
    match policy.tune {
        Tune::Nothing => {}
        Tune::Threshold => {
            let mut aware = p.clone();
            aware.routing.mode = RoutingMode::ChargeAware;
            let target = error_of(&aware);
            let thousandths = lowest(0, 1_000, |t| {
                let mut q = p.clone();
                q.routing.threshold = t as f64 / 1_000.0;
                error_of(&q) <= target
            });
            p.routing.threshold = thousandths as f64 / 1_000.0;
            p.name = format!("threshold {:.3} (same error)", p.routing.threshold);
        }
        Tune::ReviewCost => {
            let baseline = prepare(day, drawn, &SimPolicy::parse("baseline").expect("known"));
            let target = error_of(&baseline);
            // The lowest cost that errs more, less one.
            let over = lowest(0, 100_000, |c| {
                let mut q = p.clone();
                q.routing.review_cost_cents = Some(c);
                error_of(&q) > target
            });
            let cost = (over - 1).max(0);
            p.routing.review_cost_cents = Some(cost);
            p.name = format!("charge-aware {cost}¢ (baseline error)");
        }
    }
    p
}

/// The lowest `x` in `lo..=hi` for which `ok` holds, `ok` being monotone
/// (false then true); `hi` when it holds nowhere below.
fn lowest(mut lo: i64, mut hi: i64, ok: impl Fn(i64) -> bool) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::day::{CatalogSpec, Shift};
    use super::*;

    /// A short day: 300 shoppers over three hours, 60 products.
    fn short() -> Day {
        Day {
            shoppers: 300,
            arrivals_by_hour: vec![1.0, 2.0, 1.0],
            catalog: CatalogSpec {
                products: 60,
                ..CatalogSpec::default()
            },
            ..Day::default()
        }
    }

    fn policy(spec: &str) -> SimPolicy {
        SimPolicy::parse(spec).unwrap()
    }

    fn run(day: &Day, spec: &str, staffing: &Staffing) -> Figures {
        let drawn = Drawn::new(day, 5);
        let p = prepare(day, &drawn, &policy(spec));
        engine::Run::figures(day, &drawn, &p, staffing)
    }

    fn crew(n: u32, hours: usize) -> Staffing {
        Staffing {
            per_hour: vec![n; hours],
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        let day = short();
        let policies = SimPolicy::defaults();
        let a = serde_json::to_string(&simulate(&day, 9, &policies)).unwrap();
        let b = serde_json::to_string(&simulate(&day, 9, &policies)).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_string(&simulate(&day, 10, &policies)).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn every_event_is_settled_once_and_every_receipt_is_final() {
        let day = short();
        for spec in [
            "baseline",
            "threshold",
            "charge-aware",
            "charge-aware,audit-rate=0.3",
        ] {
            let f = run(&day, spec, &crew(2, 5));
            assert_eq!(f.events, f.events_to_people + f.auto_accepted, "{spec}");
            assert_eq!(f.unfinished, 0, "{spec}");
            assert_eq!(f.receipts, 300, "{spec}");
            // Each receipt-holding review needs at least one verdict or a
            // supervisor's settlement.
            let settled_by_supervisors = f.escalated.deadline
                + f.escalated.no_eligible_labeler
                + f.escalated.disagreement
                + f.escalated.cant_tell;
            assert!(
                f.verdicts + settled_by_supervisors >= f.events_to_people,
                "{spec}"
            );
        }
    }

    #[test]
    fn a_review_cost_of_zero_reviews_everything_and_a_huge_one_only_audits() {
        let day = short();
        let all = run(&day, "charge-aware,review-cost-cents=0", &crew(3, 5));
        assert_eq!(all.events_to_people, all.events);
        let none = run(
            &day,
            "charge-aware,review-cost-cents=100000000",
            &crew(3, 5),
        );
        assert_eq!(none.events_to_people, 0);
        assert!(none.audits > 0, "audit samples are still drawn");
        assert_eq!(none.latency_p99_s, 0.0, "every receipt is final at exit");
    }

    #[test]
    fn audits_off_the_path_hold_no_receipt_and_audits_that_hold_do() {
        let day = short();
        let off = run(
            &day,
            "threshold,threshold=0,margin=0,audit-rate=1",
            &crew(2, 5),
        );
        assert_eq!(off.events_to_people, 0);
        assert_eq!(off.audits, off.events);
        assert_eq!(off.latency_p99_s, 0.0);
        let hold = run(
            &day,
            "threshold,threshold=0,margin=0,audit-rate=1,audits=hold",
            &crew(2, 5),
        );
        assert_eq!(hold.events_to_people, hold.events);
        assert!(hold.latency_p95_s > 0.0);
        assert!(
            hold.verdicts
                >= 2 * (hold.events
                    - hold.escalated.deadline
                    - hold.escalated.no_eligible_labeler
                    - hold.escalated.disagreement)
        );
    }

    #[test]
    fn without_labelers_the_deadline_guarantee_hands_work_to_supervisors() {
        let day = short();
        let f = run(&day, "threshold", &crew(0, 0));
        assert_eq!(f.verdicts, 0);
        assert!(f.escalated.deadline > 0);
        assert_eq!(f.escalated.deadline, f.events_to_people);
        assert_eq!(f.unfinished, 0);
        // One supervisor, 20 s a task, cannot keep up with a store.
        assert!(f.past_sla > 0);
    }

    #[test]
    fn a_crew_too_small_for_two_verdicts_escalates_for_no_eligible_labeler() {
        let day = short();
        let f = run(&day, "threshold,audit-rate=0.5,audits=hold", &crew(1, 5));
        assert!(f.escalated.no_eligible_labeler > 0, "{f:?}");
    }

    #[test]
    fn a_higher_threshold_never_reviews_less() {
        let day = short();
        let drawn = Drawn::new(&day, 2);
        let mut last = 0;
        for t in (50..100).step_by(7) {
            let mut p = policy("threshold");
            p.routing.threshold = t as f64 / 100.0;
            let routed = staffing::routing_pass(&day, &drawn, &p);
            assert!(routed.to_people >= last, "{t}");
            last = routed.to_people;
        }
    }

    #[test]
    fn the_needed_crew_holds_the_sla_and_one_less_per_hour_would_not_be_enough_everywhere() {
        let day = short();
        let drawn = Drawn::new(&day, 4);
        let p = prepare(&day, &drawn, &policy("baseline"));
        let (needed, figures) = staffing::needed(&day, &drawn, &p);
        assert!(
            figures.latency_p95_s <= day.sla_minutes * 60.0,
            "{figures:?}"
        );
        assert_eq!(figures.labeler_hours, needed.hours() as f64);
        let thinner = Staffing {
            per_hour: needed.per_hour.iter().map(|n| n / 2).collect(),
        };
        let f = engine::Run::figures(&day, &drawn, &p, &thinner);
        assert!(f.latency_p95_s >= figures.latency_p95_s, "{f:?}");
    }

    #[test]
    fn tuned_threshold_has_no_more_expected_error_than_charge_aware_routing() {
        let day = short();
        let drawn = Drawn::new(&day, 6);
        let tuned = prepare(&day, &drawn, &policy("tuned"));
        let aware = prepare(&day, &drawn, &policy("charge-aware"));
        let t = staffing::routing_pass(&day, &drawn, &tuned);
        let a = staffing::routing_pass(&day, &drawn, &aware);
        assert!(t.expected_error <= a.expected_error + 1e-9);
        let mut lower = tuned.clone();
        lower.routing.threshold -= 0.001;
        assert!(staffing::routing_pass(&day, &drawn, &lower).expected_error > a.expected_error);
    }

    #[test]
    fn matched_charge_aware_routing_errs_no_more_than_the_baseline() {
        let day = short();
        let drawn = Drawn::new(&day, 6);
        let matched = prepare(&day, &drawn, &policy("matched"));
        let baseline = prepare(&day, &drawn, &policy("baseline"));
        let m = staffing::routing_pass(&day, &drawn, &matched);
        let b = staffing::routing_pass(&day, &drawn, &baseline);
        assert!(m.expected_error <= b.expected_error);
        assert!(
            m.to_people < b.to_people,
            "{} vs {}",
            m.to_people,
            b.to_people
        );
        let mut dearer = matched.clone();
        dearer.routing.review_cost_cents = matched.routing.review_cost_cents.map(|c| c + 1);
        assert!(staffing::routing_pass(&day, &drawn, &dearer).expected_error > b.expected_error);
    }

    #[test]
    fn the_days_shifts_staff_the_run() {
        let day = Day {
            labelers: day::LabelerSpec {
                shifts: vec![Shift {
                    from_hour: 0,
                    to_hour: 4,
                    labelers: 3,
                }],
                ..day::LabelerSpec::default()
            },
            ..short()
        };
        let report = simulate(&day, 1, &[policy("threshold")]);
        assert_eq!(report.policies[0].figures.labeler_hours, 12.0);
        assert_eq!(report.curve.len(), 50);
        assert_eq!(report.marks.len(), 1);
    }
}
