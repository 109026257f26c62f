//! The lock order, written once: a session before its task.
//!
//! Exit and ingest lock a session row and then touch its tasks; a verdict
//! or resolution that locked its task first and the session last deadlocked
//! with a concurrent exit of the same session on PostgreSQL. So every use
//! case that changes a task and may change its session locks the session
//! first, here.

use std::collections::HashMap;

use crate::db::events::{self, SessionLock};
use crate::db::tasks::{self, TaskRow};
use crate::db::Tx;
use crate::error::{Code, Error, Result};

/// The error for a task id no row has.
pub fn unknown_task(task_id: &str) -> Error {
    Error::new(Code::UnknownTask, format!("no task {task_id:?}"))
}

/// Creates the session if needed and locks it for the rest of the
/// transaction; its state.
pub async fn session(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
    now: i64,
) -> Result<SessionLock> {
    Ok(events::lock_session(tx, store_id, session_id, now).await?)
}

/// [`session`] for several sessions at once, locked in session id order;
/// their states by session id.
pub async fn sessions(
    tx: &mut Tx,
    store_id: &str,
    session_ids: &[&str],
    now: i64,
) -> Result<HashMap<String, SessionLock>> {
    Ok(events::lock_sessions(tx, store_id, session_ids, now).await?)
}

/// Locks a session that must exist already (`unknown-session` otherwise):
/// for requests about a receipt, which must not create a session.
pub async fn existing_session(
    tx: &mut Tx,
    store_id: &str,
    session_id: &str,
) -> Result<SessionLock> {
    events::lock_existing_session(tx, store_id, session_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                Code::UnknownSession,
                format!("no session {session_id:?} in this store"),
            )
        })
}

/// Locks a task alone: for changes that never reach its session
/// (heartbeat, release).
pub async fn task(tx: &mut Tx, task_id: &str) -> Result<TaskRow> {
    tasks::lock(tx, task_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))
}

/// Locks the task's session, then the task. A gold copy never changes its
/// session, so only the task is locked.
pub async fn session_then_task(tx: &mut Tx, task_id: &str, now: i64) -> Result<TaskRow> {
    if !tx.backend().locks_rows() {
        // SQLite's writer is alone: there is no lock to take, in any order.
        return task(tx, task_id).await;
    }
    // A task's session exists (ingest made it with the task): one statement
    // locks it and the task. Only when it does not (an unknown task, a gold
    // copy, a session somehow missing) is the task's key read to tell why.
    if let Some(task) = tasks::lock_with_session(tx, task_id).await? {
        return Ok(task);
    }
    let key = tasks::key(tx, task_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    if !key.gold {
        session(tx, &key.store_id, &key.session_id, now).await?;
    }
    task(tx, task_id).await
}
