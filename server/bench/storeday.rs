//! `recount bench storeday`: a store day of shoppers and a small crew run
//! through the server's own use cases (ingest, claim, verdict, heartbeat,
//! escalation, exit, finalization) on a virtual clock, three times on the
//! same day: without audit samples (the baseline), with audit samples off
//! the receipt's path (how Recount runs), and with each audit sample
//! re-opened at ingest as a review its receipt waits for (how it ran
//! before). Receipt latency p50/p95/p99 and the receipts past their
//! deadline are read back from the stored receipts of each run.
//!
//! Every run is on a fresh database; one second of virtual time is one step
//! in which due events are ingested, due shoppers leave, labelers whose
//! handling time is up answer (the others heartbeat every 20 s, as the
//! console does), idle labelers claim, and every 5 s the deadline guarantee
//! and lease expiry run. A supervisor settles escalated tasks once a
//! minute. Latencies are virtual time, so they do not depend on the machine
//! or the build; the day (arrivals, events, the model's answers, the audit
//! draws) comes from `--seed` and is the same in both runs.

use std::collections::{HashMap, HashSet};

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::bench_actor;
use super::fresh::with_fresh_db;
use super::{backend_name, backends, BackendChoice};
use crate::auth::Role;
use crate::config::Config;
use crate::db::stores::Store;
use crate::db::users::User;
use crate::db::{Backend, Db};
use crate::domain::consensus::EscalationReason;
use crate::domain::event::{CandidateInput, EventInput};
use crate::domain::lifecycle::{EventStatus, RouteName, TaskPurpose, TaskStatus};
use crate::domain::routing::{self, ReviewReason, Route, RoutingPolicy};
use crate::domain::scope::Scope;
use crate::domain::Action;
use crate::error::Code;
use crate::review::admin;
use crate::review::ingest::{self, Incoming};
use crate::review::queue::{self, Verdict};

/// Options of `recount bench storeday`.
#[derive(Args, Debug, Clone)]
pub struct StoreDayArgs {
    /// Hours shoppers arrive.
    #[arg(long, default_value_t = 4)]
    pub hours: i64,
    /// Shoppers per hour.
    #[arg(long, default_value_t = 240)]
    pub sessions_per_hour: i64,
    /// Share of confident events drawn for the audit sample.
    #[arg(long, default_value_t = 0.05)]
    pub audit_rate: f64,
    /// Seed of every random draw (the same for both runs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Engine(s) to run on (default: the one --database-url names).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
}

/// The demo crew: accuracy and handling time range (seconds) of each.
const CREW: &[(&str, f64, (i64, i64))] = &[
    ("ana", 0.97, (20, 60)),
    ("ben", 0.92, (25, 70)),
    ("cho", 0.75, (30, 90)),
];

const CATALOG: &[(&str, i64)] = &[
    ("milk", 129),
    ("bread", 399),
    ("cola", 149),
    ("apples", 349),
    ("cheese", 599),
    ("coffee", 899),
    ("water", 89),
    ("chips", 249),
];

const SECOND: i64 = 1_000;
const T0: i64 = 1_795_600_800_000; // 2026-11-25T08:00:00Z
/// How often the deadline guarantee runs, in virtual seconds.
const SWEEP_S: i64 = 5;
/// How often the supervisor settles escalations, in virtual seconds.
const SUPERVISOR_S: i64 = 60;

/// One planned event: when, what the model says, what happened, and its
/// audit draw (drawn with the day, so both runs route alike).
#[derive(Debug, Clone)]
struct Planned {
    at: i64,
    input: EventInput,
    truth: String,
    audit_draw: f64,
}

/// One shopper: events and exit time.
#[derive(Debug, Clone)]
struct Shopper {
    session_id: String,
    events: Vec<Planned>,
    exit_at: i64,
}

