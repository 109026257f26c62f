//! Clips over real HTTP, on SQLite and PostgreSQL: upload, processing by the
//! media jobs on real FFmpeg, task readiness, access rules, byte ranges.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use common::{code, event, files_under, fixture, run_media_jobs, Backend, TestApp};
use recount::auth::Role;
use recount::db::clips;
use recount::db::new_id;
use recount::review::media::{Swept, UPLOAD_GRACE_MS};

const UNSURE: &[(&str, f64)] = &[("milk", 0.55), ("cola", 0.30)];

/// Posts a fixture as camera `cam-1`'s video to `/api/v1/{route}`, with
/// its start time as `(header, value)` when given.
/// A video upload of fixture `name` to `route`, from camera `cam-1`.
fn video_request(app: &TestApp, key: &str, route: &str, name: &str) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}/api/v1/{route}", app.base))
        .bearer_auth(key)
        .header("content-type", "video/mp4")
        .header("x-camera-id", "cam-1")
        .body(fixture(name))
}

async fn post_video(
    app: &TestApp,
    key: &str,
    route: &str,
    name: &str,
    start: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut req = video_request(app, key, route, name);
    if let Some((header, value)) = start {
        req = req.header(header, value);
    }
    common::read(req.send().await.unwrap()).await
}

async fn upload(app: &TestApp, key: &str, name: &str, start: Option<&str>) -> (StatusCode, Value) {
    post_video(app, key, "clips", name, start.map(|s| ("x-clip-start", s))).await
}

async fn get(app: &TestApp, path: &str, bearer: &str, range: Option<&str>) -> reqwest::Response {
    send(app, Method::GET, path, bearer, range).await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(bearer);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

/// The status of a GET and its error code (empty when it succeeded).
async fn answer(app: &TestApp, path: &str, bearer: &str) -> (StatusCode, String) {
    let (status, body) = common::read(get(app, path, bearer, None).await).await;
    let code = if status.is_success() { "" } else { code(&body) };
    (status, code.to_string())
}

async fn upload_footage(
    app: &TestApp,
    key: &str,
    name: &str,
    start: Option<&str>,
) -> (StatusCode, Value) {
    let start = start.map(|s| ("x-footage-start", s));
    post_video(app, key, "footage", name, start).await
}

/// Uploads `h264.mp4` (starting 2 s before the events), posts one unsure
/// event naming it per id, and processes it all; returns the clip id.
async fn clip_shown_by(app: &TestApp, key: &str, event_ids: &[&str]) -> String {
    let (s, clip) = upload(app, key, "h264.mp4", Some("2026-11-25T09:59:58Z")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();
    for (i, id) in event_ids.iter().enumerate() {
        let mut ev = event(id, &format!("s{i}"), "pick", 1, UNSURE);
        ev["clips"] = json!([clip_id]);
        let (s, out) = app.events(key, ev).await;
        assert_eq!(s, StatusCode::OK, "{out}");
    }
    run_media_jobs(app).await;
    clip_id
}

/// Claims a task; returns its id.
async fn claim_task(app: &TestApp, token: &str) -> String {
    let (s, claim) = app.claim(token).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    claim["task"]["task_id"].as_str().unwrap().to_string()
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
    assert_eq!(
        resp.headers()["cache-control"],
        "private, max-age=300",
        "shopper video is not kept in a labeler's browser"
    );
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
        get(&app, &video_url, &key, Some("bytes=0-1023"))
            .await
            .status(),
        StatusCode::PARTIAL_CONTENT
    );

    // Views are audited, one per viewer and artifact per viewing: ann's
    // video (its ranges and the whole file), her poster, the store's video.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'clip.viewed'")
            .await,
        3
    );
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
    let stored = files_under(&blobs);
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
    let (s, footage) = upload_footage(&app, &key, "h264.mp4", Some("2026-11-25T10:00:00Z")).await;
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
    let (s, b) = upload_footage(&app, &key, "h264.mp4", None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "missing-footage-start")
    );
}
dual!(events_can_name_windows_of_camera_footage);

