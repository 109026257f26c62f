//! The database job queue: durable, leased, retried with backoff.
//!
//! A job is taken by setting a lease; a worker that dies leaves the lease to
//! expire and another worker takes the job over. Nothing is lost on a crash
//! because nothing is held only in memory. What a job is (its kind and
//! payload) and how it retries are decided in [`crate::domain::job`]; this
//! module only stores it.

use sqlx::Row;

use super::{new_id, Db, Result, Tx};
use crate::domain::job::{JobKind, JobStatus};

/// A job taken by a worker.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// What to do: a [`JobKind::KIND`], e.g. `receipt-webhook`.
    pub kind: String,
    /// The kind's payload as JSON.
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i64,
    /// The store whose work it is, if any.
    pub store_id: Option<String>,
}

/// Adds a job of kind `K` to run at `run_at`, inside the caller's
/// transaction, so the job exists exactly when the change that needs it
/// does. `store_id` is the store whose work it is, which [`take_due`]
/// serves in turn with the others.
pub async fn enqueue<K: JobKind>(
    tx: &mut Tx,
    payload: &K,
    store_id: Option<&str>,
    run_at: i64,
    now: i64,
) -> Result<String> {
    let payload = serde_json::to_string(payload)?;
    let id = new_id();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at, updated_at, store_id) \
         VALUES ($1, $2, $3, $4, 0, $5, $6, $6, $7)",
    )
    .bind(&id)
    .bind(K::KIND)
    .bind(payload)
    .bind(JobStatus::Queued.as_str())
    .bind(run_at)
    .bind(now)
    .bind(store_id)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Adds a job of kind `K` under the id `id` unless a job of that id exists
/// (whatever its state): every instance can ask for the day's run, and
/// exactly one job is made. Whether this call made it.
pub async fn enqueue_once<K: JobKind>(
    db: &Db,
    id: &str,
    payload: &K,
    run_at: i64,
    now: i64,
) -> Result<bool> {
    let payload = serde_json::to_string(payload)?;
    let made = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(K::KIND)
    .bind(payload)
    .bind(JobStatus::Queued.as_str())
    .bind(run_at)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(made.rows_affected() == 1)
}

/// Takes the next due job of one of `kinds` (or one whose worker's lease
/// ran out; the attempt that worker made counts), fairly across stores:
/// among the due jobs, those of the store served longest ago first (a job
/// of no store, or of a store never served, first of all), then by
/// `run_at`. The caller records the store's turn ([`record_turn`]) in the
/// same transaction.
pub async fn take_due(tx: &mut Tx, kinds: &[&str], now: i64, lease_ms: i64) -> Result<Option<Job>> {
    let sql = format!(
        "UPDATE jobs SET attempts = CASE WHEN status = '{running}' THEN attempts + 1 ELSE attempts END, \
         status = '{running}', lease_expires_at = $1, updated_at = $2 \
         WHERE id = (SELECT j.id FROM jobs j WHERE ((j.status = '{queued}' AND j.run_at <= $2) \
         OR (j.status = '{running}' AND j.lease_expires_at <= $2)) AND j.kind IN ({kinds}) \
         ORDER BY COALESCE((SELECT t.last_taken_at FROM job_turns t WHERE t.store_id = j.store_id), 0), \
         j.run_at, j.created_at, j.id LIMIT 1{skip_locked}) \
         RETURNING id, kind, payload, attempts, store_id",
        running = JobStatus::Running,
        queued = JobStatus::Queued,
        kinds = super::placeholders(3, kinds.len()),
        skip_locked = tx.backend().skip_locked()
    );
    let mut query = sqlx::query(&sql).bind(now + lease_ms).bind(now);
    for kind in kinds {
        query = query.bind(*kind);
    }
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|r| {
        Ok(Job {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            payload: r.try_get("payload")?,
            attempts: r.try_get("attempts")?,
            store_id: r.try_get("store_id")?,
        })
    })
    .transpose()
}

