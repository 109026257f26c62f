//! The browser MP4: H.264, yuv420p, `moov` before `mdat`, video only.
//!
//! Two paths. A source that is already H.264 yuv420p without rotation, cut
//! (if at all) at keyframes, is remuxed: its packets are copied, so the
//! picture is bit-for-bit the camera's and the work is a file read. Every
//! other source is decoded and re-encoded with libx264.
//!
//! The transcode decodes every frame it outputs, so damaged frames fail it.
//! The remux does not decode: that would cost ten times the copy. Its
//! output's frames are checked by the caller before anyone is shown them,
//! in the pass that decodes the video anyway ([`OutputInfo::frames_checked`]
//! says which case it is; see [`filmstrip`](super::filmstrip())).
//!
//! Audio is dropped: labelers judge what hands do, cameras' audio is
//! unrelated noise, and a video-only file needs no audio transcode path.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use ff::codec::Id;
use ff::format::Pixel;
use ff::{Dictionary, Packet, Rational};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::cut::{CutAccuracy, FrameSelector, Window};
use super::error::{MediaError, MediaResult};
use super::input::{self, frame_pts, Header, Source};
use super::limits::MediaLimits;
use super::picture::Pipeline;
use super::probe::{self, ProbeInfo, Scan};
use super::{ffmpeg_path, partial_path};

/// libx264 preset: fast enough for two shared cores, small enough files.
pub const X264_PRESET: &str = "veryfast";
/// libx264 constant rate factor: visually clean at camera resolutions.
pub const X264_CRF: &str = "23";

/// How the output was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Packets copied from the source.
    Remux,
    /// Decoded and re-encoded with libx264.
    Transcode,
}

/// What [`make_browser_mp4`] wrote, read back from the output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputInfo {
    /// Remux or transcode.
    pub method: Method,
    /// Where in the source the output's first frame is, in ms from the
    /// start of the source: an event at source time `t` is at `t -
    /// source_start_ms` in the output.
    pub source_start_ms: i64,
    /// Duration of the output.
    pub duration_ms: i64,
    /// Output width (upright).
    pub width: u32,
    /// Output height (upright).
    pub height: u32,
    /// Frames in the output.
    pub frame_count: u64,
    /// Size of the output file.
    pub bytes: u64,
    /// Whether every output frame was decoded without damage on the way
    /// (a transcode). A remux copies frames without decoding them: check
    /// them before showing the video (the clip job's filmstrip does, with
    /// [`Decode::EveryFrame`](super::Decode::EveryFrame)).
    pub frames_checked: bool,
}

