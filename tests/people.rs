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
