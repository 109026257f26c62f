//! Training-data exports as background jobs (supervisors): ask for one,
//! watch it, download its files with byte ranges; and each store's switch
//! allowing its data to be used for training (admins).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::queue::ListQuery;
use crate::api::contract::{Binary, JsonDocument};
use crate::db::export::{self as exports, ExportRow, WrittenFile};
use crate::db::users::User;
use crate::domain::export::ExportSpec;
use crate::domain::time::format_rfc3339_ms;
use crate::error::{Code, Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, Json, JsonObject, Path, Query, SupervisorCaller};
use crate::review::exports::{self as review, Deleted};
use crate::AppState;

/// An export job as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Export {
    /// Export id.
    pub export_id: String,
    /// `queued`, `running`, `done`, `failed` or `deleted`.
    pub status: String,
    /// What was asked.
    pub spec: ExportSpec,
    /// Who asked (user id).
    pub created_by: String,
    /// When, RFC 3339.
    pub created_at: String,
    /// Only events resolved at or before this time are in it, RFC 3339.
    pub as_of: String,
    /// When the current (or last) run started.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Events looked at so far.
    pub progress: u64,
    /// Events the database side of the filter keeps (the progress's end).
    pub total: Option<u64>,
    /// Samples written.
    pub samples: u64,
    /// Bytes written (all files).
    pub bytes: u64,
    /// Why it failed, as a stable code: `training-not-allowed` (a store it
    /// reads withdrew its consent) or `export-failed` (anything else, after
    /// retries).
    pub error_code: Option<String>,
    /// Why it failed, for people.
    pub error: Option<String>,
    /// Who deleted it (user id), when deleted.
    pub deleted_by: Option<String>,
    /// When it was deleted, RFC 3339.
    pub deleted_at: Option<String>,
    /// Its files, once done (none once deleted).
    pub files: Vec<ExportFile>,
}

/// A file of a finished export.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportFile {
    /// File name (`manifest.jsonl`, `dataset-card.md`, `train-000000.tar`).
    pub name: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Samples in it (shards and the manifest).
    pub samples: u64,
    /// Where to download it (byte ranges supported).
    pub url: String,
}

impl ExportFile {
    fn new(export_id: &str, f: WrittenFile) -> ExportFile {
        ExportFile {
            url: format!("/api/v1/exports/{export_id}/files/{}", f.name),
            name: f.name,
            bytes: f.bytes,
            sha256: f.sha256,
            samples: f.samples,
        }
    }
}

impl From<ExportRow> for Export {
    fn from(r: ExportRow) -> Export {
        let files = r
            .files
            .into_iter()
            .map(|f| ExportFile::new(&r.export_id, f))
            .collect();
        Export {
            export_id: r.export_id,
            status: r.status.as_str().into(),
            spec: r.spec,
            created_by: r.created_by,
            created_at: format_rfc3339_ms(r.created_at),
            as_of: format_rfc3339_ms(r.as_of),
            started_at: r.started_at.map(format_rfc3339_ms),
            finished_at: r.finished_at.map(format_rfc3339_ms),
            progress: r.progress,
            total: r.total,
            samples: r.samples,
            bytes: r.bytes,
            error_code: r.error_code,
            error: r.error,
            deleted_by: r.deleted_by,
            deleted_at: r.deleted_at.map(format_rfc3339_ms),
            files,
        }
    }
}

/// The export of this id as `user` sees it, if there is one they may see.
async fn export_of(state: &AppState, user: &User, id: &str) -> Result<Option<Export>> {
    Ok(exports::get(&state.db, id)
        .await?
        .filter(|e| e.spec.visible_to(&user.scope))
        .map(Export::from))
}

/// Starts an export of resolved events as a background job (supervisors).
/// Only events resolved by now are in it, however long it takes.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports", security(("bearer" = [])),
    request_body = ExportSpec,
    responses(
        (status = 202, body = Export),
        (status = 422, description = "`invalid-export`, `training-not-allowed`", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    JsonObject(spec): JsonObject<ExportSpec>,
) -> Result<Response> {
    let spec = review::check(&state.db, &user.scope, spec).await?;
    let id = review::create(&state.db, &spec, &user, state.now()).await?;
    let export = export_of(&state, &user, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("export {id} vanished after it was created"))?;
    let mut resp = (StatusCode::ACCEPTED, axum::Json(export)).into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/v1/exports/{id}")).map_err(anyhow::Error::from)?,
    );
    Ok(resp)
}

