//! The media layer on real files: every codec and container path, cut
//! accuracy, the browser MP4's shape, posters and filmstrips against
//! independently decoded frames, bad input, limits and timeouts.
//!
//! Fixtures (fixtures/media, made by fixtures/make-fixtures.sh) carry a
//! barcode of the frame number in their top tenth, so a test reads which
//! source frame a picture shows straight from its pixels.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next as ff;
use image::RgbImage;

use recount::media::{
    self, Cancel, CutAccuracy, Decode, MediaCode, MediaError, MediaLimits, MediaRunner, Method,
    ProbeInfo, Window,
};

// ---------------------------------------------------------------- helpers

fn fixture(name: &str) -> PathBuf {
    common::fixture_path(name)
}

fn limits() -> MediaLimits {
    MediaLimits {
        max_concurrent: 2,
        ..MediaLimits::default()
    }
}

fn probe(name: &str) -> ProbeInfo {
    media::probe(&fixture(name), &limits(), &Cancel::new()).expect("probe")
}

fn probe_err(path: &Path, limits: &MediaLimits) -> MediaError {
    media::probe(path, limits, &Cancel::new()).expect_err("probe should fail")
}

/// One decoded frame, as the reference decoder (plain ffmpeg-next, decoding
/// from the first packet, no seeking) sees it.
struct RefFrame {
    pts_ms: i64,
    picture: RgbImage,
}

/// Every frame of `path`, stored orientation, RGB, in presentation order.
fn decode_all(path: &Path) -> Vec<RefFrame> {
    common::decode_frames(path)
        .into_iter()
        .map(|(pts_ms, picture)| RefFrame { pts_ms, picture })
        .collect()
}

