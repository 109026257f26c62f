//! Rows of the review queue: tasks, their leases and verdicts.
//!
//! Changes run inside the transaction they are given, reads on the
//! connection or pool they are given; which change a request makes, and in
//! which order rows are locked, is decided by [`crate::review::queue`] with
//! the rules of [`crate::domain::lifecycle`].

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::batch::Stmt;
use super::bulk::Val;
use super::catalog_cache::Catalogs;
use super::{clips, flag, in_scope, Backend, Db, InScope, Result, Tx};
use crate::domain::consensus::Answer;
use crate::domain::event::CandidateInput;
use crate::domain::lifecycle::{
    Crew, Lease, LeaseEnd, PastLease, Pending, SessionStatus, Task, TaskPurpose, TaskStatus,
};
use crate::domain::scope::Scope;
use crate::domain::{Action, Label};

/// A review task row.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// Task id.
    pub id: String,
    /// The event's `events.id`.
    pub event_pk: String,
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// Agreeing verdicts needed.
    pub required_verdicts: i64,
    /// Its state.
    pub status: TaskStatus,
    /// The lease holder.
    pub leased_by: Option<String>,
    /// The live lease's `task_leases.id`.
    pub lease_id: Option<String>,
    /// When the live lease ends, epoch ms.
    pub lease_expires_at: Option<i64>,
    /// Set on a gold copy: the gold task it copies.
    pub gold_id: Option<String>,
    /// What it is for.
    pub purpose: TaskPurpose,
    /// The units the model saw in the task's event.
    pub event_quantity: i64,
    /// Whether labelers see it blind ([`TaskPurpose::blind`] with the
    /// store's setting).
    pub blind: bool,
    /// The store's catalog version ([`super::catalog_cache`]).
    pub catalog_version: String,
    /// Verdicts given so far, as the task's last change counted them
    /// (every verdict's transaction sets it).
    pub verdict_count: i64,
    /// The task's session as read with it: exact only under the session's
    /// lock ([`crate::review::locks::session_then_task`]); `None` for a gold
    /// copy.
    pub session: Option<SessionRow>,
}

/// What a verdict needs of its task's session: whether settling the task
/// finalizes the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRow {
    /// Its state.
    pub status: SessionStatus,
    /// Reviews its receipt waits for.
    pub open_reviews: i64,
    /// When the shopper left, epoch ms.
    pub exited_at: Option<i64>,
}

impl TaskRow {
    /// The task as the lifecycle rules see it.
    pub fn state(&self) -> Task {
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

    fn from_row(r: &sqlx::any::AnyRow) -> Result<TaskRow> {
        let purpose = purpose(&r.try_get::<String, _>("purpose")?)?;
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
            purpose,
            event_quantity: r.try_get("event_quantity")?,
            blind: purpose.blind(r.try_get::<i64, _>("blind_review")? != 0),
            catalog_version: r.try_get("catalog_version")?,
            verdict_count: r.try_get("verdict_count")?,
            session: match r.try_get::<Option<String>, _>("session_status")? {
                Some(status) => Some(SessionRow {
                    status: super::state(&status, SessionStatus::parse)?,
                    open_reviews: r.try_get("open_reviews")?,
                    exited_at: r.try_get("exited_at")?,
                }),
                None => None,
            },
        })
    }
}

fn purpose(s: &str) -> Result<TaskPurpose> {
    super::state(s, TaskPurpose::parse)
}

/// A [`TaskRow`]'s columns besides its session's, from the task `t`, its
/// event `e` and its store `s`.
const TASK_COLUMNS: &str = "t.id, t.event_pk, t.store_id, t.session_id, t.required_verdicts, \
     t.status, t.leased_by, t.lease_id, t.lease_expires_at, t.gold_id, t.purpose, t.verdict_count, \
     e.quantity AS event_quantity, s.blind_review, s.catalog_version";

/// A task row by id, with what a verdict needs of its event, store and
/// session, so that a verdict reads them in the same statement; `lock`
/// locks the task row alone.
fn task_query(lock: &str) -> String {
    format!(
        "SELECT {TASK_COLUMNS}, ss.status AS session_status, ss.open_reviews, ss.exited_at \
         FROM review_tasks t JOIN events e ON e.id = t.event_pk JOIN stores s ON s.id = t.store_id \
         LEFT JOIN sessions ss ON ss.store_id = t.store_id AND ss.session_id = t.session_id \
         AND t.gold_id IS NULL \
         WHERE t.id = $1{lock}"
    )
}

/// What a user may claim: a ready task of their pool's stores (`pool`,
/// bound from its own `$n`) they never held (a lease taken back from an
/// audit for receipt work does not count). Shared by the claim, the check
/// that real work is waiting before gold is served and the check an audit's
/// heartbeat makes.
fn claimable(pool: &InScope<'_>) -> String {
    format!(
        "t.status = '{}' AND NOT EXISTS ({}){}",
        TaskStatus::Ready,
        held_before("t.id", "$1"),
        pool.sql
    )
}

/// A subquery finding a lease of `labeler` on `task` that counts as having
/// held it: every ended or live lease except one yielded for receipt work.
fn held_before(task: &str, labeler: &str) -> String {
    format!(
        "SELECT 1 FROM task_leases l WHERE l.task_id = {task} AND l.labeler_id = {labeler} \
         AND (l.end_reason IS NULL OR l.end_reason <> '{}')",
        LeaseEnd::Yielded
    )
}

