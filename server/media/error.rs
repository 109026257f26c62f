//! The one error type of the media layer.
//!
//! Every failure carries a stable kebab-case `code` that the API and the job
//! queue can store and match on, a message for a person, and whether the
//! uploader is at fault. A clip that is not a video is the store's problem
//! (answer 4xx, never retry); a timeout or a full disk is ours (5xx, retry
//! later). FFmpeg's own error text is folded into the message only where it
//! helps; it never carries paths from outside the job.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a media operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaError {
    /// Stable machine code.
    pub code: MediaCode,
    /// Explanation for a person.
    pub message: String,
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for MediaError {}

/// Result of a media operation.
pub type MediaResult<T> = Result<T, MediaError>;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident / $name:ident = $code:literal, client: $client:literal; )*) => {
        /// The stable code of a media failure: a closed set, so whoever maps
        /// it (the server's error registry) matches every one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MediaCode {
            $( $(#[$doc])* $variant, )*
        }

        impl MediaCode {
            /// Every code.
            pub const ALL: &'static [MediaCode] = &[$(MediaCode::$variant),*];

            /// Its kebab-case spelling, as stored and answered.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(MediaCode::$variant => $code,)*
                }
            }

            /// The code spelled `name`, if there is one.
            pub fn parse(name: &str) -> Option<MediaCode> {
                MediaCode::ALL.iter().copied().find(|c| c.as_str() == name)
            }

            /// Whether the uploader is at fault (retrying cannot help).
            pub fn client_fault(self) -> bool {
                match self {
                    $(MediaCode::$variant => $client,)*
                }
            }
        }

        impl MediaError {
            $(
                $(#[$doc])*
                pub const $name: MediaCode = MediaCode::$variant;
            )*
        }
    };
}

impl fmt::Display for MediaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code crosses the worker boundary as its spelling.
impl Serialize for MediaCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MediaCode, D::Error> {
        let name = String::deserialize(d)?;
        MediaCode::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown media code {name:?}")))
    }
}

/// Lets a code be compared with its spelling (`err.code == "not-video"`).
impl PartialEq<&str> for MediaCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl MediaError {
    /// Builds the error for `code`.
    pub fn new(code: MediaCode, message: impl Into<String>) -> MediaError {
        MediaError {
            code,
            message: message.into(),
        }
    }

    /// True when the input (or the caller's request about it) is at fault
    /// and retrying cannot help; false for failures on our side. It follows
    /// from the code alone.
    pub fn client_fault(&self) -> bool {
        self.code.client_fault()
    }
}

codes! {
    /// The file has no bytes.
    EmptyFile / EMPTY_FILE = "empty-file", client: true;
    /// The bytes are not a video container we read (text, an image, a playlist…).
    NotVideo / NOT_VIDEO = "not-video", client: true;
    /// The container is cut short: its index or frame data runs past the end.
    Truncated / TRUNCATED = "truncated", client: true;
    /// A container without a video stream (audio only, subtitles only).
    NoVideoStream / NO_VIDEO_STREAM = "no-video-stream", client: true;
    /// A video codec outside the accepted list.
    UnsupportedCodec / UNSUPPORTED_CODEC = "unsupported-codec", client: true;
    /// Frames that fail to decode, or a stream whose frames contradict its header.
    CorruptVideo / CORRUPT_VIDEO = "corrupt-video", client: true;
    /// Width, height or pixel count over the configured limits.
    DimensionsTooLarge / DIMENSIONS_TOO_LARGE = "dimensions-too-large", client: true;
    /// Duration over the configured limit.
    DurationTooLong / DURATION_TOO_LONG = "duration-too-long", client: true;
    /// A cut window or instant that does not fall inside the clip.
    InvalidWindow / INVALID_WINDOW = "invalid-window", client: true;
    /// The operation ran past its time limit and was stopped.
    Timeout / TIMEOUT = "timeout", client: false;
    /// The operation was cancelled before it finished.
    Cancelled / CANCELLED = "cancelled", client: false;
    /// Options that no clip could satisfy (zero thumbnails, a zero-width tile).
    InvalidOptions / INVALID_OPTIONS = "invalid-options", client: false;
    /// Reading the input or writing the output failed on our side.
    IoError / IO_ERROR = "io-error", client: false;
    /// The encoder or muxer failed on a clip that decoded fine.
    EncodeFailed / ENCODE_FAILED = "encode-failed", client: false;
    /// The worker process running the operation died (a crash, a kill, its
    /// memory or CPU limit). Retried; a clip whose every attempt ends so
    /// keeps this code.
    Crashed / CRASHED = "media-crashed", client: false;
    /// A bug: a panic in media code or an FFmpeg state we did not expect.
    Internal / INTERNAL = "internal", client: false;
}

impl MediaError {
    /// Wraps an FFmpeg error met while `doing` something, as `code`.
    pub(crate) fn ffmpeg(code: MediaCode, doing: &str, err: ffmpeg_next::Error) -> MediaError {
        MediaError::new(code, format!("{doing}: {err}"))
    }

    /// Wraps an I/O error met while `doing` something.
    pub(crate) fn io(doing: &str, err: std::io::Error) -> MediaError {
        MediaError::new(MediaError::IO_ERROR, format!("{doing}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_kebab_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in MediaCode::ALL.iter().map(|c| c.as_str()) {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{code}"
            );
            assert!(!code.starts_with('-') && !code.ends_with('-'), "{code}");
            assert!(seen.insert(code), "{code} twice");
        }
    }

    #[test]
    fn every_code_parses_back_from_its_spelling() {
        for &code in MediaCode::ALL {
            assert_eq!(MediaCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(MediaCode::parse("no-such-code"), None);
    }

    #[test]
    fn new_takes_client_fault_from_the_code_table() {
        assert!(MediaError::new(MediaError::NOT_VIDEO, "x").client_fault());
        assert!(!MediaError::new(MediaError::TIMEOUT, "x").client_fault());
        assert_eq!(
            MediaError::new(MediaError::TRUNCATED, "cut short").to_string(),
            "truncated: cut short"
        );
    }
}
