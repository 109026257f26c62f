//! The review queue: claim with a lease, heartbeat, release, verdicts,
//! consensus, escalation and supervisor resolution.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::{clips, flag, gold, new_id, products, receipts, stores, Db, Tx};
use crate::db::users::User;
use crate::domain::consensus::Answer;
use crate::domain::event::{CandidateInput, MAX_QUANTITY};
use crate::domain::lifecycle::{
    self, AfterVerdict, EventStatus, Lease, LeaseEnd, PastLease, Refused, Task, TaskStatus,
};
use crate::domain::receipt::ReceiptLine;
use crate::domain::time::format_rfc3339_ms;
use crate::domain::{Action, Label};
use crate::error::{Code, Error, Result};

/// Longest note a labeler may attach.
pub const MAX_NOTE_LEN: usize = 2000;

/// A task row.
#[derive(Debug, Clone)]
struct TaskRow {
    id: String,
    event_pk: String,
    store_id: String,
    session_id: String,
    required_verdicts: i64,
    status: TaskStatus,
    leased_by: Option<String>,
    lease_id: Option<String>,
    lease_expires_at: Option<i64>,
    /// Set on a gold copy: the gold task it copies.
    gold_id: Option<String>,
}

impl TaskRow {
    /// The task as the lifecycle rules see it.
    fn state(&self) -> Task {
        Task {
            status: self.status,
            lease: self.leased_by.as_ref().zip(self.lease_expires_at).map(
                |(holder, expires_at)| Lease {
                    holder: holder.clone(),
                    expires_at,
                },
            ),
            gold: self.gold_id.is_some(),
            required_verdicts: self.required_verdicts,
        }
    }
}

const TASK_COLUMNS: &str = "id, event_pk, store_id, session_id, required_verdicts, status, \
     leased_by, lease_id, lease_expires_at, gold_id";

fn task_from_row(r: &sqlx::any::AnyRow) -> Result<TaskRow, sqlx::Error> {
    Ok(TaskRow {
        id: r.try_get("id")?,
        event_pk: r.try_get("event_pk")?,
        store_id: r.try_get("store_id")?,
        session_id: r.try_get("session_id")?,
        required_verdicts: r.try_get("required_verdicts")?,
        status: super::task_status(&r.try_get::<String, _>("status")?)?,
        leased_by: r.try_get("leased_by")?,
        lease_id: r.try_get("lease_id")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        gold_id: r.try_get("gold_id")?,
    })
}

/// What a user may claim: a ready task they never held. Shared by the claim
/// and by the check that real work is waiting before gold is served.
fn claimable() -> String {
    format!(
        "t.status = '{}' \
         AND NOT EXISTS (SELECT 1 FROM task_leases l WHERE l.task_id = t.id AND l.labeler_id = $1)",
        TaskStatus::Ready
    )
}

/// A candidate as a labeler sees it: the model's guess with catalog details.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CandidateView {
    /// Product sku.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Product image.
    pub image_url: Option<String>,
    /// The model's confidence.
    pub confidence: f64,
}

/// A review task as a labeler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub task_id: String,
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// The store's event id.
    pub event_id: String,
    /// What the model believes happened: `pick` or `return`.
    pub kind: String,
    /// Units the model believes moved.
    pub quantity: i64,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// Why the event needs a human.
    pub reason: String,
    /// Agreeing verdicts needed.
    pub required_verdicts: i64,
    /// Receipt deadline (RFC 3339).
    pub deadline_at: String,
    /// The model that made the guess.
    pub model_version: Option<String>,
    /// The model's guesses, best first.
    pub candidates: Vec<CandidateView>,
    /// Video of the event, one clip per camera.
    pub clips: Vec<crate::api::media::TaskClip>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Claim {
    /// The task.
    pub task: TaskView,
    /// When the lease ends unless renewed by a heartbeat (RFC 3339).
    pub lease_expires_at: String,
}