/// A task row.
pub async fn get(conn: &mut AnyConnection, task_id: &str) -> Result<Option<TaskRow>> {
    row_of(conn, &task_query(""), task_id).await
}

/// The [`TaskRow`] that `sql` (a [`TASK_COLUMNS`] query taking the id as
/// `$1`) finds for `task_id`.
async fn row_of(conn: &mut AnyConnection, sql: &str, task_id: &str) -> Result<Option<TaskRow>> {
    sqlx::query(sql)
        .bind(task_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(TaskRow::from_row)
        .transpose()
}

/// A task row, locked for the rest of the transaction.
pub async fn lock(tx: &mut Tx, task_id: &str) -> Result<Option<TaskRow>> {
    let sql = task_query(&tx.backend().for_update_of("t"));
    row_of(tx, &sql, task_id).await
}

/// Locks the session of a task that is no gold copy, then the task, in one
/// statement (PostgreSQL, which locks rows): the task's row with its
/// session's as they are once both are locked. `None`, with nothing locked,
/// when the task is unknown, a gold copy or without its session row.
///
/// The session is locked first, as ingest locks it before its tasks: the
/// task's row reaches the statement's lock only joined to the locked
/// session. The session's columns come from that lock (the newest row, not
/// the statement's snapshot, which a wait for the lock would leave behind),
/// the task's from its own.
pub async fn lock_with_session(tx: &mut Tx, task_id: &str) -> Result<Option<TaskRow>> {
    let sql = format!(
        "WITH ss AS MATERIALIZED (SELECT s.status, s.open_reviews, s.exited_at \
           FROM sessions s JOIN review_tasks k \
           ON k.store_id = s.store_id AND k.session_id = s.session_id \
           WHERE k.id = $1 AND k.gold_id IS NULL{}) \
         SELECT {TASK_COLUMNS}, ss.status AS session_status, ss.open_reviews, ss.exited_at \
         FROM review_tasks t JOIN events e ON e.id = t.event_pk JOIN stores s ON s.id = t.store_id \
         CROSS JOIN ss WHERE t.id = $1{}",
        tx.backend().for_update_of("s"),
        tx.backend().for_update_of("t"),
    );
    row_of(tx, &sql, task_id).await
}

/// Where a task belongs, read without a lock: its store and session, and
/// whether it is a gold copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKey {
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// Whether it is a gold copy.
    pub gold: bool,
}

/// The store and session of a task, without locking it.
pub async fn key(tx: &mut Tx, task_id: &str) -> Result<Option<TaskKey>> {
    let Some(r) =
        sqlx::query("SELECT store_id, session_id, gold_id FROM review_tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(None);
    };
    Ok(Some(TaskKey {
        store_id: r.try_get("store_id")?,
        session_id: r.try_get("session_id")?,
        gold: r.try_get::<Option<String>, _>("gold_id")?.is_some(),
    }))
}

/// The count of the live leases the parameter `user` holds at the parameter
/// `now` (found by holder: `review_tasks_held`).
fn held_count(user: &str, now: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM review_tasks WHERE status = '{}' AND leased_by = {user} \
         AND lease_expires_at > {now}",
        TaskStatus::Leased
    )
}

/// How many live leases `user_id` holds.
pub async fn live_leases(tx: &mut Tx, user_id: &str, now: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(&held_count("$1", "$2"))
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?)
}

