//! Gold tasks over real HTTP, each test on SQLite and on PostgreSQL: marking
//! and retiring, mixing copies into claims, copies that look and play like
//! any task, scoring and flagging labelers, and the guarantee that a gold
//! answer never touches a receipt.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, run_media_jobs, Backend, TestApp};
use recount::auth::Role;
use recount::config::Config;
use recount::db::users;
use recount::domain::scope::Scope;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

fn milk() -> Value {
    json!({"action": "pick", "sku": "milk", "quantity": 1})
}

/// An app with a catalog, no audit sampling, a supervisor `sue` and a
/// labeler `sam` who resolves the tasks that become gold.
struct Setup {
    app: TestApp,
    store_id: String,
    key: String,
    sue: String,
    sam: String,
}

async fn setup(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Setup {
    setup_with_webhook(backend, None, tweak).await
}

async fn setup_with_webhook(
    backend: Backend,
    webhook: Option<&str>,
    tweak: impl FnOnce(&mut Config),
) -> Setup {
    let app = TestApp::start_with(backend, tweak).await;
    let (store_id, key) = app.store("Gold store", webhook).await;
    app.catalog(&key).await;
    let admin = app.user("boss", Role::Admin).await;
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &admin,
            Some(json!({"audit_rate": 0.0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sue = app.user("sue", Role::Supervisor).await;
    let sam = app.user("sam", Role::Labeler).await;
    Setup {
        app,
        store_id,
        key,
        sue,
        sam,
    }
}

/// A labeler without the cost of a password hash: for tests needing many.
async fn quick_labeler(app: &TestApp, name: &str) -> String {
    let now = app.state.now();
    let tokens = &app.state.tokens;
    let operator = recount::domain::audit::Actor::operator();
    let (user, _) = recount::review::admin::add_user(
        &app.state.db,
        tokens,
        &operator,
        name,
        "no-login",
        Role::Labeler,
        &Scope::All,
        now,
    )
    .await
    .unwrap();
    users::issue_token(&app.state.db, &user.id, now, app.state.config.token_ttl_ms)
        .await
        .unwrap()
}

/// Posts an unsure event; returns its task id.
async fn unsure(s: &Setup, event_id: &str, session: &str) -> String {
    let (status, out) = s
        .app
        .events(&s.key, event(event_id, session, "pick", 1, UNSURE))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out["task_id"].as_str().unwrap().to_string()
}

/// Unsure events `{prefix}0…` in `session`, resolved by sam with the given
/// labels (the `i`th label for event `{prefix}{i}`); returns their task ids
/// in that order. Call it while nothing else is ready, so sam's claims take
/// exactly these tasks (in whichever order: their deadlines are equal).
async fn resolved_tasks(s: &Setup, prefix: &str, session: &str, labels: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..labels.len() {
        ids.push(unsure(s, &format!("{prefix}{i}"), session).await);
    }
    for _ in labels {
        let (status, c) = s.app.claim(&s.sam).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        let id = c["task"]["task_id"].as_str().unwrap();
        let i = ids
            .iter()
            .position(|t| t == id)
            .expect("one of the new tasks");
        let (status, v) = s.app.verdict(&s.sam, id, labels[i].clone()).await;
        assert_eq!(
            (status, v["status"].as_str()),
            (StatusCode::OK, Some("resolved")),
            "{v}"
        );
    }
    ids
}

async fn post_gold(s: &Setup, bearer: &str, body: Value) -> (StatusCode, Value) {
    s.app
        .call(Method::POST, "/api/v1/gold", bearer, Some(body))
        .await
}

/// Marks each task gold, one clock tick apart; returns the gold ids.
async fn mark_all(s: &Setup, tasks: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for t in tasks {
        s.app.clock.advance(1);
        let (status, g) = post_gold(s, &s.sue, json!({"task_id": t})).await;
        assert_eq!(status, StatusCode::CREATED, "{g}");
        ids.push(g["gold_id"].as_str().unwrap().to_string());
    }
    ids
}

/// Whether a task is a gold copy (asked of the database: the API never tells).
async fn is_gold(app: &TestApp, task_id: &str) -> bool {
    app.count(&format!(
        "SELECT COUNT(*) FROM review_tasks WHERE id = '{task_id}' AND gold_id IS NOT NULL"
    ))
    .await
        == 1
}

/// The gold task a copy was made of.
async fn gold_of(app: &TestApp, task_id: &str) -> String {
    sqlx::query_scalar("SELECT gold_id FROM review_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(app.state.db.reader())
        .await
        .unwrap()
}

async fn status_of(app: &TestApp, task_id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM review_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(app.state.db.reader())
        .await
        .unwrap()
}

/// Claims; returns the task id (asserting 200).
async fn claim_id(app: &TestApp, token: &str) -> String {
    let (status, c) = app.claim(token).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    c["task"]["task_id"].as_str().unwrap().to_string()
}

async fn post(app: &TestApp, token: &str, task_id: &str, action: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/tasks/{task_id}/{action}"),
        token,
        None,
    )
    .await
}

/// Every key path of a JSON value (array elements share the path `[]`).
fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let path = format!("{at}.{k}");
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => {
                for child in items {
                    walk(child, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

async fn marking_gold_checks_the_task_and_retiring_stops_serving(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 1.0).await;
    let app = &s.app;
    let src = resolved_tasks(&s, "g", "s-src", &[milk()]).await.remove(0);
    let open_task = unsure(&s, "r0", "s-real").await;
    let ann = app.user("ann", Role::Labeler).await;
    let body = json!({"task_id": src});

    // Who may mark: supervisors only.
    let (st, b) = app
        .call_anon(Method::POST, "/api/v1/gold", Some(body.clone()))
        .await;
    assert_eq!((st, code(&b)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (st, b) = post_gold(&s, &ann, body.clone()).await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (st, b) = post_gold(&s, &s.key, body.clone()).await;
    assert_eq!(
        (st, code(&b)),
        (StatusCode::FORBIDDEN, "user-token-required")
    );
    // Bad bodies.
    let (st, b) = app
        .call_raw(
            Method::POST,
            "/api/v1/gold",
            &s.sue,
            "application/json",
            b"{\"task_id\":".to_vec(),
        )
        .await;
    assert_eq!((st, code(&b)), (StatusCode::BAD_REQUEST, "malformed-json"));
    for bad in [json!({"task": src}), json!({"task_id": 5}), json!({})] {
        let (st, b) = post_gold(&s, &s.sue, bad.clone()).await;
        assert_eq!(
            (st, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
            "{bad}"
        );
    }
    // Unknown and unresolved tasks.
    let (st, b) = post_gold(&s, &s.sue, json!({"task_id": "no-such-task"})).await;
    assert_eq!((st, code(&b)), (StatusCode::NOT_FOUND, "unknown-task"));
    let (st, b) = post_gold(&s, &s.sue, json!({"task_id": open_task})).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "task-not-resolved"));
    assert_eq!(app.count("SELECT COUNT(*) FROM gold_tasks").await, 0);

    // A resolved task: its final label is the gold label.
    let (st, gold) = post_gold(&s, &s.sue, body.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{gold}");
    let gold_id = gold["gold_id"].as_str().unwrap().to_string();
    assert_eq!(
        gold,
        json!({
            "gold_id": gold_id,
            "task_id": src,
            "event_id": "g0",
            "store_id": s.store_id,
            "label": milk(),
            "active": true,
            "created_by": "sue",
            "created_at": "2026-11-25T10:00:00.000Z",
            "retired_at": null,
            "answers": 0,
            "correct": 0,
            "accuracy": null,
        })
    );
    let (st, b) = post_gold(&s, &s.sue, body.clone()).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "already-gold"));

    // A copy served to ann cannot be marked, answered or not.
    let copy = claim_id(app, &ann).await;
    assert_ne!(copy, open_task);
    assert!(is_gold(app, &copy).await);
    let (st, b) = post_gold(&s, &s.sue, json!({"task_id": copy})).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "task-is-gold"));
    let (st, v) = app.verdict(&ann, &copy, milk()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, b) = post_gold(&s, &s.sue, json!({"task_id": copy})).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "task-is-gold"));
    assert_eq!(app.count("SELECT COUNT(*) FROM gold_tasks").await, 1);

    // The list, for supervisors only.
    let (st, list) = app.call(Method::GET, "/api/v1/gold", &s.sue, None).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["gold_id"], gold_id.as_str());
    assert_eq!(
        (
            &list[0]["answers"],
            &list[0]["correct"],
            &list[0]["accuracy"]
        ),
        (&json!(1), &json!(1), &json!(1.0))
    );
    let (st, b) = app.call(Method::GET, "/api/v1/gold", &ann, None).await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));

    // Retiring.
    let retire = format!("/api/v1/gold/{gold_id}");
    let (st, b) = app
        .call(Method::DELETE, "/api/v1/gold/no-such-gold", &s.sue, None)
        .await;
    assert_eq!((st, code(&b)), (StatusCode::NOT_FOUND, "unknown-gold"));
    let (st, b) = app.call(Method::DELETE, &retire, &ann, None).await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    app.clock.advance(5_000);
    let (st, retired) = app.call(Method::DELETE, &retire, &s.sue, None).await;
    assert_eq!(st, StatusCode::OK, "{retired}");
    assert_eq!(retired["active"], false);
    assert_eq!(retired["retired_at"], "2026-11-25T10:00:05.000Z");
    app.clock.advance(5_000);
    let (st, again) = app.call(Method::DELETE, &retire, &s.sue, None).await;
    assert_eq!(
        (st, &again),
        (StatusCode::OK, &retired),
        "retiring twice changes nothing"
    );

    // No longer served: bob, who never saw it, gets the real task.
    let bob = app.user("bob", Role::Labeler).await;
    assert_eq!(claim_id(app, &bob).await, open_task);
    // Its answers still count, and it cannot be marked again.
    let (_, list) = app.call(Method::GET, "/api/v1/gold", &s.sue, None).await;
    assert_eq!(list[0]["answers"], 1);
    let (st, b) = post_gold(&s, &s.sue, body).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "already-gold"));

    // Documented in the OpenAPI document.
    let (_, doc) = app.call_anon(Method::GET, "/api/openapi.json", None).await;
    for (path, method) in [
        ("/api/v1/gold", "post"),
        ("/api/v1/gold", "get"),
        ("/api/v1/gold/{gold_id}", "delete"),
        ("/api/v1/labelers/quality", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}
dual!(marking_gold_checks_the_task_and_retiring_stops_serving);

async fn gold_comes_first_at_rate_one_but_only_with_real_work_waiting(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 1.0).await;
    let app = &s.app;
    let sources = resolved_tasks(&s, "g", "s-src", &[milk(), milk()]).await;
    let golds = mark_all(&s, &sources).await;
    let ann = app.user("ann", Role::Labeler).await;

    // Nothing real to do: no gold either, and no copy is made.
    let (st, _) = app.claim(&ann).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        0
    );

    // Real work waiting: gold first, newest first, each gold once.
    let real: BTreeSet<String> = [
        unsure(&s, "r0", "s-real").await,
        unsure(&s, "r1", "s-real").await,
        unsure(&s, "r2", "s-real").await,
    ]
    .into();
    for expected in golds.iter().rev() {
        let copy = claim_id(app, &ann).await;
        assert_eq!(&gold_of(app, &copy).await, expected);
        assert_eq!(app.verdict(&ann, &copy, milk()).await.0, StatusCode::OK);
    }
    // Every gold served to ann: her next claims are real work.
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let id = claim_id(app, &ann).await;
        assert!(!is_gold(app, &id).await, "gold served twice");
        assert_eq!(app.verdict(&ann, &id, milk()).await.0, StatusCode::OK);
        got.insert(id);
    }
    assert_eq!(got, real);
    assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        2
    );

    // Sam answered both sources and sue marked them: neither is served
    // their gold.
    let r3 = unsure(&s, "r3", "s-real").await;
    assert_eq!(claim_id(app, &s.sam).await, r3);
    let r4 = unsure(&s, "r4", "s-real").await;
    assert_eq!(claim_id(app, &s.sue).await, r4);
}
dual!(gold_comes_first_at_rate_one_but_only_with_real_work_waiting);