/// A labeler's answer to `POST /api/v1/tasks/{id}/verdict`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    /// What the shopper did; not needed with `cant_tell`.
    #[serde(default)]
    pub action: Option<Action>,
    /// The product; needed for pick and return.
    #[serde(default)]
    pub sku: Option<String>,
    /// Units; defaults to the event's quantity.
    #[serde(default)]
    pub quantity: Option<i64>,
    /// The video does not show what happened.
    #[serde(default)]
    pub cant_tell: bool,
    /// Free text for supervisors.
    #[serde(default)]
    pub note: Option<String>,
}

/// The state of a task after a verdict or resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerdictOutcome {
    /// Task id.
    pub task_id: String,
    /// `ready` (needs another labeler), `resolved` or `escalated`.
    pub status: String,
}

/// Takes the next ready task for `user`: earliest receipt deadline first, then
/// oldest; never a task the user held before (answered, released or let
/// expire), so a second opinion is always someone else's.
///
/// With `try_gold` (the caller's draw against `gold_rate`, see
/// [`crate::domain::gold::serves_gold`]) and real work waiting for the user,
/// a new copy of a gold task they have not seen is served instead, if there
/// is one: gold is a share of real work, never what an idle labeler polls.
pub async fn claim(
    db: &Db,
    user: &User,
    now: i64,
    ttl_ms: i64,
    max_leases: i64,
    try_gold: bool,
) -> Result<Option<Claim>> {
    let mut tx = db.begin().await?;
    // Serializes one user's concurrent claims so the lease limit holds.
    sqlx::query(&format!(
        "SELECT id FROM users WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(&user.id)
    .fetch_optional(&mut *tx)
    .await?;
    let held: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM review_tasks WHERE status = '{}' AND leased_by = $1 AND lease_expires_at > $2",
        TaskStatus::Leased
    ))
    .bind(&user.id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    lifecycle::may_claim(held, max_leases).map_err(|r| refused(r, ""))?;
    let lease_id = new_id();
    let expires = Lease::new(&user.id, now, ttl_ms).expires_at;
    let gold_copy = if try_gold && real_work_waiting(&mut tx, &user.id).await? {
        match gold::pick(&mut tx, &user.id).await? {
            Some(gold_id) => {
                let lease = gold::CopyLease {
                    user_id: &user.id,
                    lease_id: &lease_id,
                    expires,
                };
                gold::make_copy(&mut tx, &gold_id, &lease, now).await?
            }
            None => None,
        }
    } else {
        None
    };
    let task_id = match gold_copy {
        Some(copy_id) => copy_id,
        None => {
            // lifecycle::claim: a ready task becomes leased to the claimant.
            let sql = format!(
                "UPDATE review_tasks SET status = '{leased}', leased_by = $1, lease_id = $2, \
                 lease_expires_at = $3, updated_at = $4 \
                 WHERE status = '{ready}' AND id = (SELECT t.id FROM review_tasks t WHERE {claimable} \
                 ORDER BY t.deadline_at, t.created_at LIMIT 1{skip_locked}) RETURNING id",
                leased = TaskStatus::Leased,
                ready = TaskStatus::Ready,
                claimable = claimable(),
                skip_locked = tx.backend().skip_locked()
            );
            let id: Option<String> = sqlx::query_scalar(&sql)
                .bind(&user.id)
                .bind(&lease_id)
                .bind(expires)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(id) = id else {
                tx.commit().await?;
                return Ok(None);
            };
            id
        }
    };
    sqlx::query("INSERT INTO task_leases (id, task_id, labeler_id, claimed_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&lease_id)
        .bind(&task_id)
        .bind(&user.id)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut conn = db.reader().acquire().await?;
    let view = view(&mut conn, &task_id).await?;
    Ok(Some(Claim {
        task: view,
        lease_expires_at: format_rfc3339_ms(expires),
    }))
}

/// Whether a task `user_id` may claim is ready.
async fn real_work_waiting(tx: &mut Tx, user_id: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT t.id FROM review_tasks t WHERE {} LIMIT 1",
        claimable()
    ))
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// The labeler-facing view of a task.
pub async fn view(conn: &mut AnyConnection, task_id: &str) -> Result<TaskView> {
    // A gold copy shows its source's event id: its own `gold:…` id (unique
    // per store, as event ids must be) would give it away.
    let r = sqlx::query(
        "SELECT t.id, t.store_id, t.session_id, t.reason, t.required_verdicts, t.deadline_at, \
         COALESCE(se.event_id, e.event_id) AS event_id, e.kind, e.quantity, e.occurred_at, \
         e.candidates, e.model_version \
         FROM review_tasks t JOIN events e ON e.id = t.event_pk \
         LEFT JOIN gold_tasks g ON g.id = t.gold_id \
         LEFT JOIN review_tasks s ON s.id = g.source_task_id \
         LEFT JOIN events se ON se.id = s.event_pk WHERE t.id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| unknown_task(task_id))?;
    let store_id: String = r.try_get("store_id")?;
    let mut candidates: Vec<CandidateInput> =
        serde_json::from_str(&r.try_get::<String, _>("candidates")?)
            .map_err(anyhow::Error::from)?;
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let skus: Vec<&str> = candidates.iter().map(|c| c.sku.as_str()).collect();
    let catalog = products::find(conn, &store_id, &skus).await?;
    let task_id: String = r.try_get("id")?;
    let clips = clips::for_task(conn, &task_id).await?;
    let clips = clips.into_iter().map(Into::into).collect();
    Ok(TaskView {
        task_id,
        session_id: r.try_get("session_id")?,
        event_id: r.try_get("event_id")?,
        kind: r.try_get("kind")?,
        quantity: r.try_get("quantity")?,
        occurred_at: format_rfc3339_ms(r.try_get("occurred_at")?),
        reason: r.try_get("reason")?,
        required_verdicts: r.try_get("required_verdicts")?,
        deadline_at: format_rfc3339_ms(r.try_get("deadline_at")?),
        model_version: r.try_get("model_version")?,
        candidates: candidates
            .into_iter()
            .map(|c| {
                let p = catalog.get(&c.sku);
                CandidateView {
                    name: p.map(|p| p.name.clone()).unwrap_or_default(),
                    price_cents: p.map_or(0, |p| p.price_cents),
                    image_url: p.and_then(|p| p.image_url.clone()),
                    sku: c.sku,
                    confidence: c.confidence,
                }
            })
            .collect(),
        clips,
        store_id,
    })
}

fn unknown_task(task_id: &str) -> Error {
    Error::new(Code::UnknownTask, format!("no task {task_id:?}"))
}

async fn lock_task(tx: &mut Tx, task_id: &str) -> Result<TaskRow> {
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM review_tasks WHERE id = $1{}",
        tx.backend().for_update()
    ))
    .bind(task_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| unknown_task(task_id))?;
    Ok(task_from_row(&row)?)
}

