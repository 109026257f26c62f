//! Opening a clip: file checks, the demuxer and codec allow-lists, the video
//! stream, packet reading and decoding with errors classified.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Once;

use ff::codec::Id;
use ff::format::stream::Disposition;
use ff::{Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::h264;
use super::limits::MediaLimits;
use super::sniff::{sniff, Sniff};

/// Demuxers a clip may be read with. Everything else (playlists, concat
/// lists, image sequences, raw elementary streams) is refused: some of them
/// open further files named inside the upload.
pub const ACCEPTED_FORMATS: &str = "mov,matroska,avi,mpegts,flv";

/// Video codecs accepted from cameras.
pub const ACCEPTED_CODECS: &[Id] = &[
    Id::H264,
    Id::HEVC,
    Id::MPEG4,
    Id::MPEG2VIDEO,
    Id::MJPEG,
    Id::VP8,
    Id::VP9,
    Id::AV1,
];

/// Initializes FFmpeg once and keeps its logging to fatal errors: every
/// failure reaches the caller as a [`MediaError`] instead.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ff::init().expect("FFmpeg initializes");
        ff::log::set_level(ff::log::Level::Fatal);
    });
}

/// How much [`open`] reads before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// The container's header, then FFmpeg's `avformat_find_stream_info`,
    /// which reads and decodes the first frames for what headers leave out:
    /// the pixel format of H.264 in MP4, most of Matroska's parameters.
    Full,
    /// For MP4/MOV, the header alone: it holds every parameter but the
    /// pixel format, which operations that decode learn from their decoder.
    /// Saves a frame's decoding (about 10 ms at 1080p) on each open. Other
    /// containers are read as with [`Header::Full`].
    Lean,
}

/// An opened clip and its video stream.
pub(crate) struct Source {
    /// The demuxer.
    pub ictx: ff::format::context::Input,
    /// Index of the video stream.
    pub index: usize,
    /// Time base of the video stream.
    pub time_base: Rational,
    /// Unreadable packets met so far.
    bad_packets: u32,
    max_bad_packets: u32,
    /// Whether [`Source::next_video_packet_from`] has reached its keyframe.
    reached_keyframe: bool,
    /// Whether a packet was read since opening.
    read_any: bool,
    /// What it was opened from and with, to open it anew.
    path: PathBuf,
    limits: MediaLimits,
    header: Header,
}

/// Opens `path`, finds its video stream and checks it against the
/// allow-lists and the dimension limits.
pub(crate) fn open(
    path: &Path,
    limits: &MediaLimits,
    header: Header,
    cancel: &Cancel,
) -> MediaResult<Source> {
    init();
    cancel.check()?;
    let meta = std::fs::metadata(path).map_err(|e| MediaError::io("reading the clip", e))?;
    if meta.len() == 0 {
        return Err(MediaError::new(MediaError::EMPTY_FILE, "the file is empty"));
    }
    let sniffed = sniff(path).map_err(|e| MediaError::io("reading the clip", e))?;
    if sniffed == (Sniff::Mp4 { truncated: true }) {
        return Err(truncated_mp4());
    }

    let mut options = Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", ACCEPTED_FORMATS);
    let ictx = open_input(&super::ffmpeg_path(path)?, options, header, cancel).map_err(|e| {
        if cancel.is_cancelled() {
            cancel.check().expect_err("cancelled")
        } else {
            MediaError::new(
                MediaError::NOT_VIDEO,
                format!("the file is not a video container we read ({e})"),
            )
        }
    })?;

    let video = ictx
        .streams()
        .filter(|s| s.parameters().medium() == ff::media::Type::Video)
        .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
        .max_by_key(|s| {
            let (w, h, _) = dimensions(&s.parameters());
            u64::from(w) * u64::from(h)
        })
        .ok_or_else(|| {
            MediaError::new(
                MediaError::NO_VIDEO_STREAM,
                "the file holds no video stream",
            )
        })?;
    let params = video.parameters();
    let id = params.id();
    if !ACCEPTED_CODECS.contains(&id) || ff::decoder::find(id).is_none() {
        return Err(MediaError::new(
            MediaError::UNSUPPORTED_CODEC,
            format!("video codec {} is not accepted", id.name()),
        ));
    }
    let (width, height, _) = dimensions(&params);
    if width == 0 || height == 0 {
        return Err(MediaError::new(
            MediaError::CORRUPT_VIDEO,
            "the video stream declares no picture size",
        ));
    }
    limits.check_dimensions(width, height)?;
    let index = video.index();
    let time_base = video.time_base();
    if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
        return Err(MediaError::new(
            MediaError::CORRUPT_VIDEO,
            "the video stream has no time base",
        ));
    }
    Ok(Source {
        ictx,
        index,
        time_base,
        bad_packets: 0,
        max_bad_packets: limits.max_corrupt_frames,
        reached_keyframe: false,
        read_any: false,
        path: path.to_path_buf(),
        limits: limits.clone(),
        header,
    })
}

