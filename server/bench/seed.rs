//! Fast seeding: a store, its catalog, sessions, review events with ready
//! tasks, and labelers with API tokens, written with multi-row INSERTs inside
//! transactions straight into the tables of migrations/.

use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};

use super::bench_actor;
use crate::auth::{hash_password, Role};
use crate::db::bulk::{insert_rows, Val};
use crate::db::products::{self, Product};
use crate::db::users::{self, User};
use crate::db::{new_id, Db};
use crate::domain::lifecycle::{EventStatus, RouteName, SessionStatus, TaskStatus};
use crate::review::admin;

/// Products in the bench catalog.
pub const CATALOG_SIZE: usize = 50;
/// Review tasks per shopper session: few events of a trip need a human.
const TASKS_PER_SESSION: usize = 4;
/// Sessions open at once: consecutive tasks in the queue belong to different
/// shoppers, as in a busy store, so verdicts rarely wait on one session row.
const SESSIONS_IN_FLIGHT: usize = 1_000;
/// Tasks per seeding transaction.
const TASKS_PER_TX: usize = 20_000;

/// A seeded labeler.
#[derive(Debug, Clone)]
pub struct Labeler {
    /// The user, as the query layer takes it.
    pub user: User,
    /// Its API token.
    pub token: String,
}

/// The sku of catalog product `i`.
pub fn sku(i: usize) -> String {
    format!("sku-{:03}", i % CATALOG_SIZE)
}

/// The bench catalog.
pub fn catalog() -> Vec<Product> {
    (0..CATALOG_SIZE)
        .map(|i| Product {
            sku: sku(i),
            name: format!("Bench product {i}"),
            price_cents: 99 + 10 * i as i64,
            image_url: None,
        })
        .collect()
}

/// Seeds a store with `tasks` ready review tasks and `labelers` labelers
/// into the database at `url` (which `db` is connected to).
pub async fn queue(
    db: &Db,
    url: &str,
    tasks: usize,
    labelers: usize,
    token_ttl_ms: i64,
    now: i64,
) -> anyhow::Result<Vec<Labeler>> {
    let store = admin::create_store(db, &bench_actor(), "Bench store", None, now).await?;
    let store_id = store.store.id;
    let mut tx = db.begin().await?;
    products::upsert(&mut tx, &store_id, &catalog(), now).await?;
    tx.commit().await?;
    let mut conn = bulk_connection(url).await?;
    let mut tx = conn.begin().await?;
    insert_sessions(&mut tx, &store_id, tasks, now).await?;
    tx.commit().await?;
    for start in (0..tasks).step_by(TASKS_PER_TX) {
        let end = (start + TASKS_PER_TX).min(tasks);
        let mut tx = conn.begin().await?;
        insert_tasks(&mut tx, &store_id, start..end, now).await?;
        tx.commit().await?;
    }
    let users = insert_labelers(&mut conn, labelers, now).await?;
    conn.close().await?;
    let mut seeded = Vec::with_capacity(users.len());
    for user in users {
        let token = users::issue_token(db, &user.id, now, token_ttl_ms).await?;
        seeded.push(Labeler { user, token });
    }
    Ok(seeded)
}

/// A connection of its own for the large INSERTs: sqlx would log each one
/// in full as a "slow statement", thousands of placeholders long.
pub(super) async fn bulk_connection(url: &str) -> anyhow::Result<AnyConnection> {
    let mut conn = AnyConnectOptions::from_str(url)?
        .disable_statement_logging()
        .connect()
        .await?;
    if url.starts_with("sqlite:") {
        // The pools may hold the file; wait for them instead of failing.
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .await?;
    }
    Ok(conn)
}

/// The session of task `i`: each block of SESSIONS_IN_FLIGHT × TASKS_PER_SESSION
/// tasks interleaves SESSIONS_IN_FLIGHT sessions.
fn session_of(i: usize) -> usize {
    let block = SESSIONS_IN_FLIGHT * TASKS_PER_SESSION;
    (i / block) * SESSIONS_IN_FLIGHT + i % SESSIONS_IN_FLIGHT
}