async fn a_task_poster_is_only_for_the_labeler_holding_that_task(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let bob = app.user("bob", Role::Labeler).await;
    let carol = app.user("carol", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let (_, other_store) = app.store("Other", None).await;
    // Two events, so two tasks, show the same clip: ann holds one, bob the other.
    let clip_id = clip_shown_by(&app, &key, &["e1", "e2"]).await;
    let ann_task = claim_task(&app, &ann).await;
    let bob_task = claim_task(&app, &bob).await;
    assert_ne!(ann_task, bob_task);
    let poster = |task: &str| format!("/api/v1/tasks/{task}/clips/{clip_id}/poster");
    let clip_routes = [
        format!("/api/v1/clips/{clip_id}"),
        format!("/api/v1/clips/{clip_id}/video"),
        format!("/api/v1/clips/{clip_id}/filmstrip"),
    ];
    let ok = (StatusCode::OK, String::new());
    let forbidden = (StatusCode::FORBIDDEN, "clip-forbidden".to_string());

    // Each labeler sees the clip, but only the poster of the task they hold.
    for (token, own, others) in [(&ann, &ann_task, &bob_task), (&bob, &bob_task, &ann_task)] {
        for route in &clip_routes {
            assert_eq!(answer(&app, route, token).await, ok, "{route}");
        }
        assert_eq!(answer(&app, &poster(own), token).await, ok);
        assert_eq!(
            answer(&app, &poster(others), token).await,
            forbidden,
            "a labeler fetched the poster of another labeler's task"
        );
        assert_eq!(
            answer(&app, &poster("no-such-task"), token).await,
            forbidden
        );
    }
    // A labeler holding nothing gets nothing, on every route alike.
    for route in clip_routes.iter().chain([&poster(&ann_task)]) {
        assert_eq!(answer(&app, route, &carol).await, forbidden, "{route}");
    }
    // The owning store and supervisors see every task's poster; another
    // store is told the clip does not exist, on every route alike.
    for token in [&key, &sue] {
        assert_eq!(answer(&app, &poster(&ann_task), token).await, ok);
        assert_eq!(answer(&app, &poster(&bob_task), token).await, ok);
        assert_eq!(
            answer(&app, &poster("no-such-task"), token).await,
            (StatusCode::NOT_FOUND, "clip-not-ready".to_string())
        );
    }
    for route in clip_routes.iter().chain([&poster(&ann_task)]) {
        assert_eq!(
            answer(&app, route, &other_store).await,
            (StatusCode::NOT_FOUND, "unknown-clip".to_string()),
            "{route}"
        );
    }
    // Once ann has answered, her task's poster is closed to her too.
    let (s, v) = app
        .verdict(&ann, &ann_task, json!({"cant_tell": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(answer(&app, &poster(&ann_task), &ann).await, forbidden);
    assert_eq!(answer(&app, &clip_routes[1], &ann).await, forbidden);
    assert_eq!(answer(&app, &poster(&bob_task), &bob).await, ok);
}
dual!(a_task_poster_is_only_for_the_labeler_holding_that_task);

async fn every_get_that_sends_bytes_is_a_view_once_per_viewing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (_, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let clip_id = clip_shown_by(&app, &key, &["e1"]).await;
    let task = claim_task(&app, &ann).await;
    let video = format!("/api/v1/clips/{clip_id}/video");
    let filmstrip = format!("/api/v1/clips/{clip_id}/filmstrip");
    let poster = format!("/api/v1/tasks/{task}/clips/{clip_id}/poster");
    let views = || app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'clip.viewed'");

    // HEAD answers like GET, without a body and without a view.
    let resp = send(&app, Method::HEAD, &video, &ann, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    let size: u64 = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 1000, "{size}");
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = send(&app, Method::HEAD, &video, &ann, Some("bytes=0-99")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()["content-length"], "100");
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 0-99/{size}")
    );
    for path in [&filmstrip, &poster] {
        let resp = send(&app, Method::HEAD, path, &ann, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
    }
    assert_eq!(views().await, 0, "HEAD requests were recorded as views");

    // A probe of the first bytes is no view; a refused range neither.
    let resp = get(&app, &video, &ann, Some("bytes=0-1")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().len(), 2);
    let resp = get(&app, &video, &ann, Some(&format!("bytes={size}-"))).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(views().await, 0);

    // A range anywhere is a view, and the ranges and reloads of one
    // playback are that one view.
    let resp = get(&app, &video, &ann, Some("bytes=100-199")).await;
    assert_eq!(resp.bytes().await.unwrap().len(), 100);
    assert_eq!(
        views().await,
        1,
        "a range not from byte 0 shows the clip too"
    );
    let resp = get(&app, &video, &ann, Some("bytes=0-")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);
    let resp = get(&app, &video, &ann, None).await;
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);
    assert_eq!(views().await, 1);
    // An end far past the last byte is cut to it, not overflowed.
    let resp = get(&app, &video, &ann, Some("bytes=0-18446744073709551615")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 0-{}/{size}", size - 1)
    );
    for path in [&filmstrip, &poster] {
        let resp = get(&app, path, &ann, None).await;
        assert_eq!(&resp.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    }
    assert_eq!(views().await, 3);
    // Another viewer's look is theirs; the same viewer later is a new view.
    let sue = app.user("sue", Role::Supervisor).await;
    let resp = get(&app, &video, &sue, Some("bytes=500-")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(views().await, 4);
    app.clock.advance(11 * 60_000);
    let resp = get(&app, &video, &sue, Some("bytes=500-")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(views().await, 5);
    // Each view names the viewer, the artifact and, for the lease holder,
    // the task she watched it for.
    for (artifact, task_id, n) in [
        ("video", json!(task), 1),
        ("video", json!(null), 2),
        ("filmstrip", json!(task), 1),
        ("poster", json!(task), 1),
    ] {
        let detail = json!({"artifact": artifact, "task_id": task_id}).to_string();
        let sql = format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'clip.viewed' AND subject = '{clip_id}' \
             AND actor_kind = 'user' AND detail = '{detail}'"
        );
        assert_eq!(app.count(&sql).await, n, "{artifact} {task_id}");
    }
}
dual!(every_get_that_sends_bytes_is_a_view_once_per_viewing);

/// The keys stored in the local blob directory, sorted.
fn stored_keys(app: &TestApp) -> Vec<String> {
    let root = app.data_dir.path().join("blobs");
    let mut keys: Vec<String> = files_under(&root)
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    keys.sort();
    keys
}

async fn interrupted_uploads_are_swept_and_accepted_ones_never_are(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    // Accepted: a clip and a recording.
    let (s, clip) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();
    let (s, footage) = upload_footage(&app, &key, "vp9.webm", Some("2026-11-25T10:00:00Z")).await;
    assert_eq!(s, StatusCode::CREATED, "{footage}");
    let footage_id = footage["footage_id"].as_str().unwrap().to_string();
    let accepted = [
        clips::blob_key(&store_id, &clip_id, "source"),
        clips::footage_key(&store_id, &footage_id),
    ];

    // What crashes leave: a clip row still uploading with its blob, a
    // recording still uploading without one, and blobs no row owns.
    let db = app.state.db.writer();
    let (stuck_clip, stuck_footage) = (new_id(), new_id());
    let stuck_key = clips::blob_key(&store_id, &stuck_clip, "source");
    sqlx::query(
        "INSERT INTO clips (id, store_id, camera_id, status, source_key, created_at, updated_at) \
         VALUES ($1, $2, 'cam-1', 'uploading', $3, $4, $4)",
    )
    .bind(&stuck_clip)
    .bind(&store_id)
    .bind(&stuck_key)
    .bind(app.state.now())
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO footage (id, store_id, camera_id, started_at, ended_at, size_bytes, source_key, \
         created_at, status) VALUES ($1, $2, 'cam-9', $3, $4, 0, $5, $3, 'uploading')",
    )
    .bind(&stuck_footage)
    .bind(&store_id)
    .bind(common::T0)
    .bind(common::T0 + 4_000)
    .bind(clips::footage_key(&store_id, &stuck_footage))
    .execute(db)
    .await
    .unwrap();
    let orphans = [
        clips::blob_key(&store_id, &new_id(), "source"),
        clips::footage_key(&store_id, &new_id()),
    ];
    for k in orphans.iter().chain([&stuck_key]) {
        app.state
            .blobs
            .put_bytes(k, fixture("vp9.webm"))
            .await
            .unwrap();
    }

    // An upload that has not finished does not exist for the API: its clip
    // is unknown, and its recording covers no window.
    assert_eq!(
        answer(&app, &format!("/api/v1/clips/{stuck_clip}"), &key).await,
        (StatusCode::NOT_FOUND, "unknown-clip".to_string())
    );
    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["clips"] = json!([stuck_clip]);
    let (s, b) = app.events(&key, ev.clone()).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown-clip")
    );
    ev["clips"] = json!([]);
    ev["cameras"] = json!([{"camera_id": "cam-9", "from": "2026-11-25T10:00:01Z", "to": "2026-11-25T10:00:02Z"}]);
    let (s, b) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM clips WHERE camera_id = 'cam-9' AND error_code = 'footage-gap'"
        )
        .await,
        1
    );

    // Too young to be taken for abandoned: they may be uploads in progress.
    let mut all: Vec<String> = accepted.iter().chain(&orphans).cloned().collect();
    all.push(stuck_key.clone());
    all.sort();
    assert_eq!(
        recount::jobs::sweep_uploads(&app.state).await.unwrap(),
        Swept::default()
    );
    assert_eq!(stored_keys(&app), all);

    // Past the grace period (blob times are the wall clock's), the sweep a
    // restart runs removes them all, and nothing that was accepted.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let now = app.state.now();
    app.clock
        .advance(wall.max(now) + UPLOAD_GRACE_MS + 1_000 - now);
    let swept = recount::jobs::sweep_uploads(&app.state).await.unwrap();
    assert_eq!(swept, Swept { rows: 2, blobs: 2 });
    let mut kept = accepted.to_vec();
    kept.sort();
    assert_eq!(stored_keys(&app), kept);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM clips WHERE status = 'uploading'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM footage").await, 1);

    // The accepted clip is processed and served; the accepted recording is
    // still cut; a second sweep finds nothing to remove.
    let mut ev = event("e2", "s2", "pick", 1, UNSURE);
    ev["clips"] = json!([clip_id]);
    ev["cameras"] = json!([{"camera_id": "cam-1", "from": "2026-11-25T10:00:00.500Z", "to": "2026-11-25T10:00:01.500Z"}]);
    let (s, b) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let task_id = b["task_id"].as_str().expect("a review task").to_string();
    run_media_jobs(&app).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let (s, detail) = app
        .call(Method::GET, &format!("/api/v1/tasks/{task_id}"), &sue, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    let shown = detail["task"]["clips"].as_array().unwrap();
    assert_eq!(shown.len(), 2, "{detail}");
    for c in shown {
        assert_eq!(c["status"], "ready", "{c}");
        let resp = get(&app, c["video_url"].as_str().unwrap(), &sue, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(
        recount::jobs::sweep_uploads(&app.state).await.unwrap(),
        Swept::default()
    );
    let stored = stored_keys(&app);
    for k in &accepted {
        assert!(stored.contains(k), "{k} is gone: {stored:?}");
    }
}
dual!(interrupted_uploads_are_swept_and_accepted_ones_never_are);

async fn an_upload_that_cannot_be_stored_leaves_nothing_behind(backend: Backend) {
    let app = TestApp::start_with(backend, |c| c.max_upload_bytes = 100_000).await;
    let (store_id, key) = app.store_with_catalog().await;
    let nothing_stored = || async {
        for table in ["clips", "footage", "jobs"] {
            let n = app.count(&format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(n, 0, "rows left in {table}");
        }
    };
    // Refused recordings (clips: see above) store nothing.
    for (name, status, expected) in [
        ("text.mp4", StatusCode::UNPROCESSABLE_ENTITY, "not-video"),
        (
            "truncated.mp4",
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated",
        ),
        (
            "h264.mp4",
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
        ),
    ] {
        let (s, b) = upload_footage(&app, &key, name, Some("2026-11-25T10:00:00Z")).await;
        assert_eq!((s, code(&b)), (status, expected), "{name}");
    }
    nothing_stored().await;
    assert_eq!(stored_keys(&app), Vec::<String>::new());

    // The blob store fails once the row is recorded: a file stands where
    // the store's directories go. The upload fails whole.
    let blockers = [format!("clips/{store_id}"), format!("footage/{store_id}")];
    let root = app.data_dir.path().join("blobs");
    for b in &blockers {
        std::fs::create_dir_all(root.join(b).parent().unwrap()).unwrap();
        std::fs::write(root.join(b), b"not a directory").unwrap();
    }
    let (s, b) = upload(&app, &key, "vp9.webm", None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal-error")
    );
    let (s, b) = upload_footage(&app, &key, "vp9.webm", Some("2026-11-25T10:00:00Z")).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal-error")
    );
    nothing_stored().await;
    assert_eq!(stored_keys(&app), blockers.to_vec());

    // Once the store works again, the same uploads are accepted.
    for b in &blockers {
        std::fs::remove_file(root.join(b)).unwrap();
    }
    let (s, b) = upload(&app, &key, "vp9.webm", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = upload_footage(&app, &key, "vp9.webm", Some("2026-11-25T10:00:00Z")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM clips WHERE status = 'processing'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM footage WHERE status = 'ready'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 1);
    assert_eq!(stored_keys(&app).len(), 2);
}
dual!(an_upload_that_cannot_be_stored_leaves_nothing_behind);

/// Removes a clip's stored upload, so every attempt at processing it fails
/// on Recount's side: the blob store cannot give the source back.
async fn lose_source(app: &TestApp, store_id: &str, clip_id: &str) {
    let source = clips::blob_key(store_id, clip_id, "source");
    app.state.blobs.delete(&source).await.unwrap();
}

/// (status, attempts, run_at) of the one job of `kind`.
async fn only_job(app: &TestApp, kind: &str) -> (String, i64, i64) {
    let jobs = recount::db::jobs::list(&app.state.db, kind).await.unwrap();
    assert_eq!(jobs.len(), 1, "one {kind} job");
    (
        jobs[0].status.as_str().to_string(),
        jobs[0].attempts,
        jobs[0].run_at,
    )
}

/// A clip that fails on our side at every attempt is retried
/// `media_max_attempts` times, even beyond `webhook_max_attempts`, and then
/// fails with `processing-failed`: its task stops waiting for it.
async fn a_clip_failing_on_our_side_fails_after_its_own_attempts(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.webhook_max_attempts = 2;
        c.media_max_attempts = 4;
        c.webhook_backoff_base_ms = 1_000;
        c.webhook_backoff_max_ms = 60_000;
    })
    .await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let (s, clip) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();
    lose_source(&app, &store_id, &clip_id).await;
    let mut ev = event("e1", "s1", "pick", 1, UNSURE);
    ev["clips"] = json!([clip_id]);
    let (s, out) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let path = format!("/api/v1/clips/{clip_id}");

    for attempt in 1..4 {
        assert_eq!(run_media_jobs(&app).await, 1, "attempt {attempt}");
        let (_, status) = app.call(Method::GET, &path, &key, None).await;
        assert_eq!(
            status["status"], "processing",
            "attempt {attempt}: {status}"
        );
        assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);
        let backoff = 1_000 << (attempt - 1);
        assert_eq!(
            only_job(&app, "clip-process").await,
            ("queued".to_string(), attempt, app.state.now() + backoff),
            "attempt {attempt} is retried after 1 s, 2 s, 4 s"
        );
        app.clock.advance(backoff);
    }
    assert_eq!(run_media_jobs(&app).await, 1, "the last attempt");
    let (s, status) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["error"]["code"], "processing-failed", "{status}");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.contains("after 4 attempts"), "{message}");
    let (job_status, attempts, _) = only_job(&app, "clip-process").await;
    assert_eq!((job_status.as_str(), attempts), ("dead", 4));
    // The task goes on without the clip.
    let (s, claim) = app.claim(&ann).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    assert_eq!(claim["task"]["clips"][0]["status"], "failed");

    app.clock.advance(3_600_000);
    assert_eq!(run_media_jobs(&app).await, 0, "no attempt after the last");
}
dual!(a_clip_failing_on_our_side_fails_after_its_own_attempts);

