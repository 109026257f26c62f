//! The core loop over real HTTP, each test on SQLite and on PostgreSQL:
//! ingest → routing → review queue → verdicts → receipts → webhooks.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, start_receiver, until, until_a_lock_wait, Backend, TestApp};
use recount::auth::Role;

/// Confident enough for the default policy, and not drawn for audit
/// (audit rate set to zero where it matters).
const SURE: &[(&str, f64)] = &[("milk", 0.98), ("cola", 0.01)];
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

async fn no_audit(app: &TestApp, store_id: &str, admin: &str) {
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            admin,
            Some(json!({"audit_rate": 0.0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn confident_events_are_auto_accepted_and_exit_finalizes_the_receipt(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(&app, &store_id, &admin).await;

    let (s, out) = app.events(&key, event("e1", "s1", "pick", 2, SURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out, json!({"event_id": "e1", "route": "auto_accepted"}));
    let (_, out) = app
        .events(&key, event("e2", "s1", "pick", 1, &[("bread", 0.95)]))
        .await;
    assert_eq!(out["route"], "auto_accepted");
    let (_, out) = app.events(&key, event("e3", "s1", "return", 1, SURE)).await;
    assert_eq!(out["route"], "auto_accepted");

    let (_, pending) = app.receipt(&key, "s1").await;
    assert_eq!(pending["status"], "pending");

    app.clock.advance(1_500);
    let (s, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:01Z").await;
    assert_eq!(s, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["status"], "final");
    assert_eq!(
        receipt["lines"],
        json!([
            {"sku": "bread", "name": "Bread", "quantity": 1, "unit_price_cents": 399, "total_cents": 399},
            {"sku": "milk", "name": "Milk 1 l", "quantity": 1, "unit_price_cents": 129, "total_cents": 129},
        ])
    );
    assert_eq!(receipt["total_cents"], 528);
    assert_eq!(receipt["exited_at"], "2026-11-25T10:00:01.000Z");
    assert_eq!(receipt["finalized_at"], "2026-11-25T10:00:01.500Z");
    assert_eq!(app.count("SELECT latency_ms FROM receipts").await, 500);

    // Read back: the same final receipt.
    let (_, again) = app.receipt(&key, "s1").await;
    assert_eq!(again, receipt);
}
dual!(confident_events_are_auto_accepted_and_exit_finalizes_the_receipt);

async fn routing_reasons_are_stored_with_each_decision(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    let (s, p) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &admin,
            Some(json!({"audit_rate": 0.0, "high_value_cents": 10000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["threshold"], 0.9);
    assert_eq!(p["high_value_cents"], 10000);

    let (_, low) = app
        .events(&key, event("low", "s", "pick", 1, &[("milk", 0.5)]))
        .await;
    let (_, close) = app
        .events(
            &key,
            event("close", "s", "pick", 1, &[("milk", 0.93), ("cola", 0.90)]),
        )
        .await;
    let (_, value) = app
        .events(&key, event("value", "s", "pick", 1, &[("tv", 0.99)]))
        .await;
    let (_, none) = app.events(&key, event("none", "s", "pick", 1, &[])).await;
    assert_eq!(
        (low["route"].as_str(), low["reason"].as_str()),
        (Some("review"), Some("low-confidence"))
    );
    assert_eq!(close["reason"], "small-margin");
    assert_eq!(value["reason"], "high-value");
    assert_eq!(none["reason"], "low-confidence");
    assert!(low["task_id"].is_string());

    // Everything audited: a confident event becomes an audit sample needing two verdicts.
    app.call(
        Method::PUT,
        &format!("/api/v1/stores/{store_id}/policy"),
        &admin,
        Some(json!({"audit_rate": 1.0})),
    )
    .await;
    let (_, audit) = app.events(&key, event("audit", "s", "pick", 1, SURE)).await;
    assert_eq!(audit["reason"], "audit-sample");
    assert_eq!(
        app.count("SELECT required_verdicts FROM review_tasks t JOIN events e ON e.id = t.event_pk WHERE e.event_id = 'audit'").await,
        2
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM review_tasks").await, 5);
}
dual!(routing_reasons_are_stored_with_each_decision);

/// An event without a top candidate stores no confidence; events before and
/// after it on the same database connection (hence the same cached
/// statement) store theirs. On PostgreSQL a NULL bound the wrong way once
/// broke every later event on that connection.
async fn events_with_and_without_a_top_candidate_share_a_connection(backend: Backend) {
    let app = TestApp::start_pooled(backend, 1, |_| {}).await;
    let (_, key) = app.store_with_catalog().await;
    let posted = [
        // First on the connection: the statement is prepared with a NULL.
        ("empty", vec![]),
        ("after", vec![("milk", 0.25), ("cola", 0.125)]),
        ("again", vec![]),
        ("last", vec![("cola", 0.75)]),
    ];
    for (id, candidates) in &posted {
        let (s, out) = app
            .events(&key, event(id, "s", "pick", 1, candidates))
            .await;
        assert_eq!(s, StatusCode::OK, "{id}: {out}");
        assert_eq!(out["reason"], "low-confidence", "{id}: {out}");
    }
    let mut conn = app.state.db.reader().acquire().await.unwrap();
    for (id, candidates) in &posted {
        let stored: Option<f64> =
            sqlx::query_scalar("SELECT top_confidence FROM events WHERE event_id = $1")
                .bind(*id)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        let top = candidates.iter().map(|c| c.1).reduce(f64::max);
        assert_eq!(stored, top, "{id}");
    }
}
dual!(events_with_and_without_a_top_candidate_share_a_connection);

async fn a_verdict_resolves_the_review_and_finalizes_the_exited_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(&app, &store_id, &admin).await;
    let labeler = app.user("ann", Role::Labeler).await;

    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let (_, review) = app.events(&key, event("e2", "s1", "pick", 1, UNSURE)).await;
    let task_id = review["task_id"].as_str().unwrap().to_string();

    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(receipt["status"], "pending");
    assert_eq!(receipt["events_in_review"], 1);
    assert_eq!(
        receipt["total_cents"], 129,
        "settled events show while pending"
    );

    let (s, claim) = app.claim(&labeler).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    assert_eq!(claim["task"]["task_id"], task_id.as_str());
    assert_eq!(claim["task"]["candidates"][0]["sku"], "milk");
    assert_eq!(claim["task"]["candidates"][0]["name"], "Milk 1 l");
    assert_eq!(claim["task"]["candidates"][0]["price_cents"], 129);
    assert_eq!(claim["task"]["reason"], "low-confidence");
    assert_eq!(claim["lease_expires_at"], "2026-11-25T10:01:00.000Z");
    // The receipt deadline follows the exit: exit + 10 min SLA.
    assert_eq!(claim["task"]["deadline_at"], "2026-11-25T10:10:00.000Z");

    app.clock.advance(4_000);
    // The labeler saw cola, not milk, and two of them.
    let (s, out) = app
        .verdict(
            &labeler,
            &task_id,
            json!({"action": "pick", "sku": "cola", "quantity": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out, json!({"task_id": task_id, "status": "resolved"}));
    assert_eq!(app.count("SELECT handling_ms FROM verdicts").await, 4_000);

    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(receipt["status"], "final");
    assert_eq!(receipt["total_cents"], 129 + 2 * 149);
    assert_eq!(receipt["events_in_review"], 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM receipts").await, 1);

    // Replaying the same verdict answers the same; a different one is refused.
    let (s, again) = app
        .verdict(
            &labeler,
            &task_id,
            json!({"action": "pick", "sku": "cola", "quantity": 2}),
        )
        .await;
    assert_eq!(
        (s, again["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (s, other) = app
        .verdict(&labeler, &task_id, json!({"action": "none"}))
        .await;
    assert_eq!(
        (s, code(&other)),
        (StatusCode::CONFLICT, "verdict-conflict")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM verdicts").await, 1);

    // Nothing left to do.
    let (s, body) = app.claim(&labeler).await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));

    // The session is closed for good.
    let (s, late) = app.events(&key, event("e3", "s1", "pick", 1, SURE)).await;
    assert_eq!(
        (s, code(&late)),
        (StatusCode::CONFLICT, "session-finalized")
    );
    // But a replay of an accepted event still answers as before.
    let (s, replay) = app.events(&key, event("e2", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(
        (s, replay["task_id"].as_str()),
        (StatusCode::OK, Some(task_id.as_str()))
    );
}
dual!(a_verdict_resolves_the_review_and_finalizes_the_exited_session);

async fn claims_come_earliest_deadline_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(&app, &store_id, &admin).await;
    let labeler = app.user("ann", Role::Labeler).await;

    // Three open sessions; the second one's shopper leaves now, so its
    // deadline (exit + SLA) comes before the others' expected deadlines.
    app.events(&key, event("a", "open-1", "pick", 1, UNSURE))
        .await;
    app.clock.advance(1);
    app.events(&key, event("b", "leaving", "pick", 1, UNSURE))
        .await;
    app.clock.advance(1);
    app.events(&key, event("c", "open-2", "pick", 1, UNSURE))
        .await;
    app.exit(&key, "leaving", "2026-11-25T09:58:00Z").await;

    let mut order = Vec::new();
    for _ in 0..2 {
        let (_, c) = app.claim(&labeler).await;
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        order.push(c["task"]["event_id"].as_str().unwrap().to_string());
        app.verdict(&labeler, &task, json!({"action": "none"}))
            .await;
    }
    let (_, c) = app.claim(&labeler).await;
    order.push(c["task"]["event_id"].as_str().unwrap().to_string());
    // Same expected deadline for a and c (same occurred_at): older task first.
    assert_eq!(order, ["b", "a", "c"]);
}
dual!(claims_come_earliest_deadline_first);

async fn audit_samples_need_two_labelers_and_never_return_to_the_first(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    app.call(
        Method::PUT,
        &format!("/api/v1/stores/{store_id}/policy"),
        &admin,
        Some(json!({"audit_rate": 1.0})),
    )
    .await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;

    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;

    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], task.as_str());
    let (_, v) = app
        .verdict(
            &ann,
            &task,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(v["status"], "ready");

    // Ann answered it already: she never gets it again.
    let (s, _) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The audit never held the receipt: final at exit with the model's answer.
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(
        (receipt["status"].as_str(), receipt["version"].as_i64()),
        (Some("final"), Some(1))
    );

    let (_, c) = app.claim(&bob).await;
    assert_eq!(c["task"]["task_id"], task.as_str());
    let (_, v) = app
        .verdict(
            &bob,
            &task,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(v["status"], "resolved");
    // The audit agreed with the model: nothing to adjust.
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(
        (
            receipt["status"].as_str(),
            receipt["version"].as_i64(),
            receipt["total_cents"].as_i64()
        ),
        (Some("final"), Some(1), Some(129))
    );
}
dual!(audit_samples_need_two_labelers_and_never_return_to_the_first);

async fn disagreement_escalates_and_a_supervisor_resolves_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    app.call(
        Method::PUT,
        &format!("/api/v1/stores/{store_id}/policy"),
        &admin,
        Some(json!({"audit_rate": 1.0})),
    )
    .await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let sup = app.user("sue", Role::Supervisor).await;

    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    app.claim(&ann).await;
    app.verdict(
        &ann,
        &task,
        json!({"action": "pick", "sku": "milk", "quantity": 1, "note": "clear view"}),
    )
    .await;
    app.claim(&bob).await;
    let (_, v) = app
        .verdict(
            &bob,
            &task,
            json!({"action": "pick", "sku": "cola", "quantity": 1}),
        )
        .await;
    assert_eq!(v["status"], "escalated");

    // Escalated tasks are not handed to labelers.
    let carl = app.user("carl", Role::Labeler).await;
    assert_eq!(app.claim(&carl).await.0, StatusCode::NO_CONTENT);

    let (s, list) = app
        .call(Method::GET, "/api/v1/escalations", &sup, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["escalation_reason"], "disagreement");
    assert_eq!(list[0]["verdicts"][0]["labeler"], "ann");
    assert_eq!(list[0]["verdicts"][0]["note"], "clear view");
    assert_eq!(list[0]["verdicts"][1]["sku"], "cola");
    assert_eq!(list[0]["task"]["candidates"][0]["sku"], "milk");

    // A labeler may not resolve.
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/resolve"),
            &ann,
            Some(json!({"action": "pick", "sku": "milk"})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));

    let (s, r) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/resolve"),
            &sup,
            Some(json!({"action": "pick", "sku": "cola"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "resolved");
    // Final at exit with the model's milk; the audit's cola is version 2.
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(
        (
            receipt["status"].as_str(),
            receipt["version"].as_i64(),
            receipt["total_cents"].as_i64()
        ),
        (Some("final"), Some(2), Some(149))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE resolution = 'supervisor'")
            .await,
        1
    );

    // Resolving twice is refused.
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/resolve"),
            &sup,
            Some(json!({"action": "none"})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "task-not-escalated"));
}
dual!(disagreement_escalates_and_a_supervisor_resolves_it);

async fn cant_tell_escalates_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sup = app.user("sue", Role::Supervisor).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    app.claim(&ann).await;
    let (s, v) = app
        .verdict(
            &ann,
            &task,
            json!({"cant_tell": true, "note": "hand hides the shelf"}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("escalated"))
    );
    let (_, detail) = app
        .call(Method::GET, &format!("/api/v1/tasks/{task}"), &sup, None)
        .await;
    assert_eq!(detail["status"], "escalated");
    assert_eq!(detail["escalation_reason"], "cant-tell");
    assert_eq!(detail["verdicts"][0]["cant_tell"], true);
    // A supervisor must decide, not shrug.
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/resolve"),
            &sup,
            Some(json!({"cant_tell": true})),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "cant-tell-not-allowed")
    );
}
dual!(cant_tell_escalates_at_once);

async fn leases_expire_back_to_the_queue_and_guard_every_action(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.lease_ttl_ms = 30_000).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();

    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["lease_expires_at"], "2026-11-25T10:00:30.000Z");

    // Someone else's lease: no heartbeat, no release, no verdict.
    let hb = format!("/api/v1/tasks/{task}/heartbeat");
    let (s, b) = app.call(Method::POST, &hb, &bob, None).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "lease-not-held"));
    let (s, b) = app.verdict(&bob, &task, json!({"action": "none"})).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "lease-not-held"));
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/release"),
            &bob,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "lease-not-held"));

    // A heartbeat keeps it.
    app.clock.advance(20_000);
    let (s, b) = app.call(Method::POST, &hb, &ann, None).await;
    assert_eq!(
        (s, b["lease_expires_at"].as_str()),
        (StatusCode::OK, Some("2026-11-25T10:00:50.000Z"))
    );
    app.clock.advance(20_000);
    assert_eq!(recount::jobs::sweep_leases(&app.state).await.unwrap(), 0);
    assert_eq!(app.claim(&bob).await.0, StatusCode::NO_CONTENT);

    // Without one it lapses; the sweep hands it back to the queue.
    app.clock.advance(10_001);
    let (s, b) = app.call(Method::POST, &hb, &ann, None).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "lease-expired"));
    assert_eq!(recount::jobs::sweep_leases(&app.state).await.unwrap(), 1);
    let (_, c) = app.claim(&bob).await;
    assert_eq!(c["task"]["task_id"], task.as_str());

    // Ann's late verdict is refused and changes nothing.
    let (s, b) = app.verdict(&ann, &task, json!({"action": "none"})).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "lease-expired"));
    assert_eq!(app.count("SELECT COUNT(*) FROM verdicts").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_leases WHERE end_reason = 'expired'")
            .await,
        1
    );

    // Release gives it back at once, to someone who has not held it yet.
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/release"),
            &bob,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.claim(&bob).await.0, StatusCode::NO_CONTENT);
    let carl = app.user("carl", Role::Labeler).await;
    let (_, c) = app.claim(&carl).await;
    assert_eq!(c["task"]["task_id"], task.as_str());
}
dual!(leases_expire_back_to_the_queue_and_guard_every_action);

