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
            graph: None,
        }
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
    let partial = super::partial_path(path);
    std::fs::write(&partial, &bytes).map_err(|e| MediaError::io("writing the picture", e))?;
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
    fn fit_width_keeps_aspect_and_never_upscales() {
        assert_eq!(fit_width(320, 240, 640), (320, 240));
        assert_eq!(fit_width(320, 240, 160), (160, 120));
        assert_eq!(fit_width(1920, 1080, 100), (100, 56));
        assert_eq!(fit_width(4000, 10, 100), (100, 1));
    }
}
