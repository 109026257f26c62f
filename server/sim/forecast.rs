//! Staffing forecast: how many labelers a store needs in each hour of a
//! coming day to hold p95 receipt latency within its SLA.
//!
//! The day is built from the store's history on the same weekday (the last
//! [`WEEKS`] of them): shoppers and when they came (by UTC hour), their
//! trips and events, the model's confidence, the labelers' handling time
//! and the catalog's prices. It then runs through the simulator under the
//! store's policy ([`super::staffing::needed`]), the same search that gives
//! `recount simulate` its "labeler-hours needed". Whatever the history
//! cannot tell (too few trips, confidences or verdicts to fit) keeps the
//! standard day's value, and [`Basis`] says which.

use serde::{Deserialize, Serialize};

use super::day::Day;
use super::draw::{Drawn, HOUR, MINUTE};
use super::policy::SimPolicy;
use super::staffing;

/// Same weekdays of history a forecast looks back over.
pub const WEEKS: i64 = 4;
/// A day in milliseconds.
pub const DAY: i64 = 24 * HOUR;
/// Fewest observations a fitted value rests on; below it the standard
/// day's value stands.
pub const MIN_SAMPLES: usize = 20;

/// One past shopper (a session), as the forecast reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastShopper {
    /// Their first event (epoch ms).
    pub first_at: i64,
    /// When they left (epoch ms), if they did.
    pub exited_at: Option<i64>,
    /// Events of the trip.
    pub events: u32,
    /// Of them, returns.
    pub returns: u32,
}

/// A store's history on the days a forecast looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Shoppers whose first event falls on one of the days.
    pub shoppers: Vec<PastShopper>,
    /// The model's top confidence over those days' events.
    pub top_confidence: Moments,
    /// Labelers' handling times of those days' verdicts (ms).
    pub handling_ms: Vec<i64>,
    /// Unit prices of the store's catalog (cents).
    pub prices_cents: Vec<i64>,
}

/// The days of history for a forecast of the UTC day starting at
/// `day_start`: the same weekday in each of the [`WEEKS`] weeks before, as
/// `[from, to)` ranges, most recent first.
pub fn history_days(day_start: i64) -> Vec<(i64, i64)> {
    (1..=WEEKS)
        .map(|w| {
            let from = day_start - w * 7 * DAY;
            (from, from + DAY)
        })
        .collect()
}

/// What the forecast took from history, and what it left standard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Basis {
    /// Days of history with shoppers (of the [`WEEKS`] looked at).
    pub days: u32,
    /// Shoppers expected over the day: the mean over those days.
    pub shoppers: u32,
    /// Mean events per shopper.
    pub events_per_shopper: f64,
    /// Median trip in minutes; `None`: too few exits, the standard day's.
    pub trip_median_minutes: Option<f64>,
    /// Median handling time in seconds; `None`: too few verdicts.
    pub handling_median_seconds: Option<f64>,
    /// Mean top confidence; `None`: too few events named one.
    pub mean_confidence: Option<f64>,
    /// Median unit price in cents; `None`: too small a catalog.
    pub price_median_cents: Option<f64>,
}

/// One hour of the forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourNeed {
    /// Start of the hour (epoch ms).
    pub start: i64,
    /// Shoppers expected to arrive in it.
    pub shoppers: f64,
    /// Labelers needed in it.
    pub labelers: u32,
}

/// A store's forecast for one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// What it rests on.
    pub basis: Basis,
    /// Hours from the first with arrivals to the last with work (the day's
    /// last receipts may run past midnight).
    pub hours: Vec<HourNeed>,
    /// Share of events the policy sends to people on the simulated day.
    pub review_rate: f64,
    /// Labeler-hours over the day.
    pub labeler_hours: u64,
    /// p95 receipt latency with that crew, in seconds.
    pub latency_p95_s: f64,
}

impl Forecast {
    /// Labelers needed in the hour that holds `at` (0 outside the hours).
    pub fn needed_at(&self, at: i64) -> u32 {
        self.hours
            .iter()
            .find(|h| (h.start..h.start + HOUR).contains(&at))
            .map_or(0, |h| h.labelers)
    }
}

