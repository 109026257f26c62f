//! Training-data export rules (docs/export.md): which resolved events an
//! export keeps, the split each shopper session falls in, what one sample
//! says, where it goes among the shards, and the dataset card's counts.
//!
//! Everything here is decided from values: the database layer feeds events
//! in, the writer (`recount::export`) puts the decisions on disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::label::Label;
use super::rollup::model_right;

/// Default shard size: big enough that a reader streams, small enough that
/// a training job spreads shards over its workers.
pub const DEFAULT_SHARD_BYTES: u64 = 256 * 1024 * 1024;
/// Smallest shard size accepted (a shard still holds at least one sample
/// whatever its size).
pub const MIN_SHARD_BYTES: u64 = 64 * 1024;
/// Largest shard size a spec may ask for (1 TiB): anything larger is no
/// limit at all, and beyond `i64` it could not be stored.
pub const MAX_SHARD_BYTES: u64 = 1 << 40;
/// Default split seed.
pub const DEFAULT_SEED: &str = "recount";

/// How an event got its final label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Confident enough to be taken without a human.
    Auto,
    /// Labelers agreed.
    Human,
    /// A supervisor decided (disagreement, "can't tell").
    Supervisor,
}

impl Resolution {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Auto => "auto",
            Resolution::Human => "human",
            Resolution::Supervisor => "supervisor",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Resolution> {
        match s {
            "auto" => Some(Resolution::Auto),
            "human" => Some(Resolution::Human),
            "supervisor" => Some(Resolution::Supervisor),
            _ => None,
        }
    }
}

/// Which part of the dataset a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// For fitting.
    Train,
    /// For choosing between models while training.
    Validation,
    /// For the final measurement, touched once.
    Test,
}

impl Split {
    /// All splits, in shard order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The spelling in file names and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// The shares of the splits and the seed that places sessions among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SplitPlan {
    /// Share of sessions in `train` (default 0.8); with `validation`, at
    /// most 1.
    #[schema(minimum = 0, maximum = 1)]
    pub train: f64,
    /// Share of sessions in `validation` (default 0.1); `test` gets the rest.
    #[schema(minimum = 0, maximum = 1)]
    pub validation: f64,
    /// Any text of at most 200 characters: the same seed always puts a
    /// session in the same split; another seed draws a new, independent
    /// split.
    #[schema(max_length = 200)]
    pub seed: String,
}

impl Default for SplitPlan {
    fn default() -> Self {
        SplitPlan {
            train: 0.8,
            validation: 0.1,
            seed: DEFAULT_SEED.into(),
        }
    }
}

impl SplitPlan {
    /// Why the plan cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let share = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !share(self.train) || !share(self.validation) || self.train + self.validation > 1.0 {
            return Err(
                "split shares must be between 0 and 1 and train + validation at most 1".into(),
            );
        }
        if self.seed.chars().count() > 200 {
            return Err("the split seed is longer than 200 characters".into());
        }
        Ok(())
    }

    /// The split of a shopper session: every event of a session lands in
    /// the same split, so a model is never tested on a shopper it saw while
    /// training. The draw is SHA-256 of the seed, store and session, read
    /// as a number in [0, 1): stable across runs, machines and versions,
    /// and independent of which other sessions an export holds.
    pub fn split_of(&self, store_id: &str, session_id: &str) -> Split {
        let mut h = Sha256::new();
        for part in [&self.seed, store_id, session_id] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 bits: exactly representable as f64, uniform in [0, 1).
        let u = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.train {
            Split::Train
        } else if u < self.train + self.validation {
            Split::Validation
        } else {
            Split::Test
        }
    }
}