fn luma(img: &RgbImage, x: u32, y: u32) -> u32 {
    let p = img.get_pixel(x, y);
    (u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3
}

/// Average brightness of a small patch.
fn patch(img: &RgbImage, cx: u32, cy: u32) -> u32 {
    let r = 2;
    let mut sum = 0;
    for y in cy - r..=cy + r {
        for x in cx - r..=cx + r {
            sum += luma(img, x, y);
        }
    }
    sum / 25
}

/// The frame number in the barcode across the top tenth (upright source).
fn barcode(img: &RgbImage) -> u32 {
    let (w, h) = img.dimensions();
    (0..8)
        .map(|bit| {
            let x = (2 * bit + 1) * w / 16;
            u32::from(patch(img, x, h / 20) > 128) << bit
        })
        .sum()
}

/// The barcode of a picture turned 90° counter-clockwise: the band runs up
/// the left edge, bit 0 at the bottom.
fn barcode_turned_ccw(img: &RgbImage) -> u32 {
    let (w, h) = img.dimensions();
    (0..8)
        .map(|bit| {
            let y = h - 1 - (2 * bit + 1) * h / 16;
            u32::from(patch(img, w / 20, y) > 128) << bit
        })
        .sum()
}

/// Mean absolute difference per channel.
fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// Checks what every browser MP4 must be: H.264, yuv420p, upright, video
/// only, `moov` before `mdat`.
fn assert_browser_mp4(path: &Path) -> ProbeInfo {
    let info = media::probe(path, &limits(), &Cancel::new()).expect("output probes");
    assert_eq!(info.codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!(info.rotation, 0);
    assert!(!info.has_audio);
    assert!(info.container.contains("mp4"));
    let boxes = common::top_level_boxes(path);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "moov must come before mdat: {boxes:?}");
    info
}

fn out_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn mp4(name: &str, out: &Path, window: Option<Window>, accuracy: CutAccuracy) -> media::OutputInfo {
    media::make_browser_mp4(
        &fixture(name),
        out,
        window,
        accuracy,
        &limits(),
        &Cancel::new(),
    )
    .expect("browser mp4")
}

fn mp4_err(
    name: &str,
    window: Option<Window>,
    accuracy: CutAccuracy,
) -> (MediaError, tempfile::TempDir, PathBuf) {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let err = media::make_browser_mp4(
        &fixture(name),
        &out,
        window,
        accuracy,
        &limits(),
        &Cancel::new(),
    )
    .expect_err("should fail");
    (err, dir, out)
}

/// Nothing left behind: neither the output nor its partial file.
fn assert_no_output(out: &Path) {
    assert!(!out.exists(), "{} exists", out.display());
    let partial = out.with_file_name(format!(
        "{}.partial",
        out.file_name().unwrap().to_string_lossy()
    ));
    assert!(!partial.exists(), "{} exists", partial.display());
}

fn jpeg(path: &Path) -> RgbImage {
    image::open(path).expect("decode jpeg").to_rgb8()
}

// ---------------------------------------------------------------- probe

#[test]
fn probe_reads_an_h264_mp4() {
    let info = probe("h264.mp4");
    assert_eq!(info.codec, "h264");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(info.rotation, 0);
    assert_eq!(info.duration_ms, 4000);
    assert_eq!(info.frame_count, 120);
    assert!((info.fps - 30.0).abs() < 0.01);
    assert!(!info.variable_frame_rate);
    assert_eq!(info.keyframes_ms, [0, 1000, 2000, 3000]);
    assert!(info.has_audio);
    assert!(info.container.contains("mp4"));
    assert!(info.is_browser_ready());
}

#[test]
fn probe_reads_each_codec_and_container() {
    // (file, codec, pix_fmt, container part, frames, duration ms, keyframes,
    // browser-ready)
    let cases = [
        ("hevc.mp4", "hevc", "yuv420p", "mp4", 50, 2000, 2, false),
        ("mjpeg.avi", "mjpeg", "yuvj420p", "avi", 15, 1000, 15, false),
        ("vp9.webm", "vp9", "yuv420p", "webm", 48, 1999, 2, false),
        (
            "h264-yuv444p.mp4",
            "h264",
            "yuv444p",
            "mp4",
            60,
            2000,
            2,
            false,
        ),
        ("vfr.mkv", "h264", "yuv420p", "matroska", 50, 2933, 2, true),
    ];
    for (name, codec, pix_fmt, container, frames, duration, keys, ready) in cases {
        let info = probe(name);
        assert_eq!(info.codec, codec, "{name}");
        assert_eq!(info.pix_fmt, pix_fmt, "{name}");
        assert!(
            info.container.contains(container),
            "{name}: {}",
            info.container
        );
        assert_eq!(info.frame_count, frames, "{name}");
        assert!(
            (info.duration_ms - duration).abs() <= 1,
            "{name}: {}",
            info.duration_ms
        );
        assert_eq!(info.keyframes_ms.len(), keys, "{name}");
        assert_eq!(info.is_browser_ready(), ready, "{name}");
        assert!(!info.has_audio, "{name}");
    }
}

#[test]
fn probe_reports_rotation_and_display_size() {
    let info = probe("rotated.mov");
    assert_eq!(info.rotation, 90);
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!((info.display_width(), info.display_height()), (240, 320));
    assert!(!info.is_browser_ready());
}

#[test]
fn probe_tells_variable_frame_rate() {
    let info = probe("vfr.mkv");
    assert!(info.variable_frame_rate);
    assert!(!probe("h264.mp4").variable_frame_rate);
}

// ---------------------------------------------------------------- bad input

#[test]
fn zero_bytes_is_empty_file() {
    let err = probe_err(&fixture("empty.mp4"), &limits());
    assert_eq!(err.code, "empty-file");
    assert!(err.client_fault());
}

#[test]
fn text_renamed_to_mp4_is_not_video() {
    let err = probe_err(&fixture("text.mp4"), &limits());
    assert_eq!(err.code, "not-video");
    assert!(err.client_fault());
}

#[test]
fn mp4_cut_inside_its_frame_data_is_truncated() {
    let err = probe_err(&fixture("truncated.mp4"), &limits());
    assert_eq!(err.code, "truncated");
    assert!(err.client_fault());
}

#[test]
fn mp4_cut_before_its_index_is_truncated() {
    let err = probe_err(&fixture("truncated-moov-at-end.mp4"), &limits());
    assert_eq!(err.code, "truncated");
}

#[test]
fn audio_only_file_has_no_video_stream() {
    let err = probe_err(&fixture("audio-only.m4a"), &limits());
    assert_eq!(err.code, "no-video-stream");
    assert!(err.client_fault());
}

#[test]
fn codec_outside_the_list_is_unsupported() {
    let err = probe_err(&fixture("ffv1.mkv"), &limits());
    assert_eq!(err.code, "unsupported-codec");
    assert!(err.message.contains("ffv1"), "{}", err.message);
}

/// What the clip-process job runs on a clip: the browser MP4, then its
/// filmstrip, which checks every frame when the MP4 step did not.
async fn clip_job_steps(
    runner: &MediaRunner,
    name: &str,
    window: Option<Window>,
    dir: &Path,
) -> Result<(media::OutputInfo, media::Filmstrip), MediaError> {
    let video = dir.join("video.mp4");
    let out = runner
        .make_browser_mp4(fixture(name), &video, window, CutAccuracy::Keyframe)
        .await?;
    let decode = if out.frames_checked {
        Decode::TilesOnly
    } else {
        Decode::EveryFrame
    };
    let strip = runner
        .filmstrip(&video, 10, 160, decode, dir.join("filmstrip.jpg"))
        .await?;
    Ok((out, strip))
}

#[test]
fn a_remux_copies_damaged_frames_without_decoding_them() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let made = mp4("corrupt-middle.mp4", &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Remux);
    assert!(!made.frames_checked);
    assert_eq!(made.frame_count, 120);
}