/// The forecast for the UTC day starting at `day_start` under `policy`
/// with a receipt SLA of `sla_minutes` and reviews costing
/// `review_cost_cents`; `None` when the history has no shoppers.
pub fn forecast(
    history: &History,
    day_start: i64,
    policy: &SimPolicy,
    review_cost_cents: f64,
) -> Option<Forecast> {
    let (day, first_hour, basis) = day_of(history, policy, review_cost_cents)?;
    // One seed per day: the same forecast however often it is asked for.
    let drawn = Drawn::new(&day, (day_start / DAY) as u64);
    let mut policy = policy.clone();
    policy.routing.receipt_sla_ms = (day.sla_minutes * MINUTE as f64).round() as i64;
    let (crew, figures) = staffing::needed(&day, &drawn, &policy);
    let total: f64 = day.arrivals_by_hour.iter().sum();
    let open = day.arrivals_by_hour.len();
    let hours = crew
        .per_hour
        .iter()
        .enumerate()
        .map(|(i, &labelers)| HourNeed {
            start: day_start + (first_hour + i as i64) * HOUR,
            shoppers: if i < open {
                day.shoppers as f64 * day.arrivals_by_hour[i] / total
            } else {
                0.0
            },
            labelers,
        })
        .collect();
    Some(Forecast {
        basis,
        hours,
        review_rate: figures.review_rate,
        labeler_hours: crew.hours(),
        latency_p95_s: figures.latency_p95_s,
    })
}

/// The day the history describes, the UTC hour its opening hour starts
/// at, and what was fitted.
fn day_of(
    history: &History,
    policy: &SimPolicy,
    review_cost_cents: f64,
) -> Option<(Day, i64, Basis)> {
    let standard = Day::default();
    let mut days: Vec<i64> = history
        .shoppers
        .iter()
        .map(|s| s.first_at.div_euclid(DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    if days.is_empty() {
        return None;
    }
    let mut by_hour = [0u32; 24];
    for s in &history.shoppers {
        by_hour[(s.first_at.rem_euclid(DAY) / HOUR) as usize] += 1;
    }
    let first = by_hour.iter().position(|&n| n > 0)?;
    let last = by_hour.iter().rposition(|&n| n > 0)?;
    let shoppers = (history.shoppers.len() as f64 / days.len() as f64)
        .round()
        .max(1.0) as u32;
    let events: u64 = history.shoppers.iter().map(|s| s.events as u64).sum();
    let returns: u64 = history.shoppers.iter().map(|s| s.returns as u64).sum();

    let trips: Vec<f64> = history
        .shoppers
        .iter()
        .filter_map(|s| s.exited_at.map(|e| (e - s.first_at) as f64 / MINUTE as f64))
        .filter(|&m| m > 0.0)
        .collect();
    let trip = log_normal(&trips);
    let handling: Vec<f64> = history
        .handling_ms
        .iter()
        .filter(|&&ms| ms > 0)
        .map(|&ms| ms as f64 / 1_000.0)
        .collect();
    let handling = log_normal(&handling);
    let prices: Vec<f64> = history
        .prices_cents
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64)
        .collect();
    let price = (prices.len() >= 3).then(|| log_normal_any(&prices));
    let confidence = beta(&history.top_confidence);

    let mut day = standard.clone();
    day.shoppers = shoppers;
    day.arrivals_by_hour = by_hour[first..=last].iter().map(|&n| n as f64).collect();
    day.events_per_shopper = (events as f64 / history.shoppers.len() as f64).max(1.0);
    day.return_share = returns as f64 / events.max(1) as f64;
    if let Some((median, sigma)) = trip {
        day.trip_median_minutes = median;
        day.trip_sigma = sigma;
    }
    if let Some((median, sigma)) = handling {
        day.labelers.handling_median_seconds = median;
        day.labelers.handling_sigma = sigma;
    }
    if let Some((median, sigma)) = price {
        day.catalog.products = prices.len() as u32;
        day.catalog.price_median_cents = median;
        day.catalog.price_sigma = sigma;
    }
    if let Some((alpha, beta)) = confidence {
        day.model.confidence_alpha = alpha;
        day.model.confidence_beta = beta;
    }
    day.sla_minutes = policy.routing.receipt_sla_ms as f64 / MINUTE as f64;
    day.review_cost_cents = review_cost_cents;
    // A history is what happened, but a fit can still land outside what
    // the simulator draws from (a single-price catalog, a model that
    // always says 1.0): fall back to the standard value field by field.
    if day.validate().is_err() {
        day.model = standard.model.clone();
        day.catalog = standard.catalog.clone();
    }
    day.validate().ok()?;
    let basis = Basis {
        days: days.len() as u32,
        shoppers,
        events_per_shopper: day.events_per_shopper,
        trip_median_minutes: trip.map(|t| t.0),
        handling_median_seconds: handling.map(|h| h.0),
        mean_confidence: confidence.map(|(a, b)| a / (a + b)),
        price_median_cents: price.map(|p| p.0),
    };
    Some((day, first as i64, basis))
}

/// Median and σ (log space) of positive samples, when there are enough.
fn log_normal(samples: &[f64]) -> Option<(f64, f64)> {
    (samples.len() >= MIN_SAMPLES).then(|| log_normal_any(samples))
}

/// Median (geometric mean) and σ of positive samples in log space.
fn log_normal_any(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let logs: Vec<f64> = samples.iter().map(|x| x.ln()).collect();
    let mean = logs.iter().sum::<f64>() / n;
    let var = logs.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    (mean.exp(), var.sqrt())
}

/// Count, sum and sum of squares of a sample: what a database adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Values.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
}