async fn a_labeler_holds_at_most_the_configured_number_of_leases(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.max_leases_per_labeler = 2).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..3 {
        app.events(&key, event(&format!("e{i}"), "s1", "pick", 1, UNSURE))
            .await;
    }
    assert_eq!(app.claim(&ann).await.0, StatusCode::OK);
    assert_eq!(app.claim(&ann).await.0, StatusCode::OK);
    let (s, b) = app.claim(&ann).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "too-many-leases"));
}
dual!(a_labeler_holds_at_most_the_configured_number_of_leases);

/// One labeler's claims sent at once (a console's prefetch, a second tab)
/// still stop at the lease limit: the claim's count of live leases is taken
/// under the labeler's row lock (on PostgreSQL sent with `BEGIN`), so no
/// two claims count the same leases.
async fn concurrent_claims_of_one_labeler_stop_at_the_lease_limit(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.max_leases_per_labeler = 2).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..12 {
        app.events(
            &key,
            event(&format!("e{i}"), &format!("s{i}"), "pick", 1, UNSURE),
        )
        .await;
    }
    let claims = (0..8).map(|_| app.claim(&ann));
    let answers = futures::future::join_all(claims).await;
    let leased: Vec<&str> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b["task"]["task_id"].as_str().expect("a claimed task id"))
        .collect();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && code(b) == "too-many-leases")
        .count();
    assert_eq!((leased.len(), refused), (2, 6), "{answers:?}");
    assert_ne!(leased[0], leased[1]);
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM review_tasks WHERE status = 'leased' AND leased_by = \
         (SELECT id FROM users WHERE username = 'ann')",
    )
    .fetch_one(app.state.db.reader())
    .await
    .unwrap();
    assert_eq!(held, 2);
}
dual!(concurrent_claims_of_one_labeler_stop_at_the_lease_limit);

