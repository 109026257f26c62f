//! A mergeable histogram of durations in milliseconds, for percentiles of
//! handling time and receipt latency kept in rollups.
//!
//! The buckets are fixed and log-spaced: bucket 0 holds values below 1 ms,
//! bucket `i ≥ 1` holds `[γ^(i−1), γ^i)` with `γ = 1.05`, up to 24 hours;
//! the last bucket also holds everything longer. Because every histogram has
//! the same buckets, two of them merge by adding counts, so a figure over a
//! day is the sum of its hours, whichever order they were counted in. A
//! percentile is estimated from the buckets holding its ranks, with a
//! relative error of at most `√γ − 1 ≈ 2.5 %` (below 24 hours).

use std::fmt::Write;

/// Ratio between the edges of a bucket.
pub const GAMMA: f64 = 1.05;
/// Values at or above this (24 hours) share the last bucket.
pub const MAX_MS: f64 = 86_400_000.0;

/// Index of the last bucket.
fn last_bucket() -> u16 {
    bucket_of(MAX_MS)
}

/// The bucket a value falls into.
fn bucket_of(ms: f64) -> u16 {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    let ms = ms.min(MAX_MS);
    1 + (ms.ln() / GAMMA.ln()).floor() as u16
}

/// The value a bucket stands for: the geometric middle of its edges, so the
/// error is the same in relative terms at both ends (0.5 ms for bucket 0).
fn representative(bucket: u16) -> f64 {
    if bucket == 0 {
        0.5
    } else {
        GAMMA.powf(f64::from(bucket) - 0.5)
    }
}