/// Whether a task `user_id` may claim from the stores of `pool` is ready.
pub async fn claimable_exists(tx: &mut Tx, user_id: &str, pool: &Scope) -> Result<bool> {
    let pool = in_scope("t.store_id", pool, 2);
    let sql = format!(
        "SELECT t.id FROM review_tasks t WHERE {} LIMIT 1",
        claimable(&pool)
    );
    let found: Option<String> = pool
        .bind(sqlx::query_scalar(&sql).bind(user_id))
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Whether receipt work (a task of [`TaskPurpose::Review`]'s rank or more
/// urgent) waits for the holder of `audit` at `now`: one they may claim is
/// ready, or they hold a live lease on one claimed after the audit's (a
/// console's prefetched next task, which would otherwise wait behind the
/// audit on screen). What an audit yields to.
pub async fn receipt_work_waiting(
    tx: &mut Tx,
    audit: &TaskRow,
    pool: &Scope,
    now: i64,
) -> Result<bool> {
    let (Some(user_id), Some(lease_id)) = (&audit.leased_by, &audit.lease_id) else {
        return Ok(false);
    };
    let pool = in_scope("t.store_id", pool, 5);
    let sql = format!(
        "SELECT t.id FROM review_tasks t WHERE t.priority <= $2 AND t.gold_id IS NULL AND ( \
           ({claimable}) \
           OR (t.status = '{leased}' AND t.leased_by = $1 AND t.lease_expires_at > $3 \
               AND (SELECT l.claimed_at FROM task_leases l WHERE l.id = t.lease_id) \
                   > (SELECT a.claimed_at FROM task_leases a WHERE a.id = $4))) \
         LIMIT 1",
        claimable = claimable(&pool),
        leased = TaskStatus::Leased,
    );
    let query = sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(TaskPurpose::Review.priority())
        .bind(now)
        .bind(lease_id);
    let found: Option<String> = pool.bind(query).fetch_optional(&mut **tx).await?;
    Ok(found.is_some())
}

/// A new lease: who, which row, until when.
#[derive(Debug, Clone, Copy)]
pub struct NewLease<'a> {
    /// The `task_leases.id` to write.
    pub id: &'a str,
    /// The labeler.
    pub user_id: &'a str,
    /// When the claim happens, epoch ms.
    pub claimed_at: i64,
    /// When the lease ends unless renewed, epoch ms.
    pub expires_at: i64,
}

/// The `UPDATE` that leases the next task `$1` may claim from the stores of
/// `pool` (bound from `$first_pool`) among those of priority `$5` or more
/// urgent, by priority, then earliest deadline, then oldest, as
/// [`crate::domain::lifecycle::claim`] says; `guard` is a further condition
/// (with its own parameters). Parameters: `$1` user, `$2` lease id, `$3`
/// lease end, `$4` now.
fn lease_update(backend: Backend, pool: &InScope<'_>, guard: &str) -> String {
    format!(
        "UPDATE review_tasks SET status = '{leased}', leased_by = $1, lease_id = $2, \
         lease_expires_at = $3, updated_at = $4 \
         WHERE status = '{ready}'{guard} AND id = (SELECT t.id FROM review_tasks t WHERE {claimable} \
         AND t.priority <= $5 \
         ORDER BY t.priority, t.deadline_at, t.created_at LIMIT 1{skip_locked}) RETURNING id",
        leased = TaskStatus::Leased,
        ready = TaskStatus::Ready,
        claimable = claimable(pool),
        skip_locked = backend.skip_locked()
    )
}

/// On PostgreSQL, the `WITH` parts that run `update` (a [`lease_update`])
/// and write its lease row in the same statement: `claimed` returns the
/// task id.
fn lease_ctes(update: &str) -> String {
    format!(
        "picked AS ({update}), claimed AS (INSERT INTO task_leases \
         (id, task_id, labeler_id, claimed_at, expires_at) \
         SELECT $2, id, $1, $4, $3 FROM picked RETURNING task_id)"
    )
}

/// Leases the next task `lease.user_id` may claim from the stores of
/// `pool` among those of priority `max_priority` or more urgent (see
/// [`lease_update`]) and writes its lease row; its id, or `None` when
/// nothing is ready for them. One statement on PostgreSQL (the lease row is
/// written by the same statement); an `UPDATE … RETURNING` and an `INSERT`
/// on SQLite.
pub async fn lease_next(
    tx: &mut Tx,
    lease: &NewLease<'_>,
    pool: &Scope,
    max_priority: i64,
) -> Result<Option<String>> {
    let pool = in_scope("t.store_id", pool, 6);
    let update = lease_update(tx.backend(), &pool, "");
    let sql = match tx.backend() {
        Backend::Postgres => format!("WITH {} SELECT task_id FROM claimed", lease_ctes(&update)),
        Backend::Sqlite => update,
    };
    let query = sqlx::query_scalar(&sql)
        .bind(lease.user_id)
        .bind(lease.id)
        .bind(lease.expires_at)
        .bind(lease.claimed_at)
        .bind(max_priority);
    let leased: Option<String> = pool.bind(query).fetch_optional(&mut **tx).await?;
    if let (Some(task_id), Backend::Sqlite) = (&leased, tx.backend()) {
        insert_lease(tx, task_id, lease).await?;
    }
    Ok(leased)
}

/// What [`lease_within`] found: the live leases the user held before, and
/// the task it leased.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// Live leases the user held before this claim.
    pub held: i64,
    /// The task leased, if any.
    pub task_id: Option<String>,
    /// Its card, where it came back with the lease (PostgreSQL).
    pub card: Option<TaskCard>,
}

