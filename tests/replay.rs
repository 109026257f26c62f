//! `recount simulate --replay`: a store's past events through policies,
//! the auto-accept charge error estimated from audit samples, on SQLite and
//! PostgreSQL; and the command's refusals.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{event, Backend, TestApp, T0};
use recount::auth::Role;
use recount::domain::charge::LaborCost;
use recount::sim::policy::SimPolicy;

/// An event id, the model's candidates, and what the labeler sees.
type Past<'a> = (&'a str, &'a [(&'a str, f64)], &'a str);

/// Five events of a store that audits half its confident events, one
/// verdict each: two reviewed (one where the model was wrong by 20 cents),
/// two audited (one wrong by 20 cents), one accepted unseen.
async fn history(backend: Backend) -> (TestApp, String) {
    let app = TestApp::start_with_draws(backend, [0.9, 0.9, 0.1, 0.1, 0.9]).await;
    let (store_id, key) = app.store_with_catalog().await;
    let admin = app.user("boss", Role::Admin).await;
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &admin,
            Some(json!({"threshold": 0.9, "margin": 0.0, "audit_rate": 0.5, "audit_verdicts": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let events: [Past; 5] = [
        ("r1", &[("milk", 0.6), ("cola", 0.4)], "cola"),
        ("r2", &[("milk", 0.7), ("bread", 0.3)], "milk"),
        ("a1", &[("milk", 0.95), ("cola", 0.05)], "cola"),
        ("a2", &[("tv", 0.97), ("milk", 0.03)], "tv"),
        ("n1", &[("bread", 0.96), ("milk", 0.04)], ""),
    ];
    for (id, candidates, _) in &events {
        let (s, out) = app.events(&key, event(id, id, "pick", 1, candidates)).await;
        assert_eq!(s, StatusCode::OK, "{out}");
    }
    let ana = app.user("ana", Role::Labeler).await;
    for _ in 0..4 {
        let (s, claim) = app.claim(&ana).await;
        assert_eq!(s, StatusCode::OK, "{claim}");
        let id = claim["task"]["event_id"].as_str().unwrap();
        let answer = events.iter().find(|e| e.0 == id).unwrap().2;
        let task = claim["task"]["task_id"].as_str().unwrap();
        let (s, v) = app
            .verdict(
                &ana,
                task,
                json!({"action": "pick", "sku": answer, "quantity": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    assert_eq!(
        app.claim(&ana).await.0,
        StatusCode::NO_CONTENT,
        "all answered"
    );
    (app, store_id)
}

async fn policies_replay_with_an_ipw_estimate_of_their_charge_error(backend: Backend) {
    let (app, store_id) = history(backend).await;
    let policies: Vec<SimPolicy> = [
        "threshold,threshold=0.5,margin=0",
        "threshold,threshold=0.99,margin=0",
    ]
    .iter()
    .map(|s| SimPolicy::parse(s).unwrap())
    .collect();
    let labor = LaborCost {
        hourly_cents: 2250,
        handling_ms: 8000,
    };
    let hour = 3_600_000;
    let (db, policies, now) = (&app.state.db, &policies, app.state.now());
    let replay = |store: &str, from: i64, to: i64| {
        let store = store.to_string();
        async move { recount::review::replay::replay(db, &store, from, to, policies, labor, now).await }
    };
    let report = replay(&store_id, T0 - hour, T0 + hour).await.unwrap();
    assert_eq!(
        (report.events, report.skipped, report.audit_rate),
        (5, 0, 0.5)
    );
    let [current, loose, strict] = [0, 1, 2].map(|i| &report.policies[i]);
    assert_eq!(current.policy, "current");
    // The store's own policy: r1, r2 to people; a1, a2, n1 accepted, of
    // them a1 and a2 labelled; a1's 20 cents stand for 2 · 20 = 40.
    assert_eq!(
        (current.to_people, current.auto_accepted, current.labelled),
        (2, 3, 2)
    );
    assert_eq!(current.charge_error_cents, Some(40.0));
    let half = 1.96 * 800f64.sqrt();
    assert_eq!(current.charge_error_low_cents, Some(0.0));
    assert!((current.charge_error_high_cents.unwrap() - (40.0 + half)).abs() < 1e-9);
    // Accepting everything adds r1's 20 cents (weight 1, no variance).
    assert_eq!((loose.to_people, loose.labelled), (0, 4));
    assert_eq!(loose.charge_error_cents, Some(60.0));
    // Reviewing everything leaves no error.
    assert_eq!((strict.to_people, strict.auto_accepted), (5, 0));
    assert_eq!(strict.charge_error_cents, Some(0.0));
    let table = recount::sim::render::replay_table(&report.policies);
    let line = |label: &str| {
        table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(table.lines().next().unwrap().contains("current"), "{table}");
    assert_eq!(
        line("to people"),
        "to people 2 (40.0 %) 0 (0.0 %) 5 (100.0 %)"
    );
    assert_eq!(
        line("charge error $"),
        "charge error $ (est.) 0.40 0.60 0.00"
    );

    // A range without events says so; so does an unknown store.
    let empty = replay(&store_id, T0 + hour, T0 + 2 * hour)
        .await
        .unwrap_err();
    assert!(
        empty.to_string().contains("has no events between"),
        "{empty}"
    );
    let unknown = replay("no-such-store", T0 - hour, T0 + hour)
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("no store"), "{unknown}");
}

dual!(policies_replay_with_an_ipw_estimate_of_their_charge_error);

#[test]
fn the_command_refuses_bad_replays_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec![
                "--replay",
                "nope",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
            ],
            "no store \"nope\"",
        ),
        (
            vec![
                "--replay",
                "nope",
                "--from",
                "yesterday",
                "--to",
                "2026-11-02T00:00:00Z",
            ],
            "--from \"yesterday\" is not an RFC 3339 time",
        ),
        (vec!["--replay", "nope"], "--from"),
        (
            vec![
                "--replay",
                "nope",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--policy",
                "tuned",
            ],
            "a replay takes fixed policies",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("simulate")
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RECOUNT_DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