/// Writes a browser-playable MP4 of `input` (or of `window` of it) to `output`.
///
/// The file appears at `output` only when complete (it is written next to
/// it first). Keyframe accuracy on a browser-ready source remuxes from the
/// keyframe at or before the window's start; everything else transcodes.
pub fn make_browser_mp4(
    input: &Path,
    output: &Path,
    window: Option<Window>,
    accuracy: CutAccuracy,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<OutputInfo> {
    let mut source = input::open(input, limits, Header::Full, cancel)?;
    let scan = probe::scan_source(&mut source, limits, cancel)?;
    let window = window.map(|w| w.clamp(scan.info.duration_ms)).transpose()?;
    let method = if scan.info.is_browser_ready()
        && (window.is_none() || accuracy == CutAccuracy::Keyframe)
    {
        Method::Remux
    } else {
        Method::Transcode
    };
    let partial = partial_path(output);
    let written = match method {
        Method::Remux => remux(&mut source, &partial, &scan, window, cancel),
        Method::Transcode => transcode(&mut source, &partial, &scan, window, limits, cancel),
    }
    .and_then(|first_pts| Ok((first_pts, read_back(&partial, limits, cancel)?)))
    .and_then(|done| {
        std::fs::rename(&partial, output)
            .map_err(|e| MediaError::io("moving the output into place", e))?;
        Ok(done)
    });
    let (first_pts, out) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(output)
        .map_err(|e| MediaError::io("reading the output", e))?
        .len();
    Ok(OutputInfo {
        method,
        source_start_ms: scan.ms_of_pts(first_pts),
        duration_ms: out.duration_ms,
        width: out.width,
        height: out.height,
        frame_count: out.frame_count,
        bytes,
        frames_checked: method == Method::Transcode,
    })
}

/// Probes the written file: the numbers reported are the file's own, and a
/// file that does not read back is never moved into place. Its header is
/// ours and complete: nothing of it is decoded.
fn read_back(written: &Path, limits: &MediaLimits, cancel: &Cancel) -> MediaResult<ProbeInfo> {
    let unbounded = MediaLimits {
        max_width: u32::MAX,
        max_height: u32::MAX,
        max_pixels: u64::MAX,
        max_duration_ms: i64::MAX,
        ..limits.clone()
    };
    input::open(written, &unbounded, Header::Lean, cancel)
        .and_then(|mut source| probe::scan_source(&mut source, &unbounded, cancel))
        .map(|scan| scan.info)
        .map_err(|e| {
            if e.code == MediaError::CANCELLED {
                e
            } else {
                MediaError::new(
                    MediaError::ENCODE_FAILED,
                    format!("the written MP4 does not read back: {e}"),
                )
            }
        })
}

/// Where a cut starts reading and which frames it keeps, in stream time.
struct Span {
    /// The keyframe decoding starts from.
    keyframe: i64,
    /// The frame on screen at the window's start.
    from: i64,
    /// The first frame after the window (kept frames start before it).
    to: i64,
}

fn span(scan: &Scan, window: Option<Window>) -> Span {
    match window {
        Some(w) => {
            let from = scan.frame_at_ms(w.from_ms);
            Span {
                keyframe: scan.keyframe_at_or_before(from),
                from,
                to: scan.first_frame_from_ms(w.to_ms).unwrap_or(i64::MAX),
            }
        }
        None => Span {
            keyframe: scan.keyframe_pts[0],
            from: i64::MIN,
            to: i64::MAX,
        },
    }
}

/// Copies packets from the keyframe at or before the window up to its end;
/// returns the source time of the first one. Nothing is decoded.
fn remux(
    source: &mut Source,
    partial: &Path,
    scan: &Scan,
    window: Option<Window>,
    cancel: &Cancel,
) -> MediaResult<i64> {
    let span = span(scan, window);
    source.start_at(span.keyframe, cancel)?;
    let tb = source.time_base;
    let mut octx = open_output(partial)?;
    {
        let ist = source
            .ictx
            .stream(source.index)
            .expect("video stream exists");
        let mut ost = octx
            .add_stream(ff::encoder::find(Id::None))
            .map_err(|e| MediaError::ffmpeg(MediaError::ENCODE_FAILED, "adding a stream", e))?;
        ost.set_parameters(ist.parameters());
        // SAFETY: the stream's codecpar is live; a source container's tag
        // (e.g. Matroska's) means nothing to MP4, which picks its own.
        unsafe {
            (*ost.parameters().as_mut_ptr()).codec_tag = 0;
        }
        ost.set_time_base(tb);
    }
    write_header(&mut octx)?;
    let ost_tb = octx.stream(0).expect("output stream").time_base();
    let mut copy = |mut packet: Packet| -> MediaResult<()> {
        packet.set_pts(packet.pts().map(|p| p - span.keyframe));
        packet.set_dts(packet.dts().map(|d| d - span.keyframe));
        packet.rescale_ts(tb, ost_tb);
        packet.set_stream(0);
        packet.set_position(-1);
        packet
            .write_interleaved(&mut octx)
            .map_err(|e| mux_error("copying a packet", e))
    };

    // Packets shown after the window wait: a later packet shown inside it
    // may refer to them (B-frames), and if none does they are dropped.
    let mut after_window: Vec<Packet> = Vec::new();
    while let Some(packet) = source.next_video_packet_from(span.keyframe, cancel)? {
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        // Decode order: every frame shown before `to` is decoded before
        // the first packet whose decode time reaches `to`.
        if packet.dts().unwrap_or(pts) >= span.to {
            break;
        }
        if pts >= span.to {
            after_window.push(packet);
            continue;
        }
        for needed in after_window.drain(..) {
            copy(needed)?;
        }
        copy(packet)?;
    }
    octx.write_trailer()
        .map_err(|e| mux_error("finishing the MP4", e))?;
    Ok(span.keyframe)
}

/// Decodes from the keyframe at or before the window, keeps the frames a
/// frame-accurate cut keeps, and encodes them; returns the source time of
/// the first frame kept.
fn transcode(
    source: &mut Source,
    partial: &Path,
    scan: &Scan,
    window: Option<Window>,
    limits: &MediaLimits,
    cancel: &Cancel,
) -> MediaResult<i64> {
    let span = span(scan, window);
    source.start_at(span.keyframe, cancel)?;
    let mut decoder = source.decoder(limits, limits.threads_per_job, false)?;
    let info = &scan.info;
    let even = |v: u32| (v & !1).max(2);
    let (width, height) = (even(info.display_width()), even(info.display_height()));
    let pipeline = Pipeline::new(info.rotation, width, height, Pixel::YUV420P, scan.time_base)
        .with_threads(limits.threads_per_job);
    let mut out = Encoding::new(partial, pipeline, scan, limits)?;
    let mut selector = FrameSelector::new(span.from, span.to);

    'read: loop {
        let packet = source.next_video_packet_from(span.keyframe, cancel)?;
        match &packet {
            Some(p) => decoder.send(p)?,
            None => decoder.send_eof()?,
        }
        while let Some(mut frame) = decoder.receive()? {
            cancel.check()?;
            let Some(pts) = frame_pts(&frame) else {
                continue;
            };
            frame.set_pts(Some(pts));
            for (_, kept) in selector.offer(pts, frame) {
                out.push(&kept, cancel)?;
            }
            if selector.is_done() {
                break 'read;
            }
        }
        if packet.is_none() {
            break;
        }
    }
    if let Some((_, kept)) = selector.finish() {
        out.push(&kept, cancel)?;
    }
    let last = out.last_source_pts();
    out.finish(scan.frame_duration(last), cancel)
}

