//! The labeling console in a real headless Chromium (Debian's), against a
//! real server with real clips processed by the media jobs: sign in, claim,
//! play, frame-step, answer by keyboard, the next task without a reload,
//! "can't tell", a lost lease, an empty queue, two labelers side by side.
//! Screenshots of each main state go to `target/browser-artifacts/`.

use crate::browser;
use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use browser::{Browser, BrowserOptions};
use common::{event, run_media_jobs, Backend, TestApp, PASSWORD};
use recount::auth::Role;

const WAIT: Duration = Duration::from_secs(20);
/// The model's guesses: milk first, so "1" answers milk.
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30), ("bread", 0.10)];

/// The players of the task on screen.
const VISIBLE_VIDEOS: &str =
    "[...document.querySelectorAll('#players-host .players:not([hidden]) video')]";

/// `n` events in review, each filmed by two cameras (an H.264 clip that is
/// remuxed and an HEVC clip that is transcoded; the event 1.5 s into the
/// first and 1 s into the second) and, for the first event, a third camera
/// whose footage is missing. Returns the task ids.
async fn tasks_with_video(app: &TestApp, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let front = app
            .upload_clip(key, "h264.mp4", "cam-front", "2026-11-25T09:59:58.500Z")
            .await;
        let side = app
            .upload_clip(key, "hevc.mp4", "cam-side", "2026-11-25T09:59:59Z")
            .await;
        let mut ev = event(&format!("e{i}"), &format!("s{i}"), "pick", 1, UNSURE);
        ev["clips"] = json!([front, side]);
        if i == 0 {
            ev["cameras"] = json!([{"camera_id": "cam-door", "from": "2026-11-25T09:59:59Z", "to": "2026-11-25T10:00:01Z"}]);
        }
        let (status, out) = app.events(key, ev).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        ids.push(out["task_id"].as_str().unwrap().to_string());
    }
    run_media_jobs(app).await;
    ids
}

/// Waits for a JS condition (see [`Browser::wait_for`]).
async fn until(b: &Browser, what: &str, condition: &str) {
    b.wait_for(what, condition, WAIT).await.unwrap();
}

/// Waits until the console is in `state` (`start`, `task`, `empty`, `lost`).
async fn until_state(b: &Browser, what: &str, state: &str) {
    until(
        b,
        what,
        &format!("document.getElementById('console')?.dataset.state === '{state}'"),
    )
    .await;
}

async fn launch(name: &str) -> Browser {
    Browser::launch(BrowserOptions::default().test_name(name))
        .await
        .expect("launching Chromium")
}

/// Signs in through the form with the keyboard.
async fn sign_in(b: &Browser, app: &TestApp, user: &str, shot: Option<&str>) {
    b.goto(&format!("{}/console", app.base)).await.unwrap();
    b.wait_for_selector("#username", WAIT).await.unwrap();
    b.type_into("#username", user).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    if let Some(name) = shot {
        b.screenshot(name).await.unwrap();
    }
    b.press_key("Enter").await.unwrap();
    until_state(b, "the console after sign-in", "start").await;
}

/// Waits until a task other than `previous` is shown with every playable
/// camera able to play; returns its id.
async fn wait_for_task(b: &Browser, what: &str, previous: Option<&str>) -> String {
    let previous = serde_json::to_string(&previous).unwrap();
    b.wait_for(
        what,
        &format!(
            "document.getElementById('console').dataset.state === 'task' && \
             document.querySelector('#players-host .players:not([hidden])')?.dataset.taskId !== {previous} && \
             {VISIBLE_VIDEOS}.length > 0 && {VISIBLE_VIDEOS}.every(v => v.readyState >= 2 && !v.error)"
        ),
        WAIT,
    )
    .await
    .unwrap();
    b.eval("return document.querySelector('#players-host .players:not([hidden])').dataset.taskId")
        .await
        .unwrap()
}

