//! Prometheus metrics: counters and histograms updated where things happen,
//! queue gauges read from the database when scraped.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec_with_registry, register_histogram_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_vec_with_registry, Encoder, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGaugeVec, Registry, TextEncoder,
};

use crate::domain::job::{DeliverReceipt, JobKind, JobStatus};

/// All of Recount's metrics.
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    ingest_paths: IntCounterVec,
    verdicts: IntCounterVec,
    claim_seconds: Histogram,
    receipt_latency_seconds: Histogram,
    jobs: IntCounterVec,
    job_seconds: HistogramVec,
    webhook_failures: IntCounterVec,
    leases_expired: IntCounter,
    audits_yielded: IntCounter,
    media_seconds: HistogramVec,
    media_failures: IntCounterVec,
    queue: IntGaugeVec,
    deadlines: IntGaugeVec,
    escalations: IntCounterVec,
    adjustments: IntCounterVec,
    gold_answers: IntCounterVec,
    media_erased: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("recount".into()), None).expect("valid prefix");
    let r = &registry;
    Metrics {
        events: register_int_counter_vec_with_registry!(
            "events_ingested_total",
            "Events stored, by route",
            &["route"],
            r
        )
        .expect("metric"),
        ingest_paths: register_int_counter_vec_with_registry!(
            "ingest_requests_total",
            "Event requests stored, by how: one statement, or a transaction that reads first",
            &["path"],
            r
        )
        .expect("metric"),
        verdicts: register_int_counter_vec_with_registry!(
            "verdicts_total",
            "Verdicts recorded, by the task state they led to",
            &["outcome"],
            r
        )
        .expect("metric"),
        claim_seconds: register_histogram_with_registry!(
            "claim_duration_seconds",
            "Time to claim a task, request to answer",
            vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0],
            r
        )
        .expect("metric"),
        receipt_latency_seconds: register_histogram_with_registry!(
            "receipt_latency_seconds",
            "Time from the shopper's exit to the final receipt",
            vec![0.1, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0],
            r
        )
        .expect("metric"),
        jobs: register_int_counter_vec_with_registry!(
            "job_attempts_total",
            "Background job attempts (receipt webhooks, media), by kind and result",
            &["kind", "result"],
            r
        )
        .expect("metric"),
        job_seconds: register_histogram_vec_with_registry!(
            "job_duration_seconds",
            "Background job attempts by kind and result, from take to outcome",
            &["kind", "result"],
            vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            r
        )
        .expect("metric"),
        webhook_failures: register_int_counter_vec_with_registry!(
            "webhook_failures_total",
            "Receipt webhook deliveries that failed: `retry` (tried again later) or `dead` (given up)",
            &["outcome"],
            r
        )
        .expect("metric"),
        leases_expired: register_int_counter_with_registry!(
            "leases_expired_total",
            "Leases that ran out and returned their task to the queue",
            r
        )
        .expect("metric"),
        audits_yielded: register_int_counter_with_registry!(
            "audits_yielded_total",
            "Audit leases taken back because receipt work was waiting",
            r
        )
        .expect("metric"),
        media_seconds: register_histogram_vec_with_registry!(
            "media_operation_seconds",
            "FFmpeg work by operation (probe, make_browser_mp4, poster, filmstrip), queueing excluded",
            &["operation"],
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0],
            r
        )
        .expect("metric"),
        media_failures: register_int_counter_vec_with_registry!(
            "media_failures_total",
            "Failed media operations by operation and error code",
            &["operation", "code"],
            r
        )
        .expect("metric"),
        queue: register_int_gauge_vec_with_registry!(
            "review_tasks",
            "Review tasks by status",
            &["status"],
            r
        )
        .expect("metric"),
        deadlines: register_int_gauge_vec_with_registry!(
            "deadline_items",
            "Open review tasks and pending receipts against their receipt deadline: \
             `tasks_past`, `tasks_at_risk` (within deadline_lead_ms of it), `receipts_past`",
            &["state"],
            r
        )
        .expect("metric"),
        escalations: register_int_counter_vec_with_registry!(
            "deadline_escalations_total",
            "Tasks handed to supervisors by the deadline guarantee, by reason \
             (`deadline`, `no-eligible-labeler`)",
            &["reason"],
            r
        )
        .expect("metric"),
        media_erased: register_int_counter_vec_with_registry!(
            "media_erased_total",
            "Clips and camera recordings whose video was deleted, by reason \
             (`retention`, `request`) and kind (`clip`, `footage`)",
            &["reason", "kind"],
            r
        )
        .expect("metric"),
        adjustments: register_int_counter_vec_with_registry!(
            "receipt_adjustments_total",
            "New versions of final receipts, by cause (`audit`, `correction`, `dispute`)",
            &["cause"],
            r
        )
        .expect("metric"),
        gold_answers: register_int_counter_vec_with_registry!(
            "gold_answers_total",
            "Answers to gold tasks, by whether they matched the known label",
            &["correct"],
            r
        )
        .expect("metric"),
        registry,
    }
});

