//! Which routing threshold a store could use: for every candidate threshold,
//! the share of events that would go to a human and the error rate of the
//! events that would not, estimated from one window of resolved events.
//!
//! # Input
//!
//! A store's [`ConfidenceBin`]s: 100 bins of the model's top confidence,
//! bin `i` covering `[i / 100, (i + 1) / 100)` (the last one includes 1.0),
//! each counting what happened to its events under the policy in force. The
//! candidates are the bin edges `t = 0.00, 0.01, …, 1.00`; confidence is only
//! known to the bin, so a threshold between two edges cannot be told apart
//! from its neighbours and the current threshold is read at its nearest edge.
//!
//! # Estimate for a threshold `t`
//!
//! Replaying the window as if `t` had been the threshold, with the margin and
//! high-value rules unchanged (`forced` events go to review whatever `t`):
//!
//! - the *confident set* `S(t)` is the non-forced events of bins `≥ t`; an
//!   `audit_rate` share of it would be drawn for audit, so the review rate is
//!   `r(t) = 1 − |S(t)| · (1 − audit_rate) / N` with `N` all events;
//! - the correctness of some of `S(t)` is known: events reviewed for low
//!   confidence (bins below the threshold in force) and audit samples carry a
//!   human label. The rest were auto-accepted and their errors are estimated
//!   from the audit samples: the pooled rate `p̂ = Σ audited_wrong / Σ audited`
//!   over bins `≥ max(t, lowest bin with audit samples)`, with its Wilson
//!   interval ([`wilson_interval`]);
//! - the error rate of `S(t)` is `e(t) = (known wrong + p̂ · unknown) / |S(t)|`,
//!   and its low and high bounds put the Wilson bounds of `p̂` in place of `p̂`
//!   (the known parts are exact).
//!
//! A threshold has no estimate when `S(t)` holds auto-accepted events but no
//! audit sample falls in the range, or when `S(t)` is empty (everything is
//! reviewed: there is no auto-accept error to speak of).
//!
//! # Recommendation
//!
//! The threshold with the lowest review rate whose **upper** error bound is
//! at or below the target (ties go to the higher threshold). This is
//! deliberately conservative: a threshold is only recommended when the error
//! is below the target even at the pessimistic end of the interval, so a
//! small audit sample cannot make a low threshold look safe by luck. With no
//! errors in `n` audit samples the Wilson upper bound is `z² / (n + z²)`, so at
//! least `z² (1 − target) / target` samples (765 for 0.5 % at z = 1.96,
//! [`audits_needed`]) are needed before anything but fully known sets can
//! qualify; [`Recommendation::reason_if_none`] says so when that is why.
//!
//! # Assumptions
//!
//! - The error rate at a given confidence is stationary over the window: the
//!   past window stands for the events the new threshold will see.
//! - Audit samples are a uniform draw among confident, non-forced events
//!   (the routing draw is independent of the event), so within the range
//!   they cover they estimate the error of auto-accepted events without bias.
//!   Auto-accepted events in bins below the lowest audited bin (typically
//!   sparse bins just above the threshold) are given the pooled rate of the
//!   bins above: a mild extrapolation towards lower confidence.
//! - `forced` counts events the margin or high-value rules (or a missing
//!   candidate) send to review at *any* threshold. Routing checks those rules
//!   before the threshold (`routing::route`), so the recorded reason tells
//!   them apart: `low-confidence` with a top candidate means the threshold
//!   alone decided.
//! - The counts are the whole window, not a sample: the only sampling error
//!   accounted for is that of the audit estimate. An event of `S(t)` with a
//!   human label is counted exactly even though, under `t`, it might have
//!   been auto-accepted without one.
//! - Per bin, the non-forced events are `events − forced`; those without a
//!   human label (`events − forced − low_confidence − audited`, which is
//!   `auto_accepted` for consistent counts) are the unknown ones. Negative
//!   counts read as 0 and bin indices outside 0–99 are clamped.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dashboard::ConfidenceBin;
use super::routing::RoutingPolicy;
use super::stats::wilson_interval;

