//! Pure rules of the review loop: no I/O, no clock, no randomness of their own.
//!
//! Everything here is decided from values passed in, so the rules are tested
//! exhaustively with plain unit tests and the database layer only stores what
//! these functions decide.

pub mod audit;
pub mod calibration;
pub mod charge;
pub mod code;
pub mod consensus;
pub mod dashboard;
pub mod dispute;
pub mod event;
pub mod export;
pub mod figures;
pub mod gold;
pub mod histogram;
pub mod job;
pub mod label;
pub mod lifecycle;
pub mod person;
pub mod proxy;
pub mod ratelimit;
pub mod receipt;
pub mod recommend;
pub mod retention;
pub mod rollup;
pub mod routing;
pub mod scope;
pub mod stats;
pub mod time;
pub mod whole;

pub use label::{Action, Label};