/// Which resolved events an export keeps. Every condition given must hold;
/// an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Store ids (each must allow training use), at most 1000.
    #[schema(max_items = 1000)]
    pub stores: Vec<String>,
    /// Events that occurred at or after this time (epoch ms).
    #[serde(deserialize_with = "super::whole::optional")]
    pub from_ms: Option<i64>,
    /// Events that occurred before this time (epoch ms); after `from_ms`.
    #[serde(deserialize_with = "super::whole::optional")]
    pub to_ms: Option<i64>,
    /// Model versions that made the prediction, at most 1000.
    #[schema(max_items = 1000)]
    pub model_versions: Vec<String>,
    /// How the final label was reached.
    pub resolutions: Vec<Resolution>,
    /// Only events with at least one verdict whose share of verdicts
    /// agreeing with the final label is at least this (0 to 1).
    #[schema(minimum = 0, maximum = 1)]
    pub min_agreement: Option<f64>,
    /// Only events whose final label differs from the model's top guess.
    pub hard_only: bool,
}

impl Filter {
    /// Why the filter cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms) {
            if from >= to {
                return Err("from_ms must be before to_ms".into());
            }
        }
        if let Some(a) = self.min_agreement {
            if !(a.is_finite() && (0.0..=1.0).contains(&a)) {
                return Err("min_agreement must be between 0 and 1".into());
            }
        }
        if self.stores.len() > 1000 || self.model_versions.len() > 1000 {
            return Err("at most 1000 stores and 1000 model versions".into());
        }
        Ok(())
    }

    /// The conditions the database cannot check by itself (they need the
    /// verdicts and the label comparison).
    pub fn keeps(&self, sample: &Sample) -> bool {
        if self.hard_only && !sample.hard {
            return false;
        }
        match self.min_agreement {
            Some(min) => sample.agreement.is_some_and(|a| a >= min - 1e-12),
            None => true,
        }
    }
}

/// Everything an export is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSpec {
    /// Which events.
    pub filter: Filter,
    /// How sessions are split.
    pub split: SplitPlan,
    /// Largest tar shard in bytes (a single larger sample gets a shard of
    /// its own): 64 KiB to 1 TiB, default 256 MiB.
    #[serde(deserialize_with = "super::whole::number")]
    #[schema(minimum = 65_536, maximum = 1_099_511_627_776_u64)]
    pub shard_bytes: u64,
    /// Whether the shards carry the clips (true) or only the samples' JSON.
    pub include_video: bool,
}

impl Default for ExportSpec {
    fn default() -> Self {
        ExportSpec {
            filter: Filter::default(),
            split: SplitPlan::default(),
            shard_bytes: DEFAULT_SHARD_BYTES,
            include_video: true,
        }
    }
}

impl ExportSpec {
    /// Whether a person covering `scope` may see an export of this spec:
    /// one that names no store reads every store, so only those who cover
    /// every store see it.
    pub fn visible_to(&self, scope: &super::scope::Scope) -> bool {
        scope.is_all()
            || (!self.filter.stores.is_empty() && self.filter.stores.iter().all(|s| scope.sees(s)))
    }

    /// Why the spec cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.filter.validate()?;
        self.split.validate()?;
        if !(MIN_SHARD_BYTES..=MAX_SHARD_BYTES).contains(&self.shard_bytes) {
            return Err(format!(
                "shard_bytes must be between {MIN_SHARD_BYTES} and {MAX_SHARD_BYTES}"
            ));
        }
        Ok(())
    }
}

/// One candidate of the model's prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Product.
    pub sku: String,
    /// The model's confidence, 0 to 1.
    pub confidence: f64,
}

/// A clip of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleClip {
    /// The clip's id in Recount.
    pub clip_id: String,
    /// The store's camera.
    pub camera_id: String,
    /// The member of the sample in its shard (`<key>.cam<N>.mp4`), or
    /// `null` when the shard carries no video for it (the clip failed, or
    /// the export was asked without video).
    pub file: Option<String>,
    /// Bytes of that member.
    pub bytes: Option<u64>,
    /// The time the clip covers, epoch ms (when known).
    pub window_from_ms: Option<i64>,
    /// End of that time, epoch ms (when known).
    pub window_to_ms: Option<i64>,
    /// Where the event happened inside the clip, in ms from its start.
    pub event_offset_ms: Option<i64>,
    /// Duration, width, height and frame rate of the processed video.
    pub duration_ms: Option<i64>,
    /// Pixels.
    pub width: Option<i64>,
    /// Pixels.
    pub height: Option<i64>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
}

