//! What a simulated day shows for one policy.

use serde::Serialize;

use super::day::Day;
use super::draw::{Event, HOUR};
use super::engine::Staffing;
use super::policy::SimPolicy;
use crate::domain::consensus::EscalationReason;
use crate::domain::stats;

/// The figures of one policy on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The policy's name.
    pub policy: String,
    /// Events of the day.
    pub events: u64,
    /// Receipts (shoppers) of the day.
    pub receipts: u64,
    /// Events whose receipt waited for a person.
    pub events_to_people: u64,
    /// `events_to_people` over `events`.
    pub review_rate: f64,
    /// Share of receipts that waited for a person.
    pub receipts_to_people: f64,
    /// Audit samples taken off the receipt's path.
    pub audits: u64,
    /// Of them, the ones people answered by the end of the day.
    pub audits_answered: u64,
    /// Times a labeler's audit was taken back for receipt work (the time
    /// spent on it counts as busy).
    pub audits_yielded: u64,
    /// Labelers' verdicts.
    pub verdicts: u64,
    /// Tasks escalated to supervisors, by reason.
    pub escalated: Escalations,
    /// Labeler-hours on duty.
    pub labeler_hours: f64,
    /// Labeler-hours spent answering.
    pub labeler_hours_busy: f64,
    /// `labeler_hours_busy` over `labeler_hours`.
    pub utilisation: f64,
    /// Supervisor-hours spent settling escalated tasks.
    pub supervisor_hours_busy: f64,
    /// Events settled with the model's answer (auto-accepted, and audit
    /// samples off the receipt's path).
    pub auto_accepted: u64,
    /// Of them, the ones where the model was wrong.
    pub auto_accepted_errors: u64,
    /// Expected charge error of the events settled with the model's answer,
    /// at the model's true accuracy (routing weighs its own estimate, from
    /// the calibration learned so far), in cents.
    pub expected_charge_error_cents: f64,
    /// What final receipts charged wrongly, event by event, in cents.
    pub charge_error_cents: i64,
    /// The same after audits adjusted receipts, in cents.
    pub charge_error_after_adjustments_cents: i64,
    /// Final receipts' totals minus what shoppers really owed, in cents.
    pub net_overcharge_cents: i64,
    /// Receipt adjustments made by audits.
    pub adjustments: u64,
    /// Receipt latency (exit to final), seconds: p50, p95, p99.
    pub latency_p50_s: f64,
    /// p95.
    pub latency_p95_s: f64,
    /// p99.
    pub latency_p99_s: f64,
    /// Receipts final later than the SLA after exit.
    pub past_sla: u64,
    /// Receipts never final (none when the rules hold).
    pub unfinished: u64,
    /// Labeler time and charge error per 1,000 receipts, in cents.
    pub cost_per_1000_receipts_cents: f64,
}

/// Escalations by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Escalations {
    /// Near or past the receipt deadline.
    pub deadline: u64,
    /// Nobody left who may answer.
    pub no_eligible_labeler: u64,
    /// Two labelers disagreed.
    pub disagreement: u64,
    /// A labeler could not tell.
    pub cant_tell: u64,
}

/// Counts kept while a day runs.
#[derive(Debug, Default)]
pub struct Tally {
    pub(super) events: u64,
    pub(super) events_to_people: u64,
    pub(super) audits: u64,
    pub(super) audits_answered: u64,
    audits_yielded: u64,
    pub(super) adjustments: u64,
    verdicts: u64,
    busy_ms: i64,
    settle_ms: i64,
    escalated: Escalations,
    auto_accepted: u64,
    auto_accepted_errors: u64,
    expected_error: f64,
    latencies: Vec<f64>,
    receipts_to_people: u64,
    net_overcharge: i64,
    charge_error: i64,
}

impl Tally {
    pub(super) fn auto_accepted(&mut self, event: &Event) {
        self.auto_accepted += 1;
        self.auto_accepted_errors += u64::from(event.top() != event.truth);
        self.expected_error += event.true_expected_error_cents;
    }

    pub(super) fn escalated(&mut self, reason: EscalationReason) {
        let e = &mut self.escalated;
        match reason {
            EscalationReason::Deadline => e.deadline += 1,
            EscalationReason::NoEligibleLabeler => e.no_eligible_labeler += 1,
            EscalationReason::Disagreement => e.disagreement += 1,
            EscalationReason::CantTell => e.cant_tell += 1,
        }
    }

    pub(super) fn verdict(&mut self, took_ms: i64) {
        self.verdicts += 1;
        self.busy_ms += took_ms;
    }

    pub(super) fn yielded(&mut self, took_ms: i64) {
        self.audits_yielded += 1;
        self.busy_ms += took_ms;
    }

    pub(super) fn settlement(&mut self, took_ms: i64) {
        self.settle_ms += took_ms;
    }

    pub(super) fn receipt(&mut self, latency_ms: i64, needed_a_person: bool, net: i64, error: i64) {
        self.latencies.push(latency_ms as f64 / 1_000.0);
        self.receipts_to_people += u64::from(needed_a_person);
        self.net_overcharge += net;
        self.charge_error += error;
    }

    pub(super) fn figures(
        self,
        day: &Day,
        policy: &SimPolicy,
        staffing: &Staffing,
        receipts: u64,
        after_adjustments: i64,
        unfinished: u64,
    ) -> Figures {
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let pct = |p| stats::percentile(&self.latencies, p).unwrap_or(0.0);
        let sla_s = day.sla_minutes * 60.0;
        let labeler_hours = staffing.hours() as f64;
        let busy = self.busy_ms as f64 / HOUR as f64;
        let labor_cents = labeler_hours * day.labelers.hourly_cost_cents;
        Figures {
            policy: policy.name.clone(),
            events: self.events,
            receipts,
            events_to_people: self.events_to_people,
            review_rate: share(self.events_to_people, self.events),
            receipts_to_people: share(self.receipts_to_people, receipts),
            audits: self.audits,
            audits_answered: self.audits_answered,
            audits_yielded: self.audits_yielded,
            verdicts: self.verdicts,
            escalated: self.escalated,
            labeler_hours,
            labeler_hours_busy: busy,
            utilisation: if labeler_hours > 0.0 {
                busy / labeler_hours
            } else {
                0.0
            },
            supervisor_hours_busy: self.settle_ms as f64 / HOUR as f64,
            auto_accepted: self.auto_accepted,
            auto_accepted_errors: self.auto_accepted_errors,
            expected_charge_error_cents: self.expected_error,
            charge_error_cents: self.charge_error,
            charge_error_after_adjustments_cents: after_adjustments,
            net_overcharge_cents: self.net_overcharge,
            adjustments: self.adjustments,
            latency_p50_s: pct(50.0),
            latency_p95_s: pct(95.0),
            latency_p99_s: pct(99.0),
            past_sla: self.latencies.iter().filter(|&&l| l > sla_s).count() as u64,
            unfinished,
            cost_per_1000_receipts_cents: if receipts == 0 {
                0.0
            } else {
                (labor_cents + self.charge_error as f64) * 1_000.0 / receipts as f64
            },
        }
    }
}
