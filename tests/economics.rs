//! Charge-aware routing over real HTTP, each test on SQLite and on
//! PostgreSQL: a store whose review time goes where a charge can be wrong.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, Backend, TestApp};
use recount::auth::Role;

async fn put_policy(
    app: &TestApp,
    store_id: &str,
    admin: &str,
    patch: Value,
) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/stores/{store_id}/policy"),
        admin,
        Some(patch),
    )
    .await
}

/// The store's policy as a supervisor reads it.
async fn get_policy(app: &TestApp, store_id: &str) -> Value {
    let sue = app.user("sue", Role::Supervisor).await;
    let (s, p) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store_id}/policy"),
            &sue,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    p
}

/// Milk and oat milk cost the same; the television is dear.
async fn store(app: &TestApp) -> (String, String, String) {
    let (store_id, key) = app.store_with_catalog().await;
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/products",
            &key,
            Some(json!([{"sku": "oat", "name": "Oat drink 1 l", "price_cents": 129}])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let admin = app.user("boss", Role::Admin).await;
    (store_id, key, admin)
}

async fn routed(
    app: &TestApp,
    key: &str,
    id: &str,
    candidates: &[(&str, f64)],
) -> (String, Option<String>) {
    let (s, out) = app.events(key, event(id, id, "pick", 1, candidates)).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    (
        out["route"].as_str().unwrap().to_string(),
        out["reason"].as_str().map(str::to_string),
    )
}

/// The two events: 0.55 between two products of one price, and
/// 0.92 on a dear one. The threshold reviews the first and accepts the
/// second; charge-aware routing does the opposite.
async fn charge_aware_routing_reviews_where_a_charge_can_be_wrong(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, admin) = store(&app).await;
    let same_price: &[(&str, f64)] = &[("milk", 0.55), ("oat", 0.45)];
    let dear: &[(&str, f64)] = &[("tv", 0.92), ("milk", 0.05)];

    assert_eq!(
        routed(&app, &key, "t1", same_price).await,
        ("review".into(), Some("low-confidence".into()))
    );
    assert_eq!(routed(&app, &key, "t2", dear).await.0, "auto_accepted");

    let (s, p) = put_policy(
        &app,
        &store_id,
        &admin,
        json!({"mode": "charge-aware", "review_cost_cents": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (p["mode"].as_str(), p["review_cost_cents"].as_i64()),
        (Some("charge-aware"), Some(5))
    );
    assert_eq!(get_policy(&app, &store_id).await, p, "stored as answered");

    assert_eq!(
        routed(&app, &key, "c1", same_price).await,
        ("auto_accepted".into(), None)
    );
    assert_eq!(
        routed(&app, &key, "c2", dear).await,
        ("review".into(), Some("charge-risk".into()))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE route_reason = 'charge-risk'")
            .await,
        1
    );

    // A review that costs nothing is always worth it.
    put_policy(&app, &store_id, &admin, json!({"review_cost_cents": 0})).await;
    assert_eq!(
        routed(&app, &key, "c3", same_price).await,
        ("review".into(), Some("charge-risk".into()))
    );
    // Back to the default cost (the labeler hourly cost): null.
    let (s, p) = put_policy(&app, &store_id, &admin, json!({"review_cost_cents": null})).await;
    assert_eq!(
        (s, p["review_cost_cents"].is_null()),
        (StatusCode::OK, true)
    );
    assert_eq!(
        routed(&app, &key, "c4", same_price).await.0,
        "auto_accepted"
    );
}
dual!(charge_aware_routing_reviews_where_a_charge_can_be_wrong);

/// What people found wrong moves the calibration, and with it the routing:
/// once reviews show the model's 0.9s are right only half the time, a
/// 0.93 cola beside a cheaper milk is worth a review at 5 cents.
async fn the_calibration_follows_what_people_found(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, admin) = store(&app).await;
    let (s, b) = put_policy(
        &app,
        &store_id,
        &admin,
        json!({"mode": "charge-aware", "review_cost_cents": 5}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let probe: &[(&str, f64)] = &[("cola", 0.93), ("milk", 0.05)];
    // Taken at its word (p = 0.93): 0.05 · 20 + 0.02 · 149 ≈ 4.3 cents.
    assert_eq!(routed(&app, &key, "before", probe).await.0, "auto_accepted");

    // Thirty confident events reviewed (cost 0 sends all), half wrong.
    put_policy(&app, &store_id, &admin, json!({"review_cost_cents": 0})).await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..30 {
        let id = format!("h{i}");
        routed(&app, &key, &id, &[("cola", 0.93), ("milk", 0.05)]).await;
        let (s, c) = app.claim(&ann).await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        let sku = if i % 2 == 0 { "cola" } else { "milk" };
        let (s, v) = app
            .verdict(&ann, &task, json!({"action": "pick", "sku": sku}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    put_policy(&app, &store_id, &admin, json!({"review_cost_cents": 5})).await;
    // The 0.9 bin: (30 · 0.5 + 5 · 0.93) / 35 = 0.56, pooled with the
    // priors of the bins below it (never believed less than a less
    // confident answer) to 0.62: the same event now risks about 22 cents.
    assert_eq!(
        routed(&app, &key, "after", probe).await,
        ("review".into(), Some("charge-risk".into()))
    );

    // The calibration view shows it beside the raw confidence.
    let sue = app.user("sue", Role::Supervisor).await;
    let (s, cal) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store_id}/calibration?model_version=m1"),
            &sue,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cal}");
    assert_eq!(cal["labelled"], 30);
    let top = &cal["bins"][9];
    assert_eq!(top["count"], 30);
    assert!((top["confidence"].as_f64().unwrap() - 0.93).abs() < 1e-9);
    let pooled = (5.0 * 0.65 + 5.0 * 0.75 + 5.0 * 0.85 + 30.0 * 0.5 + 5.0 * 0.93) / 50.0;
    for b in 6..10 {
        let p = cal["bins"][b]["probability"].as_f64().unwrap();
        assert!((p - pooled).abs() < 1e-9, "bin {b}: {p} vs {pooled}");
    }
    // Another model version has no labels: the model at its word.
    let (_, other) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store_id}/calibration?model_version=m2"),
            &sue,
            None,
        )
        .await;
    assert_eq!(other["labelled"], 0);
    assert!((other["bins"][9]["probability"].as_f64().unwrap() - 0.95).abs() < 1e-9);
    let (s, b) = app
        .call(Method::GET, "/api/v1/stores/nope/calibration", &sue, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store_id}/calibration"),
            &ann,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
}
dual!(the_calibration_follows_what_people_found);

async fn bad_routing_settings_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, _, admin) = store(&app).await;
    for (patch, want) in [
        (json!({"review_cost_cents": -1}), "invalid-policy"),
        (json!({"mode": "cheapest"}), "invalid-body"),
        (json!({"review_cost_cents": "5"}), "invalid-body"),
    ] {
        let (s, b) = put_policy(&app, &store_id, &admin, patch.clone()).await;
        assert_eq!(code(&b), want, "{patch}: {b}");
        assert!(s.is_client_error());
    }
    let p = get_policy(&app, &store_id).await;
    assert_eq!(
        (p["mode"].as_str(), p["review_cost_cents"].is_null()),
        (Some("threshold"), true)
    );
}
dual!(bad_routing_settings_are_refused_and_change_nothing);

