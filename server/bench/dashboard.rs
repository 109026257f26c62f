//! `recount bench dashboard`: the dashboard snapshot (rollups plus the live
//! tail) on a database holding a month of history, beside plain `GROUP BY`
//! queries that compute the same figures straight from the raw tables, in
//! the same run and on the same database.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Connection, Row};

use super::bench_actor;
use super::fresh::{engine_version, with_fresh_db, Fresh};
use super::report::{median, round2, verdict, Latency, Machine};
use super::seed::{bulk_connection, insert_labelers, sku, CATALOG_SIZE};
use super::{backend_name, backends, BackendChoice};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::bulk::{insert_rows, Val};
use crate::db::{new_id, Backend, Db};
use crate::domain::dashboard::Dashboard;
use crate::domain::figures::Windows;
use crate::domain::lifecycle::{EventStatus, RouteName, SessionStatus, TaskStatus};
use crate::domain::rollup::{label_key, HOUR};
use crate::domain::scope::Scope;
use crate::domain::stats::{percentile, AlphaSums};
use crate::domain::{Action, Label};
use crate::review::admin;
use crate::review::dashboard;

/// Snapshot p95 the dashboard must stay under, in milliseconds.
const TARGET_P95_MS: f64 = 50.0;
/// Most the snapshot may take relative to the plain queries.
const TARGET_RATIO: f64 = 0.1;
/// Events of one shopper session.
const EVENTS_PER_SESSION: usize = 5;
/// Sessions written per seeding transaction.
const SESSIONS_PER_TX: usize = 4_000;
/// Share of events routed to review: 20 % low confidence, 3 % small
/// margin, and 2 % of the rest drawn for audit.
const REVIEW_SHARE: f64 = 0.20 + 0.03 + 0.77 * 0.02;
/// Share of the review tasks in the open window left open.
const OPEN_SHARE: f64 = 0.5;
/// The dashboard's rules in the measured snapshots (the defaults).
const RULES: dashboard::Rules = dashboard::Rules {
    gold_min_accuracy: 0.8,
    gold_min_answers: 10,
    deadline_lead_ms: 60_000,
};

/// The rollup job's default interval: a snapshot is measured as if taken
/// just before its next run, with the longest live tail.
const TAIL_MS: i64 = 10_000;

/// Options of `recount bench dashboard`.
#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    /// Engine(s) to measure (default: the one --database-url names).
    #[arg(long, value_enum, alias = "engine")]
    pub backend: Option<BackendChoice>,
    /// Events seeded (default 1 000 000 on SQLite, 5 000 000 on PostgreSQL).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Timed snapshots, and as many timed runs of the plain queries.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Days of history the events are spread over.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Stores the sessions belong to.
    #[arg(long, default_value_t = 3)]
    pub stores: usize,
    /// Labelers answering the tasks.
    #[arg(long, default_value_t = 200)]
    pub labelers: usize,
    /// Review tasks left open at the end of the history (about).
    #[arg(long, default_value_t = 3_000)]
    pub open_tasks: usize,
}

/// What was seeded.
#[derive(Debug, Default, Clone, Copy)]
struct Seeded {
    events: u64,
    tasks: u64,
    open_tasks: u64,
    verdicts: u64,
    receipts: u64,
    gold_answers: u64,
}

