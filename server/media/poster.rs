//! The poster: the frame shown at the event instant, upright, as a JPEG.

use std::path::Path;

use ffmpeg_next as ff;
use serde::Serialize;

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::input::{self, frame_pts};
use super::limits::MediaLimits;
use super::picture::{fit_width, rgb_image, write_jpeg, Pipeline};
use super::probe;

/// What [`poster`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
/// Decodes from the keyframe at or before the instant, not from the start.
/// An instant outside `0..=duration` is `invalid-window`: the event and the
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
    let scan = probe::scan(input, limits, cancel)?;
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

    let mut source = input::open(input, limits, cancel)?;
    let mut decoder = source.decoder(limits, false)?;
    let mut shown: Option<(i64, ff::frame::Video)> = None;
    'read: loop {
        let packet = source.next_video_packet_from(keyframe, cancel)?;
        match &packet {
            Some(p) => decoder.send(p)?,
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
    let (pts, frame) = shown.ok_or_else(|| {
        MediaError::new(MediaError::CORRUPT_VIDEO, "no frame decodes at the instant")
    })?;

    let (width, height) = fit_width(
        scan.info.display_width(),
        scan.info.display_height(),
        max_width,
    );
    let mut pipeline = Pipeline::new(
        scan.info.rotation,
        width,
        height,
        ff::format::Pixel::RGB24,
        scan.time_base,
    );
    let picture = rgb_image(&pipeline.convert_one(&frame)?);
    write_jpeg(&picture, output)?;
    Ok(PosterInfo {
        pts_ms: scan.ms_of_pts(pts),
        width,
        height,
    })
}
