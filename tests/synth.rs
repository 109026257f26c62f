//! Synthetic shelf footage: the clips are browser MP4s of the requested
//! shape, the picture shows what the scene says (the box leaves the shelf,
//! the hand is there at the event instant), and the demo's events come with
//! clips that go through the media jobs to claimable tasks.

use crate::common;

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use reqwest::{Method, StatusCode};

use common::{
    assert_moov_before_mdat, code, decode_frames, files_under, run_media_jobs, Backend, TestApp,
};
use recount::auth::Role;
use recount::db::new_id;
use recount::media::synth::{self, Rect, ShelfAction, ShelfCamera, ShelfScene};
use recount::media::{self, Cancel, MediaError, MediaLimits};
use recount::review::media::{store_clips, NewClip};

// ---------------------------------------------------------------- helpers

fn scene(action: ShelfAction, camera: ShelfCamera) -> ShelfScene {
    ShelfScene {
        seed: 7,
        ..ShelfScene::new(
            vec!["milk-1l".into(), "chocolate-dark".into(), "banana".into()],
            1,
            action,
            camera,
        )
    }
}

fn render(scene: &ShelfScene, dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let started = Instant::now();
    synth::render_shelf_clip(scene, &out, &Cancel::new()).expect("render");
    eprintln!(
        "rendered {}x{} {} ms at {} fps in {} ms",
        scene.width,
        scene.height,
        scene.duration_ms,
        scene.fps,
        started.elapsed().as_millis()
    );
    out
}

/// Mean colour of a rectangle.
fn mean(img: &RgbImage, r: Rect) -> [f64; 3] {
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            let p = img.get_pixel(x as u32, y as u32);
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mean absolute difference per channel inside `r`.
fn diff_in(a: &RgbImage, b: &RgbImage, r: Rect) -> f64 {
    let mut total = 0u64;
    let mut n = 0u64;
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w {
            let (p, q) = (
                a.get_pixel(x as u32, y as u32),
                b.get_pixel(x as u32, y as u32),
            );
            for c in 0..3 {
                total += u64::from(p[c].abs_diff(q[c]));
                n += 1;
            }
        }
    }
    total as f64 / n as f64
}

/// Pixels inside `r` that look like the hand's skin.
fn skin_pixels(img: &RgbImage, r: Rect) -> usize {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let mut n = 0;
    for y in r.y.max(0)..(r.y + r.h).min(h) {
        for x in r.x.max(0)..(r.x + r.w).min(w) {
            let p = img.get_pixel(x as u32, y as u32);
            let close = |v: u8, want: i32| (i32::from(v) - want).abs() <= 24;
            // Skin is warm: clearly more green than blue (unlike the pink
            // where a red box's colour bleeds into its white label).
            let warm = i32::from(p[1]) > i32::from(p[2]) + 15;
            if close(p[0], 228) && close(p[1], 180) && close(p[2], 142) && warm {
                n += 1;
            }
        }
    }
    n
}

fn whole(img: &RgbImage) -> Rect {
    Rect {
        x: 0,
        y: 0,
        w: img.width() as i32,
        h: img.height() as i32,
    }
}

/// `r` grown by `m` pixels on each side.
fn grown(r: Rect, m: i32) -> Rect {
    Rect {
        x: r.x - m,
        y: r.y - m,
        w: r.w + 2 * m,
        h: r.h + 2 * m,
    }
}

/// `r` shrunk by `m` pixels on each side (away from edges blurred by
/// chroma subsampling).
fn inset(r: Rect, m: i32) -> Rect {
    grown(r, -m)
}

// ---------------------------------------------------------------- the file

#[test]
fn a_clip_is_h264_yuv420p_of_the_requested_shape_with_moov_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(ShelfAction::Pick, ShelfCamera::Front);
    let out = render(&s, dir.path(), "front.mp4");
    let info = media::probe(&out, &MediaLimits::default(), &Cancel::new()).expect("probe");
    assert_eq!(info.codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert!(info.container.contains("mp4"), "{}", info.container);
    assert_eq!((info.width, info.height), (640, 360));
    assert_eq!(info.rotation, 0);
    assert!(!info.has_audio);
    assert_eq!(info.duration_ms, 4000);
    assert_eq!(info.frame_count, 60);
    assert!((info.fps - 15.0).abs() < 1e-6, "{} fps", info.fps);
    assert!(!info.variable_frame_rate);
    assert_eq!(info.keyframes_ms, vec![0, 1000, 2000, 3000]);
    assert!(info.is_browser_ready());

    assert_moov_before_mdat(&out);

    let frames = decode_frames(&out);
    assert_eq!(frames.len(), 60);
    let times: Vec<i64> = frames.iter().map(|(t, _)| *t).collect();
    let expected: Vec<i64> = (0..60)
        .map(|i| (f64::from(i) * 1000.0 / 15.0).round() as i64)
        .collect();
    assert_eq!(times, expected);
    // Sensor noise: even the still wall left of the shelf is never twice
    // the same picture.
    let wall = Rect {
        x: 0,
        y: 100,
        w: 60,
        h: 200,
    };
    for (i, pair) in frames.windows(2).enumerate() {
        let d = diff_in(&pair[0].1, &pair[1].1, wall);
        assert!(d > 0.05, "frames {i} and {} differ by only {d}", i + 1);
    }

    // Nothing but the output is left.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("front.mp4")]);
}

