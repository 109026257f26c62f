//! What the benches measure with and print: latency histograms, throughput
//! windows, medians, and what the machine was doing meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, 1 µs to 10 minutes, 3 significant digits.
#[derive(Clone)]
pub struct Latency(Histogram<u64>);

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }

    /// Adds one observation.
    pub fn record(&mut self, elapsed: Duration) {
        self.0.saturating_record(elapsed.as_micros().max(1) as u64);
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// p50 and p99 in milliseconds, for the JSON line.
    pub fn to_json(&self) -> Value {
        json!({"p50_ms": round2(self.ms(0.5)), "p99_ms": round2(self.ms(0.99)), "count": self.0.len()})
    }
}

/// Completions counted per fixed-width window of time, to see throughput
/// change over a long run.
pub struct Windows {
    start: Instant,
    width: Duration,
    counts: Vec<AtomicU64>,
    /// The 1-minute load average at the end of each window: on a shared
    /// machine, other work explains many a slow window.
    loads: Mutex<Vec<f64>>,
}

impl Windows {
    /// Windows of `width` covering `duration` (and a spare for stragglers).
    pub fn new(start: Instant, width: Duration, duration: Duration) -> Windows {
        let n = (duration.as_secs_f64() / width.as_secs_f64()).ceil() as usize + 1;
        Windows {
            start,
            width,
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            loads: Mutex::new(Vec::new()),
        }
    }

    /// Counts one completion now.
    pub fn count(&self) {
        let i = (self.start.elapsed().as_secs_f64() / self.width.as_secs_f64()) as usize;
        let i = i.min(self.counts.len() - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Notes the load average; called at the end of each window.
    pub fn sample_load(&self) {
        let load = load_average().map_or(f64::NAN, |l| l[0]);
        if let Ok(mut loads) = self.loads.lock() {
            loads.push(load);
        }
    }

    /// The load averages noted at the end of the first `n` windows.
    pub fn loads(&self, n: usize) -> Vec<f64> {
        self.loads
            .lock()
            .map(|l| l.iter().take(n).copied().collect())
            .unwrap_or_default()
    }

    /// Rates (per second) of the windows that ended before `until` seconds.
    pub fn full_rates(&self, until: f64) -> Vec<f64> {
        let width = self.width.as_secs_f64();
        let full = ((until / width).floor() as usize).min(self.counts.len());
        self.counts[..full]
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as f64 / width)
            .collect()
    }
}

/// Share of throughput lost from the first full window to the last one
/// (0.05 = 5 % slower at the end); `None` with fewer than two windows.
pub fn decay(rates: &[f64]) -> Option<f64> {
    match rates {
        [first, .., last] if *first > 0.0 => Some(1.0 - last / first),
        _ => None,
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `x` rounded to two decimals, for readable JSON.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// "met" or "MISSED", for the table.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// What the bench ran on and beside.
pub struct Machine {
    cpus: usize,
    load_before: Option<[f64; 3]>,
}

impl Machine {
    /// Notes the CPUs and the load average before the bench starts.
    pub fn observe() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_before: load_average(),
        }
    }

    /// One line for the table.
    pub fn describe(&self) -> String {
        let load = |l: Option<[f64; 3]>| {
            l.map_or("unknown".to_string(), |l| {
                format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
            })
        };
        format!(
            "machine: {} CPUs ({} {}); load average before {} / after {} (1, 5, 15 min; \
             above 0 means other work shared the CPUs); load generator and server share \
             this process",
            self.cpus,
            std::env::consts::OS,
            std::env::consts::ARCH,
            load(self.load_before),
            load(load_average()),
        )
    }

    /// The same facts for the JSON line.
    pub fn to_json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
            "client_in_process": true,
        })
    }
}

/// The 1, 5 and 15 minute load averages (Linux only).
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_decay() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert!((decay(&[100.0, 95.0, 90.0]).unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(decay(&[100.0]), None);
    }

    #[test]
    fn latency_quantiles_are_in_milliseconds() {
        let mut a = Latency::new();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Latency::new();
        b.merge(&a);
        assert!((b.ms(0.5) - 50.0).abs() < 0.1);
        assert!((b.ms(0.99) - 99.0).abs() < 0.1);
        assert_eq!(Latency::new().ms(0.99), 0.0);
    }

    #[test]
    fn only_full_windows_count() {
        let start = Instant::now();
        let w = Windows::new(start, Duration::from_secs(30), Duration::from_secs(60));
        w.count();
        assert_eq!(w.full_rates(59.0), vec![1.0 / 30.0]);
        assert!(w.full_rates(10.0).is_empty());
    }
}
