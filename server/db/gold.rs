//! Gold tasks: a supervisor marks a resolved task as gold; claims serve
//! copies of it to labelers; their answers score them.
//!
//! A **gold copy** is a `review_tasks` row with `gold_id` set, backed by its
//! own `events` row (`route = 'gold'`, `status = 'gold'`, event id
//! `gold:<copy id>`, because `review_tasks.event_pk` is unique) and by
//! `task_clips` rows showing the source task's clips and posters. It is made
//! for one labeler at claim time, already leased, and ends `gold-answered`
//! (a verdict) or `gold-dropped` (release or lease expiry): it is never
//! `ready`, so no one else ever claims it. It never touches the source
//! event, the session, its receipt or the webhook outbox.
//!
//! Row I/O only: marking and retiring, with their refusals, are
//! [`crate::review::gold`]'s.

use sqlx::{AnyConnection, Row};

use super::{flag, in_scope, new_id, stores, Db, Error, Result, Tx};
use crate::domain::consensus::Answer;
use crate::domain::gold;
use crate::domain::lifecycle::{EventStatus, RouteName, TaskPurpose, TaskStatus};
use crate::domain::scope::Scope;
use crate::domain::{Action, Label};

/// A gold task's row, with the answers to its copies.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldRow {
    /// Gold task id.
    pub gold_id: String,
    /// The resolved task it was made from.
    pub task_id: String,
    /// The store's event id of that task.
    pub event_id: String,
    /// Store id.
    pub store_id: String,
    /// The known answer: the source event's final label.
    pub label: Label,
    /// Still served to labelers (false once retired).
    pub active: bool,
    /// The supervisor who marked it (username).
    pub created_by: String,
    /// When it was marked, epoch ms.
    pub created_at: i64,
    /// When it was retired, epoch ms.
    pub retired_at: Option<i64>,
    /// Answers given to its copies, all time (retired or not).
    pub answers: i64,
    /// Of them, those matching the label.
    pub correct: i64,
}

const GOLD_SELECT: &str =
    "SELECT g.id, g.source_task_id, g.store_id, g.action, g.sku, g.quantity, \
     g.active, g.created_at, g.retired_at, u.username, e.event_id, \
     (SELECT COUNT(*) FROM gold_answers a WHERE a.gold_id = g.id) AS answers, \
     (SELECT COUNT(*) FROM gold_answers a WHERE a.gold_id = g.id AND a.correct = 1) AS correct \
     FROM gold_tasks g JOIN users u ON u.id = g.created_by \
     JOIN review_tasks s ON s.id = g.source_task_id JOIN events e ON e.id = s.event_pk";

fn label_from(r: &sqlx::any::AnyRow) -> Result<Label> {
    let action: String = r.try_get("action")?;
    let action = Action::parse(&action)
        .ok_or_else(|| Error::Data(format!("stored gold action {action:?} is unknown")))?;
    Ok(Label::new(
        action,
        r.try_get("sku")?,
        r.try_get("quantity")?,
    ))
}

fn gold_from_row(r: &sqlx::any::AnyRow) -> Result<GoldRow> {
    Ok(GoldRow {
        gold_id: r.try_get("id")?,
        task_id: r.try_get("source_task_id")?,
        event_id: r.try_get("event_id")?,
        store_id: r.try_get("store_id")?,
        label: label_from(r)?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_by: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
        retired_at: r.try_get("retired_at")?,
        answers: r.try_get("answers")?,
        correct: r.try_get("correct")?,
    })
}

