//! The audit trail: every recorded action writes exactly one row, in the
//! transaction of the change; rows are read with filters, a page at a time
//! and as CSV, each supervisor only their stores' rows; rows cannot be
//! changed. On SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{code, event, Backend, TestApp};
use recount::auth::Role;
use recount::domain::scope::Scope;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

async fn rows(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM audit_log").await
}

/// The newest audit row, through the API as the admin sees it.
async fn newest(app: &TestApp, admin: &str) -> Value {
    let (s, page) = app
        .call(Method::GET, "/api/v1/audit?limit=1", admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["entries"][0].clone()
}

/// Runs `act`, then checks it added exactly one row, of `action`, by
/// `actor`, about `subject`; returns the row.
macro_rules! one_row {
    ($app:expr, $admin:expr, $action:expr, $actor:expr, $subject:expr, $act:expr) => {{
        let before = rows($app).await;
        $act;
        assert_eq!(rows($app).await, before + 1, "{} wrote one row", $action);
        let row = newest($app, $admin).await;
        assert_eq!(row["action"], $action, "{row}");
        assert_eq!(row["actor"], $actor, "{row}");
        assert_eq!(row["subject"], json!($subject), "{row}");
        row
    }};
}

async fn every_action_writes_one_audit_row(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    let root = app.user("root", Role::Admin).await;
    let sue = app.user("sue", Role::Supervisor).await;
    app.add_user("ann", Role::Labeler).await;
    let call = |m: Method, path: String, token: &str, body: Option<Value>| {
        let app = &app;
        let token = token.to_string();
        async move {
            let (s, b) = app.call(m, &path, &token, body).await;
            assert!(s.is_success(), "{path}: {s} {b}");
            b
        }
    };
    let store_path = |rest: &str| format!("/api/v1/stores/{store}/{rest}");

    let row = one_row!(&app, &root, "policy.changed", "root", store.as_str(), {
        call(
            Method::PUT,
            store_path("policy"),
            &root,
            Some(json!({"threshold": 0.8})),
        )
        .await;
    });
    assert_eq!(row["store_id"], store.as_str());
    assert_eq!(row["detail"]["before"]["threshold"], 0.9);
    assert_eq!(row["detail"]["after"]["threshold"], 0.8);
    one_row!(
        &app,
        &root,
        "blind-review.changed",
        "root",
        store.as_str(),
        {
            call(
                Method::PUT,
                store_path("blind-review"),
                &root,
                Some(json!({"blind": true})),
            )
            .await;
        }
    );
    let row = one_row!(&app, &root, "training.changed", "root", store.as_str(), {
        call(
            Method::PUT,
            store_path("training"),
            &root,
            Some(json!({"allowed": true})),
        )
        .await;
    });
    assert_eq!(row["detail"]["allowed"], true);
    let row = one_row!(
        &app,
        &root,
        "store.webhook-secret-rotated",
        "root",
        store.as_str(),
        {
            call(
                Method::POST,
                store_path("webhook-secret/rotate"),
                &root,
                None,
            )
            .await;
        }
    );
    assert!(
        !row["detail"].to_string().contains("whsec_"),
        "no secret in the trail: {row}"
    );
    for (action, path) in [
        ("user.disabled", "disable"),
        ("user.enabled", "enable"),
        ("user.signed-out", "revoke-tokens"),
        ("user.password-reset", "password"),
    ] {
        let row = one_row!(&app, &root, action, "root", "ann", {
            call(
                Method::POST,
                format!("/api/v1/users/ann/{path}"),
                &root,
                None,
            )
            .await;
        });
        assert_eq!(row["store_id"], Value::Null, "{row}");
        assert!(
            !row["detail"].to_string().contains("password\":\""),
            "{row}"
        );
    }
    let ann = app.user("ann", Role::Labeler).await;
    let row = one_row!(&app, &root, "user.stores", "root", "ann", {
        call(
            Method::PUT,
            "/api/v1/users/ann/stores".into(),
            &root,
            Some(json!({"stores": [store]})),
        )
        .await;
    });
    assert_eq!(row["detail"]["stores"], json!([store]));

    // A resolved task, corrected by a supervisor.
    let (_, out) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    let task = out["task_id"].as_str().unwrap().to_string();
    let (s, c) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    app.verdict(
        &ann,
        &task,
        json!({"action": "pick", "sku": "milk", "quantity": 1}),
    )
    .await;
    let row = one_row!(&app, &root, "label.corrected", "sue", task.as_str(), {
        call(
            Method::POST,
            format!("/api/v1/tasks/{task}/correction"),
            &sue,
            Some(json!({"action": "pick", "sku": "cola", "quantity": 1})),
        )
        .await;
    });
    assert_eq!(row["detail"]["label"]["sku"], "cola");

    // An export, then its deletion.
    let before = rows(&app).await;
    let x = call(
        Method::POST,
        "/api/v1/exports".into(),
        &sue,
        Some(json!({"filter": {"stores": [store]}})),
    )
    .await;
    let export_id = x["export_id"].as_str().unwrap().to_string();
    assert_eq!(rows(&app).await, before + 1);
    let created = newest(&app, &root).await;
    assert_eq!(
        (
            &created["action"],
            &created["actor"],
            &created["subject"],
            &created["store_id"]
        ),
        (
            &json!("export.created"),
            &json!("sue"),
            &json!(export_id),
            &json!(store)
        )
    );
    one_row!(&app, &root, "export.deleted", "sue", export_id.as_str(), {
        call(
            Method::DELETE,
            format!("/api/v1/exports/{export_id}"),
            &sue,
            None,
        )
        .await;
    });
    let before = rows(&app).await;
    call(
        Method::DELETE,
        format!("/api/v1/exports/{export_id}"),
        &sue,
        None,
    )
    .await;
    assert_eq!(rows(&app).await, before, "deleting again records nothing");

    // Refused changes record nothing.
    let before = rows(&app).await;
    let (s, _) = app
        .call(
            Method::PUT,
            &store_path("policy"),
            &root,
            Some(json!({"threshold": 7})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app
        .call(Method::POST, "/api/v1/users/nobody/disable", &root, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(rows(&app).await, before);
}
dual!(every_action_writes_one_audit_row);

async fn the_trail_filters_pages_and_downloads_and_each_supervisor_sees_their_stores(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let (a, _) = app.store("Alpha", None).await;
    let (b, _) = app.store("Beta", None).await;
    let root = app.user("root", Role::Admin).await;
    let sa = app.user_in("sa", Role::Supervisor, Scope::of([&a])).await;
    for (i, store) in [&a, &b, &a, &b, &a].iter().enumerate() {
        app.clock.advance(1_000);
        let (s, body) = app
            .call(
                Method::PUT,
                &format!("/api/v1/stores/{store}/policy"),
                &root,
                Some(json!({"audit_rate": 0.01 * (i + 1) as f64})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let list = |token: &str, query: &str| {
        let app = &app;
        let token = token.to_string();
        let path = format!("/api/v1/audit{query}");
        async move {
            let (s, page) = app.call(Method::GET, &path, &token, None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {page}");
            page
        }
    };
    let subjects = |page: &Value| -> Vec<String> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap_or("-").to_string())
            .collect()
    };

    // The admin pages through five policy changes, two at a time.
    let first = list(&root, "?action=policy.changed&actor=root&limit=2").await;
    assert_eq!(subjects(&first), vec![a.clone(), b.clone()]);
    let before = first["next_before"].as_str().unwrap().to_string();
    let second = list(
        &root,
        &format!("?action=policy.changed&actor=root&limit=2&before={before}"),
    )
    .await;
    assert_eq!(subjects(&second), vec![a.clone(), b.clone()]);
    let before = second["next_before"].as_str().unwrap().to_string();
    let last = list(
        &root,
        &format!("?action=policy.changed&actor=root&limit=2&before={before}"),
    )
    .await;
    assert_eq!(subjects(&last), vec![a.clone()]);
    assert_eq!(last["next_before"], Value::Null);
    // By store, by who, by time.
    let only_b = list(
        &root,
        &format!("?action=policy.changed&actor=root&store_id={b}"),
    )
    .await;
    assert_eq!(subjects(&only_b), vec![b.clone(), b.clone()]);
    assert_eq!(
        list(&root, "?actor=nobody").await["entries"],
        json!([]),
        "no such actor"
    );
    let all_by_root = list(&root, "?actor=root&action=policy.changed").await;
    assert_eq!(subjects(&all_by_root).len(), 5);
    let t3 = all_by_root["entries"][2]["at"]
        .as_str()
        .unwrap()
        .to_string();
    let since = list(
        &root,
        &format!("?action=policy.changed&actor=root&from={t3}"),
    )
    .await;
    assert_eq!(subjects(&since).len(), 3, "from is inclusive");

    // A supervisor of A sees A's rows only, and no people's changes.
    let seen = list(&sa, "").await;
    for e in seen["entries"].as_array().unwrap() {
        assert_eq!(e["store_id"], a.as_str(), "{e}");
    }
    assert_eq!(
        subjects(&list(&sa, "?action=policy.changed&actor=root").await).len(),
        3
    );
    assert_eq!(
        list(&sa, "?action=user.created").await["entries"],
        json!([])
    );
    assert!(!subjects(&list(&root, "?action=user.created").await).is_empty());

    // The CSV holds the same rows, quoted where needed.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/audit.csv?action=policy.changed&actor=root&store_id={a}",
            app.base
        ))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "at,actor_kind,actor,action,store_id,subject,detail"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].contains(",user,root,policy.changed,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with('"'),
        "the JSON detail is quoted: {}",
        lines[1]
    );

    // Unreadable filters are refused.
    for query in ["?from=yesterday", "?action=policy.burned"] {
        let (s, body) = app
            .call(Method::GET, &format!("/api/v1/audit{query}"), &root, None)
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid-query"),
            "{query}"
        );
    }
    let labeler = app.user("lou", Role::Labeler).await;
    let (s, body) = app.call(Method::GET, "/api/v1/audit", &labeler, None).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, "role-forbidden"));
}
dual!(the_trail_filters_pages_and_downloads_and_each_supervisor_sees_their_stores);