/// Without a cost of its own, a review costs the store the labeler hourly
/// cost over its own median handling time, once it has 20 verdicts.
async fn the_default_review_cost_follows_the_stores_handling_time(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key, admin) = store(&app).await;
    put_policy(&app, &store_id, &admin, json!({"mode": "charge-aware"})).await;
    // Taken at its word: 0.15 · 20 + 0.05 · 149 = 10.45 cents at stake,
    // over the configured 5 cents (22.50 an hour, 8 s a review).
    let probe: &[(&str, f64)] = &[("cola", 0.80), ("milk", 0.15)];
    assert_eq!(
        routed(&app, &key, "before", probe).await,
        ("review".into(), Some("charge-risk".into()))
    );

    // Twenty reviews of another model version (so the probe's calibration
    // stays the prior), each taking 50 s (within the 60 s lease).
    put_policy(&app, &store_id, &admin, json!({"review_cost_cents": 0})).await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..20 {
        let mut e = event(
            &format!("h{i}"),
            &format!("h{i}"),
            "pick",
            1,
            &[("milk", 0.55), ("oat", 0.45)],
        );
        e["model_version"] = json!("m0");
        let (s, out) = app.events(&key, e).await;
        assert_eq!(
            (s, out["route"].as_str()),
            (StatusCode::OK, Some("review")),
            "{out}"
        );
        let (_, c) = app.claim(&ann).await;
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        app.clock.advance(50_000);
        let (s, v) = app
            .verdict(&ann, &task, json!({"action": "pick", "sku": "milk"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    put_policy(&app, &store_id, &admin, json!({"review_cost_cents": null})).await;
    // A review now costs 22.50 × 50 s / 1 h = 31.25 cents: not worth it.
    assert_eq!(
        routed(&app, &key, "after", probe).await,
        ("auto_accepted".into(), None)
    );
}
dual!(the_default_review_cost_follows_the_stores_handling_time);
