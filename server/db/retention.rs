//! Rows of video retention and erasure: which clips and recordings are past
//! their store's retention or show a shopper who asked to be erased; marking
//! them erased; and the blobs of erased rows still to delete, forgotten one
//! by one once gone. Marking comes first and in a transaction, so a crash
//! between it and the deletions leaves rows that say what is still to
//! delete: the next run finishes them.

use sqlx::{AnyConnection, Row};

use super::{placeholders, sql_list, Result, Tx, IN_LIST_MAX};
use crate::domain::lifecycle::{ClipStatus, FootageStatus, PosterStatus, TaskStatus};

/// The clips of `store_id` past retention at `cutoff` (epoch ms): received
/// before it, and every shopper's receipt they show finalized before it;
/// none that a task still open shows (a dispute reviews them). Oldest
/// first, at most `limit`.
pub async fn expired_clips(
    conn: &mut AnyConnection,
    store_id: &str,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT c.id FROM clips c WHERE c.store_id = $1 AND c.erased_at IS NULL \
         AND c.status IN ({settled}) AND c.created_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM clip_sessions cs LEFT JOIN receipts r \
           ON r.store_id = cs.store_id AND r.session_id = cs.session_id \
           WHERE cs.clip_id = c.id AND (r.finalized_at IS NULL OR r.finalized_at >= $2)) \
         AND NOT EXISTS (SELECT 1 FROM task_clips tc JOIN review_tasks t ON t.id = tc.task_id \
           WHERE tc.clip_id = c.id AND t.status IN ({open})) \
         ORDER BY c.created_at, c.id LIMIT $3",
        settled = sql_list(&[ClipStatus::Ready, ClipStatus::Failed]),
        open = sql_list(&TaskStatus::OPEN),
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(store_id)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// The recordings of `store_id` past retention at `cutoff`: received before
/// it, and every clip cut from them erased. At most `limit`.
pub async fn expired_footage(
    conn: &mut AnyConnection,
    store_id: &str,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT f.id FROM footage f WHERE f.store_id = $1 AND f.erased_at IS NULL \
         AND f.status = '{}' AND f.created_at < $2 \
         AND NOT EXISTS (SELECT 1 FROM clips c WHERE c.footage_id = f.id AND c.erased_at IS NULL) \
         ORDER BY f.created_at, f.id LIMIT $3",
        FootageStatus::Ready,
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(store_id)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// The clips not yet erased that show a shopper's session, and the
/// recordings not yet erased that any of them was cut from.
pub async fn session_media(
    conn: &mut AnyConnection,
    store_id: &str,
    session_id: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let rows = sqlx::query(
        "SELECT c.id, c.footage_id FROM clip_sessions cs JOIN clips c ON c.id = cs.clip_id \
         WHERE cs.store_id = $1 AND cs.session_id = $2 AND c.erased_at IS NULL ORDER BY c.id",
    )
    .bind(store_id)
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut clips = Vec::new();
    let mut footage = Vec::new();
    for r in &rows {
        clips.push(r.try_get::<String, _>("id")?);
        if let Some(f) = r.try_get::<Option<String>, _>("footage_id")? {
            if !footage.contains(&f) {
                footage.push(f);
            }
        }
    }
    let mut live = Vec::new();
    for f in footage {
        let erased: Option<Option<i64>> =
            sqlx::query_scalar("SELECT erased_at FROM footage WHERE id = $1")
                .bind(&f)
                .fetch_optional(&mut *conn)
                .await?;
        if matches!(erased, Some(None)) {
            live.push(f);
        }
    }
    Ok((clips, live))
}

/// Marks clips erased (their blobs are deleted next): their posters too,
/// and the gold tasks made from a task showing one are retired (a gold
/// copy could no longer be shown). How many clips were marked.
pub async fn mark_clips(tx: &mut Tx, ids: &[String], now: i64) -> Result<u64> {
    let mut marked = 0;
    for chunk in ids.chunks(IN_LIST_MAX) {
        let list = placeholders(2, chunk.len());
        let sql = format!(
            "UPDATE clips SET status = '{}', erased_at = $1, updated_at = $1 \
             WHERE erased_at IS NULL AND id IN ({list})",
            ClipStatus::Erased
        );
        let mut q = sqlx::query(&sql).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        marked += q.execute(&mut **tx).await?.rows_affected();
        let sql = format!(
            "UPDATE task_clips SET poster_status = '{}' WHERE clip_id IN ({})",
            PosterStatus::Erased,
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut **tx).await?;
        let sql = format!(
            "UPDATE gold_tasks SET active = 0, retired_at = $1 WHERE active = 1 \
             AND source_task_id IN (SELECT task_id FROM task_clips WHERE clip_id IN ({list}))"
        );
        let mut q = sqlx::query(&sql).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(marked)
}

/// Marks recordings erased (their blobs are deleted next); how many.
pub async fn mark_footage(tx: &mut Tx, ids: &[String], now: i64) -> Result<u64> {
    let mut marked = 0;
    for chunk in ids.chunks(IN_LIST_MAX) {
        let sql = format!(
            "UPDATE footage SET status = '{}', erased_at = $1 WHERE erased_at IS NULL AND id IN ({})",
            FootageStatus::Erased,
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        marked += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(marked)
}

/// A blob of erased media still to delete, and the row that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A clip's own blobs: its upload (not a cut's, which is the
    /// recording's), browser MP4 and filmstrip.
    Clip {
        /// Clip id.
        id: String,
        /// Its blob keys.
        keys: Vec<String>,
    },
    /// A poster of a task's clip.
    Poster {
        /// Task id.
        task_id: String,
        /// Clip id.
        clip_id: String,
        /// Its blob key.
        key: String,
    },
    /// A recording's upload.
    Footage {
        /// Recording id.
        id: String,
        /// Its blob key.
        key: String,
    },
}

/// Blobs of erased rows not deleted yet (a run or request cut short, or
/// media just marked), at most `limit` of each kind, with the store each
/// belongs to.
pub async fn leftovers(conn: &mut AnyConnection, limit: i64) -> Result<Vec<(String, Leftover)>> {
    let mut out = Vec::new();
    let rows = sqlx::query(
        "SELECT id, store_id, CASE WHEN footage_id IS NULL THEN source_key END AS own_source, \
         video_key, filmstrip_key FROM clips WHERE erased_at IS NOT NULL \
         AND (source_key IS NOT NULL OR video_key IS NOT NULL OR filmstrip_key IS NOT NULL) LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        let keys = ["own_source", "video_key", "filmstrip_key"]
            .iter()
            .map(|c| r.try_get::<Option<String>, _>(*c))
            .collect::<std::result::Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        out.push((
            r.try_get("store_id")?,
            Leftover::Clip {
                id: r.try_get("id")?,
                keys,
            },
        ));
    }
    let rows = sqlx::query(
        "SELECT tc.task_id, tc.clip_id, tc.poster_key, c.store_id FROM task_clips tc \
         JOIN clips c ON c.id = tc.clip_id \
         WHERE c.erased_at IS NOT NULL AND tc.poster_key IS NOT NULL LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        out.push((
            r.try_get("store_id")?,
            Leftover::Poster {
                task_id: r.try_get("task_id")?,
                clip_id: r.try_get("clip_id")?,
                key: r.try_get("poster_key")?,
            },
        ));
    }
    let rows = sqlx::query(
        "SELECT id, store_id, source_key FROM footage \
         WHERE erased_at IS NOT NULL AND source_key <> '' LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        out.push((
            r.try_get("store_id")?,
            Leftover::Footage {
                id: r.try_get("id")?,
                key: r.try_get("source_key")?,
            },
        ));
    }
    Ok(out)
}

