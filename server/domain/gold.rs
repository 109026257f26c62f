//! Gold tasks: resolved tasks with a known label, mixed into labelers'
//! queues to measure how often each labeler gets it right.
//!
//! The rules here decide when a claim serves gold, whether an answer is
//! correct and when a labeler is flagged; `db::gold` stores what they decide.

use super::consensus::Answer;
use super::Label;

/// Where the gold answers that count for a labeler's quality start: today
/// and the 6 days before (UTC), the dashboard's 7-day window, so a labeler
/// is flagged on the gold page exactly when the dashboard flags them.
pub fn quality_window_start(now: i64) -> i64 {
    super::figures::Windows::at(now).week_from
}

/// The normal quantile of the 95 % Wilson interval shown with an accuracy.
pub const Z_95: f64 = 1.96;

/// Whether a claim should serve a gold task: `draw` is a uniform draw from
/// [0, 1) made by the caller, `rate` the configured share of gold. A rate of
/// 1 always serves gold (when there is one to serve), 0 never.
pub fn serves_gold(rate: f64, draw: f64) -> bool {
    draw < rate
}

/// Whether an answer matches the gold label: the same action, sku and
/// quantity. "Can't tell" is never correct: the gold task's video showed
/// enough for a human to decide.
pub fn is_correct(gold: &Label, answer: &Answer) -> bool {
    match answer {
        Answer::Label(label) => label == gold,
        Answer::CantTell => false,
    }
}

/// The share of correct answers; `None` without answers.
pub fn accuracy(answers: i64, correct: i64) -> Option<f64> {
    (answers > 0).then(|| correct as f64 / answers as f64)
}

/// Whether a labeler's gold accuracy needs a supervisor's attention: at
/// least `min_answers` answers (fewer say too little to judge anyone) and an
/// accuracy below `min_accuracy`.
pub fn flagged(answers: i64, correct: i64, min_accuracy: f64, min_answers: u64) -> bool {
    let enough = u64::try_from(answers).is_ok_and(|n| n >= min_answers);
    enough && accuracy(answers, correct).is_some_and(|a| a < min_accuracy)
}

/// A labeler's gold record judged for the quality report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// `correct / answers`.
    pub accuracy: Option<f64>,
    /// The 95 % Wilson interval of the accuracy.
    pub interval: Option<(f64, f64)>,
    /// See [`flagged`].
    pub flagged: bool,
}

/// Judges `correct` of `answers` gold answers.
pub fn score(answers: i64, correct: i64, min_accuracy: f64, min_answers: u64) -> Score {
    Score {
        accuracy: accuracy(answers, correct),
        interval: crate::stats::wilson_interval(correct.max(0) as u64, answers.max(0) as u64, Z_95),
        flagged: flagged(answers, correct, min_accuracy, min_answers),
    }
}

/// The quality report's order: flagged labelers first, then lowest accuracy
/// first (none counts as perfect), then by name.
pub fn report_order(a: (&Score, &str), b: (&Score, &str)) -> std::cmp::Ordering {
    b.0.flagged
        .cmp(&a.0.flagged)
        .then(
            a.0.accuracy
                .unwrap_or(1.0)
                .total_cmp(&b.0.accuracy.unwrap_or(1.0)),
        )
        .then_with(|| a.1.cmp(b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn the_report_puts_flagged_first_then_the_least_accurate() {
        let weak = score(20, 10, 0.8, 10);
        let new = score(2, 0, 0.8, 10);
        let good = score(20, 19, 0.8, 10);
        let none = score(0, 0, 0.8, 10);
        assert!(weak.flagged && !new.flagged && !good.flagged && !none.flagged);
        let mut rows = [(none, "d"), (good, "c"), (new, "b"), (weak, "a")];
        rows.sort_by(|x, y| report_order((&x.0, x.1), (&y.0, y.1)));
        let names: Vec<&str> = rows.iter().map(|r| r.1).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let (low, high) = good.interval.expect("answers give an interval");
        assert!(low < 0.95 && 0.95 < high);
        assert_eq!(none.interval, None);
    }

    #[test]
    fn the_draw_decides_against_the_rate() {
        assert!(serves_gold(0.05, 0.0));
        assert!(serves_gold(0.05, 0.049_999));
        assert!(!serves_gold(0.05, 0.05));
        assert!(!serves_gold(0.0, 0.0), "rate 0 never serves gold");
        assert!(serves_gold(1.0, 0.999_999), "rate 1 always does");
    }

    #[test]
    fn only_the_same_label_is_correct() {
        let gold = Label::new(Action::Pick, Some("milk".into()), 2);
        let answer = |a, sku: Option<&str>, q| Answer::Label(Label::new(a, sku.map(Into::into), q));
        assert!(is_correct(&gold, &answer(Action::Pick, Some("milk"), 2)));
        assert!(!is_correct(&gold, &answer(Action::Pick, Some("milk"), 1)));
        assert!(!is_correct(&gold, &answer(Action::Pick, Some("cola"), 2)));
        assert!(!is_correct(&gold, &answer(Action::Return, Some("milk"), 2)));
        assert!(!is_correct(&gold, &answer(Action::None, None, 0)));
        assert!(!is_correct(&gold, &Answer::CantTell));
        // "Nothing happened" is normalized: sku and quantity do not matter.
        let none = Label::new(Action::None, None, 0);
        assert!(is_correct(&none, &answer(Action::None, Some("milk"), 3)));
        assert!(!is_correct(&none, &Answer::CantTell));
    }

    #[test]
    fn accuracy_needs_answers() {
        assert_eq!(accuracy(0, 0), None);
        assert_eq!(accuracy(4, 3), Some(0.75));
    }

    #[test]
    fn flagged_below_the_minimum_with_enough_answers_only() {
        // 7 of 10 is below 0.8.
        assert!(flagged(10, 7, 0.8, 10));
        // Exactly the minimum is not below it.
        assert!(!flagged(10, 8, 0.8, 10));
        // Too few answers to judge, however bad.
        assert!(!flagged(9, 0, 0.8, 10));
        // No answers never flag, even with no minimum count.
        assert!(!flagged(0, 0, 0.8, 0));
        assert!(flagged(1, 0, 0.8, 0));
        // A minimum accuracy of 0 flags nobody.
        assert!(!flagged(50, 0, 0.0, 10));
    }
}