/// One engine's results.
struct Outcome {
    backend: Backend,
    engine: String,
    seeded: Seeded,
    seed_s: f64,
    catch_up_s: f64,
    catch_up_steps: u64,
    snapshot: Latency,
    plain: Latency,
    checks: Vec<(&'static str, String, String)>,
    /// The first snapshot, before any settled bucket was kept.
    cold_ms: f64,
    /// Median milliseconds of each step of the snapshot.
    steps: Vec<(&'static str, f64)>,
}

impl Outcome {
    fn ratio(&self) -> f64 {
        let plain = self.plain.ms(0.95);
        if plain > 0.0 {
            self.snapshot.ms(0.95) / plain
        } else {
            0.0
        }
    }

    fn met(&self) -> bool {
        self.snapshot.ms(0.95) <= TARGET_P95_MS && self.ratio() <= TARGET_RATIO
    }
}

/// Seeds, catches up, measures, on each engine.
pub async fn run(args: &DashboardArgs, config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    anyhow::ensure!(args.stores > 0, "--stores must be at least 1");
    anyhow::ensure!(args.labelers > 1, "--labelers must be at least 2");
    let engines = backends(args.backend, config)?;
    let machine = Machine::observe();
    let mut outcomes = Vec::new();
    for backend in engines {
        let rows = args.rows.unwrap_or(match backend {
            Backend::Sqlite => 1_000_000,
            Backend::Postgres => 5_000_000,
        });
        anyhow::ensure!(
            rows >= EVENTS_PER_SESSION,
            "--rows must be at least {EVENTS_PER_SESSION}"
        );
        println!(
            "recount bench dashboard ({}): {rows} events over {} days, {} stores, {} labelers, \
             ~{} open tasks; {} timed runs each",
            backend_name(backend),
            args.days,
            args.stores,
            args.labelers,
            args.open_tasks,
            args.runs
        );
        outcomes
            .push(with_fresh_db(backend, config, |fresh| phase(fresh, args, rows, backend)).await?);
    }
    print_table(&outcomes, &machine);
    println!("{}", to_json(args, &outcomes, &machine));
    Ok(())
}

async fn phase(
    fresh: Fresh,
    args: &DashboardArgs,
    rows: usize,
    backend: Backend,
) -> anyhow::Result<Outcome> {
    let db = &fresh.db;
    let now = SystemClock.now_ms();
    eprintln!("{}: seeding…", backend_name(backend));
    let started = Instant::now();
    let seeded = seed(db, &fresh.url, args, rows, now).await?;
    // Fresh tables have no planner statistics yet (autovacuum would gather
    // them in time on a live server).
    sqlx::raw_sql("ANALYZE").execute(db.writer()).await?;
    let seed_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: seeded {seeded:?} in {seed_s:.1} s; catching up the rollups…",
        backend_name(backend)
    );
    let started = Instant::now();
    let run = crate::review::rollup::roll_up(db, now).await?;
    let catch_up_s = started.elapsed().as_secs_f64();
    sqlx::raw_sql("ANALYZE").execute(db.writer()).await?;

    let at = now + TAIL_MS;
    // The first snapshot reads every bucket; later ones only those still
    // filling (db::rollup_cache).
    let t = Instant::now();
    let snap = dashboard::snapshot(db, &Scope::All, at, RULES).await?;
    let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
    let plain = plain_figures(db, at).await?;
    let checks = compare(&snap, &plain);
    eprintln!("{}: measuring…", backend_name(backend));
    let (mut snapshot, mut plain_latency) = (Latency::new(), Latency::new());
    let mut steps: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        dashboard::snapshot_timed(db, &Scope::All, at, RULES, &mut |name, took| {
            let ms = took.as_secs_f64() * 1000.0;
            match steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(ms),
                None => steps.push((name, vec![ms])),
            }
        })
        .await?;
        snapshot.record(t.elapsed());
        let t = Instant::now();
        plain_figures(db, at).await?;
        plain_latency.record(t.elapsed());
    }
    Ok(Outcome {
        backend,
        engine: engine_version(db).await?,
        seeded,
        seed_s,
        catch_up_s,
        catch_up_steps: run.steps,
        snapshot,
        plain: plain_latency,
        checks,
        cold_ms,
        steps: steps
            .into_iter()
            .map(|(name, ms)| (name, median(&ms)))
            .collect(),
    })
}

/// Rows of one seeding transaction, by table and column set (NULL columns
/// are left out of an INSERT rather than bound).
#[derive(Default)]
struct Rows {
    auto_events: Vec<Vec<Val>>,
    reviewed_events: Vec<Vec<Val>>,
    open_events: Vec<Vec<Val>>,
    resolved_tasks: Vec<Vec<Val>>,
    open_tasks: Vec<Vec<Val>>,
    verdicts: Vec<Vec<Val>>,
    sessions: Vec<Vec<Val>>,
    receipts: Vec<Vec<Val>>,
    /// The one gold task every seeded gold answer scores against.
    gold_task: Vec<Vec<Val>>,
    gold: Vec<Vec<Val>>,
}

const EVENT_COLUMNS: &str = "id, store_id, event_id, session_id, kind, quantity, occurred_at, \
     candidates, clips, model_version, top_sku, top_confidence, route";

