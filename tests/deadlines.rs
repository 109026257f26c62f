//! The deadline guarantee and job take-over, each test on SQLite and on
//! PostgreSQL with the manual clock: a task nobody eligible can answer, or
//! one near its receipt deadline, goes to supervisors before the deadline;
//! a job whose instance died is taken over within one job lease.

use crate::common;

use reqwest::{Method, StatusCode};

use common::{event, Backend, TestApp};
use recount::auth::Role;

/// Confident: auto-accepted unless drawn for audit.
const SURE: &[(&str, f64)] = &[("milk", 0.98), ("cola", 0.01)];
/// Under the default threshold: one labeler's verdict settles it.
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

async fn escalations(app: &TestApp, supervisor: &str) -> Vec<(String, String)> {
    let (s, list) = app
        .call(Method::GET, "/api/v1/escalations", supervisor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["task"]["task_id"].as_str().unwrap().to_string(),
                d["escalation_reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn gauge(metrics: &str, state: &str) -> i64 {
    let line = format!("recount_deadline_items{{state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

async fn a_task_near_its_deadline_goes_to_supervisors_before_it_passes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let lead = app.state.config.deadline_lead_ms;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    // The shopper leaves at once: the receipt is due 10 minutes later.
    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(receipt["status"], "pending");
    let sla = 10 * 60_000;

    let metrics = app.metrics().await;
    assert_eq!(gauge(&metrics, "tasks_at_risk"), 0);
    assert_eq!(gauge(&metrics, "tasks_past"), 0);

    // One millisecond before the lead time starts: still the crew's.
    app.clock.advance(sla - lead - 1);
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        0
    );
    app.clock.advance(1);
    assert_eq!(gauge(&app.metrics().await, "tasks_at_risk"), 1);
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        1
    );
    let boss = app.user("sue", Role::Supervisor).await;
    assert_eq!(
        escalations(&app, &boss).await,
        [(task.clone(), "deadline".to_string())]
    );
    // Escalated, a labeler cannot claim it any more.
    let ann = app.user("ann", Role::Labeler).await;
    assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);

    // If nobody settles it either, the gauges say so once it is late.
    app.clock.advance(lead);
    assert_eq!(
        gauge(&app.metrics().await, "tasks_past"),
        0,
        "due now, not late"
    );
    app.clock.advance(1);
    let metrics = app.metrics().await;
    assert_eq!(gauge(&metrics, "tasks_past"), 1);
    assert_eq!(gauge(&metrics, "tasks_at_risk"), 0);
    assert_eq!(gauge(&metrics, "receipts_past"), 1);
    assert!(
        metrics.contains("recount_deadline_escalations_total{reason=\"deadline\"}"),
        "{metrics}"
    );
}
dual!(a_task_near_its_deadline_goes_to_supervisors_before_it_passes);

async fn a_task_everyone_active_released_goes_to_supervisors(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    let release = format!("/api/v1/tasks/{task}/release");
    for token in [&ann, &bob] {
        let (s, c) = app.claim(token).await;
        assert_eq!(
            (s, c["task"]["task_id"].as_str()),
            (StatusCode::OK, Some(task.as_str()))
        );
        // Bob is still eligible while only Ann gave it back.
        assert_eq!(
            recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
            0
        );
        let (s, _) = app.call(Method::POST, &release, token, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'escalated' AND escalation_reason = 'no-eligible-labeler'")
            .await,
        1
    );

    // A crew gone quiet for longer than the activity window counts as
    // nobody: a new task waits for the next shift instead.
    app.clock
        .advance(app.state.config.labeler_active_window_ms + 1);
    let (_, out) = app.events(&key, event("e2", "s2", "pick", 1, UNSURE)).await;
    assert!(out["task_id"].is_string());
    assert_eq!(
        recount::jobs::escalate_at_risk(&app.state).await.unwrap(),
        0
    );
}
dual!(a_task_everyone_active_released_goes_to_supervisors);

async fn a_job_of_a_dead_instance_is_taken_over_within_one_lease(backend: Backend) {
    let app = TestApp::start(backend).await;
    let lease = app.state.config.job_lease_ms;
    assert!(lease <= 15_000, "the bound this test states");
    // A finalized receipt of a store with a webhook queues its delivery.
    let (_, key) = app.store("Hooked", Some("http://127.0.0.1:9/hook")).await;
    app.catalog(&key).await;
    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    let (_, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(receipt["status"], "final");
    let kinds = recount::jobs::DELIVERY_JOBS;

    // Instance A takes it and dies without a word.
    let taken = recount::jobs::take_due(&app.state.db, kinds, app.state.now(), lease)
        .await
        .unwrap()
        .expect("the delivery is due");
    // Until its lease runs out nobody else may take it…
    app.clock.advance(lease - 1);
    let none = recount::jobs::take_due(&app.state.db, kinds, app.state.now(), lease)
        .await
        .unwrap();
    assert!(none.is_none(), "taken over while its lease runs");
    // …and then anyone may, with the dead attempt counted.
    app.clock.advance(1);
    let again = recount::jobs::take_due(&app.state.db, kinds, app.state.now(), lease)
        .await
        .unwrap()
        .expect("taken over after one lease");
    assert_eq!(again.id, taken.id);
    assert_eq!(again.attempts, taken.attempts + 1);
}
dual!(a_job_of_a_dead_instance_is_taken_over_within_one_lease);

async fn a_running_job_renews_its_lease(backend: Backend) {
    // A lease of 300 ms renewed every 100 ms of real time.
    let app = TestApp::start_with(backend, |c| c.job_lease_ms = 300).await;
    let (_, key) = app.store("Hooked", Some("http://127.0.0.1:9/hook")).await;
    app.catalog(&key).await;
    app.events(&key, event("e1", "s1", "pick", 1, SURE)).await;
    app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    let db = &app.state.db;
    let taken = recount::jobs::take_due(db, recount::jobs::DELIVERY_JOBS, app.state.now(), 300)
        .await
        .unwrap()
        .unwrap();
    let first = app
        .count("SELECT lease_expires_at FROM jobs WHERE status = 'running'")
        .await;
    // The job "runs" until its lease has been renewed past the first end:
    // a renewal at the later clock time is what ends it.
    app.clock.advance(10_000);
    let renewed_to = app.state.now() + 300;
    let work = async {
        loop {
            let now_lease = app
                .count("SELECT lease_expires_at FROM jobs WHERE status = 'running'")
                .await;
            if now_lease == renewed_to {
                return now_lease;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        recount::jobs::renewing_lease(&app.state, &taken.id, work),
    )
    .await
    .expect("the lease is renewed while the job runs");
    assert!(done > first, "renewed from {first} to {done}");
    // Meanwhile no other worker could take it.
    let other = recount::jobs::take_due(db, recount::jobs::DELIVERY_JOBS, app.state.now(), 300)
        .await
        .unwrap();
    assert!(other.is_none());
}
dual!(a_running_job_renews_its_lease);
