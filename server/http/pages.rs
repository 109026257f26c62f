//! Pages as HTTP: the headers every page carries, rendering a template, and
//! who may see a page.
//!
//! A page handler names who it is for by its extractor: [`PageUser`] (anyone
//! signed in) or [`SupervisorPage`]. Nobody signed in is sent to the login
//! page and brought back afterwards; a labeler on a supervisor page gets the
//! 403 page. A handler that answers otherwise (the dashboard's live body,
//! the home redirect) takes the extractor as a `Result` and decides itself.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::session;
use crate::auth::Role;
use crate::db::users::User;
use crate::error::Error;
use crate::AppState;

/// An HTML page with the headers every page carries: no inline scripts or
/// styles, no framing, no resources from elsewhere except product images
/// (stores host those).
pub fn page(html: String) -> Response {
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

/// A template rendered as a [`page`]; a template that fails to render is an
/// internal error.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page(html),
        Err(e) => Error::Internal(anyhow::anyhow!("rendering a page: {e}")).into_response(),
    }
}

/// The signed-in person of a page request, with their session token (the
/// page's CSRF token is derived from it).
#[derive(Debug, Clone)]
pub struct PageUser {
    /// Who is signed in.
    pub user: User,
    /// Their session token.
    pub token: String,
}

/// A signed-in supervisor or admin on a supervisor page.
#[derive(Debug, Clone)]
pub struct SupervisorPage {
    /// Who is signed in.
    pub user: User,
    /// Their session token.
    pub token: String,
}

/// Why a page is not shown.
#[derive(Debug)]
pub enum PageRefusal {
    /// Nobody is signed in (or the session ended): sign in, then come back
    /// to `next`.
    SignIn {
        /// The page to return to, a path of this site.
        next: String,
    },
    /// A labeler on a supervisor page.
    NotSupervisor(User),
}

impl PageRefusal {
    /// The same refusal, but a sign-in returns to `next` instead of the
    /// requested path (a page that keeps some of its query).
    pub fn returning_to(self, next: String) -> PageRefusal {
        match self {
            PageRefusal::SignIn { .. } => PageRefusal::SignIn { next },
            other => other,
        }
    }
}

#[derive(Template)]
#[template(path = "forbidden.html")]
struct Forbidden<'a> {
    user: &'a User,
}

impl IntoResponse for PageRefusal {
    fn into_response(self) -> Response {
        match self {
            PageRefusal::SignIn { next } => {
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            PageRefusal::NotSupervisor(user) => {
                (StatusCode::FORBIDDEN, render(&Forbidden { user: &user })).into_response()
            }
        }
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = PageRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageRefusal> {
        let sign_in = || PageRefusal::SignIn {
            next: parts.uri.path().to_string(),
        };
        let token = session::token(&parts.headers).ok_or_else(sign_in)?;
        // A database that cannot say who this is shows the login page rather
        // than an error: signing in again is all a person can do about it.
        let user = state
            .tokens
            .user(&state.db, &token, state.now())
            .await
            .ok()
            .flatten()
            .ok_or_else(sign_in)?;
        Ok(PageUser { user, token })
    }
}

impl FromRequestParts<AppState> for SupervisorPage {
    type Rejection = PageRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageRefusal> {
        let PageUser { user, token } = PageUser::from_request_parts(parts, state).await?;
        if user.role == Role::Labeler {
            return Err(PageRefusal::NotSupervisor(user));
        }
        Ok(SupervisorPage { user, token })
    }
}