/// `ff::format::input_with_interrupt_and_dictionary`, with
/// `avformat_find_stream_info` left out where `header` allows.
fn open_input(
    url: &str,
    options: Dictionary,
    header: Header,
    cancel: &Cancel,
) -> Result<ff::format::context::Input, ff::Error> {
    let url = CString::new(url).map_err(|_| ff::Error::InvalidData)?;
    let flag = cancel.clone();
    let interrupt = ff::util::interrupt::new(Box::new(move || flag.is_cancelled()));
    // SAFETY: the usual open sequence of ffmpeg-next's own function: the
    // context is ours until wrapped, FFmpeg frees it when opening fails,
    // and the interrupt closure lives as long as the context (its guard
    // goes into the wrapper).
    unsafe {
        let mut ps = ff::ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ff::Error::Other {
                errno: ff::error::ENOMEM,
            });
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        let mut opts = options.disown();
        let rc = ff::ffi::avformat_open_input(&mut ps, url.as_ptr(), std::ptr::null(), &mut opts);
        Dictionary::own(opts);
        if rc < 0 {
            return Err(ff::Error::from(rc));
        }
        let mov = CStr::from_ptr((*(*ps).iformat).name)
            .to_bytes()
            .starts_with(b"mov");
        if !(header == Header::Lean && mov) {
            let rc = ff::ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
            if rc < 0 {
                ff::ffi::avformat_close_input(&mut ps);
                return Err(ff::Error::from(rc));
            }
        }
        Ok(ff::format::context::Input::wrap_with_interrupt(
            ps,
            interrupt.guard,
        ))
    }
}

pub(crate) fn truncated_mp4() -> MediaError {
    MediaError::new(
        MediaError::TRUNCATED,
        "the file ends before its index or frame data does: the upload or recording was cut short",
    )
}

/// Stored width, height and pixel format of a video stream.
pub(crate) fn dimensions(params: &ff::codec::Parameters) -> (u32, u32, ff::format::Pixel) {
    // SAFETY: `params` wraps a live AVCodecParameters; these are plain fields.
    unsafe {
        let p = params.as_ptr();
        let format = std::mem::transmute::<i32, ff::ffi::AVPixelFormat>((*p).format);
        (
            u32::try_from((*p).width).unwrap_or(0),
            u32::try_from((*p).height).unwrap_or(0),
            ff::format::Pixel::from(format),
        )
    }
}

impl Source {
    /// The next packet of the video stream, `None` at the end.
    ///
    /// Unreadable packets count against `max_corrupt_frames`; the stop flag is
    /// checked before every read.
    pub fn next_video_packet(&mut self, cancel: &Cancel) -> MediaResult<Option<Packet>> {
        self.read_any = true;
        loop {
            cancel.check()?;
            let mut packet = Packet::empty();
            match packet.read(&mut self.ictx) {
                Ok(()) if packet.stream() == self.index && packet.size() > 0 => {
                    return Ok(Some(packet))
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::InvalidData) => {
                    self.bad_packets += 1;
                    if self.bad_packets > self.max_bad_packets {
                        return Err(MediaError::new(
                            MediaError::CORRUPT_VIDEO,
                            "the container holds unreadable packets",
                        ));
                    }
                }
                Err(ff::Error::Exit) if cancel.is_cancelled() => {
                    return Err(cancel.check().expect_err("cancelled"))
                }
                Err(e) => {
                    return Err(MediaError::ffmpeg(
                        MediaError::CORRUPT_VIDEO,
                        "reading the clip",
                        e,
                    ))
                }
            }
        }
    }