/// The day, drawn once from the seed and replayed by every run.
fn plan(args: &StoreDayArgs) -> Vec<Shopper> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let n = args.hours * args.sessions_per_hour;
    let mut day = Vec::new();
    for s in 0..n {
        let arrive = T0 + rng.gen_range(0..args.hours * 3_600) * SECOND;
        let trip = rng.gen_range(2 * 60..10 * 60) * SECOND;
        let session_id = format!("s{s}");
        let mut events = Vec::new();
        for e in 0..rng.gen_range(1..=4) {
            let at = arrive + rng.gen_range(0..trip);
            let mut skus: Vec<&str> = CATALOG.iter().map(|(s, _)| *s).collect();
            let top = skus.swap_remove(rng.gen_range(0..skus.len()));
            let second = skus[rng.gen_range(0..skus.len())];
            // Most events are confident; a fifth are not.
            let (c1, c2, right) = if rng.gen_bool(0.8) {
                (rng.gen_range(0.92..0.995), rng.gen_range(0.0..0.04), 0.97)
            } else {
                (rng.gen_range(0.45..0.85), rng.gen_range(0.1..0.35), 0.7)
            };
            let truth = if rng.gen_bool(right) { top } else { second };
            let input = EventInput {
                event_id: format!("{session_id}-e{e}"),
                session_id: session_id.clone(),
                kind: "pick".into(),
                quantity: 1,
                occurred_at: crate::domain::time::format_rfc3339_ms(at),
                candidates: vec![
                    CandidateInput {
                        sku: top.into(),
                        confidence: c1,
                    },
                    CandidateInput {
                        sku: second.into(),
                        confidence: c2,
                    },
                ],
                clips: vec![],
                model_version: Some("day-v1".into()),
                cameras: vec![],
            };
            events.push(Planned {
                at,
                input,
                truth: truth.into(),
                audit_draw: rng.gen(),
            });
        }
        events.sort_by_key(|p| p.at);
        day.push(Shopper {
            session_id,
            events,
            exit_at: arrive + trip,
        });
    }
    day
}

/// How audit samples are handled in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No audit sample at all (audit rate 0): the baseline.
    NoAudits,
    /// Audit samples off the receipt's path, as Recount runs.
    OffPath,
    /// Each audit sample re-opened as a review its receipt waits for.
    OnPath,
}

impl Mode {
    /// The mode's name in the JSON line.
    fn key(self) -> &'static str {
        match self {
            Mode::NoAudits => "baseline",
            Mode::OffPath => "off-path",
            Mode::OnPath => "on-path",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::NoAudits => "none (baseline)",
            Mode::OffPath => "off the receipt's path",
            Mode::OnPath => "on the receipt's path (before)",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    receipts: usize,
    /// Sessions that draw an audit sample at the bench's audit rate (in the
    /// baseline too: the same shoppers, without the draw taking effect).
    audited_sessions: usize,
    /// p95 and largest receipt latency of those sessions.
    audited_p95_s: f64,
    audited_max_s: f64,
    p50_s: f64,
    p95_s: f64,
    p99_s: f64,
    past_sla: usize,
    audit_tasks: i64,
    /// Receipt work escalated because no labeler at work could take it.
    escalated_no_eligible: i64,
    escalated_deadline: i64,
    /// Audits handed to supervisors (labelers disagreed, or nobody was left
    /// to answer).
    audits_escalated: i64,
    /// Audit leases taken back for receipt work.
    audits_yielded: i64,
    /// Labeler time those audits had taken before they were taken back.
    yielded_s: f64,
    /// Each shopper's receipt latency, ms.
    latencies: HashMap<String, i64>,
}

/// Runs the store day; prints one table and one JSON line per engine.
pub async fn run(args: &StoreDayArgs, config: &Config) -> anyhow::Result<()> {
    let day = plan(args);
    let events: usize = day.iter().map(|s| s.events.len()).sum();
    println!(
        "store day: {} shoppers, {events} events over {} h, audit rate {}, crew of {}, seed {}",
        day.len(),
        args.hours,
        args.audit_rate,
        CREW.len(),
        args.seed
    );
    for backend in backends(args.backend, config)? {
        let mut results = Vec::new();
        for mode in [Mode::NoAudits, Mode::OffPath, Mode::OnPath] {
            let m = with_fresh_db(backend, config, |fresh| {
                let day = day.clone();
                async move { simulate(&fresh.db, &day, args, mode).await }
            })
            .await?;
            results.push((mode, m));
        }
        print_results(backend, args, &results);
    }
    Ok(())
}

/// How a run's receipts compare with the baseline's, shopper by shopper.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct VsBaseline {
    /// Receipts final later than in the baseline.
    later: usize,
    /// The most any receipt was later, in seconds.
    most_added_s: f64,
}

