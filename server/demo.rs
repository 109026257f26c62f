//! Demo data: a store, its catalog, users, and a stream of simulated shoppers
//! so a newcomer's console always has work in it. Each simulated event comes
//! with synthetic footage from two shelf cameras ([`crate::media::synth`]).

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use crate::auth::{generate_password, hash_password, Role};
use crate::db::products::Product;
use crate::db::stores::{self, Store};
use crate::db::tasks::TaskCard;
use crate::db::{new_id, users};
use crate::domain::audit::Actor;
use crate::domain::event::{CandidateInput, EventInput};
use crate::domain::lifecycle::TaskStatus;
use crate::domain::scope::Scope;
use crate::domain::time::format_rfc3339_ms;
use crate::media::synth::{self, ShelfAction, ShelfCamera, ShelfScene};
use crate::review::admin;
use crate::review::ingest::{self, Incoming};
use crate::review::media::{store_clips, NewClip};
use crate::review::queue::{self, Verdict};
use crate::review::receipts;
use crate::AppState;

/// Name of the demo store.
pub const DEMO_STORE: &str = "Demo Store";

/// Keep at least this many tasks waiting for a labeler.
const TARGET_READY: i64 = 20;

/// Length of a demo clip; the event is in its middle.
const CLIP_MS: u32 = 4_000;

/// What `setup` created, with the secrets to print.
#[derive(Debug, Clone)]
pub struct DemoCredentials {
    /// The demo store.
    pub store_id: String,
    /// Its API key, when it was created (or rotated) now.
    pub api_key: String,
    /// `(username, password, role)` of each demo user.
    pub users: Vec<(String, String, Role)>,
}

impl DemoCredentials {
    /// One JSON object for the terminal.
    pub fn to_json(&self, url: &str) -> serde_json::Value {
        json!({
            "demo": true,
            "url": url,
            "store_id": self.store_id,
            "api_key": self.api_key,
            "users": self.users.iter().map(|(u, p, r)| json!({"username": u, "password": p, "role": r})).collect::<Vec<_>>(),
        })
    }
}

/// The demo catalog: sku, name, price in cents.
pub const CATALOG: &[(&str, &str, i64)] = &[
    ("milk-1l", "Whole milk 1 l", 129),
    ("milk-oat-1l", "Oat drink 1 l", 219),
    ("yogurt-500", "Greek yogurt 500 g", 249),
    ("butter-250", "Butter 250 g", 289),
    ("cheddar-200", "Mature cheddar 200 g", 349),
    ("eggs-6", "Free-range eggs ×6", 279),
    ("bread-sour", "Sourdough loaf", 399),
    ("bread-rye", "Rye bread", 329),
    ("croissant", "Butter croissant", 149),
    ("apple-gala", "Gala apple", 59),
    ("banana", "Banana", 35),
    ("avocado", "Avocado", 129),
    ("tomato-cherry", "Cherry tomatoes 250 g", 229),
    ("water-still", "Still water 0.5 l", 99),
    ("water-sparkling", "Sparkling water 0.5 l", 99),
    ("cola-330", "Cola 330 ml", 149),
    ("cola-zero-330", "Cola zero 330 ml", 149),
    ("juice-orange", "Orange juice 1 l", 319),
    ("coffee-beans", "Coffee beans 250 g", 749),
    ("tea-green", "Green tea ×20", 299),
    ("chocolate-dark", "Dark chocolate 100 g", 229),
    ("chocolate-milk", "Milk chocolate 100 g", 219),
    ("crisps-salted", "Salted crisps 150 g", 199),
    ("crisps-paprika", "Paprika crisps 150 g", 199),
];

/// The demo, as the audit trail names it.
fn demo_actor() -> Actor {
    Actor::system("demo")
}

/// Creates (or refreshes) the demo store, catalog and users.
pub async fn setup(state: &AppState) -> anyhow::Result<DemoCredentials> {
    let now = state.now();
    let (store, api_key) = match stores::by_name(&state.db, DEMO_STORE).await? {
        Some(store) => {
            let key = admin::rotate_api_key(&state.db, &demo_actor(), &store.id, now)
                .await?
                .ok_or_else(|| anyhow::anyhow!("demo store vanished"))?;
            (store, key)
        }
        None => {
            let created =
                admin::create_store(&state.db, &demo_actor(), DEMO_STORE, None, now).await?;
            // What the demo films is synthetic: a newcomer may export it.
            admin::set_training(&state.db, &demo_actor(), &created.store.id, true, now).await?;
            (created.store, created.api_key)
        }
    };
    let catalog: Vec<Product> = CATALOG
        .iter()
        .map(|(sku, name, price)| Product {
            sku: sku.to_string(),
            name: name.to_string(),
            price_cents: *price,
            image_url: None,
        })
        .collect();
    ingest::upsert_products(&state.db, &store.id, &catalog, now).await?;

    let mut created_users = Vec::new();
    for (name, role) in [
        ("labeler", Role::Labeler),
        ("supervisor", Role::Supervisor),
        ("admin", Role::Admin),
    ] {
        let password = generate_password();
        let hash = tokio::task::spawn_blocking({
            let p = password.clone();
            move || hash_password(&p)
        })
        .await??;
        let demo = demo_actor();
        admin::add_user(
            &state.db,
            &state.tokens,
            &demo,
            name,
            &hash,
            role,
            &Scope::All,
            now,
        )
        .await?;
        created_users.push((name.to_string(), password, role));
    }
    Ok(DemoCredentials {
        store_id: store.id,
        api_key,
        users: created_users,
    })
}

