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

/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "recount_session";
/// Name of the session cookie over HTTPS: the `__Host-` prefix makes the
/// browser refuse it unless it is `Secure`, for `/` and for this host
/// only, so neither a sibling subdomain nor a plain-HTTP page can plant
/// or shadow it.
pub const HOST_SESSION_COOKIE: &str = "__Host-recount_session";
/// Name of the cookie that carries the login form's CSRF token over plain
/// HTTP.
pub const LOGIN_CSRF_COOKIE: &str = "recount_login_csrf";
/// The same over HTTPS (`__Secure-`: its path is `/login`, which `__Host-`
/// does not allow).
pub const SECURE_LOGIN_CSRF_COOKIE: &str = "__Secure-recount_login_csrf";

/// The session cookie's name for a response `secure` or not.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The login CSRF cookie's name for a response `secure` or not.
pub fn login_csrf_cookie(secure: bool) -> &'static str {
    if secure {
        SECURE_LOGIN_CSRF_COOKIE
    } else {
        LOGIN_CSRF_COOKIE
    }
}

/// The value of the first of `names` the request carries, not empty.
fn first_cookie(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    let jar = CookieJar::from_headers(headers);
    names
        .iter()
        .find_map(|n| jar.get(n).map(|c| c.value().to_string()))
        .filter(|v| !v.is_empty())
}

/// The login form's CSRF token in the request's cookies.
pub fn login_csrf(headers: &HeaderMap) -> Option<String> {
    first_cookie(headers, &[SECURE_LOGIN_CSRF_COOKIE, LOGIN_CSRF_COOKIE])
}
/// Header that carries the CSRF token of script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session token in the request's cookies.
pub fn token(headers: &HeaderMap) -> Option<String> {
    first_cookie(headers, &[HOST_SESSION_COOKIE, SESSION_COOKIE])
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

/// Whether cookies must be `Secure`: configured, or the request came over
/// TLS to a terminating proxy (`X-Forwarded-Proto: https`; a client that
/// sends it over plain HTTP only gets a cookie its browser will not send
/// back there).
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
        // A prefixed cookie is only accepted, even to delete it, `Secure`.
        .secure(name.starts_with("__"))
        .max_age(time::Duration::ZERO)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_over_https_carry_the_host_prefix_and_both_names_are_read() {
        assert_eq!(session_cookie(true), "__Host-recount_session");
        assert_eq!(session_cookie(false), "recount_session");
        let c = cookie(session_cookie(true), "t".into(), "/", 60, true);
        assert_eq!((c.secure(), c.path()), (Some(true), Some("/")));
        assert_eq!(c.domain(), None, "__Host- cookies name no domain");
        for name in [HOST_SESSION_COOKIE, SESSION_COOKIE] {
            let mut h = HeaderMap::new();
            h.insert("cookie", format!("other=1; {name}=abc").parse().unwrap());
            assert_eq!(token(&h).as_deref(), Some("abc"), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("cookie", "__Secure-recount_login_csrf=x".parse().unwrap());
        assert_eq!(login_csrf(&h).as_deref(), Some("x"));
        assert!(secure(false, &{
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-proto", "https".parse().unwrap());
            h
        }));
    }

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
