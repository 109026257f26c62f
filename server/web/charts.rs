//! Server-rendered SVG charts for the supervisor dashboard.
//!
//! Each function returns one `<svg>` element as a string, ready to be placed
//! in a page (askama: `{{ chart|safe }}`; every text embedded is escaped
//! here with [`escape`]). The pages run under a strict content security
//! policy, so the markup has no scripts and no `style` attributes: looks
//! come from SVG presentation attributes (`fill`, `stroke`, `font-size`)
//! that the page's CSS overrides through class names:
//!
//! | class | what |
//! |---|---|
//! | `chart` | the `<svg>` root; text and axes use `currentColor` |
//! | `chart-title`, `unit`, `legend`, `tick`, `axis-title`, `ece`, `empty` | texts |
//! | `axis`, `grid` | axis lines and grid lines |
//! | `bar`, `bar running` | bars; the hour still running |
//! | `line series-N`, `dot series-N` | line chart series `N` (0-based) |
//! | `target`, `target-label` | a horizontal target line and its label |
//! | `ideal` | the reliability diagram's diagonal |
//! | `count` | the reliability diagram's events per bin |
//! | `line review`, `line error`, `band` | the review/error curve |
//! | `marker current`, `marker recommended` | threshold markers |
//! | `swatch` | legend keys |
//!
//! Every chart has a fixed `viewBox` (no `width`/`height`: it scales to its
//! container), `role="img"`, an `aria-label`, a `<title>` and a `<desc>`
//! summing up the data for screen readers, plus `<title>` tooltips on bars
//! and points. The title is drawn too (`chart-title`: hide it with CSS
//! where the page has its own heading). Empty input draws a "No data"
//! message; NaN and missing values are gaps.

use std::fmt::Write as _;

use crate::domain::dashboard::ReliabilityBin;
use crate::domain::recommend::Candidate;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const FONT_SIZE: f64 = 11.0;

const BLUE: &str = "#3b82f6";
const LIGHT_BLUE: &str = "#93c5fd";
const ORANGE: &str = "#f59e0b";
const GREEN: &str = "#10b981";
const RED: &str = "#ef4444";
const PURPLE: &str = "#8b5cf6";
const PALETTE: [&str; 5] = [BLUE, ORANGE, GREEN, PURPLE, RED];

/// Escapes text for XML content and attribute values (`&`, `<`, `>`, `"`,
/// `'`) and drops the control characters XML 1.0 does not allow.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A round step for about `intervals` intervals over `range`: 1, 2 or 5
/// times a power of ten.
fn nice_step(range: f64, intervals: usize) -> f64 {
    let raw = range / intervals.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    // The tolerance keeps 0.05 / 0.01 = 5.000000000000001 a 5.
    let nice = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Decimals needed to print multiples of `step`.
fn decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    (-(step.log10() + 1e-9).floor()).max(0.0) as usize
}

/// Rounds away the binary noise of `i · step` (0.30000000000000004 → 0.3).
fn round_to(v: f64, decimals: usize) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (v * f).round() / f
}

/// Round tick values covering `[min, max]` with about `intervals` steps of
/// 1, 2 or 5 times a power of ten: the first tick is at or below `min`, the
/// last at or above `max`. `(0, 42, 5)` gives 0, 10, …, 50.
pub fn nice_ticks(min: f64, max: f64, intervals: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) {
        return Vec::new();
    }
    let (min, max) = if max > min {
        (min, max)
    } else {
        (min, min + 1.0)
    };
    let step = nice_step(max - min, intervals);
    let d = decimals(step);
    // The epsilons absorb binary noise (0.6 / 0.1 = 5.999…).
    let first = (min / step + 1e-9).floor() as i64;
    let last = (max / step - 1e-9).ceil() as i64;
    (first..=last)
        .map(|i| round_to(i as f64 * step, d) + 0.0)
        .collect()
}

/// A coordinate with one decimal, without a trailing `.0`.
fn c(v: f64) -> String {
    let s = format!("{:.1}", v);
    let s = s.strip_suffix(".0").map(str::to_owned).unwrap_or(s);
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A tick label: as many decimals as the step needs, thousands as `k`.
fn fmt_tick(v: f64, step: f64) -> String {
    let v = v + 0.0;
    if v.abs() >= 10_000.0 && step >= 1_000.0 {
        return format!("{}k", fmt_tick(v / 1_000.0, step / 1_000.0));
    }
    format!("{:.*}", decimals(step), v)
}

/// A share as a percentage tick label: 0.25 → `25%`.
fn fmt_pct_tick(v: f64, step: f64) -> String {
    format!("{}%", fmt_tick(v * 100.0, step * 100.0))
}

/// A value for a tooltip or summary: integers plain, others with up to two
/// decimals.
fn fmt_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{:.0}", v + 0.0)
    } else if v.abs() < 10.0 {
        let s = format!("{:.2}", v);
        s.trim_end_matches('0').to_owned()
    } else {
        format!("{:.1}", v)
    }
}

/// A share as a percentage for text: 0.0046 → `0.46 %`, 0.065 → `6.5 %`.
fn fmt_pct(v: f64) -> String {
    let p = v * 100.0;
    if p.abs() < 1.0 {
        format!("{:.2} %", p)
    } else {
        format!("{:.1} %", p)
    }
}

/// Rough width of a text in user units.
fn text_width(s: &str, font_size: f64) -> f64 {
    s.chars().count() as f64 * font_size * 0.62
}

/// The plot rectangle.
#[derive(Debug, Clone, Copy)]
struct Area {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Area {
    fn width(&self) -> f64 {
        self.right - self.left
    }
}

/// A linear map from data to user units.
#[derive(Debug, Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d1 = if d1 == d0 { d0 + 1.0 } else { d1 };
        Scale { d0, d1, r0, r1 }
    }

    fn map(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }

    /// Maps and clamps to the range (values off the scale stick to its edge).
    fn map_clamped(&self, v: f64) -> f64 {
        let (lo, hi) = if self.r0 < self.r1 {
            (self.r0, self.r1)
        } else {
            (self.r1, self.r0)
        };
        self.map(v).clamp(lo, hi)
    }
}

/// An SVG document under construction.
struct Svg {
    out: String,
    width: f64,
}

