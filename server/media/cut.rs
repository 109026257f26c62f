//! Cut windows: what part of a clip to keep, and how exactly.

use serde::{Deserialize, Serialize};

use super::error::{MediaError, MediaResult};

/// A part of a clip, in milliseconds from the start of its video stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the wanted part.
    pub from_ms: i64,
    /// End of the wanted part (exclusive).
    pub to_ms: i64,
}

impl Window {
    /// The part from `from_ms` to `to_ms`.
    pub fn new(from_ms: i64, to_ms: i64) -> Window {
        Window { from_ms, to_ms }
    }

    /// Clamps the window to a clip of `duration_ms`; refuses an empty window
    /// or one that misses the clip entirely.
    pub(crate) fn clamp(self, duration_ms: i64) -> MediaResult<Window> {
        if self.to_ms <= self.from_ms {
            return Err(MediaError::new(
                MediaError::INVALID_WINDOW,
                format!("the window {}..{} ms is empty", self.from_ms, self.to_ms),
            ));
        }
        if self.from_ms >= duration_ms || self.to_ms <= 0 {
            return Err(MediaError::new(
                MediaError::INVALID_WINDOW,
                format!(
                    "the window {}..{} ms falls outside the clip (0..{duration_ms} ms)",
                    self.from_ms, self.to_ms
                ),
            ));
        }
        Ok(Window {
            from_ms: self.from_ms.max(0),
            to_ms: self.to_ms.min(duration_ms),
        })
    }
}

/// How exactly a window is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutAccuracy {
    /// Start at the keyframe at or before the window: stream copy when the
    /// source plays in browsers, so fast and lossless, at the price of up to
    /// one keyframe interval of extra video before the window.
    #[default]
    Keyframe,
    /// Start at the frame shown at the window's start and end with the frame
    /// shown just before its end: always a re-encode.
    Frame,
}

/// Picks, from decoded frames in presentation order, those a frame-accurate
/// window keeps: the frame shown at `from` (the last one starting at or
/// before it), then every frame starting before `to`.
pub(crate) struct FrameSelector<F> {
    from: i64,
    to: i64,
    held: Option<(i64, F)>,
    done: bool,
}

impl<F> FrameSelector<F> {
    /// Selects over stream times `from..to`.
    pub fn new(from: i64, to: i64) -> Self {
        FrameSelector {
            from,
            to,
            held: None,
            done: false,
        }
    }

    /// Whether every later frame falls after the window.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Offers the next frame (at `pts`); returns the frames to keep, in order.
    pub fn offer(&mut self, pts: i64, frame: F) -> Vec<(i64, F)> {
        if self.done {
            return Vec::new();
        }
        if pts <= self.from {
            self.held = Some((pts, frame));
            return Vec::new();
        }
        let mut out: Vec<(i64, F)> = self.held.take().into_iter().collect();
        if pts < self.to {
            out.push((pts, frame));
        } else {
            self.done = true;
        }
        out
    }

    /// At the end of the stream: a frame still held (the window starts on
    /// the last frame) is kept.
    pub fn finish(&mut self) -> Option<(i64, F)> {
        self.done = true;
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from: i64, to: i64, frames: &[i64]) -> Vec<i64> {
        let mut selector = FrameSelector::new(from, to);
        let mut kept = Vec::new();
        for &pts in frames {
            kept.extend(selector.offer(pts, ()).into_iter().map(|(p, _)| p));
        }
        kept.extend(selector.finish().map(|(p, _)| p));
        kept
    }

    #[test]
    fn keeps_the_frame_shown_at_the_start_and_those_before_the_end() {
        assert_eq!(
            run(25, 60, &[0, 10, 20, 30, 40, 50, 60, 70]),
            [20, 30, 40, 50]
        );
    }

    #[test]
    fn a_start_on_a_frame_boundary_starts_on_that_frame() {
        assert_eq!(run(20, 41, &[0, 10, 20, 30, 40, 50]), [20, 30, 40]);
    }

    #[test]
    fn a_start_before_the_first_frame_starts_on_the_first_frame() {
        assert_eq!(run(-5, 15, &[0, 10, 20]), [0, 10]);
    }

    #[test]
    fn a_start_on_the_last_frame_keeps_that_frame() {
        assert_eq!(run(25, 90, &[0, 10, 20]), [20]);
    }

    #[test]
    fn windows_are_clamped_to_the_clip() {
        assert_eq!(
            Window::new(-100, 5000).clamp(4000).unwrap(),
            Window::new(0, 4000)
        );
        assert_eq!(
            Window::new(500, 500).clamp(4000).unwrap_err().code,
            "invalid-window"
        );
        assert_eq!(
            Window::new(4000, 4500).clamp(4000).unwrap_err().code,
            "invalid-window"
        );
        assert_eq!(
            Window::new(-500, 0).clamp(4000).unwrap_err().code,
            "invalid-window"
        );
    }
}