/// The model's prediction of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The model version the store sent, if it did.
    pub model_version: Option<String>,
    /// The event kind the model saw (`pick` or `return`).
    pub kind: String,
    /// The quantity the model saw.
    pub quantity: i64,
    /// Candidates with confidences, as sent.
    pub candidates: Vec<Candidate>,
    /// The most confident candidate.
    pub top_sku: Option<String>,
    /// Its confidence.
    pub top_confidence: Option<f64>,
}

/// One line of the manifest, and the `.json` member of a sample in its
/// shard (docs/export.md, field by field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The sample's WebDataset key: the event's Recount id (no dots).
    pub key: String,
    /// The store's own event id.
    pub event_id: String,
    /// Store.
    pub store_id: String,
    /// Shopper session.
    pub session_id: String,
    /// When it happened, RFC 3339.
    pub occurred_at: String,
    /// The same, epoch ms.
    pub occurred_at_ms: i64,
    /// When its label became final, epoch ms.
    pub resolved_at_ms: i64,
    /// The time all of its clips cover, epoch ms.
    pub window: Option<Window>,
    /// Its clips, in the order the store sent them.
    pub clips: Vec<SampleClip>,
    /// What the model said.
    pub prediction: Prediction,
    /// The final label.
    pub label: Label,
    /// How the label was reached.
    pub resolution: Resolution,
    /// Why it went to review (`null` when auto-accepted).
    pub review_reason: Option<String>,
    /// Verdicts given.
    pub verdicts: u64,
    /// Share of verdicts that gave the final label (`null` without verdicts).
    pub agreement: Option<f64>,
    /// Drawn for the audit sample (a confident event checked by people).
    pub audit: bool,
    /// Kept by a supervisor as a gold task.
    pub gold: bool,
    /// The final label differs from the model's top guess.
    pub hard: bool,
    /// `train`, `validation` or `test`.
    pub split: Split,
    /// The shard holding it (file name), `null` in a manifest-only listing.
    pub shard: Option<String>,
}

/// A span of time, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start.
    pub from_ms: i64,
    /// End.
    pub to_ms: i64,
}

/// A resolved event as stored, with what the export needs beside it.
#[derive(Debug, Clone)]
pub struct EventFacts {
    /// Recount's event id.
    pub id: String,
    /// The store's event id.
    pub event_id: String,
    /// Store.
    pub store_id: String,
    /// Session.
    pub session_id: String,
    /// `pick` or `return`.
    pub kind: String,
    /// Quantity the model saw.
    pub quantity: i64,
    /// When it happened.
    pub occurred_at: i64,
    /// When it was resolved.
    pub resolved_at: i64,
    /// Model version.
    pub model_version: Option<String>,
    /// Candidates.
    pub candidates: Vec<Candidate>,
    /// Top candidate.
    pub top_sku: Option<String>,
    /// Its confidence.
    pub top_confidence: Option<f64>,
    /// Review reason, when reviewed.
    pub review_reason: Option<String>,
    /// Final label.
    pub label: Label,
    /// How it was resolved.
    pub resolution: Resolution,
    /// Each verdict's answer (`None` for "can't tell").
    pub verdicts: Vec<Option<Label>>,
    /// Source of a gold task.
    pub gold: bool,
    /// Its clips (files not yet named).
    pub clips: Vec<SampleClip>,
    /// Beside each clip, where its playable video is stored (an opaque
    /// key for the writer; `None` when the clip has no video).
    pub clip_videos: Vec<Option<String>>,
}

