//! Media work in worker processes: a worker that is killed, crashes, hangs
//! or runs past its limits fails only its own attempt; the server keeps
//! serving, the job retries under its policy, and a clip that crashes its
//! worker every time fails with `media-crashed`. Real `recount
//! media-worker` processes throughout; a misbehaving one is the real worker
//! behind `tests/common/faulty_media_worker.py`, which crashes (a real
//! SIGSEGV) or hangs on one operation.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use recount::config::Config;
use recount::media::{MediaLimits, MediaRunner, WorkerCommand};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{self, fixture_path, run_media_jobs, Backend, TestApp};

/// The real worker program.
const RECOUNT: &str = env!("CARGO_BIN_EXE_recount");

/// A clip whose transcode takes a while (1080p, 5 s, 4:4:4 chroma, which
/// browsers do not play): long enough to kill its worker in the middle, and
/// to use more than a second of CPU. Made once per test run.
fn slow_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("recount-media-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("slow-yuv444.mp4");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=30:duration=5")
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv444p",
            ])
            .arg(&path)
            .status()
            .expect("running ffmpeg");
        assert!(status.success());
        path
    })
}

/// A worker command that crashes or hangs (`mode`) on `operation`.
fn faulty(mode: &str, operation: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/faulty_media_worker.py");
    vec![
        "python3".into(),
        script.display().to_string(),
        mode.into(),
        operation.into(),
        RECOUNT.into(),
    ]
}

async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::start_with(backend, |c| {
        c.webhook_backoff_base_ms = 1_000;
        c.webhook_backoff_max_ms = 60_000;
        tweak(c);
    })
    .await
}

/// Uploads the file at `path` as a clip; answers status and body.
async fn upload(app: &TestApp, key: &str, path: &Path) -> (StatusCode, Value) {
    app.post_clip(key, std::fs::read(path).unwrap(), "cam-1", None)
        .await
}

