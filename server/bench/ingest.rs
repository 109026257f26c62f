//! `recount bench ingest`: events per second over real HTTP, posted one per
//! request against posted as arrays, the same events into a fresh store with
//! a catalog and a history of [`HISTORY_EVENTS`] events each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::bench_actor;
use super::fresh::{engine_version, with_fresh_db, Fresh};
use super::report::{median, round2, verdict, Latency, Machine};
use super::seed::{catalog, sku, CATALOG_SIZE};
use super::server::{self, Server};
use super::{backend_name, IngestArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Backend;
use crate::domain::time::format_rfc3339_ms;
use crate::review::admin;

/// Least speed-up batches should bring over single events.
const TARGET_RATIO: f64 = 5.0;
/// Events of one shopper session, sent in order.
const EVENTS_PER_SESSION: usize = 10;
/// Events the store has received before the clock starts (in batches of
/// the run's size), so that the timed events meet tables with a history and
/// current statistics, as on a live database, rather than a new one's
/// first minute.
const HISTORY_EVENTS: usize = 10_000;
/// A worker stops after this many failed requests.
const MAX_ERRORS_PER_WORKER: u64 = 20;

/// How events are sent.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Single,
    Batch(usize),
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Batch(_) => "batch",
        }
    }
}

/// One run of one mode.
struct Sample {
    events_per_s: f64,
    requests: Latency,
    errors: u64,
    first_error: Option<String>,
    /// Events the database holds afterwards: must equal the events sent.
    stored: i64,
    /// Of them, routed to review.
    in_review: i64,
    engine: String,
}

/// Medians over the runs of both modes on one backend.
struct BackendResult {
    backend: Backend,
    single: Vec<Sample>,
    batch: Vec<Sample>,
}

impl BackendResult {
    fn rate(samples: &[Sample]) -> f64 {
        median(&samples.iter().map(|s| s.events_per_s).collect::<Vec<_>>())
    }

    fn ratio(&self) -> f64 {
        let single = Self::rate(&self.single);
        if single > 0.0 {
            Self::rate(&self.batch) / single
        } else {
            0.0
        }
    }
}

/// Runs each mode `--repeat` times on each backend and prints the medians.
pub async fn run(args: &IngestArgs, backends: &[Backend], config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        (1..=config.max_batch_events).contains(&args.batch_size),
        "--batch-size must be between 1 and {} (the server's max_batch_events)",
        config.max_batch_events
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let machine = Machine::observe();
    println!(
        "recount bench ingest: {} events, single vs batches of {}, {} requests in flight, {} run(s) each",
        args.events, args.batch_size, args.concurrency, args.repeat.max(1)
    );
    let events = make_events("ev", args.events);
    let history = make_events("h", HISTORY_EVENTS);
    let mut results = Vec::new();
    for &backend in backends {
        let mut result = BackendResult {
            backend,
            single: Vec::new(),
            batch: Vec::new(),
        };
        for round in 0..args.repeat.max(1) {
            // Alternate which mode goes first so neither always runs on a
            // warmer cache or a quieter machine.
            let mut modes = [Mode::Single, Mode::Batch(args.batch_size)];
            if round % 2 == 1 {
                modes.reverse();
            }
            for mode in modes {
                eprintln!(
                    "{}: {} run {}…",
                    backend_name(backend),
                    mode.name(),
                    round + 1
                );
                let sample = with_fresh_db(backend, config, |fresh| {
                    phase(fresh, config, &history, &events, mode, args.concurrency)
                })
                .await?;
                match mode {
                    Mode::Single => result.single.push(sample),
                    Mode::Batch(_) => result.batch.push(sample),
                }
            }
        }
        results.push(result);
    }
    print_table(&results, &machine);
    println!("{}", to_json(args, &results, &machine));
    Ok(())
}

