//! Writing a training-data export (docs/export.md): the JSONL manifest,
//! WebDataset tar shards per split, and the dataset card.
//!
//! Events are read a page at a time (`db::export::page`), each becomes a
//! sample (`domain::export::sample`), and its members are streamed into the
//! open shard of its split: clips straight from blob storage, never whole in
//! memory. Memory is bounded by one page of events and the copy buffers,
//! whatever the size of the export. A shard is written as `<name>.partial`
//! and renamed (or uploaded) only when complete.

pub mod cli;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

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

/// A file being written, hashed and counted as it goes.
struct Out {
    name: String,
    partial: PathBuf,
    file: BufWriter<tokio::fs::File>,
    hash: Sha256,
    bytes: u64,
    samples: u64,
}

impl Out {
    async fn create(dir: &Path, name: &str) -> anyhow::Result<Out> {
        let partial = dir.join(format!("{name}.partial"));
        let file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Out {
            name: name.to_string(),
            partial,
            file: BufWriter::with_capacity(256 * 1024, file),
            hash: Sha256::new(),
            bytes: 0,
            samples: 0,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(bytes).await?;
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Pads the current tar member to a whole block.
    async fn pad(&mut self) -> anyhow::Result<()> {
        let rem = (self.bytes % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem]).await?;
        }
        Ok(())
    }

    async fn member(&mut self, name: &str, content: &[u8], mtime: i64) -> anyhow::Result<()> {
        let header = tar_header(name, content.len() as u64, mtime).map_err(anyhow::Error::msg)?;
        self.write(&header).await?;
        self.write(content).await?;
        self.pad().await
    }

    async fn finish(mut self, dest: &Destination) -> anyhow::Result<WrittenFile> {
        self.file.flush().await?;
        drop(self.file);
        dest.settle(&self.partial, &self.name).await?;
        Ok(WrittenFile {
            name: self.name,
            bytes: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
            samples: self.samples,
        })
    }
}