#[test]
fn size_rate_and_length_follow_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let s = ShelfScene {
        width: 320,
        height: 240,
        fps: 10,
        duration_ms: 2_500,
        event_ms: 1_200,
        ..scene(ShelfAction::Return, ShelfCamera::Side)
    };
    let out = render(&s, dir.path(), "small.mp4");
    let info = media::probe(&out, &MediaLimits::default(), &Cancel::new()).expect("probe");
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(info.duration_ms, 2500);
    assert_eq!(info.frame_count, 25);
    assert!((info.fps - 10.0).abs() < 1e-6, "{} fps", info.fps);
    assert_eq!(info.keyframes_ms, vec![0, 1000, 2000]);
}

#[test]
fn a_pick_takes_the_box_off_the_shelf_and_the_hand_is_there_at_the_event() {
    let dir = tempfile::tempdir().unwrap();
    for camera in ShelfCamera::ALL {
        let s = scene(ShelfAction::Pick, camera);
        let out = render(&s, dir.path(), &format!("{}.mp4", camera.name()));
        let frames = decode_frames(&out);
        let first = &frames[0].1;
        let last = &frames[frames.len() - 1].1;
        let event = &frames[(s.event_ms * s.fps / 1000) as usize].1;
        let taken = s.taken_box().unwrap();
        let region = inset(taken, 3);

        // The box is intact in the first frame: the picture matches the
        // drawn scene (label and all), up to noise and compression.
        let drawn = synth::render_shelf_frame(&s, 0).unwrap();
        let d = diff_in(first, &drawn, region);
        assert!(
            d < 10.0,
            "{camera:?}: first frame differs by {d} from the drawing"
        );
        // It is gone at the end: the slot shows the shelf's back.
        let change = distance(mean(first, region), mean(last, region));
        assert!(
            change > 40.0,
            "{camera:?}: the box's region changed by only {change}"
        );
        let drawn_last = synth::render_shelf_frame(&s, s.frame_count() - 1).unwrap();
        assert!(diff_in(last, &drawn_last, region) < 10.0, "{camera:?}");

        // No hand at the start or the end; a hand on the box at the event.
        assert_eq!(skin_pixels(first, whole(first)), 0, "{camera:?}");
        assert_eq!(skin_pixels(last, whole(last)), 0, "{camera:?}");
        let near = skin_pixels(event, grown(taken, 10));
        assert!(near > 800, "{camera:?}: {near} skin pixels at the event");
    }
}

#[test]
fn a_return_puts_the_box_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(ShelfAction::Return, ShelfCamera::Front);
    let out = render(&s, dir.path(), "return.mp4");
    let frames = decode_frames(&out);
    let (first, last) = (&frames[0].1, &frames[frames.len() - 1].1);
    let region = inset(s.taken_box().unwrap(), 3);
    let drawn_last = synth::render_shelf_frame(&s, s.frame_count() - 1).unwrap();
    assert!(diff_in(last, &drawn_last, region) < 10.0);
    assert!(distance(mean(first, region), mean(last, region)) > 40.0);
    // The pick's first frame is the return's last.
    let pick = synth::render_shelf_frame(&scene(ShelfAction::Pick, ShelfCamera::Front), 0).unwrap();
    assert!(diff_in(last, &pick, region) < 10.0);
    // Halfway in, the hand brings the box in from below.
    let approach = &frames[(s.event_ms * s.fps / 1000) as usize - 5].1;
    assert!(skin_pixels(approach, whole(approach)) > 500);
    assert_eq!(skin_pixels(first, whole(first)), 0);
}

#[test]
fn the_two_cameras_see_the_shelf_differently() {
    let front =
        synth::render_shelf_frame(&scene(ShelfAction::Pick, ShelfCamera::Front), 0).unwrap();
    let side = synth::render_shelf_frame(&scene(ShelfAction::Pick, ShelfCamera::Side), 0).unwrap();
    let d = diff_in(&front, &side, whole(&front));
    assert!(d > 20.0, "front and side differ by only {d}");
    let a = scene(ShelfAction::Pick, ShelfCamera::Front)
        .taken_box()
        .unwrap();
    let b = scene(ShelfAction::Pick, ShelfCamera::Side)
        .taken_box()
        .unwrap();
    assert_ne!(a, b);
}