/// Events as a store's system would send them: many shoppers at once, each
/// with ten events, all in the order they happened. `prefix` starts their
/// event and session ids.
fn make_events(prefix: &str, n: usize) -> Vec<Value> {
    let base = SystemClock.now_ms() - 3_600_000;
    let sessions = n.div_ceil(EVENTS_PER_SESSION);
    (0..n)
        .map(|i| {
            let (top, second) = (sku(i * 3), sku(i * 3 + 1));
            let (c1, c2) = if i % 5 == 0 {
                (0.55, 0.35)
            } else {
                (0.97, 0.02)
            };
            json!({
                "event_id": format!("{prefix}-{i}"),
                "session_id": format!("{prefix}-s-{}", i % sessions),
                "kind": "pick",
                "quantity": 1,
                "occurred_at": format_rfc3339_ms(base + i as i64 * 10),
                "candidates": [{"sku": top, "confidence": c1}, {"sku": second, "confidence": c2}],
                "clips": [],
                "model_version": "bench",
            })
        })
        .collect()
}

/// Request bodies for a mode, serialized before the clock starts.
fn bodies(events: &[Value], mode: Mode) -> Vec<(String, usize)> {
    match mode {
        Mode::Single => events.iter().map(|e| (e.to_string(), 1)).collect(),
        Mode::Batch(size) => events
            .chunks(size)
            .map(|c| (Value::Array(by_session(c)).to_string(), c.len()))
            .collect(),
    }
}

/// A batch locks the session rows of its events in the order it lists them.
/// Listing them by session (a stable sort keeps each session's events in
/// order) gives every batch the same lock order, so concurrent batches that
/// share sessions wait for each other instead of deadlocking on PostgreSQL.
fn by_session(events: &[Value]) -> Vec<Value> {
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| {
        a["session_id"]
            .as_str()
            .unwrap_or_default()
            .cmp(b["session_id"].as_str().unwrap_or_default())
    });
    sorted
}

async fn phase(
    fresh: Fresh,
    config: &Config,
    history: &[Value],
    events: &[Value],
    mode: Mode,
    concurrency: usize,
) -> anyhow::Result<Sample> {
    let Fresh { db, dir, .. } = fresh;
    let created = admin::create_store(
        &db,
        &bench_actor(),
        "Bench store",
        None,
        SystemClock.now_ms(),
    )
    .await?;
    let server = Server::start(server::state(db.clone(), config, &dir)?).await?;
    let client = server::client(concurrency, config)?;
    put_catalog(&client, &server.base, &created.api_key).await?;
    let url = format!("{}/api/v1/events", server.base);
    let batch = match mode {
        Mode::Batch(size) => size,
        Mode::Single => 100,
    };
    let warm = Arc::new(bodies(history, Mode::Batch(batch)));
    let warmed = post_all(&client, &url, &created.api_key, warm, concurrency).await;
    anyhow::ensure!(
        warmed.errors == 0,
        "storing the history failed: {}",
        warmed.first_error.unwrap_or_default()
    );
    if db.backend == Backend::Postgres {
        // What autovacuum does for a live database once its tables have
        // grown: statistics, and with them new plans for every cached
        // statement (those planned on the empty tables scan them whole).
        sqlx::raw_sql("ANALYZE").execute(db.writer()).await?;
    }
    let bodies = Arc::new(bodies(events, mode));
    let started = Instant::now();
    let tally = post_all(&client, &url, &created.api_key, bodies, concurrency).await;
    let secs = started.elapsed().as_secs_f64();
    drop(client);
    server.stop().await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_id LIKE 'ev-%'")
        .fetch_one(db.reader())
        .await?;
    let in_review: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM review_tasks t JOIN events e ON e.id = t.event_pk \
         WHERE e.event_id LIKE 'ev-%'",
    )
    .fetch_one(db.reader())
    .await?;
    let engine = engine_version(&db).await?;
    db.close().await;
    Ok(Sample {
        events_per_s: tally.events as f64 / secs,
        requests: tally.latency,
        errors: tally.errors,
        first_error: tally.first_error,
        stored,
        in_review,
        engine,
    })
}

async fn put_catalog(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<()> {
    let resp = client
        .put(format!("{base}/api/v1/products"))
        .bearer_auth(key)
        .json(
            &catalog()
                .into_iter()
                .map(crate::api::ingest::Product::from)
                .collect::<Vec<_>>(),
        )
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "catalog upload answered {}",
        resp.status()
    );
    Ok(())
}

/// What the workers counted.
struct Tally {
    events: usize,
    latency: Latency,
    errors: u64,
    first_error: Option<String>,
}

