//! The day's random draws, made once from the seed so every policy of a run
//! sees the same shoppers, the same model answers and the same audit draws;
//! and the reviewers' draws, made per event and verdict from the seed (not
//! from a stream), so the same task gets the same answer after the same
//! time whichever policy sent it and whoever takes it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal, Normal, Poisson};

use super::day::Day;
use crate::domain::charge::{self, Priced};
use crate::domain::Action;

/// Milliseconds in a minute.
pub const MINUTE: i64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;

/// A product on the shelves.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Its sku (`p0001`, …).
    pub sku: String,
    /// Unit price in cents.
    pub price_cents: i64,
}

/// One event of a shopper: what really happened and what the model said.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index of the shopper.
    pub shopper: u32,
    /// When, in ms from opening.
    pub at: i64,
    /// What the shopper did: a pick or a return, of one unit.
    pub action: Action,
    /// The product that really moved.
    pub truth: u32,
    /// The model's candidates (products) and confidences, top first.
    pub candidates: [(u32, f64); 3],
    /// The routing rule's audit draw, uniform in `[0, 1)`.
    pub audit_draw: f64,
    /// The expected charge error of accepting the top candidate with the
    /// model's true accuracy at this confidence (the day's `overconfidence`
    /// included): what the figures count, whatever routing believed.
    pub true_expected_error_cents: f64,
}

impl Event {
    /// The model's top candidate.
    pub fn top(&self) -> u32 {
        self.candidates[0].0
    }

    /// The candidates' confidences, in the order the routing rule gets them.
    pub fn confidences(&self) -> [f64; 3] {
        self.candidates.map(|(_, c)| c)
    }
}

/// A shopper's trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Shopper {
    /// Arrival, ms from opening.
    pub arrive: i64,
    /// Exit, ms from opening.
    pub exit: i64,
    /// Their events: indexes into [`Drawn::events`].
    pub events: std::ops::Range<usize>,
}

/// A drawn day.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The products.
    pub products: Vec<Product>,
    /// Shoppers in arrival order.
    pub shoppers: Vec<Shopper>,
    /// Every event, grouped by shopper in their order.
    pub events: Vec<Event>,
    /// The seed of the reviewers' draws.
    pub seed: u64,
}

impl Drawn {
    /// Draws `day` from `seed`.
    pub fn new(day: &Day, seed: u64) -> Drawn {
        let mut rng = StdRng::seed_from_u64(seed);
        let products = catalog(day, &mut rng);
        let trip = LogNormal::new(
            (day.trip_median_minutes * MINUTE as f64).ln(),
            day.trip_sigma,
        )
        .expect("validated trip");
        let per_shopper = Poisson::new(day.events_per_shopper).expect("validated events");
        let confidence = Beta::new(day.model.confidence_alpha, day.model.confidence_beta)
            .expect("validated model");
        let total: f64 = day.arrivals_by_hour.iter().sum();
        let mut arrivals: Vec<i64> = (0..day.shoppers)
            .map(|_| {
                let mut pick = rng.gen::<f64>() * total;
                let mut hour = 0;
                for (h, w) in day.arrivals_by_hour.iter().enumerate() {
                    hour = h;
                    if pick < *w {
                        break;
                    }
                    pick -= w;
                }
                hour as i64 * HOUR + rng.gen_range(0..HOUR)
            })
            .collect();
        arrivals.sort_unstable();
        let mut shoppers = Vec::with_capacity(arrivals.len());
        let mut events = Vec::new();
        for (i, arrive) in arrivals.into_iter().enumerate() {
            let length = (trip.sample(&mut rng) as i64).max(MINUTE);
            let count = (per_shopper.sample(&mut rng) as usize).max(1);
            let mut times: Vec<i64> = (0..count)
                .map(|_| arrive + rng.gen_range(0..length))
                .collect();
            times.sort_unstable();
            let first = events.len();
            for at in times {
                let truth = rng.gen_range(0..products.len() as u32);
                let action = if rng.gen::<f64>() < day.return_share {
                    Action::Return
                } else {
                    Action::Pick
                };
                let neighbours = neighbours(truth, products.len() as u32);
                let top_confidence: f64 = confidence.sample(&mut rng);
                let right = rng.gen::<f64>() < top_confidence * (1.0 - day.model.overconfidence);
                let split: f64 = rng.gen();
                let rest = 1.0 - top_confidence;
                let (top, others) = if right {
                    (truth, neighbours)
                } else if rng.gen::<bool>() {
                    (neighbours[0], [truth, neighbours[1]])
                } else {
                    (neighbours[1], [truth, neighbours[0]])
                };
                // The others share the rest, none above the top candidate
                // (what a very unsure model leaves over is "nothing").
                let candidates = [
                    (top, top_confidence),
                    (others[0], (rest * split).min(top_confidence)),
                    (others[1], (rest * (1.0 - split)).min(top_confidence)),
                ];
                let priced = candidates.map(|(p, c)| Priced {
                    confidence: c,
                    unit_price_cents: products[p as usize].price_cents,
                });
                let p_right = top_confidence * (1.0 - day.model.overconfidence);
                let true_expected_error_cents = charge::expected_error_cents(
                    &priced,
                    0,
                    1,
                    &charge::outcomes(&priced, 0, p_right),
                );
                events.push(Event {
                    shopper: i as u32,
                    at,
                    action,
                    truth,
                    candidates,
                    audit_draw: rng.gen(),
                    true_expected_error_cents,
                });
            }
            shoppers.push(Shopper {
                arrive,
                exit: arrive + length,
                events: first..events.len(),
            });
        }
        Drawn {
            products,
            shoppers,
            events,
            seed,
        }
    }