/// Locks the task's session row, then the task row. Exit and ingest lock the
/// session first too; a verdict that locked the task first and the session
/// last deadlocked with a concurrent exit of the same session on PostgreSQL.
/// A gold copy never changes its session, so only the task is locked.
async fn lock_session_then_task(tx: &mut Tx, task_id: &str, now: i64) -> Result<TaskRow> {
    let key = sqlx::query("SELECT store_id, session_id, gold_id FROM review_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    if key.try_get::<Option<String>, _>("gold_id")?.is_none() {
        let store_id: String = key.try_get("store_id")?;
        let session_id: String = key.try_get("session_id")?;
        crate::db::events::lock_session(tx, &store_id, &session_id, now).await?;
    }
    lock_task(tx, task_id).await
}

/// The precise error for a user acting on a task without a live lease
/// (the choice is [`lifecycle::lease_refusal`]'s).
async fn lease_error(tx: &mut Tx, task: &TaskRow, user: &User, now: i64) -> Result<Error> {
    let latest = sqlx::query(
        "SELECT expires_at, ended_at, end_reason FROM task_leases WHERE task_id = $1 AND labeler_id = $2 \
         ORDER BY claimed_at DESC LIMIT 1",
    )
    .bind(&task.id)
    .bind(&user.id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| {
        Ok::<_, sqlx::Error>(PastLease {
            expires_at: r.try_get("expires_at")?,
            ended_at: r.try_get("ended_at")?,
            end: r
                .try_get::<Option<String>, _>("end_reason")?
                .as_deref()
                .and_then(LeaseEnd::parse),
        })
    })
    .transpose()?;
    Ok(refused(
        lifecycle::lease_refusal(latest.as_ref(), now),
        &task.id,
    ))
}

