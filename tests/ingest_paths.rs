//! How a request of events is stored: on PostgreSQL a request of plain
//! events in one statement, which checks what it assumed (no stored event
//! id, every session new or open) and otherwise writes nothing and leaves
//! the request to the transaction that reads first; on SQLite always that
//! transaction. Either way the same rows come out.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{code, event, until_a_lock_wait, Backend, TestApp};
use recount::domain::routing::RoutingPolicy;
use recount::domain::time::parse_rfc3339_ms;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];
const SURE: &[(&str, f64)] = &[("milk", 0.98), ("cola", 0.01)];
/// When the events of `common::event` happened.
const OCCURRED: &str = "2026-11-25T10:00:00Z";

fn requests(metrics: &str, path: &str) -> f64 {
    let series = format!("recount_ingest_requests_total{{path=\"{path}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Requests stored by each path since `before`: (one statement, transaction).
async fn paths_since(app: &TestApp, before: &str) -> (f64, f64) {
    let now = app.metrics().await;
    (
        requests(&now, "one_statement") - requests(before, "one_statement"),
        requests(&now, "transaction") - requests(before, "transaction"),
    )
}

/// A session's status and open reviews.
async fn session(app: &TestApp, store_id: &str, session_id: &str) -> (String, i64) {
    sqlx::query_as(
        "SELECT status, open_reviews FROM sessions WHERE store_id = $1 AND session_id = $2",
    )
    .bind(store_id)
    .bind(session_id)
    .fetch_one(app.state.db.reader())
    .await
    .unwrap()
}

/// The receipt deadline of the task an event opened.
async fn deadline_of(app: &TestApp, event_id: &str) -> i64 {
    app.count(&format!(
        "SELECT t.deadline_at FROM review_tasks t JOIN events e ON e.id = t.event_pk \
         WHERE e.event_id = '{event_id}'"
    ))
    .await
}

fn policy() -> RoutingPolicy {
    RoutingPolicy::default()
}

async fn plain_events_are_stored_in_one_statement_on_postgres(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let before = app.metrics().await;

    let (s, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["route"], "review");
    let (s, out) = app
        .events(
            &key,
            json!([
                event("e2", "s1", "pick", 1, SURE),
                event("e3", "s2", "pick", 2, UNSURE),
                event("e4", "s1", "return", 1, UNSURE),
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let routes: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["auto_accepted", "review", "review"]);

    let expected = match backend {
        Backend::Postgres => (2.0, 0.0),
        Backend::Sqlite => (0.0, 2.0),
    };
    assert_eq!(paths_since(&app, &before).await, expected);
    // The same rows whichever path stored them.
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 4);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'")
            .await,
        3
    );
    assert_eq!(session(&app, &store_id, "s1").await, ("open".into(), 2));
    assert_eq!(session(&app, &store_id, "s2").await, ("open".into(), 1));
    let occurred = parse_rfc3339_ms(OCCURRED).unwrap();
    let p = policy();
    assert_eq!(
        deadline_of(&app, "e3").await,
        occurred + p.expected_exit_ms + p.receipt_sla_ms
    );
    let (auto_status, auto_resolution): (String, String) =
        sqlx::query_as("SELECT status, resolution FROM events WHERE event_id = 'e2'")
            .fetch_one(app.state.db.reader())
            .await
            .unwrap();
    assert_eq!(
        (auto_status.as_str(), auto_resolution.as_str()),
        ("resolved", "auto")
    );
}
dual!(plain_events_are_stored_in_one_statement_on_postgres);

/// Each thing the one statement assumes, found untrue: a stored event id
/// (a replay, or a conflict), an exited session, a finalized one, a sku
/// not in the catalog. The transaction decides, and nothing else changes.
async fn what_one_statement_assumed_is_checked_and_the_transaction_decides(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let first = event("e1", "s1", "pick", 1, UNSURE);
    let (s, stored) = app.events(&key, first.clone()).await;
    assert_eq!(s, StatusCode::OK, "{stored}");
    let before = app.metrics().await;

    // A store's retry: the stored answer, nothing written twice.
    let (s, again) = app.events(&key, first.clone()).await;
    assert_eq!((s, &again), (StatusCode::OK, &stored));
    // The same id with other content.
    let mut changed = first.clone();
    changed["quantity"] = json!(2);
    let (s, b) = app.events(&key, changed).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "event-conflict"));
    // A batch with a stored event among new ones.
    let (s, out) = app
        .events(
            &key,
            json!([first.clone(), event("e2", "s1", "pick", 1, UNSURE)]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out[0], stored);
    assert_eq!(out[1]["route"], "review");
    assert_eq!(session(&app, &store_id, "s1").await, ("open".into(), 2));

    // The shopper left: the next event's deadline counts from the exit.
    let (s, r) = app.exit(&key, "s1", "2026-11-25T10:02:00Z").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, out) = app.events(&key, event("e3", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let exited = parse_rfc3339_ms("2026-11-25T10:02:00Z").unwrap();
    assert_eq!(
        deadline_of(&app, "e3").await,
        exited + policy().receipt_sla_ms
    );
    assert_eq!(session(&app, &store_id, "s1").await, ("exited".into(), 3));

    // A sku the catalog lacks, in a batch with a good event: neither stored.
    let (s, b) = app
        .events(
            &key,
            json!([
                event("e4", "s3", "pick", 1, UNSURE),
                event("e5", "s3", "pick", 1, &[("caviar", 0.5)]),
            ]),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku"),
        "{b}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE session_id = 's3'")
            .await,
        0
    );

    // A finalized receipt takes no new event, and its session is unchanged.
    let (s, r) = app.exit(&key, "s4", "2026-11-25T10:03:00Z").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "final", "{r}");
    let (s, b) = app.events(&key, event("e6", "s4", "pick", 1, UNSURE)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "session-finalized"),
        "{b}"
    );
    assert_eq!(
        session(&app, &store_id, "s4").await,
        ("finalized".into(), 0)
    );

    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM review_tasks").await, 3);
    // Stored: the replay, the batch with a replay, the event after the
    // exit. None of them could be written by the one statement.
    assert_eq!(paths_since(&app, &before).await, (0.0, 3.0));
}
dual!(what_one_statement_assumed_is_checked_and_the_transaction_decides);

