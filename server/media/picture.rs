//! Decoded frames to upright, sized pictures: one libavfilter graph
//! (rotate, scale, convert) shared by the transcoder, the poster and the
//! filmstrip, and RGB frames to JPEG.

use std::path::Path;

use ff::format::Pixel;
use ff::Rational;
use ffmpeg_next as ff;

use super::error::{MediaError, MediaResult};

/// Rotates by the display matrix, scales to `width`×`height` and converts
/// to `format`, keeping timestamps.
pub(crate) struct Pipeline {
    rotation: u16,
    width: u32,
    height: u32,
    format: Pixel,
    time_base: Rational,
    threads: usize,
    graph: Option<ff::filter::Graph>,
}

impl Pipeline {
    /// A pipeline for frames in `time_base` whose display matrix turns them
    /// `rotation` degrees counter-clockwise. The graph is built on the first
    /// frame, whose pixel format some decoders only then decide.
    pub fn new(rotation: u16, width: u32, height: u32, format: Pixel, time_base: Rational) -> Self {
        Pipeline {
            rotation,
            width,
            height,
            format,
            time_base,
            threads: 1,
            graph: None,
        }
    }

    /// Lets the filters use `threads` threads. The default is one:
    /// libavfilter's own default (one per CPU) would take cores that
    /// [`MediaLimits`](super::MediaLimits) gives other operations.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Output size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Feeds a decoded frame.
    pub fn push(&mut self, frame: &ff::frame::Video) -> MediaResult<()> {
        if self.graph.is_none() {
            self.graph = Some(self.build(frame)?);
        }
        let graph = self.graph.as_mut().expect("built");
        graph
            .get("in")
            .expect("source exists")
            .source()
            .add(frame)
            .map_err(|e| MediaError::ffmpeg(MediaError::INTERNAL, "filtering a frame", e))
    }

    /// Tells the graph no more frames follow.
    pub fn flush(&mut self) -> MediaResult<()> {
        match self.graph.as_mut() {
            None => Ok(()),
            Some(graph) => graph
                .get("in")
                .expect("source exists")
                .source()
                .flush()
                .map_err(|e| MediaError::ffmpeg(MediaError::INTERNAL, "flushing the filters", e)),
        }
    }

    /// The next converted frame, if one is ready.
    pub fn pull(&mut self) -> MediaResult<Option<ff::frame::Video>> {
        let Some(graph) = self.graph.as_mut() else {
            return Ok(None);
        };
        let mut out = ff::frame::Video::empty();
        match graph
            .get("out")
            .expect("sink exists")
            .sink()
            .frame(&mut out)
        {
            Ok(()) => Ok(Some(out)),
            Err(ff::Error::Eof) => Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => Ok(None),
            Err(e) => Err(MediaError::ffmpeg(
                MediaError::INTERNAL,
                "filtering a frame",
                e,
            )),
        }
    }

    /// Converts one frame on its own (poster, thumbnails).
    pub fn convert_one(&mut self, frame: &ff::frame::Video) -> MediaResult<ff::frame::Video> {
        self.push(frame)?;
        self.pull()?
            .ok_or_else(|| MediaError::new(MediaError::INTERNAL, "the filter graph kept the frame"))
    }

    fn build(&self, frame: &ff::frame::Video) -> MediaResult<ff::filter::Graph> {
        let fail = |e| MediaError::ffmpeg(MediaError::INTERNAL, "building the filter graph", e);
        let sar = frame.aspect_ratio();
        let (sar_num, sar_den) = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator(), sar.denominator())
        } else {
            (1, 1)
        };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={sar_num}/{sar_den}",
            frame.width(),
            frame.height(),
            ff::ffi::AVPixelFormat::from(frame.format()) as i32,
            self.time_base.numerator(),
            self.time_base.denominator(),
        );
        let mut graph = ff::filter::Graph::new();
        // SAFETY: the graph is live and has no filters yet; `nb_threads` is
        // read when filters are initialised.
        unsafe {
            (*graph.as_mut_ptr()).nb_threads = i32::try_from(self.threads).unwrap_or(1);
        }
        graph
            .add(
                &ff::filter::find("buffer").expect("buffer filter"),
                "in",
                &args,
            )
            .map_err(fail)?;
        graph
            .add(
                &ff::filter::find("buffersink").expect("buffersink filter"),
                "out",
                "",
            )
            .map_err(fail)?;
        let turn = match self.rotation {
            90 => "transpose=cclock,",
            180 => "hflip,vflip,",
            270 => "transpose=clock,",
            _ => "",
        };
        let format = self
            .format
            .descriptor()
            .map(|d| d.name())
            .expect("output format has a name");
        let spec = format!(
            "{turn}scale={}:{}:flags=bicubic,setsar=1,format={format}",
            self.width, self.height
        );
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&spec))
            .map_err(fail)?;
        graph.validate().map_err(fail)?;
        Ok(graph)
    }
}

/// An RGB24 frame as an image.
pub(crate) fn rgb_image(frame: &ff::frame::Video) -> image::RgbImage {
    let (w, h) = (frame.width(), frame.height());
    let stride = frame.stride(0);
    let data = frame.data(0);
    let row = w as usize * 3;
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    image::RgbImage::from_raw(w, h, pixels).expect("buffer matches size")
}