/// A webhook receiver that answers every delivery with 500.
async fn failing_receiver() -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// One worker taking webhooks and clips: the webhook dies after
/// `webhook_max_attempts`, the clip job after `media_max_attempts`.
async fn each_kind_of_job_retries_under_its_own_limit(backend: Backend) {
    let app = TestApp::start_with(backend, |c| {
        c.webhook_max_attempts = 2;
        c.media_max_attempts = 3;
        c.webhook_backoff_base_ms = 1_000;
        c.webhook_backoff_max_ms = 1_000;
    })
    .await;
    let url = failing_receiver().await;
    let (store_id, key) = app.store("Hooked", Some(&url)).await;
    app.catalog(&key).await;
    let (s, clip) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{clip}");
    let clip_id = clip["clip_id"].as_str().unwrap().to_string();
    lose_source(&app, &store_id, &clip_id).await;
    let (s, receipt) = app.exit(&key, "s1", "2026-11-25T10:00:00Z").await;
    assert_eq!(
        (s, receipt["status"].as_str()),
        (StatusCode::OK, Some("final"))
    );

    let client = recount::jobs::webhook::client(&app.state.config);
    let kinds = ["receipt-webhook", "clip-process"];
    let mut states = Vec::new();
    for _ in 0..4 {
        let mut ran = 0;
        while recount::jobs::run_next_job(&app.state, &client, &kinds)
            .await
            .unwrap()
        {
            ran += 1;
        }
        let (webhook, webhook_attempts, _) = only_job(&app, "receipt-webhook").await;
        let (media, media_attempts, _) = only_job(&app, "clip-process").await;
        states.push((ran, webhook, webhook_attempts, media, media_attempts));
        app.clock.advance(1_000);
    }
    let expected = [
        (2, "queued", 1, "queued", 1),
        (2, "dead", 2, "queued", 2),
        (1, "dead", 2, "dead", 3),
        (0, "dead", 2, "dead", 3),
    ];
    let states: Vec<_> = states
        .iter()
        .map(|(n, w, wa, m, ma)| (*n, w.as_str(), *wa, m.as_str(), *ma))
        .collect();
    assert_eq!(states, expected);
    let (_, status) = app
        .call(Method::GET, &format!("/api/v1/clips/{clip_id}"), &key, None)
        .await;
    assert_eq!(status["error"]["code"], "processing-failed", "{status}");
}
dual!(each_kind_of_job_retries_under_its_own_limit);

