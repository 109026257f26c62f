//! The audit trail's rows: appended in the caller's transaction, read with
//! filters a page at a time, deleted only once past their retention.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{in_scope, new_id, Db, Result};
use crate::domain::audit::{Action, Actor, ActorKind};
use crate::domain::scope::Scope;

/// One thing to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Who did it.
    pub actor: &'a Actor,
    /// What they did.
    pub action: Action,
    /// The store it concerns, if one: who covers that store sees the row.
    pub store_id: Option<&'a str>,
    /// What it was done to: a clip, task, export, session or username.
    pub subject: Option<&'a str>,
    /// The particulars (before and after, counts), a JSON object.
    pub detail: serde_json::Value,
}

/// The row's columns, in the order of `INSERT INTO audit_log (…)`.
const COLUMNS: &str = "id, at, actor_kind, actor_id, actor_name, action, store_id, subject, detail";

/// `query` with a new row of `entry` at `at` bound as `$1` to `$9`.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    at: i64,
    entry: &'q Entry<'_>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(new_id())
        .bind(at)
        .bind(entry.actor.kind.as_str())
        .bind(entry.actor.id.as_deref())
        .bind(&entry.actor.name)
        .bind(entry.action.as_str())
        .bind(entry.store_id)
        .bind(entry.subject)
        .bind(entry.detail.to_string())
}

/// Appends `entry` at `at` on `conn` (the transaction of the change).
pub async fn record(conn: &mut AnyConnection, at: i64, entry: &Entry<'_>) -> Result<()> {
    let sql =
        format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    bind_row(sqlx::query(&sql), at, entry).execute(conn).await?;
    Ok(())
}

/// Records a view of a clip's artifact, unless the same viewer's view of
/// the same artifact (of the same task) was recorded within `window_ms`:
/// the many byte ranges of one playback, and a page's reloads, are one
/// view.
pub async fn record_view(db: &Db, entry: &Entry<'_>, now: i64, window_ms: i64) -> Result<()> {
    let sql = format!(
        "INSERT INTO audit_log ({COLUMNS}) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE NOT EXISTS (SELECT 1 FROM audit_log \
         WHERE subject = $8 AND at > $10 AND action = $6 AND actor_kind = $3 AND actor_id = $4 \
         AND detail = $9)"
    );
    bind_row(sqlx::query(&sql), now, entry)
        .bind(now - window_ms)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Row id (time-ordered).
    pub id: String,
    /// When, epoch ms.
    pub at: i64,
    /// Who: `user`, `store`, `operator` or `system`.
    pub actor_kind: ActorKind,
    /// The user's or store's id.
    pub actor_id: Option<String>,
    /// Their name then.
    pub actor_name: String,
    /// What they did.
    pub action: Action,
    /// The store it concerns.
    pub store_id: Option<String>,
    /// What it was done to.
    pub subject: Option<String>,
    /// The particulars.
    pub detail: serde_json::Value,
}

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after, epoch ms.
    pub from: Option<i64>,
    /// Before, epoch ms.
    pub to: Option<i64>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this actor's (username, store name, `cli` or job name).
    pub actor: Option<String>,
    /// Only this store's.
    pub store_id: Option<String>,
    /// Only rows about this clip, task, export, session or username.
    pub subject: Option<String>,
    /// Rows older than this row id (the next page).
    pub before_id: Option<String>,
}

/// The rows `scope` may see that pass `filter`, newest first, at most
/// `limit`. Rows that concern no store (people's changes) are seen only by
/// those who cover every store.
pub async fn list(db: &Db, scope: &Scope, filter: &Filter, limit: i64) -> Result<Vec<AuditRow>> {
    enum Value<'a> {
        Time(i64),
        Text(&'a str),
    }
    let mut conditions: Vec<(&str, &str, Value<'_>)> = Vec::new();
    if let Some(v) = filter.from {
        conditions.push(("at", ">=", Value::Time(v)));
    }
    if let Some(v) = filter.to {
        conditions.push(("at", "<", Value::Time(v)));
    }
    if let Some(v) = filter.action {
        conditions.push(("action", "=", Value::Text(v.as_str())));
    }
    if let Some(v) = &filter.actor {
        conditions.push(("actor_name", "=", Value::Text(v)));
    }
    if let Some(v) = &filter.store_id {
        conditions.push(("store_id", "=", Value::Text(v)));
    }
    if let Some(v) = &filter.subject {
        conditions.push(("subject", "=", Value::Text(v)));
    }
    if let Some(v) = &filter.before_id {
        conditions.push(("id", "<", Value::Text(v)));
    }
    let mut sql = String::from(
        "SELECT id, at, actor_kind, actor_id, actor_name, action, store_id, subject, detail \
         FROM audit_log WHERE 1 = 1",
    );
    for (i, (column, op, _)) in conditions.iter().enumerate() {
        sql.push_str(&format!(" AND {column} {op} ${}", i + 2));
    }
    let stores = in_scope("store_id", scope, conditions.len() + 2);
    sql.push_str(&stores.sql);
    sql.push_str(" ORDER BY id DESC LIMIT $1");
    let mut query = sqlx::query(&sql).bind(limit);
    for (_, _, value) in &conditions {
        query = match value {
            Value::Time(t) => query.bind(*t),
            Value::Text(t) => query.bind(*t),
        };
    }
    let rows = stores.bind_rows(query).fetch_all(db.reader()).await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    let kind: String = r.try_get("actor_kind")?;
    let action: String = r.try_get("action")?;
    let detail: String = r.try_get("detail")?;
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor_kind: super::state(&kind, ActorKind::parse)?,
        actor_id: r.try_get("actor_id")?,
        actor_name: r.try_get("actor_name")?,
        action: super::state(&action, Action::parse)?,
        store_id: r.try_get("store_id")?,
        subject: r.try_get("subject")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| super::Error::Data(format!("unreadable audit detail: {e}")))?,
    })
}

/// Deletes the rows recorded before `cutoff` (the trail's retention); how
/// many.
pub async fn purge_before(db: &Db, cutoff: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
        .bind(cutoff)
        .execute(db.writer())
        .await?
        .rows_affected())
}
