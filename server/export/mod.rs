//! Writing a training-data export (docs/export.md): the JSONL manifest,
//! WebDataset tar shards per split, and the dataset card.
//!
//! Events are read a page at a time (`db::export::page`), each becomes a
//! sample (`domain::export::sample`), and its members are copied into the
//! open shard of its split: clips from the blob directory (or, for a remote
//! blob store, downloaded one sample at a time), never whole in memory.
//! Samples are written in batches inside one blocking task each, so a small
//! clip costs a few system calls, not a round trip through the runtime.
//! Memory is bounded by one page of events and the copy buffers, whatever
//! the size of the export. A file is written as `<name>.partial` and renamed
//! (or uploaded) only when complete.

pub mod cli;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::db::export::{self as store, WrittenFile};
use crate::db::Db;
use crate::domain::export::{
    clip_member, json_member, sample, tar_header, tar_member_bytes, Card, ExportSpec, Sample,
    Shards, Split,
};
use crate::domain::time::format_rfc3339_ms;
use crate::storage::Blobs;

/// Events read per page.
pub const PAGE: usize = 500;
/// Longest time between two progress reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.jsonl";
/// The dataset card, for people.
pub const CARD_MD: &str = "dataset-card.md";
/// The dataset card, for programs.
pub const CARD_JSON: &str = "dataset-card.json";

/// Where finished files go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A local directory (the CLI): files are written in place.
    Dir(PathBuf),
    /// Blob storage under `exports/<id>/` (the API's background job): files
    /// are written to a scratch directory, uploaded when complete and
    /// removed, so local disk holds at most the open shards.
    Blobs {
        /// The blob store.
        blobs: Blobs,
        /// The export's id.
        export_id: String,
        /// A scratch directory of this export's own.
        scratch: PathBuf,
    },
}

impl Destination {
    fn dir(&self) -> &Path {
        match self {
            Destination::Dir(d) => d,
            Destination::Blobs { scratch, .. } => scratch,
        }
    }

    /// Makes a completed local file final: renamed into place, or uploaded.
    async fn settle(&self, partial: &Path, name: &str) -> anyhow::Result<()> {
        match self {
            Destination::Dir(dir) => {
                let file = tokio::fs::File::open(partial).await?;
                file.sync_all().await?;
                tokio::fs::rename(partial, dir.join(name))
                    .await
                    .with_context(|| format!("renaming {}", partial.display()))?;
            }
            Destination::Blobs {
                blobs, export_id, ..
            } => {
                blobs
                    .put_file(&store::blob_key(export_id, name), partial)
                    .await?;
                tokio::fs::remove_file(partial).await?;
            }
        }
        Ok(())
    }
}

/// Where an export stands, reported after every page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events looked at.
    pub looked_at: u64,
    /// Events the database conditions keep (known after the first count).
    pub total: u64,
    /// Samples written.
    pub samples: u64,
    /// Bytes written so far.
    pub bytes: u64,
}

/// What a finished export wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every file, manifest first, then shards in order, then the card.
    pub files: Vec<WrittenFile>,
    /// The card's counts.
    pub card: Card,
}

