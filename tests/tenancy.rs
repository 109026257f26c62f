//! Tenancy: a supervisor sees only the stores they cover, on every
//! supervisor route and page, answered as if another store's things did
//! not exist; a labeler's queue hands them only tasks of their pool, also
//! under concurrent claims; who may change whose stores. On SQLite and
//! PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{code, event, Backend, TestApp};
use recount::auth::Role;
use recount::domain::scope::Scope;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

/// Two stores with catalogs, both allowing training use; an admin.
struct TwoStores {
    app: TestApp,
    a: String,
    a_key: String,
    b: String,
    b_key: String,
    root: String,
}

async fn two_stores(backend: Backend) -> TwoStores {
    let app = TestApp::start(backend).await;
    let (a, a_key) = app.store("Alpha market", None).await;
    let (b, b_key) = app.store("Beta market", None).await;
    app.catalog(&a_key).await;
    app.catalog(&b_key).await;
    let root = app.user("root", Role::Admin).await;
    for store in [&a, &b] {
        let (s, body) = app
            .call(
                Method::PUT,
                &format!("/api/v1/stores/{store}/training"),
                &root,
                Some(json!({"allowed": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    TwoStores {
        app,
        a,
        a_key,
        b,
        b_key,
        root,
    }
}

/// Posts an unsure event; its task id.
async fn unsure(app: &TestApp, key: &str, event_id: &str, session: &str) -> String {
    let (s, out) = app
        .events(key, event(event_id, session, "pick", 1, UNSURE))
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    out["task_id"].as_str().unwrap().to_string()
}

/// Claims the next task with `token` and answers it; the task id.
async fn claim_and_answer(app: &TestApp, token: &str, answer: Value) -> String {
    let (s, c) = app.claim(token).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let id = c["task"]["task_id"].as_str().unwrap().to_string();
    let (s, v) = app.verdict(token, &id, answer).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

fn milk() -> Value {
    json!({"action": "pick", "sku": "milk", "quantity": 1})
}

/// One request a supervisor may make that names another store's thing.
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
    /// The OpenAPI path it exercises.
    route: &'static str,
    status: StatusCode,
    code: &'static str,
}

fn probe(
    method: Method,
    route: &'static str,
    path: String,
    body: Option<Value>,
    status: StatusCode,
    code: &'static str,
) -> Probe {
    Probe {
        method,
        path,
        body,
        route,
        status,
        code,
    }
}

/// Routes a supervisor may call that name no store, task or thing of one
/// (they list, or act on the caller alone), or that supervisors cannot
/// call at all (store keys, admins only). Every other route must be probed
/// below, so a new supervisor route cannot skip the scope check unnoticed.
const NOT_PROBED: &[&str] = &[
    "post /api/v1/auth/token",
    "post /api/v1/tasks/claim",
    "get /api/v1/tasks/leased",
    "post /api/v1/tasks/{task_id}/heartbeat",
    "post /api/v1/tasks/{task_id}/release",
    "post /api/v1/tasks/{task_id}/verdict",
    "get /api/v1/escalations",
    "get /api/v1/gold",
    "get /api/v1/labelers/quality",
    "get /api/v1/dashboard",
    "get /api/v1/exports",
    "get /api/v1/audit",
    "get /api/v1/audit.csv",
    "get /api/v1/users",
    "get /api/v1/stores",
    // Store keys only.
    "post /api/v1/clips",
    "post /api/v1/footage",
    "post /api/v1/events",
    "get /api/v1/products",
    "put /api/v1/products",
    "post /api/v1/sessions/{session_id}/exit",
    "post /api/v1/sessions/{session_id}/disputes",
    "get /api/v1/disputes/{dispute_id}",
    "delete /api/v1/sessions/{session_id}/media",
    "post /api/v1/stores/{store_id}/webhook-secret/rotate",
    // Admins only (admins cover every store).
    "put /api/v1/stores/{store_id}/policy",
    "put /api/v1/stores/{store_id}/training",
    "put /api/v1/stores/{store_id}/blind-review",
    "patch /api/v1/stores/{store_id}",
    "post /api/v1/stores/{store_id}/api-key/rotate",
    "post /api/v1/stores/{store_id}/webhook-test",
    "post /api/v1/stores/{store_id}/deliveries/{delivery_id}/redeliver",
    // Open to all.
    "get /healthz",
    "get /metrics",
];

async fn a_supervisor_of_one_store_finds_nothing_of_another(backend: Backend) {
    let t = two_stores(backend).await;
    let app = &t.app;
    let lb = app.user("lb", Role::Labeler).await;
    let sa = app.user_in("sa", Role::Supervisor, Scope::of([&t.a])).await;

    // Store B: a resolved task made gold, an escalated task, a clip, an
    // exited session, an export.
    let resolved = unsure(app, &t.b_key, "b1", "s-b").await;
    assert_eq!(claim_and_answer(app, &lb, milk()).await, resolved);
    let (s, g) = app
        .call(
            Method::POST,
            "/api/v1/gold",
            &t.root,
            Some(json!({"task_id": resolved})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gold_b = g["gold_id"].as_str().unwrap().to_string();
    let escalated = unsure(app, &t.b_key, "b2", "s-b").await;
    // The gold copy of b1 is not served to lb: they resolved its source.
    assert_eq!(
        claim_and_answer(app, &lb, json!({"cant_tell": true})).await,
        escalated
    );
    let clip_b = app
        .upload_clip(&t.b_key, "h264.mp4", "cam-1", "2026-11-25T09:59:59Z")
        .await;
    let (s, e) = app.exit(&t.b_key, "s-b", "2026-11-25T10:05:00Z").await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (s, x) = app
        .call(
            Method::POST,
            "/api/v1/exports",
            &t.root,
            Some(json!({"filter": {"stores": [t.b]}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{x}");
    let export_b = x["export_id"].as_str().unwrap().to_string();

    // Store A: an escalated task sa may see, the positive control.
    let lb_a = unsure(app, &t.a_key, "a1", "s-a").await;
    assert_eq!(
        claim_and_answer(app, &lb, json!({"cant_tell": true})).await,
        lb_a
    );

    let b = &t.b;
    let nf = StatusCode::NOT_FOUND;
    let probes = vec![
        probe(
            Method::GET,
            "get /api/v1/tasks/{task_id}",
            format!("/api/v1/tasks/{escalated}"),
            None,
            nf,
            "unknown-task",
        ),
        probe(
            Method::GET,
            "get /api/v1/tasks/{task_id}/context",
            format!("/api/v1/tasks/{escalated}/context"),
            None,
            nf,
            "unknown-task",
        ),
        probe(
            Method::GET,
            "get /api/v1/tasks/{task_id}/products",
            format!("/api/v1/tasks/{escalated}/products?q=milk"),
            None,
            nf,
            "unknown-task",
        ),
        probe(
            Method::POST,
            "post /api/v1/tasks/{task_id}/resolve",
            format!("/api/v1/tasks/{escalated}/resolve"),
            Some(milk()),
            nf,
            "unknown-task",
        ),
        probe(
            Method::POST,
            "post /api/v1/tasks/{task_id}/correction",
            format!("/api/v1/tasks/{resolved}/correction"),
            Some(milk()),
            nf,
            "unknown-task",
        ),
        probe(
            Method::GET,
            "get /api/v1/tasks/{task_id}/clips/{clip_id}/poster",
            format!("/api/v1/tasks/{escalated}/clips/{clip_b}/poster"),
            None,
            nf,
            "unknown-clip",
        ),
        probe(
            Method::POST,
            "post /api/v1/gold",
            "/api/v1/gold".into(),
            Some(json!({"task_id": resolved})),
            nf,
            "unknown-task",
        ),
        probe(
            Method::DELETE,
            "delete /api/v1/gold/{gold_id}",
            format!("/api/v1/gold/{gold_b}"),
            None,
            nf,
            "unknown-gold",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/policy",
            format!("/api/v1/stores/{b}/policy"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/confidence-bins",
            format!("/api/v1/stores/{b}/confidence-bins"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/calibration",
            format!("/api/v1/stores/{b}/calibration"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/recommendation",
            format!("/api/v1/stores/{b}/recommendation"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/staffing",
            format!("/api/v1/stores/{b}/staffing"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/sessions/{session_id}/receipt",
            format!("/api/v1/sessions/s-b/receipt?store_id={b}"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/clips/{clip_id}",
            format!("/api/v1/clips/{clip_b}"),
            None,
            nf,
            "unknown-clip",
        ),
        probe(
            Method::GET,
            "get /api/v1/clips/{clip_id}/video",
            format!("/api/v1/clips/{clip_b}/video"),
            None,
            nf,
            "unknown-clip",
        ),
        probe(
            Method::GET,
            "get /api/v1/clips/{clip_id}/filmstrip",
            format!("/api/v1/clips/{clip_b}/filmstrip"),
            None,
            nf,
            "unknown-clip",
        ),
        probe(
            Method::GET,
            "get /api/v1/exports/{export_id}",
            format!("/api/v1/exports/{export_b}"),
            None,
            nf,
            "unknown-export",
        ),
        probe(
            Method::GET,
            "get /api/v1/exports/{export_id}/files/{name}",
            format!("/api/v1/exports/{export_b}/files/manifest.jsonl"),
            None,
            nf,
            "unknown-export",
        ),
        probe(
            Method::DELETE,
            "delete /api/v1/exports/{export_id}",
            format!("/api/v1/exports/{export_b}"),
            None,
            nf,
            "unknown-export",
        ),
        // A body naming another store's id reads as an unknown store.
        probe(
            Method::POST,
            "post /api/v1/exports",
            "/api/v1/exports".into(),
            Some(json!({"filter": {"stores": [b]}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "training-not-allowed",
        ),
        probe(
            Method::PUT,
            "put /api/v1/users/{username}/stores",
            "/api/v1/users/lb/stores".into(),
            Some(json!({"stores": [t.a]})),
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/disable",
            "/api/v1/users/lb/disable".into(),
            None,
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/enable",
            "/api/v1/users/lb/enable".into(),
            None,
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/password",
            "/api/v1/users/lb/password".into(),
            None,
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/revoke-tokens",
            "/api/v1/users/lb/revoke-tokens".into(),
            None,
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/pause",
            "/api/v1/users/lb/pause".into(),
            Some(json!({})),
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users/{username}/resume",
            "/api/v1/users/lb/resume".into(),
            None,
            nf,
            "unknown-user",
        ),
        probe(
            Method::POST,
            "post /api/v1/users",
            "/api/v1/users".into(),
            Some(json!({"username": "nb", "role": "labeler", "stores": [b]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}",
            format!("/api/v1/stores/{b}"),
            None,
            nf,
            "unknown-store",
        ),
        probe(
            Method::GET,
            "get /api/v1/stores/{store_id}/deliveries",
            format!("/api/v1/stores/{b}/deliveries"),
            None,
            nf,
            "unknown-store",
        ),
    ];
    for p in &probes {
        let (s, body) = app
            .call(p.method.clone(), &p.path, &sa, p.body.clone())
            .await;
        assert_eq!(
            (s, code(&body)),
            (p.status, p.code),
            "{} {}: {body}",
            p.method,
            p.path
        );
    }
    // Every route of the API is probed or named as needing no probe.
    let (_, doc) = app.call_anon(Method::GET, "/api/openapi.json", None).await;
    let probed: BTreeSet<&str> = probes.iter().map(|p| p.route).collect();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let route = format!("{method} {path}");
            assert!(
                probed.contains(route.as_str()) || NOT_PROBED.contains(&route.as_str()),
                "{route} is neither probed for another store's things nor listed as needing no probe"
            );
        }
    }

    // Nothing changed: the escalated task is still escalated, the gold
    // task active, the export not deleted.
    let (_, d) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{escalated}"),
            &t.root,
            None,
        )
        .await;
    assert_eq!(d["status"], "escalated");
    let (_, g) = app.call(Method::GET, "/api/v1/gold", &t.root, None).await;
    assert_eq!(g[0]["active"], true);
    let (_, x) = app
        .call(
            Method::GET,
            &format!("/api/v1/exports/{export_b}"),
            &t.root,
            None,
        )
        .await;
    assert_ne!(x["status"], "deleted");

    // Lists hold only store A's things; the admin sees both stores'.
    let ids = |v: &Value, pointer: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.pointer(pointer).unwrap().as_str().unwrap().to_string())
            .collect()
    };
    let (_, esc) = app
        .call(Method::GET, "/api/v1/escalations", &sa, None)
        .await;
    assert_eq!(ids(&esc, "/task/task_id"), vec![lb_a.clone()]);
    let (_, esc) = app
        .call(Method::GET, "/api/v1/escalations", &t.root, None)
        .await;
    assert_eq!(ids(&esc, "/task/task_id").len(), 2);
    let (_, gold) = app.call(Method::GET, "/api/v1/gold", &sa, None).await;
    assert_eq!(gold, json!([]));
    let (_, ex) = app.call(Method::GET, "/api/v1/exports", &sa, None).await;
    assert_eq!(ex, json!([]));
    let (_, ex) = app
        .call(Method::GET, "/api/v1/exports", &t.root, None)
        .await;
    assert_eq!(ids(&ex, "/export_id"), vec![export_b.clone()]);
    let (_, trail) = app
        .call(
            Method::GET,
            &format!("/api/v1/audit?store_id={b}"),
            &sa,
            None,
        )
        .await;
    assert_eq!(trail["entries"], json!([]), "B's audit rows");
    let (_, trail) = app
        .call(
            Method::GET,
            &format!("/api/v1/audit?store_id={b}"),
            &t.root,
            None,
        )
        .await;
    assert!(!trail["entries"].as_array().unwrap().is_empty());
    let (_, listed) = app.call(Method::GET, "/api/v1/stores", &sa, None).await;
    assert_eq!(ids(&listed, "/store_id"), vec![t.a.clone()]);
    let (_, dash) = app.call(Method::GET, "/api/v1/dashboard", &sa, None).await;
    let queue_stores: Vec<String> = ids(&dash["queue"], "/store_id");
    assert_eq!(queue_stores, vec![t.a.clone()]);
    assert_eq!(dash["queue"][0]["escalated"], 1);
    assert_eq!(dash["receipts"]["pending"], 0, "s-b's receipt is store B's");
    assert_eq!(
        dash["labelers"],
        json!([]),
        "lb also works for store B: only who covers B sees them"
    );
    let (_, dash) = app
        .call(Method::GET, "/api/v1/dashboard", &t.root, None)
        .await;
    assert_eq!(ids(&dash["queue"], "/store_id").len(), 2);
    assert_eq!(dash["receipts"]["pending"], 1);

    // Store A's things answer as usual.
    let (s, d) = app
        .call(Method::GET, &format!("/api/v1/tasks/{lb_a}"), &sa, None)
        .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (StatusCode::OK, Some("escalated"))
    );
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{}/policy", t.a),
            &sa,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, r) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{lb_a}/resolve"),
            &sa,
            Some(milk()),
        )
        .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("resolved")),
        "{r}"
    );
    // Their export names their own stores when it names none.
    let (s, x) = app
        .call(Method::POST, "/api/v1/exports", &sa, Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{x}");
    assert_eq!(x["spec"]["filter"]["stores"], json!([t.a]));
}
dual!(a_supervisor_of_one_store_finds_nothing_of_another);

/// A page's HTML as `token`'s session.
async fn page(app: &TestApp, token: &str, path: &str) -> (StatusCode, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}{path}", app.base))
        .header("Cookie", format!("recount_session={token}"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn supervisor_pages_show_only_the_stores_covered(backend: Backend) {
    let t = two_stores(backend).await;
    let app = &t.app;
    let sa = app.user_in("sa", Role::Supervisor, Scope::of([&t.a])).await;
    let (s, html) = page(app, &sa, &format!("/policy/{}", t.b)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{html}");
    let (s, html) = page(app, &sa, &format!("/policy/{}", t.a)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Alpha market"));
    for path in [
        "/policy",
        "/exports",
        "/dashboard",
        "/dashboard/live",
        "/audit",
    ] {
        let (s, html) = page(app, &sa, path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(html.contains("Alpha market"), "{path} shows store A");
        assert!(!html.contains("Beta market"), "{path} hides store B");
        assert!(!html.contains(&t.b), "{path} hides store B's id");
        let (_, all) = page(app, &t.root, path).await;
        assert!(all.contains("Beta market"), "{path}: the admin sees B");
    }
}
dual!(supervisor_pages_show_only_the_stores_covered);

async fn labelers_in_a_pool_never_receive_another_stores_task(backend: Backend) {
    let t = two_stores(backend).await;
    let app = &t.app;
    let mut tasks: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..12 {
        tasks.insert(
            unsure(app, &t.a_key, &format!("a{i}"), &format!("sa{i}")).await,
            t.a.clone(),
        );
        tasks.insert(
            unsure(app, &t.b_key, &format!("b{i}"), &format!("sb{i}")).await,
            t.b.clone(),
        );
    }
    let mut crew = Vec::new();
    for (i, pool) in [&t.a, &t.b, &t.a, &t.b, &t.a, &t.b].iter().enumerate() {
        let token = app
            .user_in(&format!("l{i}"), Role::Labeler, Scope::of([pool.as_str()]))
            .await;
        crew.push((token, pool.to_string()));
    }
    // Every labeler claims and answers until nothing is left for them, all
    // at once.
    let runs = crew.iter().map(|(token, pool)| async move {
        let mut took = Vec::new();
        loop {
            let (s, c) = app.claim(token).await;
            if s == StatusCode::NO_CONTENT {
                return (pool.clone(), took);
            }
            assert_eq!(s, StatusCode::OK, "{c}");
            let id = c["task"]["task_id"].as_str().unwrap().to_string();
            assert_eq!(c["task"]["store_id"].as_str(), Some(pool.as_str()));
            let (s, v) = app.verdict(token, &id, milk()).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            took.push(id);
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (pool, took) in &results {
        for id in took {
            assert_eq!(&tasks[id], pool, "task {id} went outside its pool");
            *seen.entry(id.clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), tasks.len(), "every task was taken");
    assert!(seen.values().all(|n| *n == 1), "each task once");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'resolved'")
            .await,
        24
    );
}
dual!(labelers_in_a_pool_never_receive_another_stores_task);

async fn a_labeler_with_no_store_gets_nothing_and_a_changed_pool_holds_at_once(backend: Backend) {
    let t = two_stores(backend).await;
    let app = &t.app;
    let task_b = unsure(app, &t.b_key, "b1", "s-b").await;
    let none = app
        .user_in("idle", Role::Labeler, Scope::of(Vec::<String>::new()))
        .await;
    assert_eq!(app.claim(&none).await.0, StatusCode::NO_CONTENT);
    let la = app.user_in("la", Role::Labeler, Scope::of([&t.a])).await;
    assert_eq!(app.claim(&la).await.0, StatusCode::NO_CONTENT);

    // A supervisor of A and B moves la to B's pool: la's next claim, on
    // the same token, takes B's task.
    let sab = app
        .user_in("sab", Role::Supervisor, Scope::of([&t.a, &t.b]))
        .await;
    let (s, body) = app
        .call(
            Method::PUT,
            "/api/v1/users/la/stores",
            &sab,
            Some(json!({"stores": [t.b]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["all_stores"], &body["stores"]),
        (&json!(false), &json!([t.b]))
    );
    let (s, c) = app.claim(&la).await;
    assert_eq!(
        (s, c["task"]["task_id"].as_str()),
        (StatusCode::OK, Some(task_b.as_str()))
    );

    // What a supervisor may not do: give a store they do not cover, give
    // every store, touch a supervisor; an unknown store is refused too.
    let sa = app.user_in("sa", Role::Supervisor, Scope::of([&t.a])).await;
    let refusals = [
        (
            &sab,
            "la",
            json!({"stores": ["no-such-store"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        (
            &sab,
            "la",
            json!({"all_stores": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        (
            &sab,
            "sa",
            json!({"stores": [t.a]}),
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            &sa,
            "la",
            json!({"stores": [t.a]}),
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            &t.root,
            "la",
            json!({"all_stores": true, "stores": [t.a]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        (
            &t.root,
            "nobody",
            json!({"stores": [t.a]}),
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            &la,
            "la",
            json!({"stores": [t.a]}),
            StatusCode::FORBIDDEN,
            "role-forbidden",
        ),
    ];
    for (who, name, body, status, want) in refusals {
        let (s, b) = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{name}/stores"),
                who,
                Some(body.clone()),
            )
            .await;
        assert_eq!((s, code(&b)), (status, want), "{name} {body}: {b}");
    }
    let stored: String = sqlx::query_scalar("SELECT stores FROM users WHERE username = 'la'")
        .fetch_one(app.state.db.reader())
        .await
        .unwrap();
    assert_eq!(
        stored,
        format!("[\"{}\"]", t.b),
        "the refusals changed nothing"
    );

    // An admin may give every store.
    let (s, body) = app
        .call(
            Method::PUT,
            "/api/v1/users/la/stores",
            &t.root,
            Some(json!({"all_stores": true})),
        )
        .await;
    assert_eq!(
        (s, &body["all_stores"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );
}
dual!(a_labeler_with_no_store_gets_nothing_and_a_changed_pool_holds_at_once);

/// `recount …` on a SQLite data directory.
fn cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("RECOUNT_DATABASE_URL")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cli_assigns_stores() {
    let dir = tempfile::tempdir().unwrap();
    let store = cli(dir.path(), &["store", "add", "Alpha market"]);
    let id = store["store_id"].as_str().unwrap();
    let added = cli(
        dir.path(),
        &["user", "add", "sa", "--role", "supervisor", "--store", id],
    );
    assert_eq!(added["stores"], json!([id]));
    let everyone = cli(dir.path(), &["user", "add", "sb", "--role", "supervisor"]);
    assert_eq!(everyone["stores"], "all");
    let moved = cli(dir.path(), &["user", "stores", "sb", "--store", id]);
    assert_eq!(moved["stores"], json!([id]));
    let back = cli(dir.path(), &["user", "stores", "sb", "--all"]);
    assert_eq!(back["stores"], "all");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["user", "stores", "sb", "--store", "no-such-store"])
        .env_remove("RECOUNT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store \"no-such-store\""));
}
