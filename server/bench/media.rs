//! `recount bench media`: our media work (FFmpeg 5.1 through `ffmpeg-next`,
//! run in a `recount media-worker` process as the server runs it, or with
//! `--in-process` on the bench's own thread) next to the `ffmpeg` CLI doing
//! the same work on the same file, in one run on one machine, and 1 MiB range requests for a clip's
//! video over loopback HTTP against the real app, measured with `wrk`.
//!
//! Inputs are generated at run time with the CLI (lavfi `testsrc2`) in a
//! temporary directory that is removed afterwards; nothing is downloaded.
//! Every figure is the median of `--repeat` runs after one warm-up run, with
//! our run and the CLI's alternating which goes first.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rand::Rng as _;
use serde_json::{json, Value};

use super::bench_actor;
use super::fresh::{with_fresh_db, Fresh};
use super::report::{median, round2, verdict};
use super::server::{self, Server};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::clips::{self, Processed};
use crate::db::{new_id, Backend};
use crate::media::{
    self, Cancel, CutAccuracy, Decode, Made, MediaLimits, MediaResult, MediaRunner, Method,
    Operation, Window, X264_CRF, X264_PRESET,
};
use crate::review::admin;
use crate::review::media as review;

/// Most our keyframe cut may take, as a share of the CLI's stream copy.
const TARGET_CUT_RATIO: f64 = 0.5;
/// Most our filmstrip may take, as a share of one full CLI decode.
const TARGET_FILMSTRIP_RATIO: f64 = 0.05;
/// Most our transcode may take, as a share of the CLI's with the same settings.
const TARGET_TRANSCODE_RATIO: f64 = 1.05;
/// Most a 1080p poster may take, in milliseconds.
const TARGET_POSTER_MS: f64 = 100.0;
/// Least range-serving throughput per core of server CPU, in GB/s.
const TARGET_RANGE_GBPS_PER_CORE: f64 = 1.0;

/// Size of one range request.
const MIB: u64 = 1 << 20;
/// Length of the H.264 source, in seconds.
const SOURCE_SECONDS: u32 = 20;
/// Keyframe interval of the H.264 source, in frames (2 s at 30 fps).
const SOURCE_GOP: u32 = 60;
/// The window cut out of the H.264 source, in ms (keyframes at 4 s and 12 s).
const CUT_WINDOW: (i64, i64) = (5_000, 12_000);
/// Poster instants: one second into a GOP (the typical case), on a keyframe,
/// and on the last frame of a GOP (the worst case).
const POSTER_MID_GOP_MS: i64 = 7_000;
const POSTER_KEYFRAME_MS: i64 = 6_000;
const POSTER_GOP_END_MS: i64 = 7_967;
/// The job's poster width (`POSTER_WIDTH` in jobs/media.rs).
const POSTER_WIDTH: u32 = 960;
/// The job's filmstrip tile width (`TILE_WIDTH` in jobs/media.rs).
const TILE_WIDTH: u32 = 160;
/// Seconds the raw-read baseline reads ranges for.
const RAW_READ_SECONDS: f64 = 3.0;

/// Options of `recount bench media`.
#[derive(Args, Debug, Clone)]
pub struct MediaArgs {
    /// Runs of each measurement (after one warm-up run); figures are medians.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Seconds of the 1080p MJPEG clip transcoded (both sides encode every
    /// frame on one thread, so this sets most of the bench's run time).
    #[arg(long, default_value_t = 10)]
    pub transcode_seconds: u32,
    /// Seconds `wrk` fetches ranges for.
    #[arg(long, default_value_t = 10)]
    pub range_seconds: u32,
    /// `wrk` connections.
    #[arg(long, default_value_t = 4)]
    pub connections: u32,
    /// `wrk` threads.
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: u32,
    /// Least size of the served MP4, in MiB (the source looped, stream copy).
    #[arg(long, default_value_t = 64)]
    pub range_file_mib: u64,
    /// Runs our side on the bench's own thread instead of in a media worker
    /// process (the work alone, without the hop to the worker).
    #[arg(long)]
    pub in_process: bool,
    /// Runs only these measurements (keys as in the JSON line, comma
    /// separated, e.g. `poster,poster_gop_end`; `range_serving` for the HTTP
    /// part). All when not given.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

impl MediaArgs {
    /// Whether the measurement `key` is to run.
    fn runs(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k == key)
    }
}

