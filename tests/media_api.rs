//! Clips over real HTTP, on SQLite and PostgreSQL: upload, processing by the
//! media jobs on real FFmpeg, task readiness, access rules, byte ranges.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use common::{code, event, Backend, TestApp};
use recount::auth::Role;

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/fixtures/media/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn upload(app: &TestApp, key: &str, name: &str, start: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(format!("{}/api/v1/clips", app.base))
        .bearer_auth(key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-1")
        .body(fixture(name));
    if let Some(s) = start {
        req = req.header("x-clip-start", s);
    }
    common::read(req.send().await.unwrap()).await
}

/// Runs media jobs until none is due.
async fn run_media_jobs(app: &TestApp) -> usize {
    let client = recount::jobs::webhook::client(&app.state.config);
    let mut n = 0;
    while recount::jobs::run_next_job(&app.state, &client, recount::jobs::MEDIA_JOBS)
        .await
        .unwrap()
    {
        n += 1;
        assert!(n < 50, "media jobs never settle");
    }
    n
}

async fn get(app: &TestApp, path: &str, bearer: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(bearer);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

async fn a_clip_is_processed_and_its_task_waits_for_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;

    let (s, clip) = upload(&app, &key, "h264.mp4", Some("2026-11-25T09:59:58Z")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    assert_eq!(clip["status"], "processing");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();

    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["clips"] = json!([clip_id]);
    let (s, out) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    // The task waits for its video.
    assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);

    assert!(
        run_media_jobs(&app).await >= 2,
        "a clip job and a poster job"
    );
    let (_, status) = app
        .call(Method::GET, &format!("/api/v1/clips/{clip_id}"), &key, None)
        .await;
    assert_eq!(status["status"], "ready", "{status}");
    assert!(status["duration_ms"].as_i64().unwrap() > 0);
    assert!(status["width"].as_i64().unwrap() > 0);

    let (s, claim) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let c = &claim["task"]["clips"][0];
    assert_eq!(c["clip_id"], clip_id.as_str());
    assert_eq!(c["camera_id"], "cam-1");
    assert_eq!(
        c["event_offset_ms"], 2000,
        "the event is 2 s after the clip starts"
    );
    assert_eq!(
        c["filmstrip"]["timestamps_ms"].as_array().unwrap().len(),
        10
    );
    let video_url = c["video_url"].as_str().unwrap().to_string();
    let poster_url = c["poster_url"].as_str().unwrap().to_string();

    // The lease holder streams the video by ranges.
    let resp = get(&app, &video_url, &ann, Some("bytes=0-99")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let total: u64 = resp.headers()["content-range"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(resp.headers()["content-range"]
        .to_str()
        .unwrap()
        .starts_with("bytes 0-99/"));
    let head = resp.bytes().await.unwrap();
    assert_eq!(head.len(), 100);
    assert_eq!(&head[4..8], b"ftyp");
    let resp = get(
        &app,
        &video_url,
        &ann,
        Some(&format!("bytes={}-", total - 10)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().len(), 10);
    let resp = get(&app, &video_url, &ann, Some(&format!("bytes={total}-"))).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let whole = get(&app, &video_url, &ann, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().len() as u64, total);

    let poster = get(&app, &poster_url, &ann, None).await;
    assert_eq!(poster.status(), StatusCode::OK);
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    assert_eq!(&poster.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);

    // Someone without the lease may not look; another store sees nothing.
    let resp = get(&app, &video_url, &bob, None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, other) = app.store("Other", None).await;
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/v1/clips/{clip_id}"),
            &other,
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-clip"));
    // The owning store may.
    assert_eq!(
        get(&app, &video_url, &key, Some("bytes=0-0"))
            .await
            .status(),
        StatusCode::PARTIAL_CONTENT
    );

    // Views from byte 0 are audited: the first range, the whole file, the poster, the store's.
    assert_eq!(app.count("SELECT COUNT(*) FROM clip_views").await, 4);
}
dual!(a_clip_is_processed_and_its_task_waits_for_it);

async fn a_corrupt_clip_fails_with_its_code_and_the_task_is_still_reviewable(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let (s, good) = upload(&app, &key, "vp9.webm", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{good}");
    let (s, bad) = upload(&app, &key, "corrupt-middle.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{bad}");
    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["clips"] = json!([good["clip_id"], bad["clip_id"]]);
    app.events(&key, ev).await;
    run_media_jobs(&app).await;

    let bad_id = bad["clip_id"].as_str().unwrap();
    let (_, status) = app
        .call(Method::GET, &format!("/api/v1/clips/{bad_id}"), &key, None)
        .await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["code"], "corrupt-video");

    let (s, claim) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let clips = claim["task"]["clips"].as_array().unwrap();
    assert_eq!(clips[0]["status"], "ready");
    assert!(clips[0]["video_url"].is_string());
    assert_eq!(clips[1]["status"], "failed");
    assert_eq!(clips[1]["error"]["code"], "corrupt-video");
    assert_eq!(clips[1]["video_url"], Value::Null);
    // Without a start time the poster is taken mid-clip.
    assert_eq!(
        clips[0]["event_offset_ms"].as_i64(),
        clips[0]["duration_ms"].as_i64().map(|d| d / 2)
    );
    let task = claim["task"]["task_id"].as_str().unwrap();
    let (s, v) = app.verdict(&ann, task, json!({"cant_tell": true})).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("escalated"))
    );
}
dual!(a_corrupt_clip_fails_with_its_code_and_the_task_is_still_reviewable);

async fn uploads_that_are_not_usable_video_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.max_upload_bytes = 100_000).await;
    let (_, key) = app.store_with_catalog().await;
    for (name, expected) in [
        ("empty.mp4", "empty-file"),
        ("text.mp4", "not-video"),
        ("truncated.mp4", "truncated"),
        ("audio-only.m4a", "no-video-stream"),
        ("ffv1.mkv", "unsupported-codec"),
    ] {
        let (s, b) = upload(&app, &key, name, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, expected),
            "{name}: {b}"
        );
    }
    let (s, b) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "upload-too-large")
    );
    let (s, b) = app
        .call_raw(
            Method::POST,
            "/api/v1/clips",
            &key,
            "text/plain",
            fixture("vp9.webm"),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
    );
    let (s, b) = app
        .call_raw(
            Method::POST,
            "/api/v1/clips",
            &key,
            "video/webm",
            fixture("vp9.webm"),
        )
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing-camera-id")
    );
    let labeler = app.user("ann", Role::Labeler).await;
    let (s, b) = upload(&app, &labeler, "vp9.webm", None).await;
    assert_eq!((s, code(&b)), (StatusCode::FORBIDDEN, "store-key-required"));
    let (s, b) = upload(&app, &key, "vp9.webm", Some("noon")).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-timestamp")
    );

    // An upload cut off mid-body stores nothing.
    let host = app.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/v1/clips HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n\
         content-type: video/mp4\r\nx-camera-id: cam-1\r\ncontent-length: 90000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&fixture("h264.mp4")[..5000]).await.unwrap();
    sock.shutdown().await.unwrap();
    drop(sock);

    // Nothing was stored: no clip, no job, no blob, no temporary file left.
    // (The cut-off upload is checked once the server has seen the end.)
    let blobs = app.data_dir.path().join("blobs");
    let scratch = app.state.scratch.clone();
    let settled = wait_until(|| {
        std::fs::read_dir(&scratch)
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    })
    .await;
    assert!(
        settled,
        "temporary upload files were left in {}",
        scratch.display()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM clips").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    let stored = walk(&blobs);
    assert!(stored.is_empty(), "blobs stored: {stored:?}");
}
dual!(uploads_that_are_not_usable_video_are_refused_and_nothing_is_stored);