/// One gold task.
pub async fn get(conn: &mut AnyConnection, gold_id: &str) -> Result<Option<GoldRow>> {
    let row = sqlx::query(&format!("{GOLD_SELECT} WHERE g.id = $1"))
        .bind(gold_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(gold_from_row).transpose()
}

/// Gold tasks of the stores of `scope`, newest first, retired ones
/// included.
pub async fn list(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<GoldRow>> {
    let stores = in_scope("g.store_id", scope, 2);
    let sql = format!(
        "{GOLD_SELECT} WHERE 1 = 1{} ORDER BY g.created_at DESC, g.id DESC LIMIT $1",
        stores.sql
    );
    let rows = stores
        .bind_rows(sqlx::query(&sql).bind(limit))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(gold_from_row).collect()
}

/// A task a supervisor asks to mark as gold, with its event's final label.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTask {
    /// The task's status.
    pub status: TaskStatus,
    /// Set when the task is itself a gold copy.
    pub gold_id: Option<String>,
    /// Store id.
    pub store_id: String,
    /// The event's status.
    pub event_status: EventStatus,
    /// The event's final action (stored text); none before it is resolved.
    pub action: Option<String>,
    /// The event's final SKU.
    pub sku: Option<String>,
    /// The event's final quantity.
    pub quantity: Option<i64>,
}

/// A task to mark as gold; `None` when there is no such task.
pub async fn source_task(tx: &mut Tx, task_id: &str) -> Result<Option<SourceTask>> {
    let row = sqlx::query(
        "SELECT t.status, t.gold_id, t.store_id, e.status AS event_status, e.final_action AS action, \
         e.final_sku AS sku, e.final_quantity AS quantity \
         FROM review_tasks t JOIN events e ON e.id = t.event_pk WHERE t.id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(SourceTask {
        status: super::task_status(&row.try_get::<String, _>("status")?)?,
        gold_id: row.try_get("gold_id")?,
        store_id: row.try_get("store_id")?,
        event_status: super::state(
            &row.try_get::<String, _>("event_status")?,
            EventStatus::parse,
        )?,
        action: row.try_get("action")?,
        sku: row.try_get("sku")?,
        quantity: row.try_get("quantity")?,
    }))
}

