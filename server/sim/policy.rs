//! The policies a simulation compares, and their `--policy` spelling.
//!
//! A policy is a store's routing policy ([`RoutingPolicy`], the server's own)
//! plus two ways the queue can run. Recount runs deadline order with audit
//! samples off the receipt's path; the other ways are how review queues
//! commonly run (and how Recount ran before), kept so a day can show what
//! they cost.
//!
//! `SPEC` is a name and optional `key=value` settings, comma-separated:
//!
//! * `baseline`: threshold 0.90, margin 0.10, audit 2 %, audits holding
//!   receipts, first-in-first-out queue;
//! * `threshold`: the same routing, run as Recount runs the queue;
//! * `charge-aware`: charge-aware routing, run as Recount runs the queue;
//! * `tuned`: threshold routing at the lowest threshold whose expected
//!   charge error is no more than charge-aware routing's on the same day;
//! * `matched`: charge-aware routing at the highest review cost (whole
//!   cents) whose expected charge error is no more than the baseline's on
//!   the same day.
//!
//! Keys: `threshold`, `margin`, `audit-rate`, `audit-verdicts`,
//! `high-value-cents`, `review-cost-cents`, `order=fifo|deadline`,
//! `audits=hold|off-path`, `name=LABEL`.

use crate::domain::routing::{RoutingMode, RoutingPolicy};

/// How the queue orders ready work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first, whatever it is for.
    Fifo,
    /// By purpose, then receipt deadline ([`crate::domain::lifecycle::queue_rank`]).
    Deadline,
}

/// What an audit sample does to its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audits {
    /// The receipt waits for the audit's verdicts, as for any review.
    Hold,
    /// The receipt is final with the model's answer; the audit measures
    /// (and adjusts the receipt when it disagrees).
    OffPath,
}

/// One policy of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPolicy {
    /// How it is shown.
    pub name: String,
    /// The routing rules.
    pub routing: RoutingPolicy,
    /// Queue order.
    pub order: Order,
    /// What audit samples hold.
    pub audits: Audits,
    /// What is tuned to the day before it runs.
    pub tune: Tune,
}

/// A setting found on the day itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tune {
    /// Nothing: the policy as given.
    Nothing,
    /// The threshold, to charge-aware routing's expected charge error.
    Threshold,
    /// The review cost, to the baseline's expected charge error.
    ReviewCost,
}

/// Why a `--policy` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {spec:?}: {message}")]
pub struct PolicyError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub message: String,
}

impl SimPolicy {
    /// The policies compared when none is given.
    pub fn defaults() -> Vec<SimPolicy> {
        [
            "baseline",
            "tuned",
            "matched",
            "charge-aware,order=fifo,audits=hold,name=charge-aware (fifo; audits hold)",
            "charge-aware",
        ]
        .iter()
        .map(|s| SimPolicy::parse(s).expect("the default policies parse"))
        .collect()
    }

