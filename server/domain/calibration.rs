//! Calibration: the probability that the model's top candidate is right,
//! given its confidence, fitted per store and model version on events whose
//! label a person gave.
//!
//! The events people labelled are not a random sample of all events: below
//! the threshold every event is reviewed, above it only the audit samples
//! are. So each observation carries a weight, the inverse of the probability
//! it had of being labelled (1 for a reviewed event, `1 / audit_rate` for an
//! audit sample), and each confidence bin estimates its accuracy as the
//! weighted share of right answers. A bin's weight of evidence is its Kish
//! effective sample size, `(Σw)² / Σw²`, so a few heavy audit samples do
//! not pass for many.
//!
//! Where data is thin the estimate leans on a prior: the model taken at its
//! word (accuracy = confidence), worth [`PRIOR_STRENGTH`] observations. With
//! no data at all the calibration is that prior. Last, the bins are made
//! non-decreasing (pool adjacent violators, weighted by their evidence): a
//! more confident answer is never believed less.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Confidence bins of a calibration: `[0, 0.1)`, …, `[0.9, 1]`.
pub const BINS: usize = 10;

/// How far back the human labels a calibration is fitted on reach.
pub const WINDOW_MS: i64 = 30 * 24 * 3_600_000;

/// How many observations the prior is worth in each bin.
pub const PRIOR_STRENGTH: f64 = 5.0;

/// One event a person labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The model's confidence in its top candidate.
    pub confidence: f64,
    /// Whether the top candidate was what the person saw.
    pub right: bool,
    /// Inverse of the probability the event had of being labelled.
    pub weight: f64,
}

/// How much a labelled event weighs in the fit: an audit sample stands for
/// the `1 / audit_rate` confident events it was drawn from, a reviewed event
/// for itself (every event of its kind was labelled).
pub fn weight(audited: bool, audit_rate: f64) -> f64 {
    if audited && audit_rate > 0.0 {
        1.0 / audit_rate
    } else {
        1.0
    }
}

/// One bin of a fitted calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CalibrationBin {
    /// Lower edge of the bin's confidences.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Mean confidence of its observations (the bin's middle without any).
    pub confidence: f64,
    /// Observations in it.
    pub count: u64,
    /// Their effective sample size after weighting.
    pub effective: f64,
    /// The calibrated probability of being right, smoothed and monotone.
    pub probability: f64,
}

/// A fitted map from confidence to the probability of being right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Calibration {
    /// The bins, lowest confidence first.
    pub bins: Vec<CalibrationBin>,
}

impl Default for Calibration {
    /// The prior alone: the model taken at its word.
    fn default() -> Calibration {
        Calibration::fit(&[])
    }
}

fn bin_of(confidence: f64) -> usize {
    ((confidence.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1)
}

impl Calibration {
    /// Fits the calibration of `observations` (confidences outside `[0, 1]`
    /// are clamped, non-positive weights ignored).
    pub fn fit(observations: &[Observation]) -> Calibration {
        let mut observed = Observed::default();
        for o in observations {
            observed.add(o);
        }
        observed.fit()
    }

    /// The probability that a top candidate of `confidence` is right:
    /// linear between the bins' mean confidences; beyond the outermost
    /// ones, as far from the confidence as the nearest bin is (parallel to
    /// the prior), within `[0, 1]`. Flat ends would rate every event above
    /// the top bin's mean alike, and that bin holds most of a good model's
    /// events: a 0.99 and a 0.95 call would carry the same risk.
    pub fn probability(&self, confidence: f64) -> f64 {
        let c = confidence.clamp(0.0, 1.0);
        let (Some(first), Some(last)) = (self.bins.first(), self.bins.last()) else {
            return c;
        };
        if c <= first.confidence {
            return (first.probability + c - first.confidence).clamp(0.0, 1.0);
        }
        for pair in self.bins.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if c <= b.confidence {
                let span = b.confidence - a.confidence;
                if span <= 0.0 {
                    return b.probability;
                }
                let t = (c - a.confidence) / span;
                return a.probability + t * (b.probability - a.probability);
            }
        }
        (last.probability + c - last.confidence).clamp(0.0, 1.0)
    }
}

