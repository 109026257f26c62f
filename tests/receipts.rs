//! Receipts after finalization, each test on SQLite and on PostgreSQL:
//! audit samples off the receipt's path, receipt versions and adjustments
//! (audits, supervisor corrections, disputes), the signed
//! `receipt.adjusted` webhook exactly once across a crash, and blind tasks.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, start_receiver, Backend, Receiver, TestApp};
use recount::auth::Role;

/// Confident: auto-accepted unless drawn for audit.
const SURE: &[(&str, f64)] = &[("milk", 0.98), ("cola", 0.01)];
/// Under the default threshold: one labeler's verdict settles it.
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

async fn set_policy(app: &TestApp, store_id: &str, admin: &str, patch: Value) {
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            admin,
            Some(patch),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// A store with the test catalog whose webhooks a receiver records.
async fn hooked_store(app: &TestApp) -> (String, String, Receiver) {
    let (url, receiver) = start_receiver(0).await;
    let (store_id, key) = app.store("Hooked", Some(&url)).await;
    app.catalog(&key).await;
    (store_id, key, receiver)
}

/// Makes every confident event of the store an audit sample needing
/// `verdicts` agreeing answers; returns a labeler's token.
async fn audit_everything(app: &TestApp, store_id: &str, verdicts: i64) -> String {
    let admin = app.user("boss", Role::Admin).await;
    set_policy(
        app,
        store_id,
        &admin,
        json!({"audit_rate": 1.0, "audit_verdicts": verdicts}),
    )
    .await;
    app.user("ann", Role::Labeler).await
}

/// Runs every due webhook delivery; how many ran.
async fn deliver(app: &TestApp) -> usize {
    let client = recount::jobs::webhook::client(&app.state.config);
    let mut ran = 0;
    while recount::jobs::run_next_job(&app.state, &client, recount::jobs::DELIVERY_JOBS)
        .await
        .unwrap()
    {
        ran += 1;
    }
    ran
}

/// The deliveries a receiver got, parsed, each checked against its
/// signature and its `webhook-id` header.
async fn deliveries(app: &TestApp, store_id: &str, receiver: &Receiver) -> Vec<Value> {
    let secret: String = sqlx::query_scalar("SELECT webhook_secret FROM stores WHERE id = $1")
        .bind(store_id)
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
    let seen = receiver.seen.lock().unwrap().clone();
    seen.iter()
        .map(|(headers, body)| {
            let ts: i64 = headers["webhook-timestamp"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let id = headers["webhook-id"].to_str().unwrap();
            assert!(
                recount::jobs::webhook::verify(
                    &secret,
                    id,
                    ts,
                    headers["webhook-signature"].to_str().unwrap(),
                    body.as_bytes()
                ),
                "signed"
            );
            let payload: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                payload["delivery_id"].as_str().unwrap(),
                headers["webhook-id"].to_str().unwrap()
            );
            payload
        })
        .collect()
}

fn lines(receipt: &Value) -> Vec<(String, i64)> {
    receipt["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_string(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The lone-labeler audit of the issue: every confident event is an audit
/// sample needing two verdicts, one labeler works the store. The receipt is
/// final at exit with the model's answer; the audit is recorded; when it
/// disagrees the receipt gets version 2 and a signed `receipt.adjusted`.
async fn an_audit_never_holds_its_receipt_and_one_that_disagrees_adjusts_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, receiver) = hooked_store(&app).await;
    let ann = audit_everything(&app, &store_id, 2).await;

    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    assert_eq!(out["route"], "auto_accepted", "{out}");
    assert_eq!(out["reason"], "audit-sample");
    let task = out["task_id"].as_str().unwrap().to_string();

    // The shopper leaves: the receipt is final at once, as without the draw.
    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(receipt["status"], "final", "{receipt}");
    assert_eq!(receipt["version"], 1);
    assert_eq!(lines(&receipt), [("milk".to_string(), 1)]);
    assert_eq!(receipt["adjustments"], json!([]));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE resolved_at IS NOT NULL")
            .await,
        0,
        "the audit's label is not counted before the audit ends"
    );

    // Ann sees the task blind and says the shopper took a cola.
    let (s, claim) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let t = &claim["task"];
    assert_eq!(t["task_id"], task.as_str());
    assert_eq!(t["blind"], true);
    for field in ["kind", "quantity", "reason", "model_version"] {
        assert!(t[field].is_null(), "{field} withheld: {t}");
    }
    assert!(t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["confidence"].is_null()));
    let names: Vec<&str> = t["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Cola 330 ml", "Milk 1 l"], "a neutral order");
    // The cart does not give the model's answer away either.
    let (_, ctx) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{task}/context"),
            &ann,
            None,
        )
        .await;
    assert_eq!(ctx["cart"], json!([]), "{ctx}");
    // Its quantity was never shown, so it is never assumed.
    let (s, b) = app
        .verdict(&ann, &task, json!({"action": "pick", "sku": "cola"}))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing-quantity")
    );
    let (s, v) = app
        .verdict(
            &ann,
            &task,
            json!({"action": "pick", "sku": "cola", "quantity": 1}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));

    // Nobody else may give the second verdict: supervisors get it (not for
    // its deadline: an audit holds nothing).
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        1
    );
    let sue = app.user("sue", Role::Supervisor).await;
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/resolve"),
            &sue,
            Some(json!({"action": "pick", "sku": "cola", "quantity": 1})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{b}"
    );

    // Version 2 with the corrected line and the difference.
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(receipt["version"], 2, "{receipt}");
    assert_eq!(lines(&receipt), [("cola".to_string(), 1)]);
    assert_eq!(receipt["total_cents"], 149);
    let adj = &receipt["adjustments"][0];
    assert_eq!(adj["version"], 2);
    assert_eq!(adj["cause"], "audit");
    assert_eq!(adj["total_cents_delta"], 20);
    assert_eq!(
        adj["changes"],
        json!([
            {"sku": "cola", "name": "Cola 330 ml", "quantity_before": 0, "quantity_after": 1, "total_cents_delta": 149},
            {"sku": "milk", "name": "Milk 1 l", "quantity_before": 1, "quantity_after": 0, "total_cents_delta": -129},
        ])
    );
    // The audit is recorded for the error estimate: the human label, counted now.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE final_sku = 'cola' AND resolved_at IS NOT NULL"
        )
        .await,
        1
    );

    // Both versions go out, each once, signed, with type, version and id.
    assert_eq!(deliver(&app).await, 2);
    let sent = deliveries(&app, &store_id, &receiver).await;
    let kinds: Vec<(&str, i64)> = sent
        .iter()
        .map(|p| (p["type"].as_str().unwrap(), p["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("receipt.finalized", 1), ("receipt.adjusted", 2)]);
    assert_eq!(
        sent[0]["receipt"]["total_cents"], 129,
        "version 1 as it was"
    );
    assert_eq!(sent[1]["receipt"]["total_cents"], 149);
    assert_eq!(sent[1]["adjustment"]["cause"], "audit");
    assert_ne!(sent[0]["delivery_id"], sent[1]["delivery_id"]);
}
dual!(an_audit_never_holds_its_receipt_and_one_that_disagrees_adjusts_it);

async fn an_audit_that_agrees_leaves_the_receipt_at_version_1(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = audit_everything(&app, &store_id, 1).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(
        (receipt["status"].as_str(), receipt["version"].as_i64()),
        (Some("final"), Some(1))
    );
    app.claim(&ann).await;
    let (s, v) = app
        .verdict(
            &ann,
            &task,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(receipt["version"], 1);
    assert_eq!(receipt["total_cents"], 129);
    assert_eq!(app.count("SELECT COUNT(*) FROM receipt_versions").await, 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM events WHERE resolution = 'human' AND resolved_at IS NOT NULL"
        )
        .await,
        1,
        "the agreeing audit is recorded"
    );
}
dual!(an_audit_that_agrees_leaves_the_receipt_at_version_1);

/// A reviewed event settles a final receipt; a supervisor corrects it.
async fn a_correction_after_finalization_adjusts_the_receipt(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 2, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();

    // Not resolved yet: nothing to correct.
    let correct = |body: Value| {
        let (app, task, sue) = (&app, task.clone(), sue.clone());
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/tasks/{task}/correction"),
                &sue,
                Some(body),
            )
            .await
        }
    };
    let (s, b) = correct(json!({"action": "pick", "sku": "milk", "quantity": 1})).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "not-correctable"));

    app.claim(&ann).await;
    app.verdict(&ann, &task, json!({"action": "pick", "sku": "milk"}))
        .await;
    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(
        (receipt["version"].as_i64(), receipt["total_cents"].as_i64()),
        (Some(1), Some(258))
    );

    // Labelers may not correct; "can't tell" is no correction.
    let (s, b) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/correction"),
            &ann,
            Some(json!({"action": "none"})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = correct(json!({"cant_tell": true})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "cant-tell-not-allowed")
    );
    let (s, b) = correct(json!({"action": "pick", "sku": "nope", "quantity": 1})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM receipt_versions").await,
        1,
        "refusals change nothing"
    );

    let (s, b) = correct(
        json!({"action": "pick", "sku": "milk", "quantity": 1, "note": "one was put back"}),
    )
    .await;
    assert_eq!(
        (s, b["receipt_version"].as_i64()),
        (StatusCode::OK, Some(2)),
        "{b}"
    );
    // The same correction again changes nothing.
    let (s, b) = correct(json!({"action": "pick", "sku": "milk", "quantity": 1})).await;
    assert_eq!(
        (s, b["receipt_version"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let (_, receipt) = app.receipt(&key, "s1").await;
    assert_eq!(receipt["version"], 2);
    assert_eq!(receipt["total_cents"], 129);
    assert_eq!(receipt["adjustments"][0]["cause"], "correction");
    assert_eq!(receipt["adjustments"][0]["total_cents_delta"], -129);
    assert_eq!(receipt["adjustments"].as_array().unwrap().len(), 1);
}
dual!(a_correction_after_finalization_adjusts_the_receipt);

/// Two ordinary tasks and a final receipt of two milks: a dispute of the
/// milk line is claimed before the ordinary work, blind.
async fn disputes_end_as_an_adjustment_or_a_confirmation(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, receiver) = hooked_store(&app).await;
    let admin = app.user("boss", Role::Admin).await;
    set_policy(&app, &store_id, &admin, json!({"audit_verdicts": 1})).await;
    let ann = app.user("ann", Role::Labeler).await;

    for (e, s) in [("a1", "s1"), ("a2", "s1"), ("b1", "s2")] {
        app.events(&key, event(e, s, "pick", 1, SURE)).await;
    }
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    app.exit(&key, "s2", "2026-11-25T10:00:00Z").await;
    // Ordinary work already waiting, with an earlier deadline.
    app.events(&key, event("c1", "s3", "pick", 1, UNSURE)).await;

    let open = |session: &'static str, body: Value| {
        let (app, key) = (&app, key.clone());
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/sessions/{session}/disputes"),
                &key,
                Some(body),
            )
            .await
        }
    };
    let (s, d1) = open("s1", json!({"sku": "milk", "reason": "I took one"})).await;
    assert_eq!(s, StatusCode::CREATED, "{d1}");
    let (s, d2) = open("s2", json!({"sku": "milk"})).await;
    assert_eq!(s, StatusCode::CREATED, "{d2}");

    // Disputes come first, blind, with every clip and candidate behind the line.
    let (_, first) = app.claim(&ann).await;
    assert_eq!(first["task"]["task_id"], d1["task_id"], "{first}");
    assert_eq!(first["task"]["blind"], true);
    assert!(first["task"]["quantity"].is_null());
    let (_, ctx) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{}/context", d1["task_id"].as_str().unwrap()),
            &ann,
            None,
        )
        .await;
    assert_eq!(
        ctx["cart"],
        json!([]),
        "the contested line is not shown: {ctx}"
    );

    // The shopper was right: one milk, not two.
    let t1 = d1["task_id"].as_str().unwrap();
    let (s, v) = app
        .verdict(
            &ann,
            t1,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{v}"
    );
    let (_, second) = app.claim(&ann).await;
    let t2 = second["task"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(t2, d2["task_id"].as_str().unwrap());
    // The receipt charged what the video shows: confirmed.
    app.verdict(
        &ann,
        &t2,
        json!({"action": "pick", "sku": "milk", "quantity": 1}),
    )
    .await;

    let get = |id: &Value| {
        let (app, key, id) = (&app, key.clone(), id.as_str().unwrap().to_string());
        async move {
            app.call(Method::GET, &format!("/api/v1/disputes/{id}"), &key, None)
                .await
        }
    };
    let (s, upheld) = get(&d1["dispute_id"]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upheld["status"], "upheld", "{upheld}");
    assert_eq!(upheld["receipt_version"], 2);
    assert_eq!(upheld["quantity"], 2);
    assert_eq!(upheld["reason"], "I took one");
    let (_, confirmed) = get(&d2["dispute_id"]).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    assert!(confirmed["receipt_version"].is_null());

    let (_, r1) = app.receipt(&key, "s1").await;
    assert_eq!(
        (r1["version"].as_i64(), r1["total_cents"].as_i64()),
        (Some(2), Some(129))
    );
    assert_eq!(r1["adjustments"][0]["cause"], "dispute");
    assert_eq!(r1["adjustments"][0]["dispute_id"], d1["dispute_id"]);
    let (_, r2) = app.receipt(&key, "s2").await;
    assert_eq!(r2["version"], 1);

    // The ordinary task was left for after the disputes.
    let (_, third) = app.claim(&ann).await;
    assert_eq!(third["task"]["blind"], false);
    assert_eq!(third["task"]["reason"], "low-confidence");

    // The dashboard counts both; the upheld one is an error that escaped.
    let sue = app.user("sue", Role::Supervisor).await;
    let (_, dash) = app.call(Method::GET, "/api/v1/dashboard", &sue, None).await;
    let d = &dash["disputes"];
    assert_eq!(
        (
            d["opened"].as_i64(),
            d["upheld"].as_i64(),
            d["confirmed"].as_i64(),
            d["open"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(0)),
        "{d}"
    );
    assert_eq!(d["rate"]["total"], 2, "two receipts finalized");

    // Webhooks: two finalizations, one adjustment.
    assert_eq!(deliver(&app).await, 3);
    let sent = deliveries(&app, &store_id, &receiver).await;
    let adjusted: Vec<&Value> = sent
        .iter()
        .filter(|p| p["type"] == "receipt.adjusted")
        .collect();
    assert_eq!(adjusted.len(), 1);
    assert_eq!(adjusted[0]["receipt"]["session_id"], "s1");
    assert_eq!(adjusted[0]["adjustment"]["dispute_id"], d1["dispute_id"]);
}
dual!(disputes_end_as_an_adjustment_or_a_confirmation);

async fn bad_disputes_get_coded_answers_and_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let (_, other_key) = app.store("Other", None).await;
    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    app.events(&key, event("e2", "open", "pick", 1, SURE)).await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    let post = |session: &'static str, body: &'static str, key: String| {
        let app = &app;
        async move {
            app.call_raw(
                Method::POST,
                &format!("/api/v1/sessions/{session}/disputes"),
                &key,
                "application/json",
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let long = format!(r#"{{"sku":"milk","reason":"{}"}}"#, "x".repeat(2001));
    let long: &'static str = Box::leak(long.into_boxed_str());
    for (session, body, status, want) in [
        (
            "nobody",
            r#"{"sku":"milk"}"#,
            StatusCode::NOT_FOUND,
            "unknown-session",
        ),
        (
            "open",
            r#"{"sku":"milk"}"#,
            StatusCode::CONFLICT,
            "receipt-not-final",
        ),
        (
            "s1",
            r#"{"sku":"bread"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku-not-on-receipt",
        ),
        (
            "s1",
            r#"{"sku":"ghost"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku-not-on-receipt",
        ),
        (
            "s1",
            long,
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason-too-long",
        ),
        (
            "s1",
            r#"{"sku":"milk""#,
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            "s1",
            r#"{"sku":""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-id",
        ),
        (
            "s1",
            r#"{"sku":"milk","extra":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
    ] {
        let (s, b) = post(session, body, key.clone()).await;
        assert_eq!((s, code(&b)), (status, want), "{session} {body}: {b}");
    }
    // Another store's session does not exist for this key.
    let (s, b) = post("s1", r#"{"sku":"milk"}"#, other_key.clone()).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-session"));
    assert_eq!(app.count("SELECT COUNT(*) FROM disputes").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions").await,
        2,
        "no session made"
    );

    let (s, d) = post("s1", r#"{"sku":"milk"}"#, key.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (s, b) = post("s1", r#"{"sku":"milk"}"#, key.clone()).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "dispute-open"));
    assert_eq!(app.count("SELECT COUNT(*) FROM disputes").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM review_tasks").await, 1);

    let id = d["dispute_id"].as_str().unwrap();
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/disputes/{id}"),
            &other_key,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-dispute"));
    let (s, b) = app
        .call(Method::GET, "/api/v1/disputes/nope", &key, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-dispute"));
}
dual!(bad_disputes_get_coded_answers_and_change_nothing);

/// An instance commits an adjustment, takes its delivery and dies before
/// sending it; another takes it over after one job lease and sends it once.
async fn a_crash_between_adjustment_and_webhook_loses_and_doubles_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, receiver) = hooked_store(&app).await;
    let ann = app.user("ann", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    app.claim(&ann).await;
    app.verdict(&ann, &task, json!({"action": "pick", "sku": "milk"}))
        .await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(deliver(&app).await, 1, "version 1 goes out");
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task}/correction"),
            &sue,
            Some(json!({"action": "pick", "sku": "cola", "quantity": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // The adjustment and its delivery were committed together.
    let lease = app.state.config.job_lease_ms;
    let kinds = recount::jobs::DELIVERY_JOBS;
    let taken = recount::jobs::take_due(&app.state.db, kinds, app.state.now(), lease)
        .await
        .unwrap()
        .expect("the adjustment's delivery is queued");
    // …and the instance that took it dies. After one lease, another sends it.
    app.clock.advance(lease);
    assert_eq!(deliver(&app).await, 1);
    assert_eq!(deliver(&app).await, 0, "nothing left, nothing twice");
    let sent = deliveries(&app, &store_id, &receiver).await;
    let kinds: Vec<(&str, i64)> = sent
        .iter()
        .map(|p| (p["type"].as_str().unwrap(), p["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("receipt.finalized", 1), ("receipt.adjusted", 2)]);
    assert_eq!(
        sent[1]["delivery_id"],
        taken.id.as_str(),
        "the same delivery id"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM receipt_versions").await, 2);
}
dual!(a_crash_between_adjustment_and_webhook_loses_and_doubles_nothing);

/// A store that turns blind review on sees every task blind; back off, its
/// reviews show the model's answer again.
async fn a_store_can_make_every_task_blind(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    let ann = app.user("ann", Role::Labeler).await;
    let blind = |on: bool, token: String| {
        let (app, store_id) = (&app, store_id.clone());
        async move {
            app.call(
                Method::PUT,
                &format!("/api/v1/stores/{store_id}/blind-review"),
                &token,
                Some(json!({ "blind": on })),
            )
            .await
        }
    };
    let (s, b) = blind(true, ann.clone()).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, b) = blind(true, admin.clone()).await;
    assert_eq!((s, b["blind"].as_bool()), (StatusCode::OK, Some(true)));
    app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    app.events(&key, event("e2", "s2", "pick", 1, UNSURE)).await;
    let (_, c1) = app.claim(&ann).await;
    assert_eq!(c1["task"]["blind"], true);
    assert!(c1["task"]["reason"].is_null());
    blind(false, admin.clone()).await;
    let (_, c2) = app.claim(&ann).await;
    assert_eq!(c2["task"]["blind"], false);
    assert_eq!(c2["task"]["candidates"][0]["confidence"], 0.55);
    assert_eq!(c2["task"]["quantity"], 1);
    // Supervisors always see what the model said.
    let sue = app.user("sue", Role::Supervisor).await;
    let id = c1["task"]["task_id"].as_str().unwrap();
    let (_, detail) = app
        .call(Method::GET, &format!("/api/v1/tasks/{id}"), &sue, None)
        .await;
    assert_eq!(detail["task"]["reason"], "low-confidence", "{detail}");
    assert_eq!(detail["purpose"], "review");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/stores/nope/blind-review",
            &admin,
            Some(json!({"blind": true})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
}
dual!(a_store_can_make_every_task_blind);

/// An audit is handed out only while someone else at work is free for
/// receipt work arriving meanwhile, so audits are not started and given
/// back over and over on a busy crew.
async fn an_audit_is_not_taken_while_everyone_else_is_busy(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = audit_everything(&app, &store_id, 1).await;
    let bob = app.user("bob", Role::Labeler).await;
    let (_, review) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let (_, audit) = app.events(&key, event("e2", "s2", "pick", 1, SURE)).await;
    assert_eq!(audit["reason"], "audit-sample");

    // Ann takes the receipt work; with Ann busy, Bob is the free one left.
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], review["task_id"]);
    let (s, _) = app.claim(&bob).await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "the audit waits while Ann is busy"
    );
    // Ann answers: she is free again, so Bob may take the audit.
    let t = review["task_id"].as_str().unwrap();
    app.verdict(&ann, t, json!({"action": "pick", "sku": "milk"}))
        .await;
    let (s, c) = app.claim(&bob).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["task"]["task_id"], audit["task_id"]);
}
dual!(an_audit_is_not_taken_while_everyone_else_is_busy);

/// An audit gives way to receipt work: the heartbeat of a labeler on an
/// audit takes it back (`lease-yielded`) as soon as a task a receipt waits
/// for is ready for that labeler, and the audit returns to the queue
/// without counting as held, so the same labeler finishes it later.
async fn an_audit_gives_way_to_receipt_work_and_comes_back(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = audit_everything(&app, &store_id, 1).await;
    let config = &app.state.config;
    let renew_ms = (config.lease_ttl_ms / 3).max(1_000);
    let beat = |task: String| {
        let ann = ann.clone();
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/tasks/{task}/heartbeat"),
                &ann,
                None,
            )
            .await
        }
    };

    // Receipt work Ann gave back is not hers to take again.
    let (_, r1) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let r1 = r1["task_id"].as_str().unwrap().to_string();
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], r1.as_str());
    assert_eq!(c["heartbeat_ms"], renew_ms, "a review renews at a third");
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{r1}/release"),
            &ann,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (_, a) = app.events(&key, event("e2", "s2", "pick", 1, SURE)).await;
    assert_eq!(a["reason"], "audit-sample");
    let audit = a["task_id"].as_str().unwrap().to_string();
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], audit.as_str());
    assert_eq!(c["heartbeat_ms"], config.audit_yield_check_ms);
    let (s, b) = beat(audit.clone()).await;
    assert_eq!(s, StatusCode::OK, "nothing Ann may take waits: {b}");
    assert_eq!(b["heartbeat_ms"], config.audit_yield_check_ms);

    // Receipt work for Ann arrives: the next heartbeat hands the audit back.
    let (_, r3) = app.events(&key, event("e3", "s3", "pick", 1, UNSURE)).await;
    let r3 = r3["task_id"].as_str().unwrap().to_string();
    let (s, b) = beat(audit.clone()).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "lease-yielded"));
    let (status, end): (String, String) = sqlx::query_as(
        "SELECT t.status, l.end_reason FROM review_tasks t \
         JOIN task_leases l ON l.task_id = t.id WHERE t.id = $1",
    )
    .bind(&audit)
    .fetch_one(app.state.db.reader())
    .await
    .unwrap();
    assert_eq!((status.as_str(), end.as_str()), ("ready", "yielded"));
    let (s, b) = app
        .verdict(
            &ann,
            &audit,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "lease-yielded"));
    // The deadline guarantee still counts Ann for the audit; the review
    // she gave back is the one nobody active may take.
    recount::jobs::escalate_at_risk(&app.state).await.unwrap();
    let escalated: Vec<String> =
        sqlx::query_scalar("SELECT id FROM review_tasks WHERE status = 'escalated'")
            .fetch_all(app.state.db.reader())
            .await
            .unwrap();
    assert_eq!(escalated, [r1.as_str()]);

    // Ann takes the receipt work; a review's heartbeat never yields.
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], r3.as_str());
    let (_, r4) = app.events(&key, event("e4", "s4", "pick", 1, UNSURE)).await;
    let r4 = r4["task_id"].as_str().unwrap().to_string();
    let (s, _) = beat(r3.clone()).await;
    assert_eq!(s, StatusCode::OK);
    app.verdict(&ann, &r3, json!({"action": "pick", "sku": "milk"}))
        .await;
    // A console prefetches: the audit claimed after receipt work in hand
    // waits behind it on screen and does not give way to it.
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], r4.as_str());
    app.clock.advance(1);
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], audit.as_str(), "the audit comes back");
    let (s, _) = beat(audit.clone()).await;
    assert_eq!(s, StatusCode::OK, "the receipt work was claimed first");
    app.verdict(&ann, &r4, json!({"action": "pick", "sku": "milk"}))
        .await;
    // Receipt work claimed after the audit (prefetched behind it) would
    // wait for it: the audit gives way.
    let (_, r5) = app.events(&key, event("e5", "s5", "pick", 1, UNSURE)).await;
    let r5 = r5["task_id"].as_str().unwrap().to_string();
    app.clock.advance(1);
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], r5.as_str());
    let (s, b) = beat(audit.clone()).await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "lease-yielded"));
    app.verdict(&ann, &r5, json!({"action": "pick", "sku": "milk"}))
        .await;

    // With nothing else for her, the audit comes back to Ann once more.
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], audit.as_str());
    let (s, v) = app
        .verdict(
            &ann,
            &audit,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_leases WHERE end_reason = 'yielded'")
            .await,
        2
    );
}
dual!(an_audit_gives_way_to_receipt_work_and_comes_back);