/// The default target: at most 0.5 % of auto-accepted events wrong.
pub const DEFAULT_TARGET_ERROR: f64 = 0.005;

/// Targets the policy page offers (any value above 0 and below 1 can be
/// asked for through `?target=`).
pub const TARGET_CHOICES: [f64; 6] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05];

/// The target error a request asks for: [`DEFAULT_TARGET_ERROR`] when it
/// names none; an error message when it is not a number above 0 and below 1.
pub fn parse_target(text: Option<&str>) -> Result<f64, String> {
    match text {
        None => Ok(DEFAULT_TARGET_ERROR),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t > 0.0 && *t < 1.0)
            .ok_or_else(|| format!("target must be a number above 0 and below 1, not {text:?}")),
    }
}

/// The default normal quantile of the error bounds (95 %, two-sided).
pub const DEFAULT_Z: f64 = 1.96;

/// Confidence bins of the input; candidates are their `BINS + 1` edges.
pub const BINS: usize = 100;

/// One candidate threshold and what it would have done to the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    /// The threshold: a bin edge, 0.00 to 1.00.
    pub threshold: f64,
    /// Share of all events that would go to a human: forced, low confidence
    /// and audit samples.
    pub review_rate: f64,
    /// Non-forced events at or above the threshold (`|S(t)|`), audit samples
    /// included.
    pub confident: i64,
    /// Expected events accepted without a human: `confident · (1 − audit_rate)`.
    pub auto_accepted: f64,
    /// Events of the confident set known to be wrong (human label differs
    /// from the model's guess).
    pub known_wrong: i64,
    /// Events of the confident set with no human label, whose errors are
    /// estimated from the audit samples.
    pub estimated: i64,
    /// Audit samples the estimate rests on (bins at or above
    /// `max(threshold, lowest audited bin)`).
    pub audit_samples: i64,
    /// Of them, wrong.
    pub audit_wrong: i64,
    /// Estimated error rate of the confident set; absent when it cannot be
    /// estimated (see the module docs).
    pub error: Option<f64>,
    /// Lower bound of the error rate (Wilson lower bound of the audit rate).
    pub error_low: Option<f64>,
    /// Upper bound of the error rate (Wilson upper bound of the audit rate):
    /// the figure compared with the target.
    pub error_high: Option<f64>,
}

/// The recommendation for one store over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    /// Highest acceptable error rate of auto-accepted events.
    pub target_error: f64,
    /// Normal quantile of the bounds (1.96 for 95 %).
    pub z: f64,
    /// Events in the window.
    pub events: i64,
    /// Audit samples with a human label in the window.
    pub audited: i64,
    /// Of them, wrong.
    pub audited_wrong: i64,
    /// The current threshold, read at its nearest bin edge; absent with no
    /// events.
    pub current: Option<Candidate>,
    /// The threshold with the lowest review rate whose upper error bound is
    /// at or below the target; absent when none is.
    pub recommended: Option<Candidate>,
    /// Every bin edge, lowest threshold first.
    pub candidates: Vec<Candidate>,
    /// Why nothing is recommended, in words for the supervisor.
    pub reason_if_none: Option<String>,
}

/// Audit samples needed, with no errors among them, for the Wilson upper
/// bound to reach `target`: the smallest `n` with `z² / (n + z²) ≤ target`,
/// i.e. `⌈z² (1 − target) / target⌉` (765 for 0.5 % at z = 1.96).
pub fn audits_needed(target: f64, z: f64) -> u64 {
    if !(target > 0.0 && target < 1.0 && z.is_finite()) {
        return 0;
    }
    let n = (z * z * (1.0 - target) / target).ceil();
    // Guard the rounding of the division: step down while the smaller count
    // still reaches the target.
    let mut n = n.max(0.0) as u64;
    while n > 0 && z * z / ((n - 1) as f64 + z * z) <= target {
        n -= 1;
    }
    n
}