/// Observations summed per bin, added one at a time; [`Calibration::fit`]
/// sums a list the same way. A caller that learns as events are labelled
/// (the simulator, as the server refits at every ingest) keeps one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    sums: [Sums; BINS],
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Sums {
    count: u64,
    w: f64,
    w2: f64,
    w_right: f64,
    w_conf: f64,
}

impl Observed {
    /// Adds one observation (ignored when its weight is not positive or a
    /// value is not finite).
    pub fn add(&mut self, o: &Observation) {
        if !(o.weight > 0.0 && o.weight.is_finite() && o.confidence.is_finite()) {
            return;
        }
        let c = o.confidence.clamp(0.0, 1.0);
        let s = &mut self.sums[bin_of(c)];
        s.count += 1;
        s.w += o.weight;
        s.w2 += o.weight * o.weight;
        s.w_right += if o.right { o.weight } else { 0.0 };
        s.w_conf += o.weight * c;
    }

    /// The calibration of what was added.
    pub fn fit(&self) -> Calibration {
        let sums = &self.sums;
        let mut bins: Vec<CalibrationBin> = Vec::with_capacity(BINS);
        let mut evidence: Vec<f64> = Vec::with_capacity(BINS);
        for (i, s) in sums.iter().enumerate() {
            let from = i as f64 / BINS as f64;
            let to = (i + 1) as f64 / BINS as f64;
            let (confidence, effective, observed) = if s.w > 0.0 {
                (s.w_conf / s.w, s.w * s.w / s.w2, s.w_right / s.w)
            } else {
                ((from + to) / 2.0, 0.0, 0.0)
            };
            // The prior: accuracy = confidence, worth PRIOR_STRENGTH.
            let probability =
                (effective * observed + PRIOR_STRENGTH * confidence) / (effective + PRIOR_STRENGTH);
            bins.push(CalibrationBin {
                from,
                to,
                confidence,
                count: s.count,
                effective,
                probability,
            });
            evidence.push(effective + PRIOR_STRENGTH);
        }
        let monotone = pool_adjacent_violators(
            &bins.iter().map(|b| b.probability).collect::<Vec<_>>(),
            &evidence,
        );
        for (b, p) in bins.iter_mut().zip(monotone) {
            b.probability = p;
        }
        Calibration { bins }
    }
}

