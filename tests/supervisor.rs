//! The supervisor pages in a real headless Chromium against a real server:
//! the dashboard refreshing itself, an escalation settled with its video
//! and made a gold task, the gold list, and a routing threshold recommended
//! from real verdicts and applied by an admin; a training-data export
//! started from the dashboard and downloaded. Screenshots go to
//! `target/browser-artifacts/`.

use crate::browser;
use crate::common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use browser::{Browser, BrowserOptions};
use common::{event, run_media_jobs, seed_training_data, Backend, TestApp, PASSWORD};
use recount::auth::Role;
use recount::db::stores;
use recount::domain::routing::RoutingPolicy;

const WAIT: Duration = Duration::from_secs(20);

async fn launch(name: &str) -> Browser {
    launch_with(BrowserOptions::default().test_name(name)).await
}

async fn launch_with(options: BrowserOptions) -> Browser {
    Browser::launch(options.window_size(1440, 1000))
        .await
        .expect("launching Chromium")
}

/// Signs in through the form, landing on `page`.
async fn sign_in(b: &Browser, app: &TestApp, user: &str, page: &str, ready: &str) {
    b.goto(&format!("{}{page}", app.base)).await.unwrap();
    b.wait_for_selector("#username", WAIT).await.unwrap();
    b.type_into("#username", user).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.press_key("Enter").await.unwrap();
    b.wait_for_selector(ready, WAIT).await.unwrap();
}

async fn text(b: &Browser, css: &str) -> String {
    b.text(css).await.unwrap().trim().to_string()
}

/// Runs `submit` (a script that fills and submits a form), waits for the
/// table `#table_id` of the reloaded page and reads its cells, row by row.
async fn submitted_table(b: &Browser, submit: &str, table_id: &str) -> Vec<Vec<String>> {
    b.eval::<Value>(submit).await.unwrap();
    b.wait_for(
        table_id,
        &format!("document.getElementById('{table_id}') !== null"),
        WAIT,
    )
    .await
    .unwrap();
    b.eval(&format!(
        "return [...document.querySelectorAll('#{table_id} tr')] \
         .map(r => [...r.children].map(c => c.textContent.trim()))"
    ))
    .await
    .unwrap()
}

/// The row of a figure table whose first cell is `label`.
fn row(table: &[Vec<String>], label: &str) -> Vec<String> {
    table
        .iter()
        .find(|r| r[0] == label)
        .unwrap_or_else(|| panic!("no row {label}: {table:?}"))
        .clone()
}