/// Runs an export of everything resolved at or before `as_of` that `spec`
/// keeps, into `dest`, calling `progress` after each page (an error from
/// it stops the export).
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
    let dir = dest.dir();
    tokio::fs::create_dir_all(dir).await?;
    let mut state = Progress {
        total: store::count(db, &spec.filter, as_of).await?,
        ..Progress::default()
    };
    progress(state).await?;
    let mut manifest = Out::create(dir, MANIFEST).await?;
    let mut shards = Shards::new(spec.shard_bytes);
    let mut open: Vec<(Split, Out)> = Vec::new();
    let mut files: Vec<WrittenFile> = Vec::new();
    let mut card = Card::default();
    let mut after: Option<String> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut reported = Instant::now();
    loop {
        let page = store::page(db, &spec.filter, as_of, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        state.looked_at += page.len() as u64;
        for mut facts in page {
            let videos = std::mem::take(&mut facts.clip_videos);
            let mtime = facts.resolved_at.div_euclid(1000);
            let mut s = sample(facts, &spec.split);
            if !spec.filter.keeps(&s) {
                continue;
            }
            // Name the clip members and learn their sizes.
            let mut members = Vec::new();
            for (i, (clip, video)) in s.clips.iter_mut().zip(&videos).enumerate() {
                let Some(key) = video.as_ref().filter(|_| spec.include_video) else {
                    continue;
                };
                let (size, stream) = blobs.open(key).await?;
                let name = clip_member(&s.key, i);
                clip.file = Some(name.clone());
                clip.bytes = Some(size);
                members.push((name, key.clone(), size, stream));
            }
            // Shard names have a fixed width, so the JSON's size is known
            // before the sample is placed.
            s.shard = Some(Shards::name(s.split, 0));
            let size = json_size(&s)?
                + members
                    .iter()
                    .map(|(_, _, n, _)| tar_member_bytes(*n))
                    .sum::<u64>();
            let placement = shards.place(s.split, size);
            // A full shard is closed (and uploaded) once this sample is
            // written: its clips are already open, and a long upload must
            // not keep their streams waiting.
            let mut closing = None;
            if let Some(name) = placement.closes {
                let at = open
                    .iter()
                    .position(|(_, o)| o.name == name)
                    .context("closing a shard that is not open")?;
                closing = Some(open.swap_remove(at).1);
            }
            s.shard = Some(placement.shard.clone());
            let shard = match open.iter().position(|(split, _)| *split == s.split) {
                Some(i) => &mut open[i].1,
                None => {
                    open.push((s.split, Out::create(dir, &placement.shard).await?));
                    &mut open.last_mut().expect("just pushed").1
                }
            };
            buf.clear();
            serde_json::to_writer(&mut buf, &s)?;
            shard.member(&json_member(&s.key), &buf, mtime).await?;
            for (name, key, size, stream) in members {
                copy_member(shard, stream, &name, &key, size, mtime).await?;
            }
            shard.samples += 1;
            buf.push(b'\n');
            manifest.write(&buf).await?;
            manifest.samples += 1;
            card.add(&s);
            state.samples += 1;
            if let Some(out) = closing {
                files.push(close_shard(out, dest).await?);
            }
            // Report at least every few seconds, also inside a page of
            // large clips (the job extends its lease on every report).
            if reported.elapsed() >= REPORT_EVERY {
                state.bytes = written_bytes(&manifest, &files, &open);
                progress(state).await?;
                reported = Instant::now();
            }
        }
        state.bytes = written_bytes(&manifest, &files, &open);
        progress(state).await?;
        reported = Instant::now();
    }
    // Shards in split order, then by number.
    open.sort_by_key(|(split, _)| *split);
    for (_, out) in open {
        files.push(close_shard(out, dest).await?);
    }
    files.sort_by_key(|f| shard_order(&f.name));
    let mut written = vec![manifest.finish(dest).await?];
    written.extend(files);
    let card_json = serde_json::to_vec_pretty(&card)?;
    let mut out = Out::create(dir, CARD_JSON).await?;
    out.write(&card_json).await?;
    out.samples = card.samples;
    written.push(out.finish(dest).await?);
    let md = card_markdown(spec, as_of, &card, &written);
    let mut out = Out::create(dir, CARD_MD).await?;
    out.write(md.as_bytes()).await?;
    out.samples = card.samples;
    written.push(out.finish(dest).await?);
    state.bytes = written.iter().map(|f| f.bytes).sum();
    progress(state).await?;
    Ok(Summary {
        files: written,
        card,
    })
}

fn written_bytes(manifest: &Out, files: &[WrittenFile], open: &[(Split, Out)]) -> u64 {
    manifest.bytes
        + files.iter().map(|f| f.bytes).sum::<u64>()
        + open.iter().map(|(_, o)| o.bytes).sum::<u64>()
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

async fn close_shard(mut out: Out, dest: &Destination) -> anyhow::Result<WrittenFile> {
    out.write(&[0u8; 1024]).await?;
    out.finish(dest).await
}

/// Streams a blob into a tar member; the blob must have the size its
/// header says.
async fn copy_member(
    out: &mut Out,
    mut stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    name: &str,
    key: &str,
    size: u64,
    mtime: i64,
) -> anyhow::Result<()> {
    let header = tar_header(name, size, mtime).map_err(anyhow::Error::msg)?;
    out.write(&header).await?;
    let mut copied = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading {key}"))?;
        copied += chunk.len() as u64;
        anyhow::ensure!(
            copied <= size,
            "clip video {key} grew while exported (more than {size} bytes)"
        );
        out.write(&chunk).await?;
    }
    anyhow::ensure!(
        copied == size,
        "clip video {key} changed size while exported ({copied} of {size} bytes)"
    );
    out.pad().await
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
    let _ = writeln!(
        md,
        "| occurred | from {} to {} |",
        time(f.from_ms),
        time(f.to_ms)
    );
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
        spec.split.train,
        spec.split.validation,
        (1.0 - spec.split.train - spec.split.validation).max(0.0)
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