/// Posts every body, `concurrency` at a time, each worker taking the next.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: Arc<Vec<(String, usize)>>,
    concurrency: usize,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, key) = (client.clone(), url.to_string(), key.to_string());
        let (bodies, next) = (bodies.clone(), next.clone());
        set.spawn(async move { worker(client, url, key, bodies, next).await });
    }
    let mut total = Tally {
        events: 0,
        latency: Latency::new(),
        errors: 0,
        first_error: None,
    };
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(t) => {
                total.events += t.events;
                total.latency.merge(&t.latency);
                total.errors += t.errors;
                total.first_error = total.first_error.or(t.first_error);
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    total
}

async fn worker(
    client: reqwest::Client,
    url: String,
    key: String,
    bodies: Arc<Vec<(String, usize)>>,
    next: Arc<AtomicUsize>,
) -> Tally {
    let mut t = Tally {
        events: 0,
        latency: Latency::new(),
        errors: 0,
        first_error: None,
    };
    while t.errors < MAX_ERRORS_PER_WORKER {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((body, count)) = bodies.get(i) else {
            break;
        };
        let started = Instant::now();
        match post(&client, &url, &key, body.clone()).await {
            Ok(()) => {
                t.latency.record(started.elapsed());
                t.events += count;
            }
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert(e);
            }
        }
    }
    t
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: String) -> Result<(), String> {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("events answered {status}: {text}"))
    }
}

fn print_table(results: &[BackendResult], machine: &Machine) {
    println!("{}", machine.describe());
    println!(
        "{:<9} {:<7} {:>5} {:>10} {:>12} {:>12} {:>8} {:>9} {:>7}",
        "backend",
        "mode",
        "runs",
        "events/s",
        "request p50",
        "request p99",
        "stored",
        "in review",
        "errors"
    );
    for r in results {
        for (mode, samples) in [("single", &r.single), ("batch", &r.batch)] {
            let mut latency = Latency::new();
            samples.iter().for_each(|s| latency.merge(&s.requests));
            let last = samples.last();
            println!(
                "{:<9} {:<7} {:>5} {:>10.1} {:>10.2}ms {:>10.2}ms {:>8} {:>9} {:>7}",
                backend_name(r.backend),
                mode,
                samples.len(),
                BackendResult::rate(samples),
                latency.ms(0.5),
                latency.ms(0.99),
                last.map_or(0, |s| s.stored),
                last.map_or(0, |s| s.in_review),
                samples.iter().map(|s| s.errors).sum::<u64>()
            );
        }
    }
    for r in results {
        let name = backend_name(r.backend);
        println!(
            "{name}: batch/single {:.2} (target ≥ {TARGET_RATIO}: {})",
            r.ratio(),
            verdict(r.ratio() >= TARGET_RATIO)
        );
        for s in r.single.iter().chain(&r.batch) {
            if let Some(e) = &s.first_error {
                println!("{name}: first error: {e}");
            }
        }
    }
}

fn samples_json(samples: &[Sample]) -> Value {
    let mut latency = Latency::new();
    samples.iter().for_each(|s| latency.merge(&s.requests));
    json!({
        "events_per_s": round2(BackendResult::rate(samples)),
        "runs_events_per_s": samples.iter().map(|s| round2(s.events_per_s)).collect::<Vec<_>>(),
        "request": latency.to_json(),
        "errors": samples.iter().map(|s| s.errors).sum::<u64>(),
        "stored_events": samples.iter().map(|s| s.stored).collect::<Vec<_>>(),
        "review_tasks": samples.iter().map(|s| s.in_review).collect::<Vec<_>>(),
    })
}

fn to_json(args: &IngestArgs, results: &[BackendResult], machine: &Machine) -> Value {
    let backends: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "backend": backend_name(r.backend),
                "engine": r.single.first().map(|s| s.engine.clone()),
                "single": samples_json(&r.single),
                "batch": samples_json(&r.batch),
                "ratio_batch_to_single": (r.ratio() * 1000.0).round() / 1000.0,
                "ratio_target_met": r.ratio() >= TARGET_RATIO,
            })
        })
        .collect();
    json!({
        "bench": "ingest",
        "events": args.events,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "repeat": args.repeat.max(1),
        "catalog_size": CATALOG_SIZE,
        "events_per_session": EVENTS_PER_SESSION,
        "targets": {"ratio_batch_to_single_min": TARGET_RATIO},
        "machine": machine.to_json(),
        "results": backends,
    })
}