impl Rows {
    async fn write(&mut self, conn: &mut AnyConnection) -> crate::db::Result<()> {
        let mut tx = conn.begin().await?;
        let events = |rest: &str| format!("INSERT INTO events ({EVENT_COLUMNS}, {rest})");
        let statements: [(String, &Vec<Vec<Val>>); 10] = [
            (
                events(
                    "status, final_action, final_sku, final_quantity, resolution, request_hash, \
                     created_at, resolved_at",
                ),
                &self.auto_events,
            ),
            (
                events(
                    "route_reason, status, final_action, final_sku, final_quantity, resolution, \
                     request_hash, created_at, resolved_at",
                ),
                &self.reviewed_events,
            ),
            (
                events("route_reason, status, request_hash, created_at"),
                &self.open_events,
            ),
            (
                "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
                 status, deadline_at, created_at, verdict_count, resolved_at, updated_at)"
                    .into(),
                &self.resolved_tasks,
            ),
            (
                "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
                 status, deadline_at, created_at, updated_at)"
                    .into(),
                &self.open_tasks,
            ),
            (
                "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, \
                 cant_tell, created_at, handling_ms)"
                    .into(),
                &self.verdicts,
            ),
            (
                "INSERT INTO sessions (store_id, session_id, status, open_reviews, exited_at, created_at)"
                    .into(),
                &self.sessions,
            ),
            (
                "INSERT INTO receipts (store_id, session_id, lines, total_cents, exited_at, \
                 finalized_at, latency_ms)"
                    .into(),
                &self.receipts,
            ),
            (
                "INSERT INTO gold_tasks (id, source_task_id, store_id, action, sku, quantity, \
                 created_by, created_at)"
                    .into(),
                &self.gold_task,
            ),
            (
                "INSERT INTO gold_answers (task_id, gold_id, labeler_id, correct, answered_at)".into(),
                &self.gold,
            ),
        ];
        for (head, rows) in statements {
            insert_rows(&mut tx, &head, rows, "").await?;
        }
        tx.commit().await?;
        *self = Rows::default();
        Ok(())
    }
}

/// How long a labeler looks at a task: 2 to 40 s, log-uniform.
fn handling_ms(rng: &mut StdRng) -> i64 {
    rng.gen_range(2_000f64.ln()..40_000f64.ln()).exp() as i64
}