/// Records a gold task made from `task_id` by `created_by` (user id), with
/// the source task's final label; its id, or `None` when the task is gold
/// already (retired ones included).
pub async fn insert(
    tx: &mut Tx,
    task_id: &str,
    source: &SourceTask,
    created_by: &str,
    now: i64,
) -> Result<Option<String>> {
    let action = source
        .action
        .as_deref()
        .ok_or_else(|| Error::Data(format!("task {task_id} has no final label to make gold")))?;
    let gold_id = new_id();
    // The unique source_task_id decides between two supervisors marking the
    // same task at once: one inserts, the other is told it is gold already.
    let inserted = sqlx::query(
        "INSERT INTO gold_tasks (id, source_task_id, store_id, action, sku, quantity, active, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) \
         ON CONFLICT (source_task_id) DO NOTHING",
    )
    .bind(&gold_id)
    .bind(task_id)
    .bind(&source.store_id)
    .bind(action)
    .bind(&source.sku)
    .bind(source.quantity.unwrap_or(0))
    .bind(created_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok((inserted.rows_affected() > 0).then_some(gold_id))
}

/// The gold task made from `task_id`, if any.
pub async fn of_source(conn: &mut AnyConnection, task_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM gold_tasks WHERE source_task_id = $1")
            .bind(task_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Stops serving a gold task; its answers still count. A retired task
/// keeps its first retirement time.
pub async fn retire(tx: &mut Tx, gold_id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE gold_tasks SET active = 0, retired_at = $1 WHERE id = $2 AND active = 1")
        .bind(now)
        .bind(gold_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The active gold task to serve `user_id` next, if any: one they were
/// never served, whose source task they never held (so never answered), did
/// not resolve as a supervisor and did not mark themselves, of a store of
/// their pool. Newest first, so
/// a labeler who has seen the old ones finds a new one without walking far.
pub async fn pick(tx: &mut Tx, user_id: &str, pool: &Scope) -> Result<Option<String>> {
    let pool = in_scope("s.store_id", pool, 2);
    let sql = format!(
        "SELECT g.id FROM gold_tasks g JOIN review_tasks s ON s.id = g.source_task_id \
         WHERE g.active = 1 AND g.created_by <> $1 AND COALESCE(s.resolved_by, '') <> $1 \
         AND NOT EXISTS (SELECT 1 FROM gold_served v WHERE v.gold_id = g.id AND v.labeler_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM task_leases l WHERE l.task_id = s.id AND l.labeler_id = $1){} \
         ORDER BY g.created_at DESC, g.id DESC LIMIT 1",
        pool.sql
    );
    Ok(pool
        .bind(sqlx::query_scalar(&sql).bind(user_id))
        .fetch_optional(&mut **tx)
        .await?)
}

/// A lease to put on a new gold copy.
pub struct CopyLease<'a> {
    /// The labeler.
    pub user_id: &'a str,
    /// The lease id (its `task_leases` row is written by the caller).
    pub lease_id: &'a str,
    /// When the lease ends.
    pub expires: i64,
}

/// Makes a gold copy of `gold_id`, leased as given; returns its task id,
/// or `None` when a concurrent claim served this labeler this gold task
/// first (a labeler answers each gold task once).
/// Deadline: now + the store's receipt SLA, as for a shopper who just left.
pub async fn make_copy(
    tx: &mut Tx,
    gold_id: &str,
    lease: &CopyLease<'_>,
    now: i64,
) -> Result<Option<String>> {
    let copy_id = new_id();
    let first = sqlx::query(
        "INSERT INTO gold_served (gold_id, labeler_id, task_id, served_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (gold_id, labeler_id) DO NOTHING",
    )
    .bind(gold_id)
    .bind(lease.user_id)
    .bind(&copy_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if first.rows_affected() == 0 {
        return Ok(None);
    }
    let src = sqlx::query(
        "SELECT s.id, s.event_pk, s.store_id, s.session_id, s.reason, s.required_verdicts FROM gold_tasks g \
         JOIN review_tasks s ON s.id = g.source_task_id WHERE g.id = $1",
    )
    .bind(gold_id)
    .fetch_one(&mut **tx)
    .await?;
    let source_id: String = src.try_get("id")?;
    let store_id: String = src.try_get("store_id")?;
    let store = stores::get(tx, &store_id)
        .await?
        .ok_or_else(|| Error::Data(format!("store {store_id} of gold task {gold_id} is gone")))?;
    let event_pk = new_id();
    sqlx::query(&format!(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
         candidates, clips, model_version, top_sku, top_confidence, route, route_reason, status, \
         request_hash, created_at) \
         SELECT $1, store_id, $2, session_id, kind, quantity, occurred_at, candidates, clips, \
         model_version, top_sku, top_confidence, '{}', route_reason, '{}', request_hash, $3 \
         FROM events WHERE id = $4",
        RouteName::Gold,
        EventStatus::Gold
    ))
    .bind(&event_pk)
    .bind(format!("gold:{copy_id}"))
    .bind(now)
    .bind(src.try_get::<String, _>("event_pk")?)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
         status, deadline_at, created_at, leased_by, lease_id, lease_expires_at, updated_at, gold_id, \
         purpose, priority) \
         VALUES ($1, $2, $3, $4, $5, $12, '{}', $6, $7, $8, $9, $10, $7, $11, '{}', {})",
        TaskStatus::Leased,
        TaskPurpose::Gold,
        TaskPurpose::Gold.priority()
    ))
    .bind(&copy_id)
    .bind(&event_pk)
    .bind(&store_id)
    .bind(src.try_get::<String, _>("session_id")?)
    .bind(src.try_get::<String, _>("reason")?)
    .bind(now + store.policy.receipt_sla_ms)
    .bind(now)
    .bind(lease.user_id)
    .bind(lease.lease_id)
    .bind(lease.expires)
    .bind(gold_id)
    // Shown as the source's, so an audit or high-value copy looks like one;
    // the first answer scores it whatever the number.
    .bind(src.try_get::<i64, _>("required_verdicts")?)
    .execute(&mut **tx)
    .await?;
    // The same clips and the same poster blobs: media access follows the
    // copy's own task_clips rows and lease.
    sqlx::query(
        "INSERT INTO task_clips (task_id, clip_id, position, event_offset_ms, poster_key, poster_status) \
         SELECT $1, clip_id, position, event_offset_ms, poster_key, poster_status \
         FROM task_clips WHERE task_id = $2",
    )
    .bind(&copy_id)
    .bind(&source_id)
    .execute(&mut **tx)
    .await?;
    Ok(Some(copy_id))
}

/// Scores the verdict on a gold copy and closes the copy; whether the
/// answer was correct.
pub async fn record_answer(
    tx: &mut Tx,
    task_id: &str,
    gold_id: &str,
    labeler_id: &str,
    answer: &Answer,
    now: i64,
) -> Result<bool> {
    let row = sqlx::query("SELECT action, sku, quantity FROM gold_tasks WHERE id = $1")
        .bind(gold_id)
        .fetch_one(&mut **tx)
        .await?;
    let correct = gold::is_correct(&label_from(&row)?, answer);
    sqlx::query(
        "INSERT INTO gold_answers (task_id, gold_id, labeler_id, correct, answered_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(task_id)
    .bind(gold_id)
    .bind(labeler_id)
    .bind(flag(correct))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE review_tasks SET status = $1, verdict_count = 1, leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $2 WHERE id = $3",
    )
    .bind(TaskStatus::GoldAnswered.as_str())
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    Ok(correct)
}

/// Ends a released gold copy: it was made for one labeler, so it never goes
/// back to the queue.
pub async fn drop_copy(tx: &mut Tx, task_id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE review_tasks SET status = $1, leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $2 WHERE id = $3",
    )
    .bind(TaskStatus::GoldDropped.as_str())
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends every gold copy whose lease ran out; the number ended.
pub async fn drop_expired(tx: &mut Tx, now: i64) -> Result<u64> {
    let dropped = sqlx::query(&format!(
        "UPDATE review_tasks SET status = $1, leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $2 \
         WHERE status = '{}' AND lease_expires_at <= $2 AND gold_id IS NOT NULL",
        TaskStatus::Leased
    ))
    .bind(TaskStatus::GoldDropped.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(dropped.rows_affected())
}

/// For a gold copy, the source task's event (whose final label is the gold
/// answer, so it must not show in the copy's context); `None` for a real task.
pub async fn source_event(conn: &mut AnyConnection, task_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT s.event_pk FROM review_tasks t JOIN gold_tasks g ON g.id = t.gold_id \
         JOIN review_tasks s ON s.id = g.source_task_id WHERE t.id = $1",
    )
    .bind(task_id)
    .fetch_optional(conn)
    .await?)
}