/// Runs every measurement and prints a table and, last, one JSON line.
pub async fn run(args: &MediaArgs, config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    anyhow::ensure!(
        (1..=300).contains(&args.transcode_seconds),
        "--transcode-seconds must be between 1 and 300"
    );
    anyhow::ensure!(args.range_seconds > 0, "--range-seconds must be at least 1");
    anyhow::ensure!(
        args.connections > 0 && args.wrk_threads > 0 && args.wrk_threads <= args.connections,
        "--connections and --wrk-threads must be at least 1, threads at most connections"
    );
    anyhow::ensure!(
        args.range_file_mib >= 2,
        "--range-file-mib must be at least 2"
    );
    let cli_version = tool_version("ffmpeg", &["-hide_banner", "-version"])
        .context("the ffmpeg CLI is needed (Debian package ffmpeg)")?;
    let wrk_version = tool_version("wrk", &["-v"]).context("wrk is needed (Debian package wrk)")?;
    let start = Snapshot::take();
    println!(
        "recount bench media: ours (FFmpeg via ffmpeg-next, {}) vs the ffmpeg CLI on the same \
         files; medians of {} run(s) after a warm-up",
        if args.in_process {
            "in process"
        } else {
            "in a media worker process"
        },
        args.repeat
    );
    println!("ffmpeg CLI: {cli_version}; wrk: {wrk_version}");
    println!("{}", start.describe("at start"));

    let dir = TempDir::new()?;
    let limits = crate::media_limits(config);
    let inputs = {
        let (dir, args) = (dir.0.clone(), args.clone());
        tokio::task::spawn_blocking(move || Inputs::generate(&dir, &args)).await??
    };
    let side = OurSide {
        runner: (!args.in_process)
            .then(|| -> anyhow::Result<MediaRunner> {
                let runner = MediaRunner::new(limits.clone())
                    .with_workers(crate::media_worker_command(config)?);
                runner.warm()?;
                Ok(runner)
            })
            .transpose()?,
        handle: tokio::runtime::Handle::current(),
        limits: limits.clone(),
        cancel: Cancel::new(),
    };
    let cases = {
        let (dir, args, inputs) = (dir.0.clone(), args.clone(), inputs.clone());
        let tiles = config.filmstrip_frames;
        tokio::task::spawn_blocking(move || measure_all(&dir, &args, &inputs, &side, tiles))
            .await??
    };
    let ranges = if args.runs("range_serving") {
        eprintln!("range serving…");
        Some(
            with_fresh_db(Backend::Sqlite, config, |fresh| {
                range_phase(fresh, config, args, &inputs, &dir.0)
            })
            .await?,
        )
    } else {
        None
    };
    let end = Snapshot::take();

    let x264 = x264_settings(&limits);
    print_table(&cases, ranges.as_ref(), &inputs, &limits, &x264);
    println!("{}", start.describe("at start"));
    println!("{}", end.describe("at end"));
    let facts = Facts {
        start: &start,
        end: &end,
        cli_version: &cli_version,
        x264: &x264,
    };
    println!(
        "{}",
        to_json(args, &cases, ranges.as_ref(), &inputs, &facts)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Inputs

/// The generated files and what they are.
#[derive(Debug, Clone)]
struct Inputs {
    /// 1920×1080 30 fps H.264 yuv420p, keyframe every 2 s, moov at the end.
    h264: PathBuf,
    /// 1920×1080 30 fps MJPEG in Matroska: needs a transcode.
    mjpeg: PathBuf,
    /// The H.264 source looped (stream copy) to at least `--range-file-mib`,
    /// moov first: what processing makes of a browser-ready upload.
    served: PathBuf,
    h264_bytes: u64,
    mjpeg_bytes: u64,
    served_bytes: u64,
    transcode_seconds: u32,
}

impl Inputs {
    fn generate(dir: &Path, args: &MediaArgs) -> anyhow::Result<Inputs> {
        let h264 = dir.join("h264-1080p30-gop60.mp4");
        let mjpeg = dir.join("mjpeg-1080p30.mkv");
        let served = dir.join("served.mp4");
        let testsrc = "testsrc2=size=1920x1080:rate=30";
        eprintln!("generating a {SOURCE_SECONDS} s 1080p H.264 source…");
        ffmpeg(&strings(&[
            "-f",
            "lavfi",
            "-i",
            testsrc,
            "-t",
            &SOURCE_SECONDS.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &SOURCE_GOP.to_string(),
            "-keyint_min",
            &SOURCE_GOP.to_string(),
            "-sc_threshold",
            "0",
            &path_arg(&h264)?,
        ]))?;
        if args.runs("transcode") {
            eprintln!(
                "generating a {} s 1080p MJPEG source…",
                args.transcode_seconds
            );
            ffmpeg(&strings(&[
                "-f",
                "lavfi",
                "-i",
                testsrc,
                "-t",
                &args.transcode_seconds.to_string(),
                "-c:v",
                "mjpeg",
                "-q:v",
                "4",
                "-pix_fmt",
                "yuvj420p",
                &path_arg(&mjpeg)?,
            ]))?;
        }
        let h264_bytes = std::fs::metadata(&h264)?.len();
        if args.runs("range_serving") {
            let loops = (args.range_file_mib * MIB)
                .div_ceil(h264_bytes.max(1))
                .max(1);
            eprintln!("generating the served MP4 ({loops} × the H.264 source, stream copy)…");
            ffmpeg(&strings(&[
                "-stream_loop",
                &(loops - 1).to_string(),
                "-i",
                &path_arg(&h264)?,
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                &path_arg(&served)?,
            ]))?;
        }
        Ok(Inputs {
            h264_bytes,
            mjpeg_bytes: std::fs::metadata(&mjpeg).map_or(0, |m| m.len()),
            served_bytes: std::fs::metadata(&served).map_or(0, |m| m.len()),
            h264,
            mjpeg,
            served,
            transcode_seconds: args.transcode_seconds,
        })
    }
}

// ---------------------------------------------------------------------------
// Ours against the CLI

/// What a measurement is held to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Our median time over the CLI's, at most this.
    RatioAtMost(f64),
    /// Our median time, at most this many ms.
    OursMsAtMost(f64),
    /// Shown to explain the others.
    Info,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::RatioAtMost(r) => format!("≤ {r}×"),
            Target::OursMsAtMost(ms) => format!("≤ {ms} ms"),
            Target::Info => "-".into(),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Target::RatioAtMost(r) => json!({"ratio_max": r}),
            Target::OursMsAtMost(ms) => json!({"ours_ms_max": ms}),
            Target::Info => Value::Null,
        }
    }
}

type Ours<'a> = Box<dyn Fn() -> anyhow::Result<String> + 'a>;

/// One measurement: our call, and the CLI command doing the same work.
struct Case<'a> {
    key: &'static str,
    title: &'static str,
    ours_what: String,
    ours: Option<Ours<'a>>,
    /// Arguments after `ffmpeg -hide_banner -loglevel error -nostdin -y`.
    cli: Option<Vec<String>>,
    target: Target,
}

/// One run's cost.
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall_ms: f64,
    cpu_ms: f64,
    /// Time the process's threads were runnable but waiting for a CPU
    /// (from /proc/…/schedstat): on a shared machine, most of the gap
    /// between wall and CPU time.
    wait_ms: f64,
}

/// What a case measured.
struct Measured {
    key: &'static str,
    title: &'static str,
    ours_what: String,
    cli_cmd: Option<String>,
    target: Target,
    ours: Vec<Timed>,
    cli: Vec<Timed>,
    /// What our call reported (method, frames, …), from the warm-up run.
    note: String,
    /// Cores other processes kept busy meanwhile, on average.
    others_cores: f64,
    load_before: Option<[f64; 3]>,
    load_after: Option<[f64; 3]>,
}

impl Measured {
    fn ours_ms(&self) -> Option<f64> {
        med(&self.ours, |t| t.wall_ms)
    }

    fn cli_ms(&self) -> Option<f64> {
        med(&self.cli, |t| t.wall_ms)
    }

    fn ratio(&self) -> Option<f64> {
        match (self.ours_ms(), self.cli_ms()) {
            (Some(o), Some(c)) if c > 0.0 => Some(o / c),
            _ => None,
        }
    }

    /// Our median CPU time over the CLI's: on a loaded machine, less
    /// sensitive than wall time to waiting for a core.
    fn cpu_ratio(&self) -> Option<f64> {
        match (med(&self.ours, |t| t.cpu_ms), med(&self.cli, |t| t.cpu_ms)) {
            (Some(o), Some(c)) if c > 0.0 => Some(o / c),
            _ => None,
        }
    }

