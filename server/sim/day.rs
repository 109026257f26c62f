//! A store day as the simulator takes it: who comes when, what they do,
//! what the model says about it, who answers the reviews, and the store's
//! receipt deadline. Read from a JSON file (`recount simulate --day FILE`);
//! every field left out keeps the standard day's value, so a file states
//! only what differs.

use serde::{Deserialize, Serialize};

/// A store day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Day {
    /// Shoppers over the day.
    pub shoppers: u32,
    /// Relative arrivals per opening hour, first hour first; its length is
    /// the number of opening hours.
    pub arrivals_by_hour: Vec<f64>,
    /// Median trip length in minutes (log-normal).
    pub trip_median_minutes: f64,
    /// σ of the trip length in log space.
    pub trip_sigma: f64,
    /// Mean events per shopper (Poisson, at least one).
    pub events_per_shopper: f64,
    /// Share of events that put a product back.
    pub return_share: f64,
    /// The products on the shelves.
    pub catalog: CatalogSpec,
    /// What the model says.
    pub model: ModelSpec,
    /// Who answers reviews.
    pub labelers: LabelerSpec,
    /// Who settles escalated tasks.
    pub supervisors: SupervisorSpec,
    /// Receipt deadline after exit, in minutes.
    pub sla_minutes: f64,
    /// What one review costs, in cents (charge-aware routing, and the
    /// labeler time in the cost per 1,000 receipts is counted apart).
    pub review_cost_cents: f64,
}

/// The catalog: products in shelf groups of three that look alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSpec {
    /// Products.
    pub products: u32,
    /// Median unit price in cents (log-normal).
    pub price_median_cents: f64,
    /// σ of the price in log space.
    pub price_sigma: f64,
    /// σ (log space) of a shelf neighbour's price over the item's.
    pub neighbour_price_sigma: f64,
    /// Share of neighbours that are same-price variants.
    pub same_price_share: f64,
}

/// The store's model: its top candidate's confidence is Beta(α, β) and the
/// top candidate is right that often (calibrated) unless `overconfidence`
/// says it is right less often than it claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// α of the top confidence.
    pub confidence_alpha: f64,
    /// β of the top confidence.
    pub confidence_beta: f64,
    /// How much less often than its confidence the top candidate is right
    /// (0 = calibrated).
    pub overconfidence: f64,
}

/// The labelers: their shifts, speed and accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelerSpec {
    /// Who works when; when empty, the simulator staffs each hour for the
    /// work it brings (see `docs/economics.md`).
    pub shifts: Vec<Shift>,
    /// Median handling time per task, in seconds (log-normal).
    pub handling_median_seconds: f64,
    /// σ of the handling time in log space.
    pub handling_sigma: f64,
    /// Probability a verdict names what really happened.
    pub accuracy: f64,
    /// An hour of a labeler, in cents.
    pub hourly_cost_cents: f64,
}

/// Labelers at work from one hour to another (hours from opening).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// First hour (from opening).
    pub from_hour: u32,
    /// Hour the shift ends (exclusive).
    pub to_hour: u32,
    /// Labelers on it.
    pub labelers: u32,
}

/// Supervisors: on duty all day, settling escalated tasks in deadline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorSpec {
    /// Supervisors on duty.
    pub count: u32,
    /// Median time to settle a task, in seconds (log-normal, σ of the
    /// labelers).
    pub handling_median_seconds: f64,
    /// Probability their label is what really happened.
    pub accuracy: f64,
}

impl Default for Day {
    /// The standard day of `docs/economics.md`.
    fn default() -> Day {
        Day {
            shoppers: 10_000,
            // 8:00 to 22:00: a lunch peak at 12–14 and an evening one at 17–19.
            arrivals_by_hour: vec![
                4.0, 5.0, 6.0, 7.0, 11.0, 11.0, 7.0, 6.0, 6.0, 9.0, 12.0, 11.0, 7.0, 4.0,
            ],
            trip_median_minutes: 12.0,
            trip_sigma: 0.5,
            events_per_shopper: 8.0,
            return_share: 0.1,
            catalog: CatalogSpec::default(),
            model: ModelSpec::default(),
            labelers: LabelerSpec::default(),
            supervisors: SupervisorSpec::default(),
            sla_minutes: 10.0,
            review_cost_cents: 5.0,
        }
    }
}