/// [`lease_next`] for a user holding fewer than `max_leases` live leases,
/// with the count of those it read, in one round trip: one statement on
/// PostgreSQL, which also returns the leased task's card (read from the
/// statement's snapshot: the columns a card shows are not the ones a claim
/// changes), one multi-statement query on SQLite ([`super::batch`]), whose
/// card is read after commit from the read pool, off the single writer. The
/// count is [`crate::domain::lifecycle::may_claim`]'s input; the lease is
/// taken only when that rule allows it (`held < max_leases`). Run under the
/// user's lock ([`super::Db::begin_as`]), so the count is not overtaken by
/// the user's own concurrent claim.
pub async fn lease_within(
    tx: &mut Tx,
    catalogs: &Catalogs,
    lease: &NewLease<'_>,
    pool: &Scope,
    max_priority: i64,
    max_leases: i64,
) -> Result<Leased> {
    let held = held_count("$1", "$4");
    let pool = in_scope("t.store_id", pool, 7);
    // SQLite: the claim's first write, so it may open the savepoint.
    let opening = tx.opening().await?;
    let sql = match tx.backend() {
        // The count once, as a `WITH` part both the guard and the answer
        // read; one row per clip of the leased task's card, or one row of
        // NULLs beside the count when nothing was leased.
        Backend::Postgres => format!(
            "WITH held AS ({held}), {} SELECT h.held, {} \
             FROM (SELECT * FROM held) h (held) LEFT JOIN \
             (claimed JOIN review_tasks t ON t.id = claimed.task_id {CARD_JOINS}) ON true \
             ORDER BY tc.position",
            lease_ctes(&lease_update(
                tx.backend(),
                &pool,
                " AND (SELECT * FROM held) < $6"
            )),
            card_columns(),
        ),
        // In order, one hand-off: the count, the lease, its row.
        Backend::Sqlite => super::batch::after_open(
            opening,
            &format!(
                "{held};\n{update};\n\
                 INSERT INTO task_leases (id, task_id, labeler_id, claimed_at, expires_at) \
                 SELECT $2, id, $1, $4, $3 FROM review_tasks \
                 WHERE status = '{}' AND leased_by = $1 AND lease_id = $2",
                TaskStatus::Leased,
                update = lease_update(tx.backend(), &pool, &format!(" AND ({held}) < $6")),
            ),
        ),
    };
    let query = sqlx::query(&sql)
        .bind(lease.user_id)
        .bind(lease.id)
        .bind(lease.expires_at)
        .bind(lease.claimed_at)
        .bind(max_priority)
        .bind(max_leases);
    let query = pool.bind_rows(query);
    match tx.backend() {
        Backend::Postgres => {
            let rows = query.fetch_all(&mut **tx).await?;
            let held = match rows.first() {
                Some(r) => r.try_get("held")?,
                None => return Err(super::Error::Data("a claim without a row".into())),
            };
            let card = card_of(tx, catalogs, &rows).await?;
            Ok(Leased {
                held,
                task_id: card.as_ref().map(|c| c.task_id.clone()),
                card,
            })
        }
        Backend::Sqlite => {
            let each = super::batch::rows_of_each(tx, query).await?;
            let each = super::batch::after_opening(each, opening)?;
            let [count, leased, written] = <[_; 3]>::try_from(each)
                .map_err(|e| super::Error::Data(format!("a claim got {} results", e.len())))?;
            let held = match count.rows.first() {
                Some(r) => r.try_get(0)?,
                None => return Err(super::Error::Data("a lease count without a row".into())),
            };
            let task_id: Option<String> = match leased.rows.first() {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            };
            if written.changed != u64::from(task_id.is_some()) {
                return Err(super::Error::Data(format!(
                    "lease {} of task {task_id:?} wrote {} rows",
                    lease.id, written.changed
                )));
            }
            Ok(Leased {
                held,
                task_id,
                card: None,
            })
        }
    }
}

/// The other labelers at work (who claimed anything since `active_since`)
/// besides `user_id`, and how many of them hold no live lease at `now`.
pub async fn others_at_work(
    tx: &mut Tx,
    user_id: &str,
    active_since: i64,
    now: i64,
) -> Result<(i64, i64)> {
    let r = sqlx::query(&format!(
        "WITH active AS (SELECT DISTINCT labeler_id FROM task_leases \
           WHERE claimed_at > $1 AND labeler_id <> $2) \
         SELECT (SELECT COUNT(*) FROM active) AS active, \
         (SELECT COUNT(*) FROM active a WHERE NOT EXISTS (SELECT 1 FROM review_tasks t \
           WHERE t.leased_by = a.labeler_id AND t.status = '{}' AND t.lease_expires_at > $3)) AS idle",
        TaskStatus::Leased
    ))
    .bind(active_since)
    .bind(user_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok((r.try_get("active")?, r.try_get("idle")?))
}

/// Writes the `task_leases` row of a lease on `task_id`.
pub async fn insert_lease(tx: &mut Tx, task_id: &str, lease: &NewLease<'_>) -> Result<()> {
    sqlx::query("INSERT INTO task_leases (id, task_id, labeler_id, claimed_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(lease.id)
        .bind(task_id)
        .bind(lease.user_id)
        .bind(lease.claimed_at)
        .bind(lease.expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The user's latest lease on a task, if they ever held one.
pub async fn latest_lease(tx: &mut Tx, task_id: &str, user_id: &str) -> Result<Option<PastLease>> {
    let Some(r) = sqlx::query(
        "SELECT expires_at, ended_at, end_reason FROM task_leases WHERE task_id = $1 AND labeler_id = $2 \
         ORDER BY claimed_at DESC LIMIT 1",
    )
    .bind(task_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(PastLease {
        expires_at: r.try_get("expires_at")?,
        ended_at: r.try_get("ended_at")?,
        end: r
            .try_get::<Option<String>, _>("end_reason")?
            .as_deref()
            .and_then(LeaseEnd::parse),
    }))
}

/// Moves the end of a task's live lease to `expires_at`, on the task and its
/// lease row together.
pub async fn renew_lease(tx: &mut Tx, task: &TaskRow, expires_at: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE review_tasks SET lease_expires_at = $1, updated_at = $2 WHERE id = $3")
        .bind(expires_at)
        .bind(now)
        .bind(&task.id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE task_leases SET expires_at = $1 WHERE id = $2")
        .bind(expires_at)
        .bind(&task.lease_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records how the task's live lease ended.
pub fn end_lease(task: &TaskRow, now: i64, end: LeaseEnd) -> Stmt {
    Stmt::new("UPDATE task_leases SET ended_at = $1, end_reason = $2 WHERE id = $3")
        .bind(now)
        .bind(end.as_str())
        .bind(&task.lease_id)
}

/// Puts a task back in the queue, without a lease.
pub async fn set_ready(tx: &mut Tx, task_id: &str, now: i64) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $1 WHERE id = $2",
        TaskStatus::Ready
    ))
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    tx.tasks_ready();
    Ok(())
}

/// Returns every real task whose lease ran out to the queue
/// ([`crate::domain::lifecycle::expire`] for all of them at once) and ends
/// the lapsed leases; the number of tasks returned.
pub async fn expire_lapsed(tx: &mut Tx, now: i64) -> Result<u64> {
    // Heartbeats move both expiry times together, so the same cut-off ends
    // the same leases in both tables. Tasks first, then leases: the order in
    // which verdicts, heartbeats and releases lock them, so the sweep never
    // deadlocks with them on PostgreSQL.
    let returned = sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, updated_at = $1 WHERE status = '{}' AND lease_expires_at <= $1",
        TaskStatus::Ready,
        TaskStatus::Leased
    ))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE task_leases SET ended_at = $1, end_reason = '{}' \
         WHERE ended_at IS NULL AND expires_at <= $1",
        LeaseEnd::Expired
    ))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if returned.rows_affected() > 0 {
        tx.tasks_ready();
    }
    Ok(returned.rows_affected())
}

