//! Shopper disputes of a receipt line: when one may be opened, and what the
//! reviewers' answer makes of the line.
//!
//! A dispute is one review task showing every event behind the contested
//! line. Its answer says what the shopper took of the line's product (or
//! that it was another product, or nothing); the difference to the line is
//! settled as correcting labels beside the session's events, so the
//! adjusted receipt is computed by the same [`super::receipt::compute`] as
//! every receipt, and the events the model and the first reviewers labelled
//! keep their history.

use super::lifecycle::SessionStatus;
use super::{Action, Label};

/// Why a dispute cannot be opened. Each has one stable error code at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeRefused {
    /// The receipt is not final yet: there is nothing to contest.
    ReceiptNotFinal,
    /// The receipt has no line for the sku.
    SkuNotOnReceipt,
    /// A dispute of the same line is still open.
    AlreadyOpen,
}

/// Whether a dispute of a line with `line_quantity` units may be opened on
/// a session in state `session`, with `open_already` telling whether the
/// same line is already contested.
pub fn may_open(
    session: SessionStatus,
    line_quantity: i64,
    open_already: bool,
) -> Result<(), DisputeRefused> {
    if session != SessionStatus::Finalized {
        return Err(DisputeRefused::ReceiptNotFinal);
    }
    if line_quantity <= 0 {
        return Err(DisputeRefused::SkuNotOnReceipt);
    }
    if open_already {
        return Err(DisputeRefused::AlreadyOpen);
    }
    Ok(())
}

/// The correcting labels that make the line of `sku` (`quantity` units on
/// the receipt) what the reviewers saw:
/// * a pick of `sku`: the line becomes that many units;
/// * a pick of another product: the line goes, the other product is added;
/// * nothing taken (or a return): the line goes.
///
/// Empty when the answer confirms the line.
pub fn corrections(sku: &str, quantity: i64, answer: &Label) -> Vec<Label> {
    let remove = |n: i64| Label::new(Action::Return, Some(sku.to_string()), n);
    match (answer.action, answer.sku.as_deref()) {
        (Action::Pick, Some(seen)) if seen == sku => match answer.quantity - quantity {
            0 => Vec::new(),
            more if more > 0 => vec![Label::new(Action::Pick, Some(sku.to_string()), more)],
            fewer => vec![remove(-fewer)],
        },
        (Action::Pick, Some(other)) => vec![
            remove(quantity),
            Label::new(Action::Pick, Some(other.to_string()), answer.quantity),
        ],
        _ => vec![remove(quantity)],
    }
}

#[cfg(test)]
mod tests {
    use super::super::receipt::{compute, quantity_of, SettledEvent};
    use super::*;

    fn settled(labels: &[Label]) -> Vec<SettledEvent> {
        labels
            .iter()
            .map(|l| SettledEvent {
                label: l.clone(),
                occurred_at: 1,
                unit_price_cents: 100,
                name: String::new(),
            })
            .collect()
    }

    fn pick(sku: &str, q: i64) -> Label {
        Label::new(Action::Pick, Some(sku.into()), q)
    }

    #[test]
    fn only_a_final_line_that_is_not_contested_yet_may_be_disputed() {
        assert_eq!(may_open(SessionStatus::Finalized, 2, false), Ok(()));
        assert_eq!(
            may_open(SessionStatus::Exited, 2, false),
            Err(DisputeRefused::ReceiptNotFinal)
        );
        assert_eq!(
            may_open(SessionStatus::Finalized, 0, false),
            Err(DisputeRefused::SkuNotOnReceipt)
        );
        assert_eq!(
            may_open(SessionStatus::Finalized, 1, true),
            Err(DisputeRefused::AlreadyOpen)
        );
    }

    /// The line after the corrections, computed as a receipt would be.
    fn line_after(events: &[Label], sku: &str, answer: &Label) -> (i64, Vec<Label>) {
        let before = compute(&settled(events)).0;
        let mut all = events.to_vec();
        let fix = corrections(sku, quantity_of(&before, sku), answer);
        all.extend(fix.iter().cloned());
        (quantity_of(&compute(&settled(&all)).0, sku), fix)
    }

    #[test]
    fn the_answer_becomes_the_line() {
        let events = [pick("milk", 1), pick("milk", 2), pick("tea", 1)];
        assert_eq!(line_after(&events, "milk", &pick("milk", 3)).1, vec![]);
        assert_eq!(line_after(&events, "milk", &pick("milk", 1)).0, 1);
        assert_eq!(line_after(&events, "milk", &pick("milk", 5)).0, 5);
        let none = Label::new(Action::None, None, 0);
        assert_eq!(line_after(&events, "milk", &none).0, 0);
        let (milk, fix) = line_after(&events, "milk", &pick("oat", 2));
        assert_eq!(milk, 0);
        let mut all = events.to_vec();
        all.extend(fix);
        let lines = compute(&settled(&all)).0;
        assert_eq!(quantity_of(&lines, "oat"), 2);
        assert_eq!(quantity_of(&lines, "tea"), 1, "other lines stay");
    }
}
