//! `recount bench`: throughput and latency of the review queue and of ingest,
//! measured over real HTTP against an in-process server on loopback; media
//! work against the ffmpeg CLI; the dashboard snapshot against plain queries.
//!
//! Every phase runs on a fresh database (a new SQLite file, or a new
//! PostgreSQL database created on the configured server) that is removed
//! afterwards, so a bench never reads or writes real data. See
//! docs/benchmarks.md for what each figure means and the figures measured.

pub mod count;
mod dashboard;
pub mod export;
mod fresh;
mod ingest;
mod media;
mod queue;
mod raw;
mod report;
mod seed;
pub mod server;
mod simulate;
mod storeday;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::Config;
use crate::db::Backend;
use crate::domain::audit::Actor;

/// The benches, as the audit trail of their throw-away databases names
/// them.
fn bench_actor() -> Actor {
    Actor::system("bench")
}

/// The benchmarks.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Labelers claiming and answering tasks over HTTP, against the same work
    /// done without HTTP (the ceiling).
    Queue(QueueArgs),
    /// Events per second posted one per request, against posted in batches.
    Ingest(IngestArgs),
    /// In-process media work against the ffmpeg CLI on the same files, and
    /// clip range serving over HTTP (wrk) against raw reads.
    Media(media::MediaArgs),
    /// The dashboard snapshot on a month of history against plain GROUP BY
    /// queries over the raw rows.
    Dashboard(dashboard::DashboardArgs),
    /// Training-data export throughput against tar packing the same files.
    Export(export::ExportArgs),
    /// A store day of shoppers and a crew through the server's rules on a
    /// virtual clock: receipt latency with audit samples off and on the
    /// receipt's path, with the same draws.
    Storeday(storeday::StoreDayArgs),
    /// The store-day simulator's targets on the standard day: review rate
    /// and labeler-hours of charge-aware routing against the baseline, and
    /// the time one day takes to simulate.
    Simulate(simulate::SimulateArgs),
}

/// Options of `recount bench queue`.
#[derive(Args, Debug, Clone)]
pub struct QueueArgs {
    /// Concurrent labelers, each looping claim → verdict.
    #[arg(long, default_value_t = 200)]
    pub labelers: usize,
    /// Ready tasks seeded before each phase.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Seconds of the HTTP phase; 600 on PostgreSQL is the decay run.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds of the ceiling phase (default: the same as --duration).
    #[arg(long)]
    pub ceiling_duration: Option<u64>,
    /// Milliseconds each labeler spends on a task between claim and verdict,
    /// as a person watching the clips would; 0 (back to back) saturates the
    /// queue, more measures latency at a realistic load.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Engine(s) to measure (default: the one --database-url names).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

/// Options of `recount bench ingest`.
#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// Events posted in each mode.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Events per request in batch mode.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Runs of each mode; the figures are their medians.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Engine(s) to measure (default: the one --database-url names).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

/// Which engines a bench measures.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the PostgreSQL server of --database-url.
    Postgres,
    /// SQLite, then PostgreSQL.
    Both,
}

/// Runs one bench; prints a table and, last, one JSON line with every figure.
pub async fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Queue(args) => {
            let engines = backends(args.backend, config)?;
            queue::run(&args, &engines, config).await
        }
        BenchCommand::Ingest(args) => {
            let engines = backends(args.backend, config)?;
            ingest::run(&args, &engines, config).await
        }
        BenchCommand::Media(args) => media::run(&args, config).await,
        BenchCommand::Dashboard(args) => dashboard::run(&args, config).await,
        BenchCommand::Export(args) => export::run(&args, config).await,
        BenchCommand::Storeday(args) => storeday::run(&args, config).await,
        BenchCommand::Simulate(args) => simulate::run(&args),
    }
}

/// The engines to measure. PostgreSQL needs a server URL because the bench
/// creates (and drops) its own database there.
fn backends(choice: Option<BackendChoice>, config: &Config) -> anyhow::Result<Vec<Backend>> {
    let configured_pg = fresh::is_postgres_url(&config.database_url);
    let list = match choice {
        None if configured_pg => vec![Backend::Postgres],
        None | Some(BackendChoice::Sqlite) => vec![Backend::Sqlite],
        Some(BackendChoice::Postgres) => vec![Backend::Postgres],
        Some(BackendChoice::Both) => vec![Backend::Sqlite, Backend::Postgres],
    };
    if list.contains(&Backend::Postgres) && !configured_pg {
        anyhow::bail!(
            "PostgreSQL needs --database-url postgres://USER@HOST/DB: a server where the bench \
             may create and drop a database of its own"
        );
    }
    Ok(list)
}

/// The lower-case engine name used in the output.
fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_is_refused_without_a_server_url() {
        let config = Config::default();
        assert_eq!(backends(None, &config).unwrap(), vec![Backend::Sqlite]);
        assert!(backends(Some(BackendChoice::Both), &config).is_err());
        let config = Config {
            database_url: "postgres://u@h/db".into(),
            ..Config::default()
        };
        assert_eq!(backends(None, &config).unwrap(), vec![Backend::Postgres]);
        assert_eq!(
            backends(Some(BackendChoice::Both), &config).unwrap(),
            vec![Backend::Sqlite, Backend::Postgres]
        );
    }
}