    /// The next video packet, starting at the keyframe shown at `keyframe`:
    /// packets decoded before it, and leading pictures shown before it
    /// (which may refer to frames before it), are skipped.
    pub fn next_video_packet_from(
        &mut self,
        keyframe: i64,
        cancel: &Cancel,
    ) -> MediaResult<Option<Packet>> {
        while let Some(packet) = self.next_video_packet(cancel)? {
            let pts = packet.pts().or(packet.dts());
            if !self.reached_keyframe {
                if packet.is_key() && pts.is_some_and(|p| p > keyframe) {
                    return Err(MediaError::new(
                        MediaError::INTERNAL,
                        "reading went past the keyframe to start from",
                    ));
                }
                if !(packet.is_key() && pts == Some(keyframe)) {
                    continue;
                }
                self.reached_keyframe = true;
            }
            if pts.is_some_and(|p| p < keyframe) {
                continue;
            }
            return Ok(Some(packet));
        }
        Ok(None)
    }

    /// A decoder for the video stream, decoding with `threads` frame
    /// threads; with `keyframes_only` it discards every other frame.
    pub fn decoder(
        &self,
        limits: &MediaLimits,
        threads: usize,
        keyframes_only: bool,
    ) -> MediaResult<Decoder> {
        let stream = self.ictx.stream(self.index).expect("video stream exists");
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| MediaError::ffmpeg(MediaError::INTERNAL, "setting up the decoder", e))?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: threads.max(1),
            ..Default::default()
        });
        let mut decoder = ctx.decoder();
        decoder.set_packet_time_base(self.time_base);
        if keyframes_only {
            decoder.skip_frame(ff::Discard::NonKey);
        }
        let video = decoder.video().map_err(|e| {
            MediaError::ffmpeg(MediaError::UNSUPPORTED_CODEC, "opening the decoder", e)
        })?;
        let (width, height, _) = dimensions(&stream.parameters());
        Ok(Decoder {
            video,
            width,
            height,
            corrupt: 0,
            max_corrupt: limits.max_corrupt_frames,
        })
    }

    /// For H.264 in AVCC form (MP4, MOV, Matroska), the size of the length
    /// before each NAL unit in its packets; `None` for anything else.
    pub fn h264_length_size(&self) -> Option<usize> {
        let stream = self.ictx.stream(self.index).expect("video stream exists");
        let params = stream.parameters();
        if params.id() != Id::H264 {
            return None;
        }
        // SAFETY: the stream's codecpar is live; extradata holds
        // extradata_size bytes when not null.
        let extradata = unsafe {
            let p = params.as_ptr();
            match usize::try_from((*p).extradata_size) {
                Ok(n) if n > 0 && !(*p).extradata.is_null() => {
                    std::slice::from_raw_parts((*p).extradata, n)
                }
                _ => return None,
            }
        };
        h264::avcc_length_size(extradata)
    }

    /// Whether [`Source::start_at`] moves through an index (MP4/MOV) rather
    /// than reading from the start.
    pub fn seeks_exactly(&self) -> bool {
        self.ictx.format().name().starts_with("mov")
    }

    /// Gets ready to read from the keyframe shown at `keyframe` (stream
    /// time), after any reading: [`Source::next_video_packet_from`] then
    /// starts there. MP4/MOV move there through their sample index, which
    /// lands exactly on a listed keyframe or before it, without reading what
    /// comes before; other containers (where a seek may land past it) read
    /// from the start, opened anew if anything was read.
    pub fn start_at(&mut self, keyframe: i64, cancel: &Cancel) -> MediaResult<()> {
        if self.seeks_exactly() {
            let index = i32::try_from(self.index).expect("stream index fits");
            // SAFETY: the demuxer is open and nothing else uses it meanwhile.
            let rc = unsafe {
                ff::ffi::av_seek_frame(
                    self.ictx.as_mut_ptr(),
                    index,
                    keyframe,
                    ff::ffi::AVSEEK_FLAG_BACKWARD,
                )
            };
            if rc < 0 {
                return Err(MediaError::ffmpeg(
                    MediaError::CORRUPT_VIDEO,
                    "seeking to a keyframe the index lists",
                    ff::Error::from(rc),
                ));
            }
        } else if self.read_any {
            *self = open(
                &self.path.clone(),
                &self.limits.clone(),
                self.header,
                cancel,
            )?;
        }
        self.reached_keyframe = false;
        self.bad_packets = 0;
        Ok(())
    }
}

