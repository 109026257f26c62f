//! The media operations as data, so that one can cross a process boundary:
//! the runner sends an [`Operation`] to a worker process, which runs it
//! with [`Operation::run`] and answers with its [`Outcome`]. In-process
//! runs go through the same `run`, so both paths do exactly the same work.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cancel::Cancel;
use super::cut::{CutAccuracy, Window};
use super::error::{MediaError, MediaResult};
use super::filmstrip::{Decode, Filmstrip};
use super::limits::MediaLimits;
use super::poster::PosterInfo;
use super::probe::ProbeInfo;
use super::transcode::OutputInfo;

/// One media operation and its arguments (paths on this machine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// [`probe`](super::probe()).
    Probe { input: PathBuf },
    /// [`make_browser_mp4`](super::make_browser_mp4()).
    MakeBrowserMp4 {
        input: PathBuf,
        output: PathBuf,
        window: Option<Window>,
        accuracy: CutAccuracy,
    },
    /// [`poster`](super::poster()).
    Poster {
        input: PathBuf,
        at_ms: i64,
        output: PathBuf,
        max_width: u32,
    },
    /// [`filmstrip`](super::filmstrip()).
    Filmstrip {
        input: PathBuf,
        count: u32,
        tile_width: u32,
        decode: Decode,
        output: PathBuf,
    },
}

/// What an operation made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "made", rename_all = "snake_case")]
pub enum Made {
    Probe(ProbeInfo),
    BrowserMp4(OutputInfo),
    Poster(PosterInfo),
    Filmstrip(Filmstrip),
}

/// An operation's result as it crosses the process boundary.
pub type Outcome = Result<Made, MediaError>;

impl Operation {
    /// Its name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Probe { .. } => "probe",
            Operation::MakeBrowserMp4 { .. } => "make_browser_mp4",
            Operation::Poster { .. } => "poster",
            Operation::Filmstrip { .. } => "filmstrip",
        }
    }

    /// Does the work, blocking, within `limits`, stopping at `cancel`.
    pub fn run(&self, limits: &MediaLimits, cancel: &Cancel) -> Outcome {
        Ok(match self {
            Operation::Probe { input } => Made::Probe(super::probe(input, limits, cancel)?),
            Operation::MakeBrowserMp4 {
                input,
                output,
                window,
                accuracy,
            } => Made::BrowserMp4(super::make_browser_mp4(
                input, output, *window, *accuracy, limits, cancel,
            )?),
            Operation::Poster {
                input,
                at_ms,
                output,
                max_width,
            } => Made::Poster(super::poster(
                input, *at_ms, output, *max_width, limits, cancel,
            )?),
            Operation::Filmstrip {
                input,
                count,
                tile_width,
                decode,
                output,
            } => Made::Filmstrip(super::filmstrip(
                input,
                *count,
                *tile_width,
                *decode,
                output,
                limits,
                cancel,
            )?),
        })
    }
}

macro_rules! made_as {
    ($($(#[$doc:meta])* $fn:ident: $variant:ident => $ty:ty;)*) => {
        impl Made {
            $(
                $(#[$doc])*
                ///
                /// Anything else means the two sides of the process boundary
                /// disagree, which is our bug: an `internal` error.
                pub fn $fn(self) -> MediaResult<$ty> {
                    match self {
                        Made::$variant(v) => Ok(v),
                        other => Err(wrong_result(&other)),
                    }
                }
            )*
        }
    };
}

made_as! {
    /// What a probe found.
    into_probe: Probe => ProbeInfo;
    /// What a browser MP4 is.
    into_browser_mp4: BrowserMp4 => OutputInfo;
    /// What a poster shows.
    into_poster: Poster => PosterInfo;
    /// What a filmstrip holds.
    into_filmstrip: Filmstrip => Filmstrip;
}

fn wrong_result(made: &Made) -> MediaError {
    let what = format!("{made:?}");
    MediaError::new(
        MediaError::INTERNAL,
        format!(
            "the media worker answered with the wrong result: {}",
            what.chars().take(80).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_reads_back_as_it_was_written() {
        let op = Operation::MakeBrowserMp4 {
            input: "/tmp/a b/source".into(),
            output: "/tmp/a b/video.mp4".into(),
            window: Some(Window::new(500, 4_500)),
            accuracy: CutAccuracy::Frame,
        };
        let text = serde_json::to_string(&op).unwrap();
        assert!(text.contains(r#""operation":"make_browser_mp4""#), "{text}");
        assert_eq!(serde_json::from_str::<Operation>(&text).unwrap(), op);
        assert_eq!(op.name(), "make_browser_mp4");
    }

    #[test]
    fn an_error_reads_back_with_its_code() {
        let outcome: Outcome = Err(MediaError::new(MediaError::NOT_VIDEO, "text"));
        let text = serde_json::to_string(&outcome).unwrap();
        let back: Outcome = serde_json::from_str(&text).unwrap();
        assert_eq!(back.unwrap_err().code, "not-video");
    }

    #[test]
    fn a_result_of_the_wrong_kind_is_an_internal_error() {
        let made = Made::Poster(PosterInfo {
            pts_ms: 0,
            width: 2,
            height: 2,
        });
        let err = made.into_probe().unwrap_err();
        assert_eq!(err.code, "internal");
    }
}