/// How long a store's latest `limit` verdicts took, claim to answer, in ms.
pub async fn recent_handling_ms(
    conn: &mut AnyConnection,
    store_id: &str,
    limit: i64,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT v.handling_ms FROM verdicts v JOIN review_tasks t ON t.id = v.task_id \
         WHERE t.store_id = $1 ORDER BY v.created_at DESC LIMIT $2",
    )
    .bind(store_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// When the event a task shows happened, epoch ms.
pub async fn event_occurred_at(tx: &mut Tx, event_pk: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT occurred_at FROM events WHERE id = $1")
            .bind(event_pk)
            .fetch_one(&mut **tx)
            .await?,
    )
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

fn answer_from_row(r: &sqlx::any::AnyRow) -> Result<Answer> {
    if r.try_get::<i64, _>("cant_tell")? != 0 {
        return Ok(Answer::CantTell);
    }
    let action: Option<String> = r.try_get("action")?;
    let action = action
        .as_deref()
        .and_then(Action::parse)
        .ok_or_else(|| super::Error::Data("verdict without action".into()))?;
    Ok(Answer::Label(Label::new(
        action,
        r.try_get("sku")?,
        r.try_get::<Option<i64>, _>("quantity")?.unwrap_or(0),
    )))
}

/// Every answer on a task with who gave it, in the order they were given:
/// what a verdict needs for consensus and for telling a repeated answer,
/// in one read.
pub async fn answers_by(tx: &mut Tx, task_id: &str) -> Result<Vec<(String, Answer)>> {
    sqlx::query(
        "SELECT labeler_id, action, sku, quantity, cant_tell FROM verdicts WHERE task_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("labeler_id")?, answer_from_row(r)?)))
    .collect()
}

/// How many verdicts a task has.
pub async fn verdict_count(tx: &mut Tx, task_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM verdicts WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// A verdict to record on the task's live lease.
#[derive(Debug, Clone, Copy)]
pub struct NewVerdict<'a> {
    /// Verdict id.
    pub id: &'a str,
    /// The labeler.
    pub labeler_id: &'a str,
    /// The answer.
    pub answer: &'a Answer,
    /// Free text for supervisors.
    pub note: Option<&'a str>,
    /// When, epoch ms.
    pub created_at: i64,
}

/// Records a verdict given under the task's live lease, with its handling
/// time (from the lease's claim).
pub fn insert_verdict(task: &TaskRow, v: &NewVerdict<'_>) -> Stmt {
    let (action, sku, quantity, cant_tell) = answer_columns(v.answer);
    // The handling time comes from the lease row in the same statement.
    Stmt::new(
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, cant_tell, \
         note, created_at, handling_ms) \
         SELECT $1, $2, $3, l.id, $5, $6, $7, $8, $9, $10, $10 - l.claimed_at \
         FROM task_leases l WHERE l.id = $4",
    )
    .bind(v.id)
    .bind(&task.id)
    .bind(v.labeler_id)
    .bind(&task.lease_id)
    .bind(action)
    .bind(sku)
    .bind(quantity)
    .bind(flag(cant_tell))
    .bind(v.note)
    .bind(v.created_at)
    .expect_rows(
        1,
        format!("task {} has no lease row {:?}", task.id, task.lease_id),
    )
}

/// Puts a task that needs more verdicts back in the queue with its count
/// of verdicts so far, in one statement.
pub fn ready_for_more(task_id: &str, count: i64, now: i64) -> Stmt {
    Stmt::new(format!(
        "UPDATE review_tasks SET status = '{}', leased_by = NULL, lease_id = NULL, \
         lease_expires_at = NULL, verdict_count = $1, updated_at = $2 WHERE id = $3",
        TaskStatus::Ready
    ))
    .bind(count)
    .bind(now)
    .bind(task_id)
    .makes_ready()
}

/// Hands a task to supervisors, without a lease.
pub fn escalate(task_id: &str, reason: &str, verdict_count: i64, now: i64) -> Stmt {
    Stmt::new(format!(
        "UPDATE review_tasks SET status = '{}', escalation_reason = $1, verdict_count = $2, \
         leased_by = NULL, lease_id = NULL, lease_expires_at = NULL, updated_at = $3 WHERE id = $4",
        TaskStatus::Escalated
    ))
    .bind(reason)
    .bind(verdict_count)
    .bind(now)
    .bind(task_id)
}

/// How a task was resolved.
#[derive(Debug, Clone, Copy)]
pub struct Resolution<'a> {
    /// The settled label.
    pub label: &'a Label,
    /// `human` (consensus) or `supervisor`.
    pub by: &'a str,
    /// The supervisor, for `supervisor`.
    pub resolved_by: Option<&'a str>,
    /// Verdicts on the task.
    pub verdict_count: i64,
}