    /// Whether the target is met on wall time (the target's own terms).
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::OursMsAtMost(max) => self.ours_ms().map(|ms| ms <= max),
            Target::Info => None,
        }
    }

    /// Whether the target would be met on CPU time instead.
    fn met_on_cpu(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtMost(max) => self.cpu_ratio().map(|r| r <= max),
            Target::OursMsAtMost(max) => med(&self.ours, |t| t.cpu_ms).map(|ms| ms <= max),
            Target::Info => None,
        }
    }

    fn to_json(&self) -> Value {
        let runs = |v: &[Timed]| {
            v.iter()
                .map(|t| {
                    json!({"wall_ms": round2(t.wall_ms), "cpu_ms": round2(t.cpu_ms), "cpu_wait_ms": round2(t.wait_ms)})
                })
                .collect::<Vec<_>>()
        };
        json!({
            "ours": self.ours_what,
            "cli": self.cli_cmd,
            "ours_ms": self.ours_ms().map(round2),
            "ours_cpu_ms": med(&self.ours, |t| t.cpu_ms).map(round2),
            "cli_ms": self.cli_ms().map(round2),
            "cli_cpu_ms": med(&self.cli, |t| t.cpu_ms).map(round2),
            "ours_cpu_wait_ms": med(&self.ours, |t| t.wait_ms).map(round2),
            "cli_cpu_wait_ms": med(&self.cli, |t| t.wait_ms).map(round2),
            "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "cpu_ratio": self.cpu_ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "target": self.target.to_json(),
            "met": self.met(),
            "met_on_cpu": self.met_on_cpu(),
            "note": self.note,
            "others_cores": round2(self.others_cores),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "ours_runs": runs(&self.ours),
            "cli_runs": runs(&self.cli),
        })
    }
}

fn med(v: &[Timed], f: impl Fn(&Timed) -> f64) -> Option<f64> {
    (!v.is_empty()).then(|| median(&v.iter().map(f).collect::<Vec<_>>()))
}

/// The x264 settings both transcodes use: ours from server/media, the CLI's
/// spelled out to match (one decoder, filter and encoder thread, as
/// `MediaLimits::threads_per_job`; a keyframe every second, as ours sets).
fn x264_settings(limits: &MediaLimits) -> String {
    format!(
        "libx264 preset {X264_PRESET}, crf {X264_CRF}, yuv420p, threads {} (decoder, filters \
         and encoder; the CLI's filters follow its encoder's -threads), keyframe every 30 frames \
         (1 s at 30 fps), closed GOP (libx264's default, both sides), no audio, +faststart",
        limits.threads_per_job.max(1)
    )
}

/// Where our side runs: in a media worker process from a pool like the
/// server's (warm, as a running server's is), or with `--in-process` on
/// the bench's thread.
struct OurSide {
    runner: Option<MediaRunner>,
    handle: tokio::runtime::Handle,
    limits: MediaLimits,
    cancel: Cancel,
}

impl OurSide {
    fn run(&self, operation: Operation) -> MediaResult<Made> {
        match &self.runner {
            Some(runner) => self.handle.block_on(runner.perform(operation)),
            None => operation.run(&self.limits, &self.cancel),
        }
    }

    /// The processes whose CPU time is ours: this one and the workers.
    fn pids(&self) -> Vec<String> {
        let workers = self.runner.iter().flat_map(|r| r.worker_pids());
        std::iter::once("self".to_string())
            .chain(workers.map(|p| p.to_string()))
            .collect()
    }
}

