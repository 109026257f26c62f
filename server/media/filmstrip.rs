//! The filmstrip: evenly spread thumbnails in one sprite JPEG, with the
//! time of each, so the console can scrub a clip before it loads.

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::input::{self, frame_pts, Header, Source};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether the tiles are all keyframes (with [`Decode::TilesOnly`], only
    /// they were decoded).
    pub keyframes_only: bool,
}

/// Which frames [`filmstrip`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decode {
    /// Only those the tiles need: the chosen keyframes when there are enough,
    /// otherwise the clip up to the last tile.
    TilesOnly,
    /// Every frame of the clip, each checked for damage against
    /// `max_corrupt_frames` as a transcode checks the frames it decodes; the
    /// tiles are the same. For a remuxed video, whose frames nothing has
    /// decoded yet ([`OutputInfo::frames_checked`](super::OutputInfo) false):
    /// a damaged frame fails here, before a labeler is shown the video.
    EveryFrame,
}

/// Writes `count` thumbnails `tile_width` wide, spread evenly over the clip,
/// as one sprite JPEG.
///
/// With at least `count` keyframes, the tiles are keyframes chosen evenly
/// among them, and (with [`Decode::TilesOnly`]) only those `count` pictures
/// are decoded: in an MP4 reading jumps from one to the next through the
/// index. Otherwise the clip is decoded up to the last tile and each tile is
/// the frame shown at the middle of its share of the clip. A clip with fewer
/// frames than `count` gets one tile per frame.
pub fn filmstrip(
    input: &Path,
    count: u32,
    tile_width: u32,
    decode: Decode,
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
    let mut source = input::open(input, limits, Header::Lean, cancel)?;
    let scan = probe::scan_source(&mut source, limits, cancel)?;
    let (wanted, keyframes_only) = pick_frames(&scan, count as usize);

    let info = &scan.info;
    let tile_height = ((u64::from(tile_width) * u64::from(info.display_height())
        + u64::from(info.display_width()) / 2)
        / u64::from(info.display_width()))
    .max(1) as u32;
    let mut tiles = Tiles {
        pipeline: Pipeline::new(
            info.rotation,
            tile_width,
            tile_height,
            ff::format::Pixel::RGB24,
            scan.time_base,
        ),
        wanted: &wanted,
        made: Vec::with_capacity(wanted.len()),
    };
    if keyframes_only && decode == Decode::TilesOnly {
        keyframe_tiles(&mut source, &mut tiles, limits, cancel)?;
    } else {
        decoded_tiles(&mut source, &scan, &mut tiles, decode, limits, cancel)?;
    }
    let tiles = tiles.made;

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

/// The tiles wanted (stream times, ascending) and those made so far.
struct Tiles<'a> {
    pipeline: Pipeline,
    wanted: &'a [i64],
    made: Vec<(i64, image::RgbImage)>,
}

impl Tiles<'_> {
    fn done(&self) -> bool {
        self.made.len() == self.wanted.len()
    }

    fn push(&mut self, pts: i64, frame: &ff::frame::Video) -> MediaResult<()> {
        let tile = rgb_image(&self.pipeline.convert_one(frame)?);
        self.made.push((pts, tile));
        Ok(())
    }
}

/// Decodes the wanted keyframes alone, each on its own: the decoder is fed
/// one keyframe, drained and reset, so nothing else is read into it.
fn keyframe_tiles(
    source: &mut Source,
    tiles: &mut Tiles,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<()> {
    let mut decoder = source.decoder(limits, limits.threads_per_job, true)?;
    for (i, &keyframe) in tiles.wanted.iter().enumerate() {
        // Where seeking is exact, jump to each; elsewhere read on from the first.
        if i == 0 || source.seeks_exactly() {
            source.start_at(keyframe, cancel)?;
        }
        let packet = loop {
            let Some(packet) = source.next_video_packet(cancel)? else {
                return Err(not_decodable());
            };
            match packet.pts().or(packet.dts()) {
                Some(pts) if packet.is_key() && pts == keyframe => break packet,
                Some(pts) if packet.is_key() && pts > keyframe => {
                    return Err(MediaError::new(
                        MediaError::INTERNAL,
                        "reading went past a keyframe the index lists",
                    ))
                }
                _ => {}
            }
        };
        decoder.send(&packet)?;
        decoder.send_eof()?;
        let mut shown = None;
        while let Some(frame) = decoder.receive()? {
            cancel.check()?;
            shown = Some(frame);
        }
        decoder.flush();
        let frame = shown.ok_or_else(not_decodable)?;
        tiles.push(keyframe, &frame)?;
    }
    Ok(())
}

/// Decodes from the first keyframe on, up to the last tile or, with
/// [`Decode::EveryFrame`], to the end; each wanted time takes the last frame
/// starting at or before it.
fn decoded_tiles(
    source: &mut Source,
    scan: &Scan,
    tiles: &mut Tiles,
    decode: Decode,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<()> {
    let mut decoder = source.decoder(limits, limits.threads_per_job, false)?;
    let first = if decode == Decode::EveryFrame {
        scan.keyframe_pts[0]
    } else {
        scan.keyframe_at_or_before(tiles.wanted[0])
    };
    source.start_at(first, cancel)?;
    let mut held: Option<(i64, ff::frame::Video)> = None;
    'read: loop {
        let packet = source.next_video_packet_from(first, cancel)?;
        match &packet {
            Some(p) => decoder.send(p)?,
            None => decoder.send_eof()?,
        }
        while let Some(frame) = decoder.receive()? {
            cancel.check()?;
            let Some(pts) = frame_pts(&frame) else {
                continue;
            };
            while !tiles.done() && tiles.wanted[tiles.made.len()] < pts {
                let (shown_pts, shown) = held.as_ref().map_or((pts, &frame), |(p, f)| (*p, f));
                tiles.push(shown_pts, shown)?;
            }
            if tiles.done() && decode == Decode::TilesOnly {
                break 'read;
            }
            held = Some((pts, frame));
        }
        if packet.is_none() {
            break;
        }
    }
    if let Some((pts, frame)) = &held {
        while !tiles.done() {
            tiles.push(*pts, frame)?;
        }
    }
    if !tiles.done() {
        return Err(not_decodable());
    }
    Ok(())
}

fn not_decodable() -> MediaError {
    MediaError::new(
        MediaError::CORRUPT_VIDEO,
        "frames listed in the container do not decode",
    )
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