/// A page request with a session cookie holding `token` (or none).
async fn page_status(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.header("cookie", format!("recount_session={t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_supervisors_open_the_supervisor_pages() {
    let app = TestApp::start(Backend::Sqlite).await;
    let labeler = app.user("ana", Role::Labeler).await;
    let supervisor = app.user("sue", Role::Supervisor).await;
    for path in ["/dashboard", "/escalations", "/gold", "/policy", "/exports"] {
        let (status, location) = page_status(&app, path, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path} without a session");
        assert_eq!(location, format!("/login?next={path}"));
        let (status, _) = page_status(&app, path, Some(&labeler)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} for a labeler");
        let (status, _) = page_status(&app, path, Some(&supervisor)).await;
        assert_eq!(status, StatusCode::OK, "{path} for a supervisor");
    }
    // A store's policy page with a target: who asks is checked first, the
    // target comes back after signing in, a bad one is refused.
    let (store_id, _) = app.store_with_catalog().await;
    let page = format!("/policy/{store_id}");
    let (status, location) = page_status(&app, &format!("{page}?target=0.05"), None).await;
    assert_eq!(
        (status, location),
        (
            StatusCode::SEE_OTHER,
            format!("/login?next={page}?target=0.05")
        )
    );
    // A what-if: run for supervisors, refused with the simulation's code
    // when it names an unknown policy or an impossible day.
    for (token, query, expected) in [
        (
            &labeler,
            "whatif=baseline&shoppers=100",
            StatusCode::FORBIDDEN,
        ),
        (
            &supervisor,
            "whatif=cheapest",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &supervisor,
            "whatif=baseline&shoppers=10",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &supervisor,
            "whatif=baseline&shoppers=many",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &supervisor,
            "whatif=&shoppers=100",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (&supervisor, "whatif=baseline&shoppers=100", StatusCode::OK),
        // A replay: refused for days without events, a bad day or a
        // policy tuned on a simulated day.
        (
            &labeler,
            "replay=baseline&replay_from=2026-11-19&replay_to=2026-11-25",
            StatusCode::FORBIDDEN,
        ),
        (
            &supervisor,
            "replay=baseline&replay_from=2026-11-19&replay_to=2026-11-25",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &supervisor,
            "replay=baseline&replay_from=someday",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &supervisor,
            "replay=matched",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (&supervisor, "replay=", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let path = format!("{page}?{query}");
        let (status, _) = page_status(&app, &path, Some(token)).await;
        assert_eq!(status, expected, "{path}");
    }
    for (token, target, expected) in [
        (&labeler, "2", StatusCode::FORBIDDEN),
        (&supervisor, "2", StatusCode::UNPROCESSABLE_ENTITY),
        (&supervisor, "x", StatusCode::UNPROCESSABLE_ENTITY),
        (&supervisor, "0.01", StatusCode::OK),
    ] {
        let path = format!("{page}?target={target}");
        let (status, _) = page_status(&app, &path, Some(token)).await;
        assert_eq!(status, expected, "{path}");
    }
    assert_eq!(
        page_status(&app, "/dashboard/live", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        page_status(&app, "/dashboard/live", Some(&labeler)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        page_status(&app, "/policy/no-such-store", Some(&supervisor))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Home sends each role where it works.
    assert_eq!(
        page_status(&app, "/", Some(&supervisor)).await.1,
        "/dashboard"
    );
    assert_eq!(page_status(&app, "/", Some(&labeler)).await.1, "/console");
}

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_queue_and_flow_and_updates_without_a_reload() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store_id, key) = app.store_with_catalog().await;
    // No audit draw: which events need a human is then decided by
    // confidence alone, so the expected numbers are exact.
    app.set_policy(
        &store_id,
        RoutingPolicy {
            audit_rate: 0.0,
            ..RoutingPolicy::default()
        },
    )
    .await;
    app.add_user("sue", Role::Supervisor).await;
    let ana = app.user("ana", Role::Labeler).await;
    for i in 0..3 {
        let (status, body) = app
            .events(
                &key,
                event(&format!("u{i}"), &format!("s{i}"), "pick", 1, UNSURE),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .events(&key, event("c0", "s9", "pick", 1, &[("bread", 0.99)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance(60_000);
    let (_, claim) = app.claim(&ana).await;
    let task = claim["task"]["task_id"].as_str().unwrap().to_string();
    app.clock.advance(8_000);
    let (status, body) = app
        .verdict(&ana, &task, json!({"action": "pick", "sku": "milk"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let b = launch("dashboard").await;
    sign_in(&b, &app, "sue", "/dashboard", "#queue-table").await;
    b.eval::<Value>("window.__samePage = true; return null")
        .await
        .unwrap();
    assert_eq!(text(&b, "#total-ready").await, "2");
    assert_eq!(text(&b, "#total-leased").await, "0");
    assert_eq!(text(&b, "#total-escalated").await, "0");
    assert_eq!(text(&b, "#tile-verdicts-hour .tile-value").await, "1");
    assert_eq!(
        text(&b, "#tile-event-review-rate .tile-value").await,
        "75.0 %",
        "3 of 4 events needed a human"
    );
    // Handling times are kept in histogram buckets a few percent wide.
    let p50 = text(&b, "#tile-handling-p50 .tile-value").await;
    let seconds: f64 = p50.trim_end_matches(" s").parse().unwrap();
    assert!((seconds - 8.0).abs() <= 0.4, "one 8 s verdict: {p50}");
    let labelers = text(&b, "#labelers-table tbody").await;
    assert!(labelers.contains("ana"), "{labelers}");
    let charts: i64 = b
        .eval("return document.querySelectorAll('#dashboard-body figure.chart svg').length")
        .await
        .unwrap();
    assert!(
        charts >= 3,
        "verdict, receipt and calibration charts: {charts}"
    );
    let reliability: i64 = b
        .eval("return document.querySelectorAll('#models-title ~ .models figure.model').length")
        .await
        .unwrap();
    assert_eq!(reliability, 1, "one model version with human labels");
    // Ana answered a minute ago: one labeler at work. The store has no
    // history on past Wednesdays, so no forecast needs anyone.
    assert_eq!(text(&b, "#tile-working-now .tile-value").await, "1");
    assert_eq!(text(&b, "#tile-needed-now .tile-value").await, "–");
    b.screenshot("dashboard").await.unwrap();

    // New work arrives; the open page shows it by itself.
    for i in 3..5 {
        let (status, _) = app
            .events(
                &key,
                event(&format!("u{i}"), &format!("s{i}"), "pick", 1, UNSURE),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    b.wait_for(
        "the ready count to follow the queue",
        "document.getElementById('total-ready')?.textContent.trim() === '4'",
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        b.eval::<bool>("return window.__samePage === true")
            .await
            .unwrap(),
        "updated in place, not reloaded"
    );
    assert_eq!(text(&b, "#live-status").await, "Live");
    b.assert_no_console_errors().await;

    // The session ends elsewhere: the page says so instead of pretending.
    b.delete_all_cookies().await.unwrap();
    b.wait_for(
        "the page to notice the session ended",
        "document.getElementById('live-status').textContent.startsWith('Signed out')",
        WAIT,
    )
    .await
    .unwrap();
}

/// A high-value event two labelers disagree on, filmed by two cameras whose
/// clips the media jobs processed; the session has exited. Returns the task.
async fn disputed_task(app: &TestApp, key: &str, store_id: &str) -> String {
    app.set_policy(
        store_id,
        RoutingPolicy {
            audit_rate: 0.0,
            high_value_cents: Some(10_000),
            ..RoutingPolicy::default()
        },
    )
    .await;
    let front = app
        .upload_clip(key, "h264.mp4", "cam-front", "2026-11-25T09:59:58.500Z")
        .await;
    let side = app
        .upload_clip(key, "hevc.mp4", "cam-side", "2026-11-25T09:59:59Z")
        .await;
    let mut ev = event("tv-1", "s-tv", "pick", 1, &[("tv", 0.97), ("milk", 0.01)]);
    ev["clips"] = json!([front, side]);
    let (status, out) = app.events(key, ev).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let task = out["task_id"].as_str().unwrap().to_string();
    run_media_jobs(app).await;
    let (status, _) = app.exit(key, "s-tv", "2026-11-25T10:01:00Z").await;
    assert_eq!(status, StatusCode::OK);
    for (name, sku) in [("ana", "tv"), ("bob", "milk")] {
        let token = app.user(name, Role::Labeler).await;
        let (_, claim) = app.claim(&token).await;
        assert_eq!(claim["task"]["task_id"], task.as_str());
        app.clock.advance(5_000);
        let (status, body) = app
            .verdict(
                &token,
                &task,
                json!({"action": "pick", "sku": sku, "note": format!("{name} saw {sku}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_settles_an_escalation_from_its_video_and_keeps_it_as_gold() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store_id, key) = app.store_with_catalog().await;
    let sue = app.user("sue", Role::Supervisor).await;
    let task = disputed_task(&app, &key, &store_id).await;
    let (_, receipt) = app.receipt(&key, "s-tv").await;
    assert_eq!(receipt["status"], "pending", "{receipt}");

    let b = launch("escalations").await;
    let card = format!("#escalation-{task}");
    sign_in(&b, &app, "sue", "/escalations", &card).await;
    b.wait_for(
        "both cameras' video to load for the supervisor",
        &format!(
            "[...document.querySelectorAll('{card} video')].length === 2 && \
             [...document.querySelectorAll('{card} video')].every(v => v.readyState >= 1 && !v.error)"
        ),
        WAIT,
    )
    .await
    .unwrap();
    let verdicts = text(&b, &format!("{card} .verdicts")).await;
    assert!(
        verdicts.contains("ana") && verdicts.contains("took 1 × tv"),
        "{verdicts}"
    );
    assert!(
        verdicts.contains("bob") && verdicts.contains("bob saw milk"),
        "{verdicts}"
    );
    let guesses = text(&b, &format!("{card} .guesses")).await;
    assert!(
        guesses.contains("Television") && guesses.contains("97.0 %"),
        "{guesses}"
    );
    assert_eq!(
        text(&b, &format!("{card} .escalation-reason")).await,
        "disagreement"
    );
    b.screenshot("escalation").await.unwrap();

    // Decide "took the television", keep it as gold.
    b.eval::<Value>(&format!(
        "const s = document.querySelector('{card} select.sku'); s.value = 'tv'; \
         s.dispatchEvent(new Event('input', {{bubbles: true}})); return null"
    ))
    .await
    .unwrap();
    b.click(&format!("{card} button[data-action=pick]"))
        .await
        .unwrap();
    b.click(&format!("{card} .make-gold")).await.unwrap();
    b.click(&format!("{card} button[type=submit]"))
        .await
        .unwrap();
    b.wait_for(
        "the resolved card to leave the list",
        &format!("document.querySelector('{card}') === null"),
        WAIT,
    )
    .await
    .unwrap();
    assert!(text(&b, "#escalations-status")
        .await
        .starts_with("No escalated tasks"));

    let (status, detail) = app
        .call(Method::GET, &format!("/api/v1/tasks/{task}"), &sue, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "resolved", "{detail}");
    let (_, receipt) = app.receipt(&key, "s-tv").await;
    assert_eq!(receipt["status"], "final", "{receipt}");
    assert_eq!(receipt["lines"][0]["sku"], "tv", "{receipt}");
    let (_, gold) = app.call(Method::GET, "/api/v1/gold", &sue, None).await;
    let gold = gold.as_array().unwrap();
    assert_eq!(gold.len(), 1, "{gold:?}");
    assert_eq!(gold[0]["task_id"], task.as_str());
    assert_eq!(gold[0]["label"]["sku"], "tv");

    // The gold page lists it; retiring it takes it out of the queues.
    let gold_row = format!("#gold-{}", gold[0]["gold_id"].as_str().unwrap());
    b.goto(&format!("{}/gold", app.base)).await.unwrap();
    b.wait_for_selector(&gold_row, WAIT).await.unwrap();
    let row = text(&b, &gold_row).await;
    assert!(row.contains("took 1 × tv"), "{row}");
    b.screenshot("gold").await.unwrap();
    b.click(&format!("{gold_row} button")).await.unwrap();
    b.wait_for(
        "the gold task to show as retired",
        &format!("document.querySelector('{gold_row}')?.classList.contains('retired')"),
        WAIT,
    )
    .await
    .unwrap();
    let (_, gold) = app.call(Method::GET, "/api/v1/gold", &sue, None).await;
    assert_eq!(gold[0]["active"], false, "{gold}");
    b.assert_no_console_errors().await;
}

/// Ingests events of one confidence and has `labeler` answer each one,
/// `wrong` of them with another product than the model's guess.
async fn labelled_events(
    app: &TestApp,
    key: &str,
    labeler: &str,
    prefix: &str,
    confidence: f64,
    n: usize,
    wrong: usize,
) {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            event(
                &format!("{prefix}-{i}"),
                &format!("{prefix}-s{i}"),
                "pick",
                1,
                &[("milk", confidence)],
            )
        })
        .collect();
    let (status, body) = app.events(key, json!(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 0..n {
        let (status, claim) = app.claim(labeler).await;
        assert_eq!(status, StatusCode::OK, "{claim}");
        let task = claim["task"]["task_id"].as_str().unwrap().to_string();
        let sku = if i < wrong { "cola" } else { "milk" };
        app.clock.advance(1_000);
        let (status, body) = app
            .verdict(
                labeler,
                &task,
                json!({"action": "pick", "sku": sku, "quantity": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_page_recommends_a_threshold_that_an_admin_applies() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store_id, key) = app.store_with_catalog().await;
    app.add_user("ada", Role::Admin).await;
    let ana = app.user("ana", Role::Labeler).await;
    // Every confident event is audited while the history is made, one
    // verdict each: 200 audits at 0.95 all right; 50 unsure events at 0.85
    // all right; 50 at 0.75, 10 of them wrong.
    let audited = |audit_rate| RoutingPolicy {
        threshold: 0.90,
        margin: 0.0,
        audit_rate,
        audit_verdicts: 1,
        ..RoutingPolicy::default()
    };
    app.set_policy(&store_id, audited(1.0)).await;
    labelled_events(&app, &key, &ana, "a", 0.95, 200, 0).await;
    labelled_events(&app, &key, &ana, "b", 0.85, 50, 0).await;
    labelled_events(&app, &key, &ana, "c", 0.75, 50, 10).await;
    app.set_policy(&store_id, audited(0.02)).await;

    let b = launch_with(
        BrowserOptions::default()
            .test_name("policy")
            // The refused what-if is a page answered 422.
            .ignore_console("whatif=cheapest")
            .ignore_console("replay_from=2026-01-01"),
    )
    .await;
    sign_in(
        &b,
        &app,
        "ada",
        &format!("/policy/{store_id}"),
        "#recommendation-summary",
    )
    .await;
    // Lowering the threshold to 0.80 auto-accepts the 0.85 events too, all
    // of which humans confirmed: 0 errors in 250 known answers. Going below
    // 0.75 would let in 10 errors in 300 (3.3 %), over the 0.5 % target.
    let recommended: String = b
        .eval("return document.getElementById('use-recommended').dataset.threshold")
        .await
        .unwrap();
    // Every threshold from 0.76 to 0.85 keeps exactly the right events;
    // ties go to the higher threshold.
    let t: f64 = recommended.parse().unwrap();
    assert!((t - 0.85).abs() < 1e-9, "recommended {t}");
    let summary = text(&b, "#recommendation-summary").await;
    assert!(
        summary.contains(&format!("Threshold {recommended}")),
        "{summary}"
    );
    // The same recommendation as JSON, for scripts; bad input answered.
    let sue = app.user("sue", Role::Supervisor).await;
    let path = format!("/api/v1/stores/{store_id}/recommendation");
    let (status, rec) = app.call(Method::GET, &path, &sue, None).await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["target_error"], 0.005);
    let api_t = rec["recommended"]["threshold"].as_f64().unwrap();
    assert!((api_t - t).abs() < 1e-9, "API {api_t}, page {t}");
    // What it expects: the 0.75 events reviewed, and 2 % of the 250
    // confident ones audited, out of 300; every confident event has a
    // human label, none wrong, so the error is exactly 0.
    let r = &rec["recommended"];
    assert!(
        (r["review_rate"].as_f64().unwrap() - 55.0 / 300.0).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(
        (
            &r["confident"],
            &r["known_wrong"],
            &r["estimated"],
            &r["error"]
        ),
        (&json!(250), &json!(0), &json!(0), &json!(0.0)),
        "{r}"
    );
    let (status, loose) = app
        .call(Method::GET, &format!("{path}?target=0.05"), &sue, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{loose}");
    assert!(
        loose["recommended"]["threshold"].as_f64().unwrap() <= api_t,
        "a looser target never asks for more review: {loose}"
    );
    for (query, code) in [
        ("?target=0", "invalid-target"),
        ("?target=x", "invalid-target"),
    ] {
        let (status, body) = app
            .call(Method::GET, &format!("{path}{query}"), &sue, None)
            .await;
        assert_eq!(
            (status, common::code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/stores/nope/recommendation",
            &sue,
            None,
        )
        .await;
    assert_eq!(
        (status, common::code(&body)),
        (StatusCode::NOT_FOUND, "unknown-store")
    );
    let (status, _) = app.call(Method::GET, &path, &ana, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let svg: i64 = b
        .eval("return document.querySelectorAll('figure.chart svg').length")
        .await
        .unwrap();
    assert_eq!(svg, 1);
    b.screenshot("policy").await.unwrap();

    b.click("#use-recommended").await.unwrap();
    assert_eq!(
        b.eval::<String>("return document.getElementById('threshold').value")
            .await
            .unwrap(),
        recommended
    );
    b.click("#save-policy").await.unwrap();
    b.wait_for(
        "the policy to be saved",
        "document.getElementById('policy-status').textContent.startsWith('Saved')",
        WAIT,
    )
    .await
    .unwrap();
    let mut conn = app.state.db.reader().acquire().await.unwrap();
    let store = stores::get(&mut conn, &store_id).await.unwrap().unwrap();
    assert!((store.policy.threshold - t).abs() < 1e-9);
    assert_eq!(store.policy.audit_rate, 0.02, "other fields kept");

    // A looser target, chosen on the page: at 5 % the 0.75 events' 10
    // errors in 300 (3.3 %) are acceptable, so 0.75 is recommended.
    b.eval::<Value>(
        "document.getElementById('target').value = '0.05'; \
         document.getElementById('target-form').requestSubmit(); return null",
    )
    .await
    .unwrap();
    b.wait_for(
        "the page recomputed for 5 %",
        "location.search === '?target=0.05' && document.getElementById('use-recommended')",
        WAIT,
    )
    .await
    .unwrap();
    let loose: String = b
        .eval("return document.getElementById('use-recommended').dataset.threshold")
        .await
        .unwrap();
    assert_eq!(loose, "0.75");
    assert!(text(&b, "#rec-title").await.contains("5.0 %"));
    b.screenshot("policy-target").await.unwrap();

    // The calibration beside the raw confidence: ten bins; at 0.7–0.8 the
    // 50 reviewed events, 40 right, lean a little on the prior:
    // (40 + 5 · 0.75) / 55 = 0.795.
    let rows: Vec<Vec<String>> = b
        .eval(
            "return [...document.querySelectorAll('#calibration-table tbody tr')] \
             .map(r => [...r.children].map(c => c.textContent.trim()))",
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[7], ["0.7 – 0.8", "0.750", "50 (≈ 50)", "0.795"]);
    assert_eq!(rows[9][2], "200 (≈ 200)", "the audits, weighted alike");
    assert!(text(&b, "#cal-title").await.contains("m1"));

    // Charge-aware routing at 4 cents a review, chosen on the page.
    b.eval::<Value>(
        "document.getElementById('mode').value = 'charge-aware'; \
         document.getElementById('review_cost_cents').value = '4'; return null",
    )
    .await
    .unwrap();
    b.click("#save-policy").await.unwrap();
    b.wait_for(
        "charge-aware routing saved",
        "document.getElementById('policy-status').textContent.includes('charge-aware routing at 4 cents')",
        WAIT,
    )
    .await
    .unwrap();
    let mut conn = app.state.db.reader().acquire().await.unwrap();
    let store = stores::get(&mut conn, &store_id).await.unwrap().unwrap();
    assert_eq!(
        (store.policy.mode.as_str(), store.policy.review_cost_cents),
        ("charge-aware", Some(4))
    );
    b.screenshot("policy-charge-aware").await.unwrap();

    // What if: the store's policy (now charge-aware at 4 cents) against
    // the threshold and the baseline on a simulated day of 300 shoppers.
    let table = submitted_table(
        &b,
        "document.getElementById('whatif').value = 'threshold,threshold=0.95\\nbaseline'; \
         document.getElementById('shoppers').value = '300'; \
         document.getElementById('whatif-form').requestSubmit(); return null",
        "whatif-table",
    )
    .await;
    assert_eq!(
        &table[0][1..],
        ["current", "threshold,threshold=0.95", "baseline"],
        "{table:?}"
    );
    assert!(table[0][0].ends_with("events"), "{table:?}");
    // A higher threshold sends more events to people than the baseline's
    // 0.90, on the same day.
    let reviewed = |cell: &str| cell.split(' ').next().unwrap().parse::<u64>().unwrap();
    let to_people = row(&table, "events to people");
    assert!(
        reviewed(&to_people[2]) > reviewed(&to_people[3]),
        "{to_people:?}"
    );
    assert_eq!(
        row(&table, "audit samples (answered)")[3],
        "0 (0)",
        "the baseline's audits hold receipts"
    );
    assert_eq!(
        text(&b, "#whatif").await,
        "threshold,threshold=0.95\nbaseline",
        "the form keeps what was asked"
    );
    b.eval::<Value>("document.getElementById('whatif-title').scrollIntoView(); return null")
        .await
        .unwrap();
    b.screenshot("policy-what-if").await.unwrap();

    // A policy Recount does not know is refused beside the form.
    b.eval::<Value>(
        "document.getElementById('whatif').value = 'cheapest'; \
         document.getElementById('whatif-form').requestSubmit(); return null",
    )
    .await
    .unwrap();
    b.wait_for(
        "the refusal",
        "document.getElementById('whatif-error') !== null",
        WAIT,
    )
    .await
    .unwrap();
    assert!(text(&b, "#whatif-error")
        .await
        .contains("unknown policy \"cheapest\""));
    assert_eq!(
        b.eval::<i64>("return document.querySelectorAll('#whatif-table').length")
            .await
            .unwrap(),
        0
    );

    // Replay: the store's 300 events of this week through a threshold
    // that auto-accepts everything, beside the store's own policy.
    let days: Vec<String> = b
        .eval("return ['replay-from', 'replay-to'].map(id => document.getElementById(id).value)")
        .await
        .unwrap();
    assert_eq!(
        days,
        ["2026-11-19", "2026-11-25"],
        "the last week by default"
    );
    let table = submitted_table(
        &b,
        "document.getElementById('replay').value = 'threshold,threshold=0.5,margin=0'; \
         document.getElementById('replay-form').requestSubmit(); return null",
        "replay-table",
    )
    .await;
    assert_eq!(
        &table[0][1..],
        ["current", "threshold,threshold=0.5,margin=0"],
        "{table:?}"
    );
    assert_eq!(row(&table, "events")[1..], ["300", "300"]);
    assert_eq!(row(&table, "to people")[2], "0 (0.0 %)", "{table:?}");
    assert_eq!(row(&table, "auto-accepted")[2], "300");
    assert_eq!(
        row(&table, "labelled among them")[2],
        "300",
        "every event of the history has a person's label"
    );
    // The 10 wrong answers at 0.75 were 129 ¢ milk labelled 149 ¢ cola,
    // 20 ¢ each, all reviewed (weight 1): $2.00 exactly.
    assert_eq!(row(&table, "charge error $ (est.)")[2], "2.00", "{table:?}");
    assert!(text(&b, "#replay-summary")
        .await
        .starts_with("300 events from 2026-11-19 to 2026-11-25"));
    b.eval::<Value>("document.getElementById('replay-title').scrollIntoView(); return null")
        .await
        .unwrap();
    b.screenshot("policy-replay").await.unwrap();

    // Days without events are refused beside the form.
    b.eval::<Value>(
        "document.getElementById('replay-from').value = '2026-01-01'; \
         document.getElementById('replay-to').value = '2026-01-31'; \
         document.getElementById('replay-form').requestSubmit(); return null",
    )
    .await
    .unwrap();
    b.wait_for(
        "the replay's refusal",
        "document.getElementById('replay-error') !== null",
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        text(&b, "#replay-error")
            .await
            .contains("has no events between"),
        "{}",
        text(&b, "#replay-error").await
    );
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_sees_the_policy_but_cannot_change_it() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store_id, _) = app.store_with_catalog().await;
    app.add_user("sue", Role::Supervisor).await;
    let b = launch("policy_read_only").await;
    sign_in(
        &b,
        &app,
        "sue",
        &format!("/policy/{store_id}"),
        "#recommendation-summary",
    )
    .await;
    assert!(b.find_all("#save-policy").await.unwrap().is_empty());
    assert!(b
        .eval::<bool>("return document.getElementById('threshold').readOnly")
        .await
        .unwrap());
    let summary = text(&b, "#recommendation-summary").await;
    assert_eq!(
        summary, "No resolved events in the window.",
        "without history the page says what is missing"
    );
    b.goto(&format!("{}/policy", app.base)).await.unwrap();
    b.wait_for_selector("#stores-table", WAIT).await.unwrap();
    assert!(text(&b, "#stores-table").await.contains("Test store"));
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_export_is_started_from_the_dashboard_and_downloaded() {
    let app = TestApp::start(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let seeded = seed_training_data(&app, work.path(), 60, 10, 3).await;
    app.add_user("sue", Role::Supervisor).await;
    let b = launch("training_export").await;
    sign_in(&b, &app, "sue", "/dashboard", "#export-training-data").await;
    b.click("#export-training-data").await.unwrap();
    b.wait_for_selector("#new-export", WAIT).await.unwrap();
    let allowed = format!("input[name=store][value='{}']", seeded.store_id);
    let forbidden = format!("input[name=store][value='{}']", seeded.forbidden_store_id);
    assert_eq!(
        b.prop(&forbidden, "disabled").await.unwrap().as_deref(),
        Some("true"),
        "a store without consent cannot be ticked"
    );
    b.click(&allowed).await.unwrap();
    b.clear("#export-shard").await.unwrap();
    b.type_into("#export-shard", "1").await.unwrap();
    b.click("#start-export").await.unwrap();
    b.wait_for(
        "the new export listed as queued",
        "document.querySelector('#exports-table tbody tr[data-status=queued]')",
        WAIT,
    )
    .await
    .unwrap();
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(
        recount::jobs::run_next_job(&app.state, &client, recount::jobs::EXPORT_JOBS)
            .await
            .unwrap()
    );
    // The page polls while an export runs and shows it done, with links.
    b.wait_for(
        "the export done",
        "document.querySelector('#exports-table tbody tr[data-status=done] ul.files a')",
        WAIT,
    )
    .await
    .unwrap();
    let names: Vec<String> = b
        .eval("return [...document.querySelectorAll('ul.files a')].map(a => a.textContent)")
        .await
        .unwrap();
    assert_eq!(names.first().map(String::as_str), Some("manifest.jsonl"));
    assert!(names
        .iter()
        .any(|n| n.starts_with("train-") && n.ends_with(".tar")));
    // The link downloads with the session cookie.
    let lines: u64 = b
        .eval_async(
            "const href = document.querySelector('ul.files a').href; \
             const text = await (await fetch(href)).text(); \
             return text.trim().split('\\n').length;",
        )
        .await
        .unwrap();
    assert_eq!(lines, seeded.samples);
    b.screenshot("exports").await.unwrap();

    // A second export, deleted while it waits: the page keeps polling and
    // redrawing the list, and the armed button stays armed through it.
    b.click("#start-export").await.unwrap();
    b.wait_for(
        "the second export listed as queued",
        "document.querySelector('#exports-table tbody tr[data-status=queued]')",
        WAIT,
    )
    .await
    .unwrap();
    let queued: String = b
        .eval("return document.querySelector('#exports-table tbody tr[data-status=queued]').id.slice('export-'.length)")
        .await
        .unwrap();
    let delete_queued = format!("#export-{queued} button.delete-export");
    b.click(&delete_queued).await.unwrap();
    let loads: String = b
        .eval("return document.querySelector('#exports-table tbody').dataset.loads")
        .await
        .unwrap();
    b.wait_for(
        "a redraw of the list",
        &format!("Number(document.querySelector('#exports-table tbody').dataset.loads) > {loads}"),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(b.text(&delete_queued).await.unwrap(), "Confirm delete");
    b.click(&delete_queued).await.unwrap();
    b.wait_for(
        "the queued export shown deleted",
        &format!("document.querySelector('#export-{queued}[data-status=deleted]')"),
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        recount::jobs::run_next_job(&app.state, &client, recount::jobs::EXPORT_JOBS)
            .await
            .unwrap(),
        "its job is taken"
    );
    let never = recount::db::export::get(&app.state.db, &queued)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (never.status.as_str(), never.started_at),
        ("deleted", None),
        "and never runs"
    );

    // Deleting takes a second click; then the files are gone.
    let id: String = b
        .eval("return document.querySelector('#exports-table tbody tr[data-status=done]').id.slice('export-'.length)")
        .await
        .unwrap();
    let delete = format!("#export-{id} button.delete-export");
    b.click(&delete).await.unwrap();
    assert_eq!(b.text(&delete).await.unwrap(), "Confirm delete");
    assert_eq!(
        recount::db::export::get(&app.state.db, &id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "done",
        "one click deletes nothing"
    );
    b.click(&delete).await.unwrap();
    b.wait_for(
        "the export shown deleted",
        &format!("document.querySelector('#export-{id}[data-status=deleted]')"),
        WAIT,
    )
    .await
    .unwrap();
    let links: u64 = b
        .eval(&format!(
            "return document.querySelectorAll('#export-{id} ul.files a').length"
        ))
        .await
        .unwrap();
    assert_eq!(links, 0);
    let gone = recount::db::export::get(&app.state.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((gone.status.as_str(), gone.files.len()), ("deleted", 0));
    b.screenshot("exports-deleted").await.unwrap();
    b.assert_no_console_errors().await;
}