/// Seeds `rows` events over `--days` days before `now`, in sessions of five:
/// auto-accepted, or reviewed with verdicts (two for audit samples, a tenth
/// of which disagree and are resolved by a supervisor), receipts, gold
/// answers for 5 % of verdicts; the review tasks of the last stretch are
/// left open so that about `--open-tasks` remain.
async fn seed(
    db: &Db,
    url: &str,
    args: &DashboardArgs,
    rows: usize,
    now: i64,
) -> anyhow::Result<Seeded> {
    let mut store_ids = Vec::new();
    for s in 0..args.stores {
        store_ids.push(
            admin::create_store(db, &bench_actor(), &format!("Bench store {s}"), None, now)
                .await?
                .store
                .id,
        );
    }
    let mut conn = bulk_connection(url).await?;
    let labelers: Vec<String> = insert_labelers(&mut conn, args.labelers, now)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let span = args.days * 24 * HOUR;
    let start = now - span;
    let step = span as f64 / rows as f64;
    let open_span = (args.open_tasks as f64 * step / (OPEN_SHARE * REVIEW_SHARE)) as i64;
    let open_from = now - open_span.min(span);
    let mut rng = StdRng::seed_from_u64(5);
    let mut out = Rows::default();
    let mut gold_made = false;
    let mut seeded = Seeded::default();
    let sessions = rows.div_ceil(EVENTS_PER_SESSION);
    for s in 0..sessions {
        let store_id = &store_ids[s % store_ids.len()];
        let session_id = format!("s-{s}");
        let (mut last, mut settled, mut open_reviews) = (start, start, 0i64);
        let events = (s * EVENTS_PER_SESSION)..((s + 1) * EVENTS_PER_SESSION).min(rows);
        let exit = start + (events.end as f64 * step) as i64 + 20_000;
        for i in events {
            let t = start + (i as f64 * step) as i64;
            last = t;
            let kind = if rng.gen::<f64>() < 0.9 {
                "pick"
            } else {
                "return"
            };
            let quantity: i64 = if rng.gen::<f64>() < 0.9 { 1 } else { 2 };
            let top = rng.gen_range(0..CATALOG_SIZE);
            let other = (top + 1 + rng.gen_range(0..CATALOG_SIZE - 1)) % CATALOG_SIZE;
            let u: f64 = rng.gen();
            let (confidence, reason) = if u < 0.20 {
                (rng.gen_range(0.30..0.90), Some("low-confidence"))
            } else if u < 0.23 {
                (rng.gen_range(0.90..0.99), Some("small-margin"))
            } else if rng.gen::<f64>() < 0.02 {
                (rng.gen_range(0.90..1.0), Some("audit-sample"))
            } else {
                (rng.gen_range(0.90..1.0), None)
            };
            let second = if reason == Some("small-margin") {
                confidence - rng.gen_range(0.0..0.1)
            } else {
                (1.0 - confidence) / 2.0
            };
            let model = if t < start + span * 6 / 10 {
                "m-2026.10"
            } else {
                "m-2026.11"
            };
            let guess = (sku(top), quantity);
            let event_pk = new_id();
            let mut event = vec![
                Val::Text(event_pk.clone()),
                Val::Text(store_id.clone()),
                Val::Text(format!("ev-{i}")),
                Val::Text(session_id.clone()),
                Val::Text(kind.into()),
                Val::Int(quantity),
                Val::Int(t),
                Val::Text(format!(
                    r#"[{{"sku":"{}","confidence":{confidence}}},{{"sku":"{}","confidence":{second}}}]"#,
                    sku(top),
                    sku(other)
                )),
                Val::Text("[]".into()),
                Val::Text(model.into()),
                Val::Text(sku(top)),
                Val::Real(confidence),
            ];
            seeded.events += 1;
            let Some(reason) = reason else {
                event.extend([
                    Val::Text(RouteName::AutoAccepted.as_str().into()),
                    Val::Text(EventStatus::Resolved.as_str().into()),
                    Val::Text(kind.into()),
                    Val::Text(guess.0),
                    Val::Int(quantity),
                    Val::Text("auto".into()),
                    Val::Text(format!("h-{i}")),
                    Val::Int(t),
                    Val::Int(t),
                ]);
                out.auto_events.push(event);
                settled = settled.max(t);
                continue;
            };
            event.extend([
                Val::Text(RouteName::Review.as_str().into()),
                Val::Text(reason.into()),
            ]);
            let audit = reason == "audit-sample";
            let label = if rng.gen::<f64>() < confidence - 0.05 {
                guess
            } else {
                (sku(other), quantity)
            };
            let first = pick(&mut rng, &labelers, None);
            let h1 = handling_ms(&mut rng);
            let v1_at = t + rng.gen_range(2_000..30_000) + h1;
            let mut verdicts = vec![(first, v1_at, h1, label.0.clone())];
            let mut resolved_at = v1_at;
            let mut resolution = "human";
            if audit {
                let second = pick(&mut rng, &labelers, Some(&verdicts[0].0));
                let h2 = handling_ms(&mut rng);
                let v2_at = v1_at + rng.gen_range(2_000..30_000) + h2;
                let agrees = rng.gen::<f64>() < 0.9;
                let sku2 = if agrees {
                    label.0.clone()
                } else {
                    sku(top + 7)
                };
                verdicts.push((second, v2_at, h2, sku2));
                resolved_at = v2_at;
                if !agrees {
                    resolved_at += 60_000;
                    resolution = "supervisor";
                }
            }
            let task_id = new_id();
            let deadline = exit + 600_000;
            let open = resolved_at > now || (t >= open_from && rng.gen::<f64>() < OPEN_SHARE);
            let task_head = [
                Val::Text(task_id.clone()),
                Val::Text(event_pk),
                Val::Text(store_id.clone()),
                Val::Text(session_id.clone()),
                Val::Text(reason.into()),
                Val::Int(if audit { 2 } else { 1 }),
            ];
            seeded.tasks += 1;
            if open {
                let status = match rng.gen_range(0..20) {
                    0 => TaskStatus::Escalated,
                    1..=3 => TaskStatus::Leased,
                    _ => TaskStatus::Ready,
                };
                event.extend([
                    Val::Text(EventStatus::Review.as_str().into()),
                    Val::Text(format!("h-{i}")),
                    Val::Int(t),
                ]);
                out.open_events.push(event);
                let mut task = task_head.to_vec();
                task.extend([
                    Val::Text(status.as_str().into()),
                    Val::Int(deadline),
                    Val::Int(t),
                    Val::Int(t),
                ]);
                out.open_tasks.push(task);
                open_reviews += 1;
                seeded.open_tasks += 1;
                continue;
            }
            event.extend([
                Val::Text(EventStatus::Resolved.as_str().into()),
                Val::Text(kind.into()),
                Val::Text(label.0.clone()),
                Val::Int(label.1),
                Val::Text(resolution.into()),
                Val::Text(format!("h-{i}")),
                Val::Int(t),
                Val::Int(resolved_at),
            ]);
            out.reviewed_events.push(event);
            let mut task = task_head.to_vec();
            task.extend([
                Val::Text(TaskStatus::Resolved.as_str().into()),
                Val::Int(deadline),
                Val::Int(t),
                Val::Int(verdicts.len() as i64),
                Val::Int(resolved_at),
                Val::Int(resolved_at),
            ]);
            out.resolved_tasks.push(task);
            // Gold answers keep their keys real (a task answered once, a
            // gold task that exists): at most one per seeded task.
            let mut scored = false;
            for (labeler, at, handling, verdict_sku) in verdicts {
                if !scored && rng.gen::<f64>() < 0.05 {
                    scored = true;
                    if !gold_made {
                        gold_made = true;
                        out.gold_task.push(vec![
                            Val::Text("bench-gold".into()),
                            Val::Text(task_id.clone()),
                            Val::Text(store_id.clone()),
                            Val::Text("pick".into()),
                            Val::Text("bench-gold-sku".into()),
                            Val::Int(1),
                            Val::Text(labeler.clone()),
                            Val::Int(at),
                        ]);
                    }
                    // Weak labelers (one in twenty) get a third of gold wrong.
                    let weak = labelers.iter().position(|l| *l == labeler).unwrap_or(0) % 20 == 0;
                    let correct = rng.gen::<f64>() < if weak { 0.67 } else { 0.95 };
                    out.gold.push(vec![
                        Val::Text(task_id.clone()),
                        Val::Text("bench-gold".into()),
                        Val::Text(labeler.clone()),
                        Val::Int(i64::from(correct)),
                        Val::Int(at),
                    ]);
                    seeded.gold_answers += 1;
                }
                out.verdicts.push(vec![
                    Val::Text(new_id()),
                    Val::Text(task_id.clone()),
                    Val::Text(labeler),
                    Val::Text(new_id()),
                    Val::Text(kind.into()),
                    Val::Text(verdict_sku),
                    Val::Int(quantity),
                    Val::Int(0),
                    Val::Int(at),
                    Val::Int(handling),
                ]);
                seeded.verdicts += 1;
            }
            settled = settled.max(resolved_at);
        }
        let exited_at = exit.max(last).min(now);
        let finalized_at = exited_at.max(settled);
        if open_reviews == 0 && finalized_at <= now {
            out.sessions.push(vec![
                Val::Text(store_id.clone()),
                Val::Text(session_id.clone()),
                Val::Text(SessionStatus::Finalized.as_str().into()),
                Val::Int(0),
                Val::Int(exited_at),
                Val::Int(last),
            ]);
            out.receipts.push(vec![
                Val::Text(store_id.clone()),
                Val::Text(session_id),
                Val::Text("[]".into()),
                Val::Int(0),
                Val::Int(exited_at),
                Val::Int(finalized_at),
                Val::Int(finalized_at - exited_at),
            ]);
            seeded.receipts += 1;
        } else {
            out.sessions.push(vec![
                Val::Text(store_id.clone()),
                Val::Text(session_id),
                Val::Text(SessionStatus::Exited.as_str().into()),
                Val::Int(open_reviews),
                Val::Int(exited_at),
                Val::Int(last),
            ]);
        }
        if (s + 1) % SESSIONS_PER_TX == 0 {
            out.write(&mut conn).await?;
        }
    }
    out.write(&mut conn).await?;
    conn.close().await?;
    Ok(seeded)
}