#[test]
fn checking_every_frame_of_a_damaged_remux_fails_with_corrupt_video() {
    let dir = out_dir();
    let video = dir.path().join("video.mp4");
    mp4("corrupt-middle.mp4", &video, None, CutAccuracy::Keyframe);
    let strip = dir.path().join("filmstrip.jpg");
    let err = media::filmstrip(
        &video,
        10,
        160,
        Decode::EveryFrame,
        &strip,
        &limits(),
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(err.code, "corrupt-video");
    assert!(err.client_fault());
    assert_no_output(&strip);
}

#[tokio::test]
async fn the_clip_job_refuses_a_damaged_clip_whole_or_cut() {
    let runner = MediaRunner::new(limits());
    for window in [None, Some(Window::new(1500, 3500))] {
        let dir = out_dir();
        let err = clip_job_steps(&runner, "corrupt-middle.mp4", window, dir.path())
            .await
            .unwrap_err();
        assert_eq!(err.code, "corrupt-video", "{window:?}");
        assert!(err.client_fault());
        assert_no_output(&dir.path().join("filmstrip.jpg"));
    }
}

#[tokio::test]
async fn the_clip_job_checks_every_frame_once() {
    let runner = MediaRunner::new(limits());
    // Remuxed: the filmstrip decodes every frame, so the video is checked.
    let dir = out_dir();
    let (out, strip) = clip_job_steps(&runner, "h264.mp4", None, dir.path())
        .await
        .unwrap();
    assert_eq!((out.method, out.frames_checked), (Method::Remux, false));
    assert_eq!(strip.timestamps_ms.len(), 10);
    // Transcoded: every frame was decoded on the way; the filmstrip takes
    // only what its tiles need.
    let dir = out_dir();
    let (out, strip) = clip_job_steps(&runner, "hevc.mp4", None, dir.path())
        .await
        .unwrap();
    assert_eq!((out.method, out.frames_checked), (Method::Transcode, true));
    assert_eq!(strip.timestamps_ms.len(), 10);
}

#[test]
fn a_filmstrip_checking_every_frame_shows_the_same_tiles() {
    let dir = out_dir();
    let (fast, checked) = (dir.path().join("a.jpg"), dir.path().join("b.jpg"));
    let run = |decode, out: &Path| {
        media::filmstrip(
            &fixture("h264.mp4"),
            4,
            160,
            decode,
            out,
            &limits(),
            &Cancel::new(),
        )
        .unwrap()
    };
    assert_eq!(
        run(Decode::TilesOnly, &fast),
        run(Decode::EveryFrame, &checked)
    );
    let (a, b) = (jpeg(&fast), jpeg(&checked));
    assert!(mean_abs_diff(&a, &b) < 0.5, "{}", mean_abs_diff(&a, &b));
}

#[test]
fn corrupt_frames_fail_the_transcode_and_leave_no_output() {
    let (err, _dir, out) = mp4_err(
        "corrupt-middle.mp4",
        Some(Window::new(0, 4000)),
        CutAccuracy::Frame,
    );
    assert_eq!(err.code, "corrupt-video");
    assert_no_output(&out);
}

#[test]
fn corrupt_frames_are_tolerated_up_to_the_limit() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let tolerant = MediaLimits {
        max_corrupt_frames: 1000,
        ..limits()
    };
    let made = mp4("corrupt-middle.mp4", &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Remux);
    assert_browser_mp4(&out);
    let strip = media::filmstrip(
        &out,
        10,
        160,
        Decode::EveryFrame,
        &dir.path().join("filmstrip.jpg"),
        &tolerant,
        &Cancel::new(),
    )
    .expect("tolerated");
    assert_eq!(strip.timestamps_ms.len(), 10);
}

#[test]
fn width_over_the_limit_is_refused() {
    let narrow = MediaLimits {
        max_width: 319,
        ..limits()
    };
    let err = probe_err(&fixture("h264.mp4"), &narrow);
    assert_eq!(err.code, "dimensions-too-large");
    assert!(err.client_fault());
}

#[test]
fn pixel_count_over_the_limit_is_refused() {
    let small = MediaLimits {
        max_pixels: 320 * 240 - 1,
        ..limits()
    };
    assert_eq!(
        probe_err(&fixture("hevc.mp4"), &small).code,
        "dimensions-too-large"
    );
}