/// Waits until `ready` has more waiters than `before` (a claim is waiting
/// on it), or fails after 10 s.
async fn until_waiting(ready: &recount::db::ready::Ready, before: usize) {
    until(
        || async { ready.waiting() > before },
        "the claim never waited",
    )
    .await;
}

/// A claim that waits answers with the task an event opens meanwhile. Its
/// wait (4.5 s) is shorter than the waiting claim's own second look (5 s),
/// so only the announcement of the new task can have found it. Bad waits
/// are refused with their codes.
async fn a_waiting_claim_gets_the_task_an_event_opens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ana = app.user("ana", Role::Labeler).await;
    for (query, status, expected) in [
        (
            "wait_ms=25001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-wait",
        ),
        ("wait_ms=-1", StatusCode::BAD_REQUEST, "invalid-query"),
        ("wait_ms=soon", StatusCode::BAD_REQUEST, "invalid-query"),
    ] {
        let (s, b) = app
            .call(
                Method::POST,
                &format!("/api/v1/tasks/claim?{query}"),
                &ana,
                None,
            )
            .await;
        assert_eq!((s, code(&b)), (status, expected), "{query}: {b}");
    }
    // Nothing is ready: without a wait the answer is 204 at once.
    let (s, _) = app.claim(&ana).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let ready = app.state.db.ready.clone();
    let before = ready.waiting();
    let ((claimed, body), task_id) = tokio::join!(
        app.call(Method::POST, "/api/v1/tasks/claim?wait_ms=4500", &ana, None),
        async {
            until_waiting(&ready, before).await;
            let (s, out) = app
                .events(&key, event("late", "s1", "pick", 1, UNSURE))
                .await;
            assert_eq!(s, StatusCode::OK, "{out}");
            out["task_id"].as_str().unwrap().to_string()
        }
    );
    assert_eq!(claimed, StatusCode::OK, "{body}");
    assert_eq!(body["task"]["task_id"], json!(task_id));
    assert_eq!(ready.waiting(), before, "the waiter is gone");

    // A wait with nothing announced ends with 204, the queue unchanged.
    let bob = app.user("bob", Role::Labeler).await;
    let (s, _) = app
        .call(Method::POST, "/api/v1/tasks/claim?wait_ms=50", &bob, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_leases").await,
        1,
        "only ana's lease"
    );
}
dual!(a_waiting_claim_gets_the_task_an_event_opens);

