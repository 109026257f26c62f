//! `recount bench export`: training-data export throughput (samples/s and
//! MB/s) against `tar` packing the very same files in the same run; and the
//! seeding of resolved events with clips that the bench and the large
//! export test share.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::bench_actor;
use super::fresh::{engine_version, with_fresh_db, Fresh};
use super::report::{median, round2, Machine};
use super::seed::{bulk_connection, insert_labelers, sku, CATALOG_SIZE};
use super::{backend_name, backends, BackendChoice};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::bulk::{insert_rows, Val};
use crate::db::{new_id, Backend, Db};
use crate::domain::export::ExportSpec;
use crate::domain::lifecycle::{ClipStatus, EventStatus, RouteName, TaskStatus};
use crate::export::{run as run_export, Destination};
use crate::review::admin;
use crate::storage::Blobs;

/// Events of one shopper session.
const EVENTS_PER_SESSION: usize = 5;
/// Events written per seeding transaction.
const EVENTS_PER_TX: usize = 5_000;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Resolved events (samples) of a store that allows training use.
    pub samples: usize,
    /// Resolved events of a second store that does not (never exported).
    pub forbidden: usize,
    /// Distinct video blobs the clips point at (one per sample at most).
    pub videos: usize,
    /// The bytes of each video blob (a real MP4).
    pub video: Vec<u8>,
}

/// What was seeded.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    /// The store whose events are exported.
    pub store_id: String,
    /// The store that forbids training use.
    pub forbidden_store_id: String,
    /// Samples of the allowed store.
    pub samples: u64,
    /// Sessions of the allowed store.
    pub sessions: u64,
    /// Of the samples, the ones people corrected.
    pub hard: u64,
}