/// One store's backlog does not hold another store's media back: with
/// 2,000 of store A's clips queued before store B's one, B's job is the
/// second taken (after one job of A's per worker), then A's go on in order.
async fn a_stores_backlog_delays_another_stores_clip_by_at_most_one_job(backend: Backend) {
    use recount::clock::Clock;
    use recount::db::jobs;
    use recount::domain::job::{JobKind, ProcessClip};
    let app = TestApp::start(backend).await;
    let db = &app.state.db;
    let now = app.clock.now_ms();
    let mut tx = db.begin().await.unwrap();
    let mut a_jobs = Vec::new();
    for i in 0..2_000 {
        let job = ProcessClip {
            clip_id: format!("a-{i}"),
        };
        a_jobs.push(
            jobs::enqueue(&mut tx, &job, Some("store-a"), now, now)
                .await
                .unwrap(),
        );
    }
    let b = ProcessClip {
        clip_id: "b-0".into(),
    };
    let b_job = jobs::enqueue(&mut tx, &b, Some("store-b"), now + 1, now + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.clock.advance(1_000);

    // Each take a moment after the one before, as workers take jobs.
    let take = || async {
        app.clock.advance(1);
        recount::jobs::take_due(db, &[ProcessClip::KIND], app.clock.now_ms(), 60_000)
            .await
            .unwrap()
            .expect("a due job")
            .id
    };
    assert_eq!(take().await, a_jobs[0], "the oldest job first");
    assert_eq!(take().await, b_job, "then the store not yet served");
    assert_eq!(take().await, a_jobs[1]);
    assert_eq!(take().await, a_jobs[2]);
    // A store served again after a while waits for its turn once more.
    let b = ProcessClip {
        clip_id: "b-1".into(),
    };
    let mut tx = db.begin().await.unwrap();
    let b_next = jobs::enqueue(
        &mut tx,
        &b,
        Some("store-b"),
        app.clock.now_ms(),
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.clock.advance(1_000);
    assert_eq!(take().await, b_next, "B was served before A's last turn");
    assert_eq!(take().await, a_jobs[3]);
}
dual!(a_stores_backlog_delays_another_stores_clip_by_at_most_one_job);

/// A store's stored video has a limit: an upload past it is refused with
/// `507 storage-full` and stores nothing; other stores are not affected.
async fn an_upload_past_the_stores_storage_limit_is_refused(backend: Backend) {
    let size = fixture("h264.mp4").len() as u64;
    let app = TestApp::start_with(backend, |c| c.store_max_stored_bytes = size + size / 2).await;
    let (_, key) = app.store("Full", None).await;
    let (_, other) = app.store("Other", None).await;
    let (s, b) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::INSUFFICIENT_STORAGE, "storage-full")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM clips").await, 1);
    let (s, b) = upload(&app, &other, "h264.mp4", None).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "another store has its own room: {b}"
    );
}
dual!(an_upload_past_the_stores_storage_limit_is_refused);

