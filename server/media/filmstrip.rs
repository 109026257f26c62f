//! The filmstrip: evenly spread thumbnails in one sprite JPEG, with the
//! time of each, so the console can scrub a clip before it loads.

use std::path::Path;

use ffmpeg_next as ff;
use serde::Serialize;

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::input::{self, frame_pts};
use super::limits::MediaLimits;
use super::picture::{rgb_image, write_jpeg, Pipeline};
use super::probe::{self, Scan};

/// Most tiles in one row of the sprite.
pub const MAX_COLUMNS: u32 = 10;
/// Most thumbnails in one filmstrip.
pub const MAX_TILES: u32 = 100;
/// Widest thumbnail.
pub const MAX_TILE_WIDTH: u32 = 1280;

/// What [`filmstrip`] wrote: tile `i` sits at column `i % columns`, row
/// `i / columns`, and shows the frame at `timestamps_ms[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filmstrip {
    /// Tiles per row.
    pub columns: u32,
    /// Rows of tiles.
    pub rows: u32,
    /// Width of one tile.
    pub tile_width: u32,
    /// Height of one tile.
    pub tile_height: u32,
    /// Presentation time of each tile's frame, ascending, in ms from the
    /// start of the clip.
    pub timestamps_ms: Vec<i64>,
    /// Whether only keyframes were decoded.
    pub keyframes_only: bool,
}

/// Writes `count` thumbnails `tile_width` wide, spread evenly over the clip,
/// as one sprite JPEG.
///
/// With at least `count` keyframes, the tiles are keyframes chosen evenly
/// among them, and the decoder skips every other frame (`AVDISCARD_NONKEY`):
/// only `count` pictures are decoded. Otherwise the clip is decoded up to
/// the last tile and each tile is the frame shown at the middle of its
/// share of the clip. A clip with fewer frames than `count` gets one tile
/// per frame.
pub fn filmstrip(
    input: &Path,
    count: u32,
    tile_width: u32,
    output: &Path,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<Filmstrip> {
    if !(1..=MAX_TILES).contains(&count) || !(1..=MAX_TILE_WIDTH).contains(&tile_width) {
        return Err(MediaError::new(
            MediaError::INVALID_OPTIONS,
            format!("a filmstrip takes 1 to {MAX_TILES} tiles 1 to {MAX_TILE_WIDTH} pixels wide"),
        ));
    }
    let scan = probe::scan(input, limits, cancel)?;
    let (wanted, keyframes_only) = pick_frames(&scan, count as usize);

    let mut source = input::open(input, limits, cancel)?;
    let mut decoder = source.decoder(limits, keyframes_only)?;
    let info = &scan.info;
    let tile_height = ((u64::from(tile_width) * u64::from(info.display_height())
        + u64::from(info.display_width()) / 2)
        / u64::from(info.display_width()))
    .max(1) as u32;
    let mut pipeline = Pipeline::new(
        info.rotation,
        tile_width,
        tile_height,
        ff::format::Pixel::RGB24,
        scan.time_base,
    );

    let first_needed = scan.keyframe_at_or_before(wanted[0]);
    let mut tiles: Vec<(i64, image::RgbImage)> = Vec::with_capacity(wanted.len());
    let mut held: Option<(i64, ff::frame::Video)> = None;
    'read: loop {
        let packet = loop {
            match source.next_video_packet_from(first_needed, cancel)? {
                // In keyframe mode only the chosen keyframes reach the
                // decoder at all; it discards anything else it is given.
                Some(p) if keyframes_only && !is_wanted_keyframe(&p, &wanted) => continue,
                other => break other,
            }
        };
        match &packet {
            Some(p) => decoder.send(p)?,
            None => decoder.send_eof()?,
        }
        while let Some(frame) = decoder.receive()? {
            cancel.check()?;
            let Some(pts) = frame_pts(&frame) else {
                continue;
            };
            // Each wanted time takes the last frame starting at or before it.
            while tiles.len() < wanted.len() && wanted[tiles.len()] < pts {
                let (shown_pts, shown) = held.as_ref().map_or((pts, &frame), |(p, f)| (*p, f));
                let tile = rgb_image(&pipeline.convert_one(shown)?);
                tiles.push((shown_pts, tile));
            }
            if tiles.len() == wanted.len() {
                break 'read;
            }
            held = Some((pts, frame));
        }
        if packet.is_none() {
            break;
        }
    }
    if let Some((pts, frame)) = &held {
        while tiles.len() < wanted.len() {
            tiles.push((*pts, rgb_image(&pipeline.convert_one(frame)?)));
        }
    }
    if tiles.len() < wanted.len() {
        return Err(MediaError::new(
            MediaError::CORRUPT_VIDEO,
            "frames listed in the container do not decode",
        ));
    }

    let n = tiles.len() as u32;
    let columns = n.min(MAX_COLUMNS);
    let rows = n.div_ceil(columns);
    let mut sprite = image::RgbImage::new(columns * tile_width, rows * tile_height);
    for (i, (_, tile)) in tiles.iter().enumerate() {
        let i = i as u32;
        image::imageops::replace(
            &mut sprite,
            tile,
            i64::from((i % columns) * tile_width),
            i64::from((i / columns) * tile_height),
        );
    }
    write_jpeg(&sprite, output)?;
    Ok(Filmstrip {
        columns,
        rows,
        tile_width,
        tile_height,
        timestamps_ms: tiles.iter().map(|(p, _)| scan.ms_of_pts(*p)).collect(),
        keyframes_only,
    })
}

fn is_wanted_keyframe(packet: &ff::Packet, wanted: &[i64]) -> bool {
    packet.is_key()
        && packet
            .pts()
            .or(packet.dts())
            .is_some_and(|t| wanted.contains(&t))
}

/// The frames (stream times, ascending) the tiles show, and whether they are
/// all keyframes.
fn pick_frames(scan: &Scan, count: usize) -> (Vec<i64>, bool) {
    let keys = &scan.keyframe_pts;
    if keys.len() >= count {
        // Evenly among keyframes: index (i + ½)·k/n, distinct as k ≥ n.
        let picked = (0..count)
            .map(|i| keys[(2 * i + 1) * keys.len() / (2 * count)])
            .collect();
        return (picked, true);
    }
    let n = count.min(scan.frame_pts.len()) as i64;
    let duration = scan.info.duration_ms;
    let mut picked: Vec<i64> = (0..n)
        .map(|i| scan.frame_at_ms((2 * i + 1) * duration / (2 * n)))
        .collect();
    picked.dedup();
    (picked, false)
}