/// On PostgreSQL a verdict that waits for its session's row lock decides
/// the receipt from the session as the lock's holder left it. Here the
/// holder (as ingest storing one more uncertain event of the shopper would)
/// adds an open review and commits while the verdict waits: resolving this
/// review must leave the receipt waiting for the other one. Read from the
/// verdict statement's snapshot instead, the session would show one open
/// review, and the receipt would be finalized with a review still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_verdict_waiting_for_its_session_sees_what_the_holder_wrote() {
    let app = TestApp::start(Backend::Postgres).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(&app, &store_id, &admin).await;
    let ana = app.user("ana", Role::Labeler).await;
    let (s, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let (s, out) = app.exit(&key, "s1", "2026-11-25T10:05:00Z").await;
    assert!(s.is_success(), "{out}");
    let (s, claimed) = app.claim(&ana).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    let task = claimed["task"]["task_id"].as_str().unwrap().to_string();

    let mut holder = app.state.db.begin().await.unwrap();
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews + 1 \
         WHERE store_id = $1 AND session_id = 's1'",
    )
    .bind(&store_id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let app_ref = &app;
    let ((status, body), ()) = tokio::join!(
        app.verdict(
            &ana,
            &task,
            json!({"action": "pick", "sku": "milk", "quantity": 1})
        ),
        async move {
            until_a_lock_wait(app_ref).await;
            holder.commit().await.unwrap();
        }
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("resolved"), "{body}");
    let (state, open): (String, i64) = sqlx::query_as(
        "SELECT status, open_reviews FROM sessions WHERE store_id = $1 AND session_id = 's1'",
    )
    .bind(&store_id)
    .fetch_one(app.state.db.reader())
    .await
    .unwrap();
    assert_eq!((state.as_str(), open), ("exited", 1));
    assert_eq!(app.count("SELECT COUNT(*) FROM receipts").await, 0);
}

/// On PostgreSQL a claim waiting on one instance hears of a task another
/// instance opened: the other's commit notifies, this one's listener wakes
/// its waiting claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_claim_waiting_on_one_instance_gets_a_task_opened_on_another() {
    use recount::review::queue::{claim_waiting, ClaimRules};
    use std::time::Duration;
    let app = TestApp::start(Backend::Postgres).await;
    let (_, key) = app.store_with_catalog().await;
    let ana = app.user("ana", Role::Labeler).await;
    let other = app.second_instance().await;
    let listening = common::listening(&other).await;
    let user = other
        .tokens
        .user(&other.db, &ana, other.now())
        .await
        .unwrap()
        .unwrap();
    let before = other.db.ready.waiting();
    let (claimed, task_id) = tokio::join!(
        claim_waiting(
            &other.db,
            &user,
            || other.now(),
            ClaimRules::of(&other.config),
            false,
            Duration::from_millis(4500),
        ),
        async {
            until_waiting(&other.db.ready, before).await;
            let (s, out) = app
                .events(&key, event("late", "s1", "pick", 1, UNSURE))
                .await;
            assert_eq!(s, StatusCode::OK, "{out}");
            out["task_id"].as_str().unwrap().to_string()
        }
    );
    let claimed = claimed
        .unwrap()
        .expect("the other instance's claim got the task");
    assert_eq!(claimed.card.task_id, task_id);
    listening.abort();
}

async fn events_are_idempotent_and_conflicting_replays_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let body = event("e1", "s1", "pick", 1, UNSURE);
    let (_, first) = app.events(&key, body.clone()).await;
    let (s, second) = app.events(&key, body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first, second);

    let mut changed = body.clone();
    changed["quantity"] = json!(3);
    let (s, b) = app.events(&key, changed).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "event-conflict"));
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM review_tasks").await, 1);
    assert_eq!(app.count("SELECT open_reviews FROM sessions").await, 1);

    // Another store may use the same event id.
    let (_, other_key) = app.store("Other", None).await;
    app.catalog(&other_key).await;
    let (s, _) = app.events(&other_key, body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 2);
}
dual!(events_are_idempotent_and_conflicting_replays_are_refused);

