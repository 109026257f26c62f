//! Receipts: what the shopper owes once every event of the session is settled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Action, Label};

/// One settled event as the receipt needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledEvent {
    /// The final label.
    pub label: Label,
    /// When it happened (epoch ms); the latest pick sets the unit price.
    pub occurred_at: i64,
    /// Catalog unit price of the label's sku at `occurred_at`.
    pub unit_price_cents: i64,
    /// Product name at finalization.
    pub name: String,
}

// The one contract of `GET …/receipt` and of the receipt webhook, so it
// lives here rather than with either (its doc comment is the API's text).
/// A receipt as stores read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Receipt {
    /// The store's session id.
    pub session_id: String,
    /// `pending` until every event is settled after exit, then `final`.
    pub status: String,
    /// The receipt's version once final: 1 at finalization, one more with
    /// each adjustment; `null` while pending.
    pub version: Option<i64>,
    /// Net lines; while pending, what is settled so far.
    pub lines: Vec<ReceiptLine>,
    /// Sum of the lines in cents.
    pub total_cents: i64,
    /// When the shopper left (RFC 3339), once known.
    pub exited_at: Option<String>,
    /// When the receipt became final (RFC 3339).
    pub finalized_at: Option<String>,
    /// Events of the session still waiting for a human.
    pub events_in_review: i64,
    /// Every adjustment of the final receipt, oldest first (versions 2, 3, …).
    pub adjustments: Vec<Adjustment>,
}

/// A correction of a final receipt: the version it made and what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Adjustment {
    /// The receipt version this adjustment made (2 or more).
    pub version: i64,
    /// `audit` (an audit sample's reviewers disagreed with the model),
    /// `correction` (a supervisor corrected a settled event) or `dispute`
    /// (a shopper's dispute was upheld).
    pub cause: String,
    /// The dispute that was upheld, for `dispute`.
    pub dispute_id: Option<String>,
    /// When the receipt was adjusted (RFC 3339).
    pub adjusted_at: String,
    /// The lines that changed.
    pub changes: Vec<LineChange>,
    /// The total after minus the total before, in cents (negative: the
    /// shopper is owed money back).
    pub total_cents_delta: i64,
}

/// One receipt line before and after an adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineChange {
    /// Product sku.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units before (0: the line is new).
    pub quantity_before: i64,
    /// Units after (0: the line is gone).
    pub quantity_after: i64,
    /// The line's total after minus before, in cents.
    pub total_cents_delta: i64,
}

/// Why a final receipt gets a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An audit sample's reviewers settled on another label than the model.
    Audit,
    /// A supervisor corrected the label of a settled event.
    Correction,
    /// A shopper's dispute was upheld.
    Dispute,
}

impl Cause {
    /// The stored and sent spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Audit => "audit",
            Cause::Correction => "correction",
            Cause::Dispute => "dispute",
        }
    }
}

/// The lines that differ between two receipts (both sorted by sku, as
/// [`compute`] makes them), sorted by sku; empty when nothing changed, in
/// which case no new version is made.
pub fn changes(before: &[ReceiptLine], after: &[ReceiptLine]) -> Vec<LineChange> {
    let mut by_sku: BTreeMap<&str, (Option<&ReceiptLine>, Option<&ReceiptLine>)> = BTreeMap::new();
    for l in before {
        by_sku.entry(&l.sku).or_default().0 = Some(l);
    }
    for l in after {
        by_sku.entry(&l.sku).or_default().1 = Some(l);
    }
    by_sku
        .into_iter()
        .filter(|(_, (b, a))| b != a)
        .map(|(sku, (b, a))| {
            let qty = |l: Option<&ReceiptLine>| l.map_or(0, |l| l.quantity);
            let total = |l: Option<&ReceiptLine>| l.map_or(0, |l| l.total_cents);
            LineChange {
                sku: sku.to_string(),
                name: a.or(b).map(|l| l.name.clone()).unwrap_or_default(),
                quantity_before: qty(b),
                quantity_after: qty(a),
                total_cents_delta: total(a) - total(b),
            }
        })
        .collect()
}

/// The net units of `sku` on a receipt (0 when it has no line).
pub fn quantity_of(lines: &[ReceiptLine], sku: &str) -> i64 {
    lines
        .iter()
        .find(|l| l.sku == sku)
        .map_or(0, |l| l.quantity)
}

/// One line of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptLine {
    /// Product sku.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Net units taken (picks minus returns).
    pub quantity: i64,
    /// Price of one unit, in cents, at the time of the latest pick.
    pub unit_price_cents: i64,
    /// `quantity × unit_price_cents`.
    pub total_cents: i64,
}