/// Counts of one bin, cleaned up.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    events: i64,
    confident: i64,
    known_wrong: i64,
    unknown: i64,
    audited: i64,
    audited_wrong: i64,
}

impl Tally {
    fn add(&mut self, b: &ConfidenceBin) {
        let events = b.events.max(0);
        let forced = b.forced.clamp(0, events);
        let confident = events - forced;
        let low = b.low_confidence.clamp(0, confident);
        let audited = b.audited.clamp(0, confident - low);
        self.events += events;
        self.confident += confident;
        self.known_wrong +=
            b.low_confidence_wrong.clamp(0, low) + b.audited_wrong.clamp(0, audited);
        self.unknown += confident - low - audited;
        self.audited += audited;
        self.audited_wrong += b.audited_wrong.clamp(0, audited);
    }

    fn plus(self, o: Tally) -> Tally {
        Tally {
            events: self.events + o.events,
            confident: self.confident + o.confident,
            known_wrong: self.known_wrong + o.known_wrong,
            unknown: self.unknown + o.unknown,
            audited: self.audited + o.audited,
            audited_wrong: self.audited_wrong + o.audited_wrong,
        }
    }
}

/// Estimates every candidate threshold from a store's confidence bins and
/// recommends one (see the module docs for the method and its assumptions).
///
/// `policy` gives the current threshold and the audit rate; `target_error`
/// is usually [`DEFAULT_TARGET_ERROR`] and `z` [`DEFAULT_Z`]. Bins may come
/// in any order, with empty ones left out.
pub fn recommend(
    bins: &[ConfidenceBin],
    policy: &RoutingPolicy,
    target_error: f64,
    z: f64,
) -> Recommendation {
    let mut tally = [Tally::default(); BINS];
    for b in bins {
        tally[b.bin.clamp(0, BINS as i64 - 1) as usize].add(b);
    }
    let total = tally.iter().fold(Tally::default(), |a, &b| a.plus(b));
    let mut out = Recommendation {
        target_error,
        z,
        events: total.events,
        audited: total.audited,
        audited_wrong: total.audited_wrong,
        current: None,
        recommended: None,
        candidates: Vec::new(),
        reason_if_none: None,
    };
    if !(target_error > 0.0 && target_error < 1.0) {
        out.reason_if_none = Some("the target error must be between 0 and 1".into());
        return out;
    }
    if !(z.is_finite() && z > 0.0) {
        out.reason_if_none = Some("z must be a positive number".into());
        return out;
    }
    if total.events == 0 {
        out.reason_if_none = Some("no resolved events in the window".into());
        return out;
    }
    let audit_rate = if policy.audit_rate.is_finite() {
        policy.audit_rate.clamp(0.0, 1.0)
    } else {
        0.0
    };

    // suffix[k]: bins k..100, so suffix[100] is empty.
    let mut suffix = [Tally::default(); BINS + 1];
    for k in (0..BINS).rev() {
        suffix[k] = suffix[k + 1].plus(tally[k]);
    }
    let lowest_audited = tally.iter().position(|t| t.audited > 0).unwrap_or(BINS);

    out.candidates = (0..=BINS)
        .map(|k| {
            let s = suffix[k];
            let audits = suffix[k.max(lowest_audited)];
            candidate(k, s, audits, total.events, audit_rate, z)
        })
        .collect();

    let current = (policy.threshold * BINS as f64)
        .round()
        .clamp(0.0, BINS as f64) as usize;
    out.current = Some(out.candidates[current].clone());

    let mut best: Option<&Candidate> = None;
    for c in &out.candidates {
        if c.error_high.is_some_and(|h| h <= target_error)
            && best.is_none_or(|b| c.review_rate <= b.review_rate)
        {
            best = Some(c);
        }
    }
    out.recommended = best.cloned();
    if out.recommended.is_none() {
        out.reason_if_none = Some(reason_if_none(&out, audit_rate));
    }
    out
}