/// Marks a task resolved (its row alone: what the label settles depends on
/// the task's purpose, and [`crate::review::queue`] writes it).
pub fn resolve(task: &TaskRow, r: &Resolution<'_>, now: i64) -> Stmt {
    Stmt::new(format!(
        "UPDATE review_tasks SET status = '{}', verdict_count = $1, resolved_by = $2, \
         resolved_at = $3, leased_by = NULL, lease_id = NULL, lease_expires_at = NULL, updated_at = $3 \
         WHERE id = $4",
        TaskStatus::Resolved
    ))
    .bind(r.verdict_count)
    .bind(r.resolved_by)
    .bind(now)
    .bind(&task.id)
}

/// Keeps a supervisor's note on the resolution.
pub async fn set_resolution_note(tx: &mut Tx, task_id: &str, note: &str) -> Result<()> {
    sqlx::query("UPDATE review_tasks SET resolution_note = $1 WHERE id = $2")
        .bind(note)
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A candidate with its catalog details.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRow {
    /// Product sku.
    pub sku: String,
    /// Product name (empty when the catalog lost it).
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Product image.
    pub image_url: Option<String>,
    /// The model's confidence.
    pub confidence: f64,
}

/// Everything a labeler is shown of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCard {
    /// Task id.
    pub task_id: String,
    /// Store id.
    pub store_id: String,
    /// The store's session id.
    pub session_id: String,
    /// The store's event id (a gold copy's source's).
    pub event_id: String,
    /// `pick` or `return`.
    pub kind: String,
    /// Units the model saw.
    pub quantity: i64,
    /// When it happened, epoch ms.
    pub occurred_at: i64,
    /// Why the event needs a human.
    pub reason: String,
    /// Agreeing verdicts needed.
    pub required_verdicts: i64,
    /// Receipt deadline, epoch ms.
    pub deadline_at: i64,
    /// The model that made the guess.
    pub model_version: Option<String>,
    /// The model's guesses, best first.
    pub candidates: Vec<CandidateRow>,
    /// One clip per camera.
    pub clips: Vec<clips::TaskClipRow>,
    /// What the task is for.
    pub purpose: TaskPurpose,
    /// Whether labelers see it blind ([`TaskPurpose::blind`]).
    pub blind: bool,
}

/// The columns of a card's rows ([`CARD_JOINS`]).
fn card_columns() -> String {
    // A gold copy shows its source's event id: its own `gold:…` id (unique
    // per store, as event ids must be) would give it away.
    format!(
        "t.id, t.store_id, t.session_id, t.reason, t.required_verdicts, t.deadline_at, \
         COALESCE(se.event_id, e.event_id) AS event_id, e.kind, e.quantity, e.occurred_at, \
         e.candidates, e.model_version, t.purpose, st.blind_review, st.catalog_version, {}",
        clips::TASK_CLIP_COLUMNS
    )
}

/// What a card joins to the task `t`: one row per clip (one without a clip
/// when it has none); ordered by `tc.position`, the order the event listed
/// them.
const CARD_JOINS: &str = "JOIN events e ON e.id = t.event_pk JOIN stores st ON st.id = t.store_id \
     LEFT JOIN gold_tasks g ON g.id = t.gold_id \
     LEFT JOIN review_tasks s ON s.id = g.source_task_id \
     LEFT JOIN events se ON se.id = s.event_pk \
     LEFT JOIN task_clips tc ON tc.task_id = t.id LEFT JOIN clips c ON c.id = tc.clip_id";

/// What a labeler is shown of a task; `None` for an unknown task.
pub async fn card(
    conn: &mut AnyConnection,
    catalogs: &Catalogs,
    task_id: &str,
) -> Result<Option<TaskCard>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM review_tasks t {CARD_JOINS} WHERE t.id = $1 ORDER BY tc.position",
        card_columns()
    ))
    .bind(task_id)
    .fetch_all(&mut *conn)
    .await?;
    card_of(conn, catalogs, &rows).await
}