/// The error answer for a refused transition on task `task_id`.
fn refused(r: Refused, task_id: &str) -> Error {
    match r {
        Refused::TooManyLeases { held } => Error::new(
            Code::TooManyLeases,
            format!("you already hold {held} tasks; answer or release one first"),
        ),
        Refused::LeaseExpired => Error::new(
            Code::LeaseExpired,
            format!("your lease on task {task_id:?} expired; claim the next task"),
        ),
        Refused::LeaseNotHeld => Error::new(
            Code::LeaseNotHeld,
            format!("you do not hold the lease on task {task_id:?}"),
        ),
        Refused::VerdictConflict => Error::new(
            Code::VerdictConflict,
            format!("you already answered task {task_id:?} differently"),
        ),
        Refused::NotEscalated { status } => Error::new(
            Code::TaskNotEscalated,
            format!("task {task_id:?} is {status}, not escalated"),
        ),
        Refused::CantTellNotAllowed => Error::new(
            Code::CantTellNotAllowed,
            "a supervisor's resolution must give an action",
        ),
        Refused::AlreadyExited | Refused::SessionFinalized => {
            anyhow::anyhow!("task {task_id}: a session refusal where a task was expected").into()
        }
    }
}

/// Extends the user's lease by the lease TTL.
pub async fn heartbeat(
    db: &Db,
    user: &User,
    task_id: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<String> {
    let mut tx = db.begin().await?;
    let task = lock_task(&mut tx, task_id).await?;
    let Ok(lease) = lifecycle::heartbeat(&task.state(), &user.id, now, ttl_ms) else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    let expires = lease.expires_at;
    sqlx::query("UPDATE review_tasks SET lease_expires_at = $1, updated_at = $2 WHERE id = $3")
        .bind(expires)
        .bind(now)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE task_leases SET expires_at = $1 WHERE id = $2")
        .bind(expires)
        .bind(&task.lease_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(format_rfc3339_ms(expires))
}

/// Gives the task back to the queue.
pub async fn release(db: &Db, user: &User, task_id: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let task = lock_task(&mut tx, task_id).await?;
    let Ok(after) = lifecycle::release(&task.state(), &user.id, now) else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    end_lease(&mut tx, &task, now, LeaseEnd::Released).await?;
    match after {
        TaskStatus::GoldDropped => gold::drop_copy(&mut tx, &task.id, now).await?,
        _ => set_ready(&mut tx, &task.id, now).await?,
    }
    tx.commit().await?;
    Ok(())
}

async fn end_lease(
    tx: &mut Tx,
    task: &TaskRow,
    now: i64,
    end: LeaseEnd,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE task_leases SET ended_at = $1, end_reason = $2 WHERE id = $3")
        .bind(now)
        .bind(end.as_str())
        .bind(&task.lease_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn set_ready(tx: &mut Tx, task_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $1 WHERE id = $2",
        TaskStatus::Ready
    ))
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Returns every task whose lease ran out to the queue; the number returned.
/// Gold copies whose lease ran out end `gold-dropped` instead (not counted).
pub async fn expire_leases(db: &Db, now: i64) -> Result<u64> {
    // Heartbeats move both expiry times together, so the same cut-off ends
    // the same leases in both tables. Tasks first, then leases: the order in
    // which verdicts, heartbeats and releases lock them, so the sweep never
    // deadlocks with them on PostgreSQL. Gold copies first, so the bulk
    // update below finds only real tasks.
    let mut tx = db.begin().await?;
    gold::drop_expired(&mut tx, now).await?;
    // lifecycle::expire, for every lapsed lease at once.
    let returned = sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $1 WHERE status = '{}' AND lease_expires_at <= $1",
        TaskStatus::Ready,
        TaskStatus::Leased
    ))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE task_leases SET ended_at = $1, end_reason = '{}' \
         WHERE ended_at IS NULL AND expires_at <= $1",
        LeaseEnd::Expired
    ))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(returned.rows_affected())
}