async fn a_batch_is_stored_whole_or_not_at_all(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let (s, out) = app
        .events(
            &key,
            json!([
                event("b1", "s1", "pick", 1, UNSURE),
                event("b2", "s1", "pick", 1, UNSURE)
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out.as_array().unwrap().len(), 2);
    assert_eq!(out[1]["event_id"], "b2");

    let (s, b) = app
        .events(
            &key,
            json!([
                event("b3", "s2", "pick", 1, UNSURE),
                event("b4", "s2", "pick", 1, &[("caviar", 0.5)])
            ]),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku")
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]:"),
        "{b}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);

    // A batch may replay its own earlier events.
    let (s, out) = app
        .events(
            &key,
            json!([
                event("b1", "s1", "pick", 1, UNSURE),
                event("b5", "s1", "pick", 1, UNSURE)
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 3);
}
dual!(a_batch_is_stored_whole_or_not_at_all);

/// A batch as large as the server takes (1000 events, over 500 sessions):
/// its rows go in multi-row statements, several of each kind, and every row
/// must come out as sent.
async fn a_full_batch_lands_whole_with_every_row_as_sent(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let max = app.state.config.max_batch_events;
    assert_eq!(max, 1000, "the default batch limit");
    // One session exists before the batch, and its event is replayed in it.
    let early = event("ev-5", "s-5", "pick", 1, UNSURE);
    let (s, first) = app.events(&key, early.clone()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let sessions = 600;
    let batch: Vec<Value> = (0..max)
        .map(|i| {
            let candidates: &[(&str, f64)] = if i % 7 == 0 {
                &[]
            } else if i % 3 == 0 {
                UNSURE
            } else {
                SURE
            };
            let mut e = event(
                &format!("ev-{i}"),
                &format!("s-{}", i % sessions),
                "pick",
                1 + (i % 2) as i64,
                candidates,
            );
            if i == 5 {
                e = early.clone();
            }
            e
        })
        .collect();
    let (s, out) = app.events(&key, Value::Array(batch.clone())).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), max);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(
            o["event_id"], batch[i]["event_id"],
            "outcome {i} in request order"
        );
    }
    assert_eq!(out[5], first, "the earlier event is replayed");

    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, max as i64);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        sessions as i64
    );
    // Every task the answers name is the task of that event.
    let tasks: Vec<(&str, &str)> = out
        .iter()
        .filter_map(|o| Some((o["task_id"].as_str()?, o["event_id"].as_str()?)))
        .collect();
    assert!(tasks.len() > max / 4, "{} tasks", tasks.len());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks").await,
        tasks.len() as i64
    );
    let mut conn = app.state.db.reader().acquire().await.unwrap();
    for (task_id, event_id) in &tasks {
        let stored: String = sqlx::query_scalar(
            "SELECT e.event_id FROM review_tasks t JOIN events e ON e.id = t.event_pk WHERE t.id = $1",
        )
        .bind(*task_id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(&stored, event_id);
    }
    drop(conn);
    // Each session counts exactly the reviews its receipt waits for.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM sessions s WHERE open_reviews <> (SELECT COUNT(*) FROM \
             review_tasks t WHERE t.store_id = s.store_id AND t.session_id = s.session_id)"
        )
        .await,
        0
    );
    // Rows as sent: no top candidate stays NULL, quantities and
    // confidences are kept, confident events are settled at once.
    let without = (0..max).filter(|i| i % 7 == 0).count() as i64;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE top_confidence IS NULL AND top_sku IS NULL")
            .await,
        without
    );
    let doubles = batch.iter().filter(|e| e["quantity"] == 2).count() as i64;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE quantity = 2")
            .await,
        doubles
    );
    let settled = out.iter().filter(|o| o["route"] == "auto_accepted").count() as i64;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE status = 'resolved' AND final_sku = 'milk' \
             AND final_quantity = quantity AND top_confidence > 0.9"
        )
        .await,
        settled
    );
    assert!(settled > max as i64 / 3, "{settled} settled");
}
dual!(a_full_batch_lands_whole_with_every_row_as_sent);

/// Concurrent requests naming the same event ids: with different content
/// in different sessions (nothing but the event id makes them wait for each
/// other), one request stores its batch and every other one is refused as a
/// conflict, changing nothing; with the same content, all get the same
/// answers and the events are stored once.
async fn racing_requests_store_each_event_id_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let clients = 12;
    let ids = 10;
    let batch = |prefix: &str, session: &str| {
        Value::Array(
            (0..ids)
                .map(|i| event(&format!("{prefix}-{i}"), session, "pick", 1, UNSURE))
                .collect(),
        )
    };

    let answers = futures::future::join_all(
        (0..clients).map(|c| app.events(&key, batch("e", &format!("s-{c}")))),
    )
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (s, b) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*s, code(b)),
            (StatusCode::CONFLICT, "event-conflict"),
            "{b}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, ids as i64);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks").await,
        ids as i64
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(
        app.count("SELECT CAST(SUM(open_reviews) AS BIGINT) FROM sessions")
            .await,
        ids as i64
    );

    let answers =
        futures::future::join_all((0..clients).map(|_| app.events(&key, batch("f", "t")))).await;
    for (s, b) in &answers {
        assert_eq!(*s, StatusCode::OK, "{b}");
        assert_eq!(b, &answers[0].1, "every client gets the same answers");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events").await,
        2 * ids as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks").await,
        2 * ids as i64
    );
    assert_eq!(
        app.count("SELECT open_reviews FROM sessions WHERE session_id = 't'")
            .await,
        ids as i64
    );
}
dual!(racing_requests_store_each_event_id_once);

/// Ingest checks skus against the catalog kept in memory: an upload reaches
/// the next event at once, also for a sku the cache had learned is absent.
async fn a_catalog_upload_reaches_the_next_event_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let kefir = event("k1", "s1", "pick", 1, &[("kefir", 0.99)]);
    let (s, b) = app.events(&key, kefir.clone()).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku"),
        "{b}"
    );
    app.products(
        &key,
        json!([{"sku": "kefir", "name": "Kefir 500 ml", "price_cents": 189}]),
    )
    .await;
    let (s, b) = app.events(&key, kefir).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["route"], "auto_accepted", "{b}");
}
dual!(a_catalog_upload_reaches_the_next_event_at_once);

async fn receipts_charge_the_price_valid_when_the_event_happened(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(&app, &store_id, &admin).await;
    // Milk's price goes up at 10:00:00 (the clock's time); an event from
    // 09:59 keeps the old price, one from 10:01 pays the new one.
    app.call(
        Method::PUT,
        "/api/v1/products",
        &key,
        Some(json!([{"sku": "milk", "name": "Milk 1 l", "price_cents": 150}])),
    )
    .await;
    let mut early = event("e1", "s-early", "pick", 1, SURE);
    early["occurred_at"] = json!("2026-11-25T09:59:00Z");
    let mut late = event("e2", "s-late", "pick", 1, SURE);
    late["occurred_at"] = json!("2026-11-25T10:01:00Z");
    app.events(&key, early).await;
    app.events(&key, late).await;
    let (_, r1) = app.exit(&key, "s-early", "2026-11-25T10:02:00Z").await;
    let (_, r2) = app.exit(&key, "s-late", "2026-11-25T10:02:00Z").await;
    assert_eq!(r1["total_cents"], 129);
    assert_eq!(r2["total_cents"], 150);
    let (_, catalog) = app.call(Method::GET, "/api/v1/products", &key, None).await;
    assert_eq!(catalog.as_array().unwrap().len(), 4);
}
dual!(receipts_charge_the_price_valid_when_the_event_happened);