fn vs_baseline(run: &Measured, baseline: &Measured) -> VsBaseline {
    let mut vs = VsBaseline::default();
    for (session, latency) in &run.latencies {
        let before = baseline.latencies.get(session).copied().unwrap_or(0);
        if *latency > before {
            vs.later += 1;
            vs.most_added_s = vs.most_added_s.max((latency - before) as f64 / 1000.0);
        }
    }
    vs
}

fn print_results(backend: Backend, args: &StoreDayArgs, results: &[(Mode, Measured)]) {
    let baseline = &results[0].1;
    println!(
        "\n{:<8} {:<30} {:>8} {:>7} {:>7} {:>7} {:>9} {:>7} {:>12} {:>17} {:>16} {:>15}",
        "engine",
        "audits",
        "receipts",
        "p50 s",
        "p95 s",
        "p99 s",
        "past SLA",
        "audits",
        "no-eligible",
        "audited p95/max s",
        "later/most s",
        "yields/lost s"
    );
    for (mode, m) in results {
        let vs = vs_baseline(m, baseline);
        println!(
            "{:<8} {:<30} {:>8} {:>7.1} {:>7.1} {:>7.1} {:>9} {:>7} {:>12} {:>17} {:>16} {:>15}",
            backend_name(backend),
            mode.name(),
            m.receipts,
            m.p50_s,
            m.p95_s,
            m.p99_s,
            m.past_sla,
            m.audit_tasks,
            m.escalated_no_eligible,
            format!("{:.1} / {:.1}", m.audited_p95_s, m.audited_max_s),
            format!("{} / {:.0}", vs.later, vs.most_added_s),
            format!("{} / {:.0}", m.audits_yielded, m.yielded_s)
        );
    }
    let json: Vec<_> = results
        .iter()
        .map(|(mode, m)| {
            let vs = vs_baseline(m, baseline);
            json!({
                "mode": mode.key(),
                "later_than_baseline": vs.later,
                "most_added_s": vs.most_added_s,
                "audits_yielded": m.audits_yielded,
                "yielded_s": m.yielded_s,
                "engine": backend_name(backend),
                "audits": mode.name(),
                "seed": args.seed,
                "receipts": m.receipts,
                "p50_s": m.p50_s,
                "p95_s": m.p95_s,
                "p99_s": m.p99_s,
                "past_sla": m.past_sla,
                "audit_tasks": m.audit_tasks,
                "escalated_no_eligible_labeler": m.escalated_no_eligible,
                "escalated_deadline": m.escalated_deadline,
                "audits_escalated": m.audits_escalated,
                "audited_sessions": m.audited_sessions,
                "audited_p95_s": m.audited_p95_s,
                "audited_max_s": m.audited_max_s,
            })
        })
        .collect();
    println!("{}", serde_json::Value::Array(json));
}

/// A labeler of the crew and what they are doing.
struct Member {
    user: User,
    accuracy: f64,
    handling: (i64, i64),
    /// The task in hand.
    busy: Option<Busy>,
}

/// A task in a labeler's hands.
#[derive(Debug, Clone)]
struct Busy {
    task_id: String,
    claimed_at: i64,
    /// When the answer is ready.
    ready_at: i64,
    /// How often the console renews the lease, as the claim said.
    heartbeat_ms: i64,
}