/// A video decoder that counts damaged frames against the limit.
pub(crate) struct Decoder {
    video: ff::decoder::Video,
    width: u32,
    height: u32,
    corrupt: u32,
    max_corrupt: u32,
}

impl Decoder {
    /// Feeds one packet; a packet the codec rejects counts as a damaged frame.
    pub fn send(&mut self, packet: &Packet) -> MediaResult<()> {
        match self.video.send_packet(packet) {
            Ok(()) => Ok(()),
            Err(ff::Error::InvalidData) => self.damaged("a packet the decoder rejects"),
            Err(e) => Err(MediaError::ffmpeg(
                MediaError::CORRUPT_VIDEO,
                "decoding the clip",
                e,
            )),
        }
    }

    /// Tells the decoder no more packets follow.
    pub fn send_eof(&mut self) -> MediaResult<()> {
        self.video
            .send_eof()
            .map_err(|e| MediaError::ffmpeg(MediaError::INTERNAL, "flushing the decoder", e))
    }

    /// Drops everything buffered (after [`Decoder::send_eof`] too), so
    /// decoding can start again at another keyframe.
    pub fn flush(&mut self) {
        self.video.flush();
    }

    /// The next decoded frame, if one is ready.
    pub fn receive(&mut self) -> MediaResult<Option<ff::frame::Video>> {
        let mut frame = ff::frame::Video::empty();
        match self.video.receive_frame(&mut frame) {
            Ok(()) => {}
            Err(ff::Error::Eof) => return Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(None),
            Err(ff::Error::InvalidData) => {
                self.damaged("a frame the decoder rejects")?;
                return Ok(None);
            }
            Err(e) => {
                return Err(MediaError::ffmpeg(
                    MediaError::CORRUPT_VIDEO,
                    "decoding the clip",
                    e,
                ))
            }
        }
        if frame.has_decode_errors() || frame.is_corrupt() {
            self.damaged("a frame with decoding errors")?;
        }
        if frame.width() != self.width || frame.height() != self.height {
            return Err(MediaError::new(
                MediaError::CORRUPT_VIDEO,
                format!(
                    "a frame is {}x{} in a {}x{} stream",
                    frame.width(),
                    frame.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        Ok(Some(frame))
    }

    fn damaged(&mut self, what: &str) -> MediaResult<()> {
        self.corrupt += 1;
        if self.corrupt > self.max_corrupt {
            return Err(MediaError::new(
                MediaError::CORRUPT_VIDEO,
                format!("the video has damaged frames ({what})"),
            ));
        }
        Ok(())
    }
}

/// Presentation time of a decoded frame, in stream time base.
pub(crate) fn frame_pts(frame: &ff::frame::Video) -> Option<i64> {
    frame.timestamp().or_else(|| frame.pts())
}

/// `pts` ticks of `tb` in milliseconds, rounded to nearest.
pub(crate) fn ticks_to_ms(ticks: i64, tb: Rational) -> i64 {
    let num = i128::from(ticks) * i128::from(tb.numerator()) * 1000;
    div_round(num, i128::from(tb.denominator()))
}

fn div_round(num: i128, den: i128) -> i64 {
    let q = if (num >= 0) == (den > 0) {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_to_ms_rounds_to_nearest() {
        let tb = Rational::new(1, 15360);
        assert_eq!(ticks_to_ms(512, tb), 33);
        assert_eq!(ticks_to_ms(-512, tb), -33);
        assert_eq!(ticks_to_ms(3, Rational::new(1001, 30000)), 100);
    }
}
