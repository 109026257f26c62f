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
    /// Replays this store's past events instead of simulating a day: what
    /// each policy would have sent to people, and the charge error of what
    /// it would have auto-accepted, estimated from audit samples (reads the
    /// configured database).
    #[arg(long, value_name = "STORE_ID", requires_all = ["from", "to"], conflicts_with_all = ["day", "seed"])]
    pub replay: Option<String>,
    /// Start of the replayed range (RFC 3339, inclusive).
    #[arg(long, requires = "replay")]
    pub from: Option<String>,
    /// End of the replayed range (RFC 3339, exclusive).
    #[arg(long, requires = "replay")]
    pub to: Option<String>,
}

impl SimulateArgs {
    /// The policies asked for, or `defaults` when none.
    pub fn policies_or(&self, defaults: Vec<SimPolicy>) -> anyhow::Result<Vec<SimPolicy>> {
        if self.policies.is_empty() {
            return Ok(defaults);
        }
        Ok(self
            .policies
            .iter()
            .map(|s| SimPolicy::parse(s))
            .collect::<Result<Vec<_>, _>>()?)
    }
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
    let policies = args.policies_or(SimPolicy::defaults())?;
    let started = Instant::now();
    let report = simulate(&day, args.seed, &policies);
    let elapsed = started.elapsed();
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        format!(
            "{}\nSimulated {} policies (with the staffing search) in {:.1} s.\n",
            render::text(&report),
            report.policies.len(),
            elapsed.as_secs_f64()
        )
    };
    emit(&out)
}

/// Writes `text` to stdout; a reader that stopped early (`| head`) is not
/// an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
