//! The poster: the frame shown at the event instant, upright, as a JPEG.

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::h264;
use super::input::{self, frame_pts, Header, Source};
use super::limits::MediaLimits;
use super::picture::{fit_width, write_frame_jpeg, Pipeline};
use super::probe;

/// What [`poster`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosterInfo {
    /// Presentation time of the frame shown, in ms from the start of the clip.
    pub pts_ms: i64,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
}

/// Writes the frame shown at `at_ms` (the last frame starting at or before
/// it) as an upright JPEG at most `max_width` wide.
///
/// Decodes from the keyframe at or before the instant, not from the start
/// (in an MP4 reading jumps there through the index), with
/// `poster_threads` threads: a poster is latency-bound. In H.264, pictures
/// no other picture refers to (`nal_ref_idc` 0) are not decoded unless they
/// are the one shown; the picture is the same as from a full decode. An
/// instant outside `0..=duration` is `invalid-window`: the event and the
/// clip do not belong together, which the caller should hear about.
pub fn poster(
    input: &Path,
    at_ms: i64,
    output: &Path,
    max_width: u32,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<PosterInfo> {
    if max_width == 0 {
        return Err(MediaError::new(
            MediaError::INVALID_OPTIONS,
            "a poster needs a width",
        ));
    }
    let mut source = input::open(input, limits, Header::Lean, cancel)?;
    let scan = probe::scan_source(&mut source, limits, cancel)?;
    if at_ms < 0 || at_ms > scan.info.duration_ms {
        return Err(MediaError::new(
            MediaError::INVALID_WINDOW,
            format!(
                "the instant {at_ms} ms falls outside the clip (0..{} ms)",
                scan.info.duration_ms
            ),
        ));
    }
    let wanted = scan.frame_at_ms(at_ms);
    let keyframe = scan.keyframe_at_or_before(wanted);
    let (pts, frame) = decode_frame(&mut source, keyframe, wanted, true, limits, cancel)?;

    let (width, height) = fit_width(
        scan.info.display_width(),
        scan.info.display_height(),
        max_width,
    );
    let mut pipeline = Pipeline::new(
        scan.info.rotation,
        width,
        height,
        ff::format::Pixel::YUVJ420P,
        scan.time_base,
    )
    .with_threads(limits.poster_threads);
    write_frame_jpeg(&pipeline.convert_one(&frame)?, output)?;
    Ok(PosterInfo {
        pts_ms: scan.ms_of_pts(pts),
        width,
        height,
    })
}

/// Decodes from `keyframe` up to the frame shown at `wanted` (both stream
/// times); returns it with its time. With `skip_non_reference`, H.264
/// pictures no other refers to are not decoded unless shown at `wanted`.
fn decode_frame(
    source: &mut Source,
    keyframe: i64,
    wanted: i64,
    skip_non_reference: bool,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<(i64, ff::frame::Video)> {
    source.start_at(keyframe, cancel)?;
    let mut decoder = source.decoder(limits, limits.poster_threads, false)?;
    let length_size = source.h264_length_size().filter(|_| skip_non_reference);
    let mut shown: Option<(i64, ff::frame::Video)> = None;
    'read: loop {
        let packet = source.next_video_packet_from(keyframe, cancel)?;
        match &packet {
            Some(p) => {
                let pts = p.pts().or(p.dts());
                let skip = pts != Some(wanted)
                    && length_size.is_some_and(|n| {
                        p.data().is_some_and(|data| h264::is_non_reference(data, n))
                    });
                if skip {
                    continue;
                }
                decoder.send(p)?
            }
            None => decoder.send_eof()?,
        }
        while let Some(frame) = decoder.receive()? {
            cancel.check()?;
            let Some(pts) = frame_pts(&frame) else {
                continue;
            };
            if pts > wanted && shown.is_some() {
                break 'read;
            }
            shown = Some((pts, frame));
            if pts >= wanted {
                break 'read;
            }
        }
        if packet.is_none() {
            break;
        }
    }
    shown.ok_or_else(|| {
        MediaError::new(MediaError::CORRUPT_VIDEO, "no frame decodes at the instant")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/media")
            .join(name)
    }

    fn planes(frame: &ff::frame::Video) -> Vec<Vec<u8>> {
        (0..3)
            .map(|plane| {
                let (w, h) = (frame.plane_width(plane), frame.plane_height(plane));
                let stride = frame.stride(plane);
                let data = frame.data(plane);
                (0..h as usize)
                    .flat_map(|y| data[y * stride..y * stride + w as usize].to_vec())
                    .collect()
            })
            .collect()
    }

    /// Every frame, decoded as the poster decodes it (non-reference
    /// pictures skipped, several threads), against a decode of every
    /// picture on one thread: the same pixels, bit for bit. The clip holds
    /// `non_reference` pictures to skip.
    fn assert_skipping_keeps_every_frame_exact(name: &str, non_reference: usize) {
        let cancel = Cancel::new();
        let posters = MediaLimits {
            poster_threads: 2,
            ..MediaLimits::default()
        };
        let single = MediaLimits {
            poster_threads: 1,
            ..MediaLimits::default()
        };
        let path = fixture(name);
        let mut source = input::open(&path, &posters, Header::Lean, &cancel).unwrap();
        let length_size = source.h264_length_size().expect("AVCC H.264");
        let mut skippable = 0;
        while let Some(packet) = source.next_video_packet(&cancel).unwrap() {
            skippable += usize::from(h264::is_non_reference(packet.data().unwrap(), length_size));
        }
        assert_eq!(skippable, non_reference, "{name}");

        let scan = probe::scan(&path, &posters, &cancel).unwrap();
        let mut reference = input::open(&path, &single, Header::Lean, &cancel).unwrap();
        for &wanted in &scan.frame_pts {
            let keyframe = scan.keyframe_at_or_before(wanted);
            let (pts, fast) =
                decode_frame(&mut source, keyframe, wanted, true, &posters, &cancel).unwrap();
            let (ref_pts, full) =
                decode_frame(&mut reference, keyframe, wanted, false, &single, &cancel).unwrap();
            assert_eq!((pts, ref_pts), (wanted, wanted), "{name}");
            assert!(
                planes(&fast) == planes(&full),
                "{name}: frame at {wanted} differs"
            );
        }
    }

    #[test]
    fn skipping_non_reference_pictures_keeps_the_poster_exact_in_mp4() {
        assert_skipping_keeps_every_frame_exact("h264.mp4", 36);
    }

    #[test]
    fn skipping_non_reference_pictures_keeps_the_poster_exact_in_matroska() {
        assert_skipping_keeps_every_frame_exact("vfr.mkv", 18);
    }
}