/// Checks a verdict against the event and the catalog and turns it into an answer.
async fn answer_from_input(tx: &mut Tx, task: &TaskRow, input: &VerdictInput) -> Result<Answer> {
    if let Some(note) = &input.note {
        if note.chars().count() > MAX_NOTE_LEN {
            return Err(Error::new(
                Code::NoteTooLong,
                format!("note must be at most {MAX_NOTE_LEN} characters"),
            ));
        }
    }
    if input.cant_tell {
        return Ok(Answer::CantTell);
    }
    let Some(action) = input.action else {
        return Err(Error::new(
            Code::MissingAction,
            "action (pick, return or none) is required unless cant_tell is true",
        ));
    };
    if action == Action::None {
        return Ok(Answer::Label(Label::new(Action::None, None, 0)));
    }
    let Some(sku) = &input.sku else {
        return Err(Error::new(
            Code::MissingSku,
            "sku is required for pick and return",
        ));
    };
    let found = products::find(tx, &task.store_id, &[sku.as_str()]).await?;
    if found.is_empty() {
        return Err(Error::new(
            Code::UnknownSku,
            format!("sku {sku:?} is not in the store's catalog"),
        ));
    }
    let quantity = match input.quantity {
        Some(q) => q,
        None => {
            sqlx::query_scalar("SELECT quantity FROM events WHERE id = $1")
                .bind(&task.event_pk)
                .fetch_one(&mut **tx)
                .await?
        }
    };
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(Error::new(
            Code::InvalidQuantity,
            format!("quantity must be between 1 and {MAX_QUANTITY}, not {quantity}"),
        ));
    }
    Ok(Answer::Label(Label::new(
        action,
        Some(sku.clone()),
        quantity,
    )))
}

fn answer_columns(answer: &Answer) -> (Option<&'static str>, Option<String>, Option<i64>, bool) {
    match answer {
        Answer::CantTell => (None, None, None, true),
        Answer::Label(l) => (
            Some(l.action.as_str()),
            l.sku.clone(),
            Some(l.quantity),
            false,
        ),
    }
}

fn answer_from_row(r: &sqlx::any::AnyRow) -> Result<Answer, sqlx::Error> {
    if r.try_get::<i64, _>("cant_tell")? != 0 {
        return Ok(Answer::CantTell);
    }
    let action: Option<String> = r.try_get("action")?;
    let action = action
        .as_deref()
        .and_then(Action::parse)
        .ok_or_else(|| sqlx::Error::Decode("verdict without action".into()))?;
    Ok(Answer::Label(Label::new(
        action,
        r.try_get("sku")?,
        r.try_get::<Option<i64>, _>("quantity")?.unwrap_or(0),
    )))
}