async fn exit_is_idempotent_and_a_different_exit_time_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    // A shopper who took nothing still gets a (zero) receipt.
    let (s, r) = app.exit(&key, "empty", "2026-11-25T10:00:00Z").await;
    assert_eq!(
        (s, r["status"].as_str(), r["total_cents"].as_i64()),
        (StatusCode::OK, Some("final"), Some(0))
    );
    let (s, again) = app.exit(&key, "empty", "2026-11-25T10:00:00Z").await;
    assert_eq!((s, &again), (StatusCode::OK, &r));
    let (s, b) = app.exit(&key, "empty", "2026-11-25T10:05:00Z").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::CONFLICT, "session-already-exited")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM receipts").await, 1);
}
dual!(exit_is_idempotent_and_a_different_exit_time_is_refused);

/// A store that posts its receipts to `url`, with the test catalog and no
/// audit samples: its id and API key.
async fn hooked_store(app: &TestApp, url: &str) -> (String, String) {
    let (store_id, key) = app.store("Hooked", Some(url)).await;
    app.catalog(&key).await;
    let admin = app.user("boss", Role::Admin).await;
    no_audit(app, &store_id, &admin).await;
    (store_id, key)
}

/// Runs the next due webhook delivery; whether there was one.
async fn run_delivery(app: &TestApp, client: &reqwest::Client) -> bool {
    recount::jobs::run_next_job(&app.state, client, recount::jobs::DELIVERY_JOBS)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_delivery_keeps_the_webhook_url_out_of_its_error() {
    let app = TestApp::start(Backend::Sqlite).await;
    // Nothing listens on port 1: the request itself fails.
    let url = "http://127.0.0.1:1/hook?token=store-secret-123";
    let (_, key) = hooked_store(&app, url).await;
    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(run_delivery(&app, &client).await);
    let jobs = recount::db::jobs::list(&app.state.db, "receipt-webhook")
        .await
        .unwrap();
    let error = jobs[0].last_error.as_deref().unwrap();
    assert!(error.starts_with("request failed"), "{error}");
    assert!(
        !error.contains("store-secret-123") && !error.contains("127.0.0.1:1"),
        "{error}"
    );
}

async fn final_receipts_reach_the_store_by_signed_webhook_with_retries(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.webhook_backoff_base_ms = 1_000;
        c.webhook_max_attempts = 3;
    })
    .await;
    let (url, receiver) = start_receiver(1).await;
    let (store_id, key) = hooked_store(&app, &url).await;
    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;

    let client = recount::jobs::webhook::client(&app.state.config);
    // First attempt: the store answers 500; the job waits for its backoff.
    assert!(run_delivery(&app, &client).await);
    assert!(!run_delivery(&app, &client).await);
    let jobs = recount::db::jobs::list(&app.state.db, "receipt-webhook")
        .await
        .unwrap();
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("queued", 1));
    // Backed off by 1 s, jittered down to no less than half of it.
    let after = jobs[0].run_at - common::T0;
    assert!((500..=1_000).contains(&after), "retry after {after} ms");
    assert!(jobs[0].last_error.as_deref().unwrap().contains("500"));

    app.clock.advance(1_000);
    assert!(run_delivery(&app, &client).await);
    let jobs = recount::db::jobs::list(&app.state.db, "receipt-webhook")
        .await
        .unwrap();
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("done", 2));

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (headers, body) = &seen[1];
    let ts: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ts, (common::T0 + 1_000) / 1000);
    let id = headers["webhook-id"].to_str().unwrap();
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["delivery_id"], id, "the body names the delivery");
    let secret: String = sqlx::query_scalar("SELECT webhook_secret FROM stores WHERE id = $1")
        .bind(&store_id)
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
    let signature = headers["webhook-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        recount::jobs::webhook::sign(&secret, id, ts, body.as_bytes())
    );
    assert!(signature.starts_with("v1,"), "{signature}");
    assert_eq!(
        headers["webhook-id"], seen[0].0["webhook-id"],
        "stable across retries"
    );
    assert_eq!(payload["type"], "receipt.finalized");
    assert_eq!(payload["store_id"], store_id.as_str());
    assert_eq!(payload["receipt"]["total_cents"], 129);
    assert_eq!(payload["receipt"]["status"], "final");
}
dual!(final_receipts_reach_the_store_by_signed_webhook_with_retries);

async fn an_unreachable_webhook_ends_dead_with_its_error_kept(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.webhook_backoff_base_ms = 10;
        c.webhook_max_attempts = 2;
    })
    .await;
    let (url, _receiver) = start_receiver(usize::MAX).await;
    let (_, key) = hooked_store(&app, &url).await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(run_delivery(&app, &client).await);
    app.clock.advance(10);
    assert!(run_delivery(&app, &client).await);
    app.clock.advance(1_000_000);
    assert!(!run_delivery(&app, &client).await);
    let jobs = recount::db::jobs::list(&app.state.db, "receipt-webhook")
        .await
        .unwrap();
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("dead", 2));
    assert!(jobs[0].last_error.as_deref().unwrap().contains("500"));
}
dual!(an_unreachable_webhook_ends_dead_with_its_error_kept);

/// One sample of a Prometheus text exposition (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// The work of one review, one receipt and one failed webhook moves each
/// metric family by exactly that much.
async fn metrics_count_claims_verdicts_receipts_and_webhook_failures(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.webhook_max_attempts = 2).await;
    let (url, _receiver) = start_receiver(usize::MAX).await;
    let (_, key) = app.store("Hooked", Some(&url)).await;
    app.catalog(&key).await;
    let ann = app.user("ann", Role::Labeler).await;
    let before = app.metrics().await;

    app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    // The shopper leaves while the event is in review; the receipt is final
    // 30 s after the exit, when ann answers.
    let (s, r) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("pending")));
    let (s, c) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    app.clock.advance(30_000);
    let task = c["task"]["task_id"].as_str().unwrap();
    let (s, v) = app
        .verdict(&ann, task, json!({"action": "pick", "sku": "milk"}))
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(run_delivery(&app, &client).await);

    let after = app.metrics().await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    for (series, expected) in [
        ("recount_events_ingested_total{route=\"review\"}", 1.0),
        ("recount_claim_duration_seconds_count", 1.0),
        ("recount_verdicts_total{outcome=\"resolved\"}", 1.0),
        ("recount_receipt_latency_seconds_count", 1.0),
        ("recount_receipt_latency_seconds_sum", 30.0),
        ("recount_receipt_latency_seconds_bucket{le=\"15\"}", 0.0),
        ("recount_receipt_latency_seconds_bucket{le=\"30\"}", 1.0),
        ("recount_webhook_failures_total{outcome=\"retry\"}", 1.0),
        (
            "recount_job_attempts_total{kind=\"receipt-webhook\",result=\"failed\"}",
            1.0,
        ),
    ] {
        assert!(
            (delta(series) - expected).abs() < 1e-9,
            "{series}: moved by {}, not {expected}\n{after}",
            delta(series)
        );
    }
    assert!(
        after.contains("recount_review_tasks{status=\"ready\"} 0"),
        "{after}"
    );
}
dual!(metrics_count_claims_verdicts_receipts_and_webhook_failures);

