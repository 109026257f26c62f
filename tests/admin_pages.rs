//! The people, store and audit pages in a real headless Chromium against a
//! real server, used with the keyboard where a person would: adding a
//! labeler (the password shown once) and pausing them; a store's webhook,
//! retention and consent changed, a test delivery sent and a dead delivery
//! sent again; the audit trail filtered and downloaded. Screenshots go to
//! `target/browser-artifacts/`; with `RECOUNT_DOCS_SCREENSHOTS=1` the
//! docs' copies in docs/images/ are refreshed too.

use crate::browser;
use crate::common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use browser::{Browser, BrowserOptions};
use common::{code, event, start_receiver, Backend, TestApp, PASSWORD};
use recount::auth::Role;
use recount::domain::scope::Scope;

const WAIT: Duration = Duration::from_secs(20);

async fn launch(name: &str) -> Browser {
    // Refusals the tests provoke (422, 400) are logged by the browser as
    // failed loads; anything else is a bug.
    let options = BrowserOptions::default()
        .test_name(name)
        .window_size(1440, 1000)
        .ignore_console("status of 422")
        .ignore_console("status of 400");
    Browser::launch(options).await.expect("launching Chromium")
}

/// Chooses an option of a `<select>` as the keyboard would, and tells the
/// page.
async fn choose(b: &Browser, css: &str, value: &str) {
    let script = format!(
        "const s = document.querySelector({}); s.focus(); s.value = {}; \
         s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value;",
        serde_json::to_string(css).unwrap(),
        serde_json::to_string(value).unwrap()
    );
    let chosen: String = b.eval(&script).await.unwrap();
    assert_eq!(chosen, value, "{css} has an option {value}");
}

/// Signs in through the form, landing on `page` once `ready` shows.
async fn sign_in(b: &Browser, app: &TestApp, user: &str, page: &str, ready: &str) {
    b.goto(&format!("{}{page}", app.base)).await.unwrap();
    b.wait_for_selector("#username", WAIT).await.unwrap();
    b.type_into("#username", user).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.press_key("Enter").await.unwrap();
    b.wait_for_selector(ready, WAIT).await.unwrap();
}

/// The cells of the people table, row by row (login, role, stores,
/// status, …).
async fn people_rows(b: &Browser) -> Vec<Vec<String>> {
    b.eval(
        "return [...document.querySelectorAll('#people-table tbody tr')] \
         .map(r => [...r.children].map(c => c.textContent.trim()))",
    )
    .await
    .unwrap()
}

