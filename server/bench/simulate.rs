//! `recount bench simulate`: the store-day simulator's targets on the
//! standard day, all in one run: review rate and labeler-hours of
//! charge-aware routing against the baseline, and how long one standard
//! day takes to simulate on one core.

use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::report::{median, round2, verdict, Machine};
use crate::sim::day::Day;
use crate::sim::draw::Drawn;
use crate::sim::engine::Run;
use crate::sim::policy::SimPolicy;
use crate::sim::{prepare, simulate, PolicyOutcome};

/// Options of `recount bench simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Seed of the day's draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timed runs of one day; the figure is their median.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Seconds one standard day may take on one core.
const DAY_SECONDS_TARGET: f64 = 10.0;

/// Runs the bench and prints its table and one JSON line.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let machine = Machine::observe();
    let day = Day::default();
    let specs = ["baseline", "tuned", "matched", "charge-aware"];
    let policies: Vec<SimPolicy> = specs
        .iter()
        .map(|s| SimPolicy::parse(s))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let report = simulate(&day, args.seed, &policies);
    let report_s = started.elapsed().as_secs_f64();
    let [baseline, tuned, matched, aware] = [0, 1, 2, 3].map(|i| &report.policies[i]);

    // One day, one policy, at the baseline's needed crew, timed apart from
    // the staffing search; the draw of the day is the reference beside it.
    let mut draw_s = Vec::new();
    let mut day_s = Vec::new();
    let staffing = crate::sim::engine::Staffing {
        per_hour: baseline.needed_per_hour.clone(),
    };
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let drawn = Drawn::new(&day, args.seed);
        draw_s.push(t.elapsed().as_secs_f64());
        let policy = prepare(&day, &drawn, &policies[0]);
        let t = Instant::now();
        let figures = Run::figures(&day, &drawn, &policy, &staffing);
        day_s.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            figures == baseline.figures,
            "a run differs from the report's"
        );
    }
    let (draw_s, day_s) = (median(&draw_s), median(&day_s));

    let rate = |p: &PolicyOutcome| p.figures.review_rate;
    let error = |p: &PolicyOutcome| p.figures.expected_charge_error_cents;
    let hours = |p: &PolicyOutcome| p.needed_labeler_hours as f64;
    let review_ratio = rate(matched) / rate(baseline);
    let hours_ratio = hours(aware) / hours(baseline);
    let matched_hours_ratio = hours(matched) / hours(baseline);
    let aware_review_ratio = rate(aware) / rate(baseline);

    println!(
        "recount bench simulate: the standard day (docs/economics.md), seed {}",
        args.seed
    );
    println!("{}", machine.describe());
    println!();
    println!(
        "{:<34} {:>11} {:>14} {:>13} {:>14}",
        "policy", "review rate", "exp. error $", "labeler-h", "p95 s (SLA 600)"
    );
    for p in [baseline, tuned, matched, aware] {
        println!(
            "{:<34} {:>10.1}% {:>14.2} {:>13} {:>14.0}",
            p.figures.policy,
            rate(p) * 100.0,
            error(p) / 100.0,
            p.needed_labeler_hours,
            p.figures.latency_p95_s
        );
    }
    println!();
    println!(
        "charge-aware at the baseline's error: review rate {:.2}x the baseline's (target <= 0.5x) {}; \
         expected error {:.2}x",
        review_ratio,
        verdict(review_ratio <= 0.5 && error(matched) <= error(baseline)),
        error(matched) / error(baseline)
    );
    println!(
        "charge-aware at the standard day's review cost: review rate {:.2}x at {:.2}x the error",
        aware_review_ratio,
        error(aware) / error(baseline)
    );
    println!(
        "labeler-hours needed for p95 <= SLA: charge-aware {:.2}x, charge-aware at the baseline's \
         error {:.2}x the baseline's (target <= 0.4x) {}",
        hours_ratio,
        matched_hours_ratio,
        verdict(hours_ratio <= 0.4)
    );
    println!(
        "one standard day, one policy: {day_s:.3} s (median of {}); drawing the day {draw_s:.3} s; \
         {:.3}x the {DAY_SECONDS_TARGET:.0} s target {}; the whole comparison with staffing \
         searches {report_s:.1} s",
        args.runs.max(1),
        day_s / DAY_SECONDS_TARGET,
        verdict(day_s <= DAY_SECONDS_TARGET)
    );
    let row = |p: &PolicyOutcome| {
        json!({
            "policy": p.figures.policy,
            "review_rate": round2(rate(p) * 100.0),
            "expected_charge_error_cents": round2(error(p)),
            "needed_labeler_hours": p.needed_labeler_hours,
            "latency_p95_s": round2(p.figures.latency_p95_s),
        })
    };
    println!(
        "{}",
        json!({
            "bench": "simulate",
            "seed": args.seed,
            "policies": [row(baseline), row(tuned), row(matched), row(aware)],
            "matched_review_rate_ratio": round2(review_ratio),
            "charge_aware_review_rate_ratio": round2(aware_review_ratio),
            "labeler_hours_ratio": round2(hours_ratio),
            "matched_labeler_hours_ratio": round2(matched_hours_ratio),
            "day_seconds": day_s,
            "draw_seconds": draw_s,
            "report_seconds": report_s,
            "machine": machine.to_json(),
        })
    );
    Ok(())
}