/// A shopper's visit in the simulation: [`simulate_step`] adds one per new
/// session and lets the shopper exit when the time comes.
#[derive(Debug, Clone, Default)]
pub struct Visit {
    session_id: String,
    exit_at: i64,
}

/// Simulates shoppers forever: keeps the queue topped up with realistic
/// events (most confident, some not) and lets each shopper exit a little
/// later, so receipts get finalized as labelers work.
pub async fn simulate(state: AppState, store_id: String) {
    let mut visits: Vec<Visit> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // Filming a session can outlast a tick; do not catch up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = simulate_step(&state, &store_id, &mut visits).await {
            tracing::warn!(error = %format!("{e:#}"), "demo simulation step failed");
        }
    }
}

/// One step of the simulation: lets shoppers whose time has come exit and,
/// while fewer than [`TARGET_READY`] tasks wait for a labeler (or for their
/// clips), starts one new session of one to four events, each filmed by two
/// cameras.
pub async fn simulate_step(
    state: &AppState,
    store_id: &str,
    visits: &mut Vec<Visit>,
) -> anyhow::Result<()> {
    let now = state.now();
    let mut conn = state.db.reader().acquire().await?;
    let store: Store = stores::get(&mut conn, store_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo store is gone"))?;
    // Tasks still waiting for their footage count too: a backlog of clips
    // to process is no reason to film more.
    let ready: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM review_tasks WHERE store_id = $1 AND status IN ('{}', '{}')",
        TaskStatus::Ready,
        TaskStatus::Waiting
    ))
    .bind(store_id)
    .fetch_one(&mut *conn)
    .await?;
    drop(conn);

    let mut leaving = Vec::new();
    visits.retain(|v| {
        let gone = v.exit_at <= now;
        if gone {
            leaving.push(v.session_id.clone());
        }
        !gone
    });
    for session_id in leaving {
        receipts::exit(&state.db, &store, &session_id, now, now).await?;
    }

    if ready >= TARGET_READY {
        return Ok(());
    }
    let planned = {
        let mut rng = rand::thread_rng();
        let session_id = format!("demo-{}", uuid::Uuid::now_v7().simple());
        let n_events = rng.gen_range(1..=4);
        let mut planned = Vec::new();
        for i in 0..n_events {
            let at = now - 5_000 + i as i64 * 1_500;
            let input = random_event(&mut rng, &session_id, i, at);
            let shot = Shot::plan(&mut rng, &input, at);
            remember_truth(&input.event_id, &shot.products[shot.taken]);
            planned.push((input, shot));
        }
        visits.push(Visit {
            session_id,
            exit_at: now + rng.gen_range(20_000..60_000),
        });
        planned
    };
    // Film every event (the media runner bounds how many render at once);
    // an event whose footage fails goes in without clips.
    let filmed = futures::future::join_all(
        planned
            .iter()
            .map(|(input, shot)| film(state, store_id, &input.event_id, shot)),
    )
    .await;
    let mut inputs = Vec::with_capacity(planned.len());
    for ((mut input, _), clip_ids) in planned.into_iter().zip(filmed) {
        match clip_ids {
            Ok(ids) => input.clips = ids,
            Err(e) => tracing::warn!(
                event = %input.event_id,
                error = %format!("{e:#}"),
                "demo footage failed; the event goes in without clips"
            ),
        }
        inputs.push(input);
    }
    let valid = inputs
        .iter()
        .map(|input| input.validate().map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let hashes: Vec<String> = inputs.iter().map(ingest::request_hash).collect();
    let incoming = Incoming::list(&valid, &hashes);
    ingest::ingest(
        &state.db,
        &store,
        &incoming,
        now,
        state.config.labor_cost(),
        rand::random::<f64>,
    )
    .await
    .map_err(|r| anyhow::anyhow!("{}", r.error))?;
    Ok(())
}