/// Labelers claiming at the same moment, each with two claims in flight:
/// every labeler gets the one gold task exactly once, and the claim that
/// lost the race for it gets real work instead.
async fn concurrent_claims_serve_each_labeler_a_gold_task_once(backend: Backend) {
    let s = setup(backend, |c| {
        c.gold_rate = 1.0;
        c.max_leases_per_labeler = 2;
    })
    .await;
    let app = &s.app;
    let sources = resolved_tasks(&s, "g", "s-src", &[milk()]).await;
    let gold = mark_all(&s, &sources).await.remove(0);
    let mut real = BTreeSet::new();
    for i in 0..8 {
        real.insert(unsure(&s, &format!("r{i}"), "s-real").await);
    }
    let mut labelers = Vec::new();
    for i in 0..4 {
        labelers.push(quick_labeler(app, &format!("l{i}")).await);
    }
    let claims = labelers.iter().flat_map(|token| {
        [0, 1].map(|_| async move { (token.clone(), claim_id(app, token).await) })
    });
    let claimed = futures::future::join_all(claims).await;
    let mut golds_per_labeler: BTreeMap<String, usize> = BTreeMap::new();
    let mut real_claimed = BTreeSet::new();
    for (token, task) in &claimed {
        if is_gold(app, task).await {
            assert_eq!(gold_of(app, task).await, gold);
            *golds_per_labeler.entry(token.clone()).or_default() += 1;
        } else {
            assert!(real.contains(task), "{task} is neither gold nor real");
            assert!(real_claimed.insert(task.clone()), "{task} claimed twice");
        }
    }
    assert_eq!(
        golds_per_labeler.values().copied().collect::<Vec<_>>(),
        [1, 1, 1, 1],
        "{golds_per_labeler:?}"
    );
    assert_eq!(real_claimed.len(), 4);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        4
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM gold_served").await, 4);
}
dual!(concurrent_claims_serve_each_labeler_a_gold_task_once);

