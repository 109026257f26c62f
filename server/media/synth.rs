//! Synthetic shelf footage: what a store camera would film when a shopper
//! takes a product, drawn in Rust and encoded in-process with libx264.
//!
//! The demo has no cameras, so it films its own events: a shelf with two or
//! three rows of products (coloured boxes, each labelled with its short name
//! in an embedded 5×7 bitmap font), a hand with an arm that reaches in,
//! touches one box at the event instant and leaves with it (a pick) or puts
//! it back (a return), a camera name, clip time and frame number in the top
//! left corner, and a little sensor noise so no two frames are the same.
//! Two cameras ([`ShelfCamera`]) see the same shelf from the front and from
//! the side.
//!
//! The output is what cameras send: H.264 yuv420p in MP4 with `moov` first
//! and a keyframe every second, written next to the output and renamed into
//! place when complete. No font files, no ffmpeg binary.

use std::path::Path;

use ff::format::Pixel;
use ff::{Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::cancel::Cancel;
use super::error::{MediaError, MediaResult};
use super::transcode::{X264_CRF, X264_PRESET};
use super::{ffmpeg_path, partial_path};

/// Whether the hand takes the product off the shelf or puts it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShelfAction {
    /// The box is on the shelf at first; the hand leaves with it.
    Pick,
    /// The slot is empty at first; the hand brings the box and leaves it.
    Return,
}

/// Where the camera looks at the shelf from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShelfCamera {
    /// Straight at the shelf; the hand comes up from below.
    Front,
    /// From the right, seeing the boxes' sides; the hand comes in from the right.
    Side,
}

impl ShelfCamera {
    /// Both cameras, front first.
    pub const ALL: [ShelfCamera; 2] = [ShelfCamera::Front, ShelfCamera::Side];

    /// A short lowercase name (`front`, `side`).
    pub fn name(self) -> &'static str {
        match self {
            ShelfCamera::Front => "front",
            ShelfCamera::Side => "side",
        }
    }
}

/// One synthetic clip: what is on the shelf, what happens, and the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShelfScene {
    /// Labels of the products on the shelf (e.g. skus), 1 to 12. Product
    /// `i` stands in row `i % rows`, where there are 2 rows for up to two
    /// products and 3 for more.
    pub products: Vec<String>,
    /// Index in `products` of the one the hand moves.
    pub taken: usize,
    /// Pick or return.
    pub action: ShelfAction,
    /// The camera.
    pub camera: ShelfCamera,
    /// Length of the clip, 500 to 60 000 ms.
    pub duration_ms: u32,
    /// Frames per second, 1 to 60; a keyframe every `fps` frames.
    pub fps: u32,
    /// Picture width: even, 64 to 1920.
    pub width: u32,
    /// Picture height: even, 64 to 1080.
    pub height: u32,
    /// When the hand touches the product, in ms from the start (at most
    /// `duration_ms`).
    pub event_ms: u32,
    /// Seeds the sensor noise (the scene is otherwise deterministic).
    pub seed: u64,
}

impl ShelfScene {
    /// A 4 s clip at 15 fps, 640×360, with the hand touching the product
    /// at 2 s.
    pub fn new(
        products: Vec<String>,
        taken: usize,
        action: ShelfAction,
        camera: ShelfCamera,
    ) -> ShelfScene {
        ShelfScene {
            products,
            taken,
            action,
            camera,
            duration_ms: 4_000,
            fps: 15,
            width: 640,
            height: 360,
            event_ms: 2_000,
            seed: 0,
        }
    }

    /// Frames in the clip: enough to cover `duration_ms`.
    pub fn frame_count(&self) -> u32 {
        let n = u64::from(self.duration_ms) * u64::from(self.fps);
        n.div_ceil(1000).max(1) as u32
    }

    /// Presentation time of frame `index`, in ms.
    pub fn frame_ms(&self, index: u32) -> i64 {
        i64::from(index) * 1000 / i64::from(self.fps.max(1))
    }

    /// Where the moved product's box stands on the shelf (the front face,
    /// in pixels): the box is there at the start of a pick and at the end
    /// of a return.
    pub fn taken_box(&self) -> MediaResult<Rect> {
        self.validate()?;
        let layout = Layout::new(self);
        Ok(layout.slots[layout.taken_slot].rect)
    }