/// A random labeler other than `not`.
fn pick(rng: &mut StdRng, labelers: &[String], not: Option<&String>) -> String {
    loop {
        let l = &labelers[rng.gen_range(0..labelers.len())];
        if Some(l) != not {
            return l.clone();
        }
    }
}

/// The figures compared between the snapshot and the plain queries.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    events_day: (i64, i64),
    verdicts_last_hour: i64,
    verdicts_day: i64,
    handling_p50_day: Option<f64>,
    receipts_day: (i64, i64),
    latency_p95_day: Option<f64>,
    audit: (i64, i64),
    labelers: usize,
    alpha: Option<f64>,
    calibrated: i64,
    open_tasks: i64,
}

fn from_dashboard(d: &Dashboard) -> Figures {
    Figures {
        events_day: (
            d.flow.event_review_rate.count,
            d.flow.event_review_rate.total,
        ),
        verdicts_last_hour: d.flow.verdicts_last_hour,
        verdicts_day: d.flow.verdicts_per_hour.values.iter().sum::<f64>() as i64,
        handling_p50_day: d.flow.handling_p50_ms.day,
        receipts_day: (
            d.flow.session_review_rate.count,
            d.flow.session_review_rate.total,
        ),
        latency_p95_day: d.receipts.p95_ms.day,
        audit: (
            d.flow.auto_accept_error.count,
            d.flow.auto_accept_error.total,
        ),
        labelers: d.labelers.len(),
        alpha: d.agreement.alpha,
        calibrated: d.models.iter().map(|m| m.total).sum(),
        open_tasks: d
            .queue
            .iter()
            .map(|q| q.ready + q.leased + q.escalated)
            .sum(),
    }
}