async fn rate_zero_never_serves_gold(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 0.0).await;
    let app = &s.app;
    let sources = resolved_tasks(&s, "g", "s-src", &[milk(), milk()]).await;
    mark_all(&s, &sources).await;
    let ann = app.user("ann", Role::Labeler).await;
    for i in 0..3 {
        let real = unsure(&s, &format!("r{i}"), "s-real").await;
        assert_eq!(claim_id(app, &ann).await, real);
        assert_eq!(app.verdict(&ann, &real, milk()).await.0, StatusCode::OK);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        0
    );
}
dual!(rate_zero_never_serves_gold);

async fn the_share_of_gold_follows_the_rate(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 0.3).await;
    let app = &s.app;
    // More gold than any labeler can be served, and always real work
    // waiting for everyone (each claim is released at once), so every claim
    // is a fair draw.
    let labels: Vec<Value> = (0..40).map(|_| milk()).collect();
    let sources = resolved_tasks(&s, "g", "s-src", &labels).await;
    mark_all(&s, &sources).await;
    let real: Vec<Value> = (0..35)
        .map(|i| event(&format!("r{i}"), "s-real", "pick", 1, UNSURE))
        .collect();
    let (st, b) = app.events(&s.key, Value::Array(real)).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let mut labelers = Vec::new();
    for i in 0..10 {
        labelers.push(quick_labeler(app, &format!("l{i}")).await);
    }

    let rounds = 30;
    let mut gold = 0;
    for _ in 0..rounds {
        for l in &labelers {
            let id = claim_id(app, l).await;
            if is_gold(app, &id).await {
                gold += 1;
            }
            assert_eq!(post(app, l, &id, "release").await.0, StatusCode::NO_CONTENT);
        }
    }
    // Binomial(300, 0.3): mean 90, standard deviation 7.9; ±5 sd.
    let n = rounds * labelers.len();
    assert_eq!(n, 300);
    assert!((50..=130).contains(&gold), "{gold} gold of {n} claims");
    // No labeler was served the same gold twice; no copy went back to the queue.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM (SELECT l.labeler_id, c.gold_id FROM review_tasks c \
             JOIN task_leases l ON l.task_id = c.id WHERE c.gold_id IS NOT NULL \
             GROUP BY l.labeler_id, c.gold_id HAVING COUNT(*) > 1) twice"
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL AND status <> 'gold-dropped'"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        gold as i64
    );
}
dual!(the_share_of_gold_follows_the_rate);