#[test]
fn duration_over_the_limit_is_refused() {
    let short = MediaLimits {
        max_duration_ms: 3000,
        ..limits()
    };
    let err = probe_err(&fixture("h264.mp4"), &short);
    assert_eq!(err.code, "duration-too-long");
    assert!(err.client_fault());
    let exact = MediaLimits {
        max_duration_ms: 4000,
        ..limits()
    };
    assert!(media::probe(&fixture("h264.mp4"), &exact, &Cancel::new()).is_ok());
}

#[test]
fn every_operation_refuses_bad_input_with_the_same_code() {
    let dir = out_dir();
    let lim = limits();
    let c = Cancel::new();
    for (name, code) in [
        ("empty.mp4", "empty-file"),
        ("text.mp4", "not-video"),
        ("truncated.mp4", "truncated"),
        ("audio-only.m4a", "no-video-stream"),
    ] {
        let input = fixture(name);
        let out = dir.path().join("x.mp4");
        let jpg = dir.path().join("x.jpg");
        let mp4 = media::make_browser_mp4(&input, &out, None, CutAccuracy::Keyframe, &lim, &c);
        assert_eq!(mp4.unwrap_err().code, code, "{name} mp4");
        assert_eq!(
            media::poster(&input, 0, &jpg, 320, &lim, &c)
                .unwrap_err()
                .code,
            code,
            "{name} poster"
        );
        assert_eq!(
            media::filmstrip(&input, 4, 80, Decode::TilesOnly, &jpg, &lim, &c)
                .unwrap_err()
                .code,
            code,
            "{name} filmstrip"
        );
        assert_no_output(&out);
        assert_no_output(&jpg);
    }
}

#[test]
fn playlists_naming_other_files_are_not_video() {
    // HLS and concat lists would make FFmpeg open the files they name.
    let dir = out_dir();
    let clip = fixture("h264.mp4");
    let lists = [
        (
            "list.m3u8",
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{}\n#EXT-X-ENDLIST\n",
                clip.display()
            ),
        ),
        (
            "list.ffconcat",
            format!("ffconcat version 1.0\nfile '{}'\n", clip.display()),
        ),
    ];
    for (name, text) in lists {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        assert_eq!(probe_err(&path, &limits()).code, "not-video", "{name}");
    }
}

#[test]
fn a_missing_input_is_our_fault_not_the_clients() {
    let err = probe_err(&fixture("no-such-file.mp4"), &limits());
    assert_eq!(err.code, "io-error");
    assert!(!err.client_fault());
}

// ---------------------------------------------------------------- remux

#[test]
fn browser_ready_h264_is_remuxed_bit_exact_with_moov_first() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let made = mp4("h264.mp4", &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Remux);
    assert_eq!(made.source_start_ms, 0);
    assert_eq!(made.frame_count, 120);
    assert_eq!(made.duration_ms, 4000);
    assert_eq!((made.width, made.height), (320, 240));
    assert_eq!(made.bytes, std::fs::metadata(&out).unwrap().len());
    // The source has moov at the end; the output must not.
    let source_boxes = common::top_level_boxes(&fixture("h264.mp4"));
    assert!(
        source_boxes.iter().position(|b| b == "mdat")
            < source_boxes.iter().position(|b| b == "moov")
    );
    assert_browser_mp4(&out);

    let source = decode_all(&fixture("h264.mp4"));
    let copy = decode_all(&out);
    assert_eq!(copy.len(), source.len());
    for (a, b) in source.iter().zip(&copy) {
        assert_eq!(a.pts_ms, b.pts_ms);
        assert!(a.picture == b.picture, "frame at {} ms differs", a.pts_ms);
    }
}

#[test]
fn keyframe_cut_starts_at_the_preceding_keyframe_and_covers_the_window() {
    let dir = out_dir();
    let out = dir.path().join("cut.mp4");
    let made = mp4(
        "h264.mp4",
        &out,
        Some(Window::new(1500, 2500)),
        CutAccuracy::Keyframe,
    );
    assert_eq!(made.method, Method::Remux);
    assert_eq!(made.source_start_ms, 1000);
    assert_browser_mp4(&out);
    let frames = decode_all(&out);
    assert_eq!(frames[0].pts_ms, 0);
    // First frame: the keyframe at 1000 ms, frame 30; frames follow in order.
    let numbers: Vec<u32> = frames.iter().map(|f| barcode(&f.picture)).collect();
    assert_eq!(numbers[0], 30);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    // Covers the window (the frame shown at 2499 ms is frame 74), plus at
    // most the reference frame 75 that B-frame 74 needs.
    assert!((74..=75).contains(numbers.last().unwrap()), "{numbers:?}");
    assert!(made.source_start_ms + made.duration_ms >= 2500);
}