impl Moments {
    /// The moments of `values`.
    pub fn of(values: &[f64]) -> Moments {
        Moments {
            n: values.len() as u64,
            sum: values.iter().sum(),
            sum_sq: values.iter().map(|v| v * v).sum(),
        }
    }
}

/// Beta(α, β) by the method of moments, when there are enough samples
/// and they vary.
fn beta(m: &Moments) -> Option<(f64, f64)> {
    if m.n < MIN_SAMPLES as u64 {
        return None;
    }
    let n = m.n as f64;
    let mean = m.sum / n;
    let var = m.sum_sq / n - mean * mean;
    if !(var > 0.0 && mean > 0.0 && mean < 1.0) {
        return None;
    }
    let common = mean * (1.0 - mean) / var - 1.0;
    (common > 0.0).then_some((mean * common, (1.0 - mean) * common))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::whatif;

    /// Midnight UTC of Wednesday 2026-11-25.
    const WEDNESDAY: i64 = 1_795_564_800_000;

    fn policy() -> SimPolicy {
        whatif::current(&crate::domain::routing::RoutingPolicy::default())
    }

    /// `n` shoppers a day on each of `days` past Wednesdays, arriving in
    /// `hours` (UTC), each with 8 events and a 12-minute trip.
    fn history(days: i64, hours: &[i64], n: u32) -> History {
        let mut h = History::default();
        for d in 1..=days {
            let midnight = WEDNESDAY - d * 7 * DAY;
            for i in 0..n {
                let hour = hours[i as usize % hours.len()];
                let first_at = midnight + hour * HOUR + (i as i64 * 97_000) % HOUR;
                h.shoppers.push(PastShopper {
                    first_at,
                    exited_at: Some(first_at + 12 * MINUTE),
                    events: 8,
                    returns: 1,
                });
            }
        }
        h
    }

    #[test]
    fn history_days_are_the_same_weekday_in_the_weeks_before() {
        let days = history_days(WEDNESDAY);
        assert_eq!(days.len(), WEEKS as usize);
        assert_eq!(days[0], (WEDNESDAY - 7 * DAY, WEDNESDAY - 6 * DAY));
        assert_eq!(days[3].0, WEDNESDAY - 28 * DAY);
    }

    #[test]
    fn no_shoppers_no_forecast() {
        assert_eq!(
            forecast(&History::default(), WEDNESDAY, &policy(), 5.0),
            None
        );
    }

    #[test]
    fn the_day_takes_the_mean_day_and_its_hours() {
        let h = history(2, &[10, 11, 11, 14], 200);
        let (day, first, basis) = day_of(&h, &policy(), 5.0).unwrap();
        assert_eq!(first, 10);
        assert_eq!(basis.days, 2);
        assert_eq!(day.shoppers, 200, "the mean of two days of 200");
        // 10:00 gets a quarter, 11:00 half, 12–13 nothing, 14:00 a quarter.
        assert_eq!(day.arrivals_by_hour, vec![100.0, 200.0, 0.0, 0.0, 100.0]);
        assert_eq!(day.events_per_shopper, 8.0);
        assert!((day.return_share - 0.125).abs() < 1e-12);
        let trip = basis.trip_median_minutes.unwrap();
        assert!((trip - 12.0).abs() < 1e-9, "{trip}");
        assert_eq!(basis.handling_median_seconds, None, "no verdicts yet");
        assert_eq!(
            day.labelers.handling_median_seconds,
            Day::default().labelers.handling_median_seconds
        );
        assert_eq!(day.sla_minutes, 10.0);
    }

    #[test]
    fn fitted_values_replace_the_standard_ones_with_enough_samples() {
        let mut h = history(1, &[9], 50);
        // Handling times 4 s and 16 s alternately: median 8 s, σ ln 2.
        h.handling_ms = (0..40)
            .map(|i| if i % 2 == 0 { 4_000 } else { 16_000 })
            .collect();
        let confidences: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 0.6 } else { 0.8 })
            .collect();
        h.top_confidence = Moments::of(&confidences);
        h.prices_cents = vec![100, 400, 1_600];
        let (day, _, basis) = day_of(&h, &policy(), 5.0).unwrap();
        assert!((day.labelers.handling_median_seconds - 8.0).abs() < 1e-9);
        assert!((day.labelers.handling_sigma - 2f64.ln()).abs() < 1e-9);
        assert!((basis.mean_confidence.unwrap() - 0.7).abs() < 1e-9);
        // Mean 0.7, variance 0.01: α + β = 0.21 / 0.01 − 1 = 20.
        assert!((day.model.confidence_alpha - 14.0).abs() < 1e-9);
        assert!((day.model.confidence_beta - 6.0).abs() < 1e-9);
        assert!((day.catalog.price_median_cents - 400.0).abs() < 1e-9);
        assert_eq!(day.catalog.products, 3);
        // Too few: the standard value stays.
        h.handling_ms.truncate(MIN_SAMPLES - 1);
        let (day, _, basis) = day_of(&h, &policy(), 5.0).unwrap();
        assert_eq!(basis.handling_median_seconds, None);
        assert_eq!(day.labelers.handling_median_seconds, 8.0);
    }

    #[test]
    fn labelers_follow_the_shoppers_hour_by_hour() {
        // 600 shoppers at 12:00, 60 at 16:00.
        let mut hours = vec![12; 10];
        hours.push(16);
        let h = history(1, &hours, 660);
        let f = forecast(&h, WEDNESDAY, &policy(), 5.0).unwrap();
        assert_eq!(f.hours[0].start, WEDNESDAY + 12 * HOUR);
        let at = |hour: i64| f.needed_at(WEDNESDAY + hour * HOUR + 30 * MINUTE);
        assert!(at(12) > at(16), "{:?}", f.hours);
        assert!(at(16) >= 1);
        assert_eq!(at(11), 0, "before the first arrivals");
        let expected: f64 = f.hours.iter().map(|h| h.shoppers).sum();
        assert!((expected - 660.0).abs() < 1e-6);
        assert!(
            f.latency_p95_s <= 600.0,
            "holds the SLA: {}",
            f.latency_p95_s
        );
        assert_eq!(
            f.labeler_hours,
            f.hours.iter().map(|h| h.labelers as u64).sum::<u64>()
        );
        // The same day asked twice: the same forecast.
        assert_eq!(forecast(&h, WEDNESDAY, &policy(), 5.0).unwrap(), f);
    }

    #[test]
    fn a_busier_history_needs_more_labelers() {
        let quiet = forecast(&history(1, &[12], 100), WEDNESDAY, &policy(), 5.0).unwrap();
        let busy = forecast(&history(1, &[12], 1_000), WEDNESDAY, &policy(), 5.0).unwrap();
        assert!(
            busy.labeler_hours > quiet.labeler_hours,
            "{} vs {}",
            busy.labeler_hours,
            quiet.labeler_hours
        );
    }
}