/// The latest exports, newest first (supervisors).
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<Export>)))]
pub async fn list(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<Export>>> {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let rows = exports::list(&state.db, &user.scope, limit).await?;
    Ok(axum::Json(rows.into_iter().map(Export::from).collect()))
}

/// An export's status, progress and, once done, its files (supervisors).
#[utoipa::path(get, path = "/api/v1/exports/{export_id}", tag = "exports", security(("bearer" = [])),
    params(("export_id" = String, Path)),
    responses(
        (status = 200, body = Export),
        (status = 404, description = "`unknown-export`", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(export_id): Path<String>,
) -> Result<axum::Json<Export>> {
    Ok(axum::Json(
        export_of(&state, &user, &export_id)
            .await?
            .ok_or_else(|| unknown(&export_id))?,
    ))
}

/// Deletes an export (supervisors): its files are removed from storage and
/// no longer listed; a queued export never runs and a running one stops.
/// The record stays, status `deleted`, with who deleted it and when.
/// Deleting a deleted export again changes nothing and answers the same.
#[utoipa::path(delete, path = "/api/v1/exports/{export_id}", tag = "exports", security(("bearer" = [])),
    params(("export_id" = String, Path)),
    responses(
        (status = 200, description = "the export, now `deleted`", body = Export),
        (status = 404, description = "`unknown-export`", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    Path(export_id): Path<String>,
) -> Result<axum::Json<Export>> {
    if export_of(&state, &user, &export_id).await?.is_none() {
        return Err(unknown(&export_id));
    }
    match review::delete(&state.db, &export_id, &user, state.now()).await? {
        Deleted::Unknown => return Err(unknown(&export_id)),
        Deleted::Now => {
            tracing::info!(export = %export_id, by = %user.id, "export deleted");
        }
        Deleted::Already => {}
    }
    // Also on a repeat: a removal that failed halfway is finished now.
    crate::jobs::export::remove_files(&state, &export_id).await;
    Ok(axum::Json(
        export_of(&state, &user, &export_id)
            .await?
            .ok_or_else(|| unknown(&export_id))?,
    ))
}

fn unknown(id: &str) -> Error {
    Error::new(Code::UnknownExport, format!("no export {id:?}"))
}

/// A file of a finished export: `manifest.jsonl`, `dataset-card.md`,
/// `dataset-card.json` or a shard `<split>-<n>.tar` (supervisors; byte
/// ranges supported, so an interrupted download resumes).
#[utoipa::path(get, path = "/api/v1/exports/{export_id}/files/{name}", tag = "exports", security(("bearer" = [])),
    params(("export_id" = String, Path), ("name" = String, Path), ("Range" = Option<String>, Header)),
    responses(
        (status = 200, description = "the file: a shard, the manifest or the dataset card", content(
            (Binary = "application/x-tar"),
            (Binary = "application/x-ndjson"),
            (Binary = "text/markdown; charset=utf-8"),
            (JsonDocument = "application/json"),
            (Binary = "application/octet-stream"),
        )),
        (status = 206, description = "the requested range of the file", content(
            (Binary = "application/x-tar"),
            (Binary = "application/x-ndjson"),
            (Binary = "text/markdown; charset=utf-8"),
            (JsonDocument = "application/json"),
            (Binary = "application/octet-stream"),
        )),
        (status = 404, description = "`unknown-export`, `unknown-export-file` (also while the export runs)", body = ErrorBody),
        (status = 416, description = "`range-not-satisfiable`", body = ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    SupervisorCaller(user): SupervisorCaller,
    method: Method,
    headers: HeaderMap,
    Path((export_id, name)): Path<(String, String)>,
) -> Result<Response> {
    // Someone who covers every store sees every export: only a scoped
    // caller's download reads the export's row first.
    if !user.scope.is_all() && export_of(&state, &user, &export_id).await?.is_none() {
        return Err(unknown(&export_id));
    }
    if !exports::has_file(&state.db, &export_id, &name).await? {
        // Only the name lookup runs on the way to a download; which error
        // it is needs the export.
        if exports::get(&state.db, &export_id).await?.is_none() {
            return Err(unknown(&export_id));
        }
        return Err(Error::new(
            Code::UnknownExportFile,
            format!("export {export_id} has no finished file {name:?}"),
        ));
    }
    let content_type = content_type(&name);
    let (mut resp, _) = super::media::send_blob(
        &state,
        &method,
        &headers,
        &exports::blob_key(&export_id, &name),
        content_type,
        "private, max-age=31536000, immutable",
    )
    .await?;
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .map_err(anyhow::Error::from)?,
    );
    Ok(resp)
}

/// The media type of an export file by its name.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("tar") => "application/x-tar",
        Some("jsonl") => "application/x-ndjson",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether a store's data may be used for training.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingConsent {
    /// True to allow exports of the store's events; false to keep every
    /// later export from including them.
    pub allowed: bool,
}

/// Allows or forbids the use of a store's data for training (admins).
/// Exports started after the change honour it; files already exported are
/// not touched.
#[utoipa::path(put, path = "/api/v1/stores/{store_id}/training", tag = "exports", security(("bearer" = [])),
    params(("store_id" = String, Path)),
    request_body = TrainingConsent,
    responses(
        (status = 200, body = TrainingConsent),
        (status = 404, description = "`unknown-store`", body = ErrorBody),
    ))]
pub async fn put_training(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(store_id): Path<String>,
    Json(body): Json<TrainingConsent>,
) -> Result<axum::Json<TrainingConsent>> {
    let changed = crate::review::admin::set_training(
        &state.db,
        &admin.actor(),
        &store_id,
        body.allowed,
        state.now(),
    )
    .await?;
    if !changed {
        return Err(Error::unknown_store(&store_id));
    }
    Ok(axum::Json(body))
}
