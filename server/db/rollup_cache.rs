//! Settled rollup buckets, decoded once and kept in memory.
//!
//! A bucket whose end is at or before the rollup watermark can never change
//! again: the rollup job only adds facts from the watermark on, and those
//! belong to later buckets. So once read, such a bucket is kept; a snapshot
//! then reads from the database only the buckets that are still filling
//! (the current minute, hour or day) and takes the rest from here. Each
//! snapshot uses only buckets settled by *its own* watermark, so a snapshot
//! that started before another advanced the cache never counts a fact both
//! in a cached bucket and in its live tail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::domain::rollup::{LabelerFlow, LabelerKey, ModelFlow, ModelKey, StoreFlow, StoreKey};

/// A key with a bucket start.
pub trait Bucketed: Ord + Clone {
    /// Bucket start (epoch ms).
    fn start(&self) -> i64;
}

impl Bucketed for StoreKey {
    fn start(&self) -> i64 {
        self.start
    }
}

impl Bucketed for LabelerKey {
    fn start(&self) -> i64 {
        self.start
    }
}

impl Bucketed for ModelKey {
    fn start(&self) -> i64 {
        self.day
    }
}

/// One series of buckets (a table at one grain): the settled buckets with
/// starts in `[from, upto)`, all of them.
#[derive(Debug)]
pub struct Series<K, V> {
    from: i64,
    upto: i64,
    rows: BTreeMap<K, V>,
}

impl<K, V> Default for Series<K, V> {
    fn default() -> Self {
        Series {
            from: i64::MAX,
            upto: i64::MAX,
            rows: BTreeMap::new(),
        }
    }
}

impl<K: Bucketed, V: Clone> Series<K, V> {
    /// Where a snapshot reading the window from `window_from`, whose own
    /// settled buckets start before `settled`, must start reading the
    /// database: after what is kept, when what is kept reaches back to the
    /// window's start.
    pub fn read_from(&self, window_from: i64, settled: i64) -> i64 {
        if self.from <= window_from && self.upto >= window_from {
            self.upto.min(settled).max(window_from)
        } else {
            window_from
        }
    }

    /// The window's buckets: the kept ones before `read_from` and the ones
    /// just `read` (from `read_from` on). Keeps the read ones that are
    /// settled (start before `settled`), and forgets those before the
    /// window. `None` when what is kept no longer covers the window up to
    /// `read_from` (a concurrent snapshot of a later window moved it on):
    /// the caller reads again from the window's start.
    pub fn window(
        &mut self,
        window_from: i64,
        read_from: i64,
        settled: i64,
        read: BTreeMap<K, V>,
    ) -> Option<BTreeMap<K, V>> {
        let covered = self.from <= window_from && self.upto >= read_from;
        if read_from > window_from && !covered {
            return None;
        }
        if read_from == window_from && !covered {
            // Nothing usable was kept: start over from this read.
            self.rows.clear();
            self.from = window_from;
            self.upto = window_from;
        }
        if self.from < window_from {
            self.rows.retain(|k, _| k.start() >= window_from);
            self.from = window_from;
        }
        let mut out: BTreeMap<K, V> = self
            .rows
            .iter()
            .filter(|(k, _)| k.start() < read_from)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // `read` holds every bucket from `read_from` on, and what is kept
        // reaches `read_from`: what it settles extends the kept range
        // without a gap.
        for (k, v) in &read {
            if k.start() < settled && k.start() >= self.upto {
                self.rows.insert(k.clone(), v.clone());
            }
        }
        self.upto = self.upto.max(settled);
        out.extend(read);
        Some(out)
    }
}

/// The settled buckets of one database, shared by the clones of its `Db`.
#[derive(Debug, Clone, Default)]
pub struct Settled(Arc<Mutex<SettledSeries>>);

/// Every series the dashboard snapshot reads.
#[derive(Debug, Default)]
pub struct SettledSeries {
    /// Store buckets per minute.
    pub store_minutes: Series<StoreKey, StoreFlow>,
    /// Store buckets per hour.
    pub store_hours: Series<StoreKey, StoreFlow>,
    /// Labeler buckets per hour.
    pub labeler_hours: Series<LabelerKey, LabelerFlow>,
    /// Labeler buckets per day.
    pub labeler_days: Series<LabelerKey, LabelerFlow>,
    /// Model calibration per day.
    pub models: Series<ModelKey, ModelFlow>,
}