/// Share of verdicts giving `label` (a "can't tell" never agrees); `None`
/// with fewer than two verdicts: one verdict is the label it settled, and
/// would agree with itself.
pub fn agreement(label: &Label, verdicts: &[Option<Label>]) -> Option<f64> {
    if verdicts.len() < 2 {
        return None;
    }
    let agreeing = verdicts
        .iter()
        .filter(|v| v.as_ref() == Some(label))
        .count();
    Some(agreeing as f64 / verdicts.len() as f64)
}

/// The manifest line of an event, with its split decided and no shard yet.
pub fn sample(facts: EventFacts, plan: &SplitPlan) -> Sample {
    let hard = !model_right(
        &facts.kind,
        facts.top_sku.as_deref(),
        facts.quantity,
        &facts.label,
    );
    let window = facts
        .clips
        .iter()
        .filter_map(|c| Some((c.window_from_ms?, c.window_to_ms?)))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        .map(|(from_ms, to_ms)| Window { from_ms, to_ms });
    Sample {
        split: plan.split_of(&facts.store_id, &facts.session_id),
        key: facts.id,
        event_id: facts.event_id,
        store_id: facts.store_id,
        session_id: facts.session_id,
        occurred_at: super::time::format_rfc3339_ms(facts.occurred_at),
        occurred_at_ms: facts.occurred_at,
        resolved_at_ms: facts.resolved_at,
        window,
        clips: facts.clips,
        prediction: Prediction {
            model_version: facts.model_version,
            kind: facts.kind,
            quantity: facts.quantity,
            candidates: facts.candidates,
            top_sku: facts.top_sku,
            top_confidence: facts.top_confidence,
        },
        agreement: agreement(&facts.label, &facts.verdicts),
        verdicts: facts.verdicts.len() as u64,
        label: facts.label,
        resolution: facts.resolution,
        audit: facts.review_reason.as_deref() == Some("audit-sample"),
        review_reason: facts.review_reason,
        gold: facts.gold,
        hard,
        shard: None,
    }
}

/// The name of a sample's clip member: WebDataset groups a shard's members
/// by the part of the name before the first dot, so the key has none.
pub fn clip_member(key: &str, position: usize) -> String {
    format!("{key}.cam{position}.mp4")
}

/// The name of a sample's JSON member.
pub fn json_member(key: &str) -> String {
    format!("{key}.json")
}

/// Size of a tar member with `content` bytes: a 512-byte header and the
/// content padded to 512.
pub fn tar_member_bytes(content: u64) -> u64 {
    512 + content.div_ceil(512) * 512
}

/// Bytes that close a tar archive (two zero blocks).
pub const TAR_END_BYTES: u64 = 1024;

/// Places samples into shards: one sequence of shards per split
/// (`train-000000.tar`, …), a new shard when the next sample would push
/// the current one past the limit.
#[derive(Debug, Clone)]
pub struct Shards {
    limit: u64,
    open: BTreeMap<Split, (u32, u64)>,
}

/// Where [`Shards::place`] put a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The shard's file name.
    pub shard: String,
    /// The shard this sample closes, when it starts a new one.
    pub closes: Option<String>,
}

impl Shards {
    /// Shards of at most `limit` bytes (closing blocks included).
    pub fn new(limit: u64) -> Shards {
        Shards {
            limit,
            open: BTreeMap::new(),
        }
    }

    /// The file name of shard `n` of a split.
    pub fn name(split: Split, n: u32) -> String {
        format!("{}-{n:06}.tar", split.as_str())
    }

    /// Puts a sample of `bytes` (its tar members) into its split's shard.
    pub fn place(&mut self, split: Split, bytes: u64) -> Placement {
        match self.open.get_mut(&split) {
            None => {
                self.open.insert(split, (0, bytes));
                Placement {
                    shard: Shards::name(split, 0),
                    closes: None,
                }
            }
            Some((n, used)) if *used + bytes + TAR_END_BYTES > self.limit && *used > 0 => {
                let closes = Shards::name(split, *n);
                *n += 1;
                *used = bytes;
                Placement {
                    shard: Shards::name(split, *n),
                    closes: Some(closes),
                }
            }
            Some((n, used)) => {
                *used += bytes;
                Placement {
                    shard: Shards::name(split, *n),
                    closes: None,
                }
            }
        }
    }