/// Side-by-side values (percentiles agree within the histogram's 2.5 %).
fn compare(snapshot: &Dashboard, plain: &Figures) -> Vec<(&'static str, String, String)> {
    let s = from_dashboard(snapshot);
    let f = |v: &dyn std::fmt::Debug| format!("{v:?}");
    vec![
        (
            "events reviewed/ingested (day)",
            f(&s.events_day),
            f(&plain.events_day),
        ),
        (
            "verdicts (last hour)",
            f(&s.verdicts_last_hour),
            f(&plain.verdicts_last_hour),
        ),
        ("verdicts (day)", f(&s.verdicts_day), f(&plain.verdicts_day)),
        (
            "handling p50 ms (day)",
            f(&s.handling_p50_day.map(round2)),
            f(&plain.handling_p50_day),
        ),
        (
            "receipts reviewed/final (day)",
            f(&s.receipts_day),
            f(&plain.receipts_day),
        ),
        (
            "receipt p95 ms (day)",
            f(&s.latency_p95_day.map(round2)),
            f(&plain.latency_p95_day),
        ),
        ("audit wrong/audited (7 days)", f(&s.audit), f(&plain.audit)),
        ("labelers active (day)", f(&s.labelers), f(&plain.labelers)),
        (
            "alpha (day)",
            f(&s.alpha.map(|a| round2(a * 1e4) / 1e4)),
            f(&plain.alpha.map(|a| round2(a * 1e4) / 1e4)),
        ),
        (
            "human-labelled events (7 days)",
            f(&s.calibrated),
            f(&plain.calibrated),
        ),
        ("open tasks", f(&s.open_tasks), f(&plain.open_tasks)),
    ]
}

/// Values of one integer column and their counts, expanded for
/// [`percentile`].
fn expand(rows: &[(i64, i64)]) -> Vec<f64> {
    rows.iter()
        .flat_map(|(v, n)| std::iter::repeat_n(*v as f64, *n as usize))
        .collect()
}