impl Summary {
    /// Bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// A file being written, hashed and counted as it goes. Written with
/// blocking I/O, inside `spawn_blocking` (see [`Writer`]).
struct Out {
    name: String,
    partial: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    bytes: u64,
    samples: u64,
}

/// A complete file, flushed, waiting to be made final
/// ([`Destination::settle`]).
struct Closed {
    partial: PathBuf,
    file: WrittenFile,
}

impl Out {
    fn create(dir: &Path, name: &str) -> anyhow::Result<Out> {
        let partial = dir.join(format!("{name}.partial"));
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Out {
            name: name.to_string(),
            partial,
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            hash: Sha256::new(),
            bytes: 0,
            samples: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(bytes)?;
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Pads the current tar member to a whole block.
    fn pad(&mut self) -> anyhow::Result<()> {
        let rem = (self.bytes % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    fn member(&mut self, name: &str, content: &[u8], mtime: i64) -> anyhow::Result<()> {
        let header = tar_header(name, content.len() as u64, mtime).map_err(anyhow::Error::msg)?;
        self.write(&header)?;
        self.write(content)?;
        self.pad()
    }

    /// Copies a file of `size` bytes in as a tar member; it must have the
    /// size its header says.
    fn copy_member(
        &mut self,
        file: std::fs::File,
        name: &str,
        size: u64,
        mtime: i64,
    ) -> anyhow::Result<()> {
        let header = tar_header(name, size, mtime).map_err(anyhow::Error::msg)?;
        self.write(&header)?;
        let mut reader = std::io::Read::take(file, size);
        let mut buf = [0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            self.write(&buf[..n])?;
        }
        anyhow::ensure!(
            copied == size,
            "clip {name} changed size while exported ({copied} of {size} bytes)"
        );
        self.pad()
    }

    fn close(mut self) -> anyhow::Result<Closed> {
        self.file.flush()?;
        Ok(Closed {
            file: WrittenFile {
                name: self.name,
                bytes: self.bytes,
                sha256: hex::encode(self.hash.finalize()),
                samples: self.samples,
            },
            partial: self.partial,
        })
    }
}

impl Closed {
    async fn settle(self, dest: &Destination) -> anyhow::Result<WrittenFile> {
        dest.settle(&self.partial, &self.file.name).await?;
        Ok(self.file)
    }
}

/// A clip of a sample on local disk: in the blob directory, or downloaded
/// to the scratch directory first (`temporary`, removed once copied).
struct ClipFile {
    position: usize,
    path: PathBuf,
    temporary: bool,
}

/// A sample ready for the shards.
struct Ready {
    sample: Sample,
    clips: Vec<ClipFile>,
    mtime: i64,
}

/// The state of the files being written. Moved into a blocking task for a
/// batch of samples and back, so writing a sample costs no hop between the
/// runtime and the blocking pool of its own.
struct Writer {
    dir: PathBuf,
    manifest: Out,
    shards: Shards,
    open: Vec<(Split, Out)>,
    /// Full shards, flushed, for the async side to make final.
    closed: Vec<Closed>,
    card: Card,
    buf: Vec<u8>,
}

impl Writer {
    fn write(&mut self, r: Ready) -> anyhow::Result<()> {
        let Ready {
            sample: mut s,
            clips,
            mtime,
        } = r;
        // Name the clip members and learn their sizes.
        let mut members = Vec::with_capacity(clips.len());
        for c in &clips {
            let file = std::fs::File::open(&c.path)
                .with_context(|| format!("opening {}", c.path.display()))?;
            let size = file.metadata()?.len();
            let name = clip_member(&s.key, c.position);
            let clip = &mut s.clips[c.position];
            clip.file = Some(name.clone());
            clip.bytes = Some(size);
            members.push((name, file, size));
        }
        // Shard names have a fixed width, so the JSON's size is known
        // before the sample is placed.
        s.shard = Some(Shards::name(s.split, 0));
        let size = json_size(&s)?
            + members
                .iter()
                .map(|(_, _, n)| tar_member_bytes(*n))
                .sum::<u64>();
        let placement = self.shards.place(s.split, size);
        if let Some(name) = placement.closes {
            let at = self
                .open
                .iter()
                .position(|(_, o)| o.name == name)
                .context("closing a shard that is not open")?;
            let (_, mut out) = self.open.swap_remove(at);
            out.write(&[0u8; 1024])?;
            self.closed.push(out.close()?);
        }
        s.shard = Some(placement.shard.clone());
        let at = match self.open.iter().position(|(split, _)| *split == s.split) {
            Some(i) => i,
            None => {
                self.open
                    .push((s.split, Out::create(&self.dir, &placement.shard)?));
                self.open.len() - 1
            }
        };
        let shard = &mut self.open[at].1;
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &s)?;
        shard.member(&json_member(&s.key), &self.buf, mtime)?;
        for (name, file, size) in members {
            shard.copy_member(file, &name, size, mtime)?;
        }
        shard.samples += 1;
        self.buf.push(b'\n');
        self.manifest.write(&self.buf)?;
        self.manifest.samples += 1;
        self.card.add(&s);
        for c in clips.iter().filter(|c| c.temporary) {
            std::fs::remove_file(&c.path)?;
        }
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.manifest.bytes + self.open.iter().map(|(_, o)| o.bytes).sum::<u64>()
    }
}

/// Writes a batch of samples in one blocking task; returns the writer.
async fn write_batch(mut writer: Writer, batch: Vec<Ready>) -> anyhow::Result<Writer> {
    tokio::task::spawn_blocking(move || {
        for r in batch {
            writer.write(r)?;
        }
        Ok(writer)
    })
    .await?
}

/// Most samples written in one blocking task: big clips still report
/// progress every few seconds.
const BATCH: usize = 64;

/// Runs an export of everything resolved at or before `as_of` that `spec`
/// keeps, into `dest`, calling `progress` after each page and at least every
/// few seconds (an error from it stops the export).
pub async fn run<F, Fut>(
    db: &Db,
    blobs: &Blobs,
    spec: &ExportSpec,
    as_of: i64,
    dest: &Destination,
    mut progress: F,
) -> anyhow::Result<Summary>
where
    F: FnMut(Progress) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let dir = dest.dir().to_path_buf();
    tokio::fs::create_dir_all(&dir).await?;
    // Clips of a remote blob store are fetched here one sample at a time.
    let downloads = dir.join(".clips");
    let mut state = Progress {
        total: store::count(db, &spec.filter, as_of).await?,
        ..Progress::default()
    };
    progress(state).await?;
    let manifest = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Out::create(&dir, MANIFEST)).await??
    };
    let mut writer = Writer {
        dir: dir.clone(),
        manifest,
        shards: Shards::new(spec.shard_bytes),
        open: Vec::new(),
        closed: Vec::new(),
        card: Card::default(),
        buf: Vec::with_capacity(4096),
    };
    let mut files: Vec<WrittenFile> = Vec::new();
    let mut after: Option<String> = None;
    let mut reported = Instant::now();
    loop {
        // Each page in a short read transaction of its own: one snapshot
        // for its statements, none held while shards are written.
        let mut snapshot = db.begin_snapshot().await?;
        let page = store::page(&mut snapshot, &spec.filter, as_of, after.as_deref(), PAGE).await?;
        snapshot.commit().await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        state.looked_at += page.len() as u64;
        let mut batch: Vec<Ready> = Vec::new();
        let mut facts = page.into_iter().peekable();
        while let Some(mut f) = facts.next() {
            let videos = std::mem::take(&mut f.clip_videos);
            let mtime = f.resolved_at.div_euclid(1000);
            let s = sample(f, &spec.split);
            if spec.filter.keeps(&s) {
                let clips = clip_files(blobs, spec, &s.key, &videos, &downloads).await?;
                batch.push(Ready {
                    sample: s,
                    clips,
                    mtime,
                });
            }
            // Downloaded clips take disk: such a sample is written at once.
            let downloaded = batch
                .last()
                .is_some_and(|r| r.clips.iter().any(|c| c.temporary));
            let page_done = facts.peek().is_none();
            if batch.is_empty() || !(downloaded || page_done || batch.len() >= BATCH) {
                continue;
            }
            writer = write_batch(writer, std::mem::take(&mut batch)).await?;
            state.samples = writer.card.samples;
            for closed in std::mem::take(&mut writer.closed) {
                files.push(closed.settle(dest).await?);
            }
            if reported.elapsed() >= REPORT_EVERY {
                state.bytes = writer.bytes() + files.iter().map(|f| f.bytes).sum::<u64>();
                progress(state).await?;
                reported = Instant::now();
            }
        }
        state.bytes = writer.bytes() + files.iter().map(|f| f.bytes).sum::<u64>();
        progress(state).await?;
        reported = Instant::now();
    }
    let Writer {
        manifest,
        mut open,
        card,
        ..
    } = writer;
    // Shards in split order, then by number.
    open.sort_by_key(|(split, _)| *split);
    let closing = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Closed>> {
        let mut closed = Vec::new();
        for (_, mut out) in open {
            out.write(&[0u8; 1024])?;
            closed.push(out.close()?);
        }
        closed.push(manifest.close()?);
        Ok(closed)
    })
    .await??;
    let mut manifest_file = None;
    for closed in closing {
        let is_manifest = closed.file.name == MANIFEST;
        let file = closed.settle(dest).await?;
        if is_manifest {
            manifest_file = Some(file);
        } else {
            files.push(file);
        }
    }
    files.sort_by_key(|f| shard_order(&f.name));
    let mut written = vec![manifest_file.context("the manifest was not written")?];
    written.extend(files);
    let card_json = serde_json::to_vec_pretty(&card)?;
    written.push(small_file(&dir, CARD_JSON, card_json, card.samples, dest).await?);
    let md = card_markdown(spec, as_of, &card, &written);
    written.push(small_file(&dir, CARD_MD, md.into_bytes(), card.samples, dest).await?);
    let _ = tokio::fs::remove_dir(&downloads).await;
    state.bytes = written.iter().map(|f| f.bytes).sum();
    progress(state).await?;
    Ok(Summary {
        files: written,
        card,
    })
}