/// Positions of the visible cameras relative to the event instant.
async fn camera_times(b: &Browser) -> Vec<f64> {
    b.eval(&format!("return {VISIBLE_VIDEOS}.map(v => v.currentTime)"))
        .await
        .unwrap()
}

async fn verdicts(app: &TestApp) -> Vec<(String, String, Option<String>, Option<i64>, i64)> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT v.task_id, v.action, v.sku, v.quantity, v.cant_tell FROM verdicts v ORDER BY v.created_at, v.id",
    )
    .fetch_all(app.state.db.reader())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get("task_id"),
                r.try_get::<Option<String>, _>("action")
                    .unwrap()
                    .unwrap_or_default(),
                r.get("sku"),
                r.get("quantity"),
                r.get("cant_tell"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labeler_reviews_by_keyboard_and_the_next_task_follows_without_a_reload() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 3).await;

    let b = launch("console_review").await;
    sign_in(&b, &app, "ana", Some("login")).await;
    let session = b
        .cookie("recount_session")
        .await
        .unwrap()
        .expect("session cookie");
    assert!(session.http_only, "the session cookie is HttpOnly");
    assert!(
        !b.eval::<bool>("return document.cookie.includes('recount_session')")
            .await
            .unwrap(),
        "scripts cannot read the session"
    );
    b.screenshot("start").await.unwrap();
    // Marks this page: a reload would lose it.
    b.eval::<Value>("window.__samePage = true; return null")
        .await
        .unwrap();

    b.press_key("Enter").await.unwrap();
    let first = wait_for_task(&b, "the first task with playable video", None).await;
    assert_eq!(first, tasks[0], "earliest deadline, then oldest, first");
    // Candidates as the model ranked them, with names and prices.
    let names: Vec<String> = b
        .eval("return [...document.querySelectorAll('#candidates .product-name')].map(e => e.textContent)")
        .await
        .unwrap();
    assert_eq!(names, vec!["1 Milk 1 l", "2 Cola 330 ml", "3 Bread"]);
    // The camera without footage says why.
    until(&b, "the missing camera's reason", "[...document.querySelectorAll('#players-host .players:not([hidden]) .unavailable')].some(e => e.textContent.includes('footage-gap'))").await;
    // Every camera opens on the event instant: 1.5 s and 1 s into its clip.
    let times = camera_times(&b).await;
    assert!(
        (times[0] - 1.5).abs() < 0.02 && (times[1] - 1.0).abs() < 0.02,
        "{times:?}"
    );
    b.screenshot("task").await.unwrap();
    // Fits a laptop screen: nothing wider than the window.
    assert!(
        b.eval::<bool>("return document.documentElement.scrollWidth <= window.innerWidth")
            .await
            .unwrap(),
        "no horizontal scrolling at 1366x768"
    );

    // Space plays every camera; again pauses them, in step.
    b.press_key("Space").await.unwrap();
    until(
        &b,
        "both cameras playing and past the event",
        &format!("{VISIBLE_VIDEOS}.every(v => !v.paused) && {VISIBLE_VIDEOS}[0].currentTime > 1.8"),
    )
    .await;
    b.press_key("Space").await.unwrap();
    until(
        &b,
        "both cameras paused",
        &format!("{VISIBLE_VIDEOS}.every(v => v.paused)"),
    )
    .await;
    let times = camera_times(&b).await;
    let (front, side) = (times[0] - 1.5, times[1] - 1.0);
    assert!(front > 0.2, "played on: {times:?}");
    assert!(
        (front - side).abs() < 0.05,
        "cameras in step after pause: {times:?}"
    );

    // Frame steps move every camera by one frame (30 fps).
    b.press_key("e").await.unwrap();
    until(
        &b,
        "back at the event",
        &format!("Math.abs({VISIBLE_VIDEOS}[0].currentTime - 1.5) < 0.02"),
    )
    .await;
    b.press_key("ArrowRight").await.unwrap();
    until(
        &b,
        "one frame later",
        &format!("!{VISIBLE_VIDEOS}[0].seeking && {VISIBLE_VIDEOS}[0].currentTime > 1.51"),
    )
    .await;
    let after = camera_times(&b).await;
    let step = after[0] - 1.5;
    assert!(
        (step - 1.0 / 30.0).abs() < 0.01,
        "one frame is 1/30 s: {after:?}"
    );
    assert!(
        (after[1] - 1.0 - step).abs() < 0.01,
        "the side camera stepped too: {after:?}"
    );
    b.press_key("ArrowLeft").await.unwrap();
    b.press_key("ArrowLeft").await.unwrap();
    until(
        &b,
        "two frames back",
        &format!("!{VISIBLE_VIDEOS}[0].seeking && {VISIBLE_VIDEOS}[0].currentTime < 1.49"),
    )
    .await;
    let back = camera_times(&b).await;
    assert!((back[0] - (1.5 - 1.0 / 30.0)).abs() < 0.01, "{back:?}");
    // Speed: ] twice from 1x is 2x on every camera.
    b.press_keys(&["]", "]"]).await.unwrap();
    let rates: Vec<f64> = b
        .eval(&format!("return {VISIBLE_VIDEOS}.map(v => v.playbackRate)"))
        .await
        .unwrap();
    assert_eq!(rates, vec![2.0, 2.0]);

    // The shortcut list.
    b.press_key("?").await.unwrap();
    until(
        &b,
        "the shortcut list",
        "!document.getElementById('help').hidden",
    )
    .await;
    b.screenshot("help").await.unwrap();
    b.press_key("Escape").await.unwrap();
    until(
        &b,
        "the list closed",
        "document.getElementById('help').hidden",
    )
    .await;

    // P, 1, Enter: took one milk. The next task (prefetched) follows at once.
    until(
        &b,
        "the next task prefetched",
        "document.querySelectorAll('#players-host .players').length === 2",
    )
    .await;
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();
    let second = wait_for_task(&b, "the second task", Some(&first)).await;
    assert_eq!(second, tasks[1]);
    let measured: f64 = b
        .eval("return performance.getEntriesByName('verdict-to-ready').length")
        .await
        .unwrap();
    assert_eq!(measured, 1.0, "the answer-to-next-task time is measured");
    assert!(
        b.eval::<bool>("return window.__samePage === true")
            .await
            .unwrap(),
        "no reload between tasks"
    );

    // The catalog search: "/", type, Enter picks the first match; R = put back.
    b.press_key("/").await.unwrap();
    b.type_into("#catalog-search", "brea").await.unwrap();
    until(
        &b,
        "search results",
        "document.querySelector('#search-results button')?.dataset.sku === 'bread'",
    )
    .await;
    b.press_key("Enter").await.unwrap();
    b.press_keys(&["r", "+"]).await.unwrap();
    b.screenshot("answer").await.unwrap();
    b.press_key("Enter").await.unwrap();
    let third = wait_for_task(&b, "the third task", Some(&second)).await;
    assert_eq!(third, tasks[2]);

    let v = verdicts(&app).await;
    assert_eq!(
        v,
        vec![
            (
                tasks[0].clone(),
                "pick".into(),
                Some("milk".into()),
                Some(1),
                0
            ),
            (
                tasks[1].clone(),
                "return".into(),
                Some("bread".into()),
                Some(2),
                0
            ),
        ]
    );
    // Leaving the page gives the held task back at once (no wait for the
    // lease), and this labeler is not offered it again.
    b.reload().await.unwrap();
    until_state(&b, "the console after reload", "start").await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM review_tasks WHERE id = '{}' AND status = 'ready'",
            tasks[2]
        ))
        .await,
        1
    );
    b.press_key("Enter").await.unwrap();
    until_state(&b, "the empty queue", "empty").await;
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cant_tell_escalates_and_an_empty_queue_waits_for_new_work() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 1).await;

    // A smaller laptop screen, where the answer panel goes under the video.
    let b = Browser::launch(
        BrowserOptions::default()
            .test_name("console_cant_tell")
            .window_size(1024, 700),
    )
    .await
    .unwrap();
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the task", None).await, tasks[0]);
    assert!(
        b.eval::<bool>("return document.documentElement.scrollWidth <= window.innerWidth")
            .await
            .unwrap(),
        "no horizontal scrolling at 1024x700"
    );
    // Focus is visible: Tab lands on a control drawn with an outline.
    b.press_key("Tab").await.unwrap();
    let outline: String = b
        .eval("return getComputedStyle(document.activeElement).outlineStyle")
        .await
        .unwrap();
    assert_eq!(outline, "solid", "the focused control shows a focus ring");
    b.screenshot("task-1024").await.unwrap();
    b.press_key("Escape").await.unwrap();
    b.press_key("c").await.unwrap();
    until_state(&b, "the empty queue", "empty").await;
    b.screenshot("empty").await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'escalated'")
            .await,
        1
    );
    let v = verdicts(&app).await;
    assert_eq!(v, vec![(tasks[0].clone(), String::new(), None, None, 1)]);

    // New work appears without a reload.
    let (status, out) = app
        .events(&key, event("late", "s9", "pick", 1, UNSURE))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    until_state(&b, "the new task", "task").await;
    let shown: String = b
        .eval(
            "return document.querySelector('#players-host .players:not([hidden])').dataset.taskId",
        )
        .await
        .unwrap();
    assert_eq!(shown, out["task_id"].as_str().unwrap());
    until(&b, "no camera message", "document.querySelector('#players-host .players:not([hidden]) .unavailable')?.textContent.includes('No camera')").await;
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_shows_its_message() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.lease_ttl_ms = 3_000).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 1).await;

    let b = Browser::launch(
        BrowserOptions::default()
            .test_name("console_lease_lost")
            // The heartbeat that learns of the expiry is a 409 answer.
            .ignore_console("/heartbeat - Failed to load resource"),
    )
    .await
    .unwrap();
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the task", None).await, tasks[0]);
    b.type_into("#note", "looked twice").await.unwrap();
    // The server's clock moves past the lease; the next heartbeat hears it.
    app.clock.advance(10_000);
    until_state(&b, "the lost-lease message", "lost").await;
    let title = b.text("#lost-title").await.unwrap();
    assert_eq!(title, "Your time on this task ran out");
    assert!(b
        .text("#lost-message")
        .await
        .unwrap()
        .contains("went back to the queue"));
    b.screenshot("lease-lost").await.unwrap();
    assert!(verdicts(&app).await.is_empty(), "nothing was saved");
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_labelers_in_two_browsers_never_see_the_same_task() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    app.add_user("ben", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 6).await;

    let (a, b) = tokio::join!(launch("console_two_a"), launch("console_two_b"));
    tokio::join!(
        sign_in(&a, &app, "ana", None),
        sign_in(&b, &app, "ben", None)
    );
    // Every task each browser shows, recorded by the page itself.
    for br in [&a, &b] {
        br.eval::<Value>(
            "window.__seen = []; document.addEventListener('recount:task-ready', e => window.__seen.push(e.detail.taskId)); return null",
        )
        .await
        .unwrap();
    }
    let (ra, rb) = tokio::join!(a.press_key("Enter"), b.press_key("Enter"));
    ra.unwrap();
    rb.unwrap();
    // Both answer until the queue is empty.
    tokio::join!(answer_until_empty(&a), answer_until_empty(&b));
    let seen_a: Vec<String> = a.eval("return window.__seen").await.unwrap();
    let seen_b: Vec<String> = b.eval("return window.__seen").await.unwrap();
    let set_a: HashSet<_> = seen_a.iter().cloned().collect();
    let set_b: HashSet<_> = seen_b.iter().cloned().collect();
    assert!(set_a.is_disjoint(&set_b), "{seen_a:?} vs {seen_b:?}");
    assert_eq!(set_a.len() + set_b.len(), tasks.len());
    assert!(
        !set_a.is_empty() && !set_b.is_empty(),
        "both worked: {seen_a:?} {seen_b:?}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'resolved'")
            .await,
        tasks.len() as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM verdicts").await,
        tasks.len() as i64
    );
    a.assert_no_console_errors().await;
    b.assert_no_console_errors().await;
}