async fn value_counts(
    conn: &mut AnyConnection,
    sql: &str,
    from: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query(sql)
        .bind(from)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Every figure of the dashboard, computed the plain way: `GROUP BY`
/// queries over the raw rows of each window (exact percentiles from the
/// grouped values), the same live queue and pending-receipt queries. The
/// figures not compared with the snapshot are still computed (bound to
/// `_…`), so both sides do the same work.
async fn plain_figures(db: &Db, now: i64) -> anyhow::Result<Figures> {
    let w = Windows::at(now);
    let mut conn = db.reader().acquire().await?;
    let conn = &mut *conn;
    let mut out = Figures::default();

    for r in sqlx::query(&format!(
        "SELECT route, COUNT(*) FROM events WHERE created_at >= $1 AND route <> '{}' GROUP BY route",
        RouteName::Gold
    ))
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?
    {
        let (route, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        out.events_day.1 += n;
        if route == RouteName::Review.as_str() {
            out.events_day.0 += n;
        }
    }

    let per_hour = value_counts(
        conn,
        "SELECT created_at - created_at % 3600000 AS h, COUNT(*) FROM verdicts \
         WHERE created_at >= $1 GROUP BY h",
        w.day_from,
    )
    .await?;
    out.verdicts_day = per_hour.iter().map(|(_, n)| n).sum();
    let handling_day = value_counts(
        conn,
        "SELECT handling_ms, COUNT(*) FROM verdicts WHERE created_at >= $1 GROUP BY handling_ms",
        w.day_from,
    )
    .await?;
    let handling_day = expand(&handling_day);
    out.handling_p50_day = percentile(&handling_day, 50.0);
    let _p90_day = percentile(&handling_day, 90.0);
    let handling_hour = expand(
        &value_counts(
            conn,
            "SELECT handling_ms, COUNT(*) FROM verdicts WHERE created_at >= $1 GROUP BY handling_ms",
            w.hour_from,
        )
        .await?,
    );
    out.verdicts_last_hour = handling_hour.len() as i64;
    let _hour = (
        percentile(&handling_hour, 50.0),
        percentile(&handling_hour, 90.0),
    );

    let receipts = sqlx::query(
        "SELECT finalized_at - finalized_at % 3600000 AS h, latency_ms, COUNT(*) FROM receipts \
         WHERE finalized_at >= $1 GROUP BY h, latency_ms",
    )
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?;
    let mut latency_per_hour: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for r in &receipts {
        latency_per_hour
            .entry(r.try_get(0)?)
            .or_default()
            .push((r.try_get(1)?, r.try_get(2)?));
    }
    let day: Vec<(i64, i64)> = latency_per_hour.values().flatten().copied().collect();
    let day = expand(&day);
    out.latency_p95_day = percentile(&day, 95.0);
    let _day = (percentile(&day, 50.0), percentile(&day, 99.0));
    let _p95_per_hour: Vec<Option<f64>> = latency_per_hour
        .values()
        .map(|v| percentile(&expand(v), 95.0))
        .collect();
    let hour = expand(
        &value_counts(
            conn,
            "SELECT latency_ms, COUNT(*) FROM receipts WHERE finalized_at >= $1 GROUP BY latency_ms",
            w.hour_from,
        )
        .await?,
    );
    let _hour = (
        percentile(&hour, 50.0),
        percentile(&hour, 95.0),
        percentile(&hour, 99.0),
    );
    let r = sqlx::query(&format!(
        "SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.store_id = r.store_id \
         AND e.session_id = r.session_id AND e.route = '{}') THEN 1 ELSE 0 END) FROM receipts r \
         WHERE r.finalized_at >= $1",
        RouteName::Review
    ))
    .bind(w.day_from)
    .fetch_one(&mut *conn)
    .await?;
    out.receipts_day = (r.try_get::<Option<i64>, _>(1)?.unwrap_or(0), r.try_get(0)?);

    let r = sqlx::query(&format!(
        "SELECT COUNT(*), SUM(CASE WHEN final_action = kind AND final_sku = top_sku \
         AND final_quantity = quantity THEN 0 ELSE 1 END) FROM events \
         WHERE resolved_at >= $1 AND route = '{}' AND route_reason = 'audit-sample'",
        RouteName::Review
    ))
    .bind(w.week_from)
    .fetch_one(&mut *conn)
    .await?;
    out.audit = (r.try_get::<Option<i64>, _>(1)?.unwrap_or(0), r.try_get(0)?);

    // Reliability bins: truncation of confidence × 10 (FLOOR on PostgreSQL,
    // whose CAST rounds; SQLite's CAST truncates and it has no FLOOR).
    let bin = match db.backend {
        Backend::Postgres => "CAST(FLOOR(top_confidence * 10) AS BIGINT)",
        Backend::Sqlite => "CAST(top_confidence * 10 AS INTEGER)",
    };
    let calibration = sqlx::query(&format!(
        "SELECT model_version, {bin} AS bin, COUNT(*), SUM(top_confidence), \
         SUM(CASE WHEN final_action = kind AND final_sku = top_sku AND final_quantity = quantity \
         THEN 1 ELSE 0 END) FROM events WHERE resolved_at >= $1 AND route = '{review}' \
         AND top_confidence IS NOT NULL GROUP BY model_version, bin",
        review = RouteName::Review
    ))
    .bind(w.week_from)
    .fetch_all(&mut *conn)
    .await?;
    out.calibrated = calibration
        .iter()
        .map(|r| r.try_get::<i64, _>(2))
        .sum::<Result<i64, _>>()?;

    let per_labeler = sqlx::query(
        "SELECT labeler_id, COUNT(*), COUNT(DISTINCT created_at - created_at % 3600000) FROM verdicts \
         WHERE created_at >= $1 GROUP BY labeler_id",
    )
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?;
    out.labelers = per_labeler.len();
    let medians = sqlx::query(
        "SELECT labeler_id, handling_ms, COUNT(*) FROM verdicts WHERE created_at >= $1 \
         GROUP BY labeler_id, handling_ms",
    )
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_labeler: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for r in &medians {
        by_labeler
            .entry(r.try_get(0)?)
            .or_default()
            .push((r.try_get(1)?, r.try_get(2)?));
    }
    let _medians: Vec<Option<f64>> = by_labeler
        .values()
        .map(|v| percentile(&expand(v), 50.0))
        .collect();
    sqlx::query(
        "SELECT v.labeler_id, COUNT(*), SUM(CASE WHEN v.cant_tell = 0 AND v.action = e.final_action \
         AND COALESCE(v.sku, '') = COALESCE(e.final_sku, '') AND COALESCE(v.quantity, 0) = e.final_quantity \
         THEN 1 ELSE 0 END) FROM review_tasks t JOIN events e ON e.id = t.event_pk \
         JOIN verdicts v ON v.task_id = t.id WHERE t.resolved_at >= $1 AND t.gold_id IS NULL \
         GROUP BY v.labeler_id",
    )
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "SELECT labeler_id, COUNT(*), CAST(SUM(correct) AS BIGINT) FROM gold_answers WHERE answered_at >= $1 \
         GROUP BY labeler_id",
    )
    .bind(w.week_from)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("SELECT id, username FROM users")
        .fetch_all(&mut *conn)
        .await?;

    // Alpha: the values of each task with two or more verdicts.
    let values = sqlx::query(
        "SELECT t.id, v.action, v.sku, v.quantity, COUNT(*) FROM review_tasks t \
         JOIN verdicts v ON v.task_id = t.id WHERE t.resolved_at >= $1 AND t.gold_id IS NULL \
         AND t.verdict_count >= 2 AND v.cant_tell = 0 GROUP BY t.id, v.action, v.sku, v.quantity",
    )
    .bind(w.day_from)
    .fetch_all(&mut *conn)
    .await?;
    let mut units: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &values {
        let action: String = r.try_get(1)?;
        let label = Label::new(
            Action::parse(&action).unwrap_or(Action::None),
            r.try_get(2)?,
            r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
        );
        let n: i64 = r.try_get(4)?;
        let unit = units.entry(r.try_get(0)?).or_default();
        unit.extend(std::iter::repeat_n(label_key(&label), n as usize));
    }
    let mut sums = AlphaSums::default();
    for unit in units.values() {
        sums.add_unit(unit);
    }
    out.alpha = sums.alpha();

    let queue = crate::db::dashboard::queue(conn, &Scope::All, now, RULES.deadline_lead_ms).await?;
    out.open_tasks = queue.iter().map(|q| q.ready + q.leased + q.escalated).sum();
    crate::db::dashboard::pending_receipts(conn, &Scope::All, now).await?;
    Ok(out)
}

fn print_table(outcomes: &[Outcome], machine: &Machine) {
    println!("{}", machine.describe());
    for o in outcomes {
        let name = backend_name(o.backend);
        let s = o.seeded;
        println!(
            "{name} ({}): seeded {} events, {} review tasks ({} open), {} verdicts, {} receipts, \
             {} gold answers in {:.1} s; rollups caught up in {:.1} s ({} steps)",
            o.engine,
            s.events,
            s.tasks,
            s.open_tasks,
            s.verdicts,
            s.receipts,
            s.gold_answers,
            o.seed_s,
            o.catch_up_s,
            o.catch_up_steps
        );
        println!(
            "{:<34} {:>24} {:>24}",
            "check", "snapshot", "plain GROUP BY"
        );
        for (what, a, b) in &o.checks {
            println!("{what:<34} {a:>24} {b:>24}");
        }
        println!(
            "{:<9} {:>6} {:>14} {:>14} {:>14} {:>14} {:>8}",
            "backend", "runs", "snapshot p50", "snapshot p95", "plain p50", "plain p95", "ratio"
        );
        println!(
            "{name:<9} {:>6} {:>12.2}ms {:>12.2}ms {:>12.2}ms {:>12.2}ms {:>8.4}",
            runs(&o.snapshot),
            o.snapshot.ms(0.5),
            o.snapshot.ms(0.95),
            o.plain.ms(0.5),
            o.plain.ms(0.95),
            o.ratio()
        );
        let steps: Vec<String> = o
            .steps
            .iter()
            .map(|(n, ms)| format!("{n} {ms:.2}"))
            .collect();
        println!("{name}: snapshot steps, median ms: {}", steps.join(" · "));
        println!(
            "{name}: first snapshot (no settled bucket kept yet): {:.2} ms",
            o.cold_ms
        );
        println!(
            "{name}: snapshot p95 ≤ {TARGET_P95_MS} ms and ≤ {TARGET_RATIO} × plain p95: {}",
            verdict(o.met())
        );
    }
}

fn runs(latency: &Latency) -> usize {
    latency.to_json()["count"].as_u64().unwrap_or(0) as usize
}

fn to_json(args: &DashboardArgs, outcomes: &[Outcome], machine: &Machine) -> Value {
    json!({
        "bench": "dashboard",
        "runs": args.runs,
        "days": args.days,
        "stores": args.stores,
        "labelers": args.labelers,
        "machine": machine.to_json(),
        "backends": outcomes.iter().map(|o| json!({
            "backend": backend_name(o.backend),
            "engine": o.engine,
            "events": o.seeded.events,
            "review_tasks": o.seeded.tasks,
            "open_tasks": o.seeded.open_tasks,
            "verdicts": o.seeded.verdicts,
            "receipts": o.seeded.receipts,
            "gold_answers": o.seeded.gold_answers,
            "seed_s": round2(o.seed_s),
            "catch_up_s": round2(o.catch_up_s),
            "catch_up_steps": o.catch_up_steps,
            "snapshot": {"p50_ms": round2(o.snapshot.ms(0.5)), "p95_ms": round2(o.snapshot.ms(0.95))},
            "plain": {"p50_ms": round2(o.plain.ms(0.5)), "p95_ms": round2(o.plain.ms(0.95))},
            "ratio_p95": (o.ratio() * 1e4).round() / 1e4,
            "first_snapshot_ms": round2(o.cold_ms),
            "snapshot_steps_median_ms": o.steps.iter().map(|(n, ms)| json!({"step": n, "ms": round2(*ms)})).collect::<Vec<_>>(),
            "met": o.met(),
            "checks": o.checks.iter().map(|(w, a, b)| json!({"figure": w, "snapshot": a, "plain": b})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