async fn audit_rows_cannot_be_changed(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.store("Alpha", None).await;
    assert!(rows(&app).await > 0);
    let changed = sqlx::query("UPDATE audit_log SET actor_name = 'someone else'")
        .execute(app.state.db.writer())
        .await;
    let err = changed.expect_err("an update of the trail is refused");
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE actor_name = 'someone else'")
            .await,
        0
    );
}
dual!(audit_rows_cannot_be_changed);

#[test]
fn the_cli_records_what_the_operator_did() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("RECOUNT_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let store = run(&["store", "add", "Alpha"]);
    let id = store["store_id"].as_str().unwrap();
    run(&["store", "rotate-key", id]);
    run(&["store", "policy", id, "--threshold", "0.85"]);
    run(&["user", "add", "ann", "--role", "labeler"]);
    assert_eq!(
        audit_of(dir.path()),
        vec![
            ("operator".to_string(), "store.created".to_string()),
            ("operator".into(), "store.key-rotated".into()),
            ("operator".into(), "policy.changed".into()),
            ("operator".into(), "user.created".into()),
        ]
    );
}

/// (actor kind, action) of the audit rows of a SQLite data directory,
/// oldest first.
fn audit_of(dir: &std::path::Path) -> Vec<(String, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.join("recount.db").display());
        let db = recount::db::Db::connect(&url, 2).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT actor_kind, action FROM audit_log ORDER BY id")
                .fetch_all(db.reader())
                .await
                .unwrap();
        rows
    })
}
