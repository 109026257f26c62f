//! The policy page's "What if": a store's own routing policy against others
//! on a standard day sized and timed for the store (its receipt deadline
//! and review cost), through the same simulation as `recount simulate`.

use std::ops::RangeInclusive;

use super::day::Day;
use super::policy::{Audits, Order, SimPolicy, Tune};
use super::{simulate, Report};
use crate::domain::routing::RoutingPolicy;

/// Policies compared beside the store's own, at most.
pub const MAX_POLICIES: usize = 4;
/// Shoppers a day may have.
pub const SHOPPERS: RangeInclusive<u32> = 100..=20_000;
/// Shoppers when none is asked for: a fifth of the standard day, enough to
/// rank policies in about a second.
pub const DEFAULT_SHOPPERS: u32 = 2_000;

/// Why a what-if was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WhatIfError(pub String);

/// The store's policy as it runs today: its routing, Recount's queue.
pub fn current(routing: &RoutingPolicy) -> SimPolicy {
    SimPolicy {
        name: "current".into(),
        routing: routing.clone(),
        order: Order::Deadline,
        audits: Audits::OffPath,
        tune: Tune::Nothing,
    }
}

/// The policies of `specs` (one `--policy` spec a line; blank lines
/// ignored) to compare beside the store's: one to [`MAX_POLICIES`].
pub fn parse_policies(specs: &str) -> Result<Vec<SimPolicy>, WhatIfError> {
    let policies = specs
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| SimPolicy::parse(l).map_err(|e| WhatIfError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if policies.is_empty() {
        return Err(WhatIfError("name at least one policy to compare".into()));
    }
    if policies.len() > MAX_POLICIES {
        return Err(WhatIfError(format!(
            "at most {MAX_POLICIES} policies beside the current one"
        )));
    }
    Ok(policies)
}

/// Runs the store's policy and the policies of `specs` (one `--policy` spec
/// a line; blank lines ignored) on a day of `shoppers` shaped like the
/// standard day, with the store's receipt deadline and `review_cost_cents`.
pub fn what_if(
    routing: &RoutingPolicy,
    review_cost_cents: f64,
    specs: &str,
    shoppers: u32,
    seed: u64,
) -> Result<Report, WhatIfError> {
    if !SHOPPERS.contains(&shoppers) {
        return Err(WhatIfError(format!(
            "shoppers must be between {} and {}",
            SHOPPERS.start(),
            SHOPPERS.end()
        )));
    }
    let mut policies = vec![current(routing)];
    policies.extend(parse_policies(specs)?);
    let day = Day {
        shoppers,
        sla_minutes: routing.receipt_sla_ms as f64 / 60_000.0,
        review_cost_cents,
        ..Day::default()
    };
    day.validate().map_err(|e| WhatIfError(e.to_string()))?;
    Ok(simulate(&day, seed, &policies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_policy_comes_first_and_the_day_takes_its_deadline() {
        let routing = RoutingPolicy {
            receipt_sla_ms: 5 * 60_000,
            ..RoutingPolicy::default()
        };
        let report = what_if(&routing, 5.0, "charge-aware\n\n baseline \n", 300, 2).unwrap();
        let names: Vec<&str> = report
            .policies
            .iter()
            .map(|p| p.figures.policy.as_str())
            .collect();
        assert_eq!(names, ["current", "charge-aware", "baseline"]);
        assert_eq!(report.shoppers, 300);
        for p in &report.policies {
            assert!(p.figures.latency_p95_s <= 300.0, "{:?}", p.figures);
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let routing = RoutingPolicy::default();
        for (specs, shoppers, says) in [
            ("cheapest", 300, "unknown policy"),
            ("", 300, "at least one"),
            (
                "baseline\nbaseline\nbaseline\nbaseline\nbaseline",
                300,
                "at most 4",
            ),
            ("baseline", 10, "shoppers must be between 100 and 20000"),
            ("baseline", 50_000, "shoppers"),
        ] {
            let e = what_if(&routing, 5.0, specs, shoppers, 1).unwrap_err();
            assert!(e.0.contains(says), "{specs:?} {shoppers}: {e}");
        }
    }
}
