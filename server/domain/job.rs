//! Background jobs as data: each kind of job with its payload, a job's
//! status, and the retry rule.
//!
//! The database layer enqueues these payloads inside the transaction that
//! needs them; `crate::jobs` runs them. Only what both sides share lives
//! here, so `db` never depends on the code that runs a job.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A kind of background job: its payload type, stored as JSON in
/// `jobs.payload` under the name `KIND` in `jobs.kind`.
pub trait JobKind: Serialize + DeserializeOwned {
    /// The `jobs.kind` value. Stored, so it never changes.
    const KIND: &'static str;
}

/// Deliver the webhook of a final receipt to its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverReceipt {
    /// The store to tell.
    pub store_id: String,
    /// The store's session whose receipt is final.
    pub session_id: String,
    /// The receipt version to announce: 1 is `receipt.finalized`, later
    /// ones `receipt.adjusted`. Absent in jobs queued before receipts had
    /// versions, which announced the finalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

impl JobKind for DeliverReceipt {
    const KIND: &'static str = "receipt-webhook";
}

/// Turn an uploaded clip (or a cut of footage) into a browser MP4 and a
/// filmstrip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessClip {
    /// The clip to process.
    pub clip_id: String,
}

impl JobKind for ProcessClip {
    const KIND: &'static str = "clip-process";
}

/// Make the posters of a task's clips at the event instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MakePosters {
    /// The task whose clips need posters.
    pub task_id: String,
}

impl JobKind for MakePosters {
    const KIND: &'static str = "task-posters";
}

/// Run one training-data export into blob storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunExport {
    /// The export to run.
    pub export_id: String,
}

impl JobKind for RunExport {
    const KIND: &'static str = "export";
}

/// The day's retention run: deletes shopper video past each store's
/// retention, finishes erasures cut short, and purges old audit rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRetention {
    /// The UTC day it runs for (its midnight, epoch ms).
    pub day: i64,
}

impl JobKind for ApplyRetention {
    const KIND: &'static str = "retention";
}

/// Where a job is in its life (`jobs.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its `run_at`.
    Queued,
    /// Taken by a worker whose lease has not run out.
    Running,
    /// Succeeded; never runs again.
    Done,
    /// Failed for good; kept with its last error.
    Dead,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Dead,
    ];

    /// The `jobs.status` column value.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    /// The status a `jobs.status` column value stands for.
    pub fn parse(column: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == column)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a kind of job retries a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; the job gives up after the
    /// failure of this one.
    pub max_attempts: i64,
    /// Delay before the second attempt; doubled for each further one.
    pub backoff_base_ms: i64,
    /// Longest delay between two attempts.
    pub backoff_max_ms: i64,
    /// Whether each delay is drawn between half and all of the backoff, so
    /// the retries of many jobs that failed together (a receiver that was
    /// down) do not all arrive together again.
    pub jitter: bool,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Run again at this time (epoch milliseconds).
    RetryAt(i64),
    /// No attempts left: the job dies and its kind gives up.
    GiveUp,
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (1 for the first) is the last one
    /// this policy allows. A job taken over from a crashed worker may be
    /// past it already.
    pub fn is_last(&self, attempt: i64) -> bool {
        attempt >= self.max_attempts
    }

    /// The delay after `attempts` failed attempts: see [`backoff_ms`].
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        backoff_ms(attempts, self.backoff_base_ms, self.backoff_max_ms)
    }

    /// Decides what follows the failure, at `now`, of attempt number
    /// `attempt` (1 for the first); `draw` (uniform in [0, 1)) places the
    /// delay when the policy jitters.
    pub fn after_failure(&self, attempt: i64, now: i64, draw: f64) -> AfterFailure {
        if self.is_last(attempt) {
            return AfterFailure::GiveUp;
        }
        let backoff = self.backoff_ms(attempt);
        let delay = if self.jitter {
            backoff - ((backoff / 2) as f64 * draw.clamp(0.0, 1.0)) as i64
        } else {
            backoff
        };
        AfterFailure::RetryAt(now.saturating_add(delay))
    }
}

/// Delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, capped at
/// `max_ms`.
pub fn backoff_ms(attempts: i64, base_ms: i64, max_ms: i64) -> i64 {
    let exp = (attempts - 1).clamp(0, 40) as u32;
    base_ms.saturating_mul(1i64 << exp).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        backoff_base_ms: 1_000,
        backoff_max_ms: 5_000,
        jitter: false,
    };

    #[test]
    fn every_status_reads_back_from_its_column_value() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        let columns: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(columns, ["queued", "running", "done", "dead"]);
    }

    #[test]
    fn an_unknown_status_value_is_no_status() {
        assert_eq!(JobStatus::parse("failed"), None);
        assert_eq!(JobStatus::parse("Queued"), None);
        assert_eq!(JobStatus::parse(""), None);
    }

    #[test]
    fn a_failed_attempt_before_the_last_is_retried_after_a_doubling_delay() {
        assert_eq!(
            POLICY.after_failure(1, 10_000, 0.5),
            AfterFailure::RetryAt(11_000)
        );
        assert_eq!(
            POLICY.after_failure(2, 10_000, 0.5),
            AfterFailure::RetryAt(12_000)
        );
        assert_eq!(
            POLICY.after_failure(3, 10_000, 0.5),
            AfterFailure::RetryAt(14_000)
        );
    }

    #[test]
    fn a_jittered_delay_lies_between_half_and_all_of_the_backoff() {
        let policy = RetryPolicy {
            jitter: true,
            ..POLICY
        };
        assert_eq!(
            policy.after_failure(3, 0, 0.0),
            AfterFailure::RetryAt(4_000)
        );
        assert_eq!(
            policy.after_failure(3, 0, 0.5),
            AfterFailure::RetryAt(3_000)
        );
        assert_eq!(
            policy.after_failure(3, 0, 0.999_999),
            AfterFailure::RetryAt(2_001)
        );
        // The draws spread retries that failed together.
        let at: std::collections::BTreeSet<i64> = (0..10)
            .map(|i| match policy.after_failure(2, 0, f64::from(i) / 10.0) {
                AfterFailure::RetryAt(at) => at,
                AfterFailure::GiveUp => unreachable!("attempt 2 of 4"),
            })
            .collect();
        assert_eq!(at.len(), 10);
        assert_eq!(
            POLICY.after_failure(3, 0, 0.9),
            AfterFailure::RetryAt(4_000),
            "no jitter"
        );
    }

    #[test]
    fn the_retry_delay_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            ..POLICY
        };
        assert_eq!(
            policy.after_failure(3, 0, 0.5),
            AfterFailure::RetryAt(4_000)
        );
        assert_eq!(
            policy.after_failure(4, 0, 0.5),
            AfterFailure::RetryAt(5_000)
        );
        assert_eq!(
            policy.after_failure(9, 0, 0.5),
            AfterFailure::RetryAt(5_000)
        );
    }

    #[test]
    fn the_last_attempt_and_any_after_it_give_up() {
        assert!(!POLICY.is_last(3));
        assert!(POLICY.is_last(4));
        assert_eq!(POLICY.after_failure(4, 10_000, 0.5), AfterFailure::GiveUp);
        // Taken over from crashed workers past its last attempt.
        assert_eq!(POLICY.after_failure(7, 10_000, 0.5), AfterFailure::GiveUp);
    }

    #[test]
    fn a_single_attempt_policy_gives_up_at_the_first_failure() {
        for max_attempts in [1, 0, -3] {
            let policy = RetryPolicy {
                max_attempts,
                ..POLICY
            };
            assert!(policy.is_last(1));
            assert_eq!(policy.after_failure(1, 0, 0.5), AfterFailure::GiveUp);
        }
    }

    #[test]
    fn a_retry_time_saturates_instead_of_overflowing() {
        let policy = RetryPolicy {
            max_attempts: 100,
            backoff_base_ms: i64::MAX / 2,
            backoff_max_ms: i64::MAX,
            jitter: true,
        };
        assert_eq!(
            policy.after_failure(60, 1, 0.0),
            AfterFailure::RetryAt(i64::MAX)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1, 1000, 60_000), 1000);
        assert_eq!(backoff_ms(2, 1000, 60_000), 2000);
        assert_eq!(backoff_ms(4, 1000, 60_000), 8000);
        assert_eq!(backoff_ms(30, 1000, 60_000), 60_000);
        assert_eq!(backoff_ms(100, i64::MAX / 2, i64::MAX), i64::MAX);
        // Before any attempt (or a nonsensical count) the delay is the base.
        assert_eq!(backoff_ms(0, 1000, 60_000), 1000);
    }

    #[test]
    fn kind_names_are_the_stored_ones() {
        assert_eq!(DeliverReceipt::KIND, "receipt-webhook");
        assert_eq!(ProcessClip::KIND, "clip-process");
        assert_eq!(MakePosters::KIND, "task-posters");
        assert_eq!(RunExport::KIND, "export");
    }

    #[test]
    fn payloads_keep_their_stored_json_shape() {
        let webhook: DeliverReceipt =
            serde_json::from_str(r#"{"store_id":"s","session_id":"x"}"#).unwrap();
        assert_eq!(
            webhook,
            DeliverReceipt {
                store_id: "s".into(),
                session_id: "x".into(),
                version: None,
            }
        );
        assert_eq!(
            serde_json::to_string(&ProcessClip {
                clip_id: "c".into()
            })
            .unwrap(),
            r#"{"clip_id":"c"}"#
        );
        assert_eq!(
            serde_json::to_string(&MakePosters {
                task_id: "t".into()
            })
            .unwrap(),
            r#"{"task_id":"t"}"#
        );
        assert_eq!(
            serde_json::to_string(&RunExport {
                export_id: "e".into()
            })
            .unwrap(),
            r#"{"export_id":"e"}"#
        );
    }
}
