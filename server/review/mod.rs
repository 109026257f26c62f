//! The use cases of review: what a store, a labeler or a supervisor asks
//! for, each as one function that owns its transaction.
//!
//! This layer sits between the HTTP edge (`api/`, `web/`) and storage
//! (`db/`). It
//! * opens and commits the transaction of every request, taking locks in
//!   the one order the whole server uses (a session before its task,
//!   [`locks`]);
//! * asks the pure rules of `domain` what a request changes, and has `db`
//!   store it;
//! * decides what a missing row or a refused transition means for the
//!   caller (an [`crate::error::Error`] with its registry code; the HTTP
//!   status stays the edge's);
//! * enqueues the jobs a change calls for, and records metrics only after
//!   the commit that made them true.
//!
//! `db/` below it reads and writes rows and knows none of this.

pub mod admin;
pub mod dashboard;
pub mod disputes;
pub mod exports;
pub mod gold;
pub mod ingest;
pub mod locks;
pub mod media;
pub mod queue;
pub mod receipts;
pub mod replay;
pub mod retention;
pub mod rollup;
pub mod staffing;