fn candidate(k: usize, s: Tally, audits: Tally, n: i64, audit_rate: f64, z: f64) -> Candidate {
    let confident = s.confident as f64;
    let mut c = Candidate {
        threshold: k as f64 / BINS as f64,
        review_rate: 1.0 - confident * (1.0 - audit_rate) / n as f64,
        confident: s.confident,
        auto_accepted: confident * (1.0 - audit_rate),
        known_wrong: s.known_wrong,
        estimated: s.unknown,
        audit_samples: audits.audited,
        audit_wrong: audits.audited_wrong,
        error: None,
        error_low: None,
        error_high: None,
    };
    if s.confident == 0 {
        return c;
    }
    let known = s.known_wrong as f64;
    let unknown = s.unknown as f64;
    let (p, low, high) = if s.unknown == 0 {
        (0.0, 0.0, 0.0)
    } else {
        let Some((low, high)) =
            wilson_interval(audits.audited_wrong as u64, audits.audited as u64, z)
        else {
            return c;
        };
        (
            audits.audited_wrong as f64 / audits.audited as f64,
            low,
            high,
        )
    };
    c.error = Some((known + p * unknown) / confident);
    c.error_low = Some((known + low * unknown) / confident);
    c.error_high = Some((known + high * unknown) / confident);
    c
}