#[test]
fn keyframe_cut_on_a_keyframe_starts_exactly_there() {
    let dir = out_dir();
    let out = dir.path().join("cut.mp4");
    let made = mp4(
        "h264.mp4",
        &out,
        Some(Window::new(2000, 3000)),
        CutAccuracy::Keyframe,
    );
    assert_eq!(made.source_start_ms, 2000);
    assert_eq!(barcode(&decode_all(&out)[0].picture), 60);
}

#[test]
fn variable_frame_rate_survives_a_remux_from_matroska() {
    let dir = out_dir();
    let out = dir.path().join("vfr.mp4");
    let made = mp4("vfr.mkv", &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Remux);
    let info = assert_browser_mp4(&out);
    assert!(info.variable_frame_rate);
    let source: Vec<i64> = decode_all(&fixture("vfr.mkv"))
        .iter()
        .map(|f| f.pts_ms)
        .collect();
    let copy: Vec<i64> = decode_all(&out).iter().map(|f| f.pts_ms).collect();
    assert_eq!(copy.len(), 50);
    for (a, b) in source.iter().zip(&copy) {
        assert!((a - b).abs() <= 1, "{source:?} vs {copy:?}");
    }
}

// ---------------------------------------------------------------- transcode

/// Transcodes `name` whole and checks frame for frame against the source:
/// same count, same order (barcodes), same times.
fn assert_transcodes_every_frame(name: &str) {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let made = mp4(name, &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Transcode, "{name}");
    assert_eq!((made.width, made.height), (320, 240), "{name}");
    assert_browser_mp4(&out);
    let source = decode_all(&fixture(name));
    let output = decode_all(&out);
    assert_eq!(output.len(), source.len(), "{name}");
    for (i, (s, o)) in source.iter().zip(&output).enumerate() {
        assert_eq!(barcode(&o.picture), i as u32, "{name} frame {i}");
        assert!(
            (s.pts_ms - o.pts_ms).abs() <= 1,
            "{name} frame {i}: {} vs {}",
            s.pts_ms,
            o.pts_ms
        );
    }
}

#[test]
fn hevc_is_transcoded_frame_for_frame() {
    assert_transcodes_every_frame("hevc.mp4");
}

#[test]
fn mjpeg_avi_is_transcoded_frame_for_frame() {
    assert_transcodes_every_frame("mjpeg.avi");
}

#[test]
fn vp9_webm_is_transcoded_frame_for_frame() {
    assert_transcodes_every_frame("vp9.webm");
}

#[test]
fn yuv444p_h264_is_transcoded_to_yuv420p() {
    assert_transcodes_every_frame("h264-yuv444p.mp4");
}

/// NAL unit types of an H.264 packet in MP4 (4-byte lengths).
fn nal_types(mut data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while data.len() > 4 {
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        types.push(data[4] & 0x1f);
        data = &data[(4 + len).min(data.len())..];
    }
    types
}

#[test]
fn transcoded_video_has_closed_gops_every_keyframe_an_idr() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    // 120 frames at 30 fps: four one-second GOPs.
    let made = mp4(
        "h264.mp4",
        &out,
        Some(Window::new(0, 4000)),
        CutAccuracy::Frame,
    );
    assert_eq!((made.method, made.frame_count), (Method::Transcode, 120));
    ff::init().unwrap();
    let mut ictx = ff::format::input(&out).unwrap();
    let (mut keyframes, mut idrs) = (0, 0);
    for (_, packet) in ictx.packets() {
        let types = nal_types(packet.data().unwrap());
        // An open GOP's later keyframes are I pictures (type 1 slices with a
        // recovery point), whose leading B-frames refer to the GOP before.
        let idr = types.contains(&5);
        assert_eq!(
            packet.is_key(),
            idr,
            "pts {:?}: NAL types {types:?}",
            packet.pts()
        );
        keyframes += usize::from(packet.is_key());
        idrs += usize::from(idr);
    }
    assert_eq!((keyframes, idrs), (4, 4));
}

#[test]
fn rotation_metadata_is_applied_to_the_pixels() {
    let dir = out_dir();
    let out = dir.path().join("upright.mp4");
    let made = mp4("rotated.mov", &out, None, CutAccuracy::Keyframe);
    assert_eq!(made.method, Method::Transcode);
    assert_eq!((made.width, made.height), (240, 320));
    assert_browser_mp4(&out);
    let source = decode_all(&fixture("rotated.mov"));
    let output = decode_all(&out);
    assert_eq!(output.len(), source.len());
    for (i, (s, o)) in source.iter().zip(&output).enumerate().step_by(7) {
        assert_eq!(barcode_turned_ccw(&o.picture), i as u32);
        // The stored picture turned a quarter counter-clockwise.
        let turned = image::imageops::rotate270(&s.picture);
        let diff = mean_abs_diff(&turned, &o.picture);
        assert!(diff < 6.0, "frame {i}: mean difference {diff}");
    }
}