    /// The shards still open, in split order.
    pub fn open_shards(&self) -> Vec<String> {
        self.open
            .iter()
            .map(|(split, (n, _))| Shards::name(*split, *n))
            .collect()
    }
}

/// The counts of the dataset card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Samples.
    pub samples: u64,
    /// Hard examples among them.
    pub hard: u64,
    /// Samples per split.
    pub splits: BTreeMap<String, u64>,
    /// Samples per store.
    pub stores: BTreeMap<String, u64>,
    /// Samples per resolution.
    pub resolutions: BTreeMap<String, u64>,
    /// Samples per final label (`pick sku ×1`, `none`).
    pub labels: BTreeMap<String, u64>,
    /// Samples per model version (`` when none was sent).
    pub model_versions: BTreeMap<String, u64>,
    /// Clips written into the shards.
    pub clips: u64,
    /// Clips listed without a file (failed, or video not asked for).
    pub clips_missing: u64,
}

impl Card {
    /// Counts one sample.
    pub fn add(&mut self, s: &Sample) {
        self.samples += 1;
        self.hard += u64::from(s.hard);
        *self.splits.entry(s.split.as_str().into()).or_default() += 1;
        *self.stores.entry(s.store_id.clone()).or_default() += 1;
        *self
            .resolutions
            .entry(s.resolution.as_str().into())
            .or_default() += 1;
        *self.labels.entry(label_name(&s.label)).or_default() += 1;
        *self
            .model_versions
            .entry(s.prediction.model_version.clone().unwrap_or_default())
            .or_default() += 1;
        for c in &s.clips {
            if c.file.is_some() {
                self.clips += 1;
            } else {
                self.clips_missing += 1;
            }
        }
    }
}

/// A label as the card names it: `pick 4006381333931 ×1`, `none`.
pub fn label_name(l: &Label) -> String {
    match &l.sku {
        Some(sku) => format!("{} {sku} ×{}", l.action.as_str(), l.quantity),
        None => l.action.as_str().to_string(),
    }
}