/// The card in `rows` (a [`card_columns`] row per clip), or `None` when
/// they hold no task.
async fn card_of(
    conn: &mut AnyConnection,
    catalogs: &Catalogs,
    rows: &[AnyRow],
) -> Result<Option<TaskCard>> {
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    if r.try_get::<Option<String>, _>("id")?.is_none() {
        return Ok(None);
    }
    let store_id: String = r.try_get("store_id")?;
    let mut candidates: Vec<CandidateInput> =
        serde_json::from_str(&r.try_get::<String, _>("candidates")?)?;
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let skus: Vec<&str> = candidates.iter().map(|c| c.sku.as_str()).collect();
    let version: String = r.try_get("catalog_version")?;
    let catalog = catalogs.find(conn, &store_id, &version, &skus).await?;
    let task_id: String = r.try_get("id")?;
    let clips = rows
        .iter()
        .filter_map(|r| clips::task_clip(r).transpose())
        .collect::<Result<Vec<_>>>()?;
    let purpose = purpose(&r.try_get::<String, _>("purpose")?)?;
    Ok(Some(TaskCard {
        purpose,
        blind: purpose.blind(r.try_get::<i64, _>("blind_review")? != 0),
        task_id,
        session_id: r.try_get("session_id")?,
        event_id: r.try_get("event_id")?,
        kind: r.try_get("kind")?,
        quantity: r.try_get("quantity")?,
        occurred_at: r.try_get("occurred_at")?,
        reason: r.try_get("reason")?,
        required_verdicts: r.try_get("required_verdicts")?,
        deadline_at: r.try_get("deadline_at")?,
        model_version: r.try_get("model_version")?,
        candidates: candidates
            .into_iter()
            .map(|c| {
                let p = catalog.get(&c.sku);
                CandidateRow {
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
    }))
}

/// One verdict as supervisors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    /// Who answered (username).
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
    /// When, epoch ms.
    pub created_at: i64,
    /// Milliseconds from claim to verdict.
    pub handling_ms: i64,
}

/// Every verdict on a task, in the order they were given.
pub async fn verdicts(conn: &mut AnyConnection, task_id: &str) -> Result<Vec<VerdictRow>> {
    sqlx::query(
        "SELECT u.username, v.action, v.sku, v.quantity, v.cant_tell, v.note, v.created_at, v.handling_ms \
         FROM verdicts v JOIN users u ON u.id = v.labeler_id WHERE v.task_id = $1 ORDER BY v.created_at, v.id",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| {
        Ok(VerdictRow {
            labeler: r.try_get("username")?,
            action: r.try_get("action")?,
            sku: r.try_get("sku")?,
            quantity: r.try_get("quantity")?,
            cant_tell: r.try_get::<i64, _>("cant_tell")? != 0,
            note: r.try_get("note")?,
            created_at: r.try_get("created_at")?,
            handling_ms: r.try_get("handling_ms")?,
        })
    })
    .collect()
}

/// A task's status column as stored and why it was escalated.
pub async fn status(
    conn: &mut AnyConnection,
    task_id: &str,
) -> Result<Option<(String, Option<String>)>> {
    let Some(r) = sqlx::query("SELECT status, escalation_reason FROM review_tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        r.try_get("status")?,
        r.try_get("escalation_reason")?,
    )))
}

/// Ids of escalated tasks, most urgent first: in queue order (a dispute,
/// then receipt work, then audits), then by deadline.
pub async fn escalated_ids(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<String>> {
    let stores = in_scope("store_id", scope, 2);
    let sql = format!(
        "SELECT id FROM review_tasks WHERE status = '{}'{} ORDER BY priority, deadline_at, created_at LIMIT $1",
        TaskStatus::Escalated,
        stores.sql
    );
    Ok(stores
        .bind(sqlx::query_scalar(&sql).bind(limit))
        .fetch_all(db.reader())
        .await?)
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
        .collect()
}

/// The tasks whose live leases `user_id` holds with their lease ends, oldest
/// claim first.
pub async fn held(conn: &mut AnyConnection, user_id: &str, now: i64) -> Result<Vec<(String, i64)>> {
    sqlx::query(&format!(
        "SELECT t.id, t.lease_expires_at FROM review_tasks t JOIN task_leases l ON l.id = t.lease_id \
         WHERE t.status = '{}' AND t.leased_by = $1 AND t.lease_expires_at > $2 \
         ORDER BY l.claimed_at, t.id",
        TaskStatus::Leased
    ))
    .bind(user_id)
    .bind(now)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("id")?, r.try_get("lease_expires_at")?)))
    .collect()
}

/// A new review task.
#[derive(Debug, Clone, Copy)]
pub struct NewTask<'a> {
    /// Task id.
    pub id: &'a str,
    /// The event's `events.id`.
    pub event_pk: &'a str,
    /// Store id.
    pub store_id: &'a str,
    /// The store's session id.
    pub session_id: &'a str,
    /// Why the event needs a human.
    pub reason: &'a str,
    /// What the task is for.
    pub purpose: TaskPurpose,
    /// Agreeing verdicts needed.
    pub required_verdicts: i64,
    /// `ready`, or `waiting` for its clips.
    pub status: TaskStatus,
    /// Receipt deadline, epoch ms.
    pub deadline_at: i64,
    /// When, epoch ms.
    pub now: i64,
}