/// Where the clips of a sample are on local disk: in the blob directory, or
/// downloaded from a remote blob store into `downloads`.
async fn clip_files(
    blobs: &Blobs,
    spec: &ExportSpec,
    key: &str,
    videos: &[Option<String>],
    downloads: &Path,
) -> anyhow::Result<Vec<ClipFile>> {
    let mut clips = Vec::new();
    if !spec.include_video {
        return Ok(clips);
    }
    for (position, video) in videos.iter().enumerate() {
        let Some(blob) = video else {
            continue;
        };
        clips.push(match blobs.local_path(blob) {
            Some(path) => ClipFile {
                position,
                path,
                temporary: false,
            },
            None => {
                tokio::fs::create_dir_all(downloads).await?;
                let path = downloads.join(format!("{key}-{position}"));
                blobs.download(blob, &path).await?;
                ClipFile {
                    position,
                    path,
                    temporary: true,
                }
            }
        });
    }
    Ok(clips)
}

/// Writes a small file whole and makes it final.
async fn small_file(
    dir: &Path,
    name: &'static str,
    content: Vec<u8>,
    samples: u64,
    dest: &Destination,
) -> anyhow::Result<WrittenFile> {
    let dir = dir.to_path_buf();
    let closed = tokio::task::spawn_blocking(move || {
        let mut out = Out::create(&dir, name)?;
        out.write(&content)?;
        out.samples = samples;
        out.close()
    })
    .await??;
    closed.settle(dest).await
}