/// An event was stored on `route`.
pub fn event_ingested(route: &str) {
    METRICS.events.with_label_values(&[route]).inc();
}

/// A request of events was stored by `path`: `one_statement`, or
/// `transaction` (SQLite; clips; a replay, a refusal, a session that is not
/// open).
pub fn ingest_path(path: &str) {
    METRICS.ingest_paths.with_label_values(&[path]).inc();
}

/// A verdict led the task to `outcome`.
pub fn verdict_recorded(outcome: &str) {
    METRICS.verdicts.with_label_values(&[outcome]).inc();
}

/// A claim took `seconds`.
pub fn claim_observed(seconds: f64) {
    METRICS.claim_seconds.observe(seconds);
}

/// A receipt became final `latency_ms` after exit.
pub fn receipt_finalized(latency_ms: i64) {
    METRICS
        .receipt_latency_seconds
        .observe(latency_ms.max(0) as f64 / 1000.0);
}

/// A final receipt got a new version because of `cause`.
pub fn receipt_adjusted(cause: &str) {
    METRICS.adjustments.with_label_values(&[cause]).inc();
}

/// A job attempt of `kind` ended with `result` (`done`, `failed`, `dead`)
/// after `seconds`.
pub fn job_attempt(kind: &str, result: &str, seconds: f64) {
    METRICS.jobs.with_label_values(&[kind, result]).inc();
    METRICS
        .job_seconds
        .with_label_values(&[kind, result])
        .observe(seconds);
    if kind == DeliverReceipt::KIND && result != JobStatus::Done.as_str() {
        let outcome = if result == JobStatus::Dead.as_str() {
            "dead"
        } else {
            "retry"
        };
        METRICS.webhook_failures.with_label_values(&[outcome]).inc();
    }
}

/// `n` leases expired.
pub fn leases_expired(n: u64) {
    METRICS.leases_expired.inc_by(n);
}

/// An audit's lease was taken back for receipt work.
pub fn audit_yielded() {
    METRICS.audits_yielded.inc();
}

/// A media operation finished in `seconds`, failing with `code` if any.
pub fn media_operation(operation: &str, code: Option<&str>, seconds: f64) {
    METRICS
        .media_seconds
        .with_label_values(&[operation])
        .observe(seconds);
    if let Some(code) = code {
        METRICS
            .media_failures
            .with_label_values(&[operation, code])
            .inc();
    }
}

/// The deadline guarantee handed a task to supervisors for `reason`.
pub fn task_escalated(reason: &str) {
    METRICS.escalations.with_label_values(&[reason]).inc();
}

/// Video was deleted: `clips` clips and `footage` recordings, for `reason`
/// (`retention` or `request`).
pub fn media_erased(reason: &str, clips: u64, footage: u64) {
    let m = &METRICS.media_erased;
    m.with_label_values(&[reason, "clip"]).inc_by(clips);
    m.with_label_values(&[reason, "footage"]).inc_by(footage);
}

/// What is late or about to be, read when `/metrics` is scraped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// Open real tasks past their receipt deadline.
    pub tasks_past: i64,
    /// Open real tasks within `deadline_lead_ms` of it.
    pub tasks_at_risk: i64,
    /// Exited sessions whose receipt is not final past the deadline.
    pub receipts_past: i64,
}

/// A labeler answered a gold task, `correct`ly or not.
pub fn gold_answered(correct: bool) {
    METRICS
        .gold_answers
        .with_label_values(&[if correct { "true" } else { "false" }])
        .inc();
}

/// Renders every metric in Prometheus text format, with the queue gauges set
/// from `queue_counts` and the deadline gauges from `deadlines`.
pub fn render(queue_counts: &[(String, i64)], deadlines: Deadlines) -> String {
    for (state, n) in [
        ("tasks_past", deadlines.tasks_past),
        ("tasks_at_risk", deadlines.tasks_at_risk),
        ("receipts_past", deadlines.receipts_past),
    ] {
        METRICS.deadlines.with_label_values(&[state]).set(n);
    }
    for status in crate::domain::lifecycle::TaskStatus::OPEN {
        let status = status.as_str();
        let n = queue_counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        METRICS.queue.with_label_values(&[status]).set(n);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding never fails");
    String::from_utf8(out).expect("prometheus text is UTF-8")
}
