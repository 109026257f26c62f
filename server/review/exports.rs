//! Training-data exports: asking for one (its spec checked against the
//! stores it names, the job that runs it enqueued), a run's progress and
//! finish (counted only while the export is still that run's, refused when
//! a store it read withdrew its consent), and deletion.
//!
//! The job that runs an export is `jobs::export`; the files it writes are
//! the export writer's (`crate::export`).

use crate::db::export::{self as store, WrittenFile};
use crate::db::users::User;
use crate::db::{audit, jobs, Db};
use crate::domain::audit::Action;
use crate::domain::export::ExportSpec;
use crate::domain::job::RunExport;
use crate::domain::scope::Scope;
use crate::error::{Code, Error, Result};

/// Validates a spec against the stores it names (422 `invalid-export`,
/// 422 `training-not-allowed`).
/// A supervisor who does not cover every store exports from their own
/// stores only: a spec naming none names theirs that allow training; a
/// store outside their scope is refused as if it did not exist. The spec
/// to record.
pub async fn check(db: &Db, scope: &Scope, spec: ExportSpec) -> Result<ExportSpec> {
    spec.validate()
        .map_err(|m| Error::new(Code::InvalidExport, m))?;
    let mut spec = spec;
    if let Some(own) = scope.stores() {
        if spec.filter.stores.is_empty() {
            let own: Vec<String> = own.iter().cloned().collect();
            let refused = store::refused_stores(db, &own).await?;
            spec.filter.stores = own.into_iter().filter(|s| !refused.contains(s)).collect();
            if spec.filter.stores.is_empty() {
                return Err(Error::new(
                    Code::TrainingNotAllowed,
                    "none of the stores you cover allows its data to be used for training",
                ));
            }
            return Ok(spec);
        }
    }
    let mut refused = store::refused_stores(db, &spec.filter.stores).await?;
    for s in &spec.filter.stores {
        if !scope.sees(s) && !refused.contains(s) {
            refused.push(s.clone());
        }
    }
    if !refused.is_empty() {
        return Err(Error::new(
            Code::TrainingNotAllowed,
            format!(
                "store(s) {} are unknown or do not allow their data to be used for training",
                refused.join(", ")
            ),
        ));
    }
    Ok(spec)
}

/// The store an export's audit row is filed under: its one store, if it
/// names exactly one; a row about several (or every) store is seen by
/// those who cover every store.
fn audited_store(spec: &ExportSpec) -> Option<&str> {
    match spec.filter.stores.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// Records an export, the job that runs it and its audit row, in one
/// transaction; its id.
pub async fn create(db: &Db, spec: &ExportSpec, user: &User, now: i64) -> Result<String> {
    let mut tx = db.begin().await?;
    let id = store::insert(&mut tx, spec, &user.id, now).await?;
    let entry = audit::Entry {
        actor: &user.actor(),
        action: Action::ExportCreated,
        store_id: audited_store(spec),
        subject: Some(&id),
        detail: serde_json::json!({"spec": spec}),
    };
    audit::record(&mut tx, now, &entry).await?;
    jobs::enqueue(
        &mut tx,
        &RunExport {
            export_id: id.clone(),
        },
        None,
        now,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Records in the audit trail an export written by `recount export` into
/// the directory `out` (it makes no export row: its files are the
/// operator's).
pub async fn record_cli_export(db: &Db, spec: &ExportSpec, out: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let entry = audit::Entry {
        actor: &crate::domain::audit::Actor::operator(),
        action: Action::ExportCreated,
        store_id: audited_store(spec),
        subject: Some(out),
        detail: serde_json::json!({"spec": spec}),
    };
    audit::record(&mut tx, now, &entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Error of a run that another worker took over.
fn taken_over(id: &str) -> Error {
    anyhow::anyhow!("export {id} was taken over by another run").into()
}

/// Progress of a running export; an error when the run was taken over.
pub async fn progress(
    db: &Db,
    id: &str,
    run_id: &str,
    progress: u64,
    total: u64,
    samples: u64,
    bytes: u64,
) -> Result<()> {
    if !store::progress(db, id, run_id, progress, total, samples, bytes).await? {
        return Err(taken_over(id));
    }
    Ok(())
}

/// What finishing an export found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Marked done with its files.
    Done,
    /// Not marked: these stores, whose events it holds, no longer allow
    /// training use.
    Refused(Vec<String>),
}

/// Marks an export done with its files, if it is still this run's and every
/// store whose events it holds (`stores`) still allows training use. The
/// stores' rows are read in the same transaction, share-locked on PostgreSQL, so
/// consent withdrawn at the last moment is either seen here or comes after
/// the export is done.
pub async fn finish(
    db: &Db,
    id: &str,
    run_id: &str,
    stores: &[String],
    files: &[WrittenFile],
    samples: u64,
    now: i64,
) -> Result<Finish> {
    let mut tx = db.begin().await?;
    // Taking the row first (a write lock) keeps a concurrent run out.
    if !store::take_for_finish(&mut tx, id, run_id, now).await? {
        return Err(taken_over(id));
    }
    // Shared row locks: a concurrent withdrawal waits for this commit (the
    // export was done before it), while ingest into the stores goes on.
    let lock = tx.backend().for_share();
    let refused = store::refused_in(&mut tx, stores, lock).await?;
    if !refused.is_empty() {
        return Ok(Finish::Refused(refused));
    }
    store::mark_done(&mut tx, id, files, samples, now).await?;
    tx.commit().await?;
    Ok(Finish::Done)
}

/// What deleting an export found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It was queued, running, done or failed and is now deleted: its files
    /// are no longer listed and a run still going stops at its next report.
    Now,
    /// It had been deleted before.
    Already,
    /// No such export.
    Unknown,
}

/// Marks an export deleted and forgets its files, in one transaction; the
/// caller removes the blobs. Taking the run token away stops a running run
/// at its next progress report (it cannot finish either).
pub async fn delete(db: &Db, id: &str, user: &User, now: i64) -> Result<Deleted> {
    let mut tx = db.begin().await?;
    if !store::mark_deleted(&mut tx, id, &user.id, now).await? {
        return Ok(if store::exists(&mut tx, id).await? {
            Deleted::Already
        } else {
            Deleted::Unknown
        });
    }
    let files = store::delete_files(&mut tx, id).await?;
    let spec = store::spec_by_id(&mut tx, id).await?;
    let entry = audit::Entry {
        actor: &user.actor(),
        action: Action::ExportDeleted,
        store_id: spec.as_ref().and_then(audited_store),
        subject: Some(id),
        detail: serde_json::json!({"files": files}),
    };
    audit::record(&mut tx, now, &entry).await?;
    tx.commit().await?;
    Ok(Deleted::Now)
}
