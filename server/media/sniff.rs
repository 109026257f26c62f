//! A look at the first bytes, before FFmpeg: is this an MP4-family file, and
//! is it whole?
//!
//! FFmpeg answers "Invalid data" both for a text file renamed to `.mp4` and
//! for a camera recording whose upload stopped before its `moov` index was
//! written; the uploader needs to hear different things. Walking the
//! top-level ISO-BMFF boxes tells them apart, and also catches a file whose
//! index promises frame data past the end of the file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniff {
    /// ISO-BMFF (MP4, MOV, 3GP): whether a box runs past the end of the file
    /// or no `moov`/`moof` index is present.
    Mp4 {
        /// The file is cut short.
        truncated: bool,
    },
    /// Some other container FFmpeg may read (Matroska, AVI, MPEG-TS, FLV).
    OtherContainer,
    /// No known container signature.
    Unknown,
}

/// Top-level box types that start or fill an ISO-BMFF file.
const TOP_LEVEL: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx",
    b"moof", b"mfra", b"pdin", b"meta", b"junk",
];

/// Reads the signature of `path` and, for MP4-family files, walks its boxes.
pub(crate) fn sniff(path: &Path) -> io::Result<Sniff> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 12];
    let n = read_up_to(&mut file, &mut head)?;
    let head = &head[..n];
    if n >= 8 && TOP_LEVEL.contains(&&[head[4], head[5], head[6], head[7]]) {
        return Ok(Sniff::Mp4 {
            truncated: mp4_truncated(&mut file, len)?,
        });
    }
    let other = head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || (head.starts_with(b"RIFF") && n >= 12 && &head[8..12] == b"AVI ")
        || head.starts_with(b"FLV")
        || (head.first() == Some(&0x47) && ts_sync_at_188(&mut file)?);
    Ok(if other {
        Sniff::OtherContainer
    } else {
        Sniff::Unknown
    })
}

/// Walks top-level boxes: cut short when one runs past `len` or no index exists.
fn mp4_truncated(file: &mut File, len: u64) -> io::Result<bool> {
    let mut pos = 0u64;
    let mut has_index = false;
    // A real file has a handful of top-level boxes (fragmented ones a few
    // per second); the cap only bounds the work on a hostile file.
    for _ in 0..1_000_000 {
        if pos == len {
            return Ok(!has_index);
        }
        if len - pos < 8 {
            return Ok(true);
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 16];
        let n = read_up_to(file, &mut header)?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        if !kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            // Not a box header: garbage after the boxes is FFmpeg's to judge.
            return Ok(!has_index);
        }
        if &kind == b"moov" || &kind == b"moof" {
            has_index = true;
        }
        let size = match size32 {
            0 => return Ok(!has_index),
            1 if n < 16 => return Ok(true),
            1 => u64::from_be_bytes(header[8..16].try_into().expect("8 bytes")),
            s => u64::from(s),
        };
        if size < 8 {
            return Ok(!has_index);
        }
        if size > len - pos {
            return Ok(true);
        }
        pos += size;
    }
    Ok(!has_index)
}

/// MPEG-TS packets are 188 bytes, each starting with the sync byte 0x47.
fn ts_sync_at_188(file: &mut File) -> io::Result<bool> {
    file.seek(SeekFrom::Start(188))?;
    let mut byte = [0u8; 1];
    Ok(read_up_to(file, &mut byte)? == 1 && byte[0] == 0x47)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(bytes).expect("write");
        file
    }

    fn boxed(kind: &[u8; 4], body_len: usize) -> Vec<u8> {
        let mut v = ((body_len + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.resize(body_len + 8, 0);
        v
    }

    #[test]
    fn whole_mp4_boxes_are_not_truncated() {
        let bytes = [boxed(b"ftyp", 8), boxed(b"moov", 20), boxed(b"mdat", 100)].concat();
        let file = write(&bytes);
        assert_eq!(sniff(file.path()).unwrap(), Sniff::Mp4 { truncated: false });
    }

    #[test]
    fn an_mdat_running_past_the_end_is_truncated() {
        let mut bytes = [boxed(b"ftyp", 8), boxed(b"moov", 20), boxed(b"mdat", 100)].concat();
        bytes.truncate(bytes.len() - 10);
        let file = write(&bytes);
        assert_eq!(sniff(file.path()).unwrap(), Sniff::Mp4 { truncated: true });
    }

    #[test]
    fn boxes_without_moov_are_truncated() {
        let bytes = [boxed(b"ftyp", 8), boxed(b"mdat", 100)].concat();
        let file = write(&bytes);
        assert_eq!(sniff(file.path()).unwrap(), Sniff::Mp4 { truncated: true });
    }

    #[test]
    fn text_and_containers_are_told_apart() {
        assert_eq!(
            sniff(write(b"milk, eggs and bread\n").path()).unwrap(),
            Sniff::Unknown
        );
        assert_eq!(
            sniff(write(&[0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0]).path()).unwrap(),
            Sniff::OtherContainer
        );
        assert_eq!(
            sniff(write(b"RIFF\0\0\0\0AVI LIST").path()).unwrap(),
            Sniff::OtherContainer
        );
    }
}
