//! The browser pages: login, logout, the labeling console and the
//! supervisor pages ([`supervisor`]).
//!
//! Pages are askama templates (`web/templates`) rendered on the server; the
//! console's behaviour is a few vanilla JavaScript modules (`web/static`)
//! that talk to the same JSON API as any other client, authenticated by the
//! session cookie ([`session`]). Static files are compiled into the binary
//! ([`assets`]): one file to deploy, nothing fetched from elsewhere. Charts
//! are SVG drawn on the server ([`charts`]), so they need no script either.

pub mod assets;
pub mod charts;
pub mod dashboard_view;
pub mod format;
pub mod session;
pub mod supervisor;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::api::extract::ConnectAddr;
use crate::auth::{generate_secret, Role};
use crate::db::users::{self, User};
use crate::error::Error;
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
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    match signed_in(&state, &headers).await {
        Some((user, _)) if user.role != Role::Labeler => Redirect::to("/dashboard"),
        _ => Redirect::to("/console"),
    }
}

/// Headers every page carries: no inline scripts or styles, no framing, no
/// resources from elsewhere except product images (stores host those).
fn page(html: String) -> Response {
    let mut response = Html(html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: https:; media-src 'self' blob:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page(html),
        Err(e) => Error::Internal(anyhow::anyhow!("rendering a page: {e}")).into_response(),
    }
}

/// The signed-in user of a page request and their session token.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<(User, String)> {
    let token = session::token(headers)?;
    let user = state
        .tokens
        .user(&state.db, &token, state.now())
        .await
        .ok()??;
    Some((user, token))
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

/// Only our own pages are valid destinations after login (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if signed_in(&state, &headers).await.is_some() {
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
    let jar = CookieJar::new().add(session::cookie(
        session::LOGIN_CSRF_COOKIE,
        csrf.clone(),
        "/login",
        3600,
        session::secure(state.config.secure_cookies, headers),
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
    ConnectAddr(addr): ConnectAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    let expected = jar
        .get(session::LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() || !session::same_secret(&form.csrf, &expected) {
        let message = "The login form expired. Please sign in again.".to_string();
        return login_form(
            &state,
            &headers,
            &form.username,
            Some(message),
            &next,
            StatusCode::FORBIDDEN,
        );
    }
    let user = match login::authenticate(&state, &form.username, &form.password, addr).await {
        Ok(user) => user,
        Err(e) => {
            let (status, message) = match &e {
                Error::Throttled { message, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, capitalize(message))
                }
                Error::Client { status, .. } => {
                    (*status, "Unknown username or wrong password.".to_string())
                }
                _ => return e.into_response(),
            };
            return login_form(
                &state,
                &headers,
                &form.username,
                Some(message),
                &next,
                status,
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
            session::SESSION_COOKIE,
            token,
            "/",
            ttl / 1000,
            secure,
        ))
        .add(session::expired(session::LOGIN_CSRF_COOKIE, "/login"));
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
    let jar = CookieJar::new().add(session::expired(session::SESSION_COOKIE, "/"));
    (jar, Redirect::to("/login")).into_response()
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    user: &'a User,
    csrf: String,
    lease_ttl_ms: i64,
    is_supervisor: bool,
}

async fn console_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((user, token)) = signed_in(&state, &headers).await else {
        return Redirect::to("/login?next=/console").into_response();
    };
    render(&ConsolePage {
        user: &user,
        csrf: session::csrf_token(&token),
        lease_ttl_ms: state.config.lease_ttl_ms,
        is_supervisor: user.role != Role::Labeler,
    })
}
