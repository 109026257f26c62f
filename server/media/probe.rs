//! Probing: what a clip is, checked against the limits, from its headers and
//! a pass over its packets (no decoding).
//!
//! The packet pass is cheap (a read of the file) and gives what headers can
//! get wrong: the real duration, every keyframe, whether the frame rate
//! varies, and whether the container reads to its end.

use std::path::Path;

use ff::Rational;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::input::{self, ticks_to_ms, Header, Source};
use super::limits::MediaLimits;

/// What a clip is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// Demuxer that read it, e.g. `mov,mp4,m4a,3gp,3g2,mj2` or `matroska,webm`.
    pub container: String,
    /// Video codec, e.g. `h264`, `hevc`, `vp9`.
    pub codec: String,
    /// Pixel format as stored, e.g. `yuv420p`.
    pub pix_fmt: String,
    /// Stored picture width, before rotation.
    pub width: u32,
    /// Stored picture height, before rotation.
    pub height: u32,
    /// Counter-clockwise turn of the display matrix: 0, 90, 180 or 270
    /// degrees (the angle `ffprobe` prints as `rotation`).
    pub rotation: u16,
    /// From the start of the stream to the end of its last frame.
    pub duration_ms: i64,
    /// Average frames per second.
    pub fps: f64,
    /// Whether frame intervals vary by more than a quarter.
    pub variable_frame_rate: bool,
    /// Decodable video frames.
    pub frame_count: u64,
    /// Presentation times of the keyframes, from the start of the stream.
    pub keyframes_ms: Vec<i64>,
    /// Whether the file also holds audio (the browser MP4 drops it).
    pub has_audio: bool,
}

impl ProbeInfo {
    /// Width as displayed, after rotation.
    pub fn display_width(&self) -> u32 {
        if self.rotation % 180 == 90 {
            self.height
        } else {
            self.width
        }
    }

    /// Height as displayed, after rotation.
    pub fn display_height(&self) -> u32 {
        if self.rotation % 180 == 90 {
            self.width
        } else {
            self.height
        }
    }

    /// Whether a browser plays the video stream as it is: H.264 in yuv420p,
    /// no rotation to apply.
    pub fn is_browser_ready(&self) -> bool {
        self.codec == "h264" && self.pix_fmt == "yuv420p" && self.rotation == 0
    }
}

/// A probe plus the raw timing the operations work from.
pub(crate) struct Scan {
    /// The public part.
    pub info: ProbeInfo,
    /// Time base of the video stream.
    pub time_base: Rational,
    /// Stream time of "0 ms".
    pub start_pts: i64,
    /// Presentation times of every decodable frame, ascending.
    pub frame_pts: Vec<i64>,
    /// Presentation times of the keyframes, ascending.
    pub keyframe_pts: Vec<i64>,
    /// Stream time at which the last frame stops being shown.
    pub end_pts: i64,
}

impl Scan {
    /// Clip time of stream ticks.
    pub fn ms_of_pts(&self, pts: i64) -> i64 {
        ticks_to_ms(pts - self.start_pts, self.time_base)
    }

    /// The frame on screen at clip time `ms`: the last one starting at or
    /// before it (the first frame for earlier times). Compared in whole
    /// milliseconds, as reported, so a reported time maps back to its frame.
    pub fn frame_at_ms(&self, ms: i64) -> i64 {
        let i = self.frame_pts.partition_point(|&p| self.ms_of_pts(p) <= ms);
        self.frame_pts[i.saturating_sub(1)]
    }

    /// The first frame starting at or after clip time `ms`, if any.
    pub fn first_frame_from_ms(&self, ms: i64) -> Option<i64> {
        let i = self.frame_pts.partition_point(|&p| self.ms_of_pts(p) < ms);
        self.frame_pts.get(i).copied()
    }

    /// How long the frame at `pts` is on screen, in ticks.
    pub fn frame_duration(&self, pts: i64) -> i64 {
        let i = self.frame_pts.partition_point(|&p| p <= pts);
        self.frame_pts.get(i).copied().unwrap_or(self.end_pts) - pts
    }

    /// The last keyframe at or before `pts` (the first keyframe for earlier times).
    pub fn keyframe_at_or_before(&self, pts: i64) -> i64 {
        let i = self.keyframe_pts.partition_point(|&p| p <= pts);
        self.keyframe_pts[i.saturating_sub(1)]
    }
}

/// Probes `input` and checks it against `limits`.
pub fn probe(input: &Path, limits: &MediaLimits, cancel: &Cancel) -> MediaResult<ProbeInfo> {
    Ok(scan(input, limits, cancel)?.info)
}

/// Probes `input`, keeping the timing tables.
pub(crate) fn scan(input: &Path, limits: &MediaLimits, cancel: &Cancel) -> MediaResult<Scan> {
    let mut source = input::open(input, limits, Header::Full, cancel)?;
    scan_source(&mut source, limits, cancel)
}

