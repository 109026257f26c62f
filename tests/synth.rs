//! Synthetic shelf footage: the clips are browser MP4s of the requested
//! shape, the picture shows what the scene says (the box leaves the shelf,
//! the hand is there at the event instant), and the demo's events come with
//! clips that go through the media jobs to claimable tasks.

mod common;

use std::path::Path;
use std::time::Instant;

use ffmpeg_next as ff;
use image::RgbImage;
use reqwest::StatusCode;

use common::{Backend, TestApp};
use recount::auth::Role;
use recount::media::synth::{self, Rect, ShelfAction, ShelfCamera, ShelfScene};
use recount::media::{self, Cancel, MediaError, MediaLimits};

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

/// Every frame of `path`, RGB, in presentation order, with its time in ms.
fn decode_all(path: &Path) -> Vec<(i64, RgbImage)> {
    ff::init().expect("ffmpeg");
    let mut ictx = ff::format::input(path).expect("open");
    let stream = ictx.streams().best(ff::media::Type::Video).expect("video");
    let index = stream.index();
    let tb = stream.time_base();
    let mut decoder = ff::codec::context::Context::from_parameters(stream.parameters())
        .expect("params")
        .decoder()
        .video()
        .expect("decoder");
    let mut scaler: Option<ff::software::scaling::Context> = None;
    let mut frames = Vec::new();
    let mut receive = |decoder: &mut ff::decoder::Video, frames: &mut Vec<(i64, RgbImage)>| {
        let mut frame = ff::frame::Video::empty();
        while decoder.receive_frame(&mut frame).is_ok() {
            let scaler = scaler.get_or_insert_with(|| {
                ff::software::scaling::Context::get(
                    frame.format(),
                    frame.width(),
                    frame.height(),
                    ff::format::Pixel::RGB24,
                    frame.width(),
                    frame.height(),
                    ff::software::scaling::Flags::BICUBIC,
                )
                .expect("scaler")
            });
            let mut rgb = ff::frame::Video::empty();
            scaler.run(&frame, &mut rgb).expect("scale");
            let pts = frame.timestamp().expect("pts");
            let ms = (pts as f64 * f64::from(tb) * 1000.0).round() as i64;
            frames.push((ms, to_image(&rgb)));
        }
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() == index {
            decoder.send_packet(&packet).expect("send");
            receive(&mut decoder, &mut frames);
        }
    }
    decoder.send_eof().expect("eof");
    receive(&mut decoder, &mut frames);
    frames
}

fn to_image(frame: &ff::frame::Video) -> RgbImage {
    let (w, h, stride) = (frame.width(), frame.height(), frame.stride(0));
    let mut data = Vec::new();
    for y in 0..h as usize {
        data.extend_from_slice(&frame.data(0)[y * stride..y * stride + w as usize * 3]);
    }
    RgbImage::from_raw(w, h, data).expect("image")
}

/// Top-level ISO-BMFF box types, in file order.
fn top_level_boxes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).expect("read");
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).to_string();
        let size = match size32 {
            0 => bytes.len() - pos,
            1 => u64::from_be_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) as usize,
            s => s,
        };
        assert!(
            size >= 8 && pos + size <= bytes.len(),
            "box {kind} overruns"
        );
        boxes.push(kind);
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "boxes cover the file");
    boxes
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

    let boxes = top_level_boxes(&out);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "moov must come before mdat: {boxes:?}");

    let frames = decode_all(&out);
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
        let frames = decode_all(&out);
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
    let frames = decode_all(&out);
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

/// Runs media jobs until none is due.
async fn run_media_jobs(app: &TestApp) -> usize {
    let client = recount::jobs::webhook::client(&app.state.config);
    let mut n = 0;
    while recount::jobs::run_next_job(&app.state, &client, recount::jobs::MEDIA_JOBS)
        .await
        .unwrap()
    {
        n += 1;
        assert!(n < 200, "media jobs never settle");
    }
    n
}

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
