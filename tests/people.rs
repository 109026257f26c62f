//! People's access: an admin disables and enables a user, signs them out
//! everywhere, resets their password; expired tokens are purged; the same
//! through the CLI. On SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{code, Backend, TestApp};
use recount::auth::Role;

async fn admin_call(
    app: &TestApp,
    token: &str,
    username: &str,
    action: &str,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/users/{username}/{action}"),
        token,
        None,
    )
    .await
}

async fn sign_in(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/token", app.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    crate::common::read(resp).await
}

/// Whether a token still works.
async fn works(app: &TestApp, token: &str) -> bool {
    app.call(Method::GET, "/api/v1/tasks/leased", token, None)
        .await
        .0
        == StatusCode::OK
}

async fn an_admin_ends_a_users_access_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let root = app.user("root", Role::Admin).await;
    let ana_again = app.user("ana", Role::Labeler).await;
    assert!(works(&app, &ana_again).await);

    // Disabled: the token fails at once, signing in says why (to whoever
    // knows the password only).
    let (s, b) = admin_call(&app, &root, "ana", "disable").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["disabled"].as_bool(),
            b["tokens_revoked"].as_u64(),
            b["role"].as_str()
        ),
        (Some(true), Some(1), Some("labeler"))
    );
    assert!(
        !works(&app, &ana_again).await,
        "refused at once, not in 10 s"
    );
    // Her console session (the same token in the cookie) ends too.
    let console = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console", app.base))
        .header("cookie", format!("recount_session={ana_again}"))
        .send()
        .await
        .unwrap();
    assert!(console.status().is_redirection(), "{}", console.status());
    assert!(console.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
    let (s, b) = sign_in(&app, "ana", crate::common::PASSWORD).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::FORBIDDEN, "user-disabled"),
        "{b}"
    );
    let (s, b) = sign_in(&app, "ana", "not her password").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNAUTHORIZED, "invalid-credentials")
    );

    // Enabled: she signs in again; the old token stays dead.
    let (s, b) = admin_call(&app, &root, "ana", "enable").await;
    assert_eq!((s, b["disabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, b) = sign_in(&app, "ana", crate::common::PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fresh = b["token"].as_str().unwrap().to_string();
    assert!(works(&app, &fresh).await);
    assert!(!works(&app, &ana_again).await);

    // Signed out everywhere: both sessions end, signing in still works.
    let (_, b) = sign_in(&app, "ana", crate::common::PASSWORD).await;
    let second = b["token"].as_str().unwrap().to_string();
    let (s, b) = admin_call(&app, &root, "ana", "revoke-tokens").await;
    assert_eq!(
        (s, b["tokens_revoked"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{b}"
    );
    assert!(!works(&app, &fresh).await && !works(&app, &second).await);
    assert_eq!(
        sign_in(&app, "ana", crate::common::PASSWORD).await.0,
        StatusCode::OK
    );

    // A password reset: shown once, the old one and old tokens end.
    let (s, b) = admin_call(&app, &root, "ana", "password").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let new_password = b["password"].as_str().unwrap().to_string();
    assert_eq!(b["tokens_revoked"], 1);
    assert_eq!(
        sign_in(&app, "ana", crate::common::PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in(&app, "ana", &new_password).await.0, StatusCode::OK);

    // Refusals, and nothing changed by them.
    for (token, user, action, status, expected) in [
        (
            &fresh,
            "root",
            "disable",
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            &root,
            "nobody",
            "disable",
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            &root,
            "nobody",
            "password",
            StatusCode::NOT_FOUND,
            "unknown-user",
        ),
        (
            &root,
            "root",
            "disable",
            StatusCode::CONFLICT,
            "own-account",
        ),
    ] {
        let (s, b) = admin_call(&app, token, user, action).await;
        assert_eq!((s, code(&b)), (status, expected), "{user} {action}");
    }
    let (_, b) = sign_in(&app, "ana", &new_password).await;
    let ana_now = b["token"].as_str().unwrap().to_string();
    let (s, b) = admin_call(&app, &ana_now, "root", "disable").await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "role-forbidden"));
    assert!(works(&app, &root).await, "the admin is untouched");
}
dual!(an_admin_ends_a_users_access_at_once);

async fn expired_tokens_are_purged(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.token_ttl_ms = 60_000).await;
    let _ = app.user("ana", Role::Labeler).await;
    let (_, b) = sign_in(&app, "ana", crate::common::PASSWORD).await;
    let token = b["token"].as_str().unwrap().to_string();
    app.clock.advance(61_000);
    assert!(!works(&app, &token).await, "expired");
    let later = sign_in(&app, "ana", crate::common::PASSWORD).await.1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let purged = recount::db::users::purge_expired_tokens(&app.state.db, app.state.now())
        .await
        .unwrap();
    assert_eq!(purged, 2, "the token `user` made and the first sign-in");
    assert_eq!(app.count("SELECT COUNT(*) FROM api_tokens").await, 1);
    assert!(works(&app, &later).await);
}
dual!(expired_tokens_are_purged);

/// `recount user …` on a fresh SQLite data directory.
fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_recount"))
        .arg("--data-dir")
        .arg(dir)
        .arg("user")
        .args(args)
        .env_remove("RECOUNT_DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("runs")
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cli_disables_enables_and_signs_out_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let added = json_of(&cli(dir.path(), &["add", "ana", "--role", "labeler"]));
    assert_eq!(
        (added["username"].as_str(), added["tokens_revoked"].as_u64()),
        (Some("ana"), Some(0))
    );
    let disabled = json_of(&cli(dir.path(), &["disable", "ana"]));
    assert_eq!(disabled["disabled"], true);
    let enabled = json_of(&cli(dir.path(), &["enable", "ana"]));
    assert_eq!(enabled["disabled"], false);
    let revoked = json_of(&cli(dir.path(), &["revoke-tokens", "ana"]));
    assert_eq!(revoked["tokens_revoked"], 0);
    for action in ["disable", "enable", "revoke-tokens"] {
        let out = cli(dir.path(), &[action, "nobody"]);
        assert!(!out.status.success(), "{action}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no user \"nobody\""), "{action}: {err}");
    }
}

async fn a_supervisor_manages_the_labelers_of_their_stores_and_no_one_else(backend: Backend) {
    use recount::domain::scope::Scope;
    let app = TestApp::start(backend).await;
    let (a, _) = app.store("Alpha", None).await;
    let (b, _) = app.store("Beta", None).await;
    let root = app.user("root", Role::Admin).await;
    let sue = app.user_in("sue", Role::Supervisor, Scope::of([&a])).await;
    let la = app.user_in("la", Role::Labeler, Scope::of([&a])).await;
    app.add_user_in("lb", Role::Labeler, Scope::of([&b])).await;
    app.add_user("shared", Role::Labeler).await;

    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["username"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, people) = app.call(Method::GET, "/api/v1/users", &sue, None).await;
    assert_eq!(s, StatusCode::OK, "{people}");
    assert_eq!(names(&people), vec!["la"]);
    let (_, everyone) = app.call(Method::GET, "/api/v1/users", &root, None).await;
    assert_eq!(names(&everyone), vec!["la", "lb", "root", "shared", "sue"]);

    // Adding: a labeler of her store, once; nothing else.
    let add = |who: &str, body: Value| {
        let app = &app;
        let who = who.to_string();
        async move {
            app.call(Method::POST, "/api/v1/users", &who, Some(body))
                .await
        }
    };
    let (s, added) = add(
        &sue,
        json!({"username": "lc", "role": "labeler", "stores": [a]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    assert_eq!(
        (&added["all_stores"], &added["stores"]),
        (&json!(false), &json!([a]))
    );
    let (s, _) = sign_in(&app, "lc", added["password"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "the password shown signs in");
    for (body, status, want) in [
        (
            json!({"username": "lc", "role": "labeler", "stores": [a]}),
            StatusCode::CONFLICT,
            "user-exists",
        ),
        (
            json!({"username": "ld", "role": "supervisor", "stores": [a]}),
            StatusCode::FORBIDDEN,
            "role-forbidden",
        ),
        (
            json!({"username": "ld", "role": "labeler", "stores": [b]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        (
            json!({"username": "ld", "role": "labeler", "all_stores": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-stores",
        ),
        (
            json!({"username": "l d", "role": "labeler", "stores": [a]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-username",
        ),
        (
            json!({"username": "ld", "role": "labeler", "stores": [a], "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
    ] {
        let (s, body_out) = add(&sue, body.clone()).await;
        assert_eq!((s, code(&body_out)), (status, want), "{body}: {body_out}");
    }
    let (s, _) = add(
        &root,
        json!({"username": "boss2", "role": "admin", "all_stores": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // A reason over 500 characters is refused, blank or not, and pauses
    // nobody.
    for reason in ["x".repeat(501), " ".repeat(501)] {
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/users/la/pause",
                &sue,
                Some(json!({ "reason": reason })),
            )
            .await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "note-too-long"),
            "{body}"
        );
    }
    assert_eq!(app.claim(&la).await.0, StatusCode::NO_CONTENT);

    // Pausing: at once, for her labeler only.
    let (s, p) = app
        .call(
            Method::POST,
            "/api/v1/users/la/pause",
            &sue,
            Some(json!({"reason": "checking the gold answers"})),
        )
        .await;
    assert_eq!((s, &p["paused"]), (StatusCode::OK, &json!(true)), "{p}");
    let (s, body) = app.claim(&la).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, "labeler-paused"));
    let (_, people) = app.call(Method::GET, "/api/v1/users", &sue, None).await;
    assert_eq!(people[0]["paused_reason"], "checking the gold answers");
    for name in ["lb", "shared", "root", "nobody"] {
        for action in [
            "pause",
            "resume",
            "disable",
            "enable",
            "revoke-tokens",
            "password",
        ] {
            let (s, body) = app
                .call(
                    Method::POST,
                    &format!("/api/v1/users/{name}/{action}"),
                    &sue,
                    Some(json!({})),
                )
                .await;
            assert_eq!(
                (s, code(&body)),
                (StatusCode::NOT_FOUND, "unknown-user"),
                "{name} {action}"
            );
        }
    }
    let (s, _) = app
        .call(Method::POST, "/api/v1/users/la/resume", &sue, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.claim(&la).await.0, StatusCode::NO_CONTENT);
    // Disabling her labeler ends his token at once.
    let (s, _) = app
        .call(Method::POST, "/api/v1/users/la/disable", &sue, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!works(&app, &la).await);
    let (s, body) = app
        .call(Method::POST, "/api/v1/users/sue/disable", &sue, None)
        .await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "own-account"));
    // A labeler manages nobody.
    let lc = sign_in(&app, "lc", added["password"].as_str().unwrap())
        .await
        .1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = app.call(Method::GET, "/api/v1/users", &lc, None).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, "role-forbidden"));
}
dual!(a_supervisor_manages_the_labelers_of_their_stores_and_no_one_else);

async fn an_admin_changes_a_stores_settings_and_its_deliveries(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.webhook_max_attempts = 1).await;
    let (store, key) = app.store_with_catalog().await;
    let root = app.user("root", Role::Admin).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let path = format!("/api/v1/stores/{store}");
    for (body, want) in [
        (
            json!({"webhook_url": "https://u:p@x.example/h"}),
            "invalid-webhook-url",
        ),
        (
            json!({"webhook_url": "ftp://x.example/h"}),
            "invalid-webhook-url",
        ),
        (json!({"media_retention_days": 0}), "invalid-retention"),
        (json!({"name": "  "}), "invalid-name"),
        (json!({"colour": "red"}), "invalid-body"),
    ] {
        let (s, out) = app
            .call(Method::PATCH, &path, &root, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&out)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{body}: {out}"
        );
    }
    let (s, out) = app
        .call(Method::PATCH, &path, &sue, Some(json!({"name": "x"})))
        .await;
    assert_eq!((s, code(&out)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (_, settings) = app.call(Method::GET, &path, &sue, None).await;
    assert_eq!(
        (
            &settings["name"],
            &settings["webhook_url"],
            &settings["media_retention_days"]
        ),
        (&json!("Test store"), &Value::Null, &json!(30)),
        "the refusals changed nothing: {settings}"
    );

    let (hook, receiver) = crate::common::start_receiver(1).await;
    let (s, out) = app
        .call(
            Method::PATCH,
            &path,
            &root,
            Some(json!({"name": "Corner shop", "webhook_url": hook, "media_retention_days": 7})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(
        (&out["name"], &out["media_retention_days"]),
        (&json!("Corner shop"), &json!(7))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'store.changed'")
            .await,
        1
    );

    // A receipt whose one attempt fails: dead; listed; sent again.
    let (_, out) = app
        .events(
            &key,
            crate::common::event("e1", "s1", "pick", 1, &[("milk", 0.99), ("cola", 0.005)]),
        )
        .await;
    assert_eq!(out["route"], "auto_accepted");
    app.exit(&key, "s1", "2026-11-25T10:05:00Z").await;
    let client = recount::jobs::webhook::client(&app.state.config);
    recount::jobs::run_next_job(&app.state, &client, recount::jobs::DELIVERY_JOBS)
        .await
        .unwrap();
    let (s, dead) = app
        .call(
            Method::GET,
            &format!("{path}/deliveries?status=dead"),
            &sue,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dead}");
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    assert_eq!(
        (&dead[0]["session_id"], &dead[0]["attempts"]),
        (&json!("s1"), &json!(1))
    );
    let id = dead[0]["delivery_id"].as_str().unwrap().to_string();
    let (s, body) = app
        .call(
            Method::GET,
            &format!("{path}/deliveries?status=lost"),
            &sue,
            None,
        )
        .await;
    assert_eq!((s, code(&body)), (StatusCode::BAD_REQUEST, "invalid-query"));
    let redeliver = format!("{path}/deliveries/{id}/redeliver");
    let (s, _) = app.call(Method::POST, &redeliver, &root, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = app.call(Method::POST, &redeliver, &root, None).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "delivery-not-dead")
    );
    let (s, body) = app
        .call(
            Method::POST,
            &format!("{path}/deliveries/nope/redeliver"),
            &root,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::NOT_FOUND, "unknown-delivery")
    );
    recount::jobs::run_next_job(&app.state, &client, recount::jobs::DELIVERY_JOBS)
        .await
        .unwrap();
    assert_eq!(
        receiver.seen.lock().unwrap().len(),
        2,
        "the failed attempt and the redelivery"
    );
    let (_, done) = app
        .call(Method::GET, &format!("{path}/deliveries"), &sue, None)
        .await;
    assert_eq!(done[0]["status"], "done");

    // The test delivery; a store without a URL cannot be tested.
    let (s, t) = app
        .call(Method::POST, &format!("{path}/webhook-test"), &root, None)
        .await;
    assert_eq!(
        (s, &t["delivered"], &t["status"]),
        (StatusCode::OK, &json!(true), &json!(204)),
        "{t}"
    );
    let (s, _) = app
        .call(
            Method::PATCH,
            &path,
            &root,
            Some(json!({"webhook_url": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app
        .call(Method::POST, &format!("{path}/webhook-test"), &root, None)
        .await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "no-webhook-url")
    );

    // A new API key works at once and the old one no longer.
    let (s, k) = app
        .call(Method::POST, &format!("{path}/api-key/rotate"), &root, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    let new_key = k["api_key"].as_str().unwrap();
    assert_eq!(
        app.call(Method::GET, "/api/v1/products", &key, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/products", new_key, None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, stores) = app.call(Method::GET, "/api/v1/stores", &sue, None).await;
    assert_eq!(stores[0]["name"], "Corner shop");
}
dual!(an_admin_changes_a_stores_settings_and_its_deliveries);

/// On PostgreSQL an access change holds at once on every instance: the
/// instance that made it announces it and the others forget the cached
/// tokens (instead of trusting them for up to 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_disabled_users_token_fails_at_once_on_every_instance() {
    use std::time::{Duration, Instant};
    let app = TestApp::start(Backend::Postgres).await;
    let root = app.user("root", Role::Admin).await;
    let ana = app.user("ana", Role::Labeler).await;
    let other = app.second_instance().await;
    let listening = tokio::spawn(recount::jobs::listener(other.clone()));
    // Until the other instance listens (its LISTEN is its last statement).
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .count(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'LISTEN%'",
        )
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the listener never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other instance has looked ana's token up: cached for 10 s.
    let cached = other
        .tokens
        .user(&other.db, &ana, other.now())
        .await
        .unwrap();
    assert_eq!(cached.map(|u| u.username), Some("ana".to_string()));

    let (s, _) = admin_call(&app, &root, "ana", "disable").await;
    assert_eq!(s, StatusCode::OK);
    let refused_by = Instant::now() + Duration::from_secs(3);
    while other
        .tokens
        .user(&other.db, &ana, other.now())
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < refused_by,
            "the other instance still accepts the token (it would for 10 s without the announcement)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listening.abort();
}
