//! The statistics behind the supervisor dashboard: percentiles, Wilson
//! intervals for rates estimated from samples, calibration of the model's
//! confidence, and agreement between labelers (Krippendorff's alpha).
//!
//! Pure functions over values, unit-tested against known results, so every
//! number the dashboard shows can be checked by hand (docs/dashboard.md will
//! explain each one).

use std::collections::BTreeMap;

/// The `p`-th percentile (0–100) of `values` by linear interpolation between
/// the closest ranks (the "type 7" definition of R, NumPy and spreadsheets):
/// rank `h = (n − 1) · p / 100`, value `v[⌊h⌋] + (h − ⌊h⌋)(v[⌊h⌋+1] − v[⌊h⌋])`.
/// `None` for no values; NaNs are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// The Wilson score interval of a proportion: `successes` of `n` trials, at
/// the normal quantile `z` (1.96 for 95 %). Unlike the plain `p ± z·se`, it
/// stays inside [0, 1] and is honest for rare events, which is what an
/// auto-accept error rate of a fraction of a percent is. `None` for `n = 0`.
pub fn wilson_interval(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z2 / n;
    Some((
        ((centre - margin) / denom).max(0.0),
        ((centre + margin) / denom).min(1.0),
    ))
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationBin {
    /// Lower edge of the bin's confidence range (inclusive).
    pub from: f64,
    /// Upper edge (exclusive, except 1.0 in the last bin).
    pub to: f64,
    /// Predictions in the bin.
    pub count: u64,
    /// Their mean confidence.
    pub mean_confidence: f64,
    /// The share of them that were right.
    pub accuracy: f64,
}

/// A reliability diagram and its expected calibration error.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Non-empty bins, lowest confidence first.
    pub bins: Vec<CalibrationBin>,
    /// `Σ (count_b / N) · |accuracy_b − mean_confidence_b|`: 0 for a model
    /// whose confidence is its accuracy.
    pub ece: f64,
    /// Predictions counted.
    pub total: u64,
}

/// Bins `(confidence, was_right)` pairs into `bins` equal-width confidence
/// ranges over [0, 1]. Confidences outside [0, 1] or NaN are skipped.
pub fn calibration(predictions: &[(f64, bool)], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let mut totals: BTreeMap<usize, BinTotals> = BTreeMap::new();
    for &(confidence, right) in predictions {
        if !(0.0..=1.0).contains(&confidence) {
            continue;
        }
        let t = totals.entry(calibration_bin(confidence, bins)).or_default();
        t.count += 1;
        t.confidence_sum += confidence;
        t.right += u64::from(right);
    }
    calibration_from_totals(&totals, bins)
}

/// The bin of `confidence` (in [0, 1]) among `bins` equal-width bins; 1.0
/// falls into the last one.
pub fn calibration_bin(confidence: f64, bins: usize) -> usize {
    ((confidence * bins as f64) as usize).min(bins.max(1) - 1)
}

/// What a calibration bin adds up: kept in rollups, where the predictions
/// themselves are no longer at hand.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BinTotals {
    /// Predictions in the bin.
    pub count: u64,
    /// Sum of their confidences.
    pub confidence_sum: f64,
    /// How many were right.
    pub right: u64,
}

/// The reliability diagram and expected calibration error of bins already
/// totalled (`bin index → totals`, indexes below `bins`).
pub fn calibration_from_totals(totals: &BTreeMap<usize, BinTotals>, bins: usize) -> Calibration {
    let bins = bins.max(1);
    let width = 1.0 / bins as f64;
    let total: u64 = totals.values().map(|t| t.count).sum();
    let mut ece = 0.0;
    let bins: Vec<CalibrationBin> = totals
        .iter()
        .filter(|(_, t)| t.count > 0)
        .map(|(&b, t)| {
            let mean_confidence = t.confidence_sum / t.count as f64;
            let accuracy = t.right as f64 / t.count as f64;
            ece += t.count as f64 / total as f64 * (accuracy - mean_confidence).abs();
            CalibrationBin {
                from: b as f64 * width,
                to: (b + 1) as f64 * width,
                count: t.count,
                mean_confidence,
                accuracy,
            }
        })
        .collect();
    Calibration { bins, ece, total }
}

