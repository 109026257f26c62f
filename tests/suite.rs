//! Recount's integration tests, in one binary: each file below is a module,
//! so the server and FFmpeg are linked into one test executable instead of
//! one per file (linking dominated the build on two cores). Files that need
//! the `demo` or `bench` build feature are compiled only with it (the test
//! command builds with `--all-features`).

#[macro_use]
mod common;
mod browser;

mod admin_pages;
mod agreement;
mod audit;
mod bad_input;
mod browser_harness;
#[cfg(feature = "demo")]
mod console;
mod console_api;
mod core_loop;
mod dashboard;
mod deadlines;
mod economics;
#[cfg(feature = "bench")]
mod export;
mod gold;
mod ingest_paths;
mod limits;
mod media;
mod media_api;
mod media_worker;
mod multi_process;
mod people;
mod receipts;
mod replay;
mod retention;
mod schema_parity;
mod simulate;
mod staffing;
#[cfg(feature = "bench")]
mod storage_s3;
#[cfg(feature = "bench")]
mod storeday;
#[cfg(feature = "bench")]
mod supervisor;
#[cfg(feature = "demo")]
mod synth;
mod tenancy;