fn measure_all(
    dir: &Path,
    args: &MediaArgs,
    inputs: &Inputs,
    side: &OurSide,
    filmstrip_frames: u32,
) -> anyhow::Result<Vec<Measured>> {
    let limits = &side.limits;
    let h264 = inputs.h264.as_path();
    let h264_arg = path_arg(h264)?;
    let out = |name: &str| -> anyhow::Result<String> { path_arg(&dir.join(name)) };
    let threads = limits.threads_per_job.max(1).to_string();
    let (cut_from, cut_to) = CUT_WINDOW;
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);

    let ours_cut = dir.join("ours-cut.mp4");
    let ours_job_cut = dir.join("ours-job-cut.mp4");
    let ours_job_strip = dir.join("ours-job-filmstrip.jpg");
    let ours_strip = dir.join("ours-filmstrip.jpg");
    let ours_transcode = dir.join("ours-transcode.mp4");
    let ours_poster = dir.join("ours-poster.jpg");

    let poster_case = |key, title, at_ms: i64, target, with_cli: bool| -> anyhow::Result<Case> {
        let ours_poster = ours_poster.clone();
        Ok(Case {
            key,
            title,
            ours_what: format!("poster(at {at_ms} ms, max width {POSTER_WIDTH})"),
            ours: Some(Box::new(move || {
                let p = side
                    .run(Operation::Poster {
                        input: h264.into(),
                        at_ms,
                        output: ours_poster.clone(),
                        max_width: POSTER_WIDTH,
                    })?
                    .into_poster()?;
                Ok(format!(
                    "frame at {} ms, {}x{}",
                    p.pts_ms, p.width, p.height
                ))
            })),
            cli: with_cli
                .then(|| -> anyhow::Result<Vec<String>> {
                    Ok(strings(&[
                        "-ss",
                        &secs(at_ms),
                        "-i",
                        &h264_arg,
                        "-frames:v",
                        "1",
                        &out("cli-poster.jpg")?,
                    ]))
                })
                .transpose()?,
            target,
        })
    };

    let transcode_cli = || -> anyhow::Result<Vec<String>> {
        let mut args = strings(&[
            "-threads",
            &threads,
            "-i",
            &path_arg(&inputs.mjpeg)?,
            "-c:v",
            "libx264",
            "-preset",
            X264_PRESET,
            "-crf",
            X264_CRF,
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
            "-threads",
            &threads,
            "-an",
        ]);
        args.extend(strings(&[
            "-movflags",
            "+faststart",
            &out("cli-transcode.mp4")?,
        ]));
        Ok(args)
    };

    let cases: Vec<Case> = vec![
        Case {
            key: "cli_startup",
            title: "CLI process start-up",
            ours_what: "-".into(),
            ours: None,
            cli: Some(strings(&["-version"])),
            target: Target::Info,
        },
        Case {
            key: "probe",
            title: "probe (ours)",
            ours_what: "probe(20 s 1080p H.264): headers + one packet pass, no decode".into(),
            ours: Some(Box::new(|| {
                let info = side
                    .run(Operation::Probe { input: h264.into() })?
                    .into_probe()?;
                Ok(format!(
                    "{} {}x{} {} ms",
                    info.codec, info.width, info.height, info.duration_ms
                ))
            })),
            cli: None,
            target: Target::Info,
        },
        Case {
            key: "window_cut",
            title: "window cut (keyframe)",
            ours_what: format!(
                "make_browser_mp4(Window {cut_from}..{cut_to} ms, CutAccuracy::Keyframe)"
            ),
            ours: Some(Box::new(|| {
                let o = side
                    .run(Operation::MakeBrowserMp4 {
                        input: h264.into(),
                        output: ours_cut.clone(),
                        window: Some(Window::new(cut_from, cut_to)),
                        accuracy: CutAccuracy::Keyframe,
                    })?
                    .into_browser_mp4()?;
                anyhow::ensure!(
                    o.method == Method::Remux,
                    "the keyframe cut of an H.264 yuv420p source was not a remux"
                );
                Ok(format!(
                    "remux from {} ms, {} frames, {} ms",
                    o.source_start_ms, o.frame_count, o.duration_ms
                ))
            })),
            cli: Some(strings(&[
                "-ss",
                &secs(cut_from),
                "-to",
                &secs(cut_to),
                "-i",
                &h264_arg,
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                &out("cli-cut.mp4")?,
            ])),
            target: Target::RatioAtMost(TARGET_CUT_RATIO),
        },
        Case {
            key: "cli_decode_cut_span",
            title: "CLI decode of the cut's frames",
            ours_what: "-".into(),
            ours: None,
            cli: Some(strings(&[
                "-threads",
                &threads,
                "-ss",
                &secs(4_000),
                "-to",
                &secs(cut_to),
                "-i",
                &h264_arg,
                "-f",
                "null",
                "-",
            ])),
            target: Target::Info,
        },
        Case {
            key: "clip_process_cut",
            title: "clip-process job, cut",
            ours_what: format!(
                "the clip-process job's media work for a footage cut: make_browser_mp4(Window \
                 {cut_from}..{cut_to} ms, CutAccuracy::Keyframe), then filmstrip of the cut \
                 ({filmstrip_frames} tiles, {TILE_WIDTH} px, Decode::EveryFrame as the job asks \
                 after a remux)"
            ),
            ours: Some(Box::new(|| {
                let o = side
                    .run(Operation::MakeBrowserMp4 {
                        input: h264.into(),
                        output: ours_job_cut.clone(),
                        window: Some(Window::new(cut_from, cut_to)),
                        accuracy: CutAccuracy::Keyframe,
                    })?
                    .into_browser_mp4()?;
                let decode = if o.frames_checked {
                    Decode::TilesOnly
                } else {
                    Decode::EveryFrame
                };
                let f = side
                    .run(Operation::Filmstrip {
                        input: ours_job_cut.clone(),
                        count: filmstrip_frames,
                        tile_width: TILE_WIDTH,
                        decode,
                        output: ours_job_strip.clone(),
                    })?
                    .into_filmstrip()?;
                Ok(format!(
                    "{} frames checked by {decode:?}, {} tiles",
                    o.frame_count,
                    f.timestamps_ms.len()
                ))
            })),
            // The same work in one CLI process: the stream copy, and a
            // decode of the same window on one thread.
            cli: Some(strings(&[
                "-threads",
                &threads,
                "-ss",
                &secs(cut_from),
                "-to",
                &secs(cut_to),
                "-i",
                &h264_arg,
                "-map",
                "0:v",
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                &out("cli-job-cut.mp4")?,
                "-map",
                "0:v",
                "-f",
                "null",
                "-",
            ])),
            target: Target::Info,
        },
        Case {
            key: "filmstrip",
            title: "filmstrip",
            ours_what: format!("filmstrip(10 tiles, {TILE_WIDTH} px wide)"),
            ours: Some(Box::new(|| {
                let f = side
                    .run(Operation::Filmstrip {
                        input: h264.into(),
                        count: 10,
                        tile_width: TILE_WIDTH,
                        decode: Decode::TilesOnly,
                        output: ours_strip.clone(),
                    })?
                    .into_filmstrip()?;
                Ok(format!(
                    "{} tiles {}x{}, keyframes only: {}",
                    f.timestamps_ms.len(),
                    f.tile_width,
                    f.tile_height,
                    f.keyframes_only
                ))
            })),
            cli: Some(strings(&["-i", &h264_arg, "-f", "null", "-"])),
            target: Target::RatioAtMost(TARGET_FILMSTRIP_RATIO),
        },
        Case {
            key: "transcode",
            title: "transcode (MJPEG)",
            ours_what: format!(
                "make_browser_mp4({} s 1080p MJPEG, no window)",
                inputs.transcode_seconds
            ),
            ours: Some(Box::new(|| {
                let o = side
                    .run(Operation::MakeBrowserMp4 {
                        input: inputs.mjpeg.clone(),
                        output: ours_transcode.clone(),
                        window: None,
                        accuracy: CutAccuracy::Keyframe,
                    })?
                    .into_browser_mp4()?;
                anyhow::ensure!(
                    o.method == Method::Transcode,
                    "the MJPEG source was not transcoded"
                );
                Ok(format!(
                    "transcode, {} frames, {} bytes",
                    o.frame_count, o.bytes
                ))
            })),
            cli: Some(transcode_cli()?),
            target: Target::RatioAtMost(TARGET_TRANSCODE_RATIO),
        },
        poster_case(
            "poster",
            "poster 1080p (mid-GOP)",
            POSTER_MID_GOP_MS,
            Target::OursMsAtMost(TARGET_POSTER_MS),
            true,
        )?,
        poster_case(
            "poster_keyframe",
            "poster (on a keyframe)",
            POSTER_KEYFRAME_MS,
            Target::Info,
            false,
        )?,
        poster_case(
            "poster_gop_end",
            "poster (last frame of GOP)",
            POSTER_GOP_END_MS,
            Target::OursMsAtMost(TARGET_POSTER_MS),
            false,
        )?,
    ];

    let mut measured = Vec::new();
    for case in cases.iter().filter(|c| args.runs(c.key)) {
        eprintln!("{}…", case.title);
        measured.push(measure(case, args.repeat, side)?);
    }
    if let Some(m) = measured.iter_mut().find(|m| m.key == "transcode") {
        let ours = x264_options(&ours_transcode);
        let cli = x264_options(&dir.join("cli-transcode.mp4"));
        m.note.push_str(match (ours, cli) {
            (Some(a), Some(b)) if a == b => "; x264 options written: identical to the CLI's",
            _ => "; x264 options written: DIFFER from the CLI's",
        });
    }
    Ok(measured)
}