/// What the demo's cameras film for one event.
#[derive(Debug, Clone)]
struct Shot {
    /// The shelf: the top candidate, the runner-up and one other product,
    /// in random order.
    products: Vec<String>,
    /// The product the hand really moves.
    taken: usize,
    action: ShelfAction,
    /// Wall-clock time of the event.
    at: i64,
    seed: u64,
}

impl Shot {
    /// The hand takes the top candidate most of the time and the runner-up
    /// otherwise (more often when the model was unsure), so labelers find
    /// real model mistakes in the footage.
    fn plan(rng: &mut impl Rng, input: &EventInput, at: i64) -> Shot {
        let top = &input.candidates[0];
        let runner_up = if top.confidence >= 0.9 { 0.05 } else { 0.3 };
        let truth = match input.candidates.get(1) {
            Some(second) if rng.gen_bool(runner_up) => second,
            _ => top,
        };
        let mut products: Vec<String> = input
            .candidates
            .iter()
            .take(2)
            .map(|c| c.sku.clone())
            .collect();
        while products.len() < 3 {
            let (sku, _, _) = CATALOG.choose(rng).expect("the catalog is not empty");
            if !products.iter().any(|p| p == sku) {
                products.push(sku.to_string());
            }
        }
        products.shuffle(rng);
        let taken = products
            .iter()
            .position(|p| *p == truth.sku)
            .expect("the truth is on the shelf");
        Shot {
            products,
            taken,
            action: if input.kind == "return" {
                ShelfAction::Return
            } else {
                ShelfAction::Pick
            },
            at,
            seed: rng.gen(),
        }
    }

    fn scene(&self, camera: ShelfCamera) -> ShelfScene {
        ShelfScene {
            duration_ms: CLIP_MS,
            event_ms: CLIP_MS / 2,
            seed: self.seed ^ camera as u64,
            ..ShelfScene::new(self.products.clone(), self.taken, self.action, camera)
        }
    }
}

/// The camera id of a demo camera.
fn camera_id(camera: ShelfCamera) -> String {
    format!("cam-{}", camera.name())
}

/// Renders one event's clips (both cameras, on the media runner) and stores
/// them as an upload would be, all or none: either every camera's clip is
/// stored and queued for processing, or none is (the event then goes in
/// without clips, and no clip is left that no event shows). Returns the
/// clip ids, front camera first.
async fn film(
    state: &AppState,
    store_id: &str,
    event_id: &str,
    shot: &Shot,
) -> anyhow::Result<Vec<String>> {
    let takes: Vec<(String, String, TempFile)> = ShelfCamera::ALL
        .iter()
        .map(|&camera| {
            let id = new_id();
            let path = state.scratch.join(format!("demo-{id}.mp4"));
            (camera_id(camera), id, TempFile(path))
        })
        .collect();
    let renders = ShelfCamera::ALL
        .iter()
        .zip(&takes)
        .map(|(camera, (_, _, file))| {
            let scene = shot.scene(*camera);
            let path = file.0.clone();
            state.media.run("render_shelf_clip", move |_, cancel| {
                synth::render_shelf_clip(&scene, &path, cancel)
            })
        });
    for rendered in futures::future::join_all(renders).await {
        rendered.map_err(|e| anyhow::anyhow!("rendering the footage of {event_id}: {e}"))?;
    }
    let started_at = shot.at - i64::from(CLIP_MS / 2);
    let new_clips: Vec<NewClip> = takes
        .iter()
        .map(|(camera_id, id, file)| NewClip {
            id,
            camera_id,
            started_at: Some(started_at),
            path: &file.0,
        })
        .collect();
    store_clips(&state.db, &state.blobs, store_id, &new_clips, state.now())
        .await
        .map_err(|e| anyhow::anyhow!("storing the footage of {event_id}: {e:#}"))?;
    Ok(takes.into_iter().map(|(_, id, _)| id).collect())
}

/// A rendered clip in the scratch directory, removed once stored (or not).
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An event as a store's model might send it: usually one clear favourite,
/// sometimes two look-alikes (the same product in another flavour or size).
fn random_event(rng: &mut impl Rng, session_id: &str, i: usize, at: i64) -> EventInput {
    let picked: Vec<&(&str, &str, i64)> = CATALOG.choose_multiple(rng, 3).collect();
    let top: f64 = match rng.gen_range(0..10) {
        0..=3 => rng.gen_range(0.40..0.85),
        4..=5 => rng.gen_range(0.55..0.70),
        _ => rng.gen_range(0.91..0.995),
    };
    let second = (1.0 - top) * rng.gen_range(0.3..0.9);
    let third = (1.0 - top - second).max(0.0) * rng.gen_range(0.0..1.0);
    EventInput {
        event_id: format!("{session_id}-e{i}"),
        session_id: session_id.to_string(),
        kind: if rng.gen_bool(0.85) { "pick" } else { "return" }.into(),
        quantity: if rng.gen_bool(0.85) { 1 } else { 2 },
        occurred_at: format_rfc3339_ms(at),
        candidates: picked
            .iter()
            .zip([top, second, third])
            .map(|(p, c)| CandidateInput {
                sku: p.0.to_string(),
                confidence: (c * 1000.0).round() / 1000.0,
            })
            .collect(),
        clips: vec![],
        model_version: Some("shelf-v3.2".into()),
        cameras: vec![],
    }
}