/// Records a labeler's verdict and applies consensus. Sending the same verdict
/// again is accepted and answers with the task's current state; a different
/// one is refused.
pub async fn submit_verdict(
    db: &Db,
    user: &User,
    task_id: &str,
    input: &VerdictInput,
    now: i64,
) -> Result<VerdictOutcome> {
    let mut tx = db.begin().await?;
    let task = lock_session_then_task(&mut tx, task_id, now).await?;
    let answer = answer_from_input(&mut tx, &task, input).await?;

    let state = task.state();
    let previous = sqlx::query(
        "SELECT action, sku, quantity, cant_tell FROM verdicts WHERE task_id = $1 AND labeler_id = $2",
    )
    .bind(&task.id)
    .bind(&user.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(previous) = previous {
        let status = lifecycle::repeat_verdict(&state, &answer_from_row(&previous)?, &answer)
            .map_err(|r| refused(r, task_id))?;
        return Ok(VerdictOutcome {
            task_id: task.id,
            status: status.as_str().into(),
        });
    }

    // Consensus weighs every verdict so far with this one last; a gold copy
    // is scored on this one alone.
    let mut answers: Vec<Answer> = if state.gold {
        Vec::new()
    } else {
        sqlx::query(
            "SELECT action, sku, quantity, cant_tell FROM verdicts WHERE task_id = $1 ORDER BY created_at, id",
        )
        .bind(&task.id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(answer_from_row)
        .collect::<Result<_, _>>()?
    };
    answers.push(answer);
    let Ok(after) = lifecycle::verdict(&state, &user.id, now, &answers) else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    let answer = answers.last().expect("this verdict was just added");

    let claimed_at: i64 = sqlx::query_scalar("SELECT claimed_at FROM task_leases WHERE id = $1")
        .bind(&task.lease_id)
        .fetch_one(&mut *tx)
        .await?;
    let (action, sku, quantity, cant_tell) = answer_columns(answer);
    sqlx::query(
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, cant_tell, \
         note, created_at, handling_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_id())
    .bind(&task.id)
    .bind(&user.id)
    .bind(&task.lease_id)
    .bind(action)
    .bind(sku)
    .bind(quantity)
    .bind(flag(cant_tell))
    .bind(&input.note)
    .bind(now)
    .bind(now - claimed_at)
    .execute(&mut *tx)
    .await?;
    end_lease(&mut tx, &task, now, LeaseEnd::Verdict).await?;

    let verdict_count = answers.len() as i64;
    let mut finalized = receipts::Finalized::default();
    let mut gold_correct = None;
    match &after {
        AfterVerdict::GoldAnswered { .. } => {
            // Scored, never applied: no consensus, no event, no receipt.
            let gold_id = task
                .gold_id
                .as_deref()
                .expect("a gold copy has its gold task");
            gold_correct =
                Some(gold::record_answer(&mut tx, &task.id, gold_id, &user.id, answer, now).await?);
        }
        AfterVerdict::NeedMore => {
            set_ready(&mut tx, &task.id, now).await?;
            sqlx::query("UPDATE review_tasks SET verdict_count = $1 WHERE id = $2")
                .bind(verdict_count)
                .bind(&task.id)
                .execute(&mut *tx)
                .await?;
        }
        AfterVerdict::Escalate(reason) => {
            sqlx::query(&format!(
                "UPDATE review_tasks SET status = '{}', escalation_reason = $1, verdict_count = $2, \
                 leased_by = NULL, lease_id = NULL, lease_expires_at = NULL, updated_at = $3 WHERE id = $4",
                TaskStatus::Escalated
            ))
            .bind(reason.as_str())
            .bind(verdict_count)
            .bind(now)
            .bind(&task.id)
            .execute(&mut *tx)
            .await?;
        }
        AfterVerdict::Resolve(label) => {
            finalized = resolve(&mut tx, &task, label, "human", None, verdict_count, now).await?;
        }
    }
    tx.commit().await?;
    let status = after.reported().as_str();
    match gold_correct {
        Some(correct) => crate::metrics::gold_answered(correct),
        None => {
            finalized.record();
            crate::metrics::verdict_recorded(status);
        }
    }
    Ok(VerdictOutcome {
        task_id: task.id,
        status: status.into(),
    })
}

/// A supervisor's decision on an escalated task.
pub async fn resolve_escalation(
    db: &Db,
    supervisor: &User,
    task_id: &str,
    input: &VerdictInput,
    now: i64,
) -> Result<VerdictOutcome> {
    let mut tx = db.begin().await?;
    let task = lock_session_then_task(&mut tx, task_id, now).await?;
    if task.status != TaskStatus::Escalated {
        return Err(refused(
            Refused::NotEscalated {
                status: task.status,
            },
            task_id,
        ));
    }
    let answer = answer_from_input(&mut tx, &task, input).await?;
    let label =
        lifecycle::supervisor_resolve(&task.state(), answer).map_err(|r| refused(r, task_id))?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM verdicts WHERE task_id = $1")
        .bind(&task.id)
        .fetch_one(&mut *tx)
        .await?;
    let finalized = resolve(
        &mut tx,
        &task,
        &label,
        "supervisor",
        Some(&supervisor.id),
        count,
        now,
    )
    .await?;
    if input.note.is_some() {
        sqlx::query("UPDATE review_tasks SET resolution_note = $1 WHERE id = $2")
            .bind(&input.note)
            .bind(&task.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    finalized.record();
    Ok(VerdictOutcome {
        task_id: task.id,
        status: TaskStatus::Resolved.as_str().into(),
    })
}

/// Settles the task's event with `label` and finalizes the receipt if it was
/// the session's last open review.
async fn resolve(
    tx: &mut Tx,
    task: &TaskRow,
    label: &Label,
    resolution: &str,
    resolved_by: Option<&str>,
    verdict_count: i64,
    now: i64,
) -> Result<receipts::Finalized> {
    sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', verdict_count = $1, resolved_by = $2, \
         resolved_at = $3, leased_by = NULL, lease_id = NULL, lease_expires_at = NULL, updated_at = $3 \
         WHERE id = $4",
        TaskStatus::Resolved
    ))
    .bind(verdict_count)
    .bind(resolved_by)
    .bind(now)
    .bind(&task.id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE events SET status = '{}', final_action = $1, final_sku = $2, final_quantity = $3, \
         resolution = $4, resolved_at = $5 WHERE id = $6",
        EventStatus::Resolved
    ))
    .bind(label.action.as_str())
    .bind(&label.sku)
    .bind(label.quantity)
    .bind(resolution)
    .bind(now)
    .bind(&task.event_pk)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE sessions SET open_reviews = open_reviews - 1 WHERE store_id = $1 AND session_id = $2",
    )
    .bind(&task.store_id)
    .bind(&task.session_id)
    .execute(&mut **tx)
    .await?;
    let store = stores::get(tx, &task.store_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("store {} of task {} is gone", task.store_id, task.id))?;
    receipts::try_finalize(tx, &store, &task.session_id, now).await
}