    /// Refuses scenes no clip can show.
    pub fn validate(&self) -> MediaResult<()> {
        let bad = |why: String| Err(MediaError::new(MediaError::INVALID_OPTIONS, why));
        if self.products.is_empty() || self.products.len() > MAX_PRODUCTS {
            return bad(format!(
                "a shelf shows 1 to {MAX_PRODUCTS} products, not {}",
                self.products.len()
            ));
        }
        if self.taken >= self.products.len() {
            return bad(format!(
                "product {} is taken but the shelf has {}",
                self.taken,
                self.products.len()
            ));
        }
        if !(1..=60).contains(&self.fps) {
            return bad(format!("{} fps is outside 1 to 60", self.fps));
        }
        if !(500..=60_000).contains(&self.duration_ms) {
            return bad(format!(
                "{} ms is outside 500 to 60 000 ms",
                self.duration_ms
            ));
        }
        if self.event_ms > self.duration_ms {
            return bad(format!(
                "the event at {} ms falls after the clip's end ({} ms)",
                self.event_ms, self.duration_ms
            ));
        }
        let even_within = |v: u32, max: u32| v % 2 == 0 && (64..=max).contains(&v);
        if !even_within(self.width, 1920) || !even_within(self.height, 1080) {
            return bad(format!(
                "{}x{} is not an even size within 64x64 to 1920x1080",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

/// Most products one shelf shows.
pub const MAX_PRODUCTS: usize = 12;

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
}

impl Rect {
    fn center(&self) -> Point {
        (
            self.x as f32 + self.w as f32 / 2.0,
            self.y as f32 + self.h as f32 / 2.0,
        )
    }
}

/// Renders `scene` and writes it to `output` as an H.264 yuv420p MP4 with
/// faststart and a keyframe every second.
///
/// The file is written to `<output>.partial` and renamed when complete;
/// on failure (including `cancel`, checked between frames) nothing is left.
pub fn render_shelf_clip(scene: &ShelfScene, output: &Path, cancel: &Cancel) -> MediaResult<()> {
    scene.validate()?;
    cancel.check()?;
    let partial = partial_path(output);
    let written = encode(scene, &partial, cancel).and_then(|()| {
        std::fs::rename(&partial, output)
            .map_err(|e| MediaError::io("moving the output into place", e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Frame `index` of `scene` as an RGB picture, before encoding and noise.
pub fn render_shelf_frame(scene: &ShelfScene, index: u32) -> MediaResult<image::RgbImage> {
    scene.validate()?;
    let mut renderer = Renderer::new(scene);
    renderer.draw(index);
    let canvas = renderer.canvas;
    Ok(
        image::RgbImage::from_raw(scene.width, scene.height, canvas.px)
            .expect("canvas matches size"),
    )
}

// ------------------------------------------------------------ encoding

fn encode(scene: &ShelfScene, partial: &Path, cancel: &Cancel) -> MediaResult<()> {
    super::input::init();
    let fail = |doing| move |e| MediaError::ffmpeg(MediaError::ENCODE_FAILED, doing, e);
    let codec = ff::encoder::find_by_name("libx264").ok_or_else(|| {
        MediaError::new(
            MediaError::ENCODE_FAILED,
            "FFmpeg was built without libx264",
        )
    })?;
    let mut octx = ff::format::output_as(&ffmpeg_path(partial)?, "mp4")
        .map_err(|e| MediaError::ffmpeg(MediaError::IO_ERROR, "creating the output", e))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ff::format::Flags::GLOBAL_HEADER);
    let fps = scene.fps as i32;
    let time_base = Rational::new(1, fps);
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(fail("setting up the encoder"))?;
    encoder.set_width(scene.width);
    encoder.set_height(scene.height);
    encoder.set_format(Pixel::YUV420P);
    encoder.set_aspect_ratio(Rational::new(1, 1));
    encoder.set_time_base(time_base);
    encoder.set_frame_rate(Some(Rational::new(fps, 1)));
    encoder.set_gop(scene.fps);
    encoder.set_color_range(ff::color::Range::MPEG);
    encoder.set_colorspace(ff::color::Space::SMPTE170M);
    if global_header {
        // Setting flags replaces libx264's default `+cgop`; keep the GOP
        // closed, so every keyframe is an IDR picture a browser can start
        // decoding at when it seeks into the clip.
        encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER | ff::codec::Flags::CLOSED_GOP);
    }
    let mut options = Dictionary::new();
    options.set("preset", X264_PRESET);
    options.set("crf", X264_CRF);
    // One core per media operation, as the runner's limits assume.
    options.set("threads", "1");
    // Exactly one keyframe a second: no scene-cut keyframes when the hand
    // comes in.
    options.set(
        "x264-params",
        &format!("keyint={fps}:min-keyint={fps}:scenecut=0"),
    );
    let mut encoder = encoder
        .open_with(options)
        .map_err(fail("opening libx264"))?;
    {
        let mut ost = octx.add_stream(codec).map_err(fail("adding a stream"))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(time_base);
    }
    let mut header = Dictionary::new();
    header.set("movflags", "+faststart");
    octx.write_header_with(header)
        .map_err(fail("writing the MP4 header"))?;
    let ost_time_base = octx.stream(0).expect("output stream").time_base();

    let write_packets = |encoder: &mut ff::encoder::Video,
                         octx: &mut ff::format::context::Output|
     -> MediaResult<()> {
        let mut packet = Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            // libx264 leaves durations unset; without them the MP4 ends at
            // the last frame's start.
            packet.set_duration(1);
            packet.set_stream(0);
            packet.rescale_ts(time_base, ost_time_base);
            packet
                .write_interleaved(octx)
                .map_err(fail("writing a packet"))?;
        }
        Ok(())
    };

    let mut renderer = Renderer::new(scene);
    let mut noise = Noise::new(scene);
    let (w, h) = (scene.width, scene.height);
    // RGB to yuv420p (BT.601, limited range) in swscale.
    let flags = ff::software::scaling::Flags::BILINEAR;
    let mut convert =
        ff::software::scaling::Context::get(Pixel::RGB24, w, h, Pixel::YUV420P, w, h, flags)
            .map_err(fail("setting up the colour conversion"))?;
    let mut rgb = ff::frame::Video::new(Pixel::RGB24, w, h);
    for index in 0..scene.frame_count() {
        cancel.check()?;
        renderer.draw(index);
        renderer.canvas.copy_to(&mut rgb);
        // A new frame each time: the encoder may still hold the last one.
        let mut frame = ff::frame::Video::new(Pixel::YUV420P, w, h);
        convert
            .run(&rgb, &mut frame)
            .map_err(fail("converting a frame to yuv420p"))?;
        noise.apply(&mut frame);
        frame.set_pts(Some(i64::from(index)));
        encoder
            .send_frame(&frame)
            .map_err(fail("encoding a frame"))?;
        write_packets(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().map_err(fail("flushing libx264"))?;
    write_packets(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(fail("finishing the MP4"))?;
    Ok(())
}

/// Sensor noise: grain (every luma sample moves by up to 3 levels, by a
/// table of random bits read from a new place in every frame) and the
/// slow flicker of a camera's exposure (the whole picture drifts by up to
/// 3 levels). libx264 drops most grain outside keyframes; the flicker
/// survives, so no two frames decode the same.
///
/// Eight samples at a time on `u64`s, so it costs little even in debug
/// builds. No byte overflows: the scene's colours keep luma within
/// 30..230.
struct Noise {
    table: Vec<u64>,
    rng: XorShift,
    flicker: i64,
}

/// Words of noise in the table beyond one frame's row: the room a frame's
/// random starting point moves in.
const NOISE_SLACK: usize = 4096;

/// `1` in every byte of a word.
const BYTES: u64 = 0x0101_0101_0101_0101;

impl Noise {
    fn new(scene: &ShelfScene) -> Noise {
        let mut rng = XorShift::new(scene.seed);
        let len = (scene.width as usize).div_ceil(8) * scene.height as usize + NOISE_SLACK;
        // The low two bits of each byte.
        let table = (0..len).map(|_| rng.next() & (3 * BYTES)).collect();
        Noise {
            table,
            rng,
            flicker: 0,
        }
    }

    fn apply(&mut self, frame: &mut ff::frame::Video) {
        let offset = (self.rng.next() % NOISE_SLACK as u64) as usize;
        // A step up or down every frame, turning back at the limits.
        let step = if self.rng.next() & 1 == 0 { 1 } else { -1 };
        self.flicker = match self.flicker + step {
            f if f.abs() > 3 => self.flicker - step,
            f => f,
        };
        let shift = self.flicker.unsigned_abs() * BYTES;
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let words = width / 8;
        let stride = frame.stride(0);
        let plane = frame.data_mut(0);
        for row in 0..height {
            let noise = &self.table[offset + row * words..offset + (row + 1) * words];
            let line = &mut plane[row * stride..row * stride + words * 8];
            for (chunk, n) in line.chunks_exact_mut(8).zip(noise) {
                let v = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ n;
                let v = if self.flicker >= 0 {
                    v + shift
                } else {
                    v - shift
                };
                chunk.copy_from_slice(&v.to_ne_bytes());
            }
        }
    }
}

/// A small, fast, seedable generator: the noise need not be good, only cheap.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

// ------------------------------------------------------------ the scene

type Rgb = [u8; 3];

/// A point in pixels (x right, y down).
type Point = (f32, f32);

const SKIN: Rgb = [228, 180, 142];
const SKIN_EDGE: Rgb = [170, 118, 88];
const SLEEVE: Rgb = [58, 66, 84];
const SLEEVE_EDGE: Rgb = [34, 38, 50];
const LABEL: Rgb = [246, 246, 240];
const INK: Rgb = [24, 24, 28];

/// Product colours: saturated and far from skin, so the hand stands out.
const PALETTE: &[Rgb] = &[
    [200, 40, 48],
    [38, 92, 196],
    [40, 150, 72],
    [128, 60, 168],
    [22, 148, 150],
    [226, 196, 36],
    [196, 52, 140],
    [30, 44, 112],
    [110, 170, 40],
    [80, 80, 88],
];

/// How a camera sees the shelf.
struct View {
    wall: Rgb,
    floor: Rgb,
    /// Shelf unit, as fractions of the picture: left, top, right, bottom.
    shelf: (f32, f32, f32, f32),
    /// Depth of the boxes' visible side faces, as a fraction of their width.
    depth: f32,
    /// Direction the arm comes from (towards the picture's edge).
    arm: Point,
}

fn view(camera: ShelfCamera) -> View {
    match camera {
        ShelfCamera::Front => View {
            wall: [212, 206, 194],
            floor: [150, 142, 132],
            shelf: (0.13, 0.11, 0.87, 0.93),
            depth: 0.0,
            arm: (0.42, 0.91),
        },
        ShelfCamera::Side => View {
            wall: [186, 196, 206],
            floor: [128, 124, 120],
            shelf: (0.03, 0.16, 0.76, 0.96),
            depth: 0.22,
            arm: (0.96, 0.28),
        },
    }
}

/// One box on the shelf.
#[derive(Debug, Clone)]
struct Slot {
    product: usize,
    rect: Rect,
}

/// Where everything is in one camera's picture.
struct Layout {
    view: View,
    /// Shelf unit outline and its inner back panel.
    unit: Rect,
    back: Rect,
    /// Plank under each row.
    planks: Vec<Rect>,
    slots: Vec<Slot>,
    taken_slot: usize,
    /// Depth of side faces in pixels, and how much they rise.
    depth: i32,
    rise: i32,
    /// Scale of the picture relative to 360 lines.
    unit_scale: f32,
}

impl Layout {
    fn new(scene: &ShelfScene) -> Layout {
        let view = view(scene.camera);
        let (w, h) = (scene.width as f32, scene.height as f32);
        let u = h / 360.0;
        let (l, t, r, b) = view.shelf;
        let unit = rect_f(l * w, t * h, (r - l) * w, (b - t) * h);
        let post = (0.018 * w).round().max(2.0) as i32;
        let top_board = (0.03 * h).round().max(2.0) as i32;
        let back = Rect {
            x: unit.x + post,
            y: unit.y + top_board,
            w: unit.w - 2 * post,
            h: unit.h - top_board,
        };
        let n = scene.products.len();
        let rows = n.clamp(2, 3);
        let cols = n.div_ceil(rows);
        let facings = match cols {
            1 => 3,
            2 => 2,
            _ => 1,
        };
        let row_h = back.h as f32 / rows as f32;
        let plank_h = (0.028 * h).round().max(2.0);
        let mut planks = Vec::new();
        for row in 0..rows {
            let bottom = back.y as f32 + row_h * (row + 1) as f32;
            planks.push(rect_f(
                unit.x as f32,
                bottom - plank_h,
                unit.w as f32,
                plank_h,
            ));
        }
        let cell_w = back.w as f32 / cols as f32;
        let slot_w = cell_w / facings as f32;
        let mut slots = Vec::new();
        let mut taken_slot = 0;
        for (i, label) in scene.products.iter().enumerate() {
            let (row, col) = (i % rows, i / rows);
            let hash = fnv(label);
            let wf = 0.80 + (hash % 13) as f32 / 100.0;
            let hf = 0.64 + ((hash >> 8) % 15) as f32 / 100.0;
            let bw = slot_w * wf * (1.0 - view.depth * 0.45);
            let bh = (row_h - plank_h) * hf;
            let floor = back.y as f32 + row_h * (row + 1) as f32 - plank_h;
            for f in 0..facings {
                let x0 = back.x as f32 + col as f32 * cell_w + f as f32 * slot_w;
                let rect = rect_f(x0 + (slot_w - bw) * 0.35, floor - bh, bw, bh);
                if i == scene.taken && f == facings - 1 {
                    taken_slot = slots.len();
                }
                slots.push(Slot { product: i, rect });
            }
        }
        let depth = (view.depth * slot_w).round() as i32;
        Layout {
            rise: (depth as f32 * 0.45).round() as i32,
            depth,
            view,
            unit,
            back,
            planks,
            slots,
            taken_slot,
            unit_scale: u,
        }
    }
}

fn rect_f(x: f32, y: f32, w: f32, h: f32) -> Rect {
    let (x0, y0) = (x.round() as i32, y.round() as i32);
    Rect {
        x: x0,
        y: y0,
        w: ((x + w).round() as i32 - x0).max(1),
        h: ((y + h).round() as i32 - y0).max(1),
    }
}

/// FNV-1a: a stable hash of a label, for its colour and shape.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Each product's colour: from its label, never the same as an earlier one's.
fn colours(products: &[String]) -> Vec<Rgb> {
    let mut used: Vec<usize> = Vec::new();
    products
        .iter()
        .map(|p| {
            let mut i = (fnv(p) % PALETTE.len() as u64) as usize;
            while used.contains(&i) && used.len() < PALETTE.len() {
                i = (i + 1) % PALETTE.len();
            }
            used.push(i);
            PALETTE[i]
        })
        .collect()
}

fn shade(c: Rgb, f: f32) -> Rgb {
    c.map(|v| (f32::from(v) * f).round().clamp(0.0, 255.0) as u8)
}

/// Where the hand is and what it holds at one instant.
struct Pose {
    /// Palm centre.
    hand: Point,
    /// The shoulder, far outside the picture.
    shoulder: Point,
    /// Whether fingers are closed on a box.
    gripping: bool,
}

/// Draws frames of one scene: the static shelf once, then per frame the
/// moving box, the hand and the overlay.
struct Renderer<'a> {
    scene: &'a ShelfScene,
    layout: Layout,
    colours: Vec<Rgb>,
    background: Vec<u8>,
    canvas: Canvas,
    /// Where the hand grips the moved box, and the arm's direction.
    grip: Point,
    arm: Point,
    /// How far the hand starts from the grip (outside the picture).
    reach: f32,
    palm: f32,
}

impl<'a> Renderer<'a> {
    fn new(scene: &'a ShelfScene) -> Renderer<'a> {
        let layout = Layout::new(scene);
        let colours = colours(&scene.products);
        let mut canvas = Canvas::new(scene.width as i32, scene.height as i32);
        draw_shelf(&mut canvas, scene, &layout, &colours);
        let background = canvas.px.clone();

        let taken = layout.slots[layout.taken_slot].rect;
        let (ax, ay) = layout.view.arm;
        let norm = (ax * ax + ay * ay).sqrt();
        let arm = (ax / norm, ay / norm);
        let (cx, cy) = taken.center();
        let off = 0.22 * taken.w.min(taken.h) as f32;
        let grip = (cx + arm.0 * off, cy + arm.1 * off);
        let palm = 21.0 * layout.unit_scale;
        // From the grip to the picture's edge along the arm, then far
        // enough past it that hand and box are out of sight.
        let (w, h) = (scene.width as f32, scene.height as f32);
        let to_edge = |pos: f32, dir: f32, size: f32| {
            if dir > 1e-3 {
                (size - pos) / dir
            } else if dir < -1e-3 {
                -pos / dir
            } else {
                f32::INFINITY
            }
        };
        let edge = to_edge(grip.0, arm.0, w).min(to_edge(grip.1, arm.1, h));
        let reach = edge + 2.5 * palm + taken.w.max(taken.h) as f32;
        Renderer {
            scene,
            layout,
            colours,
            background,
            canvas,
            grip,
            arm,
            reach,
            palm,
        }
    }

    /// The hand's position at `t_ms`, `None` while it is out of the picture.
    fn pose(&self, t_ms: f32) -> Option<Pose> {
        let s = self.scene;
        let te = s.event_ms as f32;
        let approach = (1_100.0f32).min(te * 0.8);
        let hold = 250.0f32.min((s.duration_ms as f32 - te) * 0.2);
        let leave = 1_100.0f32.min((s.duration_ms as f32 - te - hold) * 0.85);
        let start = te - approach;
        let gone = te + hold + leave;
        // 0 at the grip, 1 out of the picture.
        let out = if t_ms < start || t_ms > gone {
            return None;
        } else if t_ms < te {
            1.0 - smooth((t_ms - start) / approach.max(1.0))
        } else if t_ms <= te + hold {
            0.0
        } else {
            smooth((t_ms - te - hold) / leave.max(1.0))
        };
        // A little sideways wobble, as arms do.
        let wobble = (t_ms / 180.0).sin() * 3.0 * self.layout.unit_scale * out;
        let (ax, ay) = self.arm;
        let d = out * self.reach;
        let hand = (
            self.grip.0 + ax * d - ay * wobble,
            self.grip.1 + ay * d + ax * wobble,
        );
        let arm_len = self.reach + 6.0 * self.palm;
        Some(Pose {
            hand,
            shoulder: (hand.0 + ax * arm_len, hand.1 + ay * arm_len),
            // Fingers close on the box while the hand holds it.
            gripping: match s.action {
                ShelfAction::Pick => t_ms >= te - 150.0,
                ShelfAction::Return => t_ms < te + 150.0,
            },
        })
    }

    fn draw(&mut self, index: u32) {
        self.canvas.px.copy_from_slice(&self.background);
        let t = self.scene.frame_ms(index) as f32;
        let te = self.scene.event_ms as f32;
        let slot = self.layout.slots[self.layout.taken_slot].clone();
        let on_shelf = match self.scene.action {
            ShelfAction::Pick => t < te,
            ShelfAction::Return => t >= te,
        };
        let pose = self.pose(t);
        if on_shelf {
            let c = self.colours[slot.product];
            let label = &self.scene.products[slot.product];
            draw_box(&mut self.canvas, &self.layout, slot.rect, c, label);
            // Boxes to its right hide its side, as on the static shelf.
            self.redraw_right_neighbour(self.layout.taken_slot);
        }
        if let Some(pose) = &pose {
            self.draw_arm(pose);
            if !on_shelf {
                let dx = (pose.hand.0 - self.grip.0).round() as i32;
                let dy = (pose.hand.1 - self.grip.1).round() as i32;
                let held = Rect {
                    x: slot.rect.x + dx,
                    y: slot.rect.y + dy,
                    ..slot.rect
                };
                let c = self.colours[slot.product];
                let label = &self.scene.products[slot.product];
                draw_box(&mut self.canvas, &self.layout, held, c, label);
            }
            self.draw_hand(pose);
        }
        self.draw_overlay(index);
    }

    /// Redraws the boxes standing right of `slot` in its row that cover
    /// part of its side face (side camera only).
    fn redraw_right_neighbour(&mut self, slot: usize) {
        let d = self.layout.depth;
        if d == 0 {
            return;
        }
        let r = self.layout.slots[slot].rect;
        for other in self.layout.slots.clone() {
            let q = other.rect;
            if q.y + q.h == r.y + r.h && q.x > r.x && q.x < r.x + r.w + d {
                let c = self.colours[other.product];
                let label = &self.scene.products[other.product];
                draw_box(&mut self.canvas, &self.layout, q, c, label);
            }
        }
    }

    fn draw_arm(&mut self, pose: &Pose) {
        let p = self.palm;
        let (ax, ay) = self.arm;
        let wrist = (pose.hand.0 + ax * 1.7 * p, pose.hand.1 + ay * 1.7 * p);
        let cuff = (pose.hand.0 + ax * 2.6 * p, pose.hand.1 + ay * 2.6 * p);
        let c = &mut self.canvas;
        c.capsule(cuff, pose.shoulder, 0.78 * p + 1.5, SLEEVE_EDGE);
        c.capsule(cuff, pose.shoulder, 0.78 * p, SLEEVE);
        c.capsule(pose.hand, wrist, 0.52 * p + 1.5, SKIN_EDGE);
        c.capsule(pose.hand, wrist, 0.52 * p, SKIN);
        c.capsule(cuff, cuff, 0.82 * p, SLEEVE_EDGE);
    }

    fn draw_hand(&mut self, pose: &Pose) {
        let p = self.palm;
        // Fingers point away from the arm, into the shelf.
        let (vx, vy) = (-self.arm.0, -self.arm.1);
        let (nx, ny) = (-vy, vx);
        let length = if pose.gripping { 1.15 } else { 1.6 };
        let (hx, hy) = pose.hand;
        let mut shapes: Vec<(Point, Point, f32)> = Vec::new();
        for k in [-0.62f32, -0.21, 0.21, 0.62] {
            let base = (
                hx + vx * 0.4 * p + nx * k * p,
                hy + vy * 0.4 * p + ny * k * p,
            );
            let len = length * p * (1.0 - 0.18 * k.abs());
            let tip = (base.0 + vx * len, base.1 + vy * len);
            shapes.push((base, tip, 0.21 * p));
        }
        let thumb_base = (hx + nx * 0.75 * p, hy + ny * 0.75 * p);
        let thumb_tip = (
            thumb_base.0 + nx * 0.55 * p + vx * 0.55 * p,
            thumb_base.1 + ny * 0.55 * p + vy * 0.55 * p,
        );
        let c = &mut self.canvas;
        // Outline, then each finger over the last so the gaps show, then
        // the palm over the fingers' roots, then the thumb.
        c.ellipse(hx, hy, p + 1.5, 0.92 * p + 1.5, SKIN_EDGE);
        for (a, b, r) in &shapes {
            c.capsule(*a, *b, r + 1.2, SKIN_EDGE);
            c.capsule(*a, *b, *r, SKIN);
        }
        c.ellipse(hx, hy, p, 0.92 * p, SKIN);
        c.capsule(thumb_base, thumb_tip, 0.24 * p + 1.2, SKIN_EDGE);
        c.capsule(thumb_base, thumb_tip, 0.24 * p, SKIN);
        // Knuckles.
        let knuckle = shade(SKIN, 0.88);
        for k in [-0.42f32, 0.0, 0.42] {
            let a = (
                hx + vx * 0.45 * p + nx * k * p,
                hy + vy * 0.45 * p + ny * k * p,
            );
            c.capsule(a, a, 0.06 * p + 0.6, knuckle);
        }
    }

    fn draw_overlay(&mut self, index: u32) {
        let ms = self.scene.frame_ms(index);
        let text = format!(
            "CAM {} {:02}:{:02}.{:03} #{:03}",
            self.scene.camera.name(),
            ms / 60_000,
            ms / 1000 % 60,
            ms % 1000,
            index
        );
        let scale = (2.0 * self.layout.unit_scale).round().max(1.0) as i32;
        let pad = 3 * scale;
        let (tw, th) = text_size(&text, scale);
        let dot = 7 * scale;
        let c = &mut self.canvas;
        c.fill(
            Rect {
                x: 4 * scale,
                y: 4 * scale,
                w: tw + 3 * pad + dot,
                h: th + 2 * pad,
            },
            [16, 16, 20],
        );
        // The recording light blinks once a second.
        let red = if ms % 1000 < 500 {
            [220, 30, 30]
        } else {
            [90, 20, 20]
        };
        let r = dot as f32 / 2.0;
        c.ellipse(
            (4 * scale + pad) as f32 + r,
            (4 * scale + pad) as f32 + th as f32 / 2.0,
            r,
            r,
            red,
        );
        c.text(
            4 * scale + 2 * pad + dot,
            4 * scale + pad,
            scale,
            &text,
            [236, 236, 236],
        );
    }
}

/// Ease in and out over 0..1.
fn smooth(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Wall, floor, shelf unit, planks and every box but the moved one.
fn draw_shelf(c: &mut Canvas, scene: &ShelfScene, layout: &Layout, colours: &[Rgb]) {
    let v = &layout.view;
    let h = c.h;
    // Wall, a little darker towards the floor.
    let floor_y = layout.unit.y + layout.unit.h;
    for y in 0..floor_y.min(h) {
        let f = 1.0 - 0.12 * y as f32 / floor_y.max(1) as f32;
        c.fill(
            Rect {
                x: 0,
                y,
                w: c.w,
                h: 1,
            },
            shade(v.wall, f),
        );
    }
    c.fill(
        Rect {
            x: 0,
            y: floor_y,
            w: c.w,
            h: h - floor_y,
        },
        v.floor,
    );
    let (d, rise) = (layout.depth, layout.rise);
    let u = layout.unit;
    c.fill(u, [74, 76, 84]);
    c.fill(layout.back, [96, 100, 110]);
    for plank in &layout.planks {
        if d > 0 {
            let top = [
                (plank.x, plank.y),
                (plank.x + d, plank.y - rise),
                (plank.x + plank.w + d, plank.y - rise),
                (plank.x + plank.w, plank.y),
            ];
            c.polygon(&top, [176, 178, 186]);
        }
        c.fill(*plank, [204, 206, 212]);
        c.fill(
            Rect {
                y: plank.y + plank.h - (plank.h / 4).max(1),
                h: (plank.h / 4).max(1),
                ..*plank
            },
            [150, 152, 160],
        );
    }
    if d > 0 {
        // The unit's top and right side, seen from the side camera; the
        // side hides the planks' ends.
        let top = [
            (u.x, u.y),
            (u.x + d, u.y - rise),
            (u.x + u.w + d, u.y - rise),
            (u.x + u.w, u.y),
        ];
        c.polygon(&top, [112, 114, 124]);
        let side = [
            (u.x + u.w, u.y),
            (u.x + u.w + d, u.y - rise),
            (u.x + u.w + d, u.y + u.h - rise),
            (u.x + u.w, u.y + u.h),
        ];
        c.polygon(&side, [60, 62, 70]);
    }
    for (i, slot) in layout.slots.iter().enumerate() {
        if i == layout.taken_slot {
            continue;
        }
        draw_box(
            c,
            layout,
            slot.rect,
            colours[slot.product],
            &scene.products[slot.product],
        );
    }
}

/// A product box: front face, top (and side from the side camera), a
/// darker lid band and a white label with the product's short name.
fn draw_box(c: &mut Canvas, layout: &Layout, r: Rect, colour: Rgb, label: &str) {
    let (d, rise) = (layout.depth, layout.rise);
    let lid = ((r.h as f32) * 0.1).round().max(2.0) as i32;
    if d > 0 {
        let side = [
            (r.x + r.w, r.y),
            (r.x + r.w + d, r.y - rise),
            (r.x + r.w + d, r.y + r.h - rise),
            (r.x + r.w, r.y + r.h),
        ];
        c.polygon(&side, shade(colour, 0.62));
        let top = [
            (r.x, r.y),
            (r.x + d, r.y - rise),
            (r.x + r.w + d, r.y - rise),
            (r.x + r.w, r.y),
        ];
        c.polygon(&top, shade(colour, 1.18));
    } else {
        let top = (r.h as f32 * 0.07).round().max(1.0) as i32;
        c.fill(
            Rect {
                x: r.x + top,
                y: r.y - top,
                w: r.w - top,
                h: top,
            },
            shade(colour, 1.2),
        );
    }
    c.fill(r, shade(colour, 0.55));
    let inner = Rect {
        x: r.x + 1,
        y: r.y + 1,
        w: r.w - 2,
        h: r.h - 2,
    };
    c.fill(inner, colour);
    c.fill(Rect { h: lid, ..inner }, shade(colour, 0.78));

    let scale_max = (2.0 * layout.unit_scale).round().max(1.0) as i32;
    let room_w = r.w - (4.0 * layout.unit_scale).round() as i32;
    let room_h = ((r.h - lid) as f32 * 0.78) as i32;
    let (lines, scale) = fit_label(label, room_w, room_h, scale_max);
    if lines.is_empty() {
        return;
    }
    let line_h = 9 * scale;
    let block_h = lines.len() as i32 * line_h + scale;
    let block_w = lines
        .iter()
        .map(|l| text_size(l, scale).0)
        .max()
        .unwrap_or(0);
    let pad = 2 * scale;
    let top = r.y + lid + ((r.h - lid) - block_h - 2 * pad) / 2;
    let strip = Rect {
        x: r.x + (r.w - block_w) / 2 - pad,
        y: top,
        w: block_w + 2 * pad,
        h: block_h + 2 * pad,
    };
    c.fill(strip, LABEL);
    for (i, line) in lines.iter().enumerate() {
        let lw = text_size(line, scale).0;
        c.text(
            r.x + (r.w - lw) / 2,
            top + pad + scale + i as i32 * line_h,
            scale,
            line,
            INK,
        );
    }
}

/// Breaks a label into lines that fit `room_w`×`room_h` pixels, at the
/// largest scale up to `scale_max` where whole words fit; at scale 1
/// words are cut and lines dropped when they must be.
fn fit_label(label: &str, room_w: i32, room_h: i32, scale_max: i32) -> (Vec<String>, i32) {
    let words: Vec<String> = label
        .split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| w.to_uppercase())
        .collect();
    if words.is_empty() || room_w <= 0 || room_h <= 0 {
        return (Vec::new(), 1);
    }
    for scale in (1..=scale_max.max(1)).rev() {
        let per_line = ((room_w + scale) / (6 * scale)).max(0) as usize;
        let max_lines = (room_h / (9 * scale)).max(0) as usize;
        if per_line == 0 || max_lines == 0 {
            continue;
        }
        let fits = words.iter().all(|w| w.chars().count() <= per_line);
        let lines = wrap(&words, per_line);
        if (fits && lines.len() <= max_lines) || scale == 1 {
            let mut lines: Vec<String> = if fits {
                lines
            } else {
                // Cut words longer than a line.
                let chars: Vec<char> = words.join(" ").chars().collect();
                chars
                    .chunks(per_line)
                    .map(|c| c.iter().collect::<String>().trim().to_string())
                    .collect()
            };
            lines.truncate(max_lines);
            return (lines, scale);
        }
    }
    (Vec::new(), 1)
}

/// Greedy word wrap at `per_line` characters.
fn wrap(words: &[String], per_line: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in words {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= per_line => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.clone()),
        }
    }
    lines
}

// ------------------------------------------------------------ drawing

/// An RGB picture with clipped drawing primitives.
struct Canvas {
    w: i32,
    h: i32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: i32, h: i32) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![0; (w * h * 3) as usize],
        }
    }

    /// Copies the picture into an RGB24 frame of the same size.
    fn copy_to(&self, frame: &mut ff::frame::Video) {
        let row = self.w as usize * 3;
        let stride = frame.stride(0);
        let data = frame.data_mut(0);
        for (y, src) in self.px.chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
    }

    /// Fills pixels `x0..x1` of row `y` (clipped).
    fn span(&mut self, y: i32, x0: i32, x1: i32, c: Rgb) {
        if y < 0 || y >= self.h {
            return;
        }
        let (x0, x1) = (x0.max(0), x1.min(self.w));
        if x0 >= x1 {
            return;
        }
        // One pixel, then copies doubling in length: a few memcpys per span.
        let start = ((y * self.w + x0) * 3) as usize;
        let len = ((x1 - x0) * 3) as usize;
        self.px[start..start + 3].copy_from_slice(&c);
        let mut done = 3;
        while done < len {
            let n = done.min(len - done);
            self.px.copy_within(start..start + n, start + done);
            done += n;
        }
    }

    fn fill(&mut self, r: Rect, c: Rgb) {
        for y in r.y.max(0)..(r.y + r.h).min(self.h) {
            self.span(y, r.x, r.x + r.w, c);
        }
    }

    /// A convex polygon, by pixel centres.
    fn polygon(&mut self, points: &[(i32, i32)], c: Rgb) {
        let y_min = points.iter().map(|p| p.1).min().unwrap_or(0).max(0);
        let y_max = points.iter().map(|p| p.1).max().unwrap_or(0).min(self.h);
        for y in y_min..y_max {
            let yc = y as f32 + 0.5;
            let mut lo = f32::INFINITY;
            let mut hi = f32::NEG_INFINITY;
            for i in 0..points.len() {
                let (ax, ay) = (points[i].0 as f32, points[i].1 as f32);
                let j = (i + 1) % points.len();
                let (bx, by) = (points[j].0 as f32, points[j].1 as f32);
                if (ay <= yc && yc < by) || (by <= yc && yc < ay) {
                    let x = ax + (yc - ay) * (bx - ax) / (by - ay);
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if lo <= hi {
                self.span(y, (lo + 0.5).floor() as i32, (hi + 0.5).floor() as i32, c);
            }
        }
    }

    fn ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, c: Rgb) {
        if rx <= 0.0 || ry <= 0.0 {
            return;
        }
        let y0 = (cy - ry).floor() as i32;
        let y1 = (cy + ry).ceil() as i32;
        for y in y0..=y1 {
            let dy = (y as f32 + 0.5 - cy) / ry;
            if dy.abs() > 1.0 {
                continue;
            }
            let half = rx * (1.0 - dy * dy).sqrt();
            self.span(
                y,
                (cx - half + 0.5).floor() as i32,
                (cx + half + 0.5).floor() as i32,
                c,
            );
        }
    }

    /// Every pixel within `radius` of the segment `a`–`b`: per row, the
    /// union of the two end discs and the band between them (a convex
    /// shape, so one span).
    fn capsule(&mut self, a: Point, b: Point, radius: f32, c: Rgb) {
        if radius <= 0.0 {
            return;
        }
        let y0 = (a.1.min(b.1) - radius).floor().max(0.0) as i32;
        let y1 = (a.1.max(b.1) + radius).ceil().min(self.h as f32) as i32;
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        let band = if len > 1e-3 {
            let (nx, ny) = (-dy / len * radius, dx / len * radius);
            Some([
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ])
        } else {
            None
        };
        for y in y0..y1 {
            let py = y as f32 + 0.5;
            let mut lo = f32::INFINITY;
            let mut hi = f32::NEG_INFINITY;
            for (cx, cy) in [a, b] {
                let d = py - cy;
                if d.abs() <= radius {
                    let half = (radius * radius - d * d).sqrt();
                    lo = lo.min(cx - half);
                    hi = hi.max(cx + half);
                }
            }
            if let Some(quad) = &band {
                for i in 0..4 {
                    let (ax, ay) = quad[i];
                    let (bx, by) = quad[(i + 1) % 4];
                    if (ay <= py && py < by) || (by <= py && py < ay) {
                        let x = ax + (py - ay) * (bx - ax) / (by - ay);
                        lo = lo.min(x);
                        hi = hi.max(x);
                    }
                }
            }
            if lo <= hi {
                self.span(y, (lo + 0.5).floor() as i32, (hi + 0.5).floor() as i32, c);
            }
        }
    }

    /// Text in the 5×7 font, `scale` pixels per dot, top left at (`x`, `y`).
    fn text(&mut self, x: i32, y: i32, scale: i32, text: &str, c: Rgb) {
        for (i, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            let gx = x + i as i32 * 6 * scale;
            for (ry, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.fill(
                            Rect {
                                x: gx + col * scale,
                                y: y + ry as i32 * scale,
                                w: scale,
                                h: scale,
                            },
                            c,
                        );
                    }
                }
            }
        }
    }
}

/// Width and height of `text` in the 5×7 font at `scale`.
fn text_size(text: &str, scale: i32) -> (i32, i32) {
    let n = text.chars().count() as i32;
    ((6 * n - 1).max(0) * scale, 7 * scale)
}

/// The 5×7 dots of `ch`, one byte per row, bit 4 leftmost. Lowercase is
/// drawn as uppercase; anything else unknown as `?`.
fn glyph(ch: char) -> [u8; 7] {
    let ch = ch.to_ascii_uppercase();
    FONT.iter()
        .find(|(c, _)| *c == ch)
        .or_else(|| FONT.iter().find(|(c, _)| *c == '?'))
        .map(|(_, g)| *g)
        .expect("the font has '?'")
}

const FONT: &[(char, [u8; 7])] = &[
    (' ', [0, 0, 0, 0, 0, 0, 0]),
    ('A', [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('B', [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E]),
    ('C', [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E]),
    ('D', [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C]),
    ('E', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F]),
    ('F', [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10]),
    ('G', [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F]),
    ('H', [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11]),
    ('I', [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('J', [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C]),
    ('K', [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F]),
    ('M', [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('N', [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11]),
    ('O', [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('P', [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10]),
    ('Q', [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D]),
    ('R', [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11]),
    ('S', [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E]),
    ('T', [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04]),
    ('U', [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E]),
    ('V', [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04]),
    ('W', [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A]),
    ('X', [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11]),
    ('Y', [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04]),
    ('Z', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F]),
    ('0', [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E]),
    ('1', [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E]),
    ('2', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]),
    ('3', [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E]),
    ('4', [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02]),
    ('5', [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E]),
    ('6', [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E]),
    ('7', [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08]),
    ('8', [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E]),
    ('9', [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C]),
    ('-', [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00]),
    ('.', [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C]),
    (',', [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08]),
    (':', [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00]),
    ('/', [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00]),
    ('#', [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A]),
    ('_', [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F]),
    ('+', [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00]),
    ('(', [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02]),
    (')', [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08]),
    ('%', [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03]),
    ('?', [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04]),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(camera: ShelfCamera) -> ShelfScene {
        ShelfScene::new(
            vec!["milk-1l".into(), "chocolate-dark".into(), "banana".into()],
            1,
            ShelfAction::Pick,
            camera,
        )
    }

    #[test]
    fn the_font_covers_labels_and_the_overlay() {
        for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:/# ".chars() {
            assert!(FONT.iter().any(|(c, _)| *c == ch), "{ch:?}");
        }
        assert_eq!(glyph('a'), glyph('A'));
        assert_eq!(glyph('×'), glyph('?'));
        for (c, rows) in FONT {
            assert!(rows.iter().all(|r| *r < 32), "{c:?} is wider than 5 dots");
        }
    }

    #[test]
    fn labels_wrap_at_word_boundaries_and_shrink_when_needed() {
        let (lines, scale) = fit_label("chocolate-dark", 120, 60, 2);
        assert_eq!((lines, scale), (vec!["CHOCOLATE".into(), "DARK".into()], 2));
        let (lines, scale) = fit_label("milk-1l", 120, 60, 2);
        assert_eq!((lines, scale), (vec!["MILK 1L".to_string()], 2));
        let (lines, scale) = fit_label("water-sparkling", 70, 40, 2);
        assert_eq!(scale, 1);
        assert_eq!(lines, vec!["WATER".to_string(), "SPARKLING".into()]);
    }

    #[test]
    fn boxes_stay_inside_the_picture_and_do_not_overlap() {
        for camera in ShelfCamera::ALL {
            for n in 1..=MAX_PRODUCTS {
                let s = ShelfScene::new(
                    (0..n).map(|i| format!("product-{i}")).collect(),
                    n - 1,
                    ShelfAction::Pick,
                    camera,
                );
                let layout = Layout::new(&s);
                for (i, a) in layout.slots.iter().enumerate() {
                    let r = a.rect;
                    assert!(r.x >= 0 && r.y >= 0 && r.w > 0 && r.h > 0);
                    assert!(r.x + r.w <= 640 && r.y + r.h <= 360, "{r:?}");
                    for b in &layout.slots[i + 1..] {
                        let q = b.rect;
                        let apart = r.x + r.w <= q.x
                            || q.x + q.w <= r.x
                            || r.y + r.h <= q.y
                            || q.y + q.h <= r.y;
                        assert!(apart, "{r:?} overlaps {q:?}");
                    }
                }
                assert_eq!(layout.slots[layout.taken_slot].product, n - 1);
            }
        }
    }

    #[test]
    fn the_hand_is_out_of_the_picture_at_both_ends() {
        for camera in ShelfCamera::ALL {
            let s = scene(camera);
            let r = Renderer::new(&s);
            assert!(r.pose(0.0).is_none());
            assert!(r.pose(s.duration_ms as f32).is_none());
            let at = r.pose(s.event_ms as f32).expect("hand at the event");
            assert!((at.hand.0 - r.grip.0).abs() < 1.0 && (at.hand.1 - r.grip.1).abs() < 1.0);
        }
    }

    #[test]
    fn scenes_that_cannot_be_drawn_are_refused() {
        let ok = scene(ShelfCamera::Front);
        assert!(ok.validate().is_ok());
        for bad in [
            ShelfScene {
                taken: 3,
                ..ok.clone()
            },
            ShelfScene {
                products: vec![],
                ..ok.clone()
            },
            ShelfScene {
                width: 641,
                ..ok.clone()
            },
            ShelfScene {
                fps: 0,
                ..ok.clone()
            },
            ShelfScene {
                event_ms: 5_000,
                ..ok.clone()
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().code,
                MediaError::INVALID_OPTIONS
            );
        }
    }
}