/// Records that a job of `store_id` was taken at `now`: the store goes to
/// the back of the turn order.
pub async fn record_turn(tx: &mut Tx, store_id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_turns (store_id, last_taken_at) VALUES ($1, $2) \
         ON CONFLICT (store_id) DO UPDATE SET last_taken_at = excluded.last_taken_at",
    )
    .bind(store_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Extends the lease of a running job whose worker is still at it.
pub async fn extend(db: &Db, id: &str, until: i64) -> Result<()> {
    sqlx::query("UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND status = $3")
        .bind(until)
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Marks a job done.
pub async fn complete(db: &Db, id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = $1, attempts = attempts + 1, lease_expires_at = NULL, \
                 last_error = NULL, updated_at = $2 WHERE id = $3",
    )
    .bind(JobStatus::Done.as_str())
    .bind(now)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Records a failed attempt: the job runs again at `retry_at`, or is dead
/// (kept with its error) when `retry_at` is `None`.
pub async fn fail(db: &Db, id: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<()> {
    let status = if retry_at.is_some() {
        JobStatus::Queued
    } else {
        JobStatus::Dead
    };
    sqlx::query(
        "UPDATE jobs SET status = $1, attempts = attempts + 1, run_at = COALESCE($2, run_at), \
         lease_expires_at = NULL, last_error = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(retry_at)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// State of a job, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// Next run.
    pub run_at: i64,
}

/// Jobs of a kind, oldest first.
pub async fn list(db: &Db, kind: &str) -> Result<Vec<JobState>> {
    let rows = sqlx::query(
        "SELECT status, attempts, last_error, run_at FROM jobs WHERE kind = $1 ORDER BY created_at",
    )
    .bind(kind)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(JobState {
                status: super::state(&status, JobStatus::parse)?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                run_at: r.try_get("run_at")?,
            })
        })
        .collect()
}

/// A delivery to a store: one receipt webhook job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The job's id, which is the delivery's `webhook-id`.
    pub id: String,
    /// What it delivers (the job's payload).
    pub payload: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: i64,
    /// Its next attempt (queued), or when it last changed.
    pub run_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A store's jobs of `kind`, newest first, at most `limit`; only those of
/// `status` when given.
pub async fn of_store(
    db: &Db,
    store_id: &str,
    kind: &str,
    status: Option<JobStatus>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT id, payload, status, attempts, last_error, created_at, run_at, updated_at FROM jobs \
         WHERE store_id = $1 AND kind = $2{} ORDER BY created_at DESC, id DESC LIMIT $3",
        if status.is_some() { " AND status = $4" } else { "" }
    );
    let rows = sqlx::query(&sql).bind(store_id).bind(kind).bind(limit);
    let rows = match status {
        Some(s) => rows.bind(s.as_str()),
        None => rows,
    }
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(Delivery {
                id: r.try_get("id")?,
                payload: r.try_get("payload")?,
                status: super::state(&status, JobStatus::parse)?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                run_at: r.try_get("run_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Queues a dead job of a store again, its attempts counted afresh; false
/// when it is not a dead job of that store and kind.
pub async fn revive(tx: &mut Tx, id: &str, store_id: &str, kind: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE jobs SET status = '{queued}', attempts = 0, run_at = $1, lease_expires_at = NULL, \
         updated_at = $1 WHERE id = $2 AND store_id = $3 AND kind = $4 AND status = '{dead}'",
        queued = JobStatus::Queued,
        dead = JobStatus::Dead,
    ))
    .bind(now)
    .bind(id)
    .bind(store_id)
    .bind(kind)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The status of a store's job of `kind`, if it exists.
pub async fn status_of(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    store_id: &str,
    kind: &str,
) -> Result<Option<JobStatus>> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 AND store_id = $2 AND kind = $3")
            .bind(id)
            .bind(store_id)
            .bind(kind)
            .fetch_optional(conn)
            .await?;
    status
        .map(|s| super::state(&s, JobStatus::parse))
        .transpose()
}
