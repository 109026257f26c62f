//! Gold tasks, as supervisors manage them: mark a resolved task as gold
//! (its event's final label becomes the known answer) and retire one.
//!
//! A gold copy, an unresolved task and a task already gold are refused
//! here with their codes. Serving copies at claim and scoring them at
//! verdict happen inside the queue's own transactions
//! (`db::gold::pick`, `make_copy`, `record_answer`).

use crate::db::gold::{self, GoldRow};
use crate::db::users::User;
use crate::db::Db;
use crate::domain::lifecycle::{EventStatus, TaskStatus};
use crate::error::{Code, Error, Result};
use crate::review::locks::unknown_task;

fn unknown_gold(gold_id: &str) -> Error {
    Error::new(Code::UnknownGold, format!("no gold task {gold_id:?}"))
}

/// Marks a resolved task as gold: its event's final label becomes the known
/// answer. A gold copy, an unresolved task and a task already marked are
/// refused.
pub async fn mark(db: &Db, supervisor: &User, task_id: &str, now: i64) -> Result<GoldRow> {
    let mut tx = db.begin().await?;
    let source = gold::source_task(&mut tx, task_id)
        .await?
        .filter(|s| supervisor.scope.sees(&s.store_id))
        .ok_or_else(|| unknown_task(task_id))?;
    if source.gold_id.is_some() {
        return Err(Error::new(
            Code::TaskIsGold,
            format!("task {task_id:?} is a copy of a gold task; mark its source instead"),
        ));
    }
    let status = source.status;
    if status != TaskStatus::Resolved || source.event_status != EventStatus::Resolved {
        return Err(Error::new(
            Code::TaskNotResolved,
            format!("task {task_id:?} is {status}; only a resolved task has a known label"),
        ));
    }
    let Some(gold_id) = gold::insert(&mut tx, task_id, &source, &supervisor.id, now).await? else {
        let existing = gold::of_source(&mut tx, task_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the gold task of {task_id} vanished"))?;
        return Err(Error::new(
            Code::AlreadyGold,
            format!("task {task_id:?} is already gold task {existing:?} (retired ones included)"),
        ));
    };
    let gold = gold::get(&mut tx, &gold_id)
        .await?
        .ok_or_else(|| unknown_gold(&gold_id))?;
    tx.commit().await?;
    Ok(gold)
}

/// Retires a gold task of a store `supervisor` covers: it is served no
/// more; its answers still count. Retiring a retired task changes nothing.
pub async fn retire(db: &Db, supervisor: &User, gold_id: &str, now: i64) -> Result<GoldRow> {
    let mut tx = db.begin().await?;
    gold::get(&mut tx, gold_id)
        .await?
        .filter(|g| supervisor.scope.sees(&g.store_id))
        .ok_or_else(|| unknown_gold(gold_id))?;
    gold::retire(&mut tx, gold_id, now).await?;
    let gold = gold::get(&mut tx, gold_id)
        .await?
        .ok_or_else(|| unknown_gold(gold_id))?;
    tx.commit().await?;
    Ok(gold)
}