impl Default for CatalogSpec {
    fn default() -> CatalogSpec {
        CatalogSpec {
            products: 2_000,
            price_median_cents: 350.0,
            price_sigma: 1.0,
            neighbour_price_sigma: 0.3,
            same_price_share: 0.3,
        }
    }
}

impl Default for ModelSpec {
    fn default() -> ModelSpec {
        ModelSpec {
            confidence_alpha: 8.0,
            confidence_beta: 1.5,
            overconfidence: 0.0,
        }
    }
}

impl Default for LabelerSpec {
    fn default() -> LabelerSpec {
        LabelerSpec {
            shifts: Vec::new(),
            handling_median_seconds: 8.0,
            handling_sigma: 0.5,
            accuracy: 0.98,
            hourly_cost_cents: 2_250.0,
        }
    }
}

impl Default for SupervisorSpec {
    fn default() -> SupervisorSpec {
        SupervisorSpec {
            count: 1,
            handling_median_seconds: 20.0,
            accuracy: 0.995,
        }
    }
}

/// Why a day was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DayError {
    /// The offending field, as a path (`catalog.price_sigma`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Day {
    /// Reads a day from JSON; unknown fields and wrong types are refused
    /// with serde's message (which names the field), impossible values by
    /// [`Day::validate`].
    pub fn from_json(text: &str) -> Result<Day, DayError> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let day: Day = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let field = e.path().to_string();
            DayError {
                field: if field == "." || field == "?" {
                    "day".into()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            }
        })?;
        day.validate()?;
        Ok(day)
    }

    /// Opening hours.
    pub fn hours(&self) -> u32 {
        self.arrivals_by_hour.len() as u32
    }

    /// Checks that every value is possible.
    pub fn validate(&self) -> Result<(), DayError> {
        let fail = |field: &str, message: &str| {
            Err(DayError {
                field: field.into(),
                message: message.into(),
            })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        let share = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if self.shoppers == 0 || self.shoppers > 1_000_000 {
            return fail("shoppers", "must be between 1 and 1000000");
        }
        if self.arrivals_by_hour.is_empty() || self.arrivals_by_hour.len() > 24 {
            return fail("arrivals_by_hour", "must list 1 to 24 opening hours");
        }
        if let Some(i) = self.arrivals_by_hour.iter().position(|&w| !non_negative(w)) {
            return fail(&format!("arrivals_by_hour[{i}]"), "must not be negative");
        }
        if self.arrivals_by_hour.iter().sum::<f64>() <= 0.0 {
            return fail("arrivals_by_hour", "some hour must have arrivals");
        }
        let checks: [(&str, bool, &str); 20] = [
            (
                "trip_median_minutes",
                positive(self.trip_median_minutes),
                "must be positive",
            ),
            (
                "trip_sigma",
                non_negative(self.trip_sigma),
                "must not be negative",
            ),
            (
                "events_per_shopper",
                positive(self.events_per_shopper) && self.events_per_shopper <= 1_000.0,
                "must be positive and at most 1000",
            ),
            (
                "return_share",
                share(self.return_share),
                "must be between 0 and 1",
            ),
            (
                "catalog.products",
                self.catalog.products >= 3,
                "must be at least 3",
            ),
            (
                "catalog.price_median_cents",
                positive(self.catalog.price_median_cents),
                "must be positive",
            ),
            (
                "catalog.price_sigma",
                non_negative(self.catalog.price_sigma),
                "must not be negative",
            ),
            (
                "catalog.neighbour_price_sigma",
                non_negative(self.catalog.neighbour_price_sigma),
                "must not be negative",
            ),
            (
                "catalog.same_price_share",
                share(self.catalog.same_price_share),
                "must be between 0 and 1",
            ),
            (
                "model.confidence_alpha",
                positive(self.model.confidence_alpha),
                "must be positive",
            ),
            (
                "model.confidence_beta",
                positive(self.model.confidence_beta),
                "must be positive",
            ),
            (
                "model.overconfidence",
                share(self.model.overconfidence),
                "must be between 0 and 1",
            ),
            (
                "labelers.handling_median_seconds",
                positive(self.labelers.handling_median_seconds),
                "must be positive",
            ),
            (
                "labelers.handling_sigma",
                non_negative(self.labelers.handling_sigma),
                "must not be negative",
            ),
            (
                "labelers.accuracy",
                share(self.labelers.accuracy),
                "must be between 0 and 1",
            ),
            (
                "labelers.hourly_cost_cents",
                non_negative(self.labelers.hourly_cost_cents),
                "must not be negative",
            ),
            (
                "supervisors.handling_median_seconds",
                positive(self.supervisors.handling_median_seconds),
                "must be positive",
            ),
            (
                "supervisors.accuracy",
                share(self.supervisors.accuracy),
                "must be between 0 and 1",
            ),
            (
                "sla_minutes",
                positive(self.sla_minutes),
                "must be positive",
            ),
            (
                "review_cost_cents",
                non_negative(self.review_cost_cents),
                "must not be negative",
            ),
        ];
        if let Some((field, _, message)) = checks.iter().find(|(_, ok, _)| !ok) {
            return fail(field, message);
        }
        if self.supervisors.count == 0 {
            return fail(
                "supervisors.count",
                "must be at least 1: escalated tasks need someone",
            );
        }
        for (i, s) in self.labelers.shifts.iter().enumerate() {
            if s.from_hour >= s.to_hour || s.to_hour > 48 {
                return fail(
                    &format!("labelers.shifts[{i}]"),
                    "from_hour must be before to_hour, and to_hour at most 48",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_day_is_valid_and_an_empty_file_is_the_standard_day() {
        assert_eq!(Day::default().validate(), Ok(()));
        assert_eq!(Day::from_json("{}"), Ok(Day::default()));
        assert_eq!(Day::default().hours(), 14);
    }

    #[test]
    fn a_file_states_only_what_differs() {
        let day = Day::from_json(r#"{"shoppers": 300, "catalog": {"products": 60}}"#).unwrap();
        assert_eq!(day.shoppers, 300);
        assert_eq!(day.catalog.products, 60);
        assert_eq!(day.catalog.price_median_cents, 350.0);
        assert_eq!(day.labelers, LabelerSpec::default());
    }

    #[test]
    fn impossible_values_are_refused_naming_the_field() {
        let cases = [
            (r#"{"return_share": 1.5}"#, "return_share"),
            (r#"{"events_per_shopper": -2}"#, "events_per_shopper"),
            (r#"{"labelers": {"accuracy": -0.1}}"#, "labelers.accuracy"),
            (
                r#"{"catalog": {"same_price_share": 2}}"#,
                "catalog.same_price_share",
            ),
            (r#"{"arrivals_by_hour": [1, -3]}"#, "arrivals_by_hour[1]"),
            (r#"{"arrivals_by_hour": []}"#, "arrivals_by_hour"),
            (r#"{"supervisors": {"count": 0}}"#, "supervisors.count"),
            (
                r#"{"labelers": {"shifts": [{"from_hour": 5, "to_hour": 2, "labelers": 1}]}}"#,
                "labelers.shifts[0]",
            ),
        ];
        for (text, field) in cases {
            let e = Day::from_json(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_field() {
        let e = Day::from_json(r#"{"shopers": 10}"#).unwrap_err();
        assert!(e.message.contains("shopers"), "{e}");
        let e = Day::from_json(r#"{"shoppers": -1}"#).unwrap_err();
        assert_eq!(e.field, "shoppers", "{e}");
        let e = Day::from_json(r#"{"catalog": {"products": "many"}}"#).unwrap_err();
        assert_eq!(e.field, "catalog.products", "{e}");
        let e = Day::from_json("{").unwrap_err();
        assert_eq!(e.field, "day", "{e}");
    }
}