/// The option string libx264 writes into its first picture (`options: …`).
fn x264_options(mp4: &Path) -> Option<String> {
    let bytes = std::fs::read(mp4).ok()?;
    let marker = b"options: ";
    let start = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let len = bytes[start..].iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&bytes[start..start + len]).into_owned())
}

/// Runs a case once to warm up, then `reps` times each side, alternating
/// which side goes first.
fn measure(case: &Case, reps: usize, our_side: &OurSide) -> anyhow::Result<Measured> {
    let note = match &case.ours {
        Some(ours) => ours().with_context(|| format!("{}: our run failed", case.title))?,
        None => String::new(),
    };
    if let Some(cli) = &case.cli {
        ffmpeg(cli)?;
    }
    let load_before = load_average();
    let before = Snapshot::take();
    let started = Instant::now();
    let (mut ours, mut cli) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for side in if rep % 2 == 0 { [0, 1] } else { [1, 0] } {
            match (side, &case.ours, &case.cli) {
                (0, Some(f), _) => {
                    // Ours is this process and its media workers.
                    let pids = our_side.pids();
                    let cpu = || pids.iter().map(|p| ProcCpu::of(p).own).sum::<u64>();
                    let wait = || pids.iter().map(|p| run_queue_wait_ns(p)).sum::<u64>();
                    let (cpu0, wait0, t0) = (cpu(), wait(), Instant::now());
                    f()?;
                    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
                    let cpu_ms = cpu().saturating_sub(cpu0) as f64 / clock_ticks() * 1000.0;
                    let wait_ms = wait().saturating_sub(wait0) as f64 / 1e6;
                    ours.push(Timed {
                        wall_ms,
                        cpu_ms,
                        wait_ms,
                    });
                }
                (1, _, Some(args)) => {
                    let (cpu0, t0) = (ProcCpu::read(), Instant::now());
                    let wait_ns = ffmpeg_watched(args)?;
                    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
                    let cpu_ms = ProcCpu::read().children_since(&cpu0) * 1000.0;
                    cli.push(Timed {
                        wall_ms,
                        cpu_ms,
                        wait_ms: wait_ns as f64 / 1e6,
                    });
                }
                _ => {}
            }
        }
    }
    let after = Snapshot::take();
    Ok(Measured {
        key: case.key,
        title: case.title,
        ours_what: case.ours_what.clone(),
        cli_cmd: case.cli.as_ref().map(|a| cli_line(a)),
        target: case.target,
        ours,
        cli,
        note,
        others_cores: after.others_cores_since(&before, started.elapsed()),
        load_before,
        load_after: load_average(),
    })
}

// ---------------------------------------------------------------------------
// Range serving

/// What the range phase measured.
struct Ranges {
    served_bytes: u64,
    ranges: u64,
    seconds: f64,
    requests: u64,
    errors: u64,
    payload_bytes: u64,
    wire_bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU seconds of this process (the server) during the wrk run.
    server_cpu_s: f64,
    /// Of them, in the kernel.
    server_sys_s: f64,
    /// CPU seconds of wrk.
    wrk_cpu_s: f64,
    others_cores: f64,
    raw_bytes: u64,
    raw_seconds: f64,
    raw_cpu_s: f64,
    connections: u32,
    wrk_threads: u32,
}

impl Ranges {
    fn gbps(&self) -> f64 {
        self.payload_bytes as f64 / self.seconds / 1e9
    }

    fn server_cores(&self) -> f64 {
        self.server_cpu_s / self.seconds
    }

    fn gbps_per_core(&self) -> f64 {
        if self.server_cpu_s > 0.0 {
            self.payload_bytes as f64 / self.server_cpu_s / 1e9
        } else {
            0.0
        }
    }

    fn gbps_per_core_with_client(&self) -> f64 {
        let cpu = self.server_cpu_s + self.wrk_cpu_s;
        if cpu > 0.0 {
            self.payload_bytes as f64 / cpu / 1e9
        } else {
            0.0
        }
    }

    fn raw_gbps(&self) -> f64 {
        self.raw_bytes as f64 / self.raw_seconds / 1e9
    }

    fn raw_gbps_per_core(&self) -> f64 {
        if self.raw_cpu_s > 0.0 {
            self.raw_bytes as f64 / self.raw_cpu_s / 1e9
        } else {
            0.0
        }
    }

    fn ratio(&self) -> f64 {
        let raw = self.raw_gbps_per_core();
        if raw > 0.0 {
            self.gbps_per_core() / raw
        } else {
            0.0
        }
    }

    fn met(&self) -> bool {
        self.errors == 0 && self.gbps_per_core() >= TARGET_RANGE_GBPS_PER_CORE
    }
}