/// The non-decreasing sequence closest to `values` in weighted least squares.
fn pool_adjacent_violators(values: &[f64], weights: &[f64]) -> Vec<f64> {
    // Blocks of (mean, weight, length), merged while a block is below the
    // one before it.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(values.len());
    for (&v, &w) in values.iter().zip(weights) {
        blocks.push((v, w, 1));
        while blocks.len() > 1 {
            let (m2, w2, n2) = blocks[blocks.len() - 1];
            let (m1, w1, n1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2);
        }
    }
    blocks
        .into_iter()
        .flat_map(|(m, _, n)| std::iter::repeat_n(m, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(confidence: f64, right: bool, weight: f64) -> Observation {
        Observation {
            confidence,
            right,
            weight,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn without_data_the_model_is_taken_at_its_word() {
        let c = Calibration::default();
        assert_eq!(c.bins.len(), BINS);
        for x in [0.05, 0.25, 0.5, 0.73, 0.95] {
            assert!(close(c.probability(x), x), "{x}");
        }
        // Beyond the outermost bin middles too: the prior is the identity.
        assert!(close(c.probability(1.0), 1.0));
        assert!(close(c.probability(0.0), 0.0));
        assert!(close(c.probability(0.99), 0.99));
    }

    #[test]
    fn a_bin_mixes_its_data_with_the_prior_by_evidence() {
        // Bin [0.9, 1): 20 observations at 0.95, 18 right (0.90).
        let data: Vec<Observation> = (0..20).map(|i| obs(0.95, i < 18, 1.0)).collect();
        let c = Calibration::fit(&data);
        let b = c.bins[9];
        assert_eq!(b.count, 20);
        assert!(close(b.effective, 20.0));
        // (20 · 0.90 + 5 · 0.95) / 25 = 0.91
        assert!(close(b.probability, 0.91), "{}", b.probability);
        // The model says 0.95 there; people found 0.91.
        assert!(close(c.probability(0.95), 0.91));
        // Fewer right than the empty bin below believes: the two pool.
        let worse: Vec<Observation> = (0..20).map(|i| obs(0.95, i < 15, 1.0)).collect();
        let c = Calibration::fit(&worse);
        // Bin 9: (15 + 4.75) / 25 = 0.79 under bin 8's prior 0.85 (worth 5).
        let pooled = (0.79 * 25.0 + 0.85 * 5.0) / 30.0;
        assert!(close(c.bins[9].probability, pooled));
        assert!(close(c.bins[8].probability, pooled));
    }

    #[test]
    fn heavy_audit_weights_count_by_their_effective_size() {
        // Four audit samples of weight 50 (audit rate 2 %) and four reviewed
        // events of weight 1 in bin [0.8, 0.9): weighted share right is
        // (4·50·1 + 4·1·0) / 204, effective size 204² / (4·2500 + 4).
        let mut data: Vec<Observation> = (0..4).map(|_| obs(0.85, true, 50.0)).collect();
        data.extend((0..4).map(|_| obs(0.85, false, 1.0)));
        let b = Calibration::fit(&data).bins[8];
        let share = 200.0 / 204.0;
        let n_eff = 204.0 * 204.0 / 10_004.0;
        assert!(close(b.effective, n_eff), "{}", b.effective);
        let expected = (n_eff * share + 5.0 * 0.85) / (n_eff + 5.0);
        assert!(
            close(b.probability, expected),
            "{} vs {expected}",
            b.probability
        );
        assert!(n_eff < 5.0, "eight observations weigh like about four");
    }

    #[test]
    fn the_fit_is_never_less_sure_of_a_more_confident_answer() {
        // Bin 0.6 all right, bin 0.7 all wrong: violators are pooled.
        let mut data: Vec<Observation> = (0..30).map(|_| obs(0.65, true, 1.0)).collect();
        data.extend((0..30).map(|_| obs(0.75, false, 1.0)));
        let c = Calibration::fit(&data);
        for pair in c.bins.windows(2) {
            assert!(pair[0].probability <= pair[1].probability + 1e-12);
        }
        // Bins 6 and 7 pool (35 · p6 + 35 · p7 with p6 = (30 + 5 · 0.65) / 35,
        // p7 = (0 + 5 · 0.75) / 35), and the empty bin 5 (its prior 0.55,
        // worth 5) is above that mean, so it joins them.
        let pooled = (5.0 * 0.55 + 30.0 + 3.25 + 3.75) / 75.0;
        for i in 5..=7 {
            assert!(close(c.bins[i].probability, pooled), "bin {i}");
        }
        assert!(close(c.bins[4].probability, 0.45), "untouched below");
    }

    #[test]
    fn probabilities_stay_within_zero_and_one_and_rise_with_confidence() {
        // A grid of awkward data sets: every bin's share of right answers
        // from 0 to 1, weights from 1 to 100.
        for seed in 0..50u64 {
            let mut data = Vec::new();
            for i in 0..200u64 {
                let x = (i * 37 + seed * 11) % 1000;
                let confidence = x as f64 / 1000.0;
                let right = (i * 7 + seed) % 5 < (x / 250);
                let weight = 1.0 + ((i + seed) % 100) as f64;
                data.push(obs(confidence, right, weight));
            }
            let c = Calibration::fit(&data);
            let mut last = -1.0;
            for k in 0..=100 {
                let p = c.probability(k as f64 / 100.0);
                assert!((0.0..=1.0).contains(&p), "seed {seed}: {p}");
                assert!(p >= last - 1e-12, "seed {seed}: not monotone at {k}");
                last = p;
            }
        }
    }

    #[test]
    fn bad_observations_are_ignored() {
        let c = Calibration::fit(&[
            obs(f64::NAN, true, 1.0),
            obs(0.5, true, 0.0),
            obs(0.5, false, -3.0),
            obs(0.5, true, f64::INFINITY),
        ]);
        assert_eq!(c, Calibration::default());
    }
}