/// One draw of one labeler on one event (`what`: handling time or
/// answer): keyed by all three, so a task gets the same draws in every run
/// whatever else the crew did before it, and the runs differ only in what
/// the policy changes.
fn draws(seed: u64, event_id: &str, labeler: &str, what: &str) -> StdRng {
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    let key = [event_id, labeler, what].join("\0");
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    StdRng::seed_from_u64(h)
}

async fn simulate(
    db: &Db,
    day: &[Shopper],
    args: &StoreDayArgs,
    mode: Mode,
) -> anyhow::Result<Measured> {
    let config = Config::default();
    let created = admin::create_store(db, &bench_actor(), "Store day", None, T0).await?;
    let policy = RoutingPolicy {
        audit_rate: if mode == Mode::NoAudits {
            0.0
        } else {
            args.audit_rate
        },
        ..RoutingPolicy::default()
    };
    admin::change_policy(
        db,
        &bench_actor(),
        &created.store.id,
        |_| policy.clone(),
        T0,
    )
    .await?;
    let store = Store {
        policy,
        ..created.store
    };
    let products: Vec<crate::db::products::Product> = CATALOG
        .iter()
        .map(|(sku, price)| crate::db::products::Product {
            sku: sku.to_string(),
            name: sku.to_string(),
            price_cents: *price,
            image_url: None,
        })
        .collect();
    ingest::upsert_products(db, &store.id, &products, T0).await?;
    let tokens = crate::db::users::TokenCache::default();
    let mut crew = Vec::new();
    for (name, accuracy, handling) in CREW {
        crew.push(Member {
            user: admin::add_user(
                db,
                &tokens,
                &bench_actor(),
                name,
                "-",
                Role::Labeler,
                &Scope::All,
                T0,
            )
            .await?
            .0,
            accuracy: *accuracy,
            handling: *handling,
            busy: None,
        });
    }
    let supervisor = admin::add_user(
        db,
        &tokens,
        &bench_actor(),
        "sue",
        "-",
        Role::Supervisor,
        &Scope::All,
        T0,
    )
    .await?
    .0;

    let truth: HashMap<String, String> = day
        .iter()
        .flat_map(|s| s.events.iter())
        .map(|p| (p.input.event_id.clone(), p.truth.clone()))
        .collect();
    let mut due: Vec<(i64, usize, Option<usize>)> = Vec::new();
    for (i, s) in day.iter().enumerate() {
        for (j, e) in s.events.iter().enumerate() {
            due.push((e.at, i, Some(j)));
        }
        due.push((s.exit_at, i, None));
    }
    due.sort_by_key(|d| (d.0, d.2.is_none()));
    let end = due.last().map_or(T0, |d| d.0) + 2 * 3_600 * SECOND;
    let mut next = 0;
    let mut now = T0;
    let mut tasks_of: HashMap<String, String> = HashMap::new();
    let rules = queue::ClaimRules::of(&config);
    // Audit leases taken back for receipt work, and the labeler time they
    // had taken (work done again later).
    let mut yields = 0_i64;
    let mut yielded_ms = 0_i64;
    while now <= end {
        while next < due.len() && due[next].0 <= now {
            let (_, i, event) = due[next];
            let shopper = &day[i];
            match event {
                Some(j) => {
                    let input = &shopper.events[j].input;
                    let valid = input.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
                    let hashes = vec![ingest::request_hash(input)];
                    let list = [valid];
                    let incoming = Incoming::list(&list, &hashes);
                    let draw = shopper.events[j].audit_draw;
                    let out =
                        ingest::ingest(db, &store, &incoming, now, config.labor_cost(), || draw)
                            .await
                            .map_err(|r| anyhow::anyhow!("{}", r.error))?;
                    if let Some(task_id) = &out[0].task_id {
                        tasks_of.insert(task_id.clone(), input.event_id.clone());
                        if mode == Mode::OnPath
                            && out[0].reason.as_deref() == Some(ReviewReason::AuditSample.as_str())
                        {
                            hold_receipt(db, task_id, &store.id, &shopper.session_id).await?;
                        }
                    }
                }
                None => {
                    crate::review::receipts::exit(db, &store, &shopper.session_id, now, now)
                        .await?;
                }
            }
            next += 1;
        }
        for m in crew.iter_mut() {
            if let Some(b) = m.busy.clone() {
                if b.ready_at > now {
                    // The console heartbeats while the labeler watches, as
                    // often as the claim said; an audit is taken back there
                    // when receipt work waits, and the labeler claims it.
                    if (now - b.claimed_at) % b.heartbeat_ms != 0 {
                        continue;
                    }
                    match queue::heartbeat(db, &m.user, &b.task_id, now, rules).await {
                        Err(e) if e.code() == Code::LeaseYielded => {
                            yields += 1;
                            yielded_ms += now - b.claimed_at;
                            m.busy = None;
                        }
                        _ => continue,
                    }
                } else {
                    let event_id = &tasks_of[&b.task_id];
                    let mut rng = draws(args.seed, event_id, &m.user.username, "answer");
                    let answer = crew_answer(&mut rng, &truth[event_id], m.accuracy);
                    // A lease lost meanwhile (expired and taken) is not an
                    // error of the run: the labeler moves on.
                    let _ = queue::submit_verdict(db, &m.user, &b.task_id, &answer, now).await;
                    m.busy = None;
                }
            }
            if let Some(c) = queue::claim(db, &m.user, now, rules, false).await? {
                let event_id = &tasks_of[&c.card.task_id];
                let mut rng = draws(args.seed, event_id, &m.user.username, "handling");
                let handling = rng.gen_range(m.handling.0..=m.handling.1) * SECOND;
                m.busy = Some(Busy {
                    task_id: c.card.task_id,
                    claimed_at: now,
                    ready_at: now + handling,
                    heartbeat_ms: c.heartbeat_ms,
                });
            }
        }
        let tick = (now - T0) / SECOND;
        if tick % SWEEP_S == 0 {
            queue::escalate_at_risk(
                db,
                now,
                config.deadline_lead_ms,
                config.labeler_active_window_ms,
            )
            .await?;
            queue::expire_leases(db, now).await?;
        }
        if tick % SUPERVISOR_S == 0 {
            for d in queue::escalated(db, &Scope::All, 500).await? {
                let sku = &truth[&tasks_of[&d.card.task_id]];
                let answer = Verdict {
                    action: Some(Action::Pick),
                    sku: Some(sku.clone()),
                    quantity: Some(1),
                    ..Verdict::default()
                };
                queue::resolve_escalation(db, &supervisor, &d.card.task_id, &answer, now).await?;
            }
        }
        if next >= due.len() && all_final(db).await? {
            break;
        }
        now += SECOND;
    }
    let audited = audited_sessions(day, args.audit_rate);
    let mut m = measure(db, store.policy.receipt_sla_ms, day.len(), &audited).await?;
    m.audits_yielded = yields;
    m.yielded_s = yielded_ms as f64 / 1000.0;
    Ok(m)
}