/// Polls a condition for up to five seconds (the server finishes the
/// cut-off request on its own schedule).
async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn events_must_name_clips_of_their_own_store(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let (_, other) = app.store("Other", None).await;
    let (_, clip) = upload(&app, &other, "vp9.webm", None).await;
    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["clips"] = json!([clip["clip_id"]]);
    let (s, b) = app.events(&key, ev.clone()).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-clip")
    );
    ev["clips"] = json!(["no-such-clip"]);
    let (s, b) = app.events(&key, ev).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-clip")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 0);
}
dual!(events_must_name_clips_of_their_own_store);

async fn events_can_name_windows_of_camera_footage(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let resp = app
        .http
        .post(format!("{}/api/v1/footage", app.base))
        .bearer_auth(&key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-1")
        .header("x-footage-start", "2026-11-25T10:00:00Z")
        .body(fixture("h264.mp4"))
        .send()
        .await
        .unwrap();
    let (s, footage) = common::read(resp).await;
    assert_eq!(s, StatusCode::CREATED, "{footage}");
    assert_eq!(footage["started_at"], "2026-11-25T10:00:00.000Z");
    assert_eq!(footage["duration_ms"], 4000);
    assert_eq!(footage["ended_at"], "2026-11-25T10:00:04.000Z");

    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["occurred_at"] = json!("2026-11-25T10:00:03Z");
    ev["cameras"] = json!([
        {"camera_id": "cam-1", "from": "2026-11-25T10:00:02.500Z", "to": "2026-11-25T10:00:03.500Z"},
        {"camera_id": "cam-2", "from": "2026-11-25T10:00:02.500Z", "to": "2026-11-25T10:00:03.500Z"},
        {"camera_id": "cam-1", "from": "2026-11-25T10:00:02.500Z", "to": "2026-11-25T10:00:03.500Z", "accuracy": "frame"},
    ]);
    let (s, out) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    run_media_jobs(&app).await;

    let (s, claim) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let clips = claim["task"]["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 3);
    // A stream-copy cut starts at the keyframe before the window (2 s) and
    // covers it; the event instant is counted from the cut's real start.
    assert_eq!(clips[0]["status"], "ready", "{}", clips[0]);
    assert_eq!(clips[0]["event_offset_ms"], 1000);
    assert!(
        clips[0]["duration_ms"].as_i64().unwrap() >= 1500,
        "{}",
        clips[0]
    );
    assert!(clips[0]["poster_url"].is_string());
    // No footage of cam-2: that clip fails with footage-gap; the task is still reviewable.
    assert_eq!(clips[1]["status"], "failed");
    assert_eq!(clips[1]["error"]["code"], "footage-gap");
    // A frame-accurate cut starts and ends within a frame of the window.
    assert_eq!(clips[2]["status"], "ready", "{}", clips[2]);
    let offset = clips[2]["event_offset_ms"].as_i64().unwrap();
    let duration = clips[2]["duration_ms"].as_i64().unwrap();
    assert!((450..=550).contains(&offset), "{}", clips[2]);
    assert!((900..=1100).contains(&duration), "{}", clips[2]);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("recount_media_operation_seconds_count{operation=\"make_browser_mp4\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recount_job_attempts_total{kind=\"clip-process\",result=\"done\"} 2"),
        "{metrics}"
    );

    // Footage needs its start time.
    let resp = app
        .http
        .post(format!("{}/api/v1/footage", app.base))
        .bearer_auth(&key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-1")
        .body(fixture("h264.mp4"))
        .send()
        .await
        .unwrap();
    let (s, b) = common::read(resp).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing-footage-start")
    );
}
dual!(events_can_name_windows_of_camera_footage);