/// JPEG quality of posters and filmstrips: small files, no visible blocks
/// at thumbnail sizes.
pub const JPEG_QUALITY: u8 = 85;

/// Writes `image` as a JPEG at `path`, through a temporary file so a reader
/// never sees half a picture.
pub(crate) fn write_jpeg(image: &image::RgbImage, path: &Path) -> MediaResult<()> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| MediaError::new(MediaError::INTERNAL, format!("encoding JPEG: {e}")))?;
    write_file(&bytes, path)
}

/// The quantisation tables of the JPEG standard (Annex K), in raster order.
const STD_LUMINANCE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const STD_CHROMINANCE: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// A standard table scaled to a libjpeg quality (1–100), as libjpeg and the
/// `image` crate scale it.
fn quality_table(table: &[u16; 64], quality: u8) -> [u16; 64] {
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    table.map(|v| ((u32::from(v) * scale + 50) / 100).clamp(1, 255) as u16)
}

/// Writes a yuvj420p frame as a JPEG at `path` with FFmpeg's MJPEG encoder
/// and libjpeg's tables for [`JPEG_QUALITY`]: the picture the `image` crate
/// would write from the same pixels in RGB, in a sixth of the time (no
/// conversion to RGB and back). For posters, whose JPEG is on the path a
/// task waits on.
pub(crate) fn write_frame_jpeg(frame: &ff::frame::Video, path: &Path) -> MediaResult<()> {
    let fail = |doing| move |e| MediaError::ffmpeg(MediaError::INTERNAL, doing, e);
    let codec = ff::encoder::find(ff::codec::Id::MJPEG)
        .ok_or_else(|| MediaError::new(MediaError::INTERNAL, "FFmpeg has no MJPEG encoder"))?;
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(fail("setting up the JPEG encoder"))?;
    encoder.set_width(frame.width());
    encoder.set_height(frame.height());
    encoder.set_format(Pixel::YUVJ420P);
    encoder.set_color_range(ff::color::Range::JPEG);
    encoder.set_time_base(Rational::new(1, 25));
    encoder.set_flags(ff::codec::Flags::QSCALE);
    // A fixed quantiser of 8, which the encoder divides back out of the
    // tables (`table · q / 8`): the tables below are used as they are.
    let lambda = 8 * ff::ffi::FF_QP2LAMBDA;
    encoder.set_global_quality(lambda);
    // SAFETY: the context owns (and frees) the matrices given to it; each is
    // 64 entries allocated with av_malloc.
    unsafe {
        let ctx = encoder.as_mut_ptr();
        for (slot, table) in [
            (&mut (*ctx).intra_matrix, &STD_LUMINANCE),
            (&mut (*ctx).chroma_intra_matrix, &STD_CHROMINANCE),
        ] {
            let matrix = ff::ffi::av_malloc(64 * std::mem::size_of::<u16>()) as *mut u16;
            if matrix.is_null() {
                return Err(MediaError::new(MediaError::INTERNAL, "out of memory"));
            }
            let scaled = quality_table(table, JPEG_QUALITY);
            std::ptr::copy_nonoverlapping(scaled.as_ptr(), matrix, 64);
            *slot = matrix;
        }
    }
    let mut encoder = encoder.open().map_err(fail("opening the JPEG encoder"))?;
    let mut picture = frame.clone();
    // SAFETY: a plain field of our own frame; with QSCALE the encoder takes
    // each frame's quantiser from it.
    unsafe {
        (*picture.as_mut_ptr()).quality = lambda;
    }
    picture.set_pts(Some(0));
    encoder
        .send_frame(&picture)
        .and_then(|()| encoder.send_eof())
        .map_err(fail("encoding the JPEG"))?;
    let mut packet = ff::Packet::empty();
    encoder
        .receive_packet(&mut packet)
        .map_err(fail("encoding the JPEG"))?;
    write_file(packet.data().unwrap_or_default(), path)
}

/// Writes `bytes` at `path` through a temporary file, so a reader never
/// sees half a picture.
fn write_file(bytes: &[u8], path: &Path) -> MediaResult<()> {
    let partial = super::partial_path(path);
    std::fs::write(&partial, bytes).map_err(|e| MediaError::io("writing the picture", e))?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        MediaError::io("writing the picture", e)
    })
}

/// Display size scaled down to at most `max_width`, keeping the aspect ratio.
pub(crate) fn fit_width(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if width <= max_width {
        return (width, height);
    }
    let h = (u64::from(height) * u64::from(max_width) + u64::from(width) / 2) / u64::from(width);
    (max_width, (h as u32).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_scales_the_standard_tables_as_libjpeg_does() {
        let q85 = quality_table(&STD_LUMINANCE, 85);
        assert_eq!(&q85[..4], &[5, 3, 3, 5]);
        assert_eq!(q85[63], 30);
        assert_eq!(quality_table(&STD_LUMINANCE, 50), STD_LUMINANCE);
        assert_eq!(quality_table(&STD_CHROMINANCE, 1)[0], 255);
    }

    #[test]
    fn fit_width_keeps_aspect_and_never_upscales() {
        assert_eq!(fit_width(320, 240, 640), (320, 240));
        assert_eq!(fit_width(320, 240, 160), (160, 120));
        assert_eq!(fit_width(1920, 1080, 100), (100, 56));
        assert_eq!(fit_width(4000, 10, 100), (100, 1));
    }
}