/// Upright yuv420p frames into libx264 into an MP4 with faststart.
struct Encoding {
    octx: ff::format::context::Output,
    encoder: ff::encoder::Video,
    pipeline: Pipeline,
    time_base: Rational,
    ost_time_base: Rational,
    first_pts: Option<i64>,
    last_pts: i64,
    last_source_pts: i64,
    /// How long each output frame (by output pts) is shown.
    durations: HashMap<i64, i64>,
    /// Encoded packets waiting for their frame's duration.
    pending: VecDeque<Packet>,
}

impl Encoding {
    fn new(
        partial: &Path,
        pipeline: Pipeline,
        scan: &Scan,
        limits: &MediaLimits,
    ) -> MediaResult<Encoding> {
        let fail = |doing| move |e| MediaError::ffmpeg(MediaError::ENCODE_FAILED, doing, e);
        let codec = ff::encoder::find_by_name("libx264").ok_or_else(|| {
            MediaError::new(
                MediaError::ENCODE_FAILED,
                "FFmpeg was built without libx264",
            )
        })?;
        let mut octx = open_output(partial)?;
        let global_header = octx
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let (width, height) = pipeline.size();
        let time_base = scan.time_base;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(fail("setting up the encoder"))?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(Pixel::YUV420P);
        encoder.set_aspect_ratio(Rational::new(1, 1));
        encoder.set_time_base(time_base);
        let fps = if scan.info.fps > 0.0 {
            scan.info.fps
        } else {
            30.0
        };
        encoder.set_frame_rate(Some(Rational::from(fps)));
        // A keyframe every second keeps seeking in the console instant.
        encoder.set_gop((fps.round() as u32).clamp(1, 300));
        encoder.set_color_range(ff::color::Range::MPEG);
        if global_header {
            // Added to libx264's default flags, which hold `+cgop`: a closed
            // GOP makes every keyframe an IDR picture that decoding (and a
            // browser's seek) can start from.
            // SAFETY: a plain field of the live context (ffmpeg-next has no getter).
            let defaults = unsafe { (*encoder.as_ptr()).flags };
            let flags = ff::codec::Flags::from_bits_truncate(defaults as std::ffi::c_uint);
            encoder.set_flags(flags | ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut options = Dictionary::new();
        options.set("preset", X264_PRESET);
        options.set("crf", X264_CRF);
        options.set("threads", &limits.threads_per_job.max(1).to_string());
        let encoder = encoder
            .open_with(options)
            .map_err(fail("opening libx264"))?;
        {
            let mut ost = octx.add_stream(codec).map_err(fail("adding a stream"))?;
            ost.set_parameters(&encoder);
            ost.set_time_base(time_base);
        }
        write_header(&mut octx)?;
        let ost_time_base = octx.stream(0).expect("output stream").time_base();
        Ok(Encoding {
            octx,
            encoder,
            pipeline,
            time_base,
            ost_time_base,
            first_pts: None,
            last_pts: i64::MIN,
            last_source_pts: i64::MIN,
            durations: HashMap::new(),
            pending: VecDeque::new(),
        })
    }

    /// Converts and encodes one kept frame (its pts in source time).
    fn push(&mut self, frame: &ff::frame::Video, cancel: &Cancel) -> MediaResult<()> {
        self.pipeline.push(frame)?;
        self.encode_converted(cancel)
    }

    /// Encodes every frame the filter graph has ready.
    fn encode_converted(&mut self, cancel: &Cancel) -> MediaResult<()> {
        while let Some(mut upright) = self.pipeline.pull()? {
            let pts = upright.pts().unwrap_or(self.last_pts.saturating_add(1));
            let first = *self.first_pts.get_or_insert(pts);
            // The source's own timestamps, shifted to start at zero: a
            // variable frame rate stays variable. libx264 needs them rising.
            let shifted = (pts - first).max(self.last_pts.saturating_add(1));
            if self.last_pts != i64::MIN {
                self.durations
                    .insert(self.last_pts, shifted - self.last_pts);
            }
            self.last_pts = shifted;
            self.last_source_pts = pts;
            upright.set_pts(Some(shifted));
            upright.set_kind(ff::picture::Type::None);
            self.encoder
                .send_frame(&upright)
                .map_err(|e| MediaError::ffmpeg(MediaError::ENCODE_FAILED, "encoding", e))?;
            self.write_packets(cancel)?;
        }
        Ok(())
    }

    /// Moves encoded packets to the muxer once their frame's duration is
    /// known. libx264 leaves durations unset, and the MP4 muxer ends the
    /// edit list at the last frame's start without one: players would drop
    /// the last frame.
    fn write_packets(&mut self, cancel: &Cancel) -> MediaResult<()> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            cancel.check()?;
            self.pending
                .push_back(std::mem::replace(&mut packet, Packet::empty()));
        }
        while let Some(duration) = self
            .pending
            .front()
            .and_then(|p| p.pts())
            .and_then(|pts| self.durations.get(&pts).copied())
        {
            let mut packet = self.pending.pop_front().expect("front exists");
            packet.set_duration(duration);
            packet.set_stream(0);
            packet.rescale_ts(self.time_base, self.ost_time_base);
            packet
                .write_interleaved(&mut self.octx)
                .map_err(|e| mux_error("writing a packet", e))?;
        }
        Ok(())
    }