/// Copies a screenshot into docs/images, where the docs show it, when
/// `RECOUNT_DOCS_SCREENSHOTS` is set (a test run leaves the tracked files
/// alone otherwise).
fn keep_for_docs(shot: std::path::PathBuf, name: &str) {
    if std::env::var_os("RECOUNT_DOCS_SCREENSHOTS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::copy(shot, docs.join(name)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_labeler_and_a_supervisor_pauses_them_from_the_people_page() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (a, key) = app.store("Alpha market", None).await;
    app.catalog(&key).await;
    app.store("Beta market", None).await;
    app.add_user("root", Role::Admin).await;
    app.add_user_in("sue", Role::Supervisor, Scope::of([&a]))
        .await;
    let b = launch("people_page").await;
    sign_in(
        &b,
        &app,
        "root",
        "/people",
        "#people-table tbody tr[data-username=sue]",
    )
    .await;

    // Add a labeler of Alpha with the keyboard: the password shows once.
    b.type_into("#person-name", "lea").await.unwrap();
    b.click(&format!("input[name=store][value='{a}']"))
        .await
        .unwrap();
    b.focus("#person-name").await.unwrap();
    b.press_key("Enter").await.unwrap();
    b.wait_for_selector("#people-table tbody tr[data-username=lea]", WAIT)
        .await
        .unwrap();
    let shown: String = b
        .eval("return document.querySelector('#people-secret .password').textContent")
        .await
        .unwrap();
    assert!(shown.len() >= 16, "{shown}");
    let focused: String = b.eval("return document.activeElement.id").await.unwrap();
    assert_eq!(
        focused, "people-secret",
        "the password is announced and focused"
    );
    let lea_row = people_rows(&b)
        .await
        .into_iter()
        .find(|r| r[0] == "lea")
        .unwrap();
    assert_eq!(&lea_row[1..4], ["labeler", "Alpha market", "active"]);
    let (s, token) = app
        .call_anon(
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"username": "lea", "password": shown})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the shown password signs in: {token}");
    let lea = token["token"].as_str().unwrap().to_string();
    b.screenshot("people-admin").await.unwrap();

    // Sue, a supervisor of Alpha, sees lea (not the admin or herself) and
    // pauses her: lea's next claim is refused at once.
    let s2 = launch("people_page_supervisor").await;
    sign_in(
        &s2,
        &app,
        "sue",
        "/people",
        "#people-table tbody tr[data-username=lea]",
    )
    .await;
    let names: Vec<String> = people_rows(&s2)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, vec!["lea"]);
    let role_options: Vec<String> = s2
        .eval("return [...document.querySelectorAll('#person-role option')].map(o => o.value)")
        .await
        .unwrap();
    assert_eq!(
        role_options,
        vec!["labeler"],
        "supervisors add labelers only"
    );
    s2.focus("button[aria-label='Pause lea']").await.unwrap();
    s2.press_key("Enter").await.unwrap();
    s2.wait_for(
        "lea shown paused",
        "document.querySelector('#people-table tr[data-username=lea] .state').textContent === 'paused (by sue)'",
        WAIT,
    )
    .await
    .unwrap();
    let (s, body) = app.claim(&lea).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, "labeler-paused"));
    let shot = s2.screenshot("people").await.unwrap();
    keep_for_docs(shot, "people.png");
    s2.click("button[aria-label='Resume lea']").await.unwrap();
    s2.wait_for(
        "lea active again",
        "document.querySelector('#people-table tr[data-username=lea] .state').textContent === 'active'",
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(app.claim(&lea).await.0, StatusCode::NO_CONTENT);
    for browser in [&b, &s2] {
        browser.assert_no_console_errors().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_a_stores_webhook_and_sends_a_dead_delivery_again() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.webhook_max_attempts = 1).await;
    let (store, key) = app.store("Alpha market", None).await;
    app.catalog(&key).await;
    app.add_user("root", Role::Admin).await;
    let (hook, receiver) = start_receiver(1).await;
    let b = launch("store_page").await;
    sign_in(&b, &app, "root", "/stores", "#stores-list").await;
    b.click(&format!("#stores-list a[href='/stores/{store}']"))
        .await
        .unwrap();
    b.wait_for_selector("#store-settings", WAIT).await.unwrap();

    // A URL with a password in it is refused and changes nothing.
    b.clear("#store-webhook").await.unwrap();
    b.type_into("#store-webhook", "https://me:secret@store.example/hook")
        .await
        .unwrap();
    b.click("#save-store").await.unwrap();
    b.wait_for(
        "the refusal",
        "document.getElementById('store-status').textContent.startsWith('Not saved')",
        WAIT,
    )
    .await
    .unwrap();
    let (_, settings) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store}"),
            &app.user("sue", Role::Supervisor).await,
            None,
        )
        .await;
    assert_eq!(settings["webhook_url"], Value::Null, "{settings}");

    // The receiver's URL, two weeks of video, consent: saved.
    b.clear("#store-webhook").await.unwrap();
    b.type_into("#store-webhook", &hook).await.unwrap();
    b.clear("#store-retention").await.unwrap();
    b.type_into("#store-retention", "14").await.unwrap();
    b.click("#store-training").await.unwrap();
    b.focus("#store-name").await.unwrap();
    b.press_key("Enter").await.unwrap();
    b.wait_for(
        "saved",
        "document.getElementById('store-status').textContent === 'Saved.'",
        WAIT,
    )
    .await
    .unwrap();
    let (_, settings) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store}"),
            &app.user("sue2", Role::Supervisor).await,
            None,
        )
        .await;
    assert_eq!(
        (
            &settings["webhook_url"],
            &settings["media_retention_days"],
            &settings["training_allowed"]
        ),
        (&json!(hook), &json!(14), &json!(true)),
        "{settings}"
    );

    // A receipt whose one delivery attempt fails: dead.
    let (_, out) = app
        .events(
            &key,
            event("e1", "s1", "pick", 1, &[("milk", 0.99), ("cola", 0.005)]),
        )
        .await;
    assert_eq!(out["route"], "auto_accepted");
    app.exit(&key, "s1", "2026-11-25T10:05:00Z").await;
    let client = recount::jobs::webhook::client(&app.state.config);
    assert!(
        recount::jobs::run_next_job(&app.state, &client, recount::jobs::DELIVERY_JOBS)
            .await
            .unwrap()
    );

    // The test delivery reaches the receiver, signed.
    b.click("#test-webhook").await.unwrap();
    b.wait_for(
        "the test delivered",
        "document.getElementById('store-status').textContent.startsWith('Delivered')",
        WAIT,
    )
    .await
    .unwrap();
    {
        let seen = receiver.seen.lock().unwrap();
        let (headers, body) = seen.last().unwrap();
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(sent["type"], "webhook.test");
        assert!(headers.contains_key("webhook-signature"));
    }

    // The dead delivery is listed and sent again from the page.
    choose(&b, "#delivery-filter", "dead").await;
    b.wait_for_selector("#deliveries tbody tr[data-status=dead] button", WAIT)
        .await
        .unwrap();
    let shot = b.screenshot("store").await.unwrap();
    keep_for_docs(shot, "store-settings.png");
    b.click("#deliveries tbody tr[data-status=dead] button")
        .await
        .unwrap();
    b.wait_for(
        "queued again",
        "document.getElementById('store-status').textContent === 'Queued again.'",
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        recount::jobs::run_next_job(&app.state, &client, recount::jobs::DELIVERY_JOBS)
            .await
            .unwrap()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'receipt-webhook' AND status = 'done'")
            .await,
        1
    );
    let audited = app
        .count(
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('store.changed', 'training.changed', 'webhook.redelivered')",
        )
        .await;
    assert_eq!(audited, 3);
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_filters_with_the_keyboard_and_downloads_what_it_shows() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store, _) = app.store("Alpha market", None).await;
    let root = app.user("root", Role::Admin).await;
    for t in [0.8, 0.85] {
        let (s, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/stores/{store}/policy"),
                &root,
                Some(json!({"threshold": t})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let b = launch("audit_page").await;
    sign_in(&b, &app, "root", "/audit", "#audit-table").await;
    let all_rows: usize = b
        .eval("return document.querySelectorAll('#audit-table tbody tr').length")
        .await
        .unwrap();
    assert!(all_rows > 2, "{all_rows}");

    // Choose the action and who with the keyboard, and submit.
    choose(&b, "#audit-action", "policy.changed").await;
    b.type_into("#audit-actor", "root").await.unwrap();
    b.press_key("Enter").await.unwrap();
    b.wait_for(
        "the filtered page",
        "location.search.includes('action=policy.changed')",
        WAIT,
    )
    .await
    .unwrap();
    let actions: Vec<String> = b
        .eval("return [...document.querySelectorAll('#audit-table tbody tr')].map(r => r.dataset.action)")
        .await
        .unwrap();
    assert_eq!(actions, vec!["policy.changed", "policy.changed"]);
    let detail: String = b
        .text("#audit-table tbody tr:first-child td.detail")
        .await
        .unwrap();
    assert!(detail.contains("0.85"), "{detail}");
    let shot = b.screenshot("audit").await.unwrap();
    keep_for_docs(shot, "audit.png");

    // The CSV link carries the same filters.
    let lines: Vec<String> = b
        .eval_async(
            "const href = document.getElementById('audit-csv').href; \
             const text = await (await fetch(href)).text(); \
             return text.trim().split('\\n');",
        )
        .await
        .unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains("policy.changed"));

    // An unreadable time is said, not guessed.
    b.goto(&format!("{}/audit?from=yesterday", app.base))
        .await
        .unwrap();
    let error = b.text("#audit-error").await.unwrap();
    assert!(error.contains("yesterday"), "{error}");
    b.assert_no_console_errors().await;
}