    /// The `k`-th reviewer's draw on event `event`: how long they take
    /// (`median_ms` log-normal with `sigma`) and whether they are right
    /// (with probability `accuracy`), and which wrong candidate they name
    /// when they are not.
    pub fn review(&self, event: usize, k: u32, who: Reviewer) -> Review {
        let u = |stream: u64| {
            unit(
                self.seed,
                event as u64,
                k as u64 + (who as u64) * 1_000,
                stream,
            )
        };
        let normal = (-2.0 * (1.0 - u(0)).ln()).sqrt() * (std::f64::consts::TAU * u(1)).cos();
        Review {
            normal,
            right: u(2),
            wrong_pick: u(3),
        }
    }
}

/// Who answers: a labeler or a supervisor (their draws are apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewer {
    /// A labeler's verdict.
    Labeler = 0,
    /// A supervisor's settlement.
    Supervisor = 1,
}

/// A reviewer's raw draws on one task, turned into a time and an answer by
/// [`Review::time_ms`] and [`Review::is_right`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Review {
    normal: f64,
    right: f64,
    wrong_pick: f64,
}

impl Review {
    /// Handling time for a log-normal of `median_ms` and `sigma`.
    pub fn time_ms(&self, median_ms: f64, sigma: f64) -> i64 {
        ((median_ms.ln() + sigma * self.normal).exp() as i64).max(1_000)
    }

    /// Whether the answer is right, for `accuracy`.
    pub fn is_right(&self, accuracy: f64) -> bool {
        self.right < accuracy
    }