/// Answers "nothing" to every task until the queue is empty.
async fn answer_until_empty(br: &Browser) {
    loop {
        br.wait_for(
            "a task or the empty queue",
            &format!(
                "(document.getElementById('console').dataset.state === 'task' && \
                     {VISIBLE_VIDEOS}.every(v => v.readyState >= 2)) || \
                     document.getElementById('console').dataset.state === 'empty'"
            ),
            WAIT,
        )
        .await
        .unwrap();
        let state: String = br
            .eval("return document.getElementById('console').dataset.state")
            .await
            .unwrap();
        if state == "empty" {
            break;
        }
        let shown: String = br
                .eval("return document.querySelector('#players-host .players:not([hidden])').dataset.taskId")
                .await
                .unwrap();
        br.press_keys(&["n", "Enter"]).await.unwrap();
        br.wait_for(
                "the answered task gone",
                &format!(
                    "document.querySelector('#players-host .players:not([hidden])')?.dataset.taskId !== {}",
                    serde_json::to_string(&shown).unwrap()
                ),
                WAIT,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_takes_up_tasks_the_labeler_already_holds() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 3).await;
    // Claimed elsewhere (another window that crashed, a script).
    let token = app.user("ana", Role::Labeler).await;
    let (status, claim) = app.claim(&token).await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    assert_eq!(claim["task"]["task_id"], tasks[0].as_str());

    let b = launch("console_adopt").await;
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the held task", None).await, tasks[0]);
    b.press_keys(&["n", "Enter"]).await.unwrap();
    assert_eq!(
        wait_for_task(&b, "the next task", Some(&tasks[0])).await,
        tasks[1]
    );
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_sent_while_offline_is_retried_and_recorded_once() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 1).await;

    let b = Browser::launch(
        BrowserOptions::default()
            .test_name("console_offline")
            // Requests made while the network is cut fail loudly, as they should.
            .ignore_console("net::ERR_INTERNET_DISCONNECTED"),
    )
    .await
    .unwrap();
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the task", None).await, tasks[0]);

    b.set_offline(true).await.unwrap();
    b.press_keys(&["p", "2", "Enter"]).await.unwrap();
    until(
        &b,
        "the retry notice",
        "document.getElementById('answer-status').textContent.includes('retrying')",
    )
    .await;
    b.screenshot("retrying").await.unwrap();
    assert!(
        verdicts(&app).await.is_empty(),
        "nothing reached the server yet"
    );
    // Pressing Enter again while the first attempt retries sends nothing more.
    b.press_key("Enter").await.unwrap();
    b.set_offline(false).await.unwrap();
    until_state(&b, "the empty queue after the answer", "empty").await;
    assert_eq!(
        verdicts(&app).await,
        vec![(
            tasks[0].clone(),
            "pick".into(),
            Some("cola".into()),
            Some(1),
            0
        )]
    );
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_opens_on_tasks_whose_video_plays() {
    let app = TestApp::start(Backend::Sqlite).await;
    let creds = recount::demo::setup(&app.state).await.unwrap();
    let (user, password, _) = creds
        .users
        .iter()
        .find(|(u, _, _)| u == "labeler")
        .cloned()
        .unwrap();
    let mut visits = Vec::new();
    while app
        .count("SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'")
        .await
        == 0
    {
        recount::demo::simulate_step(&app.state, &creds.store_id, &mut visits)
            .await
            .unwrap();
        run_media_jobs(&app).await;
    }

    let b = launch("console_demo").await;
    // The address the demo prints leads to the console through the login.
    b.goto(&format!("{}/", app.base)).await.unwrap();
    b.wait_for_selector("#username", WAIT).await.unwrap();
    b.type_into("#username", &user).await.unwrap();
    b.type_into("#password", &password).await.unwrap();
    b.press_key("Enter").await.unwrap();
    until_state(&b, "the console", "start").await;
    b.press_key("Enter").await.unwrap();
    // The demo's cameras open mid-clip, at the event: decoding must start
    // from a keyframe the browser can use (closed GOPs).
    wait_for_task(&b, "a demo task with playable video", None).await;
    b.press_key("Space").await.unwrap();
    until(
        &b,
        "every camera playing past the event",
        &format!(
            "{VISIBLE_VIDEOS}.every(v => !v.paused && !v.error) && \
             document.querySelector('#clock').textContent.startsWith('event +') && \
             !document.querySelector('#clock').textContent.startsWith('event +0.000')"
        ),
    )
    .await;
    b.press_key("Space").await.unwrap();
    b.screenshot("demo").await.unwrap();
    let errors: Vec<Value> = b
        .eval(&format!(
            "return {VISIBLE_VIDEOS}.filter(v => v.error).map(v => v.error.message)"
        ))
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_lease_per_labeler_the_console_works_without_prefetch() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.max_leases_per_labeler = 1).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 2).await;

    let b = Browser::launch(
        BrowserOptions::default()
            .test_name("console_one_lease")
            // The one prefetch claim the server refuses (409 too-many-leases).
            .ignore_console("/tasks/claim - Failed to load resource"),
    )
    .await
    .unwrap();
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the first task", None).await, tasks[0]);
    b.press_keys(&["n", "Enter"]).await.unwrap();
    assert_eq!(
        wait_for_task(&b, "the second task", Some(&tasks[0])).await,
        tasks[1]
    );
    let refused: usize = b
        .console_log()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.message.contains("/tasks/claim") && e.message.contains("409"))
        .count();
    assert_eq!(refused, 1, "prefetch asks once and stops after the refusal");
    b.assert_no_console_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_console_gives_its_tasks_back() {
    // Eight seconds without input stand for the default two minutes: long
    // enough to see both tasks held first, on a loaded machine too.
    let app = TestApp::start_with(Backend::Sqlite, |c| c.console_idle_release_ms = 8_000).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let tasks = tasks_with_video(&app, &key, 3).await;

    let b = launch("console_idle").await;
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the task", None).await, tasks[0]);
    // The task on screen and the prefetched one are both Ana's.
    until(
        &b,
        "the next task loaded",
        "document.getElementById('queue-status').textContent.includes('next task loaded')",
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'leased'")
            .await,
        2
    );

    // Ana walks away: the console stops and gives both back.
    until_state(&b, "the start view after idling", "start").await;
    until(
        &b,
        "the idle note",
        "!document.getElementById('idle-note').hidden",
    )
    .await;
    b.screenshot("idle-released").await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'")
            .await,
        3,
        "both held tasks are back in the queue beside the third"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_leases WHERE end_reason = 'released'")
            .await,
        2
    );
    assert!(verdicts(&app).await.is_empty());

    // Back at the desk, one key starts again, on a task Ana never held (a
    // second look at a task is always someone else's).
    b.press_key("Enter").await.unwrap();
    assert_eq!(
        wait_for_task(&b, "a task after coming back", None).await,
        tasks[2]
    );
    b.assert_no_console_errors().await;
}