async fn roles_are_enforced_on_every_route(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sup = app.user("sue", Role::Supervisor).await;
    app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;

    // A store key cannot claim tasks or read escalations.
    let (s, b) = app.claim(&key).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "user-token-required")
    );
    let (s, b) = app
        .call(Method::GET, "/api/v1/escalations", &key, None)
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "user-token-required")
    );
    // People cannot send events.
    let (s, b) = app.events(&ann, event("e2", "s1", "pick", 1, UNSURE)).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "store-key-required"));
    // A labeler cannot read receipts, escalations, task details or policies.
    let (s, b) = app.receipt(&ann, "s1").await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    for path in [
        "/api/v1/escalations".to_string(),
        format!("/api/v1/stores/{store_id}/policy"),
    ] {
        let (s, b) = app.call(Method::GET, &path, &ann, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::FORBIDDEN, "role-forbidden"),
            "{path}"
        );
    }
    // A supervisor reads receipts by naming the store, but cannot change policy.
    let (s, r) = app
        .call(
            Method::GET,
            &format!("/api/v1/sessions/s1/receipt?store_id={store_id}"),
            &sup,
            None,
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("pending")));
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &sup,
            Some(json!({"threshold": 0.5})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    // No credentials, or wrong ones.
    let (s, b) = app
        .call_anon(Method::POST, "/api/v1/tasks/claim", None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, b) = app.claim("rcu_not-a-real-token").await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, b) = app
        .call_anon(
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"username": "ann", "password": "nope"})),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "invalid-credentials")
    );
    // An expired token stops working.
    app.clock.advance(app.state.config.token_ttl_ms);
    let (s, b) = app.claim(&ann).await;
    assert_eq!((s, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}
dual!(roles_are_enforced_on_every_route);

async fn health_metrics_and_openapi_are_served(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let (s, h) = app.call_anon(Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["database"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );

    let text = app.metrics().await;
    assert!(
        text.contains("recount_review_tasks{status=\"ready\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("recount_events_ingested_total{route=\"review\"}"),
        "{text}"
    );

    let (s, doc) = app.call_anon(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/products",
        "/api/v1/events",
        "/api/v1/sessions/{session_id}/exit",
        "/api/v1/sessions/{session_id}/receipt",
        "/api/v1/auth/token",
        "/api/v1/tasks/claim",
        "/api/v1/tasks/{task_id}/heartbeat",
        "/api/v1/tasks/{task_id}/release",
        "/api/v1/tasks/{task_id}/verdict",
        "/api/v1/tasks/{task_id}/resolve",
        "/api/v1/escalations",
        "/api/v1/stores/{store_id}/policy",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"]["EventInput"]["properties"]["candidates"].is_object());
}
dual!(health_metrics_and_openapi_are_served);

async fn queue_tables_are_vacuumed_on_postgres(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..5 {
        app.events(&key, event(&format!("e{i}"), "s1", "pick", 1, UNSURE))
            .await;
        let (_, c) = app.claim(&ann).await;
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        app.verdict(&ann, &task, json!({"action": "none"})).await;
    }
    recount::jobs::vacuum_queue(&app.state).await.unwrap();
    if backend == Backend::Postgres {
        let vacuums: i64 = sqlx::query_scalar(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'review_tasks'",
        )
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
        assert_eq!(vacuums, 1);
        // The growing tables get statistics, so ingest's plans follow them.
        let analyzed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_user_tables \
             WHERE relname IN ('events', 'sessions') AND analyze_count = 1",
        )
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
        assert_eq!(analyzed, 2);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'resolved'")
            .await,
        5
    );
}
dual!(queue_tables_are_vacuumed_on_postgres);

/// A rotated webhook secret keeps signing beside the new one until its
/// overlap ends: deliveries meanwhile verify under either secret, later
/// ones only under the new. Only admins rotate, and only known stores.
async fn a_rotated_webhook_secret_signs_beside_the_new_one_until_its_overlap_ends(
    backend: Backend,
) {
    let app = TestApp::start_with(backend, |c| c.webhook_secret_overlap_ms = 60_000).await;
    let (url, receiver) = start_receiver(0).await;
    let (store_id, key) = hooked_store(&app, &url).await;
    let admin = app.user("boss", Role::Admin).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let secret_of = || async {
        sqlx::query_scalar::<_, String>("SELECT webhook_secret FROM stores WHERE id = $1")
            .bind(&store_id)
            .fetch_one(app.state.db.reader())
            .await
            .unwrap()
    };
    let old = secret_of().await;
    let rotate = format!("/api/v1/stores/{store_id}/webhook-secret/rotate");

    let (s, b) = app.call(Method::POST, &rotate, &sue, None).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/stores/no-such-store/webhook-secret/rotate",
            &admin,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
    assert_eq!(secret_of().await, old, "a refused rotation changes nothing");

    let (s, rotated) = app.call(Method::POST, &rotate, &admin, None).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["webhook_secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert_eq!(new, secret_of().await);
    assert_eq!(
        rotated["previous_valid_until"],
        recount::domain::time::format_rfc3339_ms(common::T0 + 60_000)
    );

    let client = recount::jobs::webhook::client(&app.state.config);
    let deliver = |session: &'static str| {
        let (app, key, client) = (&app, &key, &client);
        async move {
            app.events(
                key,
                event(&format!("e-{session}"), session, "pick", 1, SURE),
            )
            .await;
            app.exit(key, session, "2026-11-25T10:00:00Z").await;
            assert!(run_delivery(app, client).await);
        }
    };
    let verifies = |n: usize, secret: &str| {
        let (headers, body) = receiver.seen.lock().unwrap()[n].clone();
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        recount::jobs::webhook::verify(
            secret,
            &header("webhook-id"),
            header("webhook-timestamp").parse().unwrap(),
            &header("webhook-signature"),
            body.as_bytes(),
        )
    };

    // During the overlap: signed with both.
    deliver("s1").await;
    assert!(verifies(0, &new) && verifies(0, &old));
    // After it: only the new secret.
    app.clock.advance(60_000);
    deliver("s2").await;
    assert!(verifies(1, &new));
    assert!(!verifies(1, &old), "the replaced secret signs no more");
}
dual!(a_rotated_webhook_secret_signs_beside_the_new_one_until_its_overlap_ends);

#[test]
fn the_cli_rotates_a_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("RECOUNT_DATABASE_URL")
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = cli(&["store", "add", "Corner shop"]);
    assert!(ok, "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let store_id = added["store_id"].as_str().unwrap();
    let (ok, out, err) = cli(&["store", "rotate-webhook-secret", store_id]);
    assert!(ok, "{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    let secret = rotated["webhook_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{rotated}");
    assert_ne!(Some(secret), added["webhook_secret"].as_str());
    assert!(rotated["previous_valid_until"].is_string());
    let (ok, _, err) = cli(&["store", "rotate-webhook-secret", "nope"]);
    assert!(!ok);
    assert!(err.contains("no store \"nope\""), "{err}");
}

/// Writes sent together ([`recount::db::batch`]): each statement's own
/// parameters, quoted text left as written, the rows each changed in
/// order, a count that is not as expected failing the request with nothing
/// written, and a statement that makes tasks ready telling waiting claims
/// at the commit.
async fn a_batch_of_writes_runs_as_one_with_each_statements_count(backend: Backend) {
    use recount::db::batch::{Batch, Stmt};
    let handle = common::TestDb::new(backend).await;
    let db = handle.connect().await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("CREATE TABLE probe (id TEXT PRIMARY KEY, n BIGINT, note TEXT)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let insert = |id: &str, n: i64| {
        Stmt::new("INSERT INTO probe (id, n, note) VALUES ($1, $2, 'costs $1')")
            .bind(id)
            .bind(n)
    };
    let mut waiting = db.ready.watch();
    waiting.borrow_and_update();
    let mut tx = db.begin().await.unwrap();
    let mut writes = Batch::default();
    writes.push(insert("a", 1));
    writes.push(insert("b", 2));
    writes.push(
        Stmt::new("UPDATE probe SET n = n + $1 WHERE id = $2")
            .bind(10)
            .bind("missing"),
    );
    writes.push(
        Stmt::new("UPDATE probe SET n = $1 WHERE n < $2 AND id <> $3")
            .bind(7)
            .bind(100)
            .bind("zzz")
            .makes_ready(),
    );
    let last = match backend {
        Backend::Postgres => 0,
        Backend::Sqlite => 2,
    };
    assert_eq!(writes.run(&mut tx).await.unwrap(), vec![1, 1, 0, last]);
    tx.commit().await.unwrap();
    // On PostgreSQL every part saw the table before the statement (empty):
    // the last update found nothing. SQLite ran them in order.
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT id, n, note FROM probe ORDER BY id")
            .fetch_all(db.reader())
            .await
            .unwrap();
    let expected_n = match backend {
        Backend::Postgres => (1, 2),
        Backend::Sqlite => (7, 7),
    };
    assert_eq!(
        rows,
        vec![
            ("a".to_string(), expected_n.0, "costs $1".to_string()),
            ("b".to_string(), expected_n.1, "costs $1".to_string()),
        ]
    );
    let moved = waiting.has_changed().unwrap();
    assert_eq!(
        moved,
        backend == Backend::Sqlite,
        "ready only if it changed a row"
    );

    // A statement changing fewer rows than it must fails the batch; the
    // transaction is dropped and nothing of it stays.
    let mut tx = db.begin().await.unwrap();
    let mut writes = Batch::default();
    writes.push(insert("c", 3));
    writes.push(
        Stmt::new("UPDATE probe SET n = 0 WHERE id = $1")
            .bind("nobody")
            .expect_rows(1, "probe nobody must exist"),
    );
    let err = writes.run(&mut tx).await.unwrap_err();
    assert!(err.to_string().contains("probe nobody must exist"), "{err}");
    drop(tx);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM probe")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(stored, 2);

    // A repeated key fails the whole batch the same way.
    let mut tx = db.begin().await.unwrap();
    let mut writes = Batch::default();
    writes.push(insert("d", 4));
    writes.push(insert("a", 5));
    assert!(writes.run(&mut tx).await.is_err());
    drop(tx);
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM probe ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert_eq!(ids, vec!["a", "b"]);
}
dual!(a_batch_of_writes_runs_as_one_with_each_statements_count);

/// A batch run alone on PostgreSQL commits when the server has already
/// sent its row of counts; an error at that commit (here a deferred
/// foreign key; in production a full notification queue) must still reach
/// the caller, and nothing of it stays. sqlx's `Any` driver answers
/// `fetch_one` at the first row and would report the write done. In a
/// transaction the same error comes with `COMMIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_error_at_a_lone_batchs_commit_fails_it() {
    use recount::db::batch::{Batch, Stmt};
    let handle = common::TestDb::new(Backend::Postgres).await;
    let db = handle.connect().await;
    for table in [
        "CREATE TABLE parent (id TEXT PRIMARY KEY)",
        "CREATE TABLE child (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL \
         REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
    ] {
        sqlx::query(table).execute(db.writer()).await.unwrap();
    }
    let orphan = || {
        let mut writes = Batch::default();
        writes.push(Stmt::new("INSERT INTO parent (id) VALUES ($1)").bind("p1"));
        writes.push(
            Stmt::new("INSERT INTO child (id, parent_id) VALUES ($1, $2)")
                .bind("c1")
                .bind("nobody")
                .expect_rows(1, "one child"),
        );
        writes
    };

    let mut conn = db.writer().acquire().await.unwrap();
    let err = orphan().run_alone(&db, &mut conn).await.unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
    drop(conn);

    let mut tx = db.begin().await.unwrap();
    assert_eq!(orphan().run(&mut tx).await.unwrap(), vec![1, 1]);
    let err = tx.commit().await.unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");

    let stored: i64 =
        sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM parent) + (SELECT COUNT(*) FROM child)")
            .fetch_one(db.reader())
            .await
            .unwrap();
    assert_eq!(stored, 0);
}