/// An exit in progress holds the session's row when an event for it
/// arrives: the one statement waits for it, finds the session exited when
/// it commits, writes nothing, and the transaction stores the event with
/// the deadline the exit sets. Were the statement to count the review on
/// the session without checking it is still open, the task's deadline
/// would be the one of a shopper still in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_event_waiting_for_an_exit_takes_the_exit_into_account() {
    let app = TestApp::start(Backend::Postgres).await;
    let (store_id, key) = app.store_with_catalog().await;
    let (s, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let exited = parse_rfc3339_ms("2026-11-25T10:01:00Z").unwrap();
    let before = app.metrics().await;

    let mut exit = app.state.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE sessions SET status = 'exited', exited_at = $1 \
         WHERE store_id = $2 AND session_id = 's1'",
    )
    .bind(exited)
    .bind(&store_id)
    .execute(&mut *exit)
    .await
    .unwrap();
    let app_ref = &app;
    let ((status, body), ()): ((StatusCode, Value), ()) = tokio::join!(
        app.events(&key, event("e2", "s1", "pick", 1, UNSURE)),
        async move {
            until_a_lock_wait(app_ref).await;
            exit.commit().await.unwrap();
        }
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["route"], "review");
    assert_eq!(
        deadline_of(&app, "e2").await,
        exited + policy().receipt_sla_ms
    );
    assert_eq!(session(&app, &store_id, "s1").await, ("exited".into(), 1));
    assert_eq!(paths_since(&app, &before).await, (0.0, 1.0));
}

