//! Bad input gets a precise 4xx with a stable code and changes nothing, on
//! SQLite and on PostgreSQL.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, Backend, TestApp};
use recount::auth::Role;
use recount::error::Code;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

/// Row counts of every table a request could touch.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "events",
        "sessions",
        "review_tasks",
        "verdicts",
        "receipts",
        "products",
        "product_prices",
        "jobs",
        "task_leases",
    ] {
        counts.push(app.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts.push(
        app.count("SELECT CAST(COALESCE(SUM(open_reviews), 0) AS BIGINT) FROM sessions")
            .await,
    );
    counts
}

async fn malformed_and_mistyped_events_are_refused_with_their_codes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    app.events(&key, event("ok", "s1", "pick", 1, UNSURE)).await;
    let before = snapshot(&app).await;

    let raw = |body: &'static str| {
        app.call_raw(
            Method::POST,
            "/api/v1/events",
            &key,
            "application/json",
            body.as_bytes().to_vec(),
        )
    };
    let (s, b) = raw("{\"event_id\": ").await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "malformed-json"));
    let (s, b) = raw("not json at all").await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "malformed-json"));
    let (s, b) = app
        .call_raw(
            Method::POST,
            "/api/v1/events",
            &key,
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
    );

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"event_id": "x"}), "invalid-body", "missing field"),
        (
            with(
                event("x", "s1", "pick", 1, UNSURE),
                "quantity",
                json!("two"),
            ),
            "invalid-body",
            "invalid type",
        ),
        (
            with(
                event("x", "s1", "pick", 1, UNSURE),
                "candidates",
                json!([{"sku": "milk", "confidence": "high"}]),
            ),
            "invalid-body",
            "invalid type",
        ),
        (
            with(event("x", "s1", "pick", 1, UNSURE), "surprise", json!(1)),
            "invalid-body",
            "unknown field",
        ),
        (
            event("x", "s1", "pick", -1, UNSURE),
            "invalid-quantity",
            "quantity",
        ),
        (
            event("x", "s1", "pick", 0, UNSURE),
            "invalid-quantity",
            "quantity",
        ),
        (event("x", "s1", "grab", 1, UNSURE), "invalid-kind", "kind"),
        (
            event("x", "s1", "pick", 1, &[("milk", 1.5)]),
            "invalid-confidence",
            "confidence",
        ),
        (
            event("x", "s1", "pick", 1, &[("milk", -0.1)]),
            "invalid-confidence",
            "confidence",
        ),
        (
            event("x", "s1", "pick", 1, &[("milk", 0.5), ("milk", 0.4)]),
            "duplicate-candidate",
            "twice",
        ),
        (
            event("x", "s1", "pick", 1, &[("caviar", 0.5)]),
            "unknown-sku",
            "caviar",
        ),
        (event("", "s1", "pick", 1, UNSURE), "invalid-id", "event_id"),
        (
            with(
                event("x", "s1", "pick", 1, UNSURE),
                "occurred_at",
                json!("yesterday"),
            ),
            "invalid-timestamp",
            "occurred_at",
        ),
        (json!([]), "empty-batch", "no event"),
        (json!(42), "invalid-body", "invalid type"),
    ];
    for (body, expected, words) in cases {
        let (s, b) = app.events(&key, body.clone()).await;
        assert!(s.is_client_error(), "{body} → {s}");
        assert_eq!(code(&b), expected, "{body} → {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(words),
            "{body}: message {message:?} should mention {words:?}"
        );
    }
    // The same event id, other content: a conflict, and the first stays as it was.
    let (s, b) = app
        .events(&key, event("ok", "s1", "return", 1, UNSURE))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "event-conflict"));
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE kind = 'pick'")
            .await,
        1
    );
}
dual!(malformed_and_mistyped_events_are_refused_with_their_codes);

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

