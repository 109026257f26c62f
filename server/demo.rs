//! Demo data: a store, its catalog, users, and a stream of simulated shoppers
//! so a newcomer's console always has work in it.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use crate::auth::{digest, generate_password, hash_password, Role};
use crate::db::products::{self, Product};
use crate::db::stores::{self, Store};
use crate::db::{events, receipts, users};
use crate::domain::event::{CandidateInput, EventInput};
use crate::domain::time::format_rfc3339_ms;
use crate::AppState;

/// Name of the demo store.
pub const DEMO_STORE: &str = "Demo Store";

/// Keep at least this many tasks waiting for a labeler.
const TARGET_READY: i64 = 20;

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

/// Creates (or refreshes) the demo store, catalog and users.
pub async fn setup(state: &AppState) -> anyhow::Result<DemoCredentials> {
    let now = state.now();
    let (store, api_key) = match stores::by_name(&state.db, DEMO_STORE).await? {
        Some(store) => {
            let key = stores::rotate_api_key(&state.db, &store.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("demo store vanished"))?;
            (store, key)
        }
        None => {
            let created = stores::create(&state.db, DEMO_STORE, None, now).await?;
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
    let mut tx = state.db.begin().await?;
    products::upsert(&mut tx, &store.id, &catalog, now).await?;
    tx.commit().await?;

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
        users::upsert(&state.db, name, &hash, role, now).await?;
        created_users.push((name.to_string(), password, role));
    }
    Ok(DemoCredentials {
        store_id: store.id,
        api_key,
        users: created_users,
    })
}

/// A shopper's visit in the simulation.
struct Visit {
    session_id: String,
    exit_at: i64,
}

/// Simulates shoppers forever: keeps the queue topped up with realistic
/// events (most confident, some not) and lets each shopper exit a little
/// later, so receipts get finalized as labelers work.
pub async fn simulate(state: AppState, store_id: String) {
    let mut visits: Vec<Visit> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        if let Err(e) = simulate_step(&state, &store_id, &mut visits).await {
            tracing::warn!(error = %format!("{e:#}"), "demo simulation step failed");
        }
    }
}

async fn simulate_step(
    state: &AppState,
    store_id: &str,
    visits: &mut Vec<Visit>,
) -> anyhow::Result<()> {
    let now = state.now();
    let mut conn = state.db.reader().acquire().await?;
    let store: Store = stores::get(&mut conn, store_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo store is gone"))?;
    let ready: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM review_tasks WHERE store_id = $1 AND status = 'ready'",
    )
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
    let inputs = {
        let mut rng = rand::thread_rng();
        let session_id = format!("demo-{}", uuid::Uuid::now_v7().simple());
        let n_events = rng.gen_range(1..=4);
        let mut inputs = Vec::new();
        for i in 0..n_events {
            inputs.push(random_event(
                &mut rng,
                &session_id,
                i,
                now - 5_000 + i as i64 * 1_500,
            ));
        }
        visits.push(Visit {
            session_id,
            exit_at: now + rng.gen_range(20_000..60_000),
        });
        inputs
    };
    let mut tx = state.db.begin().await?;
    for input in &inputs {
        let valid = input.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let hash = digest(&serde_json::to_string(input)?);
        events::ingest(
            &state.db,
            &mut tx,
            &store,
            &valid,
            &hash,
            now,
            rand::random(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tx.commit().await?;
    Ok(())
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
