//! The console's server side over real HTTP: login with cookie sessions,
//! CSRF, login throttling, logout, static files, and the task endpoints the
//! console uses (shopper context, catalog search, held leases). Browser
//! behaviour is in tests/console.rs.

use crate::common;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, event, Backend, TestApp};
use recount::auth::Role;

const PASSWORD: &str = "pw-for-tests";
const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];
const SURE: &[(&str, f64)] = &[("bread", 0.99), ("milk", 0.005)];

/// A client that does not follow redirects, so tests see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of a `Set-Cookie` header, and the whole header.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap().to_string();
            (pair, v.to_string())
        })
}

/// The value of a hidden form field or meta tag in a page.
fn attr_after(html: &str, marker: &str) -> String {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in page"))
        + marker.len();
    let rest = &html[start..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in console session.
struct Session {
    cookie: String,
    csrf: String,
}

/// Fetches the login form and posts it.
async fn login_response(app: &TestApp, user: &str, password: &str) -> reqwest::Response {
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let (csrf_cookie, _) = set_cookie(&form, "recount_login_csrf").expect("login csrf cookie");
    let html = form.text().await.unwrap();
    let csrf = attr_after(&html, "name=\"csrf\" value=\"");
    http.post(format!("{}/login", app.base))
        .header(COOKIE, csrf_cookie)
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf", csrf.as_str()),
            ("next", "/console"),
        ])
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, user: &str) -> Session {
    let resp = login_response(app, user, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console");
    let (cookie, _) = set_cookie(&resp, "recount_session").expect("session cookie");
    let page = client()
        .get(format!("{}/console", app.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = attr_after(&html, "name=\"csrf-token\" content=\"");
    Session { cookie, csrf }
}

/// A request authenticated by the session cookie.
async fn cookie_call(
    app: &TestApp,
    s: &Session,
    method: Method,
    path: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client()
        .request(method, format!("{}{path}", app.base))
        .header(COOKIE, &s.cookie);
    if let Some(c) = csrf {
        req = req.header("X-CSRF-Token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    common::read(req.send().await.unwrap()).await
}

async fn login_sets_an_http_only_session_cookie_that_the_api_accepts(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.add_user("ana", Role::Labeler).await;
    let tokens_before = app.count("SELECT COUNT(*) FROM api_tokens").await;

    let resp = login_response(&app, "ana", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (cookie, header) = set_cookie(&resp, "recount_session").unwrap();
    let lower = header.to_lowercase();
    assert!(lower.contains("httponly"), "{header}");
    assert!(lower.contains("samesite=lax"), "{header}");
    assert!(lower.contains("path=/"), "{header}");
    assert!(
        !lower.contains("secure"),
        "plain HTTP gets no Secure flag: {header}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_tokens").await,
        tokens_before + 1
    );

    // The cookie authenticates API reads without any header.
    let s = Session {
        cookie,
        csrf: String::new(),
    };
    let (status, body) =
        cookie_call(&app, &s, Method::GET, "/api/v1/tasks/leased", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([]));
}

async fn login_over_tls_proxy_marks_the_cookie_secure(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.add_user("ana", Role::Labeler).await;
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    // Over TLS the cookies carry the prefixes browsers enforce.
    assert!(set_cookie(&form, "recount_login_csrf").is_none());
    let (csrf_cookie, header) = set_cookie(&form, "__Secure-recount_login_csrf").unwrap();
    assert!(header.to_lowercase().contains("secure"), "{header}");
    let csrf = attr_after(&form.text().await.unwrap(), "name=\"csrf\" value=\"");
    let resp = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, csrf_cookie)
        .header("X-Forwarded-Proto", "https")
        .form(&[("username", "ana"), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&resp, "recount_session").is_none());
    let (session, header) = set_cookie(&resp, "__Host-recount_session").unwrap();
    let header = header.to_lowercase();
    assert!(
        header.contains("; secure") && header.contains("path=/"),
        "{header}"
    );
    assert!(!header.contains("domain="), "{header}");
    // The prefixed cookie is a session like the other.
    let page = http
        .get(format!("{}/console", app.base))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

async fn login_without_the_form_token_is_refused_and_creates_no_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.add_user("ana", Role::Labeler).await;
    let tokens_before = app.count("SELECT COUNT(*) FROM api_tokens").await;
    let http = client();
    for (cookie, field) in [
        (None, "whatever"),
        (Some("recount_login_csrf=abc"), "xyz"),
        (Some("recount_login_csrf=abc"), ""),
    ] {
        let mut req = http.post(format!("{}/login", app.base)).form(&[
            ("username", "ana"),
            ("password", PASSWORD),
            ("csrf", field),
        ]);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&resp, "recount_session").is_none());
        let html = resp.text().await.unwrap();
        assert!(html.contains("The login form expired"), "{html}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_tokens").await,
        tokens_before
    );
}

async fn failed_logins_are_throttled_per_username_for_page_and_api(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.login_max_failures = 3;
        c.login_window_ms = 60_000;
    })
    .await;
    app.add_user("ana", Role::Labeler).await;
    app.add_user("ben", Role::Labeler).await;
    for _ in 0..3 {
        let resp = login_response(&app, "ana", "wrong").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("Unknown username or wrong password"));
    }
    // The right password no longer helps, on the page or through the API.
    let resp = login_response(&app, "ana", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&resp, "recount_session").is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Too many failed logins"));
    let api = client()
        .post(format!("{}/api/v1/auth/token", app.base))
        .json(&json!({"username": "ANA ", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = api.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let (_, body) = common::read(api).await;
    assert_eq!(code(&body), "too-many-attempts");

    // Another user is not affected.
    assert_eq!(
        login_response(&app, "ben", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    // Once the window has moved past the failures, the password works again.
    app.clock.advance(60_001);
    assert_eq!(
        login_response(&app, "ana", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn cookie_requests_that_change_state_need_the_csrf_token(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    app.add_user("ana", Role::Labeler).await;
    let (s, b) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let session = login(&app, "ana").await;

    for csrf in [None, Some("0123"), Some("")] {
        let (status, body) = cookie_call(
            &app,
            &session,
            Method::POST,
            "/api/v1/tasks/claim",
            csrf,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "csrf-failed");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM task_leases").await,
        0,
        "a refused claim leases nothing"
    );
    let (status, body) = cookie_call(
        &app,
        &session,
        Method::POST,
        "/api/v1/tasks/claim",
        Some(&session.csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task"]["event_id"], "e1");
}

async fn logout_ends_the_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.add_user("ana", Role::Labeler).await;
    let session = login(&app, "ana").await;
    let http = client();

    // Without the form's token nothing happens.
    let resp = http
        .post(format!("{}/logout", app.base))
        .header(COOKIE, &session.cookie)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (status, _) = cookie_call(
        &app,
        &session,
        Method::GET,
        "/api/v1/tasks/leased",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let resp = http
        .post(format!("{}/logout", app.base))
        .header(COOKIE, &session.cookie)
        .form(&[("csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/login");
    let (cleared, _) = set_cookie(&resp, "recount_session").unwrap();
    assert_eq!(cleared, "recount_session=");
    let (status, body) = cookie_call(
        &app,
        &session,
        Method::GET,
        "/api/v1/tasks/leased",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let page = http
        .get(format!("{}/console", app.base))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/login?next=/console");
}

#[tokio::test]
async fn pages_redirect_only_to_our_own_paths() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.add_user("ana", Role::Labeler).await;
    let http = client();
    // The page keeps no foreign target in its form either.
    let page = http
        .get(format!("{}/login?next=/%09/evil.example", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(attr_after(&page, "name=\"next\" value=\""), "/console");
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil",
        // Browsers drop tabs and line breaks: these are //evil.example.
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/ /evil.example",
    ] {
        let form = http
            .get(format!("{}/login", app.base))
            .send()
            .await
            .unwrap();
        let (cookie, _) = set_cookie(&form, "recount_login_csrf").unwrap();
        let csrf = attr_after(&form.text().await.unwrap(), "name=\"csrf\" value=\"");
        let resp = http
            .post(format!("{}/login", app.base))
            .header(COOKIE, cookie)
            .form(&[
                ("username", "ana"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[LOCATION], "/console", "next={next:?}");
    }
}

/// Asks for a token as if through a proxy that saw the client at `from`.
async fn token_from(app: &TestApp, from: &str, username: &str, password: &str) -> StatusCode {
    client()
        .post(format!("{}/api/v1/auth/token", app.base))
        .header("x-forwarded-for", from)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn a_stranger_cannot_lock_out_the_owner_but_many_addresses_can_not_guess(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.login_max_failures = 3;
        c.login_max_failures_per_user = 6;
        c.login_window_ms = 60_000;
        // The test's client connects from the loopback: our "proxy".
        c.trusted_proxies = "127.0.0.1, ::1".into();
    })
    .await;
    app.add_user("ana", Role::Labeler).await;
    let stranger = "203.0.113.5";
    for _ in 0..3 {
        assert_eq!(
            token_from(&app, stranger, "ana", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        token_from(&app, stranger, "ana", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the stranger's address is locked for ana, even with her password"
    );
    assert_eq!(
        token_from(&app, "198.51.100.7", "ana", PASSWORD).await,
        StatusCode::OK,
        "ana, elsewhere, still signs in"
    );
    // Guessing from many addresses meets the slower per-user limit: three
    // more failures make six.
    for i in 1..=3 {
        assert_eq!(
            token_from(&app, &format!("192.0.2.{i}"), "ana", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        token_from(&app, "192.0.2.99", "ana", "guess").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(60_001);
    assert_eq!(
        token_from(&app, "192.0.2.99", "ana", PASSWORD).await,
        StatusCode::OK
    );
}
dual!(a_stranger_cannot_lock_out_the_owner_but_many_addresses_can_not_guess);

async fn parallel_guesses_are_counted_before_the_password_is_checked(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.login_max_failures = 3;
        c.login_window_ms = 60_000;
    })
    .await;
    app.add_user("ben", Role::Labeler).await;
    // Ten guesses at once from one client: three are checked, the others
    // refused before any check ends.
    let guesses = (0..10).map(|i| {
        let http = client();
        let url = format!("{}/api/v1/auth/token", app.base);
        async move {
            http.post(url)
                .json(&json!({"username": "ben", "password": format!("guess-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (3, 7), "{statuses:?}");
    // Without a trusted proxy, a client's own X-Forwarded-For is no way
    // around its address's limit.
    assert_eq!(
        token_from(&app, "203.0.113.77", "ben", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another username from the same address is its own pair: a
    // "username" the size of a body fails like any other.
    let huge = "x".repeat(60_000);
    assert_eq!(
        token_from(&app, "-", &huge, "p").await,
        StatusCode::UNAUTHORIZED
    );
}
dual!(parallel_guesses_are_counted_before_the_password_is_checked);

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy_and_static_files_revalidate() {
    let app = TestApp::start(Backend::Sqlite).await;
    let http = client();
    let page = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    let js = http
        .get(format!("{}/static/console.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = js.headers()["etag"].to_str().unwrap().to_string();
    let body = js.text().await.unwrap();
    assert!(body.contains("verdict-to-ready"));
    let again = http
        .get(format!("{}/static/console.js", app.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let (status, body) = common::read(
        http.get(format!("{}/static/nope.js", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not-found");
    // Nothing outside the compiled-in list is reachable.
    let status = http
        .get(format!("{}/static/..%2FCargo.toml", app.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn task_context_shows_the_cart_to_the_lease_holder_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
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
    // Two settled breads, one event in review (ours), one more in review.
    let (s, b) = app
        .events(
            &key,
            json!([
                event("e1", "s1", "pick", 2, SURE),
                event("e2", "s1", "pick", 1, UNSURE),
                event("e3", "s1", "pick", 1, UNSURE),
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ana = app.user("ana", Role::Labeler).await;
    let ben = app.user("ben", Role::Labeler).await;
    let sup = app.user("sue", Role::Supervisor).await;
    let (_, claim) = app.claim(&ana).await;
    let task_id = claim["task"]["task_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tasks/{task_id}/context");

    let (status, ctx) = app.call(Method::GET, &path, &ana, None).await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(
        ctx,
        json!({
            "task_id": task_id,
            "session_id": "s1",
            "cart": [{"sku": "bread", "name": "Bread", "quantity": 2, "unit_price_cents": 399, "total_cents": 798}],
            "cart_total_cents": 798,
            "other_events_in_review": 1,
            "exited": false,
        })
    );
    let (status, body) = app.call(Method::GET, &path, &ben, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "lease-not-held");
    let (status, body) = app.call(Method::GET, &path, &sup, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "user-token-required");
    let (status, body) = app
        .call(Method::GET, "/api/v1/tasks/nope/context", &ana, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "unknown-task");

    // After the lease runs out, the former holder is told precisely.
    app.clock.advance(app.state.config.lease_ttl_ms + 1);
    let (status, body) = app.call(Method::GET, &path, &ana, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "lease-expired");

    // Once the task is resolved, its own event is no longer in review: the
    // other open one still is, and counts.
    let (_, claim) = app.claim(&ben).await;
    let ben_task = claim["task"]["task_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .verdict(&ben, &ben_task, json!({"action": "pick", "sku": "milk"}))
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("resolved"))
    );
    let (status, ctx) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{ben_task}/context"),
            &sup,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(ctx["other_events_in_review"], 1, "{ctx}");
}

async fn catalog_search_finds_products_by_words_of_name_or_sku(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    app.products(
        &key,
        json!([
            {"sku": "milk-oat", "name": "Oat milk 1 l", "price_cents": 219},
            {"sku": "pct", "name": "100% juice", "price_cents": 250},
        ]),
    )
    .await;
    // Another store's products never show.
    let (_, other) = app.store("Other", None).await;
    app.catalog(&other).await;
    let (s, b) = app.events(&key, event("e1", "s1", "pick", 1, UNSURE)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ana = app.user("ana", Role::Labeler).await;
    let (_, claim) = app.claim(&ana).await;
    let task_id = claim["task"]["task_id"].as_str().unwrap().to_string();
    let search = |q: &str| format!("/api/v1/tasks/{task_id}/products?q={q}");

    let skus = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = app.call(Method::GET, &search("MILK"), &ana, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A name starting with the word comes first.
    assert_eq!(skus(&body), vec!["milk", "milk-oat"]);
    assert_eq!(
        body[0],
        json!({"sku": "milk", "name": "Milk 1 l", "price_cents": 129})
    );
    let (_, body) = app
        .call(Method::GET, &search("oat%20milk"), &ana, None)
        .await;
    assert_eq!(skus(&body), vec!["milk-oat"]);
    let (_, body) = app.call(Method::GET, &search("tv"), &ana, None).await;
    assert_eq!(skus(&body), vec!["tv"]);
    // LIKE wildcards are matched literally.
    let (_, body) = app.call(Method::GET, &search("%25"), &ana, None).await;
    assert_eq!(skus(&body), vec!["pct"]);
    let (_, body) = app.call(Method::GET, &search("_"), &ana, None).await;
    assert_eq!(body, json!([]), "no product has an underscore");
    let (_, body) = app.call(Method::GET, &search("%20"), &ana, None).await;
    assert_eq!(body, json!([]));

    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{task_id}/products"),
            &ana,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid-query");
}

async fn held_leases_are_listed_for_a_reloaded_console(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    for i in 0..3 {
        let (s, b) = app
            .events(
                &key,
                event(&format!("e{i}"), &format!("s{i}"), "pick", 1, UNSURE),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let ana = app.user("ana", Role::Labeler).await;
    let ben = app.user("ben", Role::Labeler).await;
    let (_, first) = app.claim(&ana).await;
    app.clock.advance(10);
    let (_, second) = app.claim(&ana).await;
    let (_, _) = app.claim(&ben).await;

    let (status, held) = app
        .call(Method::GET, "/api/v1/tasks/leased", &ana, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held, json!([first, second]));

    let task_id = first["task"]["task_id"].as_str().unwrap();
    let (s, b) = app
        .verdict(
            &ana,
            task_id,
            json!({"action": "pick", "sku": "milk", "quantity": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, held) = app
        .call(Method::GET, "/api/v1/tasks/leased", &ana, None)
        .await;
    assert_eq!(held, json!([second]));
    app.clock.advance(app.state.config.lease_ttl_ms + 1);
    let (_, held) = app
        .call(Method::GET, "/api/v1/tasks/leased", &ana, None)
        .await;
    assert_eq!(held, json!([]), "expired leases are not offered");
}

/// The task card and the verdict's sku check keep catalog rows in memory
/// (db::catalog_cache); a catalog upload shows at once, on this instance and
/// on another one that read the old catalog.
async fn a_catalog_upload_shows_on_cards_and_verdicts_at_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    for (e, session) in [("e1", "s1"), ("e2", "s2")] {
        let (s, b) = app.events(&key, event(e, session, "pick", 1, UNSURE)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let ana = app.user("ana", Role::Labeler).await;
    let (_, claim) = app.claim(&ana).await;
    let task = claim["task"]["task_id"].as_str().unwrap().to_string();
    let milk = |card: &Value| card["candidates"][0].clone();
    assert_eq!(milk(&claim["task"])["price_cents"], 129, "{claim}");
    // The other instance reads the other task's card: the old catalog.
    let other = app.second_instance().await;
    let other_task: String = {
        let mut conn = other.db.reader().acquire().await.unwrap();
        sqlx::query_scalar("SELECT id FROM review_tasks WHERE id <> $1")
            .bind(&task)
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    };
    let other_card = || async {
        let mut conn = other.db.reader().acquire().await.unwrap();
        recount::db::tasks::card(&mut conn, &other.db.catalogs, &other_task)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(other_card().await.candidates[0].price_cents, 129);
    // A sku the catalog lacks is refused (and known as absent)…
    let kefir = json!({"action": "pick", "sku": "kefir", "quantity": 1});
    let (s, b) = app.verdict(&ana, &task, kefir.clone()).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-sku"),
        "{b}"
    );

    app.products(
        &key,
        json!([
            {"sku": "milk", "name": "Whole milk 1 l", "price_cents": 139},
            {"sku": "kefir", "name": "Kefir 500 ml", "price_cents": 189},
        ]),
    )
    .await;
    // …until the upload adds it.
    let (s, b) = app.verdict(&ana, &task, kefir).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let card = other_card().await;
    assert_eq!(
        (
            card.candidates[0].name.as_str(),
            card.candidates[0].price_cents
        ),
        ("Whole milk 1 l", 139)
    );
    let ben = app.user("ben", Role::Labeler).await;
    let (_, claim) = app.claim(&ben).await;
    assert_eq!(claim["task"]["task_id"], json!(other_task), "{claim}");
    assert_eq!(milk(&claim["task"])["name"], "Whole milk 1 l", "{claim}");
    assert_eq!(milk(&claim["task"])["price_cents"], 139, "{claim}");
}

dual!(
    login_sets_an_http_only_session_cookie_that_the_api_accepts,
    login_over_tls_proxy_marks_the_cookie_secure,
    login_without_the_form_token_is_refused_and_creates_no_session,
    failed_logins_are_throttled_per_username_for_page_and_api,
    cookie_requests_that_change_state_need_the_csrf_token,
    logout_ends_the_session,
    task_context_shows_the_cart_to_the_lease_holder_only,
    catalog_search_finds_products_by_words_of_name_or_sku,
    held_leases_are_listed_for_a_reloaded_console,
    a_catalog_upload_shows_on_cards_and_verdicts_at_once,
);
