//! Media: turning a camera's clip into what the labeling console shows.
//!
//! In-process FFmpeg 5.1 through `ffmpeg-next`. For each clip:
//!
//! - [`probe`] reads what it is ([`ProbeInfo`]) and refuses what we do not
//!   take (see [`MediaCode`]): the headers, then one pass over the
//!   packets without decoding, against [`MediaLimits`];
//! - [`make_browser_mp4`] writes an H.264 yuv420p MP4 with `moov` first,
//!   optionally of a [`Window`] of the clip: remuxed when the source already
//!   plays in browsers (packets copied, nothing decoded), transcoded with
//!   libx264 otherwise ([`OutputInfo`]);
//! - [`poster`] writes the frame shown at the event instant as a JPEG
//!   ([`PosterInfo`]);
//! - [`filmstrip`] writes evenly spread thumbnails in one sprite JPEG, with
//!   their times ([`Filmstrip`]); with [`Decode::EveryFrame`] it also checks
//!   every frame of a remuxed video, which nothing else decoded.
//! - `synth` (with the `synth` feature, for the demo) films synthetic shelf
//!   clips (a hand taking a product).
//!
//! These functions block; each takes the [`MediaLimits`] and a [`Cancel`]
//! flag it checks between packets and frames. Async code calls them through
//! a [`MediaRunner`], under a concurrency permit and a timeout, and the
//! runner tells its [`Observer`] (the server's metrics) how each went. The
//! server's runner sends each [`Operation`] to a [`worker`] process from its
//! [`WorkerPool`], so FFmpeg never parses an upload inside the server; a
//! plain runner uses tokio's blocking pool. Times are milliseconds from the start
//! of the clip's video stream. Outputs appear only when complete.
//!
//! Every failure is a [`MediaError`] with a stable code and `client_fault()`:
//! true means the upload is bad (answer 4xx, do not retry), false means we
//! failed (retry later). See `docs/media.md`.

mod cancel;
mod cut;
mod error;
mod filmstrip;
mod h264;
mod input;
mod limits;
mod operation;
mod picture;
mod pool;
mod poster;
mod probe;
mod runner;
mod sniff;
#[cfg(feature = "synth")]
pub mod synth;
mod transcode;
pub mod worker;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use cancel::Cancel;
pub use cut::{CutAccuracy, Window};
pub use error::{MediaCode, MediaError, MediaResult};
pub use filmstrip::{filmstrip, Decode, Filmstrip, MAX_COLUMNS, MAX_TILES, MAX_TILE_WIDTH};
pub use input::{ACCEPTED_CODECS, ACCEPTED_FORMATS};
pub use limits::MediaLimits;
pub use operation::{Made, Operation, Outcome};
pub use picture::JPEG_QUALITY;
pub use pool::{BusyWorker, WorkerCommand, WorkerPool};
pub use poster::{poster, PosterInfo};
pub use probe::{probe, ProbeInfo};
pub use runner::{MediaRunner, Observer};
pub use transcode::{make_browser_mp4, Method, OutputInfo, X264_CRF, X264_PRESET};

/// Where an output is written before it is complete: beside it, so the
/// final rename stays on one file system.
pub(crate) fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| OsString::from("output"));
    name.push(".partial");
    output.with_file_name(name)
}

/// `path` as FFmpeg's `file:` URL, so a colon in a name is never read as a
/// protocol. FFmpeg takes UTF-8 names only.
pub(crate) fn ffmpeg_path(path: &Path) -> MediaResult<String> {
    match path.to_str() {
        Some(s) if !s.contains('\0') => Ok(format!("file:{s}")),
        _ => Err(MediaError::new(
            MediaError::IO_ERROR,
            format!("the path {} is not valid UTF-8", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_path_sits_beside_the_output() {
        assert_eq!(
            partial_path(Path::new("/data/clips/a.mp4")),
            PathBuf::from("/data/clips/a.mp4.partial")
        );
    }

    #[test]
    fn ffmpeg_path_uses_the_file_protocol() {
        assert_eq!(
            ffmpeg_path(Path::new("/tmp/x:y.mp4")).unwrap(),
            "file:/tmp/x:y.mp4"
        );
    }
}