    /// Which of `n` wrong answers a wrong reviewer gives.
    pub fn wrong_choice(&self, n: usize) -> usize {
        ((self.wrong_pick * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// Products on one shelf: prices follow each other along a shelf, and a
/// new shelf starts afresh, so the catalog holds many independent price
/// levels.
const SHELF: u32 = 20;

/// A product's shelf neighbours: the products on either side of it; at a
/// shelf's end, the next two inward.
fn neighbours(product: u32, products: u32) -> [u32; 2] {
    let start = product / SHELF * SHELF;
    let end = (start + SHELF).min(products);
    if end - start < 3 {
        // A short last shelf borrows from the one before.
        return [
            (product + products - 1) % products,
            (product + products - 2) % products,
        ];
    }
    if product == start {
        [product + 1, product + 2]
    } else if product + 1 == end {
        [product - 1, product - 2]
    } else {
        [product - 1, product + 1]
    }
}

/// The catalog, shelf by shelf. Along a shelf each product is a same-price
/// variant of the one before it with probability `same_price_share`;
/// otherwise its log price follows the one before it as a stationary AR(1)
/// process around the median, so prices are log-normal (`price_sigma`)
/// across the catalog and a neighbour's price is the product's times a
/// log-normal factor of `neighbour_price_sigma` (2σ²(1 − ρ) = σ_n²).
fn catalog(day: &Day, rng: &mut StdRng) -> Vec<Product> {
    let c = &day.catalog;
    let mu = c.price_median_cents.ln();
    let sigma = c.price_sigma;
    let rho = if sigma > 0.0 {
        (1.0 - c.neighbour_price_sigma.powi(2) / (2.0 * sigma * sigma)).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let step = Normal::new(0.0, sigma * (1.0 - rho * rho).max(0.0).sqrt()).expect("finite");
    let fresh = Normal::new(mu, sigma).expect("validated price");
    let mut log_price = mu;
    let mut products = Vec::with_capacity(c.products as usize);
    for i in 0..c.products {
        if i % SHELF == 0 {
            log_price = fresh.sample(rng);
        } else if rng.gen::<f64>() >= c.same_price_share {
            log_price = mu + rho * (log_price - mu) + step.sample(rng);
        }
        products.push(Product {
            sku: format!("p{i:05}"),
            price_cents: (log_price.exp().round() as i64).max(1),
        });
    }
    products
}

/// A uniform draw in `[0, 1)` that is a pure function of its inputs
/// (SplitMix64 over them).
fn unit(seed: u64, a: u64, b: u64, c: u64) -> f64 {
    let mut x = seed;
    for v in [a, b, c] {
        x = mix(x ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Day {
        Day {
            shoppers: 400,
            catalog: crate::sim::day::CatalogSpec {
                products: 100,
                ..Default::default()
            },
            ..Day::default()
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_day_and_another_seed_another() {
        let a = Drawn::new(&small(), 7);
        let b = Drawn::new(&small(), 7);
        let c = Drawn::new(&small(), 8);
        assert_eq!(a.events, b.events);
        assert_eq!(a.shoppers, b.shoppers);
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn a_drawn_day_has_the_shape_its_spec_asks_for() {
        let day = Day::default();
        let d = Drawn::new(&day, 1);
        assert_eq!(d.shoppers.len(), 10_000);
        assert_eq!(d.products.len(), 2_000);
        let per_shopper = d.events.len() as f64 / d.shoppers.len() as f64;
        assert!((7.7..8.3).contains(&per_shopper), "{per_shopper}");
        let returns = d
            .events
            .iter()
            .filter(|e| e.action == Action::Return)
            .count() as f64
            / d.events.len() as f64;
        assert!((0.09..0.11).contains(&returns), "{returns}");
        // Calibrated: the top candidate is right about as often as claimed.
        let claimed: f64 = d.events.iter().map(|e| e.candidates[0].1).sum();
        let right = d.events.iter().filter(|e| e.top() == e.truth).count() as f64;
        assert!((right / claimed - 1.0).abs() < 0.01, "{right} vs {claimed}");
        // Trips: median 12 minutes.
        let mut trips: Vec<f64> = d
            .shoppers
            .iter()
            .map(|s| (s.exit - s.arrive) as f64)
            .collect();
        trips.sort_by(f64::total_cmp);
        let median = trips[trips.len() / 2] / MINUTE as f64;
        assert!((11.5..12.5).contains(&median), "{median}");
        // Prices: median 3.50, σ 1 in log space; 30 % of neighbours are
        // same-price variants, the others σ 0.3 apart in log space.
        let logs: Vec<f64> = d
            .products
            .iter()
            .map(|p| (p.price_cents as f64).ln())
            .collect();
        let mut prices: Vec<i64> = d.products.iter().map(|p| p.price_cents).collect();
        prices.sort_unstable();
        let median = prices[prices.len() / 2];
        assert!((280..440).contains(&median), "{median}");
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        assert!((0.75..1.25).contains(&sd), "{sd}");
        let steps: Vec<f64> = logs
            .windows(2)
            .enumerate()
            .filter(|(i, _)| (i + 1) % SHELF as usize != 0)
            .map(|(_, w)| w[1] - w[0])
            .collect();
        let same = steps.iter().filter(|s| **s == 0.0).count() as f64 / steps.len() as f64;
        assert!((0.27..0.33).contains(&same), "{same}");
        let moved: Vec<f64> = steps.iter().copied().filter(|s| *s != 0.0).collect();
        let spread = (moved.iter().map(|s| s * s).sum::<f64>() / moved.len() as f64).sqrt();
        assert!((0.27..0.33).contains(&spread), "{spread}");
        // Candidates are the true item and its shelf neighbours.
        let n = d.products.len() as u32;
        for e in d.events.iter().take(1000) {
            let [a, b] = neighbours(e.truth, n);
            assert!(a.abs_diff(e.truth) <= 2 && b.abs_diff(e.truth) <= 2);
            assert_eq!(a / SHELF, e.truth / SHELF, "same shelf");
            let mut shelf = vec![a, e.truth, b];
            let mut seen: Vec<u32> = e.candidates.iter().map(|(p, _)| *p).collect();
            shelf.sort_unstable();
            seen.sort_unstable();
            assert_eq!(seen, shelf);
            let sum: f64 = e.candidates.iter().map(|(_, c)| c).sum();
            assert!(sum <= 1.0 + 1e-9);
            assert_eq!(
                crate::domain::routing::top_index(&e.confidences()),
                Some(0),
                "the top candidate comes first"
            );
        }
    }

    #[test]
    fn a_reviewers_draw_depends_on_the_event_and_turn_only() {
        let d = Drawn::new(&small(), 3);
        let a = d.review(5, 0, Reviewer::Labeler);
        assert_eq!(a, d.review(5, 0, Reviewer::Labeler));
        assert_ne!(a, d.review(5, 1, Reviewer::Labeler));
        assert_ne!(a, d.review(6, 0, Reviewer::Labeler));
        assert_ne!(a, d.review(5, 0, Reviewer::Supervisor));
        let mut times: Vec<i64> = (0..2001)
            .map(|e| d.review(e, 0, Reviewer::Labeler).time_ms(8_000.0, 0.5))
            .collect();
        times.sort_unstable();
        assert!((7_600..8_400).contains(&times[1000]), "{}", times[1000]);
    }
}
