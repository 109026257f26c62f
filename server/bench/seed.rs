//! Fast seeding: a store, its catalog, sessions, review events with ready
//! tasks, a history of answered ones, and labelers with API tokens, written
//! with multi-row INSERTs inside transactions straight into the tables of
//! migrations/.

use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};

use super::bench_actor;
use crate::auth::{hash_password, Role};
use crate::db::bulk::{insert_rows, Val};
use crate::db::products::{self, Product};
use crate::db::users::{self, User};
use crate::db::{new_id, Db};
use crate::domain::lifecycle::{EventStatus, LeaseEnd, RouteName, SessionStatus, TaskStatus};
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
/// Tasks the labelers answered before the clock starts (each with its
/// ended lease and its verdict), so that the timed claims meet lease and
/// verdict tables with a history and statistics of it, as on a live
/// database. Without one, PostgreSQL plans the claim's "never a task you
/// held" probe on an empty `task_leases` as a scan of the whole table, and
/// every claim of the run scans all the leases the run has written so far.
pub const HISTORY_TASKS: usize = 10_000;

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

/// Seeds a store with `tasks` ready review tasks, `labelers` labelers and
/// [`HISTORY_TASKS`] tasks they answered into the database at `url` (which
/// `db` is connected to).
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
    let users = insert_labelers(&mut conn, labelers, now).await?;
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let mut tx = conn.begin().await?;
    insert_sessions(&mut tx, &store_id, Work::Ready, tasks, now).await?;
    let done = Work::Done { by: &ids };
    insert_sessions(&mut tx, &store_id, done, HISTORY_TASKS, now).await?;
    tx.commit().await?;
    for (work, n) in [(Work::Ready, tasks), (done, HISTORY_TASKS)] {
        for start in (0..n).step_by(TASKS_PER_TX) {
            let end = (start + TASKS_PER_TX).min(n);
            let mut tx = conn.begin().await?;
            insert_tasks(&mut tx, &store_id, work, start..end, now).await?;
            tx.commit().await?;
        }
    }
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

/// What state seeded tasks are in.
#[derive(Debug, Clone, Copy)]
enum Work<'a> {
    /// Ready in the queue, their shoppers' sessions open.
    Ready,
    /// Answered (one verdict each, by the labelers `by` in turn, under a
    /// lease that ended with it) and resolved; their sessions finalized.
    Done { by: &'a [&'a str] },
}

impl Work<'_> {
    /// What ids of this work start with: the history's never meet the
    /// queue's.
    fn prefix(self) -> &'static str {
        match self {
            Work::Ready => "",
            Work::Done { .. } => "h-",
        }
    }
}

async fn insert_sessions(
    tx: &mut AnyConnection,
    store_id: &str,
    work: Work<'_>,
    tasks: usize,
    now: i64,
) -> crate::db::Result<()> {
    let status = match work {
        Work::Ready => SessionStatus::Open,
        Work::Done { .. } => SessionStatus::Finalized,
    };
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
                Val::Text(format!("{}s-{s}", work.prefix())),
                Val::Text(status.as_str().into()),
                Val::Int(if status == SessionStatus::Open { *n } else { 0 }),
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

/// Events routed to review for low confidence, each with a task whose
/// deadline orders the queue by `i`: ready, or answered and resolved with
/// its lease and verdict ([`Work`]).
async fn insert_tasks(
    tx: &mut AnyConnection,
    store_id: &str,
    work: Work<'_>,
    range: std::ops::Range<usize>,
    now: i64,
) -> crate::db::Result<()> {
    let prefix = work.prefix();
    let (event_status, task_status, verdict_count, resolved_at) = match work {
        Work::Ready => (EventStatus::Review, TaskStatus::Ready, 0, None),
        Work::Done { .. } => (EventStatus::Resolved, TaskStatus::Resolved, 1, Some(now)),
    };
    let mut events = Vec::with_capacity(range.len());
    let mut tasks = Vec::with_capacity(range.len());
    let mut leases = Vec::new();
    let mut verdicts = Vec::new();
    for i in range {
        let event_pk = new_id();
        let task_id = new_id();
        let session = format!("{prefix}s-{}", session_of(i));
        let (top, second) = (sku(i * 7), sku(i * 7 + 1));
        let candidates = format!(
            r#"[{{"sku":"{top}","confidence":0.6}},{{"sku":"{second}","confidence":0.3}}]"#
        );
        let occurred_at = now - 60_000 + i as i64;
        if let Work::Done { by } = work {
            let labeler = by[i % by.len()];
            let lease_id = new_id();
            leases.push(vec![
                Val::Text(lease_id.clone()),
                Val::Text(task_id.clone()),
                Val::Text(labeler.to_string()),
                Val::Int(now - 1_000),
                Val::Int(now + 59_000),
                Val::Int(now),
                Val::Text(LeaseEnd::Verdict.as_str().into()),
            ]);
            verdicts.push(vec![
                Val::Text(new_id()),
                Val::Text(task_id.clone()),
                Val::Text(labeler.to_string()),
                Val::Text(lease_id),
                Val::Text("pick".into()),
                Val::Text(top.clone()),
                Val::Int(1),
                Val::Int(0),
                Val::Int(now),
                Val::Int(1_000),
            ]);
        }
        events.push(vec![
            Val::Text(event_pk.clone()),
            Val::Text(store_id.to_string()),
            Val::Text(format!("{prefix}ev-{i}")),
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
            Val::Text(event_status.as_str().into()),
            Val::Text(format!("bench-{prefix}{i}")),
            Val::Int(now),
        ]);
        tasks.push(vec![
            Val::Text(task_id),
            Val::Text(event_pk),
            Val::Text(store_id.to_string()),
            Val::Text(session),
            Val::Text("low-confidence".into()),
            Val::Int(1),
            Val::Text(task_status.as_str().into()),
            Val::Int(verdict_count),
            Val::MaybeInt(resolved_at),
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
         status, verdict_count, resolved_at, deadline_at, created_at, updated_at)",
        &tasks,
        "",
    )
    .await?;
    insert_rows(
        tx,
        "INSERT INTO task_leases (id, task_id, labeler_id, claimed_at, expires_at, ended_at, \
         end_reason)",
        &leases,
        "",
    )
    .await?;
    insert_rows(
        tx,
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, \
         cant_tell, created_at, handling_ms)",
        &verdicts,
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