/// A store sends at most `store_max_concurrent_uploads` uploads to an
/// instance at once: one more is refused with `429 too-many-uploads` and a
/// `Retry-After`, and goes through once a slot is free.
async fn a_store_past_its_concurrent_uploads_waits_its_turn(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::start_with(backend, |c| c.store_max_concurrent_uploads = 1).await;
    let (store_id, key) = app.store("Busy", None).await;
    // An upload that has sent its headers and a few bytes of a large body.
    let mut slow = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/clips HTTP/1.1\r\nHost: recount\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: video/mp4\r\nX-Camera-Id: cam-1\r\nContent-Length: 1000000\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[0u8; 1000]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.state.upload_slots.held(&store_id) == 0 {
        assert!(std::time::Instant::now() < deadline, "the upload started");
        tokio::task::yield_now().await;
    }

    let resp = video_request(&app, &key, "clips", "h264.mp4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    let (s, b) = common::read(resp).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::TOO_MANY_REQUESTS, "too-many-uploads")
    );

    // The slow upload goes away: its slot is free again.
    drop(slow);
    while app.state.upload_slots.held(&store_id) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot is given back"
        );
        tokio::task::yield_now().await;
    }
    let (s, b) = upload(&app, &key, "h264.mp4", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(app.count("SELECT COUNT(*) FROM clips").await, 1);
}
dual!(a_store_past_its_concurrent_uploads_waits_its_turn);