/// The ustar header of a regular file member: `name` (at most 100 bytes,
/// ASCII), `size` bytes, modified at `mtime` (epoch seconds), mode 0644.
pub fn tar_header(name: &str, size: u64, mtime: i64) -> Result<[u8; 512], String> {
    if name.len() > 100 || !name.is_ascii() || name.is_empty() {
        return Err(format!("tar member name {name:?} is not 1–100 ASCII bytes"));
    }
    if size >= 1 << 33 {
        return Err(format!("tar member {name:?} is over 8 GiB"));
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, mtime.max(0) as u64);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn facts() -> EventFacts {
        EventFacts {
            id: "01936c3e-0000-7000-8000-000000000001".into(),
            event_id: "ev-1".into(),
            store_id: "store-a".into(),
            session_id: "sess-1".into(),
            kind: "pick".into(),
            quantity: 1,
            occurred_at: 1_795_601_730_123,
            resolved_at: 1_795_601_790_000,
            model_version: Some("m-1".into()),
            candidates: vec![Candidate {
                sku: "A".into(),
                confidence: 0.6,
            }],
            top_sku: Some("A".into()),
            top_confidence: Some(0.6),
            review_reason: Some("low-confidence".into()),
            label: Label::new(Action::Pick, Some("B".into()), 1),
            resolution: Resolution::Human,
            verdicts: vec![
                Some(Label::new(Action::Pick, Some("B".into()), 1)),
                Some(Label::new(Action::Pick, Some("B".into()), 1)),
                None,
            ],
            gold: false,
            clips: vec![
                SampleClip {
                    clip_id: "c1".into(),
                    camera_id: "shelf".into(),
                    file: None,
                    bytes: None,
                    window_from_ms: Some(100),
                    window_to_ms: Some(5_000),
                    event_offset_ms: Some(2_000),
                    duration_ms: Some(4_900),
                    width: Some(640),
                    height: Some(360),
                    frame_rate: Some(15.0),
                },
                SampleClip {
                    clip_id: "c2".into(),
                    camera_id: "door".into(),
                    file: None,
                    bytes: None,
                    window_from_ms: Some(50),
                    window_to_ms: Some(4_000),
                    event_offset_ms: None,
                    duration_ms: None,
                    width: None,
                    height: None,
                    frame_rate: None,
                },
            ],
            clip_videos: vec![None, None],
        }
    }

    #[test]
    fn a_sample_says_what_happened_and_how_it_was_decided() {
        let s = sample(facts(), &SplitPlan::default());
        assert_eq!(s.key, "01936c3e-0000-7000-8000-000000000001");
        assert_eq!(s.occurred_at, "2026-11-25T10:15:30.123Z");
        assert_eq!(s.verdicts, 3);
        assert_eq!(s.agreement, Some(2.0 / 3.0));
        assert!(s.hard, "the model said A, people said B");
        assert!(!s.audit);
        assert_eq!(
            s.window,
            Some(Window {
                from_ms: 50,
                to_ms: 5_000
            })
        );
        let mut f = facts();
        f.label = Label::new(Action::Pick, Some("A".into()), 1);
        f.review_reason = Some("audit-sample".into());
        let s = sample(f, &SplitPlan::default());
        assert!(!s.hard);
        assert!(s.audit);
        assert_eq!(s.agreement, Some(0.0));
    }

    #[test]
    fn agreement_needs_two_verdicts_and_cant_tell_never_agrees() {
        let l = Label::new(Action::None, None, 0);
        assert_eq!(agreement(&l, &[]), None);
        assert_eq!(agreement(&l, &[Some(l.clone())]), None, "a lone verdict");
        assert_eq!(agreement(&l, &[None, None]), Some(0.0));
        let none_with_sku = Some(Label::new(Action::None, Some("x".into()), 3));
        assert_eq!(
            agreement(&l, &[none_with_sku.clone(), none_with_sku]),
            Some(1.0),
            "labels are normalized: none carries no sku"
        );
    }

    #[test]
    fn filters_that_need_verdicts_and_labels() {
        let s = sample(facts(), &SplitPlan::default());
        let mut f = Filter::default();
        assert!(f.keeps(&s));
        f.min_agreement = Some(0.66);
        assert!(f.keeps(&s));
        f.min_agreement = Some(0.67);
        assert!(!f.keeps(&s));
        f.min_agreement = Some(2.0 / 3.0);
        assert!(f.keeps(&s), "exactly the threshold is kept");
        let mut auto = facts();
        auto.verdicts.clear();
        let auto = sample(auto, &SplitPlan::default());
        f.min_agreement = Some(0.0);
        assert!(!f.keeps(&auto), "no verdicts, no agreement to meet");
        let mut f = Filter {
            hard_only: true,
            ..Filter::default()
        };
        assert!(f.keeps(&s));
        let mut easy = facts();
        easy.label = Label::new(Action::Pick, Some("A".into()), 1);
        assert!(!f.keeps(&sample(easy, &SplitPlan::default())));
        f.hard_only = false;
        f.from_ms = Some(10);
        f.to_ms = Some(10);
        assert!(f.validate().is_err());
        f.to_ms = Some(11);
        assert!(f.validate().is_ok());
        f.min_agreement = Some(1.5);
        assert!(f.validate().is_err());
    }

    #[test]
    fn the_split_is_stable_per_session_and_close_to_its_shares() {
        let plan = SplitPlan::default();
        // Fixed values: a change here would reshuffle every dataset ever
        // exported, so it must be deliberate.
        let fixed: Vec<&str> = (0..8)
            .map(|i| plan.split_of("store-a", &format!("s-{i}")).as_str())
            .collect();
        assert_eq!(fixed, expected_fixed());
        let mut counts = BTreeMap::new();
        for i in 0..20_000 {
            *counts
                .entry(plan.split_of("store-a", &format!("s-{i}")))
                .or_insert(0u32) += 1;
        }
        let share = |s| f64::from(counts[&s]) / 20_000.0;
        assert!((share(Split::Train) - 0.8).abs() < 0.01, "{counts:?}");
        assert!((share(Split::Validation) - 0.1).abs() < 0.01, "{counts:?}");
        assert!((share(Split::Test) - 0.1).abs() < 0.01, "{counts:?}");
        // The store is part of the draw: the same session id elsewhere is
        // another shopper.
        let other = SplitPlan {
            seed: "other".into(),
            ..SplitPlan::default()
        };
        let moved = (0..1000)
            .filter(|i| {
                let s = format!("s-{i}");
                plan.split_of("store-a", &s) != other.split_of("store-a", &s)
            })
            .count();
        assert!(
            moved > 200,
            "another seed draws another split ({moved} moved)"
        );
        let all_train = SplitPlan {
            train: 1.0,
            validation: 0.0,
            ..SplitPlan::default()
        };
        assert!((0..100).all(|i| all_train.split_of("x", &i.to_string()) == Split::Train));
        assert!(SplitPlan {
            train: 0.9,
            validation: 0.2,
            ..SplitPlan::default()
        }
        .validate()
        .is_err());
    }

    fn expected_fixed() -> Vec<&'static str> {
        vec![
            "validation",
            "train",
            "validation",
            "train",
            "train",
            "train",
            "train",
            "validation",
        ]
    }

    #[test]
    fn shards_fill_up_to_the_limit_per_split() {
        let mut s = Shards::new(4096);
        let a = s.place(Split::Train, 2048);
        assert_eq!(a.shard, "train-000000.tar");
        assert_eq!(a.closes, None);
        // 2048 + 1024 + 1024 (closing blocks) = 4096 fits exactly.
        assert_eq!(s.place(Split::Train, 1024).closes, None);
        let c = s.place(Split::Train, 512);
        assert_eq!(c.shard, "train-000001.tar");
        assert_eq!(c.closes.as_deref(), Some("train-000000.tar"));
        assert_eq!(s.place(Split::Test, 10_000).shard, "test-000000.tar");
        let big = s.place(Split::Test, 10_000);
        assert_eq!(big.shard, "test-000001.tar", "an oversized sample alone");
        assert_eq!(
            s.open_shards(),
            vec!["train-000001.tar".to_string(), "test-000001.tar".into()]
        );
        assert_eq!(tar_member_bytes(0), 512);
        assert_eq!(tar_member_bytes(1), 1024);
        assert_eq!(tar_member_bytes(512), 1024);
    }

    #[test]
    fn tar_headers_are_ustar_with_a_valid_checksum() {
        let h = tar_header("abc.json", 1234, 1_700_000_000).unwrap();
        assert_eq!(&h[..8], b"abc.json");
        assert_eq!(&h[124..135], b"00000002322");
        assert_eq!(&h[257..262], b"ustar");
        let stored = u64::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, blank.iter().map(|&b| u64::from(b)).sum::<u64>());
        assert!(tar_header(&"x".repeat(101), 1, 0).is_err());
        assert!(tar_header("ok", 1 << 33, 0).is_err());
    }

    #[test]
    fn the_card_counts_every_dimension() {
        let mut card = Card::default();
        let s = sample(facts(), &SplitPlan::default());
        card.add(&s);
        card.add(&s);
        assert_eq!(card.samples, 2);
        assert_eq!(card.hard, 2);
        assert_eq!(card.splits.values().sum::<u64>(), 2);
        assert_eq!(card.labels["pick B ×1"], 2);
        assert_eq!(card.resolutions["human"], 2);
        assert_eq!(card.clips_missing, 4);
        assert_eq!(label_name(&Label::new(Action::None, None, 0)), "none");
    }
}