/// Uploads `h264.mp4` as camera `cam-1`, starting 2 s before the events.
async fn upload_clip(app: &TestApp, key: &str) -> String {
    app.upload_clip(key, "h264.mp4", "cam-1", "2026-11-25T09:59:58Z")
        .await
}

async fn fetch(app: &TestApp, url: &str, token: &str) -> StatusCode {
    app.http
        .get(format!("{}{url}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// A task with its verdicts, as a supervisor reads it.
async fn detail(app: &TestApp, supervisor: &str, task_id: &str) -> Value {
    let (st, d) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{task_id}"),
            supervisor,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    d
}

async fn a_gold_copy_looks_and_plays_like_any_task(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 1.0).await;
    let app = &s.app;
    let clip_id = upload_clip(app, &s.key).await;
    // The source: an unsure event shown by the clip, in a session that also
    // took two breads, resolved as one milk; the shopper has left.
    let mut source = event("g0", "s-src", "pick", 1, UNSURE);
    source["clips"] = json!([clip_id]);
    let (st, b) = app
        .events(
            &s.key,
            json!([source, event("b0", "s-src", "pick", 2, &[("bread", 0.97)])]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    run_media_jobs(app).await;
    let src = claim_id(app, &s.sam).await;
    assert_eq!(app.verdict(&s.sam, &src, milk()).await.0, StatusCode::OK);
    let (_, receipt) = app.exit(&s.key, "s-src", "2026-11-25T10:00:30Z").await;
    assert_eq!(receipt["status"], "final");
    mark_all(&s, std::slice::from_ref(&src)).await;
    // A real task showing the same clip, for comparison, in a session that
    // took a bread.
    let mut real = event("r0", "s-real", "pick", 1, UNSURE);
    real["clips"] = json!([clip_id]);
    let (_, r) = app
        .events(
            &s.key,
            json!([real, event("b1", "s-real", "pick", 1, &[("bread", 0.97)])]),
        )
        .await;
    let real_id = r[0]["task_id"].as_str().unwrap().to_string();
    run_media_jobs(app).await;

    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let (st, gold_claim) = app.claim(&ann).await;
    assert_eq!(st, StatusCode::OK, "{gold_claim}");
    let copy = gold_claim["task"]["task_id"].as_str().unwrap().to_string();
    assert!(is_gold(app, &copy).await);
    // Sam answered the source, so he gets the real task.
    let (_, real_claim) = app.claim(&s.sam).await;
    assert_eq!(real_claim["task"]["task_id"], real_id.as_str());

    // The same shape, nothing that says gold.
    assert_eq!(key_paths(&gold_claim), key_paths(&real_claim));
    assert!(
        !gold_claim.to_string().to_lowercase().contains("gold"),
        "{gold_claim}"
    );
    let task = &gold_claim["task"];
    assert_eq!(task["event_id"], "g0");
    assert_eq!(task["session_id"], "s-src");
    // Blind, as every task that measures: no reason, no model answer, no
    // confidence, the same products in a neutral order.
    assert_eq!(task["blind"], true);
    assert!(task["reason"].is_null() && task["kind"].is_null() && task["quantity"].is_null());
    assert_eq!(task["required_verdicts"], 1);
    let skus = |t: &Value| {
        let mut v: Vec<String> = t["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sku"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(skus(task), skus(&real_claim["task"]));
    assert!(task["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["confidence"].is_null()));
    assert_eq!(task["clips"][0]["clip_id"], clip_id.as_str());
    assert_eq!(task["clips"][0]["status"], "ready");

    // Its video, filmstrip and poster play for the holder only.
    let clip = &task["clips"][0];
    for field in ["video_url", "filmstrip_url", "poster_url"] {
        let url = clip[field].as_str().unwrap();
        assert_eq!(fetch(app, url, &ann).await, StatusCode::OK, "{field}");
        assert_eq!(
            fetch(app, url, &bob).await,
            StatusCode::FORBIDDEN,
            "{field}"
        );
    }

    // A reloaded console finds it as claimed.
    let (st, held) = app
        .call(Method::GET, "/api/v1/tasks/leased", &ann, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(held, json!([gold_claim]));

    // The cart so far leaves the answer out: the breads, not the milk.
    let (st, ctx) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{copy}/context"),
            &ann,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{ctx}");
    assert_eq!(
        ctx,
        json!({
            "task_id": copy,
            "session_id": "s-src",
            "cart": [{"sku": "bread", "name": "Bread", "quantity": 2, "unit_price_cents": 399, "total_cents": 798}],
            "cart_total_cents": 798,
            "other_events_in_review": 0,
            "exited": true,
        })
    );
    let (_, real_ctx) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{real_id}/context"),
            &s.sam,
            None,
        )
        .await;
    assert_eq!(key_paths(&ctx), key_paths(&real_ctx));

    // Catalog search and heartbeats work as for any task.
    let (st, found) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{copy}/products?q=milk"),
            &ann,
            None,
        )
        .await;
    assert_eq!((st, &found[0]["sku"]), (StatusCode::OK, &json!("milk")));
    app.clock.advance(10_000);
    let (st, hb) = post(app, &ann, &copy, "heartbeat").await;
    assert_eq!(st, StatusCode::OK, "{hb}");
    assert_eq!(hb["lease_expires_at"], "2026-11-25T10:01:10.001Z");

    // A supervisor's detail has the same shape too.
    assert_eq!(
        key_paths(&detail(app, &s.sue, &copy).await),
        key_paths(&detail(app, &s.sue, &real_id).await)
    );

    // The verdict answers as for any task settled by one verdict, and is
    // idempotent the same way.
    let (st, v) = app.verdict(&ann, &copy, milk()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"task_id": copy, "status": "resolved"}));
    let (_, real_v) = app.verdict(&s.sam, &real_id, milk()).await;
    assert_eq!(real_v, json!({"task_id": real_id, "status": "resolved"}));
    let (st, again) = app.verdict(&ann, &copy, milk()).await;
    assert_eq!((st, &again), (StatusCode::OK, &v));
    let (st, b) = app.verdict(&ann, &copy, json!({"action": "none"})).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "verdict-conflict"));
    // Stored like any verdict, with its handling time.
    assert_eq!(
        app.count(&format!(
            "SELECT handling_ms FROM verdicts WHERE task_id = '{copy}'"
        ))
        .await,
        10_000
    );
    // Answered, its media is closed to ann like any answered task's.
    let url = clip["video_url"].as_str().unwrap();
    assert_eq!(fetch(app, url, &ann).await, StatusCode::FORBIDDEN);
}
dual!(a_gold_copy_looks_and_plays_like_any_task);

/// A copy of an audit sample shows two verdicts needed, like the real audit
/// sample beside it, and its verdict answers `ready` as a real one's first
/// verdict does; it is still scored on that one answer.
async fn a_gold_copy_of_an_audit_sample_needs_two_verdicts_like_one(backend: Backend) {
    let s = setup(backend, |c| c.gold_rate = 1.0).await;
    let app = &s.app;
    let boss = app.user("boss2", Role::Admin).await;
    let (st, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{}/policy", s.store_id),
            &boss,
            Some(json!({"audit_rate": 1.0})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let sure = &[("milk", 0.97)];
    let (_, out) = app
        .events(&s.key, event("g0", "s-src", "pick", 1, sure))
        .await;
    assert_eq!(out["reason"], "audit-sample", "{out}");
    let src = out["task_id"].as_str().unwrap().to_string();
    let tom = app.user("tom", Role::Labeler).await;
    for (who, status) in [(&s.sam, "ready"), (&tom, "resolved")] {
        assert_eq!(claim_id(app, who).await, src);
        let (st, v) = app.verdict(who, &src, milk()).await;
        assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some(status)));
    }
    let gold = mark_all(&s, std::slice::from_ref(&src)).await.remove(0);
    let (_, out) = app
        .events(&s.key, event("r0", "s-real", "pick", 1, sure))
        .await;
    let real = out["task_id"].as_str().unwrap().to_string();

    let ann = app.user("ann", Role::Labeler).await;
    let (st, gold_claim) = app.claim(&ann).await;
    assert_eq!(st, StatusCode::OK, "{gold_claim}");
    let copy = gold_claim["task"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(gold_of(app, &copy).await, gold);
    let (_, real_claim) = app.claim(&ann).await;
    assert_eq!(real_claim["task"]["task_id"], real.as_str());
    for field in ["reason", "required_verdicts"] {
        assert_eq!(
            gold_claim["task"][field], real_claim["task"][field],
            "{field}"
        );
    }
    assert_eq!(gold_claim["task"]["required_verdicts"], 2);

    let (_, v) = app.verdict(&ann, &copy, milk()).await;
    let (_, real_v) = app.verdict(&ann, &real, milk()).await;
    assert_eq!(
        (v["status"].as_str(), real_v["status"].as_str()),
        (Some("ready"), Some("ready"))
    );
    let (_, again) = app.verdict(&ann, &copy, milk()).await;
    assert_eq!(again, v, "a repeat answers the same");
    assert_eq!(status_of(app, &copy).await, "gold-answered");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM gold_answers WHERE task_id = '{copy}' AND correct = 1"
        ))
        .await,
        1
    );
}
dual!(a_gold_copy_of_an_audit_sample_needs_two_verdicts_like_one);

async fn gold_answers_score_labelers_and_flag_only_with_enough_answers(backend: Backend) {
    let s = setup(backend, |c| {
        c.gold_rate = 1.0;
        c.gold_min_answers = 3;
        c.gold_min_accuracy = 0.8;
    })
    .await;
    let app = &s.app;
    let none = json!({"action": "none"});
    let two_colas = json!({"action": "pick", "sku": "cola", "quantity": 2});
    let sources =
        resolved_tasks(&s, "g", "s-src", &[milk(), two_colas.clone(), none.clone()]).await;
    let golds = mark_all(&s, &sources).await;
    for i in 0..6 {
        unsure(&s, &format!("r{i}"), "s-real").await;
    }
    let bob = app.user("bob", Role::Labeler).await;
    let carl = app.user("carl", Role::Labeler).await;
    let dan = app.user("dan", Role::Labeler).await;
    // Gold is served newest first: none, two colas, one milk.
    let answers = [
        // bob: right, wrong quantity, can't tell: 1 of 3, below 0.8.
        (
            &bob,
            vec![
                none.clone(),
                json!({"action": "pick", "sku": "cola", "quantity": 1}),
                json!({"cant_tell": true}),
            ],
        ),
        // carl: wrong twice: 0 of 2, too few to judge.
        (
            &carl,
            vec![
                milk(),
                json!({"action": "return", "sku": "cola", "quantity": 2}),
            ],
        ),
        // dan: all right.
        (&dan, vec![none.clone(), two_colas.clone(), milk()]),
    ];
    for (who, given) in &answers {
        for (i, answer) in given.iter().enumerate() {
            let copy = claim_id(app, who).await;
            assert_eq!(gold_of(app, &copy).await, golds[2 - i]);
            app.clock.advance(2_000);
            let (st, v) = app.verdict(who, &copy, answer.clone()).await;
            // As for a task needing one verdict: "can't tell" would escalate it.
            let shown = if answer["cant_tell"] == true {
                "escalated"
            } else {
                "resolved"
            };
            assert_eq!(
                (st, v["status"].as_str()),
                (StatusCode::OK, Some(shown)),
                "{v}"
            );
            let (st, again) = app.verdict(who, &copy, answer.clone()).await;
            assert_eq!((st, &again), (StatusCode::OK, &v), "the same answer again");
            assert_eq!(status_of(app, &copy).await, "gold-answered");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM gold_answers").await, 8);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM gold_answers WHERE correct = 1")
            .await,
        4
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM verdicts v JOIN review_tasks t ON t.id = v.task_id \
             WHERE t.gold_id IS NOT NULL AND v.handling_ms = 2000"
        )
        .await,
        8
    );

    let (st, q) = app
        .call(Method::GET, "/api/v1/labelers/quality", &s.sue, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert_eq!(q["min_accuracy"], 0.8);
    assert_eq!(q["min_answers"], 3);
    // Today and the 6 days before, UTC: the dashboard's window.
    assert_eq!(q["since"], "2026-11-19T00:00:00.000Z");
    let rows = q["labelers"].as_array().unwrap();
    let summary: Vec<(&str, i64, i64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["username"].as_str().unwrap(),
                r["answers"].as_i64().unwrap(),
                r["correct"].as_i64().unwrap(),
                r["flagged"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bob", 3, 1, true),
            ("carl", 2, 0, false),
            ("dan", 3, 3, false)
        ],
        "flagged first, then lowest accuracy"
    );
    let (low, high) = recount::domain::stats::wilson_interval(1, 3, 1.96).unwrap();
    assert_eq!(rows[0]["accuracy"].as_f64().unwrap(), 1.0 / 3.0);
    assert_eq!(rows[0]["accuracy_low"].as_f64().unwrap(), low);
    assert_eq!(rows[0]["accuracy_high"].as_f64().unwrap(), high);
    assert_eq!(rows[1]["accuracy"], 0.0);
    assert_eq!(rows[2]["accuracy"], 1.0);
    let (st, b) = app
        .call(Method::GET, "/api/v1/labelers/quality", &bob, None)
        .await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));

    // Per gold task: answers and correct ones.
    let (_, list) = app.call(Method::GET, "/api/v1/gold", &s.sue, None).await;
    let per_gold: Vec<(i64, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["answers"].as_i64().unwrap(),
                g["correct"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_gold, [(3, 2), (3, 1), (2, 1)], "newest first");

    let text = app.metrics().await;
    assert!(
        text.contains("recount_gold_answers_total{correct=\"true\"}")
            && text.contains("recount_gold_answers_total{correct=\"false\"}"),
        "{text}"
    );

    // Answers older than 7 days no longer count (sue signs in again: her
    // token has expired by then).
    app.clock.advance(7 * 24 * 3_600_000);
    let sue = app.user("sue", Role::Supervisor).await;
    let (st, q) = app
        .call(Method::GET, "/api/v1/labelers/quality", &sue, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert_eq!(q["labelers"], json!([]));
}
dual!(gold_answers_score_labelers_and_flag_only_with_enough_answers);

/// What a gold answer must never change, read from the database.
async fn untouchable(app: &TestApp, key: &str) -> Vec<String> {
    let db = app.state.db.reader();
    let mut out = Vec::new();
    for session in ["s-done", "s-open"] {
        out.push(app.receipt(key, session).await.1.to_string());
    }
    let sessions: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT session_id, status, open_reviews, exited_at FROM sessions ORDER BY session_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    out.push(format!("{sessions:?}"));
    // Label columns of events: what a resolution sets.
    type EventRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT event_id, status, final_action, final_sku, final_quantity, resolved_at \
         FROM events WHERE route <> 'gold' ORDER BY event_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    out.push(format!("{events:?}"));
    let tasks: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, status, deadline_at, verdict_count FROM review_tasks \
         WHERE gold_id IS NULL ORDER BY id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    out.push(format!("{tasks:?}"));
    let counts = recount::db::tasks::counts_by_status(&app.state.db)
        .await
        .unwrap();
    out.push(format!("{counts:?}"));
    out.push(format!(
        "jobs {} receipts {}",
        app.count("SELECT COUNT(*) FROM jobs").await,
        app.count("SELECT COUNT(*) FROM receipts").await
    ));
    out
}

async fn gold_answers_never_touch_the_source_session_or_its_receipt(backend: Backend) {
    let s = setup_with_webhook(backend, Some("http://127.0.0.1:9/hook"), |c| {
        c.gold_rate = 1.0;
        c.lease_ttl_ms = 30_000;
    })
    .await;
    let app = &s.app;
    // One source in a session whose receipt is final (its webhook queued),
    // one in a session still open.
    let done = resolved_tasks(&s, "d", "s-done", &[milk()]).await;
    let (_, r) = app.exit(&s.key, "s-done", "2026-11-25T10:00:00Z").await;
    assert_eq!(r["status"], "final");
    let cola = json!({"action": "pick", "sku": "cola", "quantity": 1});
    let open = resolved_tasks(&s, "o", "s-open", &[cola]).await;
    mark_all(&s, &[done[0].clone(), open[0].clone()]).await;
    for i in 0..3 {
        unsure(&s, &format!("r{i}"), "s-real").await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 1);
    let before = untouchable(app, &s.key).await;

    // Ann answers both golds, one right and one wrong; bob releases one and
    // lets the other expire.
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    for answer in [
        json!({"action": "pick", "sku": "cola", "quantity": 1}),
        json!({"action": "none"}),
    ] {
        let copy = claim_id(app, &ann).await;
        assert!(is_gold(app, &copy).await);
        assert_eq!(app.verdict(&ann, &copy, answer).await.0, StatusCode::OK);
    }
    let released = claim_id(app, &bob).await;
    assert_eq!(
        post(app, &bob, &released, "release").await.0,
        StatusCode::NO_CONTENT
    );
    let expired = claim_id(app, &bob).await;
    assert!(is_gold(app, &released).await && is_gold(app, &expired).await);
    app.clock.advance(30_001);
    assert_eq!(recount::jobs::sweep_leases(&app.state).await.unwrap(), 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM gold_answers").await, 2);

    assert_eq!(untouchable(app, &s.key).await, before);

    // The open session settles as if no copy existed: its source's label
    // counts once.
    let (_, r) = app.exit(&s.key, "s-open", "2026-11-25T10:01:00Z").await;
    assert_eq!(r["status"], "final");
    assert_eq!(
        r["lines"],
        json!([{"sku": "cola", "name": "Cola 330 ml", "quantity": 1, "unit_price_cents": 149, "total_cents": 149}])
    );
}
dual!(gold_answers_never_touch_the_source_session_or_its_receipt);

async fn released_or_expired_gold_copies_never_return_to_the_queue(backend: Backend) {
    let s = setup(backend, |c| {
        c.gold_rate = 1.0;
        c.lease_ttl_ms = 30_000;
    })
    .await;
    let app = &s.app;
    let sources = resolved_tasks(&s, "g", "s-src", &[milk(), milk()]).await;
    mark_all(&s, &sources).await;
    let real = unsure(&s, "r0", "s-real").await;
    let ann = app.user("ann", Role::Labeler).await;
    let carl = app.user("carl", Role::Labeler).await;
    let ready = "SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'";

    // Released: dropped, not ready; the lease history says why.
    let first = claim_id(app, &ann).await;
    assert!(is_gold(app, &first).await);
    assert_eq!(
        post(app, &ann, &first, "release").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status_of(app, &first).await, "gold-dropped");
    assert_eq!(app.count(ready).await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM task_leases WHERE task_id = '{first}' AND end_reason = 'released'"
        ))
        .await,
        1
    );
    let (st, b) = app.verdict(&ann, &first, milk()).await;
    assert_eq!((st, code(&b)), (StatusCode::FORBIDDEN, "lease-not-held"));

    // Expired: the sweep drops it without counting it as returned.
    let second = claim_id(app, &ann).await;
    assert!(is_gold(app, &second).await);
    assert_ne!(gold_of(app, &first).await, gold_of(app, &second).await);
    app.clock.advance(30_001);
    assert_eq!(recount::jobs::sweep_leases(&app.state).await.unwrap(), 0);
    assert_eq!(status_of(app, &second).await, "gold-dropped");
    assert_eq!(app.count(ready).await, 1);
    let (st, b) = app.verdict(&ann, &second, milk()).await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "lease-expired"));
    let (st, b) = post(app, &ann, &second, "heartbeat").await;
    assert_eq!((st, code(&b)), (StatusCode::CONFLICT, "lease-expired"));

    // Next claims are unaffected: a dropped gold is not served again, and
    // the real task comes next.
    assert_eq!(claim_id(app, &ann).await, real);
    assert_eq!(app.verdict(&ann, &real, milk()).await.0, StatusCode::OK);
    // Nothing real left: carl gets nothing, neither gold nor a dropped copy.
    assert_eq!(app.claim(&carl).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE gold_id IS NOT NULL")
            .await,
        2
    );
}
dual!(released_or_expired_gold_copies_never_return_to_the_queue);