#[test]
fn frame_accurate_cut_is_within_one_frame_of_the_window() {
    let dir = out_dir();
    let out = dir.path().join("cut.mp4");
    let (from, to) = (1510, 2490);
    let made = mp4(
        "h264.mp4",
        &out,
        Some(Window::new(from, to)),
        CutAccuracy::Frame,
    );
    assert_eq!(made.method, Method::Transcode);
    assert_browser_mp4(&out);
    let frame_ms = 1000.0 / 30.0;
    let frames = decode_all(&out);
    let numbers: Vec<u32> = frames.iter().map(|f| barcode(&f.picture)).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    // Source time of the first and last frames, from their barcodes.
    let first_ms = f64::from(numbers[0]) * frame_ms;
    let last_end_ms = f64::from(*numbers.last().unwrap() + 1) * frame_ms;
    assert!(
        (first_ms - from as f64).abs() <= frame_ms,
        "starts at {first_ms}"
    );
    assert!(first_ms <= from as f64, "the window's start is shown");
    assert!(
        (last_end_ms - to as f64).abs() <= frame_ms,
        "ends at {last_end_ms}"
    );
    assert!(last_end_ms >= to as f64, "the window's end is shown");
    assert_eq!(made.source_start_ms, (first_ms).round() as i64);
    assert_eq!(frames[0].pts_ms, 0);
}

#[test]
fn frame_accurate_cut_keeps_variable_frame_times() {
    let dir = out_dir();
    let out = dir.path().join("cut.mp4");
    let made = mp4(
        "vfr.mkv",
        &out,
        Some(Window::new(900, 1500)),
        CutAccuracy::Frame,
    );
    assert_eq!(made.method, Method::Transcode);
    assert_eq!(made.source_start_ms, 900);
    let frames = decode_all(&out);
    let times: Vec<i64> = frames.iter().map(|f| f.pts_ms).collect();
    let numbers: Vec<u32> = frames.iter().map(|f| barcode(&f.picture)).collect();
    assert_eq!(numbers, [27, 28, 29, 30, 31, 32, 33, 34]);
    let expected = [0, 33, 67, 100, 200, 300, 400, 500];
    for (t, e) in times.iter().zip(expected) {
        assert!((t - e).abs() <= 1, "{times:?}");
    }
}

#[test]
fn a_window_outside_the_clip_is_refused() {
    let (err, _dir, out) = mp4_err(
        "h264.mp4",
        Some(Window::new(5000, 6000)),
        CutAccuracy::Frame,
    );
    assert_eq!(err.code, "invalid-window");
    assert!(err.client_fault());
    assert_no_output(&out);
}

// ---------------------------------------------------------------- poster

fn reference_frame_at(name: &str, at_ms: i64) -> RefFrame {
    decode_all(&fixture(name))
        .into_iter()
        .rev()
        .find(|f| f.pts_ms <= at_ms)
        .expect("a frame")
}

#[test]
fn poster_matches_the_decoded_frame_at_the_instant() {
    let dir = out_dir();
    for (name, at_ms) in [
        ("h264.mp4", 1234),
        ("hevc.mp4", 1500),
        ("mjpeg.avi", 500),
        ("vp9.webm", 1010),
        ("h264-yuv444p.mp4", 700),
        ("vfr.mkv", 1650),
    ] {
        let out = dir.path().join(format!("{name}.jpg"));
        let poster = media::poster(&fixture(name), at_ms, &out, 640, &limits(), &Cancel::new())
            .expect("poster");
        let reference = reference_frame_at(name, at_ms);
        assert_eq!(poster.pts_ms, reference.pts_ms, "{name}");
        assert_eq!((poster.width, poster.height), (320, 240), "{name}");
        let picture = jpeg(&out);
        assert_eq!(barcode(&picture), barcode(&reference.picture), "{name}");
        let diff = mean_abs_diff(&picture, &reference.picture);
        assert!(diff < 4.0, "{name}: mean difference {diff}");
    }
}

