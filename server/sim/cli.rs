//! `recount simulate`: reads a day, runs the policies, prints the report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::day::Day;
use super::policy::SimPolicy;
use super::{render, simulate};

/// Options of `recount simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// A day as JSON (fields left out keep the standard day's values;
    /// see docs/economics.md). Without it, the standard day.
    #[arg(long)]
    pub day: Option<PathBuf>,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A policy to compare (repeat for several): `baseline`, `threshold`,
    /// `tuned`, `charge-aware`, each with `,key=value` settings. Without
    /// any: baseline, tuned, charge-aware with a FIFO queue and audits
    /// holding receipts, and charge-aware as Recount runs it.
    #[arg(long = "policy", value_name = "SPEC")]
    pub policies: Vec<String>,
    /// Prints the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `recount simulate`.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let day = match &args.day {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the day file {}", path.display()))?;
            Day::from_json(&text)
                .map_err(|e| anyhow::anyhow!("day file {}: {e}", path.display()))?
        }
        None => Day::default(),
    };
    let policies = if args.policies.is_empty() {
        SimPolicy::defaults()
    } else {
        args.policies
            .iter()
            .map(|s| SimPolicy::parse(s))
            .collect::<Result<Vec<_>, _>>()?
    };
    let started = Instant::now();
    let report = simulate(&day, args.seed, &policies);
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::text(&report));
        println!(
            "\nSimulated {} policies (with the staffing search) in {:.1} s.",
            report.policies.len(),
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}
