//! Request extractors: who is calling, and JSON bodies whose rejections speak
//! the service's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::session;
use crate::auth::{Role, STORE_KEY_PREFIX, USER_TOKEN_PREFIX};
use crate::db::stores::Store;
use crate::db::users::User;
use crate::error::{Code, Error};
use crate::AppState;

/// Who is calling: a store system or a person.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A store system with its API key.
    Store(Store),
    /// A labeler, supervisor or admin with an API token.
    User(User),
}

fn unauthorized(message: &str) -> Error {
    Error::new(Code::Unauthorized, message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let secret = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            Some(header) => header
                .to_str()
                .map_err(|_| unauthorized("the Authorization header is not readable text"))?
                .strip_prefix("Bearer ")
                .ok_or_else(|| {
                    unauthorized("the Authorization header must be \"Bearer <key or token>\"")
                })?
                .trim()
                .to_string(),
            // The console: its session cookie holds a user token, and every
            // state-changing request must prove it comes from our page.
            None => match session::token(&parts.headers) {
                Some(token) => {
                    session::check_csrf(&parts.method, &parts.headers, &token)?;
                    token
                }
                None => {
                    return Err(unauthorized(
                        "sign in, or send an Authorization: Bearer header",
                    ))
                }
            },
        };
        if secret.starts_with(STORE_KEY_PREFIX) {
            if let Some(store) = state.db.store_keys.store(&state.db, &secret).await? {
                return Ok(Caller::Store(store));
            }
        } else if secret.starts_with(USER_TOKEN_PREFIX) {
            if let Some(user) = state.tokens.user(&state.db, &secret, state.now()).await? {
                return Ok(Caller::User(user));
            }
        }
        Err(unauthorized("the key or token is unknown or expired"))
    }
}

/// The client's address, when the server was started with connection info
/// (`recount serve` is; a test router served without it throttles logins
/// per username only): the TCP peer, or behind a trusted proxy the address
/// it saw (`trusted_proxies`, [`crate::domain::proxy`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientAddr(
            peer.map(|p| state.trusted_proxies.client(p, &forwarded)),
        ))
    }
}

/// A store system (API key).
#[derive(Debug, Clone)]
pub struct StoreCaller(pub Store);

impl FromRequestParts<AppState> for StoreCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Store(s) => Ok(StoreCaller(s)),
            Caller::User(_) => Err(Error::new(
                Code::StoreKeyRequired,
                "this endpoint is for store systems; use the store's API key",
            )),
        }
    }
}

/// Any signed-in person.
#[derive(Debug, Clone)]
pub struct UserCaller(pub User);

impl FromRequestParts<AppState> for UserCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(u) => Ok(UserCaller(u)),
            Caller::Store(_) => Err(Error::new(
                Code::UserTokenRequired,
                "this endpoint is for labelers and supervisors; a store key cannot use it",
            )),
        }
    }
}

/// A supervisor or admin.
#[derive(Debug, Clone)]
pub struct SupervisorCaller(pub User);

impl FromRequestParts<AppState> for SupervisorCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let UserCaller(user) = UserCaller::from_request_parts(parts, state).await?;
        if !user.role.is_supervisor() {
            return Err(role_forbidden("supervisor"));
        }
        Ok(SupervisorCaller(user))
    }
}

/// An admin.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub User);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let UserCaller(user) = UserCaller::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(role_forbidden("admin"));
        }
        Ok(AdminCaller(user))
    }
}

fn role_forbidden(needed: &str) -> Error {
    Error::new(
        Code::RoleForbidden,
        format!("this endpoint needs the {needed} role"),
    )
}

/// A JSON body; malformed or mistyped bodies become precise error answers.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// A JSON body that must be an object: a struct whose fields are all
/// optional would otherwise also read from an array (`[]`, by position).
#[derive(Debug, Clone)]
pub struct JsonObject<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonObject<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(Error::new(
                Code::InvalidBody,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(JsonObject)
            .map_err(|e| Error::new(Code::InvalidBody, e.to_string()))
    }
}

/// Maps axum's JSON rejections to stable codes.
pub fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => Error::new(
            Code::MalformedJson,
            format!("the body is not valid JSON: {}", source_text(&e)),
        ),
        JsonRejection::JsonDataError(e) => Error::new(Code::InvalidBody, source_text(&e)),
        JsonRejection::MissingJsonContentType(_) => Error::new(
            Code::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::new(
                Code::BodyTooLarge,
                "the request body is larger than the server accepts",
            )
        }
        other if timed_out(&other) => Error::new(
            Code::RequestTimeout,
            "the body paused longer than the server waits",
        ),
        other => Error::new(Code::UnreadableBody, other.body_text()),
    }
}

/// Whether a body could not be read because it paused too long
/// (`body_idle_timeout_ms`).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The serde message (with the field path) without axum's generic prefix.
fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map_or_else(|| e.to_string(), |s| s.to_string())
}

/// A path parameter; unreadable segments get a JSON error like every other.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r| Error::new(Code::InvalidPath, r.body_text()))
    }
}

/// Query parameters; malformed ones get a JSON error like every other.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r| Error::new(Code::InvalidQuery, r.body_text()))
    }
}