/// Stores the served MP4 as a processed clip's video in a fresh database and
/// blob directory, checks one range by hand, then lets wrk fetch ranges.
async fn range_phase(
    fresh: Fresh,
    config: &Config,
    args: &MediaArgs,
    inputs: &Inputs,
    work: &Path,
) -> anyhow::Result<Ranges> {
    let Fresh { db, dir, .. } = fresh;
    let now = SystemClock.now_ms();
    let created = admin::create_store(&db, &bench_actor(), "Bench store", None, now).await?;
    let state = server::state(db.clone(), config, &dir)?;
    let clip_id = new_id();
    let video_key = clips::blob_key(&created.store.id, &clip_id, "video.mp4");
    let size = state.blobs.put_file(&video_key, &inputs.served).await?;
    review::create(
        &db,
        &clip_id,
        &created.store.id,
        "bench-camera",
        None,
        size as i64,
        now,
    )
    .await?;
    let info = media::probe(&inputs.served, &crate::media_limits(config), &Cancel::new())?;
    review::settle(
        &db,
        &clip_id,
        Ok(Processed {
            started_at: None,
            video_key: video_key.clone(),
            filmstrip_key: clips::blob_key(&created.store.id, &clip_id, "filmstrip.jpg"),
            filmstrip: "{}".into(),
            duration_ms: info.duration_ms,
            width: i64::from(info.width),
            height: i64::from(info.height),
            frame_rate: Some(info.fps),
        }),
        now,
    )
    .await?;
    // The blob the server reads: LocalFileSystem keeps keys as paths.
    let blob_path = dir.join("blobs").join(&video_key);
    let read_path = if blob_path.is_file() {
        blob_path
    } else {
        inputs.served.clone()
    };

    let server = Server::start(state).await?;
    let path = format!("/api/v1/clips/{clip_id}/video");
    let url = format!("{}{path}", server.base);
    let ranges = size / MIB;
    let measured = async {
        check_one_range(&url, &created.api_key, &read_path, size).await?;
        let script = work.join("ranges.lua");
        std::fs::write(&script, wrk_script(&path, &created.api_key, ranges))?;
        let load = Snapshot::take();
        let cpu0 = ProcCpu::read();
        let started = Instant::now();
        let output = tokio::process::Command::new("wrk")
            .arg(format!("-t{}", args.wrk_threads))
            .arg(format!("-c{}", args.connections))
            .arg(format!("-d{}s", args.range_seconds))
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(&script)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running wrk")?;
        let elapsed = started.elapsed();
        let cpu1 = ProcCpu::read();
        let others_cores = Snapshot::take().others_cores_since(&load, elapsed);
        let stdout = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success(),
            "wrk failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let w = WrkResult::parse(&stdout)?;
        let server_sys_s = cpu1.own_sys_since(&cpu0);
        Ok::<_, anyhow::Error>((
            w,
            (cpu1.own_since(&cpu0), server_sys_s),
            cpu1.children_since(&cpu0),
            others_cores,
        ))
    }
    .await;
    server.stop().await;
    db.close().await;
    let (w, (server_cpu_s, server_sys_s), wrk_cpu_s, others_cores) = measured?;
    let ok = w.requests.saturating_sub(w.errors);
    anyhow::ensure!(
        ok == 0 || w.bytes / ok.max(1) < MIB + 4096,
        "wrk received {} bytes per response: the server did not answer with 1 MiB ranges",
        w.bytes / ok.max(1)
    );

    eprintln!("raw range reads from disk…");
    let (raw_bytes, raw_seconds, raw_cpu_s) =
        tokio::task::spawn_blocking(move || raw_reads(&read_path, ranges)).await??;
    Ok(Ranges {
        served_bytes: size,
        ranges,
        seconds: w.duration_us as f64 / 1e6,
        requests: w.requests,
        errors: w.errors,
        payload_bytes: ok * MIB,
        wire_bytes: w.bytes,
        p50_ms: w.p50_us as f64 / 1000.0,
        p99_ms: w.p99_us as f64 / 1000.0,
        server_cpu_s,
        server_sys_s,
        wrk_cpu_s,
        others_cores,
        raw_bytes,
        raw_seconds,
        raw_cpu_s,
        connections: args.connections,
        wrk_threads: args.wrk_threads,
    })
}

/// Fetches one range with reqwest and compares it with the file.
async fn check_one_range(url: &str, key: &str, file: &Path, size: u64) -> anyhow::Result<()> {
    let client = server::client(1, &crate::config::Config::default())?;
    let (from, to) = (MIB, 2 * MIB - 1);
    let resp = client
        .get(url)
        .bearer_auth(key)
        .header("range", format!("bytes={from}-{to}"))
        .send()
        .await?;
    let status = resp.status();
    let content_range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await?;
    anyhow::ensure!(
        status.as_u16() == 206,
        "GET {url} with a range answered {status}"
    );
    anyhow::ensure!(
        content_range == format!("bytes {from}-{to}/{size}"),
        "unexpected Content-Range {content_range:?}"
    );
    let mut expected = vec![0u8; MIB as usize];
    std::fs::File::open(file)?.read_exact_at(&mut expected, from)?;
    anyhow::ensure!(
        body.as_ref() == expected.as_slice(),
        "the range served differs from the file"
    );
    Ok(())
}

/// The wrk script: a random 1 MiB-aligned 1 MiB range per request, and one
/// parseable line at the end.
fn wrk_script(path: &str, key: &str, ranges: u64) -> String {
    format!(
        r#"local mib = 1048576
local ranges = {ranges}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer {key}"
end
function request()
  local i = math.random(0, ranges - 1)
  wrk.headers["Range"] = string.format("bytes=%.0f-%.0f", i * mib, i * mib + mib - 1)
  return wrk.format("GET", "{path}")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#
    )
}

/// The line the wrk script prints.
struct WrkResult {
    requests: u64,
    bytes: u64,
    duration_us: u64,
    errors: u64,
    p50_us: u64,
    p99_us: u64,
}

impl WrkResult {
    fn parse(stdout: &str) -> anyhow::Result<WrkResult> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .with_context(|| format!("wrk printed no result line: {stdout}"))?;
        let n: Vec<u64> = line
            .split_whitespace()
            .map(|s| s.parse::<f64>().map(|v| v.max(0.0) as u64))
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad wrk result line {line:?}"))?;
        anyhow::ensure!(n.len() == 6, "bad wrk result line {line:?}");
        Ok(WrkResult {
            requests: n[0],
            bytes: n[1],
            duration_us: n[2].max(1),
            errors: n[3],
            p50_us: n[4],
            p99_us: n[5],
        })
    }
}

/// Reads random 1 MiB-aligned ranges of `file` into one buffer on one
/// thread for a few seconds: bytes, wall seconds, CPU seconds.
fn raw_reads(file: &Path, ranges: u64) -> anyhow::Result<(u64, f64, f64)> {
    let f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut rng = rand::thread_rng();
    let mut bytes = 0u64;
    let cpu0 = ProcCpu::read();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < RAW_READ_SECONDS {
        for _ in 0..64 {
            let i = rng.gen_range(0..ranges);
            f.read_exact_at(&mut buf, i * MIB)?;
            bytes += MIB;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((bytes, seconds, ProcCpu::read().own_since(&cpu0)))
}

// ---------------------------------------------------------------------------
// Output

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |ms| format!("{ms:.1}"))
}