/// Supervisors get escalations in queue order: receipt work before an
/// audit handed to them earlier, so measurement never delays a receipt
/// there either.
async fn escalated_receipt_work_comes_before_escalated_audits(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = audit_everything(&app, &store_id, 2).await;
    let sue = app.user("sue", Role::Supervisor).await;

    // A lone labeler's audit needing a second verdict goes to supervisors.
    let (_, a) = app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let audit = a["task_id"].as_str().unwrap().to_string();
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], audit.as_str());
    app.verdict(
        &ann,
        &audit,
        json!({"action": "pick", "sku": "milk", "quantity": 1}),
    )
    .await;
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        1
    );

    // Later, a review Ann cannot tell.
    app.clock.advance(1_000);
    let (_, r) = app.events(&key, event("e2", "s2", "pick", 1, UNSURE)).await;
    let review = r["task_id"].as_str().unwrap().to_string();
    let (_, c) = app.claim(&ann).await;
    assert_eq!(c["task"]["task_id"], review.as_str());
    let (_, v) = app.verdict(&ann, &review, json!({"cant_tell": true})).await;
    assert_eq!(v["status"], "escalated");

    let (s, list) = app
        .call(Method::GET, "/api/v1/escalations", &sue, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["task"]["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [review.as_str(), audit.as_str()]);
}
dual!(escalated_receipt_work_comes_before_escalated_audits);