    /// Source time of the last frame encoded so far.
    fn last_source_pts(&self) -> i64 {
        self.last_source_pts
    }

    /// Flushes everything, the last frame shown for `last_duration` ticks;
    /// returns the source time of the first frame.
    fn finish(mut self, last_duration: i64, cancel: &Cancel) -> MediaResult<i64> {
        self.pipeline.flush()?;
        self.encode_converted(cancel)?;
        let first = self.first_pts.ok_or_else(|| {
            MediaError::new(MediaError::CORRUPT_VIDEO, "no frame of the window decodes")
        })?;
        self.durations.insert(self.last_pts, last_duration.max(1));
        self.encoder
            .send_eof()
            .map_err(|e| MediaError::ffmpeg(MediaError::ENCODE_FAILED, "flushing libx264", e))?;
        self.write_packets(cancel)?;
        if !self.pending.is_empty() {
            return Err(MediaError::new(
                MediaError::INTERNAL,
                "libx264 returned a packet for a frame it was not given",
            ));
        }
        self.octx
            .write_trailer()
            .map_err(|e| mux_error("finishing the MP4", e))?;
        Ok(first)
    }
}

/// An MP4 muxer writing to `path`.
fn open_output(path: &Path) -> MediaResult<ff::format::context::Output> {
    ff::format::output_as(&ffmpeg_path(path)?, "mp4")
        .map_err(|e| MediaError::ffmpeg(MediaError::IO_ERROR, "creating the output", e))
}

/// Writes the header; `+faststart` makes the muxer move `moov` before
/// `mdat` when it finishes, so browsers start playing before the download ends.
fn write_header(octx: &mut ff::format::context::Output) -> MediaResult<()> {
    let mut options = Dictionary::new();
    options.set("movflags", "+faststart");
    octx.write_header_with(options)
        .map(|_| ())
        .map_err(|e| mux_error("writing the MP4 header", e))
}

/// A muxer refusing the timestamps it is given means the source's are broken.
fn mux_error(doing: &str, e: ff::Error) -> MediaError {
    match e {
        ff::Error::InvalidData => MediaError::ffmpeg(MediaError::CORRUPT_VIDEO, doing, e),
        _ => MediaError::ffmpeg(MediaError::ENCODE_FAILED, doing, e),
    }
}