/// Forgets the keys of a leftover whose blobs are deleted.
pub async fn forget(conn: &mut AnyConnection, leftover: &Leftover) -> Result<()> {
    match leftover {
        Leftover::Clip { id, .. } => {
            sqlx::query(
                "UPDATE clips SET source_key = NULL, video_key = NULL, filmstrip_key = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(conn)
            .await?;
        }
        Leftover::Poster {
            task_id, clip_id, ..
        } => {
            sqlx::query(
                "UPDATE task_clips SET poster_key = NULL WHERE task_id = $1 AND clip_id = $2",
            )
            .bind(task_id)
            .bind(clip_id)
            .execute(conn)
            .await?;
        }
        Leftover::Footage { id, .. } => {
            sqlx::query("UPDATE footage SET source_key = '' WHERE id = $1")
                .bind(id)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Each store's id and retention in days.
pub async fn store_retention(conn: &mut AnyConnection) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT id, media_retention_days FROM stores ORDER BY id")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("media_retention_days")?)))
        .collect()
}

/// The exports that may hold copies of a store's video: done (not
/// deleted), with video, of that store (or of every store), reading events
/// resolved up to a time at or after `since`. Retention and erasure list
/// them; they do not touch exported files.
pub async fn exports_with_copies(
    conn: &mut AnyConnection,
    store_id: &str,
    since: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(&format!(
        "SELECT id, spec FROM exports WHERE status = '{}' AND as_of >= $1 ORDER BY created_at",
        crate::domain::lifecycle::ExportStatus::Done
    ))
    .bind(since)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let spec: String = r.try_get("spec")?;
        let spec: crate::domain::export::ExportSpec = serde_json::from_str(&spec)?;
        let stores = &spec.filter.stores;
        if spec.include_video && (stores.is_empty() || stores.iter().any(|s| s == store_id)) {
            out.push(r.try_get("id")?);
        }
    }
    Ok(out)
}