impl Settled {
    /// Runs `f` on the series (held only for in-memory work, never across
    /// a database call).
    pub fn with<T>(&self, f: impl FnOnce(&mut SettledSeries) -> T) -> T {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    struct K(i64);

    impl Bucketed for K {
        fn start(&self) -> i64 {
            self.0
        }
    }

    fn rows(pairs: &[(i64, u32)]) -> BTreeMap<K, u32> {
        pairs.iter().map(|(s, v)| (K(*s), *v)).collect()
    }

    #[test]
    fn settled_buckets_are_read_once_and_the_filling_one_every_time() {
        let mut s: Series<K, u32> = Series::default();
        // Window from 0, watermark in bucket 30: 0, 10, 20 are settled.
        assert_eq!(s.read_from(0, 30), 0);
        let out = s
            .window(0, 0, 30, rows(&[(0, 1), (10, 2), (20, 3), (30, 4)]))
            .unwrap();
        assert_eq!(out, rows(&[(0, 1), (10, 2), (20, 3), (30, 4)]));
        // Next snapshot, same watermark: only bucket 30 is read again.
        assert_eq!(s.read_from(0, 30), 30);
        let out = s.window(0, 30, 30, rows(&[(30, 5)])).unwrap();
        assert_eq!(out, rows(&[(0, 1), (10, 2), (20, 3), (30, 5)]));
        // The watermark moved into bucket 40: 30 settles.
        assert_eq!(s.read_from(0, 40), 30);
        let out = s.window(0, 30, 40, rows(&[(30, 6), (40, 1)])).unwrap();
        assert_eq!(out, rows(&[(0, 1), (10, 2), (20, 3), (30, 6), (40, 1)]));
        assert_eq!(s.read_from(0, 40), 40);
        // The window moves on: older buckets are forgotten.
        assert_eq!(s.read_from(20, 40), 40);
        let out = s.window(20, 40, 40, rows(&[(40, 2)])).unwrap();
        assert_eq!(out, rows(&[(20, 3), (30, 6), (40, 2)]));
        assert_eq!(s.rows.len(), 2);
    }

    #[test]
    fn a_window_the_kept_range_no_longer_covers_is_read_again() {
        let mut s: Series<K, u32> = Series::default();
        s.window(0, 0, 40, rows(&[(0, 1), (10, 2), (20, 3), (30, 4)]))
            .unwrap();
        // Snapshot A (window from 0) plans to read from 40 …
        assert_eq!(s.read_from(0, 40), 40);
        // … a later window moves the kept range on first …
        s.window(20, 40, 40, BTreeMap::new()).unwrap();
        // … so A cannot be served from the cache and reads it all again.
        assert_eq!(s.window(0, 40, 40, BTreeMap::new()), None);
        assert_eq!(s.read_from(0, 40), 0);
    }

    #[test]
    fn a_snapshot_with_an_older_watermark_uses_only_what_it_would_see_settled() {
        let mut s: Series<K, u32> = Series::default();
        s.window(
            0,
            0,
            40,
            rows(&[(0, 1), (10, 2), (20, 3), (30, 4), (40, 5)]),
        )
        .unwrap();
        // An older snapshot (watermark in bucket 20) counts facts from its
        // watermark live: buckets 20 and 30 come from its own read, even
        // though the cache has them settled.
        assert_eq!(s.read_from(0, 20), 20);
        let out = s.window(0, 20, 20, rows(&[(20, 2), (30, 0)])).unwrap();
        assert_eq!(out, rows(&[(0, 1), (10, 2), (20, 2), (30, 0)]));
        // … and does not disturb what newer snapshots keep.
        assert_eq!(s.read_from(0, 40), 40);
        let out = s.window(0, 40, 40, rows(&[(40, 9)])).unwrap();
        assert_eq!(out, rows(&[(0, 1), (10, 2), (20, 3), (30, 4), (40, 9)]));
    }

    #[test]
    fn a_window_reaching_back_past_the_kept_range_reads_it_all() {
        let mut s: Series<K, u32> = Series::default();
        s.window(20, 20, 40, rows(&[(20, 3), (30, 4)])).unwrap();
        assert_eq!(s.read_from(10, 40), 10, "bucket 10 was never kept");
        let out = s
            .window(10, 10, 40, rows(&[(10, 2), (20, 3), (30, 4)]))
            .unwrap();
        assert_eq!(out, rows(&[(10, 2), (20, 3), (30, 4)]));
        assert_eq!(s.read_from(10, 40), 40);
    }
}