/// What a labeler of `accuracy` answers when the shopper took `truth`.
fn crew_answer(rng: &mut StdRng, truth: &str, accuracy: f64) -> Verdict {
    let sku = if rng.gen_bool(accuracy) {
        truth.to_string()
    } else {
        CATALOG[rng.gen_range(0..CATALOG.len())].0.to_string()
    };
    Verdict {
        action: Some(Action::Pick),
        sku: Some(sku),
        quantity: Some(1),
        ..Verdict::default()
    }
}

/// Re-opens an audit sample as a review its receipt waits for: the rows
/// ingest wrote before audits left the receipt's path.
async fn hold_receipt(
    db: &Db,
    task_id: &str,
    store_id: &str,
    session_id: &str,
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query(&format!(
        "UPDATE review_tasks SET purpose = '{}', priority = $1 WHERE id = $2",
        TaskPurpose::Review
    ))
    .bind(TaskPurpose::Review.priority())
    .bind(task_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE events SET route = '{}', status = '{}', final_action = NULL, final_sku = NULL, \
         final_quantity = NULL, resolution = NULL \
         WHERE id = (SELECT event_pk FROM review_tasks WHERE id = $1)",
        RouteName::Review,
        EventStatus::Review
    ))
    .bind(task_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews + 1 WHERE store_id = $1 AND session_id = $2",
    )
    .bind(store_id)
    .bind(session_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn all_final(db: &Db) -> anyhow::Result<bool> {
    let open: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM review_tasks WHERE status IN ({})",
        crate::db::sql_list(&TaskStatus::OPEN)
    ))
    .fetch_one(db.reader())
    .await?;
    let pending: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM sessions WHERE status <> '{}'",
        crate::domain::lifecycle::SessionStatus::Finalized
    ))
    .fetch_one(db.reader())
    .await?;
    Ok(open == 0 && pending == 0)
}