/// One verdict as a supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerdictView {
    /// Who answered.
    pub labeler: String,
    /// Action, absent for "can't tell".
    pub action: Option<String>,
    /// Product.
    pub sku: Option<String>,
    /// Units.
    pub quantity: Option<i64>,
    /// The labeler could not tell.
    pub cant_tell: bool,
    /// The labeler's note.
    pub note: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
    /// Milliseconds from claim to verdict.
    pub handling_ms: i64,
}

/// A task with its verdicts, for supervisors.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskDetail {
    /// The task as labelers see it.
    pub task: TaskView,
    /// `waiting`, `ready`, `leased`, `escalated` or `resolved`; for a gold
    /// copy `leased`, `gold-answered` or `gold-dropped`.
    pub status: String,
    /// Why it was escalated.
    pub escalation_reason: Option<String>,
    /// Every verdict so far.
    pub verdicts: Vec<VerdictView>,
}

/// A task with its verdicts.
pub async fn detail(db: &Db, task_id: &str) -> Result<TaskDetail> {
    let mut conn = db.reader().acquire().await?;
    let task = view(&mut conn, task_id).await?;
    let row = sqlx::query("SELECT status, escalation_reason FROM review_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(&mut *conn)
        .await?;
    let verdicts = sqlx::query(
        "SELECT u.username, v.action, v.sku, v.quantity, v.cant_tell, v.note, v.created_at, v.handling_ms \
         FROM verdicts v JOIN users u ON u.id = v.labeler_id WHERE v.task_id = $1 ORDER BY v.created_at, v.id",
    )
    .bind(task_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(VerdictView {
            labeler: r.try_get("username")?,
            action: r.try_get("action")?,
            sku: r.try_get("sku")?,
            quantity: r.try_get("quantity")?,
            cant_tell: r.try_get::<i64, _>("cant_tell")? != 0,
            note: r.try_get("note")?,
            created_at: format_rfc3339_ms(r.try_get("created_at")?),
            handling_ms: r.try_get("handling_ms")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(TaskDetail {
        task,
        status: row.try_get("status")?,
        escalation_reason: row.try_get("escalation_reason")?,
        verdicts,
    })
}

/// Escalated tasks, most urgent first.
pub async fn escalated(db: &Db, limit: i64) -> Result<Vec<TaskDetail>> {
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM review_tasks WHERE status = '{}' ORDER BY deadline_at, created_at LIMIT $1",
        TaskStatus::Escalated
    ))
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(detail(db, &id).await?);
    }
    Ok(out)
}

/// Real tasks (not gold copies) per status, for `/metrics` and operators.
pub async fn counts_by_status(db: &Db) -> Result<Vec<(String, i64)>> {
    // Open statuses only: they are few and indexed (review_tasks_status),
    // while counting the resolved history would scan every task ever made at
    // each scrape.
    let rows = sqlx::query(&format!(
        "SELECT status, COUNT(*) AS n FROM review_tasks \
         WHERE status IN ({}) AND gold_id IS NULL GROUP BY status",
        super::sql_list(&TaskStatus::OPEN)
    ))
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

/// The store and session of a task the user may look at: a supervisor any
/// task, a labeler only one whose lease they hold (`lease-expired` or
/// `lease-not-held` otherwise, as for a verdict).
pub async fn viewable(db: &Db, user: &User, task_id: &str, now: i64) -> Result<(String, String)> {
    let mut tx = db.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM review_tasks WHERE id = $1"
    ))
    .bind(task_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| unknown_task(task_id))?;
    let task = task_from_row(&row)?;
    if !user.role.is_supervisor() && !task.state().is_leased_to(&user.id, now) {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    }
    tx.commit().await?;
    Ok((task.store_id, task.session_id))
}