/// Concurrent batches naming the same sessions, some stored before and
/// some new: every request is stored, and none is refused for a deadlock.
/// In every other round each batch also carries a store's retry of a
/// stored event, so that on PostgreSQL those rounds go through the
/// transaction (which locks every session first) and the others through
/// the one statement. Each must lock its sessions in one order, also a
/// session another request created while it waited.
async fn concurrent_batches_over_the_same_sessions_all_land(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    const ROUNDS: usize = 16;
    const SESSIONS: usize = 40;
    const BATCHES: usize = 8;
    for round in 0..ROUNDS {
        let session = |i: usize| format!("r{round}-s{i:02}");
        // Every other session exists before the batches arrive.
        let stored = |i: usize| {
            event(
                &format!("r{round}-first-{i:02}"),
                &session(i),
                "pick",
                1,
                SURE,
            )
        };
        for i in (0..SESSIONS).step_by(2) {
            let (s, out) = app.events(&key, stored(i)).await;
            assert_eq!(s, StatusCode::OK, "{out}");
        }
        let requests = (0..BATCHES).map(|b| {
            // Each batch names the sessions in its own order.
            let mut events: Vec<Value> = (0..SESSIONS)
                .map(|i| {
                    event(
                        &format!("r{round}-b{b}-{i:02}"),
                        &session(i),
                        "pick",
                        1,
                        UNSURE,
                    )
                })
                .collect();
            events.rotate_left(b * 5 % SESSIONS);
            if round % 2 == 0 {
                events.push(stored(0));
            }
            let key = key.clone();
            let app = &app;
            async move { app.events(&key, Value::Array(events)).await }
        });
        for (s, out) in futures::future::join_all(requests).await {
            assert_eq!(s, StatusCode::OK, "{out}");
            let retried = usize::from(round % 2 == 0);
            assert_eq!(out.as_array().map(Vec::len), Some(SESSIONS + retried));
        }
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events").await,
        (ROUNDS * (SESSIONS / 2 + BATCHES * SESSIONS)) as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        (ROUNDS * SESSIONS) as i64
    );
    assert_eq!(
        app.count("SELECT CAST(SUM(open_reviews) AS BIGINT) FROM sessions")
            .await,
        (ROUNDS * BATCHES * SESSIONS) as i64
    );
}
dual!(concurrent_batches_over_the_same_sessions_all_land);

/// Rotates a store's API key as an admin; the new key.
async fn rotate_key(app: &TestApp, store_id: &str, admin: &str) -> String {
    let (s, rotated) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/stores/{store_id}/api-key/rotate"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    rotated["api_key"].as_str().unwrap().to_string()
}

/// A store's row comes from memory once read, and every change to it holds
/// at once on the instance that made it: a rotated key is refused, a new
/// policy routes the next event, a catalog upload's products are known.
async fn a_changed_store_holds_at_once_though_its_row_is_kept_in_memory(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", recount::auth::Role::Admin).await;
    // Read once, kept: the next requests find the store in memory.
    let (s, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");

    // A policy that sends everything to review.
    let (s, p) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &admin,
            Some(json!({"threshold": 0.99, "audit_rate": 0.0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (_, out) = app.events(&key, event("e2", "s1", "pick", 1, SURE)).await;
    assert_eq!(out["route"], "review", "{out}");

    // A product uploaded now is in the catalog of the next event.
    app.products(
        &key,
        json!([{"sku": "kiwi", "name": "Kiwi", "price_cents": 45}]),
    )
    .await;
    let (s, out) = app
        .events(&key, event("e3", "s1", "pick", 1, &[("kiwi", 0.999)]))
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");

    // A rotated key: the old one is refused, the new one works.
    let new_key = &rotate_key(&app, &store_id, &admin).await;
    let (s, b) = app.events(&key, event("e4", "s1", "pick", 1, SURE)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{b}"
    );
    let (s, out) = app
        .events(new_key, event("e4", "s1", "pick", 1, SURE))
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 4);
}
dual!(a_changed_store_holds_at_once_though_its_row_is_kept_in_memory);

/// On PostgreSQL another instance that kept a store's row forgets it when
/// the change's announcement arrives: its old key is refused there too.
/// Announcements arrive in commit order on the one listening connection,
/// so once the other instance hears of a task opened after the rotation,
/// it has heard of the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_another_instance_forgets_a_changed_store_when_told() {
    use std::time::Duration;
    let app = TestApp::start(Backend::Postgres).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", recount::auth::Role::Admin).await;
    let other = app.second_instance().await;
    let mut heard = other.db.ready.watch();
    let listening = crate::common::listening(&other).await;
    heard.borrow_and_update();
    let kept = other.db.store_keys.store(&other.db, &key).await.unwrap();
    assert_eq!(kept.map(|s| s.id), Some(store_id.clone()));

    let new_key = &rotate_key(&app, &store_id, &admin).await;
    let (s, out) = app
        .events(new_key, event("e1", "s1", "pick", 1, UNSURE))
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    tokio::time::timeout(Duration::from_secs(10), heard.changed())
        .await
        .expect("the other instance never heard of the new task")
        .unwrap();
    assert!(other
        .db
        .store_keys
        .store(&other.db, &key)
        .await
        .unwrap()
        .is_none());
    let found = other.db.store_keys.store(&other.db, new_key).await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(store_id));
    listening.abort();
}
