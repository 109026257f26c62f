//! Consensus: when do the verdicts on a task settle it.

use super::Label;

/// One labeler's answer as consensus sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A definite label.
    Label(Label),
    /// The labeler could not tell from the video.
    CantTell,
}

/// What the verdicts so far mean for the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every verdict agrees but more are needed: the task goes back to the queue.
    NeedMore,
    /// Enough agreeing verdicts: the event is resolved with this label.
    Agreed(Label),
    /// A supervisor must decide.
    Escalate(EscalationReason),
}

/// Why a task went to a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalationReason {
    /// A labeler said "can't tell".
    CantTell,
    /// Two labelers gave different labels.
    Disagreement,
    /// The receipt deadline is near and no verdict settled the task
    /// (`lifecycle::at_risk`).
    Deadline,
    /// No active labeler who may still answer it is left, or too few for the
    /// verdicts it still needs (`lifecycle::at_risk`).
    NoEligibleLabeler,
}

impl EscalationReason {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::CantTell => "cant-tell",
            EscalationReason::Disagreement => "disagreement",
            EscalationReason::Deadline => "deadline",
            EscalationReason::NoEligibleLabeler => "no-eligible-labeler",
        }
    }
}

/// Decides the outcome of a task needing `required` agreeing verdicts.
///
/// Escalation is immediate: a "can't tell" or a disagreement cannot be
/// outvoted by asking more labelers, which would only cost more while the
/// receipt waits.
pub fn decide(required: i64, answers: &[Answer]) -> Outcome {
    let mut agreed: Option<&Label> = None;
    for answer in answers {
        match answer {
            Answer::CantTell => return Outcome::Escalate(EscalationReason::CantTell),
            Answer::Label(label) => match agreed {
                None => agreed = Some(label),
                Some(first) if first != label => {
                    return Outcome::Escalate(EscalationReason::Disagreement)
                }
                Some(_) => {}
            },
        }
    }
    match agreed {
        Some(label) if answers.len() as i64 >= required => Outcome::Agreed(label.clone()),
        _ => Outcome::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn pick(sku: &str, q: i64) -> Answer {
        Answer::Label(Label::new(Action::Pick, Some(sku.into()), q))
    }

    #[test]
    fn no_verdict_needs_more() {
        assert_eq!(decide(1, &[]), Outcome::NeedMore);
    }

    #[test]
    fn one_verdict_settles_a_single_review_task() {
        assert_eq!(
            decide(1, &[pick("a", 1)]),
            Outcome::Agreed(Label::new(Action::Pick, Some("a".into()), 1))
        );
    }

    #[test]
    fn audit_task_waits_for_the_second_verdict() {
        assert_eq!(decide(2, &[pick("a", 1)]), Outcome::NeedMore);
        assert!(matches!(
            decide(2, &[pick("a", 1), pick("a", 1)]),
            Outcome::Agreed(_)
        ));
    }

    #[test]
    fn different_quantity_is_a_disagreement() {
        assert_eq!(
            decide(2, &[pick("a", 1), pick("a", 2)]),
            Outcome::Escalate(EscalationReason::Disagreement)
        );
    }

    #[test]
    fn different_product_is_a_disagreement() {
        assert_eq!(
            decide(2, &[pick("a", 1), pick("b", 1)]),
            Outcome::Escalate(EscalationReason::Disagreement)
        );
    }

    #[test]
    fn cant_tell_escalates_at_once_even_as_first_verdict() {
        assert_eq!(
            decide(2, &[Answer::CantTell]),
            Outcome::Escalate(EscalationReason::CantTell)
        );
        assert_eq!(
            decide(1, &[pick("a", 1), Answer::CantTell]),
            Outcome::Escalate(EscalationReason::CantTell)
        );
    }

    #[test]
    fn two_nothing_happened_answers_agree_whatever_sku_was_sent() {
        let a = Answer::Label(Label::new(Action::None, Some("x".into()), 3));
        let b = Answer::Label(Label::new(Action::None, None, 1));
        assert_eq!(
            decide(2, &[a, b]),
            Outcome::Agreed(Label::new(Action::None, None, 0))
        );
    }
}