/// What the console shows of the model on the task on screen: the reason
/// tag, the model line, and how many confidences the candidate list draws.
async fn model_shown(b: &Browser) -> (String, String, bool, bool, usize, usize) {
    let v: Value = b
        .eval(
            "return [document.getElementById('task-reason').textContent, \
             document.getElementById('task-model').textContent, \
             document.getElementById('task-reason').hidden, \
             document.getElementById('task-model').hidden, \
             document.querySelectorAll('#candidates .confidence').length, \
             document.querySelectorAll('#candidates button.product').length]",
        )
        .await
        .unwrap();
    (
        v[0].as_str().unwrap().to_string(),
        v[1].as_str().unwrap().to_string(),
        v[2].as_bool().unwrap(),
        v[3].as_bool().unwrap(),
        v[4].as_u64().unwrap() as usize,
        v[5].as_u64().unwrap() as usize,
    )
}

/// Makes every confident event of the store an audit sample (one verdict)
/// and ingests one, filmed by `camera`, with the model's `quantity`; its
/// task id once its clip is processed.
async fn audit_with_video(
    app: &TestApp,
    store_id: &str,
    key: &str,
    camera: &str,
    quantity: i64,
) -> String {
    let boss = app.user("boss", Role::Admin).await;
    let (s, b) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &boss,
            Some(json!({"audit_rate": 1.0, "audit_verdicts": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let clip = app
        .upload_clip(key, "h264.mp4", camera, "2026-11-25T09:59:58.500Z")
        .await;
    let mut audit = event(
        "a1",
        "s-a",
        "pick",
        quantity,
        &[("cola", 0.97), ("milk", 0.02)],
    );
    audit["clips"] = json!([clip]);
    let (_, out) = app.events(key, audit).await;
    assert_eq!(out["reason"], "audit-sample", "{out}");
    run_media_jobs(app).await;
    out["task_id"].as_str().unwrap().to_string()
}

/// A gold copy and an audit sample reach the labeler without the model's
/// answer, confidences or reason, in the same console as an ordinary review
/// (which shows them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_gold_tasks_show_nothing_of_the_model() {
    let app = TestApp::start_with(Backend::Sqlite, |c| c.gold_rate = 1.0).await;
    let (store_id, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;

    // Bob settles a review that a supervisor makes gold.
    let gold_source = tasks_with_video(&app, &key, 1).await.remove(0);
    let (_, c) = app.claim(&bob).await;
    assert_eq!(c["task"]["task_id"], gold_source.as_str());
    app.verdict(&bob, &gold_source, json!({"action": "pick", "sku": "milk"}))
        .await;
    let (s, g) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/gold",
            &sue,
            Some(json!({"task_id": gold_source})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");

    // An ordinary review, then an audit sample of a confident event.
    let front = app
        .upload_clip(&key, "h264.mp4", "cam-front", "2026-11-25T09:59:58.500Z")
        .await;
    let mut review = event("r1", "s-r", "pick", 1, UNSURE);
    review["clips"] = json!([front]);
    app.events(&key, review).await;
    let audit_task = audit_with_video(&app, &store_id, &key, "cam-side", 2).await;

    let b = launch("console_blind").await;
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();

    // First the gold copy (gold is served while real work waits): blind.
    let first = wait_for_task(&b, "the gold copy", None).await;
    let is_gold = app
        .count(&format!(
            "SELECT COUNT(*) FROM review_tasks WHERE id = '{first}' AND gold_id IS NOT NULL"
        ))
        .await;
    assert_eq!(is_gold, 1, "the first task is a gold copy");
    let (reason, model, reason_hidden, model_hidden, confidences, candidates) =
        model_shown(&b).await;
    assert_eq!((reason.as_str(), model.as_str()), ("", ""));
    assert!(reason_hidden && model_hidden);
    assert_eq!(confidences, 0, "no confidence drawn");
    assert_eq!(candidates, 3, "the products to choose from are all there");
    b.screenshot("blind-gold").await.unwrap();
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();

    // Then the ordinary review: the model's guess and confidences are shown.
    let second = wait_for_task(&b, "the review", Some(&first)).await;
    let (reason, model, reason_hidden, _, confidences, _) = model_shown(&b).await;
    assert_eq!(reason, "Low confidence");
    assert!(model.starts_with("Model: took"), "{model}");
    assert!(!reason_hidden);
    assert_eq!(confidences, 3);
    b.screenshot("review-shows-model").await.unwrap();
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();

    // Last the audit sample: blind, its quantity not preset to the model's 2.
    let third = wait_for_task(&b, "the audit sample", Some(&second)).await;
    assert_eq!(third, audit_task);
    let (reason, model, _, _, confidences, _) = model_shown(&b).await;
    assert_eq!((reason.as_str(), model.as_str(), confidences), ("", "", 0));
    let quantity: String = b
        .eval("return document.getElementById('quantity').value")
        .await
        .unwrap();
    assert_eq!(quantity, "1", "the model's quantity is not preset");
    let cart_note: String = b
        .eval("return document.getElementById('cart-note').textContent")
        .await
        .unwrap();
    assert!(!cart_note.contains("waits"), "{cart_note}");
    b.screenshot("blind-audit").await.unwrap();
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();
    until_state(&b, "the empty queue", "empty").await;

    // The audit's answer was recorded with the quantity the labeler gave.
    let v = verdicts(&app).await;
    let audit_verdict = v
        .iter()
        .find(|v| v.0 == audit_task)
        .expect("audit answered");
    assert_eq!(audit_verdict.3, Some(1));
    b.assert_no_console_errors().await;
}

/// A labeler on an audit sample is moved to receipt work the moment it
/// comes in: the console says so and shows the urgent task; the audit goes
/// back to the queue and returns to the same labeler afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_on_screen_gives_way_to_receipt_work() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (store_id, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let audit_task = audit_with_video(&app, &store_id, &key, "cam-front", 1).await;

    // The heartbeat that hands the audit back answers 409 `lease-yielded`,
    // which the browser logs.
    let b = Browser::launch(
        BrowserOptions::default()
            .test_name("console_audit_gives_way")
            .ignore_console("/heartbeat - Failed to load resource"),
    )
    .await
    .expect("launching Chromium");
    sign_in(&b, &app, "ana", None).await;
    b.press_key("Enter").await.unwrap();
    assert_eq!(wait_for_task(&b, "the audit", None).await, audit_task);

    // A shopper's event needs Ana while she watches the audit (a second
    // later, so a prefetched claim of it is after the audit's).
    app.clock.advance(1_000);
    let review = tasks_with_video(&app, &key, 1).await.remove(0);
    assert_eq!(
        wait_for_task(&b, "the receipt work", Some(&audit_task)).await,
        review
    );
    until(
        &b,
        "the notice",
        "document.getElementById('toast').textContent.includes('Urgent work came in')",
    )
    .await;
    b.screenshot("audit-gave-way").await.unwrap();
    let (status, end): (String, String) = sqlx::query_as(
        "SELECT t.status, l.end_reason FROM review_tasks t \
         JOIN task_leases l ON l.task_id = t.id WHERE t.id = $1 ORDER BY l.claimed_at LIMIT 1",
    )
    .bind(&audit_task)
    .fetch_one(app.state.db.reader())
    .await
    .unwrap();
    assert_eq!(end, "yielded");
    assert!(
        status == "ready" || status == "leased",
        "back in the queue (or prefetched again): {status}"
    );

    // Ana answers the receipt work; the audit comes back to her.
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();
    assert_eq!(
        wait_for_task(&b, "the audit again", Some(&review)).await,
        audit_task
    );
    b.press_keys(&["p", "1", "Enter"]).await.unwrap();
    until_state(&b, "the empty queue", "empty").await;
    let mut answered: Vec<String> = verdicts(&app).await.into_iter().map(|v| v.0).collect();
    answered.sort();
    let mut both = vec![review, audit_task];
    both.sort();
    assert_eq!(answered, both, "each answered once");
    b.assert_no_console_errors().await;
}