fn print_table(
    cases: &[Measured],
    r: Option<&Ranges>,
    inputs: &Inputs,
    limits: &MediaLimits,
    x264: &str,
) {
    println!();
    println!(
        "inputs: {} s 1920x1080 30 fps H.264 yuv420p (testsrc2, crf 23, keyframe every {} \
         frames), {:.1} MiB; {} s 1920x1080 30 fps MJPEG (Matroska), {:.1} MiB; served MP4 \
         {:.1} MiB",
        SOURCE_SECONDS,
        SOURCE_GOP,
        inputs.h264_bytes as f64 / MIB as f64,
        inputs.transcode_seconds,
        inputs.mjpeg_bytes as f64 / MIB as f64,
        inputs.served_bytes as f64 / MIB as f64,
    );
    println!(
        "{:<30} {:>16} {:>16} {:>8} {:>9} {:>11} {:>7} {:>9} {:>7} {:>13}",
        "benchmark",
        "ours ms (cpu)",
        "CLI ms (cpu)",
        "ratio",
        "cpu ratio",
        "target",
        "met?",
        "on cpu?",
        "others",
        "wait ours/CLI"
    );
    for m in cases {
        let with_cpu = |wall: Option<f64>, v: &[Timed]| match wall {
            Some(w) => format!("{w:.1} ({:.0})", med(v, |t| t.cpu_ms).unwrap_or_default()),
            None => "-".into(),
        };
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.3}"));
        println!(
            "{:<30} {:>16} {:>16} {:>8} {:>9} {:>11} {:>7} {:>9} {:>7.2} {:>13}",
            m.title,
            with_cpu(m.ours_ms(), &m.ours),
            with_cpu(m.cli_ms(), &m.cli),
            ratio(m.ratio()),
            ratio(m.cpu_ratio()),
            m.target.describe(),
            m.met().map_or("-", verdict),
            m.met_on_cpu().map_or("-", verdict),
            m.others_cores,
            format!(
                "{}/{}",
                med(&m.ours, |t| t.wait_ms).map_or("-".into(), |w| format!("{w:.0}")),
                med(&m.cli, |t| t.wait_ms).map_or("-".into(), |w| format!("{w:.0}"))
            ),
        );
    }
    println!(
        "(ms: median wall time; cpu: median CPU ms of the run, user + system, 10 ms ticks; \
         ratio: ours / CLI on wall time, which the targets use; cpu ratio: the same on CPU \
         time; on cpu?: the target judged on CPU time; others: cores other processes kept busy \
         during the case, on average; wait: median ms the work was runnable but waiting for a \
         CPU, from schedstat, summed over its threads)"
    );
    for m in cases {
        println!("  {}:", m.title);
        if m.ours.is_empty() {
            println!("    ours: -");
        } else {
            println!("    ours: {} → {}", m.ours_what, m.note);
        }
        if let Some(cli) = &m.cli_cmd {
            println!("    CLI:  {cli}");
        }
    }
    let startup = cases
        .iter()
        .find(|m| m.key == "cli_startup")
        .and_then(Measured::cli_ms);
    println!(
        "note: every CLI time includes starting the ffmpeg process (loading its shared \
         libraries): {} ms median for `ffmpeg -version`; ours runs in a process already started",
        fmt_ms(startup)
    );
    println!(
        "note: the CLI's full decode and poster use FFmpeg's default threads (one per CPU); our \
         decoders use MediaLimits::threads_per_job ({}), our posters \
         MediaLimits::poster_threads ({})",
        limits.threads_per_job, limits.poster_threads
    );
    println!("transcode settings, both sides: {x264}");
    let Some(r) = r else { return };
    println!();
    println!(
        "range serving: GET /api/v1/clips/{{id}}/video, random 1 MiB-aligned 1 MiB ranges of a \
         {:.1} MiB MP4 ({} ranges), wrk {} threads {} connections for {:.1} s, loopback",
        r.served_bytes as f64 / MIB as f64,
        r.ranges,
        r.wrk_threads,
        r.connections,
        r.seconds
    );
    println!(
        "  HTTP: {} requests ({} errors), {:.2} GB/s, latency p50 {:.2} ms p99 {:.2} ms",
        r.requests,
        r.errors,
        r.gbps(),
        r.p50_ms,
        r.p99_ms
    );
    println!(
        "  server CPU {:.2} cores ({:.0} % in the kernel; {:.0} µs per request) → {:.2} GB/s per \
         core (wrk used {:.2} cores; server + wrk: {:.2} GB/s per core); others kept {:.2} cores \
         busy",
        r.server_cores(),
        100.0 * r.server_sys_s / r.server_cpu_s.max(1e-9),
        1e6 * r.server_cpu_s / r.requests.max(1) as f64,
        r.gbps_per_core(),
        r.wrk_cpu_s / r.seconds,
        r.gbps_per_core_with_client(),
        r.others_cores
    );
    println!(
        "  baseline: pread of the same ranges of the same file in-process, one thread, page \
         cache: {:.2} GB/s, {:.2} GB/s per core",
        r.raw_gbps(),
        r.raw_gbps_per_core()
    );
    println!(
        "  ratio HTTP/raw per core: {:.3}; target ≥ {TARGET_RANGE_GBPS_PER_CORE} GB/s per core: {}",
        r.ratio(),
        verdict(r.met())
    );
}

/// What the JSON line says about the run beside the figures.
struct Facts<'a> {
    start: &'a Snapshot,
    end: &'a Snapshot,
    cli_version: &'a str,
    x264: &'a str,
}

fn to_json(
    args: &MediaArgs,
    cases: &[Measured],
    ranges: Option<&Ranges>,
    inputs: &Inputs,
    facts: &Facts,
) -> Value {
    let (start, end) = (facts.start, facts.end);
    let mut results = serde_json::Map::new();
    for m in cases {
        results.insert(m.key.to_string(), m.to_json());
    }
    if let Some(r) = ranges {
        results.insert(
            "range_serving".into(),
            json!({
                "served_bytes": r.served_bytes,
                "ranges": r.ranges,
                "range_bytes": MIB,
                "seconds": round2(r.seconds),
                "connections": r.connections,
                "wrk_threads": r.wrk_threads,
                "requests": r.requests,
                "errors": r.errors,
                "payload_bytes": r.payload_bytes,
                "wire_bytes": r.wire_bytes,
                "gb_per_s": round2(r.gbps()),
                "server_cores": round2(r.server_cores()),
                "gb_per_s_per_core": round2(r.gbps_per_core()),
                "gb_per_s_per_core_incl_wrk": round2(r.gbps_per_core_with_client()),
                "wrk_cores": round2(r.wrk_cpu_s / r.seconds),
                "server_cpu_s": round2(r.server_cpu_s),
                "server_sys_cpu_s": round2(r.server_sys_s),
                "p50_ms": round2(r.p50_ms),
                "p99_ms": round2(r.p99_ms),
                "raw_gb_per_s": round2(r.raw_gbps()),
                "raw_gb_per_s_per_core": round2(r.raw_gbps_per_core()),
                "ratio_http_to_raw_per_core": (r.ratio() * 1000.0).round() / 1000.0,
                "target": {"gb_per_s_per_core_min": TARGET_RANGE_GBPS_PER_CORE},
                "met": r.met(),
                "others_cores": round2(r.others_cores),
            }),
        );
    }
    json!({
        "bench": "media",
        "repeat": args.repeat,
        "ffmpeg_cli": facts.cli_version,
        "x264": facts.x264,
        "inputs": {
            "h264": {"seconds": SOURCE_SECONDS, "size": "1920x1080", "fps": 30, "gop": SOURCE_GOP, "bytes": inputs.h264_bytes},
            "mjpeg": {"seconds": inputs.transcode_seconds, "size": "1920x1080", "fps": 30, "bytes": inputs.mjpeg_bytes},
            "served_bytes": inputs.served_bytes,
        },
        "machine": {
            "cpus": start.cpus,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "load_average_start": start.load,
            "load_average_end": end.load,
            "running_tasks_start": start.running,
            "running_tasks_end": end.running,
        },
        "results": Value::Object(results),
    })
}