/// Probes an opened clip by reading all its packets; the caller may then
/// read it again from a keyframe ([`Source::start_at`]) without opening it
/// anew. Opened with [`Header::Lean`], `pix_fmt` may be `unknown`.
pub(crate) fn scan_source(
    source: &mut Source,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<Scan> {
    let header = header_facts(source);
    let tb = source.time_base;
    if let Some(declared) = header.duration_ticks {
        limits.check_duration(ticks_to_ms(declared, tb))?;
    }
    let start_pts = header.start_pts;

    let mut frame_pts = Vec::new();
    let mut keyframe_pts = Vec::new();
    let mut end_pts = i64::MIN;
    let mut first_key: Option<i64> = None;
    while let Some(packet) = source.next_video_packet(cancel)? {
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        if packet.is_key() && first_key.is_none() {
            first_key = Some(pts);
        }
        // Frames before the first keyframe (a recording that starts
        // mid-group) or leading pictures referring to them cannot decode.
        let Some(first) = first_key else { continue };
        if pts < first {
            continue;
        }
        if packet.is_key() {
            keyframe_pts.push(pts);
        }
        frame_pts.push(pts);
        end_pts = end_pts.max(pts + packet.duration().max(0));
        let start = start_pts.unwrap_or(first);
        limits.check_duration(ticks_to_ms(pts - start, tb))?;
    }
    if frame_pts.is_empty() {
        return Err(MediaError::new(
            MediaError::TRUNCATED,
            "the video stream holds no decodable frame",
        ));
    }
    frame_pts.sort_unstable();
    frame_pts.dedup();
    keyframe_pts.sort_unstable();
    keyframe_pts.dedup();
    let start_pts = start_pts.unwrap_or(frame_pts[0]).min(frame_pts[0]);

    let intervals: Vec<i64> = frame_pts.windows(2).map(|w| w[1] - w[0]).collect();
    let typical = median(&intervals).unwrap_or(0);
    let last = *frame_pts.last().expect("a frame");
    // A last packet without a duration lasts as long as a typical frame.
    let end_pts = end_pts.max(last + typical).max(last + 1);
    let duration_ms = ticks_to_ms(end_pts - start_pts, tb);
    limits.check_duration(duration_ms)?;

    let variable_frame_rate = match (intervals.iter().min(), intervals.iter().max()) {
        (Some(&min), Some(&max)) if min > 0 => max * 4 > min * 5,
        _ => false,
    };
    let frame_count = frame_pts.len() as u64;
    let fps = match header.avg_frame_rate {
        Some(r) if !variable_frame_rate => f64::from(r),
        _ if duration_ms > 0 => frame_count as f64 * 1000.0 / duration_ms as f64,
        _ => 0.0,
    };

    let keyframes_ms = keyframe_pts
        .iter()
        .map(|&p| ticks_to_ms(p - start_pts, tb))
        .collect();
    Ok(Scan {
        info: ProbeInfo {
            container: header.container,
            codec: header.codec,
            pix_fmt: header.pix_fmt,
            width: header.width,
            height: header.height,
            rotation: header.rotation,
            duration_ms,
            fps,
            variable_frame_rate,
            frame_count,
            keyframes_ms,
            has_audio: header.has_audio,
        },
        time_base: tb,
        start_pts,
        frame_pts,
        keyframe_pts,
        end_pts,
    })
}

struct HeaderFacts {
    container: String,
    codec: String,
    pix_fmt: String,
    width: u32,
    height: u32,
    rotation: u16,
    has_audio: bool,
    start_pts: Option<i64>,
    duration_ticks: Option<i64>,
    avg_frame_rate: Option<Rational>,
}

fn header_facts(source: &Source) -> HeaderFacts {
    let stream = source
        .ictx
        .stream(source.index)
        .expect("video stream exists");
    let params = stream.parameters();
    let (width, height, pixel) = input::dimensions(&params);
    let has_audio = source
        .ictx
        .streams()
        .any(|s| s.parameters().medium() == ff::media::Type::Audio);
    let start = stream.start_time();
    let duration = stream.duration();
    let rate = stream.avg_frame_rate();
    HeaderFacts {
        container: source.ictx.format().name().to_string(),
        codec: params.id().name().to_string(),
        pix_fmt: pixel
            .descriptor()
            .map_or_else(|| "unknown".to_string(), |d| d.name().to_string()),
        width,
        height,
        rotation: rotation(&stream),
        has_audio,
        start_pts: (start != ff::ffi::AV_NOPTS_VALUE).then_some(start),
        duration_ticks: (duration != ff::ffi::AV_NOPTS_VALUE && duration > 0).then_some(duration),
        avg_frame_rate: (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate),
    }
}

/// The display matrix's counter-clockwise turn, snapped to a quarter turn.
fn rotation(stream: &ff::format::stream::Stream) -> u16 {
    for side in stream.side_data() {
        if side.kind() != ff::codec::packet::side_data::Type::DisplayMatrix {
            continue;
        }
        let data = side.data();
        if data.len() < 36 {
            continue;
        }
        let mut matrix = [0i32; 9];
        for (i, m) in matrix.iter_mut().enumerate() {
            *m = i32::from_ne_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
        // SAFETY: `matrix` holds the nine 32-bit entries the function reads.
        let degrees = unsafe { ff::ffi::av_display_rotation_get(matrix.as_ptr()) };
        if degrees.is_nan() {
            return 0;
        }
        let quarter = (degrees / 90.0).round() as i64;
        return (quarter.rem_euclid(4) * 90) as u16;
    }
    0
}

fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}