async fn a_labeler_under_the_gold_floor_is_paused_until_a_supervisor_resumes(backend: Backend) {
    let s = setup(backend, |c| {
        c.gold_rate = 1.0;
        c.gold_min_answers = 2;
        c.gold_pause_floor = 0.5;
    })
    .await;
    let app = &s.app;
    let sources = resolved_tasks(&s, "g", "s-src", &[milk(), milk()]).await;
    mark_all(&s, &sources).await;
    for i in 0..4 {
        unsure(&s, &format!("r{i}"), "s-real").await;
    }
    let carl = app.user("carl", Role::Labeler).await;
    let wrong = json!({"action": "return", "sku": "cola", "quantity": 2});
    // The first wrong answer is too few to judge; the second pauses him.
    for _ in 0..2 {
        let copy = claim_id(app, &carl).await;
        let (st, v) = app.verdict(&carl, &copy, wrong.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, body) = app.claim(&carl).await;
    assert_eq!(
        (st, code(&body)),
        (StatusCode::FORBIDDEN, "labeler-paused"),
        "{body}"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.paused' \
             AND actor_name = 'gold-floor' AND subject = 'carl'"
        )
        .await,
        1
    );
    let (_, people) = app.call(Method::GET, "/api/v1/users", &s.sue, None).await;
    let row = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["username"] == "carl")
        .unwrap()
        .clone();
    assert_eq!(
        (&row["paused"], &row["gold"]["flagged"]),
        (&json!(true), &json!(true)),
        "{row}"
    );
    assert!(
        row["paused_reason"].as_str().unwrap().contains("0 of 2"),
        "{row}"
    );

    // A supervisor lets him back in; his next claim is served.
    let (st, r) = app
        .call(Method::POST, "/api/v1/users/carl/resume", &s.sue, None)
        .await;
    assert_eq!((st, &r["paused"]), (StatusCode::OK, &json!(false)), "{r}");
    let (st, c) = app.claim(&carl).await;
    assert_eq!(st, StatusCode::OK, "{c}");
}
dual!(a_labeler_under_the_gold_floor_is_paused_until_a_supervisor_resumes);
