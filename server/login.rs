//! Checking a username and password, for the console's login form and for
//! `POST /api/v1/auth/token` alike: one throttle, one password check.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::auth::verify_password;
use crate::db::users::{self, User};
use crate::domain::ratelimit::{FailureWindows, Limit};
use crate::error::{Code, Error, Result};
use crate::AppState;

/// Failed logins of this instance, per username from one address, per
/// username from anywhere (a slower limit), and per client address; and
/// the password checks running now.
///
/// Kept in memory: with several instances behind a load balancer each
/// throttles on its own, so an attacker gets at most the limit times the
/// number of instances per window — still far too few to guess an argon2
/// password.
#[derive(Debug)]
pub struct LoginGuard {
    windows: Mutex<FailureWindows>,
    /// argon2 takes tens of milliseconds of a core and its memory per
    /// check: at most this many run at once, whatever arrives.
    checks: Semaphore,
}

impl Default for LoginGuard {
    fn default() -> LoginGuard {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginGuard {
            windows: Mutex::default(),
            checks: Semaphore::new(cores.max(2)),
        }
    }
}

/// How long an attempt waits for a password check to be free before it
/// is told to come back.
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// The throttle's key of a username: a digest, so a key is short whatever
/// was typed (a body-sized "username" costs the guard 37 bytes).
fn user_key(username: &str) -> String {
    let digest = Sha256::digest(username.trim().to_lowercase().as_bytes());
    format!("user:{}", hex::encode(&digest[..16]))
}

/// The user whose password this is, or `invalid-credentials` or
/// `too-many-attempts` (with the seconds to wait).
///
/// Three limits, each over `login_window_ms`: failures of this username
/// from this address (`login_max_failures`: a stranger elsewhere cannot
/// lock its owner out), of this username from anywhere
/// (`login_max_failures_per_user`, higher: guessing from many addresses)
/// and from this address (`login_max_failures_per_address`). An attempt
/// counts against all three before its password is checked.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &str,
    addr: Option<IpAddr>,
) -> Result<User> {
    let now = state.now();
    let c = &state.config;
    let limit = |max: usize| Limit {
        max_failures: max.max(1),
        window_ms: c.login_window_ms,
    };
    let user = user_key(username);
    let from = addr.map_or_else(|| "-".to_string(), |a| a.to_string());
    let pair = format!("pair:{from}:{user}");
    let by_addr = format!("addr:{from}");
    let mut keys = vec![
        (pair.as_str(), limit(c.login_max_failures)),
        (user.as_str(), limit(c.login_max_failures_per_user)),
    ];
    if addr.is_some() {
        keys.push((by_addr.as_str(), limit(c.login_max_failures_per_address)));
    }
    let let_in = state
        .logins
        .windows
        .lock()
        .expect("login guard")
        .attempt(&keys, now);
    if let Err(wait_ms) = let_in {
        tracing::warn!(addr = %from, wait_ms, "sign-in refused: too many failed attempts");
        return Err(too_many_attempts(wait_ms));
    }
    let checked = check(state, username, password, &from).await;
    let mut w = state.logins.windows.lock().expect("login guard");
    match checked {
        Ok(Some(user)) => {
            for (key, _) in &keys {
                w.take_back(key, now);
            }
            // Whoever knows the password here may forget its typos here.
            w.succeed(&pair);
            Ok(user)
        }
        Ok(None) => {
            drop(w);
            Err(Error::new(
                Code::InvalidCredentials,
                "unknown username or wrong password",
            ))
        }
        Err(e) => {
            // Not the caller's failure (busy, or the database).
            for (key, _) in &keys {
                w.take_back(key, now);
            }
            Err(e)
        }
    }
}

/// Checks the password, under the cap on checks at once: the user, `None`
/// for an unknown username or a wrong password (logged, without either
/// secret: a username is logged only when it names a user, so a password
/// typed into the username field never is).
async fn check(
    state: &AppState,
    username: &str,
    password: &str,
    from: &str,
) -> Result<Option<User>> {
    let Ok(Ok(_permit)) = tokio::time::timeout(CHECK_WAIT, state.logins.checks.acquire()).await
    else {
        return Err(Error::Throttled {
            code: Code::TooManyAttempts,
            message: "too many sign-ins at once; try again in 1 s".into(),
            retry_after_s: 1,
        });
    };
    let found = users::by_username(&state.db, username.trim()).await?;
    let Some(account) = found else {
        tracing::warn!(username = "(no such user)", addr = %from, "sign-in failed");
        return Ok(None);
    };
    // argon2 is deliberately slow: keep it off the async workers.
    let password = password.to_string();
    let hash = account.password_hash;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(anyhow::Error::from)?;
    let user = account.user;
    if !ok {
        tracing::warn!(username = %user.username, addr = %from, "sign-in failed: wrong password");
        return Ok(None);
    }
    if account.disabled {
        // Said only to whoever knows the password.
        tracing::warn!(username = %user.username, addr = %from, "sign-in refused: user disabled");
        return Err(Error::new(
            Code::UserDisabled,
            "this user is disabled; ask an admin to enable it",
        ));
    }
    Ok(Some(user))
}

fn too_many_attempts(wait_ms: i64) -> Error {
    let seconds = (wait_ms + 999) / 1000;
    Error::Throttled {
        code: Code::TooManyAttempts,
        message: format!("too many failed logins; try again in {seconds} s"),
        retry_after_s: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_key_is_short_whatever_was_typed() {
        let key = user_key(&"x".repeat(1_000_000));
        assert_eq!(key.len(), "user:".len() + 32);
        assert_eq!(user_key(" Ana "), user_key("ana"), "trimmed, any case");
        assert_ne!(user_key("ana"), user_key("ben"));
    }
}