async fn oversized_bodies_and_batches_are_refused(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.json_body_limit = 64 * 1024;
        c.max_batch_events = 10;
    })
    .await;
    let (_, key) = app.store_with_catalog().await;
    let before = snapshot(&app).await;
    let mut big = event("big", "s1", "pick", 1, UNSURE);
    big["model_version"] = json!("m".repeat(100_000));
    let (s, b) = app.events(&key, big).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large")
    );
    let batch: Vec<Value> = (0..11)
        .map(|i| event(&format!("b{i}"), "s1", "pick", 1, UNSURE))
        .collect();
    let (s, b) = app.events(&key, Value::Array(batch)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "batch-too-large")
    );
    assert_eq!(snapshot(&app).await, before);
}
dual!(oversized_bodies_and_batches_are_refused);

async fn bad_catalogs_are_refused_whole(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let before = snapshot(&app).await;
    let cases = [
        (
            json!([{"sku": "a", "name": "A", "price_cents": -1}]),
            "invalid-price",
        ),
        (
            json!([{"sku": "a", "name": "", "price_cents": 1}]),
            "invalid-name",
        ),
        (
            json!([{"sku": "", "name": "A", "price_cents": 1}]),
            "invalid-id",
        ),
        (
            json!([{"sku": "a", "name": "A", "price_cents": 1}, {"sku": "a", "name": "B", "price_cents": 2}]),
            "duplicate-sku",
        ),
        (json!([{"sku": "a", "name": "A"}]), "invalid-body"),
        (json!({"sku": "a"}), "invalid-body"),
    ];
    for (body, expected) in cases {
        let (s, b) = app
            .call(Method::PUT, "/api/v1/products", &key, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, expected),
            "{body}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
}
dual!(bad_catalogs_are_refused_whole);

async fn unknown_sessions_tasks_stores_and_routes_are_404(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sup = app.user("sue", Role::Supervisor).await;
    let admin = app.user("boss", Role::Admin).await;
    let before = snapshot(&app).await;
    let (s, b) = app.receipt(&key, "never-seen").await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-session"));
    for path in ["heartbeat", "release", "verdict"] {
        let (s, b) = app
            .call(
                Method::POST,
                &format!("/api/v1/tasks/no-such-task/{path}"),
                &ann,
                Some(json!({"action": "none"})),
            )
            .await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::NOT_FOUND, "unknown-task"),
            "{path}"
        );
    }
    let (s, b) = app
        .call(Method::GET, "/api/v1/tasks/no-such-task", &sup, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-task"));
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/tasks/no-such-task/resolve",
            &sup,
            Some(json!({"action": "none"})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-task"));
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/stores/no-such-store/policy",
            &admin,
            Some(json!({"threshold": 0.5})),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
    let (s, b) = app
        .call(Method::GET, "/api/v1/nothing-here", &key, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, b) = app.call(Method::DELETE, "/api/v1/events", &key, None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed")
    );
    let (s, b) = app
        .call(Method::GET, "/api/v1/escalations?limit=lots", &sup, None)
        .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid-query"));
    assert_eq!(snapshot(&app).await, before);
}
dual!(unknown_sessions_tasks_stores_and_routes_are_404);

async fn bad_verdicts_are_refused_and_keep_the_lease(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    app.claim(&ann).await;
    let before = snapshot(&app).await;
    let cases = [
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing-action",
        ),
        (
            json!({"action": "pick"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing-sku",
        ),
        (
            json!({"action": "pick", "sku": "caviar"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-sku",
        ),
        (
            json!({"action": "pick", "sku": "milk", "quantity": -2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-quantity",
        ),
        (
            json!({"action": "pick", "sku": "milk", "quantity": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-quantity",
        ),
        (
            json!({"action": "steal", "sku": "milk"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            json!({"action": "none", "note": "x".repeat(2001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "note-too-long",
        ),
        (
            json!({"action": "none", "cant_tell": "maybe"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
    ];
    for (body, status, expected) in cases {
        let (s, b) = app.verdict(&ann, &task, body.clone()).await;
        assert_eq!((s, code(&b)), (status, expected), "{body}");
    }
    assert_eq!(snapshot(&app).await, before);
    // The lease survived every refusal: the real answer goes through.
    let (s, b) = app
        .verdict(&ann, &task, json!({"action": "pick", "sku": "milk"}))
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
}
dual!(bad_verdicts_are_refused_and_keep_the_lease);

async fn bad_exits_and_policies_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    let before = snapshot(&app).await;
    let (s, b) = app.exit(&key, "s1", "after lunch").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-timestamp")
    );
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/sessions/s1/exit",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body")
    );
    let policy = format!("/api/v1/stores/{store_id}/policy");
    for body in [
        json!({"threshold": 1.2}),
        json!({"audit_rate": -0.5}),
        json!({"audit_verdicts": 0}),
        json!({"receipt_sla_ms": 0}),
    ] {
        let (s, b) = app
            .call(Method::PUT, &policy, &admin, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-policy"),
            "{body}"
        );
    }
    let (s, b) = app
        .call(Method::PUT, &policy, &admin, Some(json!({"treshold": 0.5})))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body")
    );
    let (_, p) = app.call(Method::GET, &policy, &admin, None).await;
    assert_eq!(p["threshold"], 0.9);
    assert_eq!(snapshot(&app).await, before);

    // null switches the high-value rule off; absent keeps it.
    app.call(
        Method::PUT,
        &policy,
        &admin,
        Some(json!({"high_value_cents": 5000})),
    )
    .await;
    let (_, p) = app
        .call(
            Method::PUT,
            &policy,
            &admin,
            Some(json!({"threshold": 0.8})),
        )
        .await;
    assert_eq!(p["high_value_cents"], 5000);
    let (_, p) = app
        .call(
            Method::PUT,
            &policy,
            &admin,
            Some(json!({"high_value_cents": null})),
        )
        .await;
    assert_eq!(p["high_value_cents"], Value::Null);
    assert_eq!(p["threshold"], 0.8);
}
dual!(bad_exits_and_policies_are_refused);

/// The codes of the registry as (spelling, status, meaning), sorted.
fn registry() -> Vec<(String, u16, String)> {
    let mut all: Vec<_> = Code::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_string(),
                recount::http::error::status(*c).as_u16(),
                c.meaning().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

/// The rows of docs/api.md's "Error codes" table as (code, status, meaning),
/// sorted.
fn documented_codes() -> Vec<(String, u16, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text
        .split("\n## Error codes\n")
        .nth(1)
        .expect("docs/api.md has a section \"Error codes\"");
    let section = section.split("\n## ").next().unwrap();
    let mut rows: Vec<_> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let status = cells.first()?.strip_prefix("| ")?.parse::<u16>().ok()?;
            let code = cells.get(1)?.trim_matches('`').to_string();
            let meaning = cells.get(2..)?.join(" | ");
            let meaning = meaning.strip_suffix(" |")?.to_string();
            Some((code, status, meaning))
        })
        .collect();
    rows.sort();
    rows
}

async fn the_openapi_document_and_the_docs_list_exactly_the_registrys_codes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (s, doc) = app.call_anon(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut listed: Vec<String> = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
        ["enum"]
        .as_array()
        .expect("ErrorDetail.code has an enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut spellings: Vec<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
    spellings.sort();
    spellings.dedup();
    assert_eq!(listed, spellings);
    assert!(listed.contains(&"lease-expired".to_string()));

    let documented = documented_codes();
    let registry = registry();
    let undocumented: Vec<_> = registry
        .iter()
        .filter(|r| !documented.contains(r))
        .collect();
    let unregistered: Vec<_> = documented
        .iter()
        .filter(|d| !registry.contains(d))
        .collect();
    assert_eq!(
        (undocumented, unregistered),
        (vec![], vec![]),
        "(registry rows missing from docs/api.md, rows of docs/api.md not in the registry)"
    );
    assert_eq!(documented, registry, "each code documented once");
    assert!(documented.contains(&(
        "unknown-clip".to_string(),
        422,
        Code::UnknownClipInEvent.meaning().to_string()
    )));
}
dual!(the_openapi_document_and_the_docs_list_exactly_the_registrys_codes);