/// Computes receipt lines and total from the session's settled events.
///
/// Net quantity per sku is picks minus returns. A sku whose net is zero or
/// below gets no line: a shopper is never credited for putting back something
/// the session did not charge. Lines are sorted by sku so the same events
/// always give the same receipt.
pub fn compute(events: &[SettledEvent]) -> (Vec<ReceiptLine>, i64) {
    struct Acc<'a> {
        net: i64,
        price: i64,
        priced_at: i64,
        name: &'a str,
    }
    let mut by_sku: BTreeMap<&str, Acc> = BTreeMap::new();
    for e in events {
        let Some(sku) = e.label.sku.as_deref() else {
            continue;
        };
        let delta = match e.label.action {
            Action::Pick => e.label.quantity,
            Action::Return => -e.label.quantity,
            Action::None => continue,
        };
        let acc = by_sku.entry(sku).or_insert(Acc {
            net: 0,
            price: e.unit_price_cents,
            priced_at: i64::MIN,
            name: &e.name,
        });
        acc.net += delta;
        if e.label.action == Action::Pick && e.occurred_at >= acc.priced_at {
            acc.price = e.unit_price_cents;
            acc.priced_at = e.occurred_at;
        }
    }
    let lines: Vec<ReceiptLine> = by_sku
        .into_iter()
        .filter(|(_, a)| a.net > 0)
        .map(|(sku, a)| ReceiptLine {
            sku: sku.to_string(),
            name: a.name.to_string(),
            quantity: a.net,
            unit_price_cents: a.price,
            total_cents: a.net * a.price,
        })
        .collect();
    let total = lines.iter().map(|l| l.total_cents).sum();
    (lines, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: Action, sku: &str, q: i64, at: i64, price: i64) -> SettledEvent {
        SettledEvent {
            label: Label::new(action, Some(sku.into()), q),
            occurred_at: at,
            unit_price_cents: price,
            name: format!("{sku} name"),
        }
    }

    #[test]
    fn picks_minus_returns_per_sku() {
        let (lines, total) = compute(&[
            ev(Action::Pick, "milk", 2, 1, 150),
            ev(Action::Return, "milk", 1, 2, 150),
            ev(Action::Pick, "bread", 1, 3, 300),
        ]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].sku, "bread");
        assert_eq!(lines[0].total_cents, 300);
        assert_eq!(lines[1].sku, "milk");
        assert_eq!(lines[1].quantity, 1);
        assert_eq!(total, 450);
    }

    #[test]
    fn fully_returned_and_none_events_leave_no_line() {
        let (lines, total) = compute(&[
            ev(Action::Pick, "milk", 1, 1, 150),
            ev(Action::Return, "milk", 1, 2, 150),
            SettledEvent {
                label: Label::new(Action::None, None, 0),
                occurred_at: 3,
                unit_price_cents: 0,
                name: String::new(),
            },
        ]);
        assert!(lines.is_empty());
        assert_eq!(total, 0);
    }

    #[test]
    fn returning_more_than_taken_is_never_a_credit() {
        let (lines, total) = compute(&[
            ev(Action::Pick, "a", 1, 1, 100),
            ev(Action::Return, "b", 2, 2, 500),
        ]);
        assert_eq!(lines.len(), 1);
        assert_eq!(total, 100);
    }

    #[test]
    fn changes_name_each_line_that_moved_and_nothing_else() {
        let before = compute(&[
            ev(Action::Pick, "a", 2, 1, 100),
            ev(Action::Pick, "b", 1, 2, 250),
            ev(Action::Pick, "c", 1, 3, 75),
        ])
        .0;
        let after = compute(&[
            ev(Action::Pick, "a", 1, 1, 100),
            ev(Action::Pick, "c", 1, 3, 75),
            ev(Action::Pick, "d", 3, 4, 10),
        ])
        .0;
        let c = changes(&before, &after);
        let got: Vec<(&str, i64, i64, i64)> = c
            .iter()
            .map(|c| {
                (
                    c.sku.as_str(),
                    c.quantity_before,
                    c.quantity_after,
                    c.total_cents_delta,
                )
            })
            .collect();
        assert_eq!(got, [("a", 2, 1, -100), ("b", 1, 0, -250), ("d", 0, 3, 30)]);
        assert!(changes(&after, &after).is_empty());
        assert_eq!(quantity_of(&after, "d"), 3);
        assert_eq!(quantity_of(&after, "b"), 0);
    }

    #[test]
    fn unit_price_is_that_of_the_latest_pick() {
        let (lines, total) = compute(&[
            ev(Action::Pick, "a", 1, 10, 100),
            ev(Action::Pick, "a", 1, 5, 90),
        ]);
        assert_eq!(lines[0].unit_price_cents, 100);
        assert_eq!(total, 200);
    }
}
