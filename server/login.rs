//! Checking a username and password, for the console's login form and for
//! `POST /api/v1/auth/token` alike: one throttle, one password check.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::auth::verify_password;
use crate::db::users::{self, User};
use crate::domain::ratelimit::{FailureWindows, Limit};
use crate::error::{Code, Error, Result};
use crate::AppState;

/// Failed logins of this instance, per username and per client address.
///
/// Kept in memory: with several instances behind a load balancer each
/// throttles on its own, so an attacker gets at most the limit times the
/// number of instances per window — still far too few to guess an argon2
/// password.
#[derive(Debug, Default)]
pub struct LoginGuard {
    windows: Mutex<FailureWindows>,
}

impl LoginGuard {
    fn keys(username: &str, addr: Option<IpAddr>) -> (String, Option<String>) {
        (
            format!("user:{}", username.trim().to_lowercase()),
            addr.map(|a| format!("addr:{a}")),
        )
    }
}

/// The user whose password this is, or `invalid-credentials` or
/// `too-many-attempts` (with the seconds to wait).
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &str,
    addr: Option<IpAddr>,
) -> Result<User> {
    let now = state.now();
    let per_user = Limit {
        max_failures: state.config.login_max_failures.max(1),
        window_ms: state.config.login_window_ms,
    };
    let per_addr = Limit {
        max_failures: state.config.login_max_failures_per_address.max(1),
        window_ms: state.config.login_window_ms,
    };
    let (user_key, addr_key) = LoginGuard::keys(username, addr);
    {
        let mut w = state.logins.windows.lock().expect("login guard");
        let wait = w.blocked(&user_key, per_user, now).into_iter().chain(
            addr_key
                .as_deref()
                .and_then(|k| w.blocked(k, per_addr, now)),
        );
        if let Some(wait_ms) = wait.max() {
            return Err(too_many_attempts(wait_ms));
        }
    }
    let found = users::by_username(&state.db, username.trim()).await?;
    let ok = match found {
        Some((user, hash)) => {
            // argon2 is deliberately slow: keep it off the async workers.
            let password = password.to_string();
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(anyhow::Error::from)?;
            ok.then_some(user)
        }
        None => None,
    };
    let mut w = state.logins.windows.lock().expect("login guard");
    match ok {
        Some(user) => {
            w.succeed(&user_key);
            Ok(user)
        }
        None => {
            w.fail(&user_key, per_user, now);
            if let Some(k) = &addr_key {
                w.fail(k, per_addr, now);
            }
            Err(Error::new(
                Code::InvalidCredentials,
                "unknown username or wrong password",
            ))
        }
    }
}

fn too_many_attempts(wait_ms: i64) -> Error {
    let seconds = (wait_ms + 999) / 1000;
    Error::Throttled {
        code: Code::TooManyAttempts,
        message: format!("too many failed logins; try again in {seconds} s"),
        retry_after_s: seconds,
    }
}