#[test]
fn poster_shows_the_frame_on_screen_not_the_next_one() {
    // Frame 37 starts at 1233.3 ms and frame 38 at 1266.7 ms.
    let dir = out_dir();
    let out = dir.path().join("p.jpg");
    let poster = media::poster(
        &fixture("h264.mp4"),
        1266,
        &out,
        640,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(poster.pts_ms, 1233);
    assert_eq!(barcode(&jpeg(&out)), 37);
}

#[test]
fn poster_is_upright_and_scaled_to_the_width() {
    let dir = out_dir();
    let out = dir.path().join("p.jpg");
    let poster = media::poster(
        &fixture("rotated.mov"),
        1000,
        &out,
        120,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!((poster.width, poster.height), (120, 160));
    let picture = jpeg(&out);
    assert_eq!(picture.dimensions(), (120, 160));
    assert_eq!(barcode_turned_ccw(&picture), 30);
}

#[test]
fn poster_outside_the_clip_is_refused() {
    let dir = out_dir();
    let out = dir.path().join("p.jpg");
    let err = media::poster(
        &fixture("h264.mp4"),
        4500,
        &out,
        320,
        &limits(),
        &Cancel::new(),
    )
    .unwrap_err();
    assert_eq!(err.code, "invalid-window");
    assert_no_output(&out);
}

// ---------------------------------------------------------------- filmstrip

fn tiles(sprite: &RgbImage, strip: &media::Filmstrip) -> Vec<RgbImage> {
    (0..strip.timestamps_ms.len() as u32)
        .map(|i| {
            image::imageops::crop_imm(
                sprite,
                (i % strip.columns) * strip.tile_width,
                (i / strip.columns) * strip.tile_height,
                strip.tile_width,
                strip.tile_height,
            )
            .to_image()
        })
        .collect()
}

#[test]
fn filmstrip_uses_keyframes_when_there_are_enough() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    let strip = media::filmstrip(
        &fixture("h264.mp4"),
        4,
        160,
        Decode::TilesOnly,
        &out,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert!(strip.keyframes_only);
    assert_eq!(strip.timestamps_ms, [0, 1000, 2000, 3000]);
    assert_eq!((strip.columns, strip.rows), (4, 1));
    assert_eq!((strip.tile_width, strip.tile_height), (160, 120));
    let sprite = jpeg(&out);
    assert_eq!(sprite.dimensions(), (640, 120));
    let numbers: Vec<u32> = tiles(&sprite, &strip).iter().map(barcode).collect();
    assert_eq!(numbers, [0, 30, 60, 90]);
}

#[test]
fn filmstrip_spreads_fewer_tiles_evenly_over_the_keyframes() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    let strip = media::filmstrip(
        &fixture("mjpeg.avi"),
        5,
        160,
        Decode::TilesOnly,
        &out,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert!(strip.keyframes_only);
    // 15 keyframes at 15 fps: indices 1, 4, 7, 10, 13.
    assert_eq!(strip.timestamps_ms, [67, 267, 467, 667, 867]);
    let numbers: Vec<u32> = tiles(&jpeg(&out), &strip).iter().map(barcode).collect();
    assert_eq!(numbers, [1, 4, 7, 10, 13]);
}

#[test]
fn filmstrip_decodes_everything_when_keyframes_are_too_few() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    let strip = media::filmstrip(
        &fixture("h264.mp4"),
        12,
        160,
        Decode::TilesOnly,
        &out,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert!(!strip.keyframes_only);
    assert_eq!((strip.columns, strip.rows), (10, 2));
    assert_eq!(jpeg(&out).dimensions(), (1600, 240));
    // Tile i shows the frame on screen at the middle of its twelfth.
    let frame_ms = 1000.0 / 30.0;
    for (i, &t) in strip.timestamps_ms.iter().enumerate() {
        let target = (2 * i as i64 + 1) * 4000 / 24;
        assert!(
            t <= target && (target - t) as f64 <= frame_ms,
            "tile {i}: {t} for {target}"
        );
    }
    let sprite = jpeg(&out);
    for (tile, &t) in tiles(&sprite, &strip).iter().zip(&strip.timestamps_ms) {
        assert_eq!(barcode(tile), (t as f64 / frame_ms).round() as u32);
    }
}

#[test]
fn filmstrip_tiles_are_upright() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    let strip = media::filmstrip(
        &fixture("rotated.mov"),
        2,
        120,
        Decode::TilesOnly,
        &out,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!((strip.tile_width, strip.tile_height), (120, 160));
    assert_eq!(strip.timestamps_ms, [0, 1000]);
    let numbers: Vec<u32> = tiles(&jpeg(&out), &strip)
        .iter()
        .map(barcode_turned_ccw)
        .collect();
    assert_eq!(numbers, [0, 30]);
}

#[test]
fn filmstrip_of_a_variable_frame_rate_clip_takes_real_frame_times() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    let strip = media::filmstrip(
        &fixture("vfr.mkv"),
        6,
        160,
        Decode::TilesOnly,
        &out,
        &limits(),
        &Cancel::new(),
    )
    .unwrap();
    let reference: Vec<i64> = decode_all(&fixture("vfr.mkv"))
        .iter()
        .map(|f| f.pts_ms)
        .collect();
    for t in &strip.timestamps_ms {
        assert!(reference.contains(t), "{t} is no frame time");
    }
    let sprite = jpeg(&out);
    for (tile, t) in tiles(&sprite, &strip).iter().zip(&strip.timestamps_ms) {
        let index = reference.iter().position(|r| r == t).unwrap();
        assert_eq!(barcode(tile), index as u32);
    }
}

#[test]
fn filmstrip_refuses_impossible_options() {
    let dir = out_dir();
    let out = dir.path().join("strip.jpg");
    for (count, width) in [(0, 160), (4, 0), (101, 160)] {
        let err = media::filmstrip(
            &fixture("h264.mp4"),
            count,
            width,
            Decode::TilesOnly,
            &out,
            &limits(),
            &Cancel::new(),
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid-options");
        assert!(!err.client_fault());
    }
}

// ---------------------------------------------------------------- runner

#[tokio::test]
async fn runner_runs_operations_on_the_blocking_pool() {
    let runner = MediaRunner::new(limits());
    let info = runner.probe(fixture("hevc.mp4")).await.unwrap();
    assert_eq!(info.codec, "hevc");
    let dir = out_dir();
    let strip = runner
        .filmstrip(
            fixture("h264.mp4"),
            4,
            80,
            Decode::TilesOnly,
            dir.path().join("s.jpg"),
        )
        .await
        .unwrap();
    assert_eq!(strip.timestamps_ms.len(), 4);
    assert_eq!(runner.available_permits(), 2);
}

#[tokio::test]
async fn timeout_stops_the_work_and_frees_the_permit() {
    let runner = MediaRunner::new(MediaLimits {
        timeout: Duration::from_millis(1),
        max_concurrent: 1,
        ..limits()
    });
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    let err = runner
        .make_browser_mp4(fixture("hevc.mp4"), &out, None, CutAccuracy::Frame)
        .await
        .unwrap_err();
    assert_eq!(err.code, "timeout");
    assert!(!err.client_fault());
    // The runner answers only once the blocking work has returned: its
    // permit is back and it left no file behind.
    assert_eq!(runner.available_permits(), 1);
    assert_no_output(&out);
}

#[test]
fn cancellation_is_checked_between_frames() {
    let dir = out_dir();
    let out = dir.path().join("out.mp4");
    // Probing the 50-frame clip takes about 50 checks; stop mid-transcode.
    let cancel = Cancel::after_checks(80);
    let err = media::make_browser_mp4(
        &fixture("hevc.mp4"),
        &out,
        None,
        CutAccuracy::Keyframe,
        &limits(),
        &cancel,
    )
    .unwrap_err();
    assert_eq!(err.code, "cancelled");
    assert_eq!(cancel.checks(), 80, "no work after the flag was seen");
    assert_no_output(&out);
}

#[test]
fn a_cancelled_flag_stops_before_any_work() {
    let cancel = Cancel::new();
    cancel.cancel();
    let err = media::probe(&fixture("h264.mp4"), &limits(), &cancel).unwrap_err();
    assert_eq!(err.code, "cancelled");
}

#[tokio::test]
async fn permits_bound_concurrent_operations() {
    let runner = MediaRunner::new(MediaLimits {
        max_concurrent: 1,
        ..limits()
    });
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let jobs = (0..4).map(|_| {
        let (running, most) = (running.clone(), most.clone());
        runner.run("test", move |limits, cancel| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let info = media::probe(&fixture("h264.mp4"), limits, cancel);
            running.fetch_sub(1, Ordering::SeqCst);
            info
        })
    });
    let results = futures::future::join_all(jobs).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panic_in_media_work_is_an_internal_error() {
    let runner = MediaRunner::new(limits());
    let err = runner
        .run("test", |_, _| -> media::MediaResult<()> { panic!("boom") })
        .await
        .unwrap_err();
    assert_eq!(err.code, "internal");
    assert!(!err.client_fault());
    assert_eq!(runner.available_permits(), 2);
}

// ---------------------------------------------------------------- docs

#[test]
fn every_error_code_is_documented() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/media.md"))
        .expect("docs/media.md");
    for code in MediaCode::ALL {
        let client = code.client_fault();
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{code}` |")))
            .unwrap_or_else(|| panic!("{code} is not in the table of docs/media.md"));
        let fault = if client { "client" } else { "server" };
        assert!(row.contains(fault), "{code} should say {fault}: {row}");
    }
}