/// The sessions of the day that draw an audit sample at `audit_rate`, as
/// routing decides it (the same draws as the runs).
fn audited_sessions(day: &[Shopper], audit_rate: f64) -> HashSet<String> {
    let policy = RoutingPolicy {
        audit_rate,
        ..RoutingPolicy::default()
    };
    day.iter()
        .filter(|s| {
            s.events.iter().any(|e| {
                let confidences: Vec<f64> =
                    e.input.candidates.iter().map(|c| c.confidence).collect();
                matches!(
                    routing::route(&policy, &confidences, None, None, e.audit_draw),
                    Route::Review {
                        reason: ReviewReason::AuditSample,
                        ..
                    }
                )
            })
        })
        .map(|s| s.session_id.clone())
        .collect()
}

/// The `p`-quantile of sorted milliseconds, in seconds (0 when empty).
fn quantile_s(sorted: &[i64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

async fn measure(
    db: &Db,
    sla_ms: i64,
    sessions: usize,
    audited: &HashSet<String>,
) -> anyhow::Result<Measured> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT session_id, latency_ms FROM receipts")
        .fetch_all(db.reader())
        .await?;
    anyhow::ensure!(
        rows.len() == sessions,
        "{} of {sessions} receipts final at the end of the day",
        rows.len()
    );
    let mut latencies: Vec<i64> = rows.iter().map(|(_, l)| *l).collect();
    latencies.sort_unstable();
    let mut of_audited: Vec<i64> = rows
        .iter()
        .filter(|(s, _)| audited.contains(s))
        .map(|(_, l)| *l)
        .collect();
    of_audited.sort_unstable();
    let q = |p: f64| quantile_s(&latencies, p);
    let count = |sql: String| async move {
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(db.reader())
            .await
    };
    Ok(Measured {
        audited_sessions: of_audited.len(),
        audited_p95_s: quantile_s(&of_audited, 0.95),
        audited_max_s: quantile_s(&of_audited, 1.0),
        receipts: latencies.len(),
        p50_s: q(0.5),
        p95_s: q(0.95),
        p99_s: q(0.99),
        past_sla: latencies.iter().filter(|l| **l > sla_ms).count(),
        audit_tasks: count(format!(
            "SELECT COUNT(*) FROM review_tasks WHERE reason = '{}'",
            ReviewReason::AuditSample.as_str()
        ))
        .await?,
        escalated_no_eligible: count(format!(
            "SELECT COUNT(*) FROM review_tasks WHERE escalation_reason = '{}' AND purpose = '{}'",
            EscalationReason::NoEligibleLabeler.as_str(),
            TaskPurpose::Review
        ))
        .await?,
        audits_escalated: count(format!(
            "SELECT COUNT(*) FROM review_tasks WHERE escalation_reason IS NOT NULL AND purpose = '{}'",
            TaskPurpose::Audit
        ))
        .await?,
        escalated_deadline: count(format!(
            "SELECT COUNT(*) FROM review_tasks WHERE escalation_reason = '{}'",
            EscalationReason::Deadline.as_str()
        ))
        .await?,
        audits_yielded: 0,
        yielded_s: 0.0,
        latencies: rows.into_iter().collect(),
    })
}