    /// Parses a `--policy` spec.
    pub fn parse(spec: &str) -> Result<SimPolicy, PolicyError> {
        let fail = |message: String| PolicyError {
            spec: spec.to_string(),
            message,
        };
        let mut parts = spec.split(',').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let mut policy = match name {
            "baseline" => SimPolicy {
                name: "baseline".into(),
                routing: RoutingPolicy::default(),
                order: Order::Fifo,
                audits: Audits::Hold,
                tune: Tune::Nothing,
            },
            "threshold" | "tuned" => SimPolicy {
                name: name.into(),
                routing: RoutingPolicy::default(),
                order: Order::Deadline,
                audits: Audits::OffPath,
                tune: if name == "tuned" {
                    Tune::Threshold
                } else {
                    Tune::Nothing
                },
            },
            "charge-aware" | "matched" => SimPolicy {
                name: name.into(),
                routing: RoutingPolicy {
                    mode: RoutingMode::ChargeAware,
                    ..RoutingPolicy::default()
                },
                order: Order::Deadline,
                audits: Audits::OffPath,
                tune: if name == "matched" {
                    Tune::ReviewCost
                } else {
                    Tune::Nothing
                },
            },
            other => {
                return Err(fail(format!(
                    "unknown policy {other:?}: expected baseline, threshold, tuned, charge-aware or matched"
                )))
            }
        };
        let mut named = false;
        let mut settings = false;
        for part in parts {
            settings = true;
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| fail(format!("{part:?} is not key=value")))?;
            let number = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| fail(format!("{key}: {value:?} is not a number")))
            };
            let whole = || {
                value
                    .parse::<i64>()
                    .map_err(|_| fail(format!("{key}: {value:?} is not a whole number")))
            };
            let r = &mut policy.routing;
            match key {
                "threshold" if policy.tune != Tune::Threshold => r.threshold = number()?,
                "margin" => r.margin = number()?,
                "audit-rate" => r.audit_rate = number()?,
                "audit-verdicts" => r.audit_verdicts = whole()?,
                "high-value-cents" => r.high_value_cents = Some(whole()?),
                "review-cost-cents" if policy.tune != Tune::ReviewCost => {
                    r.review_cost_cents = Some(whole()?)
                }
                "order" => {
                    policy.order = match value {
                        "fifo" => Order::Fifo,
                        "deadline" => Order::Deadline,
                        _ => return Err(fail(format!("order: {value:?} is not fifo or deadline"))),
                    }
                }
                "audits" => {
                    policy.audits = match value {
                        "hold" => Audits::Hold,
                        "off-path" => Audits::OffPath,
                        _ => {
                            return Err(fail(format!("audits: {value:?} is not hold or off-path")))
                        }
                    }
                }
                "name" if !value.is_empty() => {
                    policy.name = value.to_string();
                    named = true;
                }
                _ => return Err(fail(format!("unknown setting {key:?}"))),
            }
        }
        policy.routing.validate().map_err(|e| fail(e.to_string()))?;
        if settings && !named {
            // Two variants of one policy side by side need telling apart.
            policy.name = spec.trim().to_string();
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_routing_and_queue_settings() {
        let p = SimPolicy::parse("baseline").unwrap();
        assert_eq!(p.routing, RoutingPolicy::default());
        assert_eq!((p.order, p.audits), (Order::Fifo, Audits::Hold));
        let p = SimPolicy::parse("threshold,threshold=0.95,audit-rate=0.05,name=t95").unwrap();
        assert_eq!(p.routing.threshold, 0.95);
        assert_eq!(p.routing.audit_rate, 0.05);
        assert_eq!(p.name, "t95");
        assert_eq!((p.order, p.audits), (Order::Deadline, Audits::OffPath));
        let p = SimPolicy::parse("charge-aware,review-cost-cents=12,order=fifo").unwrap();
        assert_eq!(p.name, "charge-aware,review-cost-cents=12,order=fifo");
        assert_eq!(p.routing.mode, RoutingMode::ChargeAware);
        assert_eq!(p.routing.review_cost_cents, Some(12));
        assert_eq!(p.order, Order::Fifo);
        assert_eq!(SimPolicy::parse("tuned").unwrap().tune, Tune::Threshold);
        let m = SimPolicy::parse("matched").unwrap();
        assert_eq!(
            (m.tune, m.routing.mode),
            (Tune::ReviewCost, RoutingMode::ChargeAware)
        );
        assert_eq!(SimPolicy::defaults().len(), 5);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("cheapest", "unknown policy"),
            ("threshold,threshold=2", "threshold"),
            ("threshold,threshold=high", "not a number"),
            ("threshold,order=random", "order"),
            ("charge-aware,audits=never", "audits"),
            ("baseline,colour=red", "unknown setting"),
            ("baseline,threshold", "key=value"),
            ("tuned,threshold=0.9", "unknown setting"),
            ("matched,review-cost-cents=9", "unknown setting"),
            ("charge-aware,review-cost-cents=-1", "review_cost_cents"),
        ] {
            let e = SimPolicy::parse(spec).unwrap_err();
            assert!(e.to_string().contains(says), "{spec}: {e}");
        }
    }
}
