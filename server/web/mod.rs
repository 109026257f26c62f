//! The browser pages: login, logout, the labeling console and the
//! supervisor pages ([`supervisor`]).
//!
//! Pages are askama templates (`web/templates`) rendered on the server; the
//! console's behaviour is a few vanilla JavaScript modules (`web/static`)
//! that talk to the same JSON API as any other client, authenticated by the
//! session cookie ([`crate::http::session`]). Who may see a page is decided
//! by its extractor ([`crate::http::pages`]). Static files are compiled into the binary
//! ([`assets`]): one file to deploy, nothing fetched from elsewhere. Charts
//! are SVG drawn on the server ([`charts`]), so they need no script either.

pub mod assets;
pub mod audit_view;
pub mod charts;
pub mod dashboard_view;
pub mod format;
pub mod people_view;
pub mod simulation_view;
pub mod supervisor;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::auth::{generate_secret, Role};
use crate::db::users::{self, User};
use crate::error::{Code, Error};
use crate::http;
use crate::http::extract::ClientAddr;
use crate::http::pages::{render, PageRefusal, PageUser};
use crate::http::session;
use crate::login;
use crate::AppState;

/// Routes of the pages and their static files.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/console", get(console_page))
        .route("/static/{file}", get(assets::serve))
        .merge(supervisor::router())
        // Browsers ask for this on their own; answer with our icon.
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/static/favicon.svg") }),
        )
}

/// Supervisors land on their dashboard, labelers (and visitors, through the
/// login page) on the console.
async fn home(signed_in: Result<PageUser, PageRefusal>) -> Redirect {
    match signed_in {
        Ok(PageUser { user, .. }) if user.role != Role::Labeler => Redirect::to("/dashboard"),
        _ => Redirect::to("/console"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
    next: &'a str,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only our own pages are valid destinations after login (no open
/// redirect): a path of printable ASCII, not `//host` nor `/\\host`.
/// Browsers drop tabs and line breaks from a URL before reading it, so
/// `/<TAB>/evil.example` would become `//evil.example`: whitespace and
/// control characters make the whole target void.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\') =>
        {
            n
        }
        _ => "/console",
    }
}

async fn login_page(
    State(state): State<AppState>,
    signed_in: Result<PageUser, PageRefusal>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if signed_in.is_ok() {
        return Redirect::to(next).into_response();
    }
    login_form(&state, &headers, "", None, next, StatusCode::OK)
}

/// The login form with a fresh login CSRF token in its cookie and field.
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    username: &str,
    error: Option<String>,
    next: &str,
    status: StatusCode,
) -> Response {
    let csrf = generate_secret("");
    let secure = session::secure(state.config.secure_cookies, headers);
    let jar = CookieJar::new().add(session::cookie(
        session::login_csrf_cookie(secure),
        csrf.clone(),
        "/login",
        3600,
        secure,
    ));
    let page = render(&LoginPage {
        csrf: &csrf,
        username,
        error,
        next,
    });
    (status, jar, page).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    let expected = session::login_csrf(&headers).unwrap_or_default();
    if expected.is_empty() || !session::same_secret(&form.csrf, &expected) {
        let message = "The login form expired. Please sign in again.".to_string();
        return login_form(
            &state,
            &headers,
            &form.username,
            Some(message),
            &next,
            http::error::status(Code::CsrfFailed),
        );
    }
    let user = match login::authenticate(&state, &form.username, &form.password, addr).await {
        Ok(user) => user,
        Err(e) => {
            let message = match &e {
                Error::Throttled { message, .. } => capitalize(message),
                Error::Client {
                    code: Code::InvalidCredentials,
                    ..
                } => "Unknown username or wrong password.".to_string(),
                Error::Client { message, .. } => capitalize(message),
                _ => return e.into_response(),
            };
            return login_form(
                &state,
                &headers,
                &form.username,
                Some(message),
                &next,
                http::error::status(e.code()),
            );
        }
    };
    let now = state.now();
    let ttl = state.config.token_ttl_ms;
    let token = match users::issue_token(&state.db, &user.id, now, ttl).await {
        Ok(t) => t,
        Err(e) => return Error::from(e).into_response(),
    };
    let secure = session::secure(state.config.secure_cookies, &headers);
    let jar = CookieJar::new()
        .add(session::cookie(
            session::session_cookie(secure),
            token,
            "/",
            ttl / 1000,
            secure,
        ))
        .add(session::expired(
            session::login_csrf_cookie(secure),
            "/login",
        ));
    (jar, Redirect::to(&next)).into_response()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some(token) = session::token(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if !session::same_secret(&form.csrf, &session::csrf_token(&token)) {
        return session::csrf_failed().into_response();
    }
    if let Err(e) = users::revoke_token(&state.db, &state.tokens, &token).await {
        return Error::from(e).into_response();
    }
    let jar = CookieJar::new()
        .add(session::expired(session::SESSION_COOKIE, "/"))
        .add(session::expired(session::HOST_SESSION_COOKIE, "/"));
    (jar, Redirect::to("/login")).into_response()
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    user: &'a User,
    csrf: String,
    lease_ttl_ms: i64,
    idle_release_ms: i64,
    is_supervisor: bool,
}

async fn console_page(State(state): State<AppState>, signed_in: PageUser) -> Response {
    let PageUser { user, token } = signed_in;
    render(&ConsolePage {
        user: &user,
        csrf: session::csrf_token(&token),
        lease_ttl_ms: state.config.lease_ttl_ms,
        idle_release_ms: state.config.console_idle_release_ms,
        is_supervisor: user.role != Role::Labeler,
    })
}
