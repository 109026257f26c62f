//! `recount export`: the export written straight into a local directory,
//! with a progress bar on the terminal.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{run, Destination};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::domain::export::{
    ExportSpec, Filter, Resolution, SplitPlan, DEFAULT_SEED, DEFAULT_SHARD_BYTES,
};
use crate::domain::scope::Scope;
use crate::domain::time::parse_rfc3339_ms;
use crate::review::exports;
use crate::storage::Blobs;

/// How a resolution is named on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ResolutionArg {
    /// Auto-accepted.
    Auto,
    /// Labelers agreed.
    Human,
    /// A supervisor decided.
    Supervisor,
}

impl From<ResolutionArg> for Resolution {
    fn from(r: ResolutionArg) -> Resolution {
        match r {
            ResolutionArg::Auto => Resolution::Auto,
            ResolutionArg::Human => Resolution::Human,
            ResolutionArg::Supervisor => Resolution::Supervisor,
        }
    }
}

/// Options of `recount export` (docs/export.md).
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Directory to write into (created; must be empty if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Only this store (repeat for several).
    #[arg(long = "store")]
    pub stores: Vec<String>,
    /// Events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Events that occurred before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this model version (repeat for several).
    #[arg(long = "model-version")]
    pub model_versions: Vec<String>,
    /// Only this resolution (repeat for several).
    #[arg(long = "resolution", value_enum)]
    pub resolutions: Vec<ResolutionArg>,
    /// Only events with verdicts, at least this share of which gave the
    /// final label (0 to 1).
    #[arg(long)]
    pub min_agreement: Option<f64>,
    /// Only events whose final label differs from the model's top guess.
    #[arg(long)]
    pub hard_only: bool,
    /// Share of sessions in train.
    #[arg(long, default_value_t = 0.8)]
    pub train: f64,
    /// Share of sessions in validation (test gets the rest).
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// Seed of the split: the same seed always puts a session in the same split.
    #[arg(long, default_value = DEFAULT_SEED)]
    pub seed: String,
    /// Largest shard, in bytes or with a unit (64KiB, 100MB, 1GiB).
    #[arg(long, default_value_t = DEFAULT_SHARD_BYTES.to_string(), value_parser = parse_size)]
    pub shard_size: String,
    /// Write only the samples' JSON, no clips.
    #[arg(long)]
    pub no_video: bool,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `123`, `64KiB`, `100MB`, `1GiB` into bytes (as text, for clap).
fn parse_size(s: &str) -> Result<String, String> {
    size_bytes(s).map(|n| n.to_string())
}

/// Bytes of a size written with an optional unit.
pub fn size_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

impl ExportArgs {
    /// The export these options ask for.
    pub fn spec(&self) -> anyhow::Result<ExportSpec> {
        let time = |v: &Option<String>, name: &str| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|t| {
                    parse_rfc3339_ms(t)
                        .with_context(|| format!("--{name} {t:?} is not an RFC 3339 time"))
                })
                .transpose()
        };
        let spec = ExportSpec {
            filter: Filter {
                stores: self.stores.clone(),
                from_ms: time(&self.from, "from")?,
                to_ms: time(&self.to, "to")?,
                model_versions: self.model_versions.clone(),
                resolutions: self.resolutions.iter().map(|r| (*r).into()).collect(),
                min_agreement: self.min_agreement,
                hard_only: self.hard_only,
            },
            split: SplitPlan {
                train: self.train,
                validation: self.validation,
                seed: self.seed.clone(),
            },
            shard_bytes: size_bytes(&self.shard_size).map_err(anyhow::Error::msg)?,
            include_video: !self.no_video,
        };
        spec.validate().map_err(anyhow::Error::msg)?;
        Ok(spec)
    }
}

/// Runs `recount export`; prints a JSON summary on stdout.
pub async fn export(args: &ExportArgs, config: &Config, db: &Db) -> anyhow::Result<()> {
    let spec = exports::check(db, &Scope::All, args.spec()?).await?;
    let out = args.out.display().to_string();
    exports::record_cli_export(db, &spec, &out, SystemClock.now_ms()).await?;
    if args.out.exists() {
        let mut entries = std::fs::read_dir(&args.out)
            .with_context(|| format!("reading {}", args.out.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty; export into a new directory",
            args.out.display()
        );
    }
    let blobs = Blobs::from_config(config)?;
    let as_of = SystemClock.now_ms();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} events · {msg} · eta {eta}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let summary = run(
        db,
        &blobs,
        &spec,
        as_of,
        &Destination::Dir(args.out.clone()),
        |p| {
            bar.set_length(p.total);
            bar.set_position(p.looked_at);
            bar.set_message(format!(
                "{} samples, {:.1} MB",
                p.samples,
                p.bytes as f64 / 1e6
            ));
            async { Ok(()) }
        },
    )
    .await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let bytes = summary.bytes();
    println!(
        "{}",
        json!({
            "out": args.out.display().to_string(),
            "samples": summary.card.samples,
            "hard": summary.card.hard,
            "splits": summary.card.splits,
            "files": summary.files.len(),
            "bytes": bytes,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "samples_per_s": (summary.card.samples as f64 / seconds.max(1e-9)).round(),
            "mb_per_s": ((bytes as f64 / 1e6 / seconds.max(1e-9)) * 10.0).round() / 10.0,
            "peak_rss_mb": peak_rss_bytes().map(|b| (b as f64 / 1e5).round() / 10.0),
        })
    );
    Ok(())
}

/// The most memory this process has held resident (the kernel's `VmHWM`),
/// where the system tells (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units() {
        assert_eq!(size_bytes("123"), Ok(123));
        assert_eq!(size_bytes("64KiB"), Ok(65_536));
        assert_eq!(size_bytes("100MB"), Ok(100_000_000));
        assert_eq!(size_bytes("1gib"), Ok(1 << 30));
        assert!(size_bytes("12 parsecs").is_err());
        assert!(size_bytes("MB").is_err());
        assert!(size_bytes("99999999999999GiB").is_err());
    }

    #[test]
    fn peak_memory_is_read_from_the_kernel() {
        let peak = peak_rss_bytes().expect("Linux reports VmHWM");
        // A test binary holds at least a megabyte and less than a terabyte.
        assert!((1 << 20..1 << 40).contains(&peak), "{peak}");
    }
}