/// What else the shopper of a task has done: the cart as settled so far and
/// how many other events still wait for review.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TaskContext {
    /// The task.
    pub task_id: String,
    /// The store's session id.
    pub session_id: String,
    /// Net products of the session's settled events (model-accepted or
    /// reviewed), priced as the receipt will price them.
    pub cart: Vec<ReceiptLine>,
    /// Sum of the cart lines.
    pub cart_total_cents: i64,
    /// Other events of the session still in review.
    pub other_events_in_review: i64,
    /// Whether the shopper has left the store.
    pub exited: bool,
}

/// The shopper context of a task.
pub async fn context(
    db: &Db,
    task_id: &str,
    store_id: &str,
    session_id: &str,
) -> Result<TaskContext> {
    let mut conn = db.reader().acquire().await?;
    let receipt = receipts::read(&mut conn, store_id, session_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    let exited = receipt.exited_at.is_some();
    let context = match gold::source_event(&mut conn, task_id).await? {
        None => {
            // The task's own event is one of the session's open reviews
            // until the task is resolved.
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM review_tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let resolved =
                status.as_deref().and_then(TaskStatus::parse) == Some(TaskStatus::Resolved);
            let own = i64::from(!resolved);
            TaskContext {
                task_id: task_id.to_string(),
                session_id: session_id.to_string(),
                cart: receipt.lines,
                cart_total_cents: receipt.total_cents,
                other_events_in_review: (receipt.events_in_review - own).max(0),
                exited,
            }
        }
        Some(source_event) => {
            // A gold copy: the cart as if its source were still in review.
            // The source's settled label is the answer being tested, and a
            // final receipt includes it, so the cart is always recomputed
            // without it. The copy itself is not an open review.
            let (cart, total) =
                receipts::cart_without(&mut conn, store_id, session_id, &source_event).await?;
            TaskContext {
                task_id: task_id.to_string(),
                session_id: session_id.to_string(),
                cart,
                cart_total_cents: total,
                other_events_in_review: receipt.events_in_review,
                exited,
            }
        }
    };
    Ok(context)
}

/// The tasks whose live leases the user holds, oldest claim first: a console
/// that reloads picks up where it was instead of waiting for them to expire.
pub async fn held(db: &Db, user: &User, now: i64) -> Result<Vec<Claim>> {
    let mut conn = db.reader().acquire().await?;
    let rows = sqlx::query(&format!(
        "SELECT t.id, t.lease_expires_at FROM review_tasks t JOIN task_leases l ON l.id = t.lease_id \
         WHERE t.status = '{}' AND t.leased_by = $1 AND t.lease_expires_at > $2 \
         ORDER BY l.claimed_at, t.id",
        TaskStatus::Leased
    ))
    .bind(&user.id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut claims = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("id")?;
        let expires: i64 = r.try_get("lease_expires_at")?;
        claims.push(Claim {
            task: view(&mut conn, &id).await?,
            lease_expires_at: format_rfc3339_ms(expires),
        });
    }
    Ok(claims)
}
