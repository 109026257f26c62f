//! Staffing forecasts: `GET /api/v1/stores/{id}/staffing` from a store's
//! history on the same weekday, and the dashboard's "working now" against
//! "needed this hour", on SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{code, event, Backend, TestApp};
use recount::auth::Role;

/// A past day of the store: `n` shoppers in each listed UTC hour, two
/// confident picks each (auto-accepted), and their exits 12 minutes on.
async fn past_day(app: &TestApp, key: &str, day: &str, hours: &[(u32, usize)]) {
    let mut batch = Vec::new();
    let mut exits = Vec::new();
    for &(hour, n) in hours {
        for i in 0..n {
            let session = format!("{day}-{hour}-{i}");
            let minute = i % 45;
            for e in 0..2 {
                let mut ev = event(
                    &format!("{session}-{e}"),
                    &session,
                    "pick",
                    1,
                    &[("milk", 0.97), ("cola", 0.03)],
                );
                ev["occurred_at"] = json!(format!("{day}T{hour:02}:{:02}:{e:02}Z", minute));
                batch.push(ev);
            }
            exits.push((session, format!("{day}T{hour:02}:{:02}:00Z", minute + 12)));
        }
    }
    for chunk in batch.chunks(100) {
        let (s, b) = app.events(key, Value::Array(chunk.to_vec())).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    for (session, at) in exits {
        let (s, b) = app.exit(key, &session, &at).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

async fn staffing(app: &TestApp, token: &str, store: &str, query: &str) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!("/api/v1/stores/{store}/staffing{query}"),
        token,
        None,
    )
    .await
}

async fn forecasts_come_from_the_same_weekday(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    let boss = app.user("boss", Role::Supervisor).await;
    // Two past Wednesdays alike; a Tuesday with a crowd at 15:00 that a
    // Wednesday forecast must not see.
    for day in ["2026-11-18", "2026-11-11"] {
        past_day(&app, &key, day, &[(9, 30), (12, 60)]).await;
    }
    past_day(&app, &key, "2026-11-17", &[(15, 50)]).await;

    let (s, f) = staffing(&app, &boss, &store, "?date=2026-11-25").await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["weekday"], "Wednesday");
    assert_eq!(
        f["history_days"],
        json!(["2026-11-18", "2026-11-11", "2026-11-04", "2026-10-28"])
    );
    assert_eq!(f["basis"]["days"], 2, "{f}");
    assert_eq!(f["basis"]["shoppers"], 90, "the mean of two days of 90");
    assert_eq!(f["basis"]["events_per_shopper"], 2.0);
    let trip = f["basis"]["trip_median_minutes"].as_f64().unwrap();
    assert!(
        (trip - 12.0).abs() < 0.1,
        "trips of about 12 minutes: {trip}"
    );
    let hours = f["hours"].as_array().unwrap();
    assert_eq!(hours[0]["start"], "2026-11-25T09:00:00.000Z");
    let shoppers_at = |hour: &str| {
        hours
            .iter()
            .find(|h| {
                h["start"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("T{hour}:00"))
            })
            .map_or(0.0, |h| h["shoppers"].as_f64().unwrap())
    };
    assert!((shoppers_at("09") - 30.0).abs() < 1e-6, "{hours:?}");
    assert!((shoppers_at("12") - 60.0).abs() < 1e-6, "{hours:?}");
    assert_eq!(shoppers_at("15"), 0.0, "Tuesday's crowd is not Wednesday's");
    let labelers: Vec<i64> = hours
        .iter()
        .map(|h| h["labelers"].as_i64().unwrap())
        .collect();
    assert!(labelers.iter().all(|&n| n >= 1), "{labelers:?}");
    assert_eq!(f["labeler_hours"], labelers.iter().sum::<i64>());
    assert!(f["latency_p95_s"].as_f64().unwrap() <= 600.0, "{f}");
    // Asked again: the same forecast.
    assert_eq!(staffing(&app, &boss, &store, "?date=2026-11-25").await.1, f);

    // A Thursday: no history, no hours.
    let (s, thursday) = staffing(&app, &boss, &store, "?date=2026-11-26").await;
    assert_eq!(s, StatusCode::OK, "{thursday}");
    assert_eq!(thursday["basis"], Value::Null);
    assert_eq!(thursday["hours"], json!([]));
    assert_eq!(thursday["labeler_hours"], 0);
    // Without a date: today (the clock's Wednesday).
    let (_, today) = staffing(&app, &boss, &store, "").await;
    assert_eq!(today["date"], "2026-11-25");

    // Refusals.
    for bad in [
        "?date=2026-02-30",
        "?date=tomorrow",
        "?date=2026-11-25T00:00:00Z",
    ] {
        let (s, b) = staffing(&app, &boss, &store, bad).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-date"),
            "{bad}"
        );
    }
    let (s, b) = staffing(&app, &boss, "no-such-store", "").await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
    let ana = app.user("ana", Role::Labeler).await;
    let (s, b) = staffing(&app, &ana, &store, "").await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, _) = staffing(&app, &key, &store, "").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a store key is not a supervisor");
}
dual!(forecasts_come_from_the_same_weekday);

async fn the_dashboard_shows_working_now_against_needed(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    let (quiet, _) = app.store("Quiet store", None).await;
    let boss = app.user("boss", Role::Supervisor).await;
    past_day(&app, &key, "2026-11-18", &[(10, 40)]).await;
    // Made on request, both kept for the dashboard.
    let (_, f) = staffing(&app, &boss, &store, "").await;
    let needed = f["hours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["start"] == "2026-11-25T10:00:00.000Z")
        .expect("the clock's hour is forecast")["labelers"]
        .as_i64()
        .unwrap();
    assert!(needed >= 1);
    let (s, _) = staffing(&app, &boss, &quiet, "").await;
    assert_eq!(s, StatusCode::OK);

    // One labeler at work: an event to review today, claimed.
    let (s, b) = app
        .events(
            &key,
            event("now-1", "now", "pick", 1, &[("milk", 0.5), ("cola", 0.5)]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ana = app.user("ana", Role::Labeler).await;
    let (s, claim) = app.claim(&ana).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let task = claim["task"]["task_id"].as_str().unwrap().to_string();

    let (s, d) = app
        .call(Method::GET, "/api/v1/dashboard", &boss, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let staff = &d["staffing"];
    assert_eq!(staff["hour"], "2026-11-25T10:00:00.000Z");
    assert_eq!(staff["working"], 1, "{staff}");
    assert_eq!(staff["needed"], needed, "{staff}");
    let of = |id: &str| {
        staff["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&store)["forecast"], "ready");
    assert_eq!(of(&store)["needed"], needed);
    assert_eq!(of(&quiet)["forecast"], "no-history");
    assert_eq!(of(&quiet)["needed"], Value::Null);

    // Answered: still working for 15 minutes, then no longer.
    let (s, v) = app
        .verdict(
            &ana,
            &task,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.clock.advance(14 * 60_000);
    let (_, d) = app
        .call(Method::GET, "/api/v1/dashboard", &boss, None)
        .await;
    assert_eq!(d["staffing"]["working"], 1, "{}", d["staffing"]);
    app.clock.advance(2 * 60_000);
    let (_, d) = app
        .call(Method::GET, "/api/v1/dashboard", &boss, None)
        .await;
    assert_eq!(d["staffing"]["working"], 0, "{}", d["staffing"]);
}
dual!(the_dashboard_shows_working_now_against_needed);