/// One labeler's gold answers over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelerAnswers {
    /// User id.
    pub labeler_id: String,
    /// Login name.
    pub username: String,
    /// Gold answers in the window.
    pub answers: i64,
    /// Of them, correct ones.
    pub correct: i64,
    /// The stores the labeler covers.
    pub scope: Scope,
}

/// One labeler's gold answers since `since` (epoch ms), and how many were
/// correct.
pub async fn answers_of(
    conn: &mut AnyConnection,
    labeler_id: &str,
    since: i64,
) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS answers, COUNT(CASE WHEN correct = 1 THEN 1 END) AS correct \
         FROM gold_answers WHERE labeler_id = $1 AND answered_at >= $2",
    )
    .bind(labeler_id)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok((r.try_get("answers")?, r.try_get("correct")?))
}

/// Every labeler's gold answers since `since` (epoch ms), in no order.
pub async fn answers_since(db: &Db, since: i64) -> Result<Vec<LabelerAnswers>> {
    // COUNT, not SUM: PostgreSQL sums BIGINT to NUMERIC, which the Any
    // driver does not decode.
    let rows = sqlx::query(
        "SELECT a.labeler_id, u.username, u.role, u.stores, COUNT(*) AS answers, \
         COUNT(CASE WHEN a.correct = 1 THEN 1 END) AS correct \
         FROM gold_answers a JOIN users u ON u.id = a.labeler_id \
         WHERE a.answered_at >= $1 GROUP BY a.labeler_id, u.username, u.role, u.stores",
    )
    .bind(since)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LabelerAnswers {
                labeler_id: r.try_get("labeler_id")?,
                username: r.try_get("username")?,
                answers: r.try_get("answers")?,
                correct: r.try_get("correct")?,
                scope: super::users::scope_of_row(r)?,
            })
        })
        .collect()
}