/// Krippendorff's alpha for nominal data: the agreement among labelers
/// beyond chance, 1 for perfect agreement, 0 for chance, below 0 for
/// systematic disagreement.
///
/// Each unit (a task) holds the values its labelers gave (any number of
/// them; a labeler who did not answer is simply absent). Units with fewer
/// than two values carry no information about agreement and are left out.
/// `None` when fewer than two pairable values remain or when every value is
/// the same (the expected disagreement is zero, so alpha is undefined).
pub fn krippendorff_alpha_nominal<T: ToString>(units: &[Vec<T>]) -> Option<f64> {
    let mut sums = AlphaSums::default();
    for unit in units {
        sums.add_unit(unit);
    }
    sums.alpha()
}

/// The sums alpha is computed from, additive over units: a day's alpha is
/// the alpha of the sums of its hours.
///
/// In the coincidence matrix `o`, a unit of `m` values adds `1 / (m − 1)`
/// for each ordered pair of its values. So the marginal `n_c = Σ_k o_ck` is
/// simply how many pairable values are `c`, and the disagreement
/// `Σ_{c≠k} o_ck` is `Σ_units P_u / (m_u − 1)`, where `P_u = m² − Σ_c m_c²`
/// counts the unit's ordered pairs of different values. Keeping `P` summed
/// per unit size `m` keeps every sum an integer, so adding sums in any
/// order gives exactly the same alpha.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlphaSums {
    /// Units with two or more values.
    pub units: u64,
    /// `n_c`: pairable values per value.
    pub marginals: BTreeMap<String, u64>,
    /// `m → Σ P_u` over units of `m` values.
    pub disagreeing_pairs: BTreeMap<u64, u64>,
}

impl AlphaSums {
    /// Adds one unit's values (a unit of fewer than two adds nothing).
    pub fn add_unit<T: ToString>(&mut self, values: &[T]) {
        let m = values.len() as u64;
        if m < 2 {
            return;
        }
        let mut per_value: BTreeMap<String, u64> = BTreeMap::new();
        for v in values {
            *per_value.entry(v.to_string()).or_default() += 1;
        }
        let same: u64 = per_value.values().map(|c| c * c).sum();
        for (v, c) in per_value {
            *self.marginals.entry(v).or_default() += c;
        }
        *self.disagreeing_pairs.entry(m).or_default() += m * m - same;
        self.units += 1;
    }

    /// Adds another set of sums.
    pub fn merge(&mut self, other: &AlphaSums) {
        self.units += other.units;
        for (v, c) in &other.marginals {
            *self.marginals.entry(v.clone()).or_default() += c;
        }
        for (m, p) in &other.disagreeing_pairs {
            *self.disagreeing_pairs.entry(*m).or_default() += p;
        }
    }

    /// Pairable values counted: `n`.
    pub fn values(&self) -> u64 {
        self.marginals.values().sum()
    }

