//! Reading resolved events for the training-data export, page by page, and
//! keeping export jobs (`exports`, `export_files`).
//!
//! Row I/O only: the checks of a spec, the job that runs an export and the
//! transaction that finishes one are [`crate::review::exports`]'s.
//!
//! Pages are keyset-paginated by event id (UUIDv7, so roughly time order)
//! in short read transactions: memory stays bounded by the page size, and no
//! transaction is held open while shards are written. An export only sees
//! events resolved at or before its `as_of` time, so what it contains does
//! not depend on how fast it ran.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row};

use super::rollup::{label, verdict_answer};
use super::{new_id, placeholders, Db, Error, Result, Tx};
use crate::domain::export::{Candidate, EventFacts, ExportSpec, Filter, Resolution, SampleClip};
use crate::domain::lifecycle::{ClipStatus, EventStatus, ExportStatus, RouteName};
use crate::domain::scope::Scope;
use crate::domain::Label;

/// A bind value of a built query.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// The `WHERE` conditions of a filter on `events e` joined with `stores s`,
/// with their binds from `$first`.
fn conditions(filter: &Filter, as_of: i64, first: usize) -> (String, Vec<Bind>) {
    let mut sql = format!(
        "e.status = '{}' AND e.route NOT IN ({}) AND s.training_allowed = 1 \
         AND e.resolved_at <= $",
        EventStatus::Resolved,
        super::sql_list(&RouteName::MADE)
    );
    let mut binds = vec![Bind::Int(as_of)];
    sql.push_str(&first.to_string());
    let mut list = |sql: &mut String, column: &str, values: Vec<String>| {
        if values.is_empty() {
            return;
        }
        let at = first + binds.len();
        sql.push_str(&format!(
            " AND {column} IN ({})",
            placeholders(at, values.len())
        ));
        binds.extend(values.into_iter().map(Bind::Text));
    };
    list(&mut sql, "e.store_id", filter.stores.clone());
    list(&mut sql, "e.model_version", filter.model_versions.clone());
    list(
        &mut sql,
        "e.resolution",
        filter
            .resolutions
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    );
    if let Some(from) = filter.from_ms {
        sql.push_str(&format!(" AND e.occurred_at >= ${}", first + binds.len()));
        binds.push(Bind::Int(from));
    }
    if let Some(to) = filter.to_ms {
        sql.push_str(&format!(" AND e.occurred_at < ${}", first + binds.len()));
        binds.push(Bind::Int(to));
    }
    (sql, binds)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// Of `stores`, those that are unknown or do not allow training use: an
/// export naming one is refused rather than silently empty.
pub async fn refused_stores(db: &Db, stores: &[String]) -> Result<Vec<String>> {
    let mut conn = db.reader().acquire().await?;
    refused_in(&mut conn, stores, "").await
}

/// [`refused_stores`] on `conn`, reading each store's row with `lock`
/// appended (a row lock inside a transaction, or nothing).
pub async fn refused_in(
    conn: &mut sqlx::AnyConnection,
    stores: &[String],
    lock: &str,
) -> Result<Vec<String>> {
    let sql = format!("SELECT training_allowed FROM stores WHERE id = $1{lock}");
    let mut refused = Vec::new();
    for id in stores {
        let allowed: Option<i64> = sqlx::query_scalar(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if allowed != Some(1) {
            refused.push(id.clone());
        }
    }
    Ok(refused)
}

/// Events the database side of the filter keeps (before the agreement and
/// hard-example conditions): the progress bar's total.
pub async fn count(db: &Db, filter: &Filter, as_of: i64) -> Result<u64> {
    let (cond, binds) = conditions(filter, as_of, 1);
    let sql =
        format!("SELECT COUNT(*) FROM events e JOIN stores s ON s.id = e.store_id WHERE {cond}");
    let n: i64 = bind_all(sqlx::query(&sql), &binds)
        .fetch_one(db.reader())
        .await?
        .try_get(0)?;
    Ok(n as u64)
}

/// Up to `limit` events after `after` (by id) that the filter's database
/// conditions keep, with their verdicts, clips and gold flag. `tx` is a
/// snapshot ([`Db::begin_snapshot`]): every statement of the page sees the
/// database as of one instant.
pub async fn page(
    tx: &mut Tx,
    filter: &Filter,
    as_of: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<EventFacts>> {
    let (cond, mut binds) = conditions(filter, as_of, 1);
    binds.push(Bind::Text(after.unwrap_or("").to_string()));
    let sql = format!(
        "SELECT e.id, e.event_id, e.store_id, e.session_id, e.kind, e.quantity, e.occurred_at, \
         e.resolved_at, e.model_version, e.candidates, e.clips, e.top_sku, e.top_confidence, \
         e.route_reason, e.final_action, e.final_sku, e.final_quantity, e.resolution \
         FROM events e JOIN stores s ON s.id = e.store_id WHERE {cond} AND e.id > ${} \
         ORDER BY e.id LIMIT {limit}",
        binds.len()
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(&mut **tx)
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut clip_ids: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    for r in &rows {
        let resolution: String = r.try_get("resolution")?;
        let candidates: Vec<Candidate> =
            serde_json::from_str(&r.try_get::<String, _>("candidates")?)?;
        clip_ids.push(serde_json::from_str(&r.try_get::<String, _>("clips")?)?);
        events.push(EventFacts {
            id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            store_id: r.try_get("store_id")?,
            session_id: r.try_get("session_id")?,
            kind: r.try_get("kind")?,
            quantity: r.try_get("quantity")?,
            occurred_at: r.try_get("occurred_at")?,
            resolved_at: r.try_get("resolved_at")?,
            model_version: r.try_get("model_version")?,
            candidates,
            top_sku: r.try_get("top_sku")?,
            top_confidence: r.try_get("top_confidence")?,
            review_reason: r.try_get("route_reason")?,
            label: label(
                r.try_get("final_action")?,
                r.try_get("final_sku")?,
                r.try_get("final_quantity")?,
            )?,
            resolution: Resolution::parse(&resolution).ok_or_else(|| {
                Error::Data(format!("stored resolution {resolution:?} is unknown"))
            })?,
            verdicts: Vec::new(),
            gold: false,
            clips: Vec::new(),
            clip_videos: Vec::new(),
        });
    }
    if events.is_empty() {
        return Ok(events);
    }
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let mut verdicts = verdicts_of(tx, &ids).await?;
    let gold = gold_sources(tx, &ids).await?;
    let all_clips: BTreeSet<&str> = clip_ids.iter().flatten().map(String::as_str).collect();
    let clips = clips_by_id(tx, &all_clips.into_iter().collect::<Vec<_>>()).await?;
    for (e, ids) in events.iter_mut().zip(clip_ids) {
        e.verdicts = verdicts.remove(&e.id).unwrap_or_default();
        e.gold = gold.contains(&e.id);
        for (clip, video) in ids.iter().filter_map(|id| clips.get(id)) {
            e.clips.push(SampleClip {
                event_offset_ms: clip.window_from_ms.map(|from| e.occurred_at - from),
                ..clip.clone()
            });
            e.clip_videos.push(video.clone());
        }
    }
    Ok(events)
}

async fn verdicts_of(
    conn: &mut AnyConnection,
    event_ids: &[&str],
) -> Result<BTreeMap<String, Vec<Option<Label>>>> {
    let sql = format!(
        "SELECT t.event_pk, v.action, v.sku, v.quantity, v.cant_tell FROM review_tasks t \
         JOIN verdicts v ON v.task_id = t.id WHERE t.event_pk IN ({}) ORDER BY v.created_at, v.id",
        placeholders(1, event_ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in event_ids {
        q = q.bind(*id);
    }
    let mut out: BTreeMap<String, Vec<Option<Label>>> = BTreeMap::new();
    for r in q.fetch_all(conn).await? {
        out.entry(r.try_get("event_pk")?)
            .or_default()
            .push(verdict_answer(&r)?);
    }
    Ok(out)
}

async fn gold_sources(conn: &mut AnyConnection, event_ids: &[&str]) -> Result<BTreeSet<String>> {
    let sql = format!(
        "SELECT DISTINCT t.event_pk FROM gold_tasks g JOIN review_tasks t ON t.id = g.source_task_id \
         WHERE t.event_pk IN ({})",
        placeholders(1, event_ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in event_ids {
        q = q.bind(*id);
    }
    q.fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

/// Clips by id, each with the blob key of its playable video (when ready).
/// An uploaded clip covers `[started_at, started_at + duration)`; a cut of
/// footage has its window.
async fn clips_by_id(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<BTreeMap<String, (SampleClip, Option<String>)>> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "SELECT id, camera_id, status, video_key, COALESCE(window_from, started_at) AS window_from, \
         COALESCE(window_to, started_at + duration_ms) AS window_to, duration_ms, width, height, \
         frame_rate FROM clips WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    let mut out = BTreeMap::new();
    for r in q.fetch_all(conn).await? {
        let ready =
            ClipStatus::parse(&r.try_get::<String, _>("status")?) == Some(ClipStatus::Ready);
        let video_key: Option<String> = r.try_get("video_key")?;
        out.insert(
            r.try_get("id")?,
            (
                SampleClip {
                    clip_id: r.try_get("id")?,
                    camera_id: r.try_get("camera_id")?,
                    file: None,
                    bytes: None,
                    window_from_ms: r.try_get("window_from")?,
                    window_to_ms: r.try_get("window_to")?,
                    event_offset_ms: None,
                    duration_ms: r.try_get("duration_ms")?,
                    width: r.try_get("width")?,
                    height: r.try_get("height")?,
                    frame_rate: r.try_get("frame_rate")?,
                },
                video_key.filter(|_| ready),
            ),
        );
    }
    Ok(out)
}

/// An export job's row, with its files once done.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// Export id.
    pub export_id: String,
    /// Its state.
    pub status: ExportStatus,
    /// What was asked.
    pub spec: ExportSpec,
    /// Who asked (user id).
    pub created_by: String,
    /// When, epoch ms.
    pub created_at: i64,
    /// Only events resolved at or before this time are in it, epoch ms.
    pub as_of: i64,
    /// When the current (or last) run started.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Events looked at so far.
    pub progress: u64,
    /// Events the database side of the filter keeps (the progress's end).
    pub total: Option<u64>,
    /// Samples written.
    pub samples: u64,
    /// Bytes written (all files).
    pub bytes: u64,
    /// Why it failed, as a stable code ([`ERROR_REFUSED`], [`ERROR_FAILED`]).
    pub error_code: Option<String>,
    /// Why it failed, for people.
    pub error: Option<String>,
    /// Who deleted it (user id), when deleted.
    pub deleted_by: Option<String>,
    /// When it was deleted, epoch ms.
    pub deleted_at: Option<i64>,
    /// Its files in order, once done (none once deleted).
    pub files: Vec<WrittenFile>,
}

/// The blob key of an export's file.
pub fn blob_key(export_id: &str, name: &str) -> String {
    format!("exports/{export_id}/{name}")
}

/// Records a new export, `queued`; its id.
pub async fn insert(tx: &mut Tx, spec: &ExportSpec, user_id: &str, now: i64) -> Result<String> {
    let id = new_id();
    sqlx::query(&format!(
        "INSERT INTO exports (id, status, spec, created_by, created_at, as_of, progress, samples, bytes) \
         VALUES ($1, '{}', $2, $3, $4, $4, 0, 0, 0)",
        ExportStatus::Queued
    ))
    .bind(&id)
    .bind(serde_json::to_string(spec)?)
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// An export by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<ExportRow>> {
    let row = sqlx::query(
        "SELECT id, status, spec, created_by, created_at, as_of, started_at, finished_at, progress, \
         total, samples, bytes, error_code, error, deleted_by, deleted_at FROM exports WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut export = from_row(&row)?;
    if export.status == ExportStatus::Done {
        export.files = files(db, id).await?;
    }
    Ok(Some(export))
}

/// The latest exports `scope` may see, newest first.
pub async fn list(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<ExportRow>> {
    // Which stores an export reads is in its spec's JSON: a scoped caller's
    // exports are picked out here, from every export (they are few).
    let rows = sqlx::query(
        "SELECT id, status, spec, created_by, created_at, as_of, started_at, finished_at, progress, \
         total, samples, bytes, error_code, error, deleted_by, deleted_at FROM exports ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(if scope.is_all() { limit } else { i64::MAX })
    .fetch_all(db.reader())
    .await?;
    let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    out.retain(|e| e.spec.visible_to(scope));
    out.truncate(usize::try_from(limit).unwrap_or(0));
    // The files of all the done ones in one query.
    let done: Vec<&str> = out
        .iter()
        .filter(|e| e.status == ExportStatus::Done)
        .map(|e| e.export_id.as_str())
        .collect();
    let mut by_export = files_of(db, &done).await?;
    for e in &mut out {
        e.files = by_export.remove(&e.export_id).unwrap_or_default();
    }
    Ok(out)
}

/// A stored export spec; unreadable JSON is stored data no row accepts.
fn spec_of(json: &str) -> Result<ExportSpec> {
    serde_json::from_str(json)
        .map_err(|e| Error::Data(format!("stored export spec is unreadable: {e}")))
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<ExportRow> {
    Ok(ExportRow {
        export_id: r.try_get("id")?,
        status: super::state(&r.try_get::<String, _>("status")?, ExportStatus::parse)?,
        spec: spec_of(&r.try_get::<String, _>("spec")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        as_of: r.try_get("as_of")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        progress: r.try_get::<i64, _>("progress")? as u64,
        total: r.try_get::<Option<i64>, _>("total")?.map(|t| t as u64),
        samples: r.try_get::<i64, _>("samples")? as u64,
        bytes: r.try_get::<i64, _>("bytes")? as u64,
        error_code: r.try_get("error_code")?,
        error: r.try_get("error")?,
        deleted_by: r.try_get("deleted_by")?,
        deleted_at: r.try_get("deleted_at")?,
        files: Vec::new(),
    })
}

async fn files(db: &Db, export_id: &str) -> Result<Vec<WrittenFile>> {
    Ok(files_of(db, &[export_id])
        .await?
        .remove(export_id)
        .unwrap_or_default())
}

/// The files of these exports, in order, by export.
async fn files_of(db: &Db, export_ids: &[&str]) -> Result<BTreeMap<String, Vec<WrittenFile>>> {
    let mut out: BTreeMap<String, Vec<WrittenFile>> = BTreeMap::new();
    if export_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT export_id, name, bytes, sha256, samples FROM export_files \
         WHERE export_id IN ({}) ORDER BY export_id, position",
        placeholders(1, export_ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in export_ids {
        q = q.bind(*id);
    }
    for r in q.fetch_all(db.reader()).await? {
        let export_id: String = r.try_get("export_id")?;
        out.entry(export_id).or_default().push(WrittenFile {
            name: r.try_get("name")?,
            bytes: r.try_get::<i64, _>("bytes")? as u64,
            sha256: r.try_get("sha256")?,
            samples: r.try_get::<i64, _>("samples")? as u64,
        });
    }
    Ok(out)
}

/// Whether a done export has a file of this name.
pub async fn has_file(db: &Db, export_id: &str, name: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT f.bytes FROM export_files f JOIN exports x ON x.id = f.export_id \
         WHERE f.export_id = $1 AND f.name = $2 AND x.status = '{}'",
        ExportStatus::Done
    ))
    .bind(export_id)
    .bind(name)
    .fetch_optional(db.reader())
    .await?;
    Ok(found.is_some())
}

/// A run of an export by one worker.
#[derive(Debug, Clone)]
pub struct Run {
    /// What to export.
    pub spec: ExportSpec,
    /// Events resolved at or before this time.
    pub as_of: i64,
    /// This run's token: progress and the finish count only while the
    /// export is still this run's (a worker that lost its lease and was
    /// taken over stops at its next report).
    pub run_id: String,
}

/// Marks an export running for a new run (one after a crash starts over:
/// files are rewritten whole); `None` when it is already done or failed.
pub async fn start(db: &Db, id: &str, now: i64) -> Result<Option<Run>> {
    let run_id = new_id();
    let row = sqlx::query(&format!(
        "UPDATE exports SET status = '{}', run_id = $1, started_at = $2, progress = 0, \
         samples = 0, bytes = 0, error = NULL WHERE id = $3 AND status IN ('{}', '{}') \
         RETURNING spec, as_of",
        ExportStatus::Running,
        ExportStatus::Queued,
        ExportStatus::Running
    ))
    .bind(&run_id)
    .bind(now)
    .bind(id)
    .fetch_optional(db.writer())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let spec = spec_of(&row.try_get::<String, _>("spec")?)?;
    sqlx::query("DELETE FROM export_files WHERE export_id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(Some(Run {
        spec,
        as_of: row.try_get("as_of")?,
        run_id,
    }))
}

/// Progress of a running export; false when the export is no longer this
/// run's (taken over, or deleted).
pub async fn progress(
    db: &Db,
    id: &str,
    run_id: &str,
    progress: u64,
    total: u64,
    samples: u64,
    bytes: u64,
) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE exports SET progress = $1, total = $2, samples = $3, bytes = $4 \
         WHERE id = $5 AND run_id = $6 AND status = '{}'",
        ExportStatus::Running
    ))
    .bind(progress as i64)
    .bind(total as i64)
    .bind(samples as i64)
    .bind(bytes as i64)
    .bind(id)
    .bind(run_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A file written to blob storage (an `export_files` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Name inside the export.
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Samples in it.
    pub samples: u64,
}

/// Takes a running export's row for finishing, if it is still this run's;
/// false when it is not. Taking the row first (a write lock) keeps a
/// concurrent run out.
pub async fn take_for_finish(tx: &mut Tx, id: &str, run_id: &str, now: i64) -> Result<bool> {
    let mine = sqlx::query(&format!(
        "UPDATE exports SET finished_at = $1 WHERE id = $2 AND run_id = $3 AND status = '{}'",
        ExportStatus::Running
    ))
    .bind(now)
    .bind(id)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(mine.rows_affected() > 0)
}

/// Records an export's files in order and marks it done.
pub async fn mark_done(
    tx: &mut Tx,
    id: &str,
    files: &[WrittenFile],
    samples: u64,
    now: i64,
) -> Result<()> {
    for (position, f) in files.iter().enumerate() {
        sqlx::query(
            "INSERT INTO export_files (export_id, name, position, bytes, sha256, samples) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&f.name)
        .bind(position as i64)
        .bind(f.bytes as i64)
        .bind(&f.sha256)
        .bind(f.samples as i64)
        .execute(&mut **tx)
        .await?;
    }
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    sqlx::query(&format!(
        "UPDATE exports SET status = '{}', finished_at = $1, samples = $2, bytes = $3 WHERE id = $4",
        ExportStatus::Done
    ))
    .bind(now)
    .bind(samples as i64)
    .bind(bytes as i64)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `error_code` of an export that read a store no longer allowing training use.
pub const ERROR_REFUSED: &str = "training-not-allowed";
/// `error_code` of an export that failed for any other reason, after retries.
pub const ERROR_FAILED: &str = "export-failed";

/// Marks an export failed with a code and a reason its requester can read
/// (a done or deleted export stays so).
pub async fn fail(db: &Db, id: &str, code: &str, error: &str, now: i64) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE exports SET status = '{}', finished_at = $1, error_code = $2, error = $3 \
         WHERE id = $4 AND status NOT IN ('{}', '{}')",
        ExportStatus::Failed,
        ExportStatus::Done,
        ExportStatus::Deleted
    ))
    .bind(now)
    .bind(code)
    .bind(error)
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Marks an export deleted unless it already is; false when no row
/// changed (deleted before, or no such export). Taking the run token away
/// stops a running run at its next progress report (it cannot finish
/// either).
pub async fn mark_deleted(tx: &mut Tx, id: &str, user_id: &str, now: i64) -> Result<bool> {
    let marked = sqlx::query(&format!(
        "UPDATE exports SET status = '{}', run_id = NULL, deleted_by = $1, deleted_at = $2 \
         WHERE id = $3 AND status <> '{}'",
        ExportStatus::Deleted,
        ExportStatus::Deleted
    ))
    .bind(user_id)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(marked.rows_affected() > 0)
}

/// Whether an export of this id exists, in any state.
pub async fn exists(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM exports WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(exists.is_some())
}

/// Forgets an export's files (their rows; the blobs are the caller's);
/// how many there were.
pub async fn delete_files(tx: &mut Tx, id: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM export_files WHERE export_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// What an export was asked for.
pub async fn spec_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<ExportSpec>> {
    let spec: Option<String> = sqlx::query_scalar("SELECT spec FROM exports WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    spec.as_deref().map(spec_of).transpose()
}

/// Whether an export was deleted (a run that stops checks it to clean up).
pub async fn is_deleted(db: &Db, id: &str) -> Result<bool> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM exports WHERE id = $1")
        .bind(id)
        .fetch_optional(db.writer())
        .await?;
    Ok(status.as_deref().and_then(ExportStatus::parse) == Some(ExportStatus::Deleted))
}