#[test]
fn a_cancelled_render_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cancelled.mp4");
    let s = scene(ShelfAction::Pick, ShelfCamera::Front);
    let err = synth::render_shelf_clip(&s, &out, &Cancel::after_checks(10)).unwrap_err();
    assert_eq!(err.code, MediaError::CANCELLED);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let bad = ShelfScene {
        taken: 9,
        ..s.clone()
    };
    let err = synth::render_shelf_clip(&bad, &out, &Cancel::new()).unwrap_err();
    assert_eq!(err.code, MediaError::INVALID_OPTIONS);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------- the demo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_events_come_with_two_cameras_of_ready_video() {
    let app = TestApp::start(Backend::Sqlite).await;
    let creds = recount::demo::setup(&app.state).await.unwrap();
    let mut visits = Vec::new();
    // A session whose events are all confident opens no task: simulate
    // until one does (each step adds a session while fewer than 20 wait).
    let mut steps = 0;
    while app.count("SELECT COUNT(*) FROM review_tasks").await == 0 {
        steps += 1;
        assert!(steps <= 10, "ten demo sessions and not one task");
        recount::demo::simulate_step(&app.state, &creds.store_id, &mut visits)
            .await
            .unwrap();
    }
    let events = app.count("SELECT COUNT(*) FROM events").await;
    assert!(events >= 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM clips").await,
        2 * events,
        "two cameras per event"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM clips WHERE camera_id IN ('cam-front', 'cam-side')")
            .await,
        2 * events
    );
    // Tasks wait for their video.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'")
            .await,
        0
    );
    let ann = app.user("ann", Role::Labeler).await;
    assert_eq!(app.claim(&ann).await.0, StatusCode::NO_CONTENT);

    assert!(run_media_jobs(&app).await >= 2 * events as usize);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM clips WHERE status = 'ready'")
            .await,
        2 * events
    );
    let tasks = app.count("SELECT COUNT(*) FROM review_tasks").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM review_tasks WHERE status = 'ready'")
            .await,
        tasks,
        "every task is claimable once its clips are processed"
    );

    let (status, claim) = app.claim(&ann).await;
    assert_eq!(status, StatusCode::OK, "{claim}");
    let clips = claim["task"]["clips"].as_array().expect("clips");
    assert_eq!(clips.len(), 2, "{claim}");
    let cameras: Vec<&str> = clips
        .iter()
        .map(|c| c["camera_id"].as_str().unwrap())
        .collect();
    assert_eq!(cameras, ["cam-front", "cam-side"]);
    for c in clips {
        assert_eq!(c["status"], "ready", "{c}");
        assert_eq!(c["event_offset_ms"], 2000, "{c}");
        assert_eq!(c["duration_ms"], 4000, "{c}");
        assert_eq!(
            (c["width"].as_i64(), c["height"].as_i64()),
            (Some(640), Some(360))
        );
        assert!(c["poster_url"].is_string(), "{c}");
        let video_url = c["video_url"].as_str().expect("video_url");
        let resp = app
            .http
            .get(format!("{}{video_url}", app.base))
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "video/mp4");
        assert!(resp.bytes().await.unwrap().len() > 10_000);
    }
}

/// Stores two takes of one event as the demo does (`demo::film` hands them
/// to `review::media::store_clips`): the front camera's from `front`, the side
/// camera's from `side`.
async fn store_takes(
    app: &TestApp,
    store_id: &str,
    ids: &[String; 2],
    front: &Path,
    side: &Path,
) -> recount::error::Result<()> {
    let take = |i: usize, camera_id, path| NewClip {
        id: &ids[i],
        camera_id,
        started_at: Some(common::T0),
        path,
    };
    let takes = [take(0, "cam-front", front), take(1, "cam-side", side)];
    let state = &app.state;
    store_clips(&state.db, &state.blobs, store_id, &takes, state.now()).await
}

/// The demo stores both cameras' clips of an event, or neither: a take that
/// cannot be stored takes the other camera's clip back with it, so no clip
/// is left that no event shows.
async fn a_demo_event_stores_both_cameras_clips_or_neither(backend: Backend) {
    let app = TestApp::start(backend).await;
    let creds = recount::demo::setup(&app.state).await.unwrap();
    let filmed = common::fixture_path("h264-faststart.mp4");
    let lost = app.state.scratch.join("never-rendered.mp4");
    let status_path = |id: &str| format!("/api/v1/clips/{id}");

    // The side camera's take is missing: the front one is not kept either.
    let ids = [new_id(), new_id()];
    let stored = store_takes(&app, &creds.store_id, &ids, &filmed, &lost).await;
    assert!(stored.is_err());
    assert_eq!(app.count("SELECT COUNT(*) FROM clips").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    let blobs = files_under(&app.data_dir.path().join("blobs"));
    assert!(blobs.is_empty(), "blobs left: {blobs:?}");
    for id in &ids {
        let (s, b) = app
            .call(Method::GET, &status_path(id), &creds.api_key, None)
            .await;
        assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-clip"));
    }

    // Both takes: both clips are stored, queued and processed.
    let ids = [new_id(), new_id()];
    store_takes(&app, &creds.store_id, &ids, &filmed, &filmed)
        .await
        .unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 2);
    run_media_jobs(&app).await;
    for id in &ids {
        let (s, b) = app
            .call(Method::GET, &status_path(id), &creds.api_key, None)
            .await;
        assert_eq!(
            (s, b["status"].as_str()),
            (StatusCode::OK, Some("ready")),
            "{b}"
        );
    }
}
dual!(a_demo_event_stores_both_cameras_clips_or_neither);