    /// `α = 1 − (n − 1) · Σ_{c≠k} o_ck / (n² − Σ_c n_c²)`; `None` when
    /// fewer than two pairable values or a single value in use.
    pub fn alpha(&self) -> Option<f64> {
        let n = self.values() as f64;
        if n < 2.0 {
            return None;
        }
        let observed: f64 = self
            .disagreeing_pairs
            .iter()
            .map(|(m, p)| *p as f64 / (*m as f64 - 1.0))
            .sum();
        let same: f64 = self.marginals.values().map(|c| (*c as f64).powi(2)).sum();
        let expected = n * n - same;
        if expected == 0.0 {
            return None;
        }
        // α = 1 − D_o / D_e with D_o = observed / n and
        // D_e = (n² − Σ n_c²) / (n (n − 1)).
        Some(1.0 - (n - 1.0) * observed / expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&v, 0.0), Some(15.0));
        assert_eq!(percentile(&v, 50.0), Some(35.0));
        assert_eq!(percentile(&v, 100.0), Some(50.0));
        // h = 4 · 0.4 = 1.6 → 20 + 0.6 · 15 = 29 (NumPy's default gives 29.0).
        assert!(close(percentile(&v, 40.0).unwrap(), 29.0, 1e-9));
        // Order of the input does not matter; NaNs are ignored.
        assert_eq!(
            percentile(&[50.0, f64::NAN, 15.0, 40.0, 20.0, 35.0], 50.0),
            Some(35.0)
        );
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn wilson_intervals_match_published_values() {
        // 0 of 10 and 5 of 10 at 95 % (Newcombe 1998, Table I: 0–0.2775 and
        // 0.2366–0.7634).
        let (lo, hi) = wilson_interval(0, 10, 1.96).unwrap();
        assert!(close(lo, 0.0, 1e-9) && close(hi, 0.2775, 1e-4), "{lo} {hi}");
        let (lo, hi) = wilson_interval(5, 10, 1.96).unwrap();
        assert!(
            close(lo, 0.2366, 1e-4) && close(hi, 0.7634, 1e-4),
            "{lo} {hi}"
        );
        // 81 of 263 (Newcombe's example 4): 0.2553–0.3662.
        let (lo, hi) = wilson_interval(81, 263, 1.96).unwrap();
        assert!(
            close(lo, 0.2553, 1e-4) && close(hi, 0.3662, 1e-4),
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0, 0, 1.96), None);
        assert_eq!(wilson_interval(3, 2, 1.96), None);
    }

    #[test]
    fn calibration_bins_and_expected_error() {
        // Two bins of width 0.5. Low bin: confidences 0.2, 0.4, right once
        // → mean 0.3, accuracy 0.5. High bin: 0.9, 0.9, 0.6, 1.0, right
        // three times → mean 0.85, accuracy 0.75.
        // ECE = 2/6 · 0.2 + 4/6 · 0.1 = 0.1333…
        let preds = [
            (0.2, true),
            (0.4, false),
            (0.9, true),
            (0.9, true),
            (0.6, false),
            (1.0, true),
            (1.5, true),
            (f64::NAN, true),
        ];
        let c = calibration(&preds, 2);
        assert_eq!(c.total, 6);
        assert_eq!(c.bins.len(), 2);
        assert_eq!(
            (c.bins[0].from, c.bins[0].to, c.bins[0].count),
            (0.0, 0.5, 2)
        );
        assert!(close(c.bins[0].mean_confidence, 0.3, 1e-12));
        assert!(close(c.bins[0].accuracy, 0.5, 1e-12));
        assert_eq!(c.bins[1].count, 4);
        assert!(close(c.bins[1].mean_confidence, 0.85, 1e-12));
        assert!(close(c.bins[1].accuracy, 0.75, 1e-12));
        assert!(close(c.ece, 0.4 / 3.0, 1e-12), "{}", c.ece);
        // Confidence 0.75, right 3 times in 4: perfectly calibrated.
        let perfect = [(0.75, true), (0.75, true), (0.75, false), (0.75, true)];
        assert!(close(calibration(&perfect, 10).ece, 0.0, 1e-12));
        // Right 8 times in 10 at 0.75: off by 0.05.
        let under: Vec<(f64, bool)> = (0..10).map(|i| (0.75, i < 8)).collect();
        assert!(close(calibration(&under, 10).ece, 0.05, 1e-12));
        assert_eq!(calibration(&[], 10).total, 0);
    }

    #[test]
    fn krippendorff_alpha_matches_the_published_worked_example() {
        // Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability",
        // section C: four observers, twelve units, nominal data, α = 0.743.
        let units: Vec<Vec<u8>> = vec![
            vec![1, 1, 1],
            vec![2, 2, 3, 2],
            vec![3, 3, 3, 3],
            vec![3, 3, 3, 3],
            vec![2, 2, 2, 2],
            vec![1, 2, 3, 4],
            vec![4, 4, 4, 4],
            vec![1, 1, 2, 1],
            vec![2, 2, 2, 2],
            vec![5, 5, 5],
            vec![1, 1],
            vec![3],
        ];
        let alpha = krippendorff_alpha_nominal(&units).unwrap();
        assert!(close(alpha, 0.743, 0.0005), "{alpha}");
    }

    #[test]
    fn krippendorff_alpha_edge_cases() {
        // Perfect agreement over several values.
        let agree = vec![vec!["milk", "milk"], vec!["cola", "cola", "cola"]];
        assert_eq!(krippendorff_alpha_nominal(&agree), Some(1.0));
        // Systematic disagreement is below zero.
        let disagree = vec![vec!["milk", "cola"], vec!["cola", "milk"]];
        assert!(krippendorff_alpha_nominal(&disagree).unwrap() < 0.0);
        // Only one value in use: undefined. Nothing pairable: undefined.
        assert_eq!(krippendorff_alpha_nominal(&[vec![1, 1], vec![1, 1]]), None);
        assert_eq!(krippendorff_alpha_nominal(&[vec![1], vec![2]]), None);
    }
}