async fn insert_sessions(
    tx: &mut AnyConnection,
    store_id: &str,
    tasks: usize,
    now: i64,
) -> crate::db::Result<()> {
    let mut open_reviews: Vec<i64> = Vec::new();
    for i in 0..tasks {
        let s = session_of(i);
        if open_reviews.len() <= s {
            open_reviews.resize(s + 1, 0);
        }
        open_reviews[s] += 1;
    }
    let rows: Vec<Vec<Val>> = open_reviews
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| {
            vec![
                Val::Text(store_id.to_string()),
                Val::Text(format!("s-{s}")),
                Val::Text(SessionStatus::Open.as_str().into()),
                Val::Int(*n),
                Val::Int(now),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO sessions (store_id, session_id, status, open_reviews, created_at)",
        &rows,
        "",
    )
    .await?;
    Ok(())
}

/// Events routed to review for low confidence, each with a ready task whose
/// deadline orders the queue by `i`.
async fn insert_tasks(
    tx: &mut AnyConnection,
    store_id: &str,
    range: std::ops::Range<usize>,
    now: i64,
) -> crate::db::Result<()> {
    let mut events = Vec::with_capacity(range.len());
    let mut tasks = Vec::with_capacity(range.len());
    for i in range {
        let event_pk = new_id();
        let session = format!("s-{}", session_of(i));
        let (top, second) = (sku(i * 7), sku(i * 7 + 1));
        let candidates = format!(
            r#"[{{"sku":"{top}","confidence":0.6}},{{"sku":"{second}","confidence":0.3}}]"#
        );
        let occurred_at = now - 60_000 + i as i64;
        events.push(vec![
            Val::Text(event_pk.clone()),
            Val::Text(store_id.to_string()),
            Val::Text(format!("ev-{i}")),
            Val::Text(session.clone()),
            Val::Text("pick".into()),
            Val::Int(1),
            Val::Int(occurred_at),
            Val::Text(candidates),
            Val::Text("[]".into()),
            Val::Text("bench".into()),
            Val::Text(top),
            Val::Real(0.6),
            Val::Text(RouteName::Review.as_str().into()),
            Val::Text("low-confidence".into()),
            Val::Text(EventStatus::Review.as_str().into()),
            Val::Text(format!("bench-{i}")),
            Val::Int(now),
        ]);
        tasks.push(vec![
            Val::Text(new_id()),
            Val::Text(event_pk),
            Val::Text(store_id.to_string()),
            Val::Text(session),
            Val::Text("low-confidence".into()),
            Val::Int(1),
            Val::Text(TaskStatus::Ready.as_str().into()),
            Val::Int(occurred_at + 900_000),
            Val::Int(now),
            Val::Int(now),
        ]);
    }
    insert_rows(
        tx,
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, model_version, top_sku, top_confidence, route, route_reason, status, \
         request_hash, created_at)",
        &events,
        "",
    )
    .await?;
    insert_rows(
        tx,
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
         status, deadline_at, created_at, updated_at)",
        &tasks,
        "",
    )
    .await?;
    Ok(())
}

/// Labelers sharing one password hash (argon2 is slow by design).
pub(super) async fn insert_labelers(
    conn: &mut AnyConnection,
    n: usize,
    now: i64,
) -> anyhow::Result<Vec<User>> {
    let hash = hash_password("bench-password")?;
    let users: Vec<User> = (0..n)
        .map(|k| User {
            id: new_id(),
            username: format!("bench-labeler-{k}"),
            role: Role::Labeler,
            scope: crate::domain::scope::Scope::All,
            paused: false,
        })
        .collect();
    let rows: Vec<Vec<Val>> = users
        .iter()
        .map(|u| {
            vec![
                Val::Text(u.id.clone()),
                Val::Text(u.username.clone()),
                Val::Text(hash.clone()),
                Val::Text(u.role.as_str().into()),
                Val::Int(now),
            ]
        })
        .collect();
    let mut tx = conn.begin().await?;
    insert_rows(
        &mut tx,
        "INSERT INTO users (id, username, password_hash, role, created_at)",
        &rows,
        "",
    )
    .await?;
    tx.commit().await?;
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_interleave_and_hold_a_few_tasks_each() {
        assert_eq!(session_of(0), 0);
        assert_eq!(session_of(1), 1);
        assert_eq!(session_of(1_000), 0);
        assert_eq!(session_of(3_999), 999);
        assert_eq!(session_of(4_000), 1_000);
        let mut counts = std::collections::HashMap::new();
        for i in 0..8_000 {
            *counts.entry(session_of(i)).or_insert(0) += 1;
        }
        assert!(counts.values().all(|n| *n == TASKS_PER_SESSION));
    }
}