/// A share as a percentage with two decimals: `0.005` → `0.50 %`.
fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn reason_if_none(r: &Recommendation, audit_rate: f64) -> String {
    let target = pct(r.target_error);
    let needed = audits_needed(r.target_error, r.z);
    if r.audited == 0 {
        let mut s = format!(
            "no audit samples in the window, so the error of auto-accepted events cannot be \
             estimated; with no errors among them, about {needed} audit samples are needed for \
             the upper error bound to reach {target}"
        );
        if audit_rate > 0.0 {
            let events = (needed as f64 / audit_rate).round();
            s.push_str(&format!(
                " (about {events:.0} confident events at the audit rate of {})",
                pct(audit_rate)
            ));
        } else {
            s.push_str(": the audit rate is 0, set one to measure the error");
        }
        return s;
    }
    let lowest = r
        .candidates
        .iter()
        .filter_map(|c| c.error_high.map(|h| (h, c.threshold)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let mut s = format!("no threshold keeps the upper error bound at or below {target}");
    if let Some((h, t)) = lowest {
        s.push_str(&format!(" (the lowest is {} at {t:.2})", pct(h)));
    }
    let rate = r.audited_wrong as f64 / r.audited as f64;
    if r.audited_wrong == 0 && (r.audited as u64) < needed {
        s.push_str(&format!(
            ": only {} audit samples, none wrong; about {needed} with no errors are needed for \
             the upper bound to reach {target}",
            r.audited
        ));
    } else if rate > r.target_error {
        s.push_str(&format!(
            ": {} of {} audit samples are wrong ({}), above the target itself",
            r.audited_wrong,
            r.audited,
            pct(rate)
        ));
    } else {
        s.push_str(&format!(
            ": {} of {} audit samples are wrong ({}); more samples would narrow the interval",
            r.audited_wrong,
            r.audited,
            pct(rate)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn policy(threshold: f64, audit_rate: f64) -> RoutingPolicy {
        RoutingPolicy {
            threshold,
            audit_rate,
            ..RoutingPolicy::default()
        }
    }

    /// A bin of auto-accepted and audited events (at or above the threshold).
    fn confident(bin: i64, audited: i64, audited_wrong: i64, auto_accepted: i64) -> ConfidenceBin {
        ConfidenceBin {
            bin,
            events: audited + auto_accepted,
            audited,
            audited_wrong,
            auto_accepted,
            ..ConfidenceBin::default()
        }
    }

    /// A bin of events reviewed for low confidence (below the threshold).
    fn low(bin: i64, events: i64, wrong: i64) -> ConfidenceBin {
        ConfidenceBin {
            bin,
            events,
            low_confidence: events,
            low_confidence_wrong: wrong,
            ..ConfidenceBin::default()
        }
    }

    fn at(r: &Recommendation, threshold: f64) -> &Candidate {
        r.candidates
            .iter()
            .find(|c| close(c.threshold, threshold, 1e-9))
            .unwrap()
    }

    /// Store (a): threshold 0.80, audit rate 2 %. Bins 80–99 hold 5 000
    /// events each (100 audited, 4 900 auto-accepted): 2 000 audits, none
    /// wrong. Bins 70–79 hold 1 000 events each, reviewed for low confidence,
    /// with 20, 30, 50, 80, 120 (bins 79 down to 75), 200, 300, 400, 400, 400
    /// (bins 74 down to 70) wrong. N = 110 000.
    fn store_a() -> Vec<ConfidenceBin> {
        let mut bins: Vec<ConfidenceBin> = (80..100).map(|b| confident(b, 100, 0, 4_900)).collect();
        let wrong = [400, 400, 400, 300, 200, 120, 80, 50, 30, 20];
        for (i, w) in wrong.into_iter().enumerate() {
            bins.push(low(70 + i as i64, 1_000, w));
        }
        bins
    }

    #[test]
    fn errors_in_low_bins_and_clean_audits_recommend_the_lowest_safe_threshold() {
        let r = recommend(&store_a(), &policy(0.80, 0.02), 0.005, 1.96);
        // Wilson upper bound of 0/2000: z² / (2000 + z²) = 3.8416 / 2003.8416
        // = 0.0019171. Unknown events: 20 · 4 900 = 98 000 at any t ≤ 0.80.
        // Upper bound at t: (known wrong + 0.0019171 · 98 000) / |S(t)|:
        //   0.80: 187.88 / 100 000 = 0.00188
        //   0.79: (20 + 187.88) / 101 000 = 0.00206
        //   0.78: (50 + 187.88) / 102 000 = 0.00233
        //   0.77: (100 + 187.88) / 103 000 = 0.00279
        //   0.76: (180 + 187.88) / 104 000 = 0.00354
        //   0.75: (300 + 187.88) / 105 000 = 0.00465  ≤ 0.005
        //   0.74: (500 + 187.88) / 106 000 = 0.00649  > 0.005
        // and lower thresholds only add more errors.
        let rec = r.recommended.as_ref().unwrap();
        assert!(close(rec.threshold, 0.75, 1e-12), "{}", rec.threshold);
        assert!(close(rec.error_high.unwrap(), 0.004646452617621596, 1e-12));
        assert_eq!(rec.error, Some(300.0 / 105_000.0));
        assert_eq!(rec.error_low, Some(300.0 / 105_000.0));
        assert_eq!(
            (rec.confident, rec.known_wrong, rec.estimated),
            (105_000, 300, 98_000)
        );
        // Review rate: 1 − 105 000 · 0.98 / 110 000 = 0.064545…
        assert!(close(rec.review_rate, 7_100.0 / 110_000.0, 1e-12));
        assert!(close(rec.auto_accepted, 102_900.0, 1e-9));
        let cur = r.current.as_ref().unwrap();
        assert!(close(cur.threshold, 0.80, 1e-12));
        // 1 − 98 000 / 110 000 = 12 000 / 110 000.
        assert!(close(cur.review_rate, 12_000.0 / 110_000.0, 1e-12));
        assert!(close(cur.error_high.unwrap(), 0.001878775248502676, 1e-12));
        assert!(close(
            at(&r, 0.74).error_high.unwrap(),
            0.006489410611794978,
            1e-12
        ));
        assert_eq!((r.events, r.audited, r.audited_wrong), (110_000, 2_000, 0));
        assert_eq!(r.reason_if_none, None);
        assert_eq!(r.candidates.len(), 101);
    }

    #[test]
    fn no_audit_samples_means_no_recommendation_and_says_why() {
        let bins = vec![
            low(85, 1_000, 10),
            confident(95, 0, 0, 5_000),
            confident(99, 0, 0, 5_000),
        ];
        let r = recommend(&bins, &policy(0.90, 0.02), 0.005, 1.96);
        assert_eq!(r.recommended, None);
        let reason = r.reason_if_none.unwrap();
        assert!(reason.contains("no audit samples"), "{reason}");
        // 1.96² · 0.995 / 0.005 = 764.48 → 765, i.e. 38 250 events at 2 %.
        assert!(reason.contains("765"), "{reason}");
        assert!(reason.contains("38250"), "{reason}");
        // The current threshold has no estimate, but still a review rate:
        // 1 − 10 000 · 0.98 / 11 000.
        let cur = r.current.unwrap();
        assert_eq!(cur.error_high, None);
        assert!(close(cur.review_rate, 1.0 - 9_800.0 / 11_000.0, 1e-12));
        // Every threshold below 1.00 has unknown events; 1.00 reviews all.
        assert!(r.candidates.iter().all(|c| c.error.is_none()));
        assert_eq!(r.candidates[100].review_rate, 1.0);
    }

    #[test]
    fn too_few_clean_audits_say_how_many_are_needed() {
        // 300 audits, none wrong: upper bound 3.8416 / 303.8416 = 1.26 %,
        // diluted only by the audited events themselves.
        let bins = vec![low(80, 500, 5), confident(95, 300, 0, 14_700)];
        let r = recommend(&bins, &policy(0.90, 0.02), 0.005, 1.96);
        assert_eq!(r.recommended, None);
        let reason = r.reason_if_none.unwrap();
        assert!(reason.contains("only 300 audit samples"), "{reason}");
        assert!(reason.contains("765"), "{reason}");
        // Audits with many errors: the reason points at the error itself.
        let bins = vec![confident(95, 2_000, 40, 98_000)];
        let reason = recommend(&bins, &policy(0.90, 0.02), 0.005, 1.96)
            .reason_if_none
            .unwrap();
        assert!(reason.contains("40 of 2000"), "{reason}");
        assert!(reason.contains("2.00 %"), "{reason}");
    }

    #[test]
    fn audits_needed_matches_the_wilson_bound() {
        assert_eq!(audits_needed(0.005, 1.96), 765);
        let hi = |n| wilson_interval(0, n, 1.96).unwrap().1;
        assert!(hi(765) <= 0.005 && hi(764) > 0.005);
        assert_eq!(audits_needed(0.01, 1.96), 381);
        assert!(hi(381) <= 0.01 && hi(380) > 0.01);
        assert_eq!(audits_needed(0.0, 1.96), 0);
    }

    #[test]
    fn review_rate_never_rises_as_the_threshold_falls() {
        // An irregular store: every kind of event in every other bin.
        let bins: Vec<ConfidenceBin> = (0..100)
            .step_by(3)
            .map(|b| ConfidenceBin {
                bin: b,
                events: 50 + (b * 37) % 90,
                forced: (b * 7) % 11,
                low_confidence: if b < 60 { 20 } else { 0 },
                low_confidence_wrong: if b < 60 { (b % 5) + 1 } else { 0 },
                audited: if b >= 60 { 3 } else { 0 },
                audited_wrong: i64::from(b % 9 == 0),
                auto_accepted: if b >= 60 { 30 } else { 0 },
            })
            .collect();
        let r = recommend(&bins, &policy(0.60, 0.05), 0.005, 1.96);
        for w in r.candidates.windows(2) {
            assert!(w[0].threshold < w[1].threshold);
            assert!(w[0].review_rate <= w[1].review_rate, "{w:?}");
            assert!(w[0].confident >= w[1].confident);
        }
        for c in &r.candidates {
            assert!((0.0..=1.0).contains(&c.review_rate));
            if let (Some(lo), Some(e), Some(hi)) = (c.error_low, c.error, c.error_high) {
                assert!(lo <= e && e <= hi, "{c:?}");
            }
        }
    }

    #[test]
    fn forced_events_are_reviewed_whatever_the_threshold() {
        // One bin at 0.95: 100 events, 40 forced (their labels do not
        // matter), 60 auto-accepted, no audits (audit rate 0).
        let bin = ConfidenceBin {
            bin: 95,
            events: 100,
            forced: 40,
            auto_accepted: 60,
            ..ConfidenceBin::default()
        };
        let r = recommend(std::slice::from_ref(&bin), &policy(0.90, 0.0), 0.005, 1.96);
        // Lowest review rate: 40 / 100 at any t ≤ 0.95.
        assert!(close(at(&r, 0.0).review_rate, 0.4, 1e-12));
        assert!(close(at(&r, 0.95).review_rate, 0.4, 1e-12));
        assert_eq!(at(&r, 0.95).confident, 60);
        // Above the bin everything is reviewed, forced included.
        assert_eq!(at(&r, 0.96).review_rate, 1.0);
        assert_eq!(at(&r, 0.96).error, None);
        assert!(r.reason_if_none.unwrap().contains("audit rate is 0"));
        // With audits: 10 audited, 0 wrong, audit rate 10 %. Forced events
        // are neither in the confident set nor in the error.
        let bin = ConfidenceBin {
            audited: 10,
            auto_accepted: 50,
            ..bin
        };
        let r = recommend(&[bin], &policy(0.90, 0.1), 0.5, 1.96);
        let c = at(&r, 0.95);
        // 1 − 60 · 0.9 / 100 = 0.46.
        assert!(close(c.review_rate, 0.46, 1e-12));
        assert_eq!((c.confident, c.estimated, c.known_wrong), (60, 50, 0));
    }

    #[test]
    fn one_threshold_checked_by_hand() {
        // Threshold 0.90, audit rate 10 %.
        //   bin 85: 200 events reviewed for low confidence, 10 wrong;
        //   bin 90: 500 events, 50 audited (2 wrong), 450 auto-accepted;
        //   bin 95: 1 000 events, 100 forced, 50 audited (1 wrong),
        //           850 auto-accepted.
        let bins = vec![
            low(85, 200, 10),
            confident(90, 50, 2, 450),
            ConfidenceBin {
                bin: 95,
                events: 1_000,
                forced: 100,
                audited: 50,
                audited_wrong: 1,
                auto_accepted: 850,
                ..ConfidenceBin::default()
            },
        ];
        let r = recommend(&bins, &policy(0.90, 0.1), 0.005, 1.96);
        let c = at(&r, 0.85);
        // S(0.85) = 200 + 500 + 900 = 1 600 of N = 1 700;
        // r = 1 − 1 600 · 0.9 / 1 700 = 260 / 1 700 = 0.152941.
        assert_eq!((c.confident, r.events), (1_600, 1_700));
        assert!(close(c.review_rate, 260.0 / 1_700.0, 1e-12));
        // Audits from bin 90 up: 3 wrong of 100, p̂ = 0.03. Wilson at 1.96:
        //   centre = 0.03 + 3.8416 / 200 = 0.049208
        //   margin = 1.96 · √(0.03 · 0.97 / 100 + 3.8416 / 40 000)
        //          = 1.96 · √0.00038704 = 0.0385597
        //   low = (0.049208 − 0.0385597) / 1.038416 = 0.0102543
        //   high = (0.049208 + 0.0385597) / 1.038416 = 0.0845208
        assert_eq!((c.audit_samples, c.audit_wrong), (100, 3));
        // Known wrong: 10 (low confidence) + 3 (audited); unknown 450 + 850.
        assert_eq!((c.known_wrong, c.estimated), (13, 1_300));
        // e = (13 + 0.03 · 1 300) / 1 600 = 52 / 1 600 = 0.0325
        // low = (13 + 0.0102543 · 1 300) / 1 600 = 0.0164566
        // high = (13 + 0.0845208 · 1 300) / 1 600 = 0.0767981
        assert!(close(c.error.unwrap(), 0.0325, 1e-12));
        assert!(close(c.error_low.unwrap(), 0.0164566, 1e-6));
        assert!(close(c.error_high.unwrap(), 0.0767981, 1e-6));
        // At 0.95 the range starts at bin 95: 1 of 50 audits wrong.
        let c = at(&r, 0.95);
        assert_eq!((c.audit_samples, c.audit_wrong, c.known_wrong), (50, 1, 1));
        assert!(close(c.error.unwrap(), (1.0 + 0.02 * 850.0) / 900.0, 1e-12));
        // Nothing reaches 0.5 %: 1 of 50 wrong is 2 %.
        assert_eq!(r.recommended, None);
    }

    #[test]
    fn auto_accepted_events_above_the_last_audit_have_no_estimate() {
        // Audits only in bin 90; bin 97 has auto-accepted events.
        let bins = vec![confident(90, 1_000, 0, 9_000), confident(97, 0, 0, 100)];
        let r = recommend(&bins, &policy(0.90, 0.1), 0.05, 1.96);
        assert_eq!(at(&r, 0.91).error, None);
        assert!(at(&r, 0.90).error.is_some());
        // Below the lowest audited bin the pooled rate is used.
        assert_eq!(at(&r, 0.50).audit_samples, 1_000);
        assert_eq!(r.recommended.unwrap().threshold, 0.90);
    }

    #[test]
    fn a_target_is_a_share_strictly_between_0_and_1() {
        assert_eq!(parse_target(None), Ok(DEFAULT_TARGET_ERROR));
        assert_eq!(parse_target(Some("0.01")), Ok(0.01));
        for bad in ["0", "1", "-0.1", "NaN", "inf", "x", ""] {
            assert!(parse_target(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ties_go_to_the_higher_threshold_and_current_reads_the_nearest_edge() {
        // Bins 0–89 are empty: thresholds 0.00–0.90 behave the same.
        let bins = vec![confident(90, 1_000, 0, 9_000)];
        let r = recommend(&bins, &policy(0.904, 0.1), 0.005, 1.96);
        assert_eq!(r.recommended.unwrap().threshold, 0.90);
        assert_eq!(r.current.unwrap().threshold, 0.90);
        let r = recommend(&bins, &policy(0.906, 0.1), 0.005, 1.96);
        assert_eq!(r.current.unwrap().threshold, 0.91);
    }

    #[test]
    fn empty_or_invalid_input_is_answered_not_panicked() {
        let r = recommend(&[], &policy(0.9, 0.02), 0.005, 1.96);
        assert_eq!(r.candidates.len(), 0);
        assert!(r.reason_if_none.unwrap().contains("no resolved events"));
        let bins = vec![confident(150, 10, 0, 10), confident(-3, 10, 0, 10)];
        let r = recommend(&bins, &policy(0.9, 0.02), 0.005, 1.96);
        assert_eq!(r.events, 40);
        assert_eq!(at(&r, 0.99).confident, 20);
        let r = recommend(&bins, &policy(0.9, 0.02), 0.0, 1.96);
        assert!(r.reason_if_none.unwrap().contains("target"));
        let r = recommend(&bins, &policy(0.9, 0.02), 0.005, f64::NAN);
        assert!(r.reason_if_none.is_some());
    }
}