impl Svg {
    fn new(title: &str, desc: &str, width: f64, height: f64) -> Svg {
        let title = escape(title);
        let mut out = String::with_capacity(8 * 1024);
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" class=\"chart\" \
             role=\"img\" aria-label=\"{title}\" font-family=\"system-ui, sans-serif\" \
             font-size=\"{FONT_SIZE}\" fill=\"currentColor\">\
             <title>{title}</title><desc>{desc}</desc>",
            w = c(width),
            h = c(height),
            desc = escape(desc),
        );
        let mut svg = Svg { out, width };
        if !title.is_empty() {
            svg.out.push_str(&format!(
                "<text class=\"chart-title\" x=\"8\" y=\"20\" font-size=\"14\" \
                 font-weight=\"600\">{title}</text>"
            ));
        }
        svg
    }

    /// A text; `attrs` are extra attributes built here, never user text.
    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, attrs: &str, content: &str) {
        let _ = write!(
            self.out,
            "<text class=\"{class}\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\"{attrs}>{}</text>",
            c(x),
            c(y),
            escape(content)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str, attrs: &str) {
        let _ = write!(
            self.out,
            "<line class=\"{class}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"{attrs}/>",
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }

    fn grid(&mut self, area: Area, y: f64) {
        self.line(
            (area.left, y),
            (area.right, y),
            "grid",
            " stroke=\"currentColor\" stroke-opacity=\"0.15\"",
        );
    }

    fn axis(&mut self, from: (f64, f64), to: (f64, f64)) {
        self.line(
            from,
            to,
            "axis",
            " stroke=\"currentColor\" stroke-opacity=\"0.6\"",
        );
    }

    /// Left y axis: grid lines and labels at `ticks`.
    fn y_ticks_left(&mut self, area: Area, y: Scale, ticks: &[f64], label: impl Fn(f64) -> String) {
        for &t in ticks {
            let py = y.map(t);
            self.grid(area, py);
            self.text(
                area.left - 6.0,
                py,
                "end",
                "tick",
                " dy=\"0.35em\"",
                &label(t),
            );
        }
    }

    /// Legend entries laid out from `x` rightwards on the line `y`; each is a
    /// key (markup drawn in a 16×10 box at its origin) and a text.
    fn legend(&mut self, x: f64, y: f64, entries: &[(String, String)]) {
        let mut x = x;
        for (key, label) in entries {
            let _ = write!(
                self.out,
                "<g class=\"swatch\" transform=\"translate({} {})\">{key}</g>",
                c(x),
                c(y - 8.0)
            );
            self.text(x + 20.0, y, "start", "legend", "", label);
            x += 20.0 + text_width(label, FONT_SIZE) + 14.0;
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// Total width of legend entries as [`Svg::legend`] lays them out.
fn legend_width(entries: &[(String, String)]) -> f64 {
    entries
        .iter()
        .map(|(_, l)| 20.0 + text_width(l, FONT_SIZE) + 14.0)
        .sum::<f64>()
        - 14.0
}

fn key_line(colour: &str, dash: Option<&str>) -> String {
    let dash = dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    format!(
        "<line x1=\"0\" y1=\"5\" x2=\"16\" y2=\"5\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>"
    )
}

fn key_box(class: &str, colour: &str, opacity: f64) -> String {
    format!(
        "<rect class=\"{class}\" x=\"2\" y=\"0\" width=\"12\" height=\"10\" fill=\"{colour}\" \
         fill-opacity=\"{opacity}\"/>"
    )
}

/// The chart's frame with a "No data" message.
fn no_data(title: &str, height: f64) -> String {
    let mut svg = Svg::new(title, "No data.", WIDTH, height);
    svg.text(
        WIDTH / 2.0,
        height / 2.0,
        "middle",
        "empty",
        " font-size=\"14\" fill-opacity=\"0.7\"",
        "No data",
    );
    svg.finish()
}

/// Labels under `n` equal slots, every `stride`-th one counted from the
/// last slot so the latest is always labelled, thinned so they never touch.
fn slot_labels(svg: &mut Svg, area: Area, n: usize, labels: &[String]) {
    let slot = area.width() / n as f64;
    let label = |i: usize| labels.get(i).cloned().unwrap_or_else(|| i.to_string());
    let widest = (0..n)
        .map(|i| text_width(&label(i), FONT_SIZE))
        .fold(0.0, f64::max);
    let stride = ((widest + 8.0) / slot).ceil().max(1.0) as usize;
    for i in (0..n).rev().step_by(stride) {
        let x = area.left + (i as f64 + 0.5) * slot;
        let text = label(i);
        // Keep the first and last labels inside the picture.
        let half = text_width(&text, FONT_SIZE) / 2.0;
        let x = x.clamp(half + 2.0, svg.width - half - 2.0);
        svg.text(x, area.bottom + 16.0, "middle", "tick", "", &text);
    }
}

/// Verdicts (or any count) per hour as bars, oldest first, the last bar
/// drawn as the hour still running (class `bar running`).
///
/// `labels[i]` names hour `i` (e.g. `"14:00"`; missing labels fall back to
/// the index) and `unit` is printed above the y axis (e.g. `"verdicts"`).
/// Negative values are drawn as 0; NaN values leave a gap.
pub fn bar_chart_hourly(title: &str, values: &[f64], labels: &[String], unit: &str) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return no_data(title, HEIGHT);
    }
    let max = finite.iter().fold(0.0, |a: f64, &b| a.max(b));
    let ticks = if max > 0.0 {
        nice_ticks(0.0, max, 5)
    } else {
        vec![0.0, 1.0]
    };
    let step = ticks[1] - ticks[0];
    let top_tick = ticks[ticks.len() - 1];
    let n = values.len();
    let desc = format!(
        "{n} hourly values{}, highest {} {unit}; the last hour is still running.",
        labels
            .first()
            .zip(labels.get(n - 1))
            .map(|(a, b)| format!(" from {a} to {b}"))
            .unwrap_or_default(),
        fmt_value(max)
    );
    let area = Area {
        left: 56.0,
        right: WIDTH - 16.0,
        top: 48.0,
        bottom: HEIGHT - 36.0,
    };
    let y = Scale::new(0.0, top_tick, area.bottom, area.top);
    let mut svg = Svg::new(title, &desc, WIDTH, HEIGHT);
    svg.text(8.0, 38.0, "start", "unit", " fill-opacity=\"0.8\"", unit);
    let legend = [(
        key_box("bar running", LIGHT_BLUE, 1.0),
        "still running".to_owned(),
    )];
    svg.legend(WIDTH - 12.0 - legend_width(&legend), 20.0, &legend);
    svg.y_ticks_left(area, y, &ticks, |t| fmt_tick(t, step));

    let slot = area.width() / n as f64;
    let bar_width = slot * 0.78;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let v = v.max(0.0);
        let running = i == n - 1;
        let (class, fill) = if running {
            ("bar running", LIGHT_BLUE)
        } else {
            ("bar", BLUE)
        };
        let top = y.map(v);
        let name = labels.get(i).cloned().unwrap_or_else(|| i.to_string());
        let _ = write!(
            svg.out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\">\
             <title>{}</title></rect>",
            c(area.left + i as f64 * slot + (slot - bar_width) / 2.0),
            c(top),
            c(bar_width),
            c(area.bottom - top),
            escape(&format!(
                "{name}: {} {unit}{}",
                fmt_value(v),
                if running { " (still running)" } else { "" }
            ))
        );
    }
    svg.axis((area.left, area.bottom), (area.right, area.bottom));
    slot_labels(&mut svg, area, n, labels);
    svg.finish()
}

/// One or more series over the same x slots as lines, with gaps where a
/// value is `None` or not finite, and an optional horizontal target line
/// `(value, label)` (e.g. the receipt deadline).
///
/// `x_labels[i]` names slot `i`; `y_unit` is printed above the y axis. The
/// y axis starts at 0 (or below, for negative values) and always shows the
/// target. Every value is also a dot with a tooltip, so a lone value
/// between two gaps stays visible. A series' values are any slice-like
/// (`Vec<Option<f64>>`, `&[Option<f64>]`, an array).
pub fn line_chart<S: AsRef<[Option<f64>]>>(
    title: &str,
    series: &[(&str, S)],
    x_labels: &[String],
    y_unit: &str,
    target: Option<(f64, &str)>,
) -> String {
    let series: Vec<(&str, &[Option<f64>])> =
        series.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let finite = |v: &Option<f64>| v.filter(|x| x.is_finite());
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, vs)| vs.iter().filter_map(finite))
        .collect();
    let n = series.iter().map(|(_, vs)| vs.len()).max().unwrap_or(0);
    if values.is_empty() || n == 0 {
        return no_data(title, HEIGHT);
    }
    let target = target.filter(|(v, _)| v.is_finite());
    let mut lo = values.iter().fold(0.0, |a: f64, &b| a.min(b));
    let mut hi = values.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    if let Some((t, _)) = target {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    let ticks = nice_ticks(lo, hi, 5);
    let step = ticks[1] - ticks[0];
    let area = Area {
        left: 56.0,
        right: WIDTH - 16.0,
        top: 48.0,
        bottom: HEIGHT - 36.0,
    };
    let y = Scale::new(ticks[0], ticks[ticks.len() - 1], area.bottom, area.top);
    let slot = area.width() / n as f64;
    let x = |i: usize| area.left + (i as f64 + 0.5) * slot;

    let desc = series
        .iter()
        .map(|(name, vs)| {
            let present: Vec<f64> = vs.iter().filter_map(finite).collect();
            let max = present.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let last = vs.iter().rev().find_map(finite);
            format!(
                "{name}: {} of {} values, highest {}, latest {}",
                present.len(),
                vs.len(),
                if present.is_empty() {
                    "none".into()
                } else {
                    format!("{} {y_unit}", fmt_value(max))
                },
                last.map(|v| format!("{} {y_unit}", fmt_value(v)))
                    .unwrap_or_else(|| "none".into())
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let desc = match target {
        Some((t, label)) => format!("{desc}. {label}: {} {y_unit}.", fmt_value(t)),
        None => format!("{desc}."),
    };
    let mut svg = Svg::new(title, &desc, WIDTH, HEIGHT);
    svg.text(8.0, 38.0, "start", "unit", " fill-opacity=\"0.8\"", y_unit);
    let named: Vec<(String, String)> = series
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| !name.is_empty())
        .map(|(k, (name, _))| (key_line(PALETTE[k % PALETTE.len()], None), name.to_string()))
        .collect();
    if series.len() > 1 && !named.is_empty() {
        svg.legend(WIDTH - 12.0 - legend_width(&named), 20.0, &named);
    }
    svg.y_ticks_left(area, y, &ticks, |t| fmt_tick(t, step));
    svg.axis((area.left, area.bottom), (area.right, area.bottom));

    if let Some((t, label)) = target {
        let ty = y.map(t);
        svg.line(
            (area.left, ty),
            (area.right, ty),
            "target",
            &format!(" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\""),
        );
        // Above the line, unless it runs along the top of the plot.
        let ly = if ty - 5.0 < area.top + 10.0 {
            ty + 14.0
        } else {
            ty - 5.0
        };
        svg.text(area.right - 4.0, ly, "end", "target-label", "", label);
    }

    for (k, (name, vs)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in vs.iter().enumerate() {
            match finite(v) {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{} {}",
                        if pen_down {
                            " L"
                        } else if d.is_empty() {
                            "M"
                        } else {
                            " M"
                        },
                        c(x(i)),
                        c(y.map(v))
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg.out,
            "<path class=\"line series-{k}\" d=\"{d}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"/>"
        );
        for (i, v) in vs.iter().enumerate() {
            let Some(v) = finite(v) else { continue };
            let label = x_labels.get(i).cloned().unwrap_or_else(|| i.to_string());
            let sep = if name.is_empty() { "" } else { " " };
            let _ = write!(
                svg.out,
                "<circle class=\"dot series-{k}\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{colour}\">\
                 <title>{}</title></circle>",
                c(x(i)),
                c(y.map(v)),
                escape(&format!("{name}{sep}{label}: {} {y_unit}", fmt_value(v)))
            );
        }
    }
    slot_labels(&mut svg, area, n, x_labels);
    svg.finish()
}

/// A reliability diagram: per confidence bin, a bar up to the share the
/// model got right, against the diagonal of a perfectly calibrated model,
/// with the events per bin as a strip of thin bars under the x axis and the
/// expected calibration error printed at the top.
pub fn reliability_diagram(title: &str, bins: &[ReliabilityBin], ece: f64) -> String {
    const H: f64 = 340.0;
    let bins: Vec<&ReliabilityBin> = bins
        .iter()
        .filter(|b| {
            b.from.is_finite() && b.to.is_finite() && b.accuracy.is_finite() && b.to > b.from
        })
        .collect();
    if bins.is_empty() {
        return no_data(title, H);
    }
    let area = Area {
        left: 56.0,
        right: WIDTH - 16.0,
        top: 52.0,
        bottom: 228.0,
    };
    let (strip_top, strip_bottom) = (258.0, 298.0);
    let x = Scale::new(0.0, 1.0, area.left, area.right);
    let y = Scale::new(0.0, 1.0, area.bottom, area.top);
    let total: i64 = bins.iter().map(|b| b.count.max(0)).sum();
    let max_count = bins.iter().map(|b| b.count.max(0)).max().unwrap_or(0);
    let ece_text = if ece.is_finite() {
        format!("ECE {:.3}", ece)
    } else {
        "ECE n/a".to_owned()
    };
    let desc = format!(
        "{} confidence bins over {total} events; {ece_text}. {}",
        bins.len(),
        bins.iter()
            .map(|b| format!(
                "{:.2}–{:.2}: {} right of {}",
                b.from,
                b.to,
                fmt_pct(b.accuracy),
                b.count
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut svg = Svg::new(title, &desc, WIDTH, H);
    svg.text(
        WIDTH - 8.0,
        20.0,
        "end",
        "ece",
        " font-size=\"13\" font-weight=\"600\"",
        &ece_text,
    );
    let legend = [(
        key_line("currentColor", Some("5 4")),
        "perfectly calibrated".to_owned(),
    )];
    svg.legend(WIDTH - 12.0 - legend_width(&legend), 38.0, &legend);
    svg.text(
        8.0,
        38.0,
        "start",
        "unit",
        " fill-opacity=\"0.8\"",
        "share right",
    );

    let y_ticks = nice_ticks(0.0, 1.0, 5);
    svg.y_ticks_left(area, y, &y_ticks, |t| fmt_pct_tick(t, 0.2));
    for b in &bins {
        let (x0, x1) = (x.map(b.from.max(0.0)), x.map(b.to.min(1.0)));
        let inset = if x1 - x0 > 4.0 { 1.0 } else { 0.0 };
        let top = y.map_clamped(b.accuracy);
        let tip = format!(
            "confidence {:.2}–{:.2}: {} right of {} events (mean confidence {:.2})",
            b.from,
            b.to,
            fmt_pct(b.accuracy),
            b.count,
            b.mean_confidence
        );
        let _ = write!(
            svg.out,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{BLUE}\" \
             fill-opacity=\"0.85\"><title>{}</title></rect>",
            c(x0 + inset),
            c(top),
            c((x1 - x0 - 2.0 * inset).max(0.5)),
            c(area.bottom - top),
            escape(&tip)
        );
        if max_count > 0 {
            let h = b.count.max(0) as f64 / max_count as f64 * (strip_bottom - strip_top);
            let _ = write!(
                svg.out,
                "<rect class=\"count\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
                 fill=\"currentColor\" fill-opacity=\"0.35\"><title>{}</title></rect>",
                c(x0 + inset),
                c(strip_bottom - h),
                c((x1 - x0 - 2.0 * inset).max(0.5)),
                c(h),
                escape(&format!("{:.2}–{:.2}: {} events", b.from, b.to, b.count))
            );
        }
    }
    svg.line(
        (x.map(0.0), y.map(0.0)),
        (x.map(1.0), y.map(1.0)),
        "ideal",
        " stroke=\"currentColor\" stroke-opacity=\"0.7\" stroke-width=\"1.5\" \
         stroke-dasharray=\"5 4\"",
    );
    svg.axis((area.left, area.bottom), (area.right, area.bottom));
    for t in nice_ticks(0.0, 1.0, 5) {
        svg.text(
            x.map(t),
            area.bottom + 15.0,
            "middle",
            "tick",
            "",
            &fmt_tick(t, 0.2),
        );
    }
    // The strip: events per bin, scaled to the fullest bin.
    svg.axis((area.left, strip_bottom), (area.right, strip_bottom));
    svg.text(
        area.left - 6.0,
        strip_top,
        "end",
        "tick",
        " dy=\"0.7em\"",
        &fmt_value(max_count as f64),
    );
    svg.text(area.left - 6.0, strip_bottom, "end", "tick", "", "events");
    svg.text(
        (area.left + area.right) / 2.0,
        H - 16.0,
        "middle",
        "axis-title",
        "",
        "model confidence",
    );
    svg.finish()
}

/// One threshold on the review/error curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The threshold, 0 to 1.
    pub threshold: f64,
    /// Share of events reviewed at that threshold, 0 to 1.
    pub review_rate: f64,
    /// Estimated error rate of auto-accepted events, if known.
    pub error: Option<f64>,
    /// Its lower bound.
    pub error_low: Option<f64>,
    /// Its upper bound.
    pub error_high: Option<f64>,
}

impl From<&Candidate> for CurvePoint {
    fn from(c: &Candidate) -> CurvePoint {
        CurvePoint {
            threshold: c.threshold,
            review_rate: c.review_rate,
            error: c.error,
            error_low: c.error_low,
            error_high: c.error_high,
        }
    }
}

/// The trade-off behind a threshold recommendation: x = threshold, the
/// review rate on the left axis (0–100 %), the estimated error with its
/// interval as a band on the right axis, the target error as a dashed line
/// and vertical markers at the current and the recommended threshold.
///
/// The x axis starts where the review rate stops being flat (thresholds
/// below every event change nothing), on a multiple of 0.1, and always
/// shows both markers. The right axis reaches 2–4 times the target; larger
/// errors run along its top edge.
pub fn review_error_curve(
    title: &str,
    points: &[CurvePoint],
    target: f64,
    current: Option<f64>,
    recommended: Option<f64>,
) -> String {
    const H: f64 = 340.0;
    let mut pts: Vec<CurvePoint> = points
        .iter()
        .copied()
        .filter(|p| p.threshold.is_finite() && p.review_rate.is_finite())
        .collect();
    if pts.is_empty() {
        return no_data(title, H);
    }
    pts.sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
    let current = current.filter(|v| v.is_finite());
    let recommended = recommended.filter(|v| v.is_finite());
    let target = Some(target).filter(|t| t.is_finite() && *t > 0.0);

    // x domain: from the end of the flat start, on a multiple of 0.1.
    let flat = pts
        .iter()
        .position(|p| (p.review_rate - pts[0].review_rate).abs() > 1e-12)
        .map_or(pts.len() - 1, |i| i.saturating_sub(1));
    let mut x_lo = pts[flat].threshold;
    let mut x_hi = pts[pts.len() - 1].threshold;
    for m in [current, recommended].into_iter().flatten() {
        x_lo = x_lo.min(m);
        x_hi = x_hi.max(m);
    }
    x_lo = (x_lo * 10.0 + 1e-9).floor() / 10.0;
    if x_hi - x_lo < 1e-9 {
        x_lo -= 0.05;
        x_hi += 0.05;
    }
    let in_range = |p: &&CurvePoint| p.threshold >= x_lo - 1e-9;
    let shown: Vec<CurvePoint> = pts.iter().filter(in_range).copied().collect();

    // Right axis: 5 round steps up to 2–4 times the target.
    let fin = |v: Option<f64>| v.filter(|x| x.is_finite());
    let max_high = shown
        .iter()
        .filter_map(|p| fin(p.error_high).or(fin(p.error)))
        .fold(0.0, f64::max);
    let wanted = match target {
        Some(t) => (2.0 * t).max(max_high.min(4.0 * t)),
        None if max_high > 0.0 => max_high,
        None => 0.01,
    };
    let step2 = nice_step(wanted, 5);
    let y2_max = 5.0 * step2;

    let area = Area {
        left: 60.0,
        right: WIDTH - 60.0,
        top: 108.0,
        bottom: H - 40.0,
    };
    let x = Scale::new(x_lo, x_hi, area.left, area.right);
    let y = Scale::new(0.0, 1.0, area.bottom, area.top);
    let y2 = Scale::new(0.0, y2_max, area.bottom, area.top);
    let at = |t: f64| {
        pts.iter()
            .min_by(|a, b| (a.threshold - t).abs().total_cmp(&(b.threshold - t).abs()))
            .copied()
    };
    let describe = |name: &str, t: f64| {
        let mut s = format!("{name} {t:.2}");
        if let Some(p) = at(t) {
            let _ = write!(s, ": {} reviewed", fmt_pct(p.review_rate));
            match fin(p.error_high) {
                Some(h) => {
                    let _ = write!(s, ", error ≤ {}", fmt_pct(h));
                }
                None => s.push_str(", error unknown"),
            }
        }
        s
    };

    let mut desc = format!("Review rate and estimated error for thresholds {x_lo:.2} to {x_hi:.2}");
    if let Some(t) = target {
        let _ = write!(desc, "; target error {}", fmt_pct(t));
    }
    for (name, m) in [("current", current), ("recommended", recommended)] {
        if let Some(m) = m {
            let _ = write!(desc, "; {}", describe(name, m));
        }
    }
    desc.push('.');
    let mut svg = Svg::new(title, &desc, WIDTH, H);
    let mut legend = vec![
        (key_line(BLUE, None), "review rate (left)".to_owned()),
        (key_line(ORANGE, None), "estimated error (right)".to_owned()),
        (key_box("band", ORANGE, 0.25), "error interval".to_owned()),
    ];
    if target.is_some() {
        legend.push((key_line(RED, Some("6 4")), "target".to_owned()));
    }
    svg.legend(8.0, 40.0, &legend);

    // Grid and axes: both y axes share the five intervals.
    let ticks = nice_ticks(0.0, 1.0, 5);
    for (i, &t) in ticks.iter().enumerate() {
        let py = y.map(t);
        svg.grid(area, py);
        svg.text(
            area.left - 6.0,
            py,
            "end",
            "tick",
            " dy=\"0.35em\"",
            &fmt_pct_tick(t, 0.2),
        );
        let e = round_to(i as f64 * step2, decimals(step2) + 1);
        svg.text(
            area.right + 6.0,
            py,
            "start",
            "tick",
            " dy=\"0.35em\"",
            &fmt_pct_tick(e, step2),
        );
    }
    svg.axis((area.left, area.bottom), (area.right, area.bottom));
    svg.axis((area.left, area.top), (area.left, area.bottom));
    svg.axis((area.right, area.top), (area.right, area.bottom));
    let mid = (area.top + area.bottom) / 2.0;
    let _ = write!(
        svg.out,
        "<text class=\"axis-title\" transform=\"translate(14 {}) rotate(-90)\" \
         text-anchor=\"middle\" fill=\"{BLUE}\">review rate</text>\
         <text class=\"axis-title\" transform=\"translate({} {}) rotate(90)\" \
         text-anchor=\"middle\" fill=\"{ORANGE}\">error of auto-accepted</text>",
        c(mid),
        c(WIDTH - 12.0),
        c(mid)
    );
    let x_ticks: Vec<f64> = nice_ticks(x_lo, x_hi, 6)
        .into_iter()
        .filter(|t| *t >= x_lo - 1e-9 && *t <= x_hi + 1e-9)
        .collect();
    let x_step = nice_step(x_hi - x_lo, 6);
    for &t in &x_ticks {
        svg.text(
            x.map(t),
            area.bottom + 15.0,
            "middle",
            "tick",
            "",
            &fmt_tick(t, x_step),
        );
    }
    svg.text(
        (area.left + area.right) / 2.0,
        H - 6.0,
        "middle",
        "axis-title",
        "",
        "threshold",
    );

    // The error band, one polygon per run of thresholds with both bounds.
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    let mut bands = Vec::new();
    for p in &shown {
        match (fin(p.error_low), fin(p.error_high)) {
            (Some(lo), Some(hi)) => run.push((x.map(p.threshold), lo, hi)),
            _ => bands.push(std::mem::take(&mut run)),
        }
    }
    bands.push(run);
    for band in bands.iter().filter(|b| b.len() >= 2) {
        let forward = band
            .iter()
            .map(|(px, lo, _)| format!("{},{}", c(*px), c(y2.map_clamped(*lo))));
        let back = band
            .iter()
            .rev()
            .map(|(px, _, hi)| format!("{},{}", c(*px), c(y2.map_clamped(*hi))));
        let _ = write!(
            svg.out,
            "<polygon class=\"band\" points=\"{}\" fill=\"{ORANGE}\" fill-opacity=\"0.25\"/>",
            forward.chain(back).collect::<Vec<_>>().join(" ")
        );
    }
    if let Some(t) = target {
        let ty = y2.map_clamped(t);
        svg.line(
            (area.left, ty),
            (area.right, ty),
            "target",
            &format!(" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\""),
        );
        svg.text(
            area.right - 4.0,
            ty - 5.0,
            "end",
            "target-label",
            "",
            &format!("target {}", fmt_pct(t)),
        );
    }
    let path = |value: &dyn Fn(&CurvePoint) -> Option<f64>, scale: Scale| {
        let mut d = String::new();
        let mut pen_down = false;
        for p in &shown {
            match value(p) {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{} {}",
                        if pen_down {
                            " L"
                        } else if d.is_empty() {
                            "M"
                        } else {
                            " M"
                        },
                        c(x.map(p.threshold)),
                        c(scale.map_clamped(v))
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        d
    };
    let _ = write!(
        svg.out,
        "<path class=\"line error\" d=\"{}\" fill=\"none\" stroke=\"{ORANGE}\" stroke-width=\"2\" \
         stroke-linejoin=\"round\"/>\
         <path class=\"line review\" d=\"{}\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2\" \
         stroke-linejoin=\"round\"/>",
        path(&|p| fin(p.error), y2),
        path(&|p| Some(p.review_rate), y),
    );

    // Markers: a line up to the plot's top with its name above, on a row of
    // its own (so the names never collide), turned away from the other
    // marker and kept over the plot; the figures go on one row each under
    // the legend, keyed with the marker's stroke.
    let markers = [
        (
            "recommended",
            recommended,
            format!(" stroke=\"{GREEN}\" stroke-width=\"2\""),
        ),
        (
            "current",
            current,
            " stroke=\"currentColor\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"".to_owned(),
        ),
    ];
    let same = matches!((current, recommended), (Some(a), Some(b)) if (a - b).abs() < 1e-9);
    let mut row = 57.0;
    for (name, m, stroke) in &markers {
        let Some(m) = *m else { continue };
        let class = format!("marker {name}");
        let px = x.map(m);
        svg.line((px, area.bottom), (px, area.top), &class, stroke);
        let _ = write!(
            svg.out,
            "<g class=\"swatch\" transform=\"translate(8 {})\"><line class=\"{class}\" x1=\"0\" \
             y1=\"5\" x2=\"16\" y2=\"5\"{stroke}/></g>",
            c(row - 8.0)
        );
        svg.text(28.0, row, "start", &class, "", &describe(name, m));
        row += 15.0;
        if same && *name == "current" {
            continue;
        }
        let label = if same { "current = recommended" } else { name };
        let other = if *name == "current" {
            recommended
        } else {
            current
        };
        let w = text_width(label, FONT_SIZE);
        let start = if other.is_none_or(|o| o <= m) {
            px + 4.0 + w <= area.right
        } else {
            px - 4.0 - w < area.left
        };
        let (tx, anchor) = if start {
            (px + 4.0, "start")
        } else {
            (px - 4.0, "end")
        };
        let name_row = if *name == "current" { 4.0 } else { 17.0 };
        svg.text(
            tx,
            area.top - name_row,
            anchor,
            &class,
            " font-weight=\"600\"",
            label,
        );
    }
    svg.finish()
}

/// A tiny line of recent values (e.g. in a table cell): no axes, the last
/// value marked with a dot, gaps where a value is missing. `label` is the
/// accessible name.
pub fn sparkline(label: &str, values: &[Option<f64>]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|x| x.is_finite()).map(|v| (i, v)))
        .collect();
    let esc = escape(label);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" class=\"chart sparkline\" \
         role=\"img\" aria-label=\"{esc}\" fill=\"currentColor\"><title>{esc}</title>"
    );
    if present.is_empty() {
        out.push_str(
            "<text class=\"empty\" x=\"60\" y=\"18\" text-anchor=\"middle\" font-size=\"10\" \
             fill-opacity=\"0.7\">No data</text></svg>",
        );
        return out;
    }
    let lo = present.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = present
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let n = values.len();
    let x = |i: usize| {
        if n == 1 {
            W / 2.0
        } else {
            3.0 + i as f64 * (W - 6.0) / (n - 1) as f64
        }
    };
    let y = Scale::new(lo, hi, H - 3.0, 3.0);
    let mut d = String::new();
    let mut prev: Option<usize> = None;
    for &(i, v) in &present {
        let cmd = if prev == Some(i.wrapping_sub(1)) {
            " L"
        } else if d.is_empty() {
            "M"
        } else {
            " M"
        };
        let _ = write!(d, "{cmd}{} {}", c(x(i)), c(y.map(v)));
        prev = Some(i);
    }
    let (li, lv) = present[present.len() - 1];
    let _ = write!(
        out,
        "<desc>{} values from {} to {}, latest {}.</desc>\
         <path class=\"line series-0\" d=\"{d}\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"1.5\" \
         stroke-linejoin=\"round\"/>\
         <circle class=\"dot series-0\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{BLUE}\"/></svg>",
        present.len(),
        fmt_value(lo),
        fmt_value(hi),
        fmt_value(lv),
        c(x(li)),
        c(y.map(lv))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element of the tiny XML reader below.
    #[derive(Debug, Clone)]
    struct Node {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Node>,
        text: String,
    }

    impl Node {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn num(&self, name: &str) -> f64 {
            self.attr(name)
                .unwrap_or_else(|| panic!("no {name} on {self:?}"))
                .parse()
                .unwrap()
        }

        fn has_class(&self, class: &str) -> bool {
            let want: Vec<&str> = class.split(' ').collect();
            self.attr("class")
                .is_some_and(|c| want.iter().all(|w| c.split(' ').any(|x| x == *w)))
        }

        /// All descendants (and self), depth first.
        fn all(&self) -> Vec<&Node> {
            let mut out = vec![self];
            for c in &self.children {
                out.extend(c.all());
            }
            out
        }

        fn find(&self, name: &str, class: &str) -> Vec<&Node> {
            self.all()
                .into_iter()
                .filter(|n| n.name == name && (class.is_empty() || n.has_class(class)))
                .collect()
        }

        /// Text of this element and its descendants.
        fn all_text(&self) -> String {
            let mut s = self.text.clone();
            for c in &self.children {
                s.push_str(&c.all_text());
            }
            s
        }
    }

    /// A strict little XML well-formedness checker: one root element,
    /// matching tags, quoted unique attributes, no `<` in values, only the
    /// five predefined entities or character references. Returns the tree.
    fn parse(xml: &str) -> Result<Node, String> {
        let mut p = Parser { s: xml, i: 0 };
        p.misc()?;
        let root = p.element()?;
        p.misc()?;
        if p.i != xml.len() {
            return Err(format!("content after the root at {}", p.i));
        }
        Ok(root)
    }

    struct Parser<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Parser<'a> {
        fn rest(&self) -> &'a str {
            &self.s[self.i..]
        }

        fn ws(&mut self) {
            let n = self.rest().len() - self.rest().trim_start().len();
            self.i += n;
        }

        fn misc(&mut self) -> Result<(), String> {
            loop {
                self.ws();
                if self.rest().starts_with("<!--") {
                    let end = self.rest().find("-->").ok_or("unclosed comment")?;
                    self.i += end + 3;
                } else {
                    return Ok(());
                }
            }
        }

        fn expect(&mut self, t: &str) -> Result<(), String> {
            if self.rest().starts_with(t) {
                self.i += t.len();
                Ok(())
            } else {
                Err(format!("expected {t:?} at {}: {:.40}", self.i, self.rest()))
            }
        }

        fn name(&mut self) -> Result<String, String> {
            let r = self.rest();
            let n = r
                .char_indices()
                .find(|&(k, ch)| {
                    !(ch.is_ascii_alphabetic()
                        || ch == '_'
                        || ch == ':'
                        || (k > 0 && (ch.is_ascii_digit() || ch == '-' || ch == '.')))
                })
                .map_or(r.len(), |(k, _)| k);
            if n == 0 {
                return Err(format!("expected a name at {}: {:.40}", self.i, r));
            }
            self.i += n;
            Ok(r[..n].to_owned())
        }

        fn element(&mut self) -> Result<Node, String> {
            self.expect("<")?;
            let name = self.name()?;
            let mut node = Node {
                name,
                attrs: Vec::new(),
                children: Vec::new(),
                text: String::new(),
            };
            loop {
                let before = self.i;
                self.ws();
                if self.rest().starts_with("/>") {
                    self.i += 2;
                    return Ok(node);
                }
                if self.rest().starts_with('>') {
                    self.i += 1;
                    break;
                }
                if self.i == before {
                    return Err(format!("expected space before attribute at {}", self.i));
                }
                let attr = self.name()?;
                self.ws();
                self.expect("=")?;
                self.ws();
                let quote = self.rest().chars().next().ok_or("eof")?;
                if quote != '"' && quote != '\'' {
                    return Err(format!("unquoted attribute {attr}"));
                }
                self.i += 1;
                let end = self.rest().find(quote).ok_or("unclosed attribute")?;
                let raw = &self.rest()[..end];
                if raw.contains('<') {
                    return Err(format!("'<' in attribute {attr}"));
                }
                let value = unescape(raw)?;
                self.i += end + 1;
                if node.attrs.iter().any(|(n, _)| *n == attr) {
                    return Err(format!("duplicate attribute {attr}"));
                }
                node.attrs.push((attr, value));
            }
            loop {
                if self.rest().starts_with("</") {
                    self.i += 2;
                    let end = self.name()?;
                    if end != node.name {
                        return Err(format!("</{end}> closes <{}>", node.name));
                    }
                    self.ws();
                    self.expect(">")?;
                    return Ok(node);
                } else if self.rest().starts_with("<!--") {
                    let end = self.rest().find("-->").ok_or("unclosed comment")?;
                    self.i += end + 3;
                } else if self.rest().starts_with('<') {
                    node.children.push(self.element()?);
                } else if self.rest().is_empty() {
                    return Err(format!("<{}> not closed", node.name));
                } else {
                    let end = self.rest().find('<').unwrap_or(self.rest().len());
                    let raw = &self.rest()[..end];
                    if raw.contains('>') && raw.contains("]]>") {
                        return Err("]]> in text".into());
                    }
                    node.text.push_str(&unescape(raw)?);
                    self.i += end;
                }
            }
        }
    }

    fn unescape(raw: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = raw;
        while let Some(k) = rest.find('&') {
            out.push_str(&rest[..k]);
            let end = rest[k..].find(';').ok_or("unterminated entity")?;
            let entity = &rest[k + 1..k + end];
            out.push(match entity {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or("bad reference")?,
                e if e.starts_with('#') => e[1..]
                    .parse()
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or("bad reference")?,
                e => return Err(format!("unknown entity &{e};")),
            });
            rest = &rest[k + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 0.051
    }

    /// What every chart must be: well-formed, accessible, CSP-safe, no
    /// broken numbers.
    fn check(svg: &str) -> Node {
        let root = parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(root.name, "svg");
        assert_eq!(root.attr("xmlns"), Some("http://www.w3.org/2000/svg"));
        assert_eq!(root.attr("role"), Some("img"));
        assert!(root.attr("aria-label").is_some());
        assert!(root.attr("viewBox").is_some());
        assert!(root.children.first().is_some_and(|c| c.name == "title"));
        for n in root.all() {
            assert!(n.attr("style").is_none(), "style attribute on {n:?}");
            assert_ne!(n.name, "script");
            for (name, value) in &n.attrs {
                assert!(
                    !value.contains("NaN") && !value.contains("inf"),
                    "{name}={value:?} on <{}>",
                    n.name
                );
            }
            assert!(!n.text.contains("NaN"), "{n:?}");
        }
        root
    }

    /// Data bars: those with a tooltip (legend keys have none).
    fn bars(root: &Node) -> Vec<&Node> {
        root.find("rect", "bar")
            .into_iter()
            .filter(|r| r.children.iter().any(|c| c.name == "title"))
            .collect()
    }

    fn hours(n: usize) -> Vec<String> {
        (0..n).map(|h| format!("{:02}:00", h % 24)).collect()
    }

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\" 'd' >"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt;"
        );
        assert_eq!(escape("bell\u{7}\u{0}tab\tok"), "belltab\tok");
        assert_eq!(escape("Café ≤ 5 %"), "Café ≤ 5 %");
        // Round trip through the reader.
        let nasty = "</title><script>alert('x')</script> & \"q\"";
        let svg = bar_chart_hourly(nasty, &[1.0, 2.0], &[], nasty);
        let root = check(&svg);
        assert_eq!(root.attr("aria-label"), Some(nasty));
        assert_eq!(root.children[0].all_text(), nasty);
        assert!(root.find("script", "").is_empty());
    }

    #[test]
    fn the_reader_refuses_broken_markup() {
        for bad in [
            "<a><b></a></b>",
            "<a x=1/>",
            "<a x=\"1\" x=\"2\"/>",
            "<a>&nbsp;</a>",
            "<a>&amp</a>",
            "<a>",
            "<a/><b/>",
            "<a x=\"<\"/>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("<a x='1'><!-- c --><b/>t &lt; &#233;</a>").is_ok());
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        assert_eq!(
            nice_ticks(0.0, 42.0, 5),
            [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
        );
        assert_eq!(nice_ticks(0.0, 40.0, 5), [0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.0, 0.013, 5), [0.0, 0.005, 0.01, 0.015]);
        assert_eq!(
            nice_ticks(0.7, 1.0, 6),
            [0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
        );
        assert_eq!(nice_ticks(0.0, 7.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(nice_ticks(-3.0, 3.0, 5), [-4.0, -2.0, 0.0, 2.0, 4.0]);
        assert_eq!(nice_ticks(5.0, 5.0, 5), [5.0, 5.2, 5.4, 5.6, 5.8, 6.0]);
        assert!(nice_ticks(0.0, f64::NAN, 5).is_empty());
        // Whatever the range, the step is 1, 2 or 5 times a power of ten and
        // every tick a multiple of it.
        for max in [0.37, 3.3, 17.0, 99.0, 1234.5, 86_400_000.0] {
            let t = nice_ticks(0.0, max, 5);
            let step = t[1] - t[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "{max}: {t:?}"
            );
            assert!(
                t[0] == 0.0 && *t.last().unwrap() >= max && t.len() <= 7,
                "{t:?}"
            );
        }
        assert_eq!(fmt_tick(0.1 + 0.2, 0.1), "0.3");
        assert_eq!(fmt_tick(20_000.0, 5_000.0), "20k");
        assert_eq!(fmt_tick(-0.0, 1.0), "0");
        assert_eq!(fmt_pct_tick(0.005, 0.005), "0.5%");
        assert_eq!(fmt_pct_tick(0.4, 0.2), "40%");
    }

    #[test]
    fn bars_map_values_to_the_plot_and_mark_the_running_hour() {
        // Max 40 is a round tick: the tallest bar reaches the top (48), zero
        // sits on the baseline (284), 20 half way (166).
        let svg = bar_chart_hourly("Verdicts", &[0.0, 20.0, 40.0, 10.0], &hours(4), "verdicts");
        let root = check(&svg);
        let bars = bars(&root);
        assert_eq!(bars.len(), 4);
        let bottom = |r: &Node| r.num("y") + r.num("height");
        for b in &bars {
            assert!(close(bottom(b), 284.0), "{b:?}");
        }
        assert!(close(bars[0].num("height"), 0.0));
        assert!(close(bars[1].num("y"), 166.0));
        assert!(close(bars[2].num("y"), 48.0));
        assert!(bars[3].has_class("bar running") && !bars[2].has_class("running"));
        assert_eq!(
            root.find("rect", "running").len(),
            2,
            "bar and its legend key"
        );
        // Equal widths, left to right, inside the plot.
        assert!(bars.windows(2).all(|w| w[0].num("x") < w[1].num("x")));
        assert!(bars[0].num("x") >= 56.0 && bars[3].num("x") + bars[3].num("width") <= 624.0);
        // Tick labels 0–40 and the hour labels.
        let text = root.all_text();
        for t in [
            "0",
            "10",
            "20",
            "30",
            "40",
            "03:00",
            "still running",
            "verdicts",
        ] {
            assert!(text.contains(t), "{t}");
        }
        assert!(bars[3]
            .all_text()
            .contains("03:00: 10 verdicts (still running)"));
    }

    #[test]
    fn bars_skip_nan_and_survive_empty_or_zero_input() {
        let svg = bar_chart_hourly("V", &[3.0, f64::NAN, 5.0], &[], "verdicts");
        let root = check(&svg);
        assert_eq!(bars(&root).len(), 2);
        for svg in [
            bar_chart_hourly("V", &[], &[], "verdicts"),
            bar_chart_hourly("V", &[f64::NAN], &[], "verdicts"),
        ] {
            let root = check(&svg);
            assert!(root.find("text", "empty")[0].all_text().contains("No data"));
        }
        let root = check(&bar_chart_hourly("V", &[0.0; 24], &hours(24), "verdicts"));
        assert_eq!(bars(&root).len(), 24);
        // 24 labels of 5 characters do not fit in 24 slots: thinned, and the
        // latest hour keeps its label.
        let labels: Vec<String> = root
            .find("text", "tick")
            .iter()
            .map(|t| t.all_text())
            .filter(|t| t.contains(':'))
            .collect();
        assert!(labels.len() < 24 && labels.len() >= 6, "{labels:?}");
        assert!(labels.contains(&"23:00".to_owned()));
    }

    #[test]
    fn lines_have_gaps_dots_and_a_target() {
        let p95 = [
            Some(2.0),
            Some(4.0),
            None,
            Some(f64::NAN),
            Some(8.0),
            Some(6.0),
            None,
            Some(5.0),
        ];
        let svg = line_chart(
            "Receipt p95",
            &[("p95", &p95)],
            &hours(8),
            "minutes",
            Some((10.0, "deadline 10 min")),
        );
        let root = check(&svg);
        let path = root.find("path", "line series-0")[0]
            .attr("d")
            .unwrap()
            .to_owned();
        // Three runs: [0, 1], [4, 5], [7].
        assert_eq!(path.matches('M').count(), 3, "{path}");
        assert_eq!(path.matches('L').count(), 2, "{path}");
        assert_eq!(root.find("circle", "dot").len(), 5);
        // Ticks 0–10 (the target is shown): 10 maps to the top (48), 0 to
        // the baseline (284), 5 half way.
        let target = &root.find("line", "target")[0];
        assert!(close(target.num("y1"), 48.0) && close(target.num("y2"), 48.0));
        let dots = root.find("circle", "dot");
        assert!(close(dots.last().unwrap().num("cy"), 166.0));
        // Slot centres: 568 / 8 = 71 wide, first at 56 + 35.5.
        assert!(close(dots[0].num("cx"), 91.5));
        assert!(root.all_text().contains("deadline 10 min"));
        // Two series get a legend.
        let a = [Some(1.0), Some(2.0)];
        let b = [Some(2.0), None];
        let root = check(&line_chart(
            "Two",
            &[("a", &a[..]), ("b & c", &b[..])],
            &[],
            "",
            None,
        ));
        assert!(root
            .find("text", "legend")
            .iter()
            .any(|t| t.all_text() == "b & c"));
        // Nothing to draw.
        let none: [Option<f64>; 3] = [None, None, Some(f64::NAN)];
        let root = check(&line_chart(
            "Empty",
            &[("x", &none[..])],
            &[],
            "s",
            Some((1.0, "t")),
        ));
        assert_eq!(root.find("text", "empty").len(), 1);
        check(&line_chart::<Vec<Option<f64>>>(
            "Empty",
            &[],
            &[],
            "s",
            None,
        ));
    }

    fn bin(from: f64, count: i64, accuracy: f64) -> ReliabilityBin {
        ReliabilityBin {
            from,
            to: from + 0.1,
            count,
            mean_confidence: from + 0.05,
            accuracy,
        }
    }

    #[test]
    fn reliability_bars_sit_on_the_confidence_axis_with_the_diagonal() {
        let bins = [bin(0.5, 10, 0.5), bin(0.9, 200, 1.0)];
        let root = check(&reliability_diagram("Model v3", &bins, 0.0412));
        let bars = bars(&root);
        assert_eq!(bars.len(), 2);
        // x: 0.9–1.0 of 56–624 → 567.2–624 (less a 1-unit inset each side).
        assert!(close(bars[1].num("x"), 568.2));
        assert!(close(bars[1].num("x") + bars[1].num("width"), 623.0));
        // Accuracy 1 reaches the top (52); 0.5 half way to the bottom (228).
        assert!(close(bars[1].num("y"), 52.0));
        assert!(close(bars[0].num("y"), 140.0));
        assert!(close(bars[0].num("y") + bars[0].num("height"), 228.0));
        let d = &root.find("line", "ideal")[0];
        assert!(close(d.num("x1"), 56.0) && close(d.num("y1"), 228.0));
        assert!(close(d.num("x2"), 624.0) && close(d.num("y2"), 52.0));
        // The fullest bin fills the strip (40 high); the other is 10/200.
        let counts = root.find("rect", "count");
        assert!(close(counts[1].num("height"), 40.0));
        assert!(close(counts[0].num("height"), 2.0));
        let text = root.all_text();
        assert!(text.contains("ECE 0.041") && text.contains("perfectly calibrated"));
        let root = check(&reliability_diagram("Model v3", &[], 0.0));
        assert_eq!(root.find("text", "empty").len(), 1);
        check(&reliability_diagram(
            "Odd bins",
            &[bin(0.1, 0, f64::NAN)],
            f64::NAN,
        ));
    }

    fn curve() -> Vec<CurvePoint> {
        (0..=100)
            .map(|k| {
                let t = k as f64 / 100.0;
                // Flat below 0.6; error falls as the threshold rises; no
                // estimate above 0.98.
                let review_rate = if t < 0.6 {
                    0.02
                } else {
                    0.02 + (t - 0.6) * 2.45
                };
                let error = (t < 0.985).then_some(0.04 * (1.0 - t));
                CurvePoint {
                    threshold: t,
                    review_rate,
                    error,
                    error_low: error.map(|e| e * 0.5),
                    error_high: error.map(|e| e * 1.5),
                }
            })
            .collect()
    }

    #[test]
    fn the_review_error_curve_places_axes_markers_and_target() {
        let svg = review_error_curve("Threshold", &curve(), 0.005, Some(0.9), Some(0.95));
        let root = check(&svg);
        // The review rate is flat up to 0.60, so x runs from 0.6 to 1.0
        // over 60–580: 0.9 → 450, 0.95 → 515.
        let current = &root.find("line", "marker current")[0];
        let rec = &root.find("line", "marker recommended")[0];
        assert!(close(current.num("x1"), 450.0), "{current:?}");
        assert!(close(rec.num("x1"), 515.0), "{rec:?}");
        // Right axis: the highest bound in range (0.04 · 0.4 · 1.5 = 2.4 %)
        // is capped at 4 × 0.5 % = 2 %; five round steps of 0.5 % → 2.5 %.
        // Target 0.5 % → 300 − 192 · 0.5 / 2.5 = 261.6.
        let target = &root.find("line", "target")[0];
        assert!(close(target.num("y1"), 261.6), "{target:?}");
        let text = root.all_text();
        for t in ["2.5%", "0.5%", "100%", "0.6", "0.9", "1.0", "target 0.50 %"] {
            assert!(text.contains(t), "{t} in {text}");
        }
        // Short names over the markers, on two rows: "current" to the left
        // of its line, and "recommended" too, as it does not fit on the
        // right (515 + 4 + 75 > 580).
        let names: Vec<&Node> = root
            .find("text", "marker")
            .into_iter()
            .filter(|t| t.num("y") < 108.0 && t.num("y") > 84.0)
            .collect();
        assert_eq!(names.len(), 2);
        assert_eq!(names[0].all_text(), "recommended");
        assert_eq!(names[0].attr("text-anchor"), Some("end"));
        assert_eq!(names[1].all_text(), "current");
        assert_eq!(names[1].attr("text-anchor"), Some("end"));
        // 0.04 · 0.05 · 1.5 = 0.30 %.
        assert!(text.contains("recommended 0.95: "), "{text}");
        assert!(text.contains("error ≤ 0.30 %"), "{text}");
        // The error line stops where the estimate stops (0.98).
        let error = root.find("path", "line error")[0]
            .attr("d")
            .unwrap()
            .to_owned();
        assert_eq!(error.matches('M').count(), 1);
        assert!(root.find("polygon", "band").len() == 1);
        // Review rate 100 % at the top, error values above the axis clamped.
        let review = root.find("path", "line review")[0]
            .attr("d")
            .unwrap()
            .to_owned();
        assert!(review.ends_with("580 108"), "{review}");
        for n in root.find("polygon", "band") {
            for pt in n.attr("points").unwrap().split(' ') {
                let y: f64 = pt.split(',').nth(1).unwrap().parse().unwrap();
                assert!((108.0..=300.0).contains(&y));
            }
        }
        // No data, no markers, odd targets.
        check(&review_error_curve("T", &[], 0.005, None, None));
        check(&review_error_curve("T", &curve(), f64::NAN, None, None));
        check(&review_error_curve(
            "T",
            &curve()[..1],
            0.005,
            Some(0.0),
            None,
        ));
    }

    #[test]
    fn candidates_convert_to_curve_points() {
        let c = Candidate {
            threshold: 0.9,
            review_rate: 0.1,
            confident: 10,
            auto_accepted: 9.8,
            known_wrong: 0,
            estimated: 9,
            audit_samples: 1,
            audit_wrong: 0,
            error: Some(0.01),
            error_low: Some(0.0),
            error_high: Some(0.2),
        };
        let p = CurvePoint::from(&c);
        assert_eq!(
            (p.threshold, p.review_rate, p.error_high),
            (0.9, 0.1, Some(0.2))
        );
    }

    #[test]
    fn sparklines_break_at_gaps() {
        let root = check(&sparkline(
            "p95 & co",
            &[Some(1.0), Some(3.0), None, Some(2.0)],
        ));
        let d = root.find("path", "line")[0].attr("d").unwrap().to_owned();
        assert_eq!(d.matches('M').count(), 2);
        // Max at the top (3), min at the bottom (25).
        assert!(d.starts_with("M3 25 L41 3"), "{d}");
        check(&sparkline("none", &[None]));
        check(&sparkline("one", &[Some(4.0)]));
    }

    /// Writes one of each chart to /tmp/charts for a look in a browser:
    /// `cargo test --lib charts -- --ignored`.
    #[test]
    #[ignore]
    fn render_samples() {
        use crate::domain::recommend::recommend;
        use crate::domain::routing::RoutingPolicy;
        let dir = std::path::Path::new("/tmp/charts");
        std::fs::create_dir_all(dir).unwrap();
        let labels: Vec<String> = (0..24)
            .map(|h| format!("{:02}:00", (h + 15) % 24))
            .collect();
        let verdicts: Vec<f64> = (0..24)
            .map(|h| (40.0 + 30.0 * ((h as f64) / 3.0).sin()).round().max(0.0))
            .collect();
        let mut verdicts = verdicts;
        verdicts[23] = 12.0;
        std::fs::write(
            dir.join("bars.svg"),
            bar_chart_hourly("Verdicts per hour", &verdicts, &labels, "verdicts"),
        )
        .unwrap();
        let p95: Vec<Option<f64>> = (0..24)
            .map(|h| (h % 7 != 3).then(|| 3.0 + 2.5 * ((h as f64) / 4.0).cos() + (h as f64) / 10.0))
            .collect();
        let p50: Vec<Option<f64>> = p95.iter().map(|v| v.map(|v| v / 2.5)).collect();
        std::fs::write(
            dir.join("line.svg"),
            line_chart(
                "Receipt latency per hour",
                &[("p95", &p95), ("p50", &p50)],
                &labels,
                "minutes",
                Some((10.0, "deadline 10 min")),
            ),
        )
        .unwrap();
        let bins: Vec<ReliabilityBin> = (0..10)
            .map(|b| {
                let from = b as f64 / 10.0;
                ReliabilityBin {
                    from,
                    to: from + 0.1,
                    count: [2, 3, 8, 15, 30, 60, 120, 300, 900, 4000][b],
                    mean_confidence: from + 0.05,
                    accuracy: (from + 0.05 - 0.08 * (1.0 - from)).clamp(0.0, 1.0),
                }
            })
            .collect();
        std::fs::write(
            dir.join("reliability.svg"),
            reliability_diagram("Calibration: model 2024-06-v3", &bins, 0.0412),
        )
        .unwrap();
        let mut store: Vec<crate::domain::dashboard::ConfidenceBin> = (80..100)
            .map(|b| crate::domain::dashboard::ConfidenceBin {
                bin: b,
                events: 5_000,
                forced: 300,
                audited: 100,
                audited_wrong: i64::from(b < 85),
                auto_accepted: 4_600,
                ..Default::default()
            })
            .collect();
        for (i, w) in [400, 400, 400, 300, 200, 120, 80, 50, 30, 20]
            .into_iter()
            .enumerate()
        {
            store.push(crate::domain::dashboard::ConfidenceBin {
                bin: 70 + i as i64,
                events: 1_000,
                low_confidence: 1_000,
                low_confidence_wrong: w,
                ..Default::default()
            });
        }
        let policy = RoutingPolicy {
            threshold: 0.8,
            ..RoutingPolicy::default()
        };
        let r = recommend(&store, &policy, 0.005, 1.96);
        let points: Vec<CurvePoint> = r.candidates.iter().map(CurvePoint::from).collect();
        std::fs::write(
            dir.join("curve.svg"),
            review_error_curve(
                "Review rate and error by threshold",
                &points,
                r.target_error,
                r.current.as_ref().map(|c| c.threshold),
                r.recommended.as_ref().map(|c| c.threshold),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("empty.svg"),
            bar_chart_hourly("Verdicts per hour", &[], &[], "verdicts"),
        )
        .unwrap();
        std::fs::write(dir.join("spark.svg"), sparkline("p95", &p95)).unwrap();
    }
}