/// Opens a review task.
pub async fn insert(tx: &mut Tx, t: &NewTask<'_>) -> Result<()> {
    insert_many(tx, std::slice::from_ref(t)).await
}

/// Opens review tasks, in as few statements as the parameter limit allows.
pub async fn insert_many(tx: &mut Tx, list: &[NewTask<'_>]) -> Result<()> {
    super::bulk::insert_rows(tx, INSERT_TASKS, &task_rows(list), "").await?;
    if list.iter().any(|t| t.status == TaskStatus::Ready) {
        tx.tasks_ready();
    }
    Ok(())
}

/// New tasks as one statement of a [`super::batch::Batch`], which must
/// store every one; a ready one makes the batch announce it.
pub fn insert_stmt(list: &[NewTask<'_>]) -> Stmt {
    let stmt =
        super::bulk::insert_stmt(INSERT_TASKS, &["?"; NEW_TASK_COLUMNS], &task_rows(list), "")
            .expect_rows(list.len() as u64, "a task was not stored");
    if list.iter().any(|t| t.status == TaskStatus::Ready) {
        stmt.makes_ready()
    } else {
        stmt
    }
}

const INSERT_TASKS: &str = "INSERT INTO review_tasks (id, event_pk, store_id, session_id, \
     reason, required_verdicts, status, deadline_at, created_at, updated_at, purpose, priority)";
const NEW_TASK_COLUMNS: usize = 12;

fn task_rows(list: &[NewTask<'_>]) -> Vec<Vec<Val>> {
    list.iter()
        .map(|t| {
            let row = vec![
                Val::Text(t.id.into()),
                Val::Text(t.event_pk.into()),
                Val::Text(t.store_id.into()),
                Val::Text(t.session_id.into()),
                Val::Text(t.reason.into()),
                Val::Int(t.required_verdicts),
                Val::Text(t.status.as_str().into()),
                Val::Int(t.deadline_at),
                Val::Int(t.now),
                Val::Int(t.now),
                Val::Text(t.purpose.as_str().into()),
                Val::Int(t.purpose.priority()),
            ];
            debug_assert_eq!(row.len(), NEW_TASK_COLUMNS);
            row
        })
        .collect()
}

/// Sets a task's status (a task opened before its clips were attached).
pub async fn set_status(tx: &mut Tx, task_id: &str, status: TaskStatus) -> Result<()> {
    sqlx::query("UPDATE review_tasks SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An open task the deadline guarantee looks at, with who could answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRiskRow {
    /// Task id.
    pub id: String,
    /// The task as the rule sees it.
    pub pending: Pending,
    /// The crew active since the window's start, and of them those who
    /// never held the task.
    pub crew: Crew,
}

/// The open real tasks that may be at risk at `now`: `ready` or `waiting`
/// ones whose deadline is before `deadline_before`, and `ready` ones that
/// someone already held or that need more verdicts than the active crew
/// (labelers who claimed anything since `active_since`) can give. Read on
/// the reader pool; whoever escalates one re-checks its state.
pub async fn at_risk_candidates(
    conn: &mut AnyConnection,
    deadline_before: i64,
    active_since: i64,
) -> Result<Vec<AtRiskRow>> {
    let sql = format!(
        "WITH active AS (SELECT DISTINCT labeler_id FROM task_leases WHERE claimed_at > $1) \
         SELECT t.id, t.purpose, t.status, t.deadline_at, t.required_verdicts, t.verdict_count, \
         (SELECT COUNT(*) FROM active) AS active, \
         (SELECT COUNT(*) FROM active a WHERE NOT EXISTS ({held})) AS eligible \
         FROM review_tasks t WHERE t.gold_id IS NULL AND ( \
           (t.status IN ('{ready}', '{waiting}') AND t.deadline_at < $2) \
           OR (t.status = '{ready}' AND EXISTS (SELECT 1 FROM task_leases l WHERE l.task_id = t.id)) \
           OR (t.status = '{ready}' AND t.required_verdicts - t.verdict_count > 1))",
        ready = TaskStatus::Ready,
        waiting = TaskStatus::Waiting,
        held = held_before("t.id", "a.labeler_id"),
    );
    sqlx::query(&sql)
        .bind(active_since)
        .bind(deadline_before)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(AtRiskRow {
                id: r.try_get("id")?,
                pending: Pending {
                    purpose: purpose(&r.try_get::<String, _>("purpose")?)?,
                    status: super::task_status(&r.try_get::<String, _>("status")?)?,
                    deadline_at: r.try_get("deadline_at")?,
                    required_verdicts: r.try_get("required_verdicts")?,
                    verdicts: r.try_get("verdict_count")?,
                },
                crew: Crew {
                    active: r.try_get("active")?,
                    eligible: r.try_get("eligible")?,
                },
            })
        })
        .collect()
}

/// Hands an open task that is still `ready` or `waiting` to supervisors
/// with `reason`; false when it moved on meanwhile (claimed, answered).
pub async fn escalate_open(tx: &mut Tx, task_id: &str, reason: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE review_tasks SET status = '{}', escalation_reason = $1, updated_at = $2 \
         WHERE id = $3 AND status IN ('{}', '{}')",
        TaskStatus::Escalated,
        TaskStatus::Ready,
        TaskStatus::Waiting
    ))
    .bind(reason)
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