/// Seeds resolved events with one clip each, in sessions of five: three in
/// four auto-accepted, the rest reviewed with one verdict (a third of
/// them correcting the model) or, for audit samples, two.
pub async fn seed(
    db: &Db,
    url: &str,
    blobs: &Blobs,
    spec: &SeedSpec,
    now: i64,
) -> anyhow::Result<Seeded> {
    let allowed = admin::create_store(db, &bench_actor(), "Export store", None, now)
        .await?
        .store
        .id;
    admin::set_training(db, &bench_actor(), &allowed, true, now).await?;
    let forbidden = admin::create_store(db, &bench_actor(), "Private store", None, now)
        .await?
        .store
        .id;
    let videos = spec.videos.clamp(1, spec.samples.max(1));
    for v in 0..videos {
        blobs.put_bytes(&video_key(v), spec.video.clone()).await?;
    }
    let mut conn = bulk_connection(url).await?;
    let labelers: Vec<String> = insert_labelers(&mut conn, 2, now)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(6);
    let mut seeded = Seeded {
        store_id: allowed.clone(),
        forbidden_store_id: forbidden.clone(),
        ..Seeded::default()
    };
    let (mut events, mut clips, mut tasks, mut verdicts) = (vec![], vec![], vec![], vec![]);
    let total = spec.samples + spec.forbidden;
    // Every event resolved (30 s after it occurred) a minute before `now`.
    let start = now - total as i64 * 1_000 - 90_000;
    for i in 0..total {
        let (store, n) = if i < spec.samples {
            (&allowed, i)
        } else {
            (&forbidden, i - spec.samples)
        };
        let t = start + i as i64 * 1_000;
        let session = format!("s-{}", n / EVENTS_PER_SESSION);
        let top = rng.gen_range(0..CATALOG_SIZE);
        let u: f64 = rng.gen();
        let (route, reason, resolution, confidence) = if u < 0.75 {
            (
                RouteName::AutoAccepted.as_str(),
                None,
                "auto",
                rng.gen_range(0.9..1.0),
            )
        } else if u < 0.95 {
            (
                RouteName::Review.as_str(),
                Some("low-confidence"),
                "human",
                rng.gen_range(0.3..0.9),
            )
        } else if u < 0.98 {
            (
                RouteName::Review.as_str(),
                Some("audit-sample"),
                "human",
                rng.gen_range(0.9..1.0),
            )
        } else {
            (
                RouteName::Review.as_str(),
                Some("audit-sample"),
                "supervisor",
                rng.gen_range(0.9..1.0),
            )
        };
        let corrected = reason == Some("low-confidence") && rng.gen::<f64>() < 1.0 / 3.0;
        let final_sku = if corrected { sku(top + 1) } else { sku(top) };
        if store == &allowed {
            seeded.samples += 1;
            seeded.hard += u64::from(corrected);
            if n % EVENTS_PER_SESSION == 0 {
                seeded.sessions += 1;
            }
        }
        let event_pk = new_id();
        let clip_id = new_id();
        clips.push(vec![
            Val::Text(clip_id.clone()),
            Val::Text(store.clone()),
            Val::Text("shelf-1".into()),
            Val::Text(ClipStatus::Ready.as_str().into()),
            Val::Text(video_key(i % videos)),
            Val::Int(t - 2_000),
            Val::Int(t + 2_000),
            Val::Int(spec.video.len() as i64),
            Val::Int(4_000),
            Val::Int(t),
            Val::Int(t),
        ]);
        let mut event = vec![
            Val::Text(event_pk.clone()),
            Val::Text(store.clone()),
            Val::Text(format!("ev-{n}")),
            Val::Text(session.clone()),
            Val::Text("pick".into()),
            Val::Int(1),
            Val::Int(t),
            Val::Text(format!(
                r#"[{{"sku":"{}","confidence":{confidence}}},{{"sku":"{}","confidence":{}}}]"#,
                sku(top),
                sku(top + 1),
                (1.0 - confidence) / 2.0
            )),
            Val::Text(format!(r#"["{clip_id}"]"#)),
            Val::Text(if n % 2 == 0 { "m-1" } else { "m-2" }.into()),
            Val::Text(sku(top)),
            Val::Real(confidence),
            Val::Text(route.into()),
            Val::Text(reason.unwrap_or("").into()),
            Val::Text(EventStatus::Resolved.as_str().into()),
            Val::Text("pick".into()),
            Val::Text(final_sku.clone()),
            Val::Int(1),
            Val::Text(resolution.into()),
            Val::Text(format!("h-{i}")),
            Val::Int(t),
            Val::Int(t + 30_000),
        ];
        if reason.is_none() {
            // Auto-accepted events have no review reason: NULL, not "".
            event.remove(13);
            events.push((false, event));
        } else {
            events.push((true, event));
            let task_id = new_id();
            let audit = reason == Some("audit-sample");
            tasks.push(vec![
                Val::Text(task_id.clone()),
                Val::Text(event_pk),
                Val::Text(store.clone()),
                Val::Text(session),
                Val::Text(reason.unwrap_or_default().into()),
                Val::Int(if audit { 2 } else { 1 }),
                Val::Text(TaskStatus::Resolved.as_str().into()),
                Val::Int(t + 600_000),
                Val::Int(t),
                Val::Int(if audit { 2 } else { 1 }),
                Val::Int(t + 30_000),
                Val::Int(t + 30_000),
            ]);
            let answers: Vec<String> = match (audit, resolution) {
                (false, _) => vec![final_sku],
                (true, "human") => vec![final_sku.clone(), final_sku],
                _ => vec![final_sku, sku(top + 2)],
            };
            for (k, answer) in answers.into_iter().enumerate() {
                verdicts.push(vec![
                    Val::Text(new_id()),
                    Val::Text(task_id.clone()),
                    Val::Text(labelers[k].clone()),
                    Val::Text(new_id()),
                    Val::Text("pick".into()),
                    Val::Text(answer),
                    Val::Int(1),
                    Val::Int(0),
                    Val::Int(t + 10_000 + k as i64),
                    Val::Int(8_000),
                ]);
            }
        }
        if events.len() == EVENTS_PER_TX || i + 1 == total {
            write(
                &mut conn,
                &mut events,
                &mut clips,
                &mut tasks,
                &mut verdicts,
            )
            .await?;
        }
    }
    sqlx::Connection::close(conn).await?;
    Ok(seeded)
}

/// The blob key of seeded video `v`.
fn video_key(v: usize) -> String {
    format!("bench-export/video-{v:07}.mp4")
}

async fn write(
    conn: &mut sqlx::AnyConnection,
    events: &mut Vec<(bool, Vec<Val>)>,
    clips: &mut Vec<Vec<Val>>,
    tasks: &mut Vec<Vec<Val>>,
    verdicts: &mut Vec<Vec<Val>>,
) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    insert_rows(
        &mut tx,
        "INSERT INTO clips (id, store_id, camera_id, status, video_key, window_from, window_to, \
         size_bytes, duration_ms, created_at, updated_at)",
        clips,
        "",
    )
    .await?;
    let head = |reason: bool| {
        format!(
            "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, \
             candidates, clips, model_version, top_sku, top_confidence, route, {}status, \
             final_action, final_sku, final_quantity, resolution, request_hash, created_at, resolved_at)",
            if reason { "route_reason, " } else { "" }
        )
    };
    for reviewed in [false, true] {
        let rows: Vec<Vec<Val>> = events
            .iter()
            .filter(|(r, _)| *r == reviewed)
            .map(|(_, row)| row.clone())
            .collect();
        insert_rows(&mut tx, &head(reviewed), &rows, "").await?;
    }
    insert_rows(
        &mut tx,
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, \
         status, deadline_at, created_at, verdict_count, resolved_at, updated_at)",
        tasks,
        "",
    )
    .await?;
    insert_rows(
        &mut tx,
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, \
         cant_tell, created_at, handling_ms)",
        verdicts,
        "",
    )
    .await?;
    tx.commit().await?;
    events.clear();
    clips.clear();
    tasks.clear();
    verdicts.clear();
    Ok(())
}