/// Simulated labelers who work beside the people trying the demo: their
/// verdicts, disagreements, "can't tell"s, handling times and the receipts
/// they finalize give the supervisor pages something to show. Each has an
/// accuracy: the chance of answering what the footage shows (the simulation
/// remembers what it filmed), else another candidate or "can't tell".
pub const CREW: &[(&str, f64)] = &[("demo-ana", 0.97), ("demo-ben", 0.92), ("demo-cho", 0.75)];

/// What the demo filmed for each recent event: event id -> sku taken.
static TRUTH: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Keeps at most this many truths; the crew answers recent events.
const TRUTH_KEPT: usize = 20_000;

fn remember_truth(event_id: &str, sku: &str) {
    let mut truth = TRUTH.lock().expect("demo truth");
    if truth.len() >= TRUTH_KEPT {
        truth.clear();
    }
    truth.insert(event_id.to_string(), sku.to_string());
}

/// The crew leaves this many ready tasks for the humans.
const CREW_LEAVES: i64 = 8;

/// Creates the crew's accounts (with passwords nobody knows).
pub async fn setup_crew(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    for (name, _) in CREW {
        let password = generate_password();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
        let demo = demo_actor();
        admin::add_user(
            &state.db,
            &state.tokens,
            &demo,
            name,
            &hash,
            Role::Labeler,
            &Scope::All,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Runs the crew forever: every few seconds one member takes a task (while
/// more than [`CREW_LEAVES`] are ready), looks at it for a few seconds like a
/// person would, and answers.
pub async fn simulate_crew(state: AppState) {
    loop {
        let pause = rand::thread_rng().gen_range(2_000..6_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if let Err(e) = crew_step(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "demo crew step failed");
        }
    }
}

async fn crew_step(state: &AppState) -> anyhow::Result<()> {
    let ready: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM review_tasks WHERE status = '{}'",
        TaskStatus::Ready
    ))
    .fetch_one(state.db.reader())
    .await?;
    if ready <= CREW_LEAVES {
        return Ok(());
    }
    let (name, accuracy) = *CREW
        .choose(&mut rand::thread_rng())
        .expect("the crew is not empty");
    let Some(users::Account { user, .. }) = users::by_username(&state.db, name).await? else {
        return Ok(());
    };
    let config = &state.config;
    let Some(claim) = queue::claim(
        &state.db,
        &user,
        state.now(),
        queue::ClaimRules::of(config),
        crate::domain::gold::serves_gold(config.gold_rate, rand::random::<f64>()),
    )
    .await?
    else {
        return Ok(());
    };
    let (think_ms, answer) = {
        let mut rng = rand::thread_rng();
        (
            rng.gen_range(3_000..12_000),
            crew_answer(&mut rng, &claim.card, accuracy),
        )
    };
    tokio::time::sleep(Duration::from_millis(think_ms)).await;
    queue::submit_verdict(&state.db, &user, &claim.card.task_id, &answer, state.now()).await?;
    Ok(())
}

/// What a crew member of the given accuracy answers.
fn crew_answer(rng: &mut impl Rng, task: &TaskCard, accuracy: f64) -> Verdict {
    let pick = |sku: &str| Verdict {
        action: Some(if task.kind == "return" {
            crate::domain::Action::Return
        } else {
            crate::domain::Action::Pick
        }),
        sku: Some(sku.to_string()),
        quantity: Some(task.quantity),
        cant_tell: false,
        note: None,
    };
    let truth = TRUTH
        .lock()
        .expect("demo truth")
        .get(&task.event_id)
        .cloned()
        .or_else(|| task.candidates.first().map(|c| c.sku.clone()));
    let wrong = task
        .candidates
        .iter()
        .map(|c| c.sku.as_str())
        .find(|sku| Some(*sku) != truth.as_deref());
    match (truth.as_deref(), wrong) {
        (Some(truth), _) if rng.gen_bool(accuracy) => pick(truth),
        (_, Some(wrong)) if rng.gen_bool(0.7) => pick(wrong),
        _ => Verdict {
            action: None,
            sku: None,
            quantity: None,
            cant_tell: true,
            note: Some("the hand hides the product".into()),
        },
    }
}
