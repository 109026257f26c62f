//! What a clip may be, and how much of the machine media work may take.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{MediaError, MediaResult};

/// Limits on accepted clips and on the media work itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLimits {
    /// Widest stored picture accepted, in pixels.
    pub max_width: u32,
    /// Tallest stored picture accepted, in pixels.
    pub max_height: u32,
    /// Most pixels per picture accepted (width × height).
    pub max_pixels: u64,
    /// Longest clip accepted, in milliseconds.
    pub max_duration_ms: i64,
    /// Decoded frames with errors tolerated before a clip is `corrupt-video`.
    pub max_corrupt_frames: u32,
    /// Wall-clock limit of one operation, once it holds its permit.
    pub timeout: Duration,
    /// Operations allowed to run at once (each holds one permit).
    pub max_concurrent: usize,
    /// Threads each decoder and encoder may use.
    pub threads_per_job: usize,
    /// Threads a poster's decoder and filters may use. A poster is one
    /// picture that a task waits for: latency, not throughput, so it may
    /// take every core for the few dozen milliseconds it runs.
    pub poster_threads: usize,
}

impl Default for MediaLimits {
    /// 4K cameras, five-minute clips, two minutes per operation, one
    /// single-threaded operation per core: throughput over the latency of
    /// any one clip, and the API keeps a core when several clips queue.
    /// Posters, short and waited for, use every core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        MediaLimits {
            max_width: 4096,
            max_height: 4096,
            max_pixels: 4096 * 2304,
            max_duration_ms: 5 * 60 * 1000,
            max_corrupt_frames: 0,
            timeout: Duration::from_secs(120),
            max_concurrent: cores.max(1),
            threads_per_job: 1,
            poster_threads: cores.max(1),
        }
    }
}

impl MediaLimits {
    /// Checks a stored picture size against the limits.
    pub fn check_dimensions(&self, width: u32, height: u32) -> MediaResult<()> {
        let pixels = u64::from(width) * u64::from(height);
        if width > self.max_width || height > self.max_height || pixels > self.max_pixels {
            return Err(MediaError::new(
                MediaError::DIMENSIONS_TOO_LARGE,
                format!(
                    "the video is {width}x{height}; at most {}x{} and {} pixels are accepted",
                    self.max_width, self.max_height, self.max_pixels
                ),
            ));
        }
        Ok(())
    }

    /// Checks a duration against the limit.
    pub fn check_duration(&self, duration_ms: i64) -> MediaResult<()> {
        if duration_ms > self.max_duration_ms {
            return Err(MediaError::new(
                MediaError::DURATION_TOO_LONG,
                format!(
                    "the video lasts at least {duration_ms} ms; at most {} ms is accepted",
                    self.max_duration_ms
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MediaLimits {
        MediaLimits {
            max_width: 640,
            max_height: 480,
            max_pixels: 640 * 360,
            max_duration_ms: 1000,
            ..MediaLimits::default()
        }
    }

    #[test]
    fn each_dimension_limit_applies_on_its_own() {
        let limits = small();
        assert!(limits.check_dimensions(640, 360).is_ok());
        assert_eq!(
            limits.check_dimensions(641, 10).unwrap_err().code,
            "dimensions-too-large"
        );
        assert_eq!(
            limits.check_dimensions(10, 481).unwrap_err().code,
            "dimensions-too-large"
        );
        assert_eq!(
            limits.check_dimensions(640, 361).unwrap_err().code,
            "dimensions-too-large"
        );
    }

    #[test]
    fn duration_limit_is_inclusive() {
        let limits = small();
        assert!(limits.check_duration(1000).is_ok());
        assert_eq!(
            limits.check_duration(1001).unwrap_err().code,
            "duration-too-long"
        );
    }
}