async fn clip_state(app: &TestApp, key: &str, clip_id: &str) -> Value {
    let (s, clip) = app
        .call(Method::GET, &format!("/api/v1/clips/{clip_id}"), key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{clip}");
    clip
}

async fn healthy(app: &TestApp) -> bool {
    app.http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

/// The worker running `operation`, once one does (within a minute).
async fn busy_with(app: &TestApp, operation: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = app.state.media.busy_workers();
        if let Some(w) = busy.iter().find(|w| w.operation == operation) {
            return w.pid;
        }
        assert!(Instant::now() < deadline, "no worker ran {operation}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the next media job in the background, so the test can watch its
/// worker meanwhile; the handle answers whether a job ran.
fn next_media_job(app: &TestApp) -> tokio::task::JoinHandle<recount::db::Result<bool>> {
    let state = app.state.clone();
    tokio::spawn(async move {
        let client = recount::jobs::webhook::client(&state.config);
        recount::jobs::run_next_job(&state, &client, recount::jobs::MEDIA_JOBS).await
    })
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn clip_job(app: &TestApp) -> recount::db::jobs::JobState {
    let jobs = recount::db::jobs::list(&app.state.db, "clip-process")
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one clip job");
    jobs.into_iter().next().unwrap()
}

/// Killing the worker in the middle of a transcode fails that attempt only:
/// the server answers throughout, the job is retried after its backoff, and
/// the clip becomes ready in a fresh worker.
async fn a_worker_killed_mid_transcode_is_retried_and_the_clip_becomes_ready(backend: Backend) {
    let app = start(backend, |_| {}).await;
    let (_, key) = app.store_with_catalog().await;
    let (s, clip) = upload(&app, &key, slow_clip()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();

    let job = next_media_job(&app);
    let pid = busy_with(&app, "make_browser_mp4").await;
    let started = app.state.media.workers_started();
    assert!(
        healthy(&app).await,
        "the server answers during the transcode"
    );
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(job.await.unwrap().unwrap(), "the attempt ran");
    assert!(
        healthy(&app).await,
        "the server answers after the worker died"
    );
    assert!(!process_exists(pid), "the killed worker is reaped");

    let failed = clip_job(&app).await;
    assert_eq!(failed.status.as_str(), "queued", "retried, not dead");
    assert_eq!(failed.attempts, 1);
    let error = failed.last_error.unwrap_or_default();
    assert!(
        error.contains("media-crashed") && error.contains("SIGKILL"),
        "{error}"
    );
    assert_eq!(failed.run_at, app.state.now() + 1_000, "after its backoff");
    assert_eq!(
        clip_state(&app, &key, &clip_id).await["status"],
        "processing"
    );

    app.clock.advance(1_000);
    assert_eq!(run_media_jobs(&app).await, 1);
    let clip = clip_state(&app, &key, &clip_id).await;
    assert_eq!(clip["status"], "ready", "{clip}");
    assert_eq!(clip["width"], 1920);
    assert!(
        app.state.media.workers_started() > started,
        "a fresh worker did the retry"
    );
    assert_eq!(crashes(&app).await, 1, "the crash is counted");
}

/// `make_browser_mp4` operations counted as crashed by the metrics.
async fn crashes(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .filter(|l| l.contains("media_failures_total{"))
        .filter(|l| {
            l.contains(r#"code="media-crashed""#) && l.contains(r#"operation="make_browser_mp4""#)
        })
        .filter_map(|l| l.rsplit(" ").next()?.parse::<u64>().ok())
        .sum()
}
dual!(a_worker_killed_mid_transcode_is_retried_and_the_clip_becomes_ready);

/// A clip that crashes its worker on every attempt fails with
/// `media-crashed` after `media_max_attempts`, and nothing else is hurt.
async fn a_clip_that_crashes_every_attempt_fails_with_media_crashed(backend: Backend) {
    let app = start(backend, |c| {
        c.media_max_attempts = 3;
        c.media_worker_command = faulty("crash", "make_browser_mp4");
    })
    .await;
    let (_, key) = app.store_with_catalog().await;
    // The upload's probe passes through to the real worker.
    let (s, clip) = upload(&app, &key, &fixture_path("h264.mp4")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();

    for attempt in 1..3 {
        assert_eq!(run_media_jobs(&app).await, 1, "attempt {attempt}");
        assert!(healthy(&app).await);
        let job = clip_job(&app).await;
        assert_eq!((job.status.as_str(), job.attempts), ("queued", attempt));
        assert!(job.last_error.unwrap_or_default().contains("SIGSEGV"));
        assert_eq!(
            clip_state(&app, &key, &clip_id).await["status"],
            "processing"
        );
        app.clock.advance(1_000 << (attempt - 1));
    }
    assert_eq!(run_media_jobs(&app).await, 1, "the last attempt");
    let clip = clip_state(&app, &key, &clip_id).await;
    assert_eq!(clip["status"], "failed", "{clip}");
    assert_eq!(clip["error"]["code"], "media-crashed", "{clip}");
    let message = clip["error"]["message"].as_str().unwrap();
    assert!(message.contains("last of 3 attempts"), "{message}");
    assert!(message.contains("SIGSEGV"), "{message}");
    assert_eq!(clip_job(&app).await.status.as_str(), "done");
    assert!(healthy(&app).await);
    // Another store's upload is still probed and accepted.
    let (_, other) = app.store("other", None).await;
    let (s, _) = upload(&app, &other, &fixture_path("h264.mp4")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}
dual!(a_clip_that_crashes_every_attempt_fails_with_media_crashed);

/// A worker that stops answering is killed at the time limit: the attempt
/// fails with `timeout`, the process is gone, and with no attempts left the
/// clip fails with `processing-failed`.
async fn a_hung_worker_is_killed_at_the_time_limit(backend: Backend) {
    let app = start(backend, |c| {
        c.media_max_attempts = 1;
        c.media_timeout_ms = 1_500;
        c.media_worker_command = faulty("hang", "make_browser_mp4");
    })
    .await;
    let (_, key) = app.store_with_catalog().await;
    let (s, clip) = upload(&app, &key, &fixture_path("h264.mp4")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();

    let job = next_media_job(&app);
    let pid = busy_with(&app, "make_browser_mp4").await;
    assert!(
        healthy(&app).await,
        "the server answers while the worker hangs"
    );
    assert!(job.await.unwrap().unwrap());
    assert!(
        !process_exists(pid),
        "the hung worker was killed and reaped"
    );
    assert!(app.state.media.busy_workers().is_empty());
    let clip = clip_state(&app, &key, &clip_id).await;
    assert_eq!(clip["status"], "failed", "{clip}");
    assert_eq!(clip["error"]["code"], "processing-failed", "{clip}");
    let message = clip["error"]["message"].as_str().unwrap();
    assert!(message.contains("timeout"), "{message}");
}
dual!(a_hung_worker_is_killed_at_the_time_limit);

/// An upload whose probe ends the worker twice is refused with
/// `media-crashed`; nothing of it is stored.
async fn an_upload_that_crashes_the_probe_is_refused(backend: Backend) {
    let app = start(backend, |c| {
        c.media_worker_command = faulty("crash", "probe");
    })
    .await;
    let (_, key) = app.store_with_catalog().await;
    let (s, body) = upload(&app, &key, &fixture_path("h264.mp4")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(common::code(&body), "media-crashed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("twice") && message.contains("SIGSEGV"),
        "{body}"
    );
    assert_eq!(
        app.state.media.workers_started(),
        2,
        "a fresh worker for the second try"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM clips").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert!(common::files_under(&app.state.config.data_dir.join("blobs")).is_empty());
    assert!(healthy(&app).await);
}
dual!(an_upload_that_crashes_the_probe_is_refused);

fn worker_runner(memory_mb: u64, cpu_seconds: u64) -> MediaRunner {
    MediaRunner::new(MediaLimits::default()).with_workers(WorkerCommand {
        program: RECOUNT.into(),
        args: vec![
            "media-worker".into(),
            "--memory-mb".into(),
            memory_mb.to_string().into(),
        ],
        cpu_seconds,
    })
}

/// Workers are reused: many operations, one process.
#[tokio::test]
async fn one_worker_serves_operation_after_operation() {
    let runner = worker_runner(4_096, 60);
    for _ in 0..5 {
        let info = runner.probe(fixture_path("h264.mp4")).await.unwrap();
        assert_eq!(info.codec, "h264");
    }
    assert_eq!(runner.workers_started(), 1);
    let err = runner.probe(fixture_path("text.mp4")).await.unwrap_err();
    assert_eq!(err.code, "not-video", "a refusal answers like in process");
    runner.probe(fixture_path("h264.mp4")).await.unwrap();
    assert_eq!(runner.workers_started(), 1, "and keeps the worker");
}

/// The limits a worker sets on itself, as the kernel reports them.
fn limits_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap()
}

/// The value column of a `/proc/<pid>/limits` line.
fn soft_limit<'a>(limits: &'a str, name: &str) -> &'a str {
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
    line[name.len()..].split_whitespace().next().unwrap()
}

/// The limits are in force in the worker: no core files, a bounded address
/// space, and a CPU allowance set per operation.
#[tokio::test]
async fn a_worker_runs_under_its_memory_and_cpu_limits() {
    let runner = worker_runner(512, 7);
    runner.probe(fixture_path("h264.mp4")).await.unwrap();
    let pids = runner.worker_pids();
    assert_eq!(pids.len(), 1);
    let limits = limits_of(pids[0]);
    assert_eq!(soft_limit(&limits, "Max core file size"), "0", "{limits}");
    let address_space: u64 = soft_limit(&limits, "Max address space").parse().unwrap();
    let mapped = std::fs::read_to_string(format!("/proc/{}/statm", pids[0])).unwrap();
    let mapped: u64 = mapped
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096;
    assert!(
        address_space > mapped && address_space <= mapped + (512 << 20) + (64 << 20),
        "the address space is what the worker maps plus 512 MiB: {address_space} vs {mapped}"
    );
    let cpu: u64 = soft_limit(&limits, "Max cpu time").parse().unwrap();
    assert!((7..=8).contains(&cpu), "7 s beyond what it used: {cpu}");
}

/// The memory limit holds: a worker allowed a single MiB beyond the program
/// cannot transcode a 1080p clip, and the failure is never blamed on the
/// upload.
#[tokio::test]
async fn a_worker_past_its_memory_limit_fails_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let tight = worker_runner(1, 60);
    let err = tight
        .make_browser_mp4(slow_clip(), &out, None, Default::default())
        .await
        .unwrap_err();
    assert!(!err.client_fault(), "{err}");
    assert!(!out.exists());
    let roomy = worker_runner(4_096, 60);
    roomy
        .make_browser_mp4(slow_clip(), &out, None, Default::default())
        .await
        .unwrap();
}

/// The CPU limit holds: a transcode needing more than a second of CPU ends
/// its worker with SIGXCPU when one second is allowed.
#[tokio::test]
async fn a_worker_past_its_cpu_limit_is_ended_by_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let runner = worker_runner(4_096, 1);
    let err = runner
        .make_browser_mp4(
            slow_clip(),
            dir.path().join("out.mp4"),
            None,
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "media-crashed", "{err}");
    assert!(err.message.contains("SIGXCPU"), "{err}");
    assert!(!dir.path().join("out.mp4").exists());
}
