//! The console's session cookie and its CSRF token.
//!
//! A console session is an API token (the same kind `POST /api/v1/auth/token`
//! issues) kept in an `HttpOnly` cookie, so the page's scripts never see it
//! and `<video>` elements can fetch clips with it. Requests that change state
//! and authenticate by the cookie must carry the session's CSRF token in the
//! `X-CSRF-Token` header (scripts) or a `csrf` form field (forms): a page of
//! another site can make the browser send the cookie, but cannot read the
//! token out of our page. The token is derived from the session token, so it
//! needs no storage and dies with the session.

use axum::http::{HeaderMap, Method};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};

use crate::error::{Code, Error};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "recount_session";
/// Name of the cookie that carries the login form's CSRF token.
pub const LOGIN_CSRF_COOKIE: &str = "recount_login_csrf";
/// Header that carries the CSRF token of script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session token in the request's cookies.
pub fn token(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|t| !t.is_empty())
}

/// The CSRF token of a session.
pub fn csrf_token(session_token: &str) -> String {
    // Domain-separated from the digest stored for the token at rest, so the
    // database never holds a value that passes the check.
    let digest = Sha256::digest(format!("recount-csrf\0{session_token}").as_bytes());
    hex::encode(&digest[..20])
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses a cookie-authenticated request that changes state without the
/// session's CSRF token in [`CSRF_HEADER`].
pub fn check_csrf(method: &Method, headers: &HeaderMap, session_token: &str) -> Result<(), Error> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if same_secret(sent, &csrf_token(session_token)) {
        Ok(())
    } else {
        Err(csrf_failed())
    }
}

/// The refusal of a state change without the session's CSRF token.
pub fn csrf_failed() -> Error {
    Error::new(
        Code::CsrfFailed,
        "this request did not come from a Recount page; reload the page and try again",
    )
}

/// Whether cookies must be `Secure`: configured, or the request reached a
/// TLS-terminating proxy.
pub fn secure(configured: bool, headers: &HeaderMap) -> bool {
    configured
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A cookie only our server reads: `HttpOnly`, `SameSite=Lax` (sent when a
/// labeler follows a link to the console, never with another site's POST).
pub fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_s: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age_s))
        .build()
}

/// A cookie that makes the browser forget `name`.
pub fn expired(name: &'static str, path: &'static str) -> Cookie<'static> {
    Cookie::build((name, ""))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::ZERO)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_checked_on_state_changes_only() {
        let token = "rcu_example";
        let mut headers = HeaderMap::new();
        assert!(check_csrf(&Method::GET, &headers, token).is_ok());
        assert_eq!(
            check_csrf(&Method::POST, &headers, token)
                .unwrap_err()
                .code(),
            "csrf-failed"
        );
        headers.insert(CSRF_HEADER, "0000".parse().unwrap());
        assert!(check_csrf(&Method::POST, &headers, token).is_err());
        headers.insert(CSRF_HEADER, csrf_token(token).parse().unwrap());
        assert!(check_csrf(&Method::POST, &headers, token).is_ok());
        assert!(check_csrf(&Method::POST, &headers, "rcu_other").is_err());
    }

    #[test]
    fn csrf_token_differs_from_the_stored_digest() {
        let token = "rcu_example";
        assert_ne!(csrf_token(token), crate::auth::digest(token));
        assert_eq!(csrf_token(token).len(), 40);
    }
}