// ---------------------------------------------------------------------------
// Processes, CPU time, load

/// `ffmpeg` with quiet, non-interactive flags; fails with its stderr.
fn ffmpeg(args: &[String]) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running ffmpeg")?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        cli_line(args),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// [`ffmpeg`], while another thread watches the child's run-queue wait;
/// returns that wait in ns (up to the last look, every 5 ms, before it exits).
fn ffmpeg_watched(args: &[String]) -> anyhow::Result<u64> {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ffmpeg")?;
    let pid = child.id().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(run_queue_wait_ns(&pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let output = child.wait_with_output();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let wait_ns = watcher.join().unwrap_or(0);
    let output = output.context("running ffmpeg")?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed: {}",
        cli_line(args),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(wait_ns)
}

/// Nanoseconds the threads of process `pid` ("self" for this one) spent
/// runnable but waiting for a CPU, summed over the threads alive now
/// (second field of /proc/PID/task/TID/schedstat).
fn run_queue_wait_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn cli_line(args: &[String]) -> String {
    format!(
        "ffmpeg -hide_banner -loglevel error -nostdin -y {}",
        args.join(" ")
    )
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn path_arg(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The first line a tool prints about its version.
fn tool_version(tool: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text.lines().next().unwrap_or(tool).trim().to_string())
}

/// Clock ticks per second of /proc times.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time of this process and of its waited-for children, in ticks.
#[derive(Debug, Clone, Copy, Default)]
struct ProcCpu {
    own: u64,
    /// Of `own`, the time in the kernel (system calls: reads, socket writes).
    own_sys: u64,
    children: u64,
}

impl ProcCpu {
    fn read() -> ProcCpu {
        ProcCpu::of("self")
    }

    /// The CPU of process `pid` (`self` for this one).
    fn of(pid: &str) -> ProcCpu {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): state is
        // field 3; utime, stime, cutime, cstime are fields 14 to 17.
        let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| f.get(i - 3).copied().unwrap_or(0);
        ProcCpu {
            own: at(14) + at(15),
            own_sys: at(15),
            children: at(16) + at(17),
        }
    }

    /// Seconds of CPU this process used since `earlier`.
    fn own_since(&self, earlier: &ProcCpu) -> f64 {
        self.own.saturating_sub(earlier.own) as f64 / clock_ticks()
    }

    /// Of [`own_since`](ProcCpu::own_since), the seconds in the kernel.
    fn own_sys_since(&self, earlier: &ProcCpu) -> f64 {
        self.own_sys.saturating_sub(earlier.own_sys) as f64 / clock_ticks()
    }

    /// Seconds of CPU children used since `earlier` (counted when waited for).
    fn children_since(&self, earlier: &ProcCpu) -> f64 {
        self.children.saturating_sub(earlier.children) as f64 / clock_ticks()
    }
}

/// The machine at one instant: load, busy CPU ticks, and ours.
struct Snapshot {
    cpus: usize,
    load: Option<[f64; 3]>,
    /// Runnable / total tasks, from /proc/loadavg.
    running: Option<String>,
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq, steal).
    busy: u64,
    ours: ProcCpu,
}

impl Snapshot {
    fn take() -> Snapshot {
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let busy = stat
            .lines()
            .next()
            .filter(|l| l.starts_with("cpu "))
            .map_or(0, |l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .map(|s| s.parse().unwrap_or(0))
                    .collect();
                [0, 1, 2, 5, 6, 7]
                    .iter()
                    .map(|&i| f.get(i).copied().unwrap_or(0))
                    .sum()
            });
        Snapshot {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load: load_average(),
            running: loadavg.split_whitespace().nth(3).map(str::to_string),
            busy,
            ours: ProcCpu::read(),
        }
    }

    /// Cores other processes kept busy between `earlier` and now, on average:
    /// all busy CPU time minus ours and our children's.
    fn others_cores_since(&self, earlier: &Snapshot, elapsed: Duration) -> f64 {
        let all = self.busy.saturating_sub(earlier.busy);
        let ours = self.ours.own.saturating_sub(earlier.ours.own)
            + self.ours.children.saturating_sub(earlier.ours.children);
        let secs = elapsed.as_secs_f64().max(1e-3);
        (all.saturating_sub(ours) as f64 / clock_ticks() / secs).max(0.0)
    }

    fn describe(&self, when: &str) -> String {
        let load = self.load.map_or("unknown".into(), |l| {
            format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
        });
        format!(
            "machine {when}: {} CPUs ({} {}), load average {load} (1, 5, 15 min), runnable/total \
             tasks {}; the CPUs are shared with other developers' builds and tests",
            self.cpus,
            std::env::consts::OS,
            std::env::consts::ARCH,
            self.running.as_deref().unwrap_or("unknown"),
        )
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// A scratch directory under the system temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let name = format!(
            "recount-bench-media-{:012x}",
            rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_result_line_parses() {
        let w = WrkResult::parse("Running 10s test\nRESULT 100 104857600 10000000 0 1200 3400\n")
            .unwrap();
        assert_eq!(w.requests, 100);
        assert_eq!(w.bytes, 104_857_600);
        assert_eq!(w.duration_us, 10_000_000);
        assert_eq!(w.errors, 0);
        assert_eq!((w.p50_us, w.p99_us), (1200, 3400));
        assert!(WrkResult::parse("no line").is_err());
    }

    #[test]
    fn proc_cpu_reads_this_process() {
        let a = ProcCpu::read();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(ProcCpu::read().own >= a.own);
    }
}