fn shard_order(name: &str) -> (usize, String) {
    let split = Split::ALL
        .iter()
        .position(|s| name.starts_with(&format!("{}-", s.as_str())))
        .unwrap_or(0);
    (split, name.to_string())
}

fn json_size(s: &Sample) -> anyhow::Result<u64> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, s)?;
    Ok(tar_member_bytes(counter.0))
}

/// Counts bytes written to it.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A share as people write it (0.1, not 0.09999999999999995).
fn share(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The dataset card for people: what is in it, how it was chosen, how it
/// is split, and the files.
pub fn card_markdown(spec: &ExportSpec, as_of: i64, card: &Card, files: &[WrittenFile]) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let f = &spec.filter;
    let list = |v: &[String]| {
        if v.is_empty() {
            "any".to_string()
        } else {
            v.join(", ")
        }
    };
    let time = |t: Option<i64>| t.map(format_rfc3339_ms).unwrap_or_else(|| "—".into());
    let _ = writeln!(md, "# Recount training data\n");
    let _ = writeln!(
        md,
        "{} samples ({} hard examples: the final label differs from the model's top guess), \
         events resolved by {}.\n",
        card.samples,
        card.hard,
        format_rfc3339_ms(as_of)
    );
    let _ = writeln!(md, "## How the samples were chosen\n");
    let _ = writeln!(md, "| condition | value |\n|---|---|");
    let _ = writeln!(md, "| stores | {} |", list(&f.stores));
    let occurred = match (f.from_ms, f.to_ms) {
        (None, None) => "any time".to_string(),
        (from, to) => format!("from {} to {}", time(from), time(to)),
    };
    let _ = writeln!(md, "| occurred | {occurred} |");
    let _ = writeln!(md, "| model versions | {} |", list(&f.model_versions));
    let resolutions: Vec<String> = f.resolutions.iter().map(|r| r.as_str().into()).collect();
    let _ = writeln!(md, "| resolutions | {} |", list(&resolutions));
    let _ = writeln!(
        md,
        "| minimum agreement | {} |",
        f.min_agreement
            .map(|a| format!("{a}"))
            .unwrap_or_else(|| "—".into())
    );
    let _ = writeln!(md, "| hard examples only | {} |", f.hard_only);
    let _ = writeln!(md, "| clips included | {} |", spec.include_video);
    let _ = writeln!(
        md,
        "\nOnly stores that allow their data to be used for training are ever exported.\n"
    );
    let _ = writeln!(md, "## Split\n");
    let _ = writeln!(
        md,
        "By shopper session (no session spans two splits): SHA-256 of seed {:?}, store and \
         session; train {} / validation {} / test {}.\n",
        spec.split.seed,
        share(spec.split.train),
        share(spec.split.validation),
        share((1.0 - spec.split.train - spec.split.validation).max(0.0))
    );
    let table = |md: &mut String, title: &str, m: &std::collections::BTreeMap<String, u64>| {
        let _ = writeln!(md, "## {title}\n\n| | samples |\n|---|---:|");
        let mut rows: Vec<(&String, &u64)> = m.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (k, n) in rows.iter().take(100) {
            let k = if k.is_empty() { "(none)" } else { k.as_str() };
            let _ = writeln!(md, "| {k} | {n} |");
        }
        if rows.len() > 100 {
            let rest: u64 = rows[100..].iter().map(|(_, n)| **n).sum();
            let _ = writeln!(md, "| {} more | {rest} |", rows.len() - 100);
        }
        let _ = writeln!(md);
    };
    table(&mut md, "Per split", &card.splits);
    table(&mut md, "Per store", &card.stores);
    table(&mut md, "Per resolution", &card.resolutions);
    table(&mut md, "Per model version", &card.model_versions);
    table(&mut md, "Per label", &card.labels);
    let _ = writeln!(
        md,
        "## Files\n\n{} clips in the shards, {} listed without video.\n\n\
         | file | samples | bytes | sha256 |\n|---|---:|---:|---|",
        card.clips, card.clips_missing
    );
    for file in files {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            file.name, file.samples, file.bytes, file.sha256
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_reads_as_people_write() {
        let spec = ExportSpec::default();
        let md = card_markdown(&spec, 0, &Card::default(), &[]);
        assert!(
            md.contains("train 0.8 / validation 0.1 / test 0.1."),
            "{md}"
        );
        assert!(md.contains("| occurred | any time |"), "{md}");
        let mut spec = ExportSpec::default();
        spec.filter.from_ms = Some(1_795_600_800_000);
        let md = card_markdown(&spec, 0, &Card::default(), &[]);
        assert!(
            md.contains("| occurred | from 2026-11-25T10:00:00.000Z to — |"),
            "{md}"
        );
    }
}