/// Counts of durations per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// (bucket, count), sorted by bucket, counts above zero: a sorted
    /// vector rather than a map, because the dashboard decodes and merges
    /// thousands of these per snapshot and a vector does it without a
    /// node allocation per bucket.
    counts: Vec<(u16, u64)>,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts one duration (negative durations count as 0).
    pub fn record(&mut self, ms: i64) {
        self.add(bucket_of(ms as f64), 1);
    }

    fn add(&mut self, bucket: u16, n: u64) {
        match self.counts.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => self.counts[i].1 += n,
            Err(i) => self.counts.insert(i, (bucket, n)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts.clone_from(&other.counts);
            return;
        }
        let mut merged = Vec::with_capacity(self.counts.len() + other.counts.len());
        let (mut a, mut b) = (
            self.counts.iter().peekable(),
            other.counts.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    merged.push((x.0, x.1 + y.1));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.0 < y.0 => merged.push(*a.next().expect("peeked")),
                (Some(_), Some(_)) => merged.push(*b.next().expect("peeked")),
                (Some(_), None) => merged.push(*a.next().expect("peeked")),
                (None, Some(_)) => merged.push(*b.next().expect("peeked")),
                (None, None) => break,
            }
        }
        self.counts = merged;
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The estimated `p`-th percentile (0–100), by the same rank
    /// interpolation as [`crate::stats::percentile`]: the values at
    /// ranks `⌊h⌋` and `⌊h⌋ + 1` (`h = (n − 1) · p / 100`) are taken as
    /// their buckets' representatives. `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let h = (n - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
        let lo = h.floor() as u64;
        let hi = (lo + 1).min(n - 1);
        let (a, b) = (self.value_at_rank(lo), self.value_at_rank(hi));
        Some(a + (h - lo as f64) * (b - a))
    }

    /// The representative of the bucket holding the value of 0-based rank `r`.
    fn value_at_rank(&self, r: u64) -> f64 {
        let mut seen = 0;
        for (b, n) in &self.counts {
            seen += n;
            if r < seen {
                return representative(*b);
            }
        }
        representative(last_bucket())
    }

    /// The stored form: `bucket:count` pairs separated by commas, buckets
    /// ascending (empty for an empty histogram).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (i, (b, n)) in self.counts.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{b}:{n}");
        }
        s
    }

    /// Reads the stored form; `None` when it is not one.
    pub fn decode(s: &str) -> Option<Histogram> {
        let mut h = Histogram::new();
        if !s.is_empty() {
            for pair in s.split(',') {
                let (b, n) = pair.split_once(':')?;
                let b: u16 = b.parse().ok()?;
                if b > last_bucket() {
                    return None;
                }
                let n = n.parse::<u64>().ok()?;
                if n == 0 {
                    continue;
                }
                // Written in bucket order: appending is the common case.
                match h.counts.last_mut() {
                    Some(last) if last.0 == b => last.1 += n,
                    Some(last) if last.0 > b => h.add(b, n),
                    _ => h.counts.push((b, n)),
                }
            }
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::percentile;

    /// Relative error the bucket width allows.
    fn tolerance() -> f64 {
        GAMMA.sqrt() - 1.0 + 1e-9
    }

    fn assert_close_to_exact(values: &[i64]) {
        let mut h = Histogram::new();
        for v in values {
            h.record(*v);
        }
        let exact: Vec<f64> = values.iter().map(|v| *v as f64).collect();
        for p in [
            0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0,
        ] {
            let want = percentile(&exact, p).unwrap();
            let got = h.percentile(p).unwrap();
            assert!(
                (got - want).abs() <= tolerance() * want,
                "p{p}: estimated {got}, exact {want}"
            );
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_error_of_the_exact_ones() {
        // Handling times: one to sixty seconds, every millisecond value.
        let handling: Vec<i64> = (0..20_000).map(|i| 1_000 + (i * 2_951) % 59_000).collect();
        assert_close_to_exact(&handling);
        // Receipt latencies: skewed, a few very slow ones.
        let latency: Vec<i64> = (1..=5_000)
            .map(|i| {
                if i % 100 == 0 {
                    3_600_000 + i
                } else {
                    200 + i * i / 10
                }
            })
            .collect();
        assert_close_to_exact(&latency);
        // Small values, where buckets are narrower than a millisecond.
        assert_close_to_exact(&[1, 2, 3, 5, 8, 13, 21, 34, 55, 89]);
        assert_close_to_exact(&[7]);
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_values() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..1_000 {
            if v % 3 == 0 { &mut a } else { &mut b }.record(v * 37);
            all.record(v * 37);
        }
        let mut merged = b.clone();
        merged.merge(&a);
        assert_eq!(merged, all);
        assert_eq!(merged.count(), 1_000);
    }

    #[test]
    fn edges_and_out_of_range_values() {
        let mut h = Histogram::new();
        h.record(0);
        h.record(-5);
        assert_eq!(h.percentile(50.0), Some(0.5), "below 1 ms");
        let mut slow = Histogram::new();
        slow.record(10 * 86_400_000);
        slow.record(86_400_000);
        // Both clamp into the last bucket, which stands for about a day.
        let p = slow.percentile(100.0).unwrap();
        assert!((p / MAX_MS - 1.0).abs() <= tolerance(), "{p}");
        assert_eq!(Histogram::new().percentile(50.0), None);
        assert!(Histogram::new().is_empty());
    }

    #[test]
    fn stored_form_round_trips_and_rejects_garbage() {
        let mut h = Histogram::new();
        for v in [0, 1, 1, 999, 1_000, 60_000, 90_000_000] {
            h.record(v);
        }
        let text = h.encode();
        assert_eq!(Histogram::decode(&text), Some(h));
        assert_eq!(Histogram::decode(""), Some(Histogram::new()));
        assert_eq!(Histogram::new().encode(), "");
        assert_eq!(Histogram::decode("1:2,x"), None);
        assert_eq!(Histogram::decode("9999:1"), None);
        // Out-of-order and repeated buckets (written by hand) still read
        // as the same histogram.
        assert_eq!(
            Histogram::decode("5:1,3:2,5:1,3:0"),
            Histogram::decode("3:2,5:2")
        );
        assert_eq!(Histogram::decode("3:2,5:2").unwrap().encode(), "3:2,5:2");
    }
}