/// Options of `recount bench export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Engine(s) to measure (default: the one --database-url names).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Samples exported (each with its own clip file).
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Seconds of the generated clip each sample carries.
    #[arg(long, default_value_t = 2)]
    pub clip_seconds: u32,
    /// Runs of each side; the figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Seeds, exports, and packs the same files with `tar`, on each engine.
pub async fn run(args: &ExportArgs, config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.samples > 0, "--samples must be at least 1");
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let machine = Machine::observe();
    let work = Work::new()?;
    let clip = work.path().join("clip.mp4");
    make_clip(&clip, args.clip_seconds)?;
    let video = std::fs::read(&clip)?;
    let mut results = Vec::new();
    for backend in backends(args.backend, config)? {
        println!(
            "recount bench export ({}): {} samples with a {} byte clip each; {} runs",
            backend_name(backend),
            args.samples,
            video.len(),
            args.runs
        );
        let video = video.clone();
        let dir = work.path().to_path_buf();
        results.push(
            with_fresh_db(backend, config, |fresh| {
                phase(fresh, args, backend, video, dir)
            })
            .await?,
        );
    }
    println!("\n{}", machine.describe());
    println!(
        "{:<9} {:>9} {:>11} {:>9} {:>11} {:>9} {:>7}",
        "engine", "samples", "samples/s", "MB/s", "tar MB/s", "tar/s", "ratio"
    );
    for r in &results {
        println!(
            "{:<9} {:>9} {:>11.0} {:>9.1} {:>11.1} {:>9.2} {:>7.2}",
            r["engine"].as_str().unwrap_or(""),
            r["samples"],
            r["samples_per_s"].as_f64().unwrap_or(0.0),
            r["mb_per_s"].as_f64().unwrap_or(0.0),
            r["tar_mb_per_s"].as_f64().unwrap_or(0.0),
            r["tar_s"].as_f64().unwrap_or(0.0),
            r["ratio"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "{}",
        json!({"bench": "export", "machine": machine.to_json(), "results": results})
    );
    Ok(())
}

/// A real H.264 clip from the ffmpeg CLI's test pattern.
fn make_clip(path: &Path, seconds: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate=15:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(path)
        .status()
        .context("running ffmpeg (is it installed?)")?;
    anyhow::ensure!(status.success(), "ffmpeg could not make the bench clip");
    Ok(())
}

async fn phase(
    fresh: Fresh,
    args: &ExportArgs,
    backend: Backend,
    video: Vec<u8>,
    work: std::path::PathBuf,
) -> anyhow::Result<serde_json::Value> {
    let db = &fresh.db;
    let blobs_dir = work.join(format!("blobs-{}", backend_name(backend)));
    let blobs = Blobs::local(&blobs_dir)?;
    let now = SystemClock.now_ms();
    eprintln!("{}: seeding…", backend_name(backend));
    let seeded = seed(
        db,
        &fresh.url,
        &blobs,
        &SeedSpec {
            samples: args.samples,
            forbidden: 0,
            videos: args.samples,
            video,
        },
        now,
    )
    .await?;
    sqlx::raw_sql("ANALYZE").execute(db.writer()).await?;
    let spec = ExportSpec::default();
    let (mut export_s, mut tar_s) = (Vec::new(), Vec::new());
    let (mut bytes, mut samples) = (0u64, 0u64);
    for run in 0..args.runs {
        let out = work.join(format!("out-{}-{run}", backend_name(backend)));
        let started = Instant::now();
        let summary = run_export(
            db,
            &blobs,
            &spec,
            now + 1,
            &Destination::Dir(out.clone()),
            |_| async { Ok(()) },
        )
        .await?;
        export_s.push(started.elapsed().as_secs_f64());
        bytes = summary.bytes();
        samples = summary.card.samples;
        // The baseline: the same members (unpacked from the shards) packed
        // by tar into one archive.
        let members = work.join(format!("members-{}", backend_name(backend)));
        if run == 0 {
            std::fs::create_dir_all(&members)?;
            for f in &summary.files {
                if f.name.ends_with(".tar") {
                    tar(&[
                        "-xf",
                        &out.join(&f.name).to_string_lossy(),
                        "-C",
                        &members.to_string_lossy(),
                    ])?;
                }
            }
            // The manifest goes into the archive too, as it does into the export.
            std::fs::copy(
                out.join(crate::export::MANIFEST),
                members.join(crate::export::MANIFEST),
            )?;
        }
        let archive = work.join("baseline.tar");
        let started = Instant::now();
        tar(&[
            "-cf",
            &archive.to_string_lossy(),
            "-C",
            &members.to_string_lossy(),
            ".",
        ])?;
        tar_s.push(started.elapsed().as_secs_f64());
        std::fs::remove_file(&archive)?;
        std::fs::remove_dir_all(&out)?;
    }
    let (export_s, tar_s) = (median(&export_s), median(&tar_s));
    let mb = bytes as f64 / 1e6;
    anyhow::ensure!(
        samples == seeded.samples,
        "exported {samples} of {} samples",
        seeded.samples
    );
    Ok(json!({
        "engine": backend_name(backend),
        "engine_version": engine_version(db).await?,
        "samples": samples,
        "bytes": bytes,
        "export_s": round2(export_s),
        "samples_per_s": round2(samples as f64 / export_s),
        "mb_per_s": round2(mb / export_s),
        "tar_s": round2(tar_s),
        "tar_mb_per_s": round2(mb / tar_s),
        "ratio": round2(tar_s / export_s),
    }))
}

/// The bench's scratch directory under the system's temporary directory,
/// removed when the bench ends.
struct Work(std::path::PathBuf);

impl Work {
    fn new() -> anyhow::Result<Work> {
        let dir = std::env::temp_dir().join(format!("recount-bench-export-{}", new_id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Work(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tar(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("tar")
        .args(args)
        .status()
        .context("running tar")?;
    anyhow::ensure!(status.success(), "tar {args:?} failed");
    Ok(())
}
