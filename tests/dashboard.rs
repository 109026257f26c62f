//! The supervisor dashboard over real HTTP, each test on SQLite and on
//! PostgreSQL: a day and a half of store activity built through the API,
//! every figure of the snapshot worked out by hand, and the same snapshot
//! whether the rollups ran never, midway, partly, twice or concurrently.
//!
//! The timeline (UTC; the snapshot is taken at 2026-11-26 12:30):
//!
//! - 11-25 00:00–09:00: gold answers (bob 7 right of 10, ann 2 of 2);
//! - 11-25 10:00, before the last-day window: an audit sample of model m0
//!   that the model got wrong, answered by ann and bob; a receipt;
//! - 11-26 10:00, in the last day: an audit sample both labelers agree on,
//!   low-confidence, small-margin and candidate-less events of models m1
//!   and m2, one escalation resolved by the supervisor, three receipts;
//! - 11-26 12:00, in the last hour: an audit sample whose labelers disagree
//!   (the supervisor decides; the receipt never waited for it), an open
//!   escalation, a task left ready and one leased, a pending receipt past
//!   its deadline, a gold copy of an event and gold tasks (which only
//!   labeler figures may count).
//!
//! Audit samples hold nothing and come after receipt work in the queue, so
//! each is answered before the receipt work of its phase arrives.

use crate::common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{code, Backend, TestApp, T0};
use recount::auth::Role;
use recount::domain::dashboard::{ConfidenceBin, Dashboard, Rate};
use recount::domain::stats::{calibration, percentile, wilson_interval};
use recount::domain::time::format_rfc3339_ms;

const SEC: i64 = 1_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// The second phase: 2026-11-26T10:00Z.
const P2: i64 = T0 + 24 * HOUR;
/// The third phase: 2026-11-26T12:00Z.
const P3: i64 = T0 + 26 * HOUR;
/// When the snapshot is taken: 2026-11-26T12:30Z.
const NOW: i64 = P3 + 30 * MIN;

/// The stores, people and tasks of the fixture.
struct Fixture {
    app: TestApp,
    store_a: String,
    store_b: String,
    key_a: String,
    key_b: String,
    ann: String,
    bob: String,
    cat: String,
    sue: String,
    boss: String,
}

impl Fixture {
    /// Moves the clock forward to `t`.
    fn at(&self, t: i64) {
        let now = self.app.state.now();
        assert!(t >= now, "the fixture only moves forward");
        self.app.clock.advance(t - now);
    }

    async fn audit(&self, store: &str, rate: f64) {
        let (s, b) = self
            .app
            .call(
                Method::PUT,
                &format!("/api/v1/stores/{store}/policy"),
                &self.boss,
                Some(json!({"audit_rate": rate})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    /// Posts one event; returns its route and task id.
    async fn event(
        &self,
        key: &str,
        id: &str,
        session: &str,
        candidates: &[(&str, f64)],
        occurred_at: i64,
        model: &str,
    ) -> (String, Option<String>) {
        let body = json!({
            "event_id": id,
            "session_id": session,
            "kind": "pick",
            "quantity": 1,
            "occurred_at": format_rfc3339_ms(occurred_at),
            "candidates": candidates.iter().map(|(s, c)| json!({"sku": s, "confidence": c})).collect::<Vec<_>>(),
            "model_version": model,
        });
        let (s, out) = self.app.events(key, body).await;
        assert_eq!(s, StatusCode::OK, "{out}");
        (
            out["route"].as_str().unwrap().to_string(),
            out["task_id"].as_str().map(str::to_string),
        )
    }

    /// `who` claims at `claim_at` and answers `answer` at `answer_at`;
    /// checks the task claimed and the task's state afterwards.
    async fn answer(
        &self,
        who: &str,
        claim_at: i64,
        answer_at: i64,
        expected_event: &str,
        answer: Value,
        expected_status: &str,
    ) {
        self.at(claim_at);
        let (s, c) = self.app.claim(who).await;
        assert_eq!(s, StatusCode::OK, "{c}");
        assert_eq!(c["task"]["event_id"], expected_event);
        let task = c["task"]["task_id"].as_str().unwrap().to_string();
        self.at(answer_at);
        let (s, v) = self.app.verdict(who, &task, answer).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], expected_status, "{expected_event}");
    }

    async fn exit(&self, key: &str, session: &str, exited_at: i64, expected: &str) {
        let (s, r) = self
            .app
            .exit(key, session, &format_rfc3339_ms(exited_at))
            .await;
        assert_eq!(
            (s, r["status"].as_str()),
            (StatusCode::OK, Some(expected)),
            "{r}"
        );
    }

    async fn resolve(&self, task: &str, answer: Value) {
        let (s, r) = self
            .app
            .call(
                Method::POST,
                &format!("/api/v1/tasks/{task}/resolve"),
                &self.sue,
                Some(answer),
            )
            .await;
        assert_eq!(
            (s, r["status"].as_str()),
            (StatusCode::OK, Some("resolved")),
            "{r}"
        );
    }

    async fn user_id(&self, name: &str) -> String {
        sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(self.app.state.db.reader())
            .await
            .unwrap()
    }

    /// Writes rows the API cannot make (gold copies and answers without
    /// their gold tasks), with foreign keys unchecked for this one statement.
    async fn sql(&self, sql: &str, binds: &[Value]) {
        let db = &self.app.state.db;
        let mut conn = db.writer().acquire().await.unwrap();
        let postgres = db.backend == recount::db::Backend::Postgres;
        let (off, on) = if postgres {
            (
                "SET session_replication_role = replica",
                "SET session_replication_role = DEFAULT",
            )
        } else {
            ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON")
        };
        sqlx::query(off).execute(&mut *conn).await.unwrap();
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Value::String(s) => q.bind(s.clone()),
                Value::Number(n) if n.is_i64() => q.bind(n.as_i64().unwrap()),
                Value::Number(n) => q.bind(n.as_f64().unwrap()),
                other => panic!("cannot bind {other}"),
            };
        }
        q.execute(&mut *conn).await.unwrap();
        sqlx::query(on).execute(&mut *conn).await.unwrap();
    }

    async fn snapshot(&self) -> Dashboard {
        let (s, body) = self
            .app
            .call(Method::GET, "/api/v1/dashboard", &self.sue, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

fn pick(sku: &str, quantity: i64) -> Value {
    json!({"action": "pick", "sku": sku, "quantity": quantity})
}

/// Builds the timeline; with `rollup_midway` the rollup job runs once
/// between the second and the third phase, as it would on a server.
async fn fixture(backend: Backend, rollup_midway: bool) -> Fixture {
    // Tokens last for the whole day and a half.
    let app = TestApp::start_with(backend, |c| c.token_ttl_ms = 7 * 24 * HOUR).await;
    let (store_a, key_a) = app.store("Alpha", None).await;
    app.catalog(&key_a).await;
    let (store_b, key_b) = app.store("Beta", None).await;
    app.catalog(&key_b).await;
    let f = Fixture {
        ann: app.user("ann", Role::Labeler).await,
        bob: app.user("bob", Role::Labeler).await,
        cat: app.user("cat", Role::Labeler).await,
        sue: app.user("sue", Role::Supervisor).await,
        boss: app.user("boss", Role::Admin).await,
        app,
        store_a,
        store_b,
        key_a,
        key_b,
    };
    let (a, b) = (f.store_a.clone(), f.store_b.clone());
    let (ka, kb) = (f.key_a.clone(), f.key_b.clone());
    f.audit(&a, 0.0).await;
    f.audit(&b, 0.0).await;

    // Gold answers recorded before the story starts.
    let (ann_id, bob_id) = (f.user_id("ann").await, f.user_id("bob").await);
    for i in 1..=10 {
        f.sql(
            "INSERT INTO gold_answers (task_id, gold_id, labeler_id, correct, answered_at) VALUES ($1, 'g0', $2, $3, $4)",
            &[json!(format!("old-bob-{i}")), json!(bob_id), json!(i64::from(i <= 7)), json!(T0 - i * HOUR)],
        )
        .await;
    }
    for i in 1..=2 {
        f.sql(
            "INSERT INTO gold_answers (task_id, gold_id, labeler_id, correct, answered_at) VALUES ($1, 'g0', $2, 1, $3)",
            &[json!(format!("old-ann-{i}")), json!(ann_id), json!(T0 - i * HOUR)],
        )
        .await;
    }

    // Phase 1, 2026-11-25 10:00: before the last-day window.
    f.audit(&a, 1.0).await;
    let (route, tp1) = f
        .event(
            &ka,
            "p1-audit",
            "s1",
            &[("milk", 0.972), ("cola", 0.01)],
            T0,
            "m0",
        )
        .await;
    assert_eq!(
        route, "auto_accepted",
        "an audit sample is accepted, then checked"
    );
    f.audit(&a, 0.0).await;
    f.at(T0 + SEC);
    f.event(&ka, "p1-auto", "s1", &[("bread", 0.955)], T0, "m0")
        .await;
    f.answer(
        &f.ann,
        T0 + 2 * SEC,
        T0 + 8 * SEC,
        "p1-audit",
        pick("cola", 1),
        "ready",
    )
    .await;
    f.answer(
        &f.bob,
        T0 + 8 * SEC,
        T0 + 12 * SEC,
        "p1-audit",
        pick("cola", 1),
        "resolved",
    )
    .await;
    assert!(tp1.is_some());
    f.at(T0 + 20 * SEC);
    f.exit(&ka, "s1", T0 + 15 * SEC, "final").await;

    // Phase 2, 2026-11-26 10:00: in the last day, not the last hour.
    f.at(P2);
    f.audit(&a, 1.0).await;
    f.event(
        &ka,
        "a-audit1",
        "s2",
        &[("cola", 0.975), ("milk", 0.015)],
        P2,
        "m1",
    )
    .await;
    f.audit(&a, 0.0).await;
    // The audit sample is answered before the receipt work arrives: it
    // holds nothing, so any review would be claimed before it.
    f.answer(
        &f.ann,
        P2 + 10 * SEC,
        P2 + 15 * SEC,
        "a-audit1",
        pick("cola", 1),
        "ready",
    )
    .await;
    f.answer(
        &f.bob,
        P2 + 16 * SEC,
        P2 + 20 * SEC,
        "a-audit1",
        pick("cola", 1),
        "resolved",
    )
    .await;
    f.at(P2 + 20 * SEC + 100);
    f.event(
        &ka,
        "a-low1",
        "s2",
        &[("milk", 0.555), ("cola", 0.305)],
        P2,
        "m1",
    )
    .await;
    f.at(P2 + 20 * SEC + 200);
    f.event(
        &ka,
        "a-low2",
        "s2",
        &[("cola", 0.605), ("milk", 0.205)],
        P2,
        "m1",
    )
    .await;
    f.at(P2 + 20 * SEC + 300);
    let (route, _) = f
        .event(
            &ka,
            "a-auto1",
            "s2",
            &[("milk", 0.985), ("cola", 0.005)],
            P2,
            "m1",
        )
        .await;
    assert_eq!(route, "auto_accepted");
    f.at(P2 + 20 * SEC + 400);
    let (_, t3) = f
        .event(
            &ka,
            "a-margin",
            "s2",
            &[("milk", 0.935), ("cola", 0.905)],
            P2,
            "m1",
        )
        .await;
    f.at(P2 + 20 * SEC + 500);
    f.event(&kb, "b-auto1", "s8", &[("cola", 0.995)], P2, "m2")
        .await;
    f.at(P2 + 20 * SEC + 600);
    f.event(&kb, "b-none", "s3", &[], P2, "m2").await;
    f.at(P2 + 20 * SEC + 700);
    f.exit(&kb, "s8", P2 + 19 * SEC + 700, "final").await;
    f.answer(
        &f.ann,
        P2 + 21 * SEC,
        P2 + 29 * SEC,
        "a-low1",
        pick("milk", 1),
        "resolved",
    )
    .await;
    f.answer(
        &f.bob,
        P2 + 30 * SEC,
        P2 + 42 * SEC,
        "a-low2",
        pick("milk", 1),
        "resolved",
    )
    .await;
    f.answer(
        &f.cat,
        P2 + 43 * SEC,
        P2 + 48 * SEC,
        "a-margin",
        json!({"cant_tell": true}),
        "escalated",
    )
    .await;
    f.answer(
        &f.ann,
        P2 + 50 * SEC,
        P2 + 70 * SEC,
        "b-none",
        json!({"action": "none"}),
        "resolved",
    )
    .await;
    f.at(P2 + 100 * SEC);
    f.resolve(t3.as_deref().unwrap(), pick("cola", 1)).await;
    f.at(P2 + 110 * SEC);
    f.exit(&ka, "s2", P2 + 105 * SEC, "final").await;
    f.at(P2 + 120 * SEC);
    f.exit(&kb, "s3", P2 + 117 * SEC, "final").await;

    if rollup_midway {
        f.at(P2 + 150 * SEC);
        let run = recount::jobs::roll_up(&f.app.state).await.unwrap();
        assert_eq!(run.to, P2 + 145 * SEC);
    }

    // Phase 3, 2026-11-26 12:00: the last hour.
    f.at(P3);
    f.audit(&a, 1.0).await;
    let (_, t5) = f
        .event(&ka, "a-audit2", "s4", &[("bread", 0.965)], P3, "m1")
        .await;
    f.audit(&a, 0.0).await;
    f.answer(
        &f.bob,
        P3 + 10 * SEC,
        P3 + 16 * SEC,
        "a-audit2",
        pick("bread", 1),
        "ready",
    )
    .await;
    f.answer(
        &f.cat,
        P3 + 20 * SEC,
        P3 + 29 * SEC,
        "a-audit2",
        pick("bread", 2),
        "escalated",
    )
    .await;
    f.at(P3 + 29 * SEC + 100);
    f.event(&ka, "a-low3", "s4", &[("milk", 0.405)], P3, "m1")
        .await;
    f.at(P3 + 29 * SEC + 200);
    f.event(&ka, "a-esc", "s7", &[("cola", 0.455)], P3, "m1")
        .await;
    f.at(P3 + 29 * SEC + 300);
    f.event(&kb, "b-low", "s5", &[("cola", 0.505)], P3, "m2")
        .await;
    f.answer(
        &f.cat,
        P3 + 30 * SEC,
        P3 + 33 * SEC,
        "a-low3",
        pick("milk", 1),
        "resolved",
    )
    .await;
    f.answer(
        &f.ann,
        P3 + 40 * SEC,
        P3 + 47 * SEC,
        "a-esc",
        json!({"cant_tell": true}),
        "escalated",
    )
    .await;
    // s4 waits only for a-low3, settled already: the open audit sample
    // holds nothing, so the receipt is final when the exit (at 12:00:51)
    // is reported at 12:01.
    f.at(P3 + MIN);
    f.exit(&ka, "s4", P3 + 51 * SEC, "final").await;
    f.at(P3 + 5 * MIN);
    f.exit(&kb, "s5", P3 + 5 * MIN, "pending").await;
    f.at(P3 + 10 * MIN);
    f.resolve(t5.as_deref().unwrap(), pick("bread", 1)).await;
    f.at(P3 + 16 * MIN);
    f.event(
        &kb,
        "b-margin",
        "s6",
        &[("milk", 0.925), ("cola", 0.915)],
        P3 + 16 * MIN,
        "m2",
    )
    .await;

    // Gold at 12:20: a gold copy of an event with its answered gold task,
    // and an open gold task. Inserted directly, as the gold feature would.
    let t = P3 + 20 * MIN;
    f.at(t);
    f.sql(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, candidates, \
         clips, model_version, top_sku, top_confidence, route, status, final_action, final_sku, \
         final_quantity, resolution, request_hash, created_at, resolved_at) VALUES ('gold-ev-1', $1, \
         'gold-1', 'gold', 'pick', 1, $2, '[]', '[]', 'm1', 'milk', 0.5, 'gold', 'resolved', 'pick', \
         'milk', 1, 'human', 'x', $2, $2)",
        &[json!(a), json!(t)],
    )
    .await;
    f.sql(
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, status, \
         deadline_at, created_at, verdict_count, resolved_at, updated_at, gold_id) VALUES ('gold-task-1', \
         'gold-ev-1', $1, 'gold', 'gold', 1, 'resolved', $2, $3, 1, $3, $3, 'g1')",
        &[json!(a), json!(t + HOUR), json!(t)],
    )
    .await;
    f.sql(
        "INSERT INTO verdicts (id, task_id, labeler_id, lease_id, action, sku, quantity, cant_tell, \
         created_at, handling_ms) VALUES ('gold-v-1', 'gold-task-1', $1, 'gold-lease', 'pick', 'milk', 1, 0, $2, 4000)",
        &[json!(ann_id), json!(t)],
    )
    .await;
    f.sql(
        "INSERT INTO gold_answers (task_id, gold_id, labeler_id, correct, answered_at) VALUES ('gold-task-1', 'g1', $1, 1, $2)",
        &[json!(ann_id), json!(t)],
    )
    .await;
    f.sql(
        "INSERT INTO events (id, store_id, event_id, session_id, kind, quantity, occurred_at, candidates, \
         clips, model_version, top_sku, top_confidence, route, status, request_hash, created_at) \
         VALUES ('gold-ev-2', $1, 'gold-2', 'gold', 'pick', 1, $2, '[]', '[]', 'm2', 'cola', 0.5, 'gold', \
         'review', 'x', $2)",
        &[json!(b), json!(t)],
    )
    .await;
    f.sql(
        "INSERT INTO review_tasks (id, event_pk, store_id, session_id, reason, required_verdicts, status, \
         deadline_at, created_at, updated_at, gold_id) VALUES ('gold-task-2', 'gold-ev-2', $1, 'gold', \
         'gold', 1, 'ready', $2, $3, $3, 'g2')",
        &[json!(b), json!(t + HOUR), json!(t)],
    )
    .await;

    // Ann takes b-low (deadline 12:15) and holds it at the snapshot.
    f.at(P3 + 29 * MIN + 30 * SEC);
    let (s, c) = f.app.claim(&f.ann).await;
    assert_eq!(
        (s, c["task"]["event_id"].as_str()),
        (StatusCode::OK, Some("b-low"))
    );
    f.at(NOW);
    f
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// A percentile estimated from the rollup histograms: within the bucket
/// width (2.5 %) of the exact one, which is checked against
/// `stats::percentile` on the raw values.
fn assert_estimate(got: Option<f64>, values: &[f64], p: f64, exact: f64, what: &str) {
    let computed = percentile(values, p).unwrap();
    assert!(
        close(computed, exact, 1e-6),
        "{what}: exact {computed}, by hand {exact}"
    );
    let got = got.unwrap_or_else(|| panic!("{what}: missing"));
    assert!(
        (got - exact).abs() <= 0.025 * exact,
        "{what}: {got} is not within 2.5 % of {exact}"
    );
}

fn assert_rate(r: &Rate, count: i64, total: i64, what: &str) {
    assert_eq!((r.count, r.total), (count, total), "{what}");
    let (lo, hi) = wilson_interval(count as u64, total as u64, 1.96).unwrap();
    assert!(
        close(r.value.unwrap(), count as f64 / total as f64, 1e-12),
        "{what}"
    );
    assert!(
        close(r.low.unwrap(), lo, 1e-12) && close(r.high.unwrap(), hi, 1e-12),
        "{what}"
    );
}

fn hours(at: &[(usize, f64)]) -> Vec<f64> {
    let mut v = vec![0.0; 24];
    for (i, x) in at {
        v[*i] = *x;
    }
    v
}

/// Every figure of the snapshot at 12:30, worked out from the timeline.
fn check(d: &Dashboard, f: &Fixture) {
    // Windows: last hour from 11:31, last day from 11-25 13:00 (so hour 21
    // of the series is 11-26 10:00 and hour 23 is 12:00), 7 days from 11-20.
    assert_eq!(d.generated_at, "2026-11-26T12:30:00.000Z");

    // Queue. Alpha: a-esc escalated, its provisional deadline 12:15 passed.
    // Beta: b-margin ready since 12:16 (deadline 12:31), b-low leased
    // (deadline 12:15, exit + SLA), the open gold task left out.
    assert_eq!(d.queue.len(), 2);
    let (qa, qb) = (&d.queue[0], &d.queue[1]);
    assert_eq!(
        (qa.store_id.as_str(), qa.store_name.as_str()),
        (f.store_a.as_str(), "Alpha")
    );
    assert_eq!(
        (
            qa.ready,
            qa.leased,
            qa.escalated,
            qa.oldest_ready_ms,
            qa.past_deadline,
            qa.at_risk
        ),
        (0, 0, 1, None, 1, 0)
    );
    assert_eq!(
        (qb.store_id.as_str(), qb.store_name.as_str()),
        (f.store_b.as_str(), "Beta")
    );
    assert_eq!(
        (
            qb.ready,
            qb.leased,
            qb.escalated,
            qb.oldest_ready_ms,
            qb.past_deadline,
            qb.at_risk
        ),
        (1, 1, 0, Some(14 * MIN), 1, 1)
    );

    // Verdicts: 6 at 10:00 (ann, bob, ann, bob, cat, ann), 5 since 12:00
    // (bob, cat, cat, ann, and ann's gold answer at 12:20).
    assert_eq!(d.flow.verdicts_last_hour, 5);
    assert_eq!(d.flow.verdicts_per_hour.start, "2026-11-25T13:00:00.000Z");
    assert_eq!(
        d.flow.verdicts_per_hour.values,
        hours(&[(21, 6.0), (23, 5.0)])
    );
    let hour = [6000.0, 9000.0, 3000.0, 7000.0, 4000.0];
    let day: Vec<f64> = [5000.0, 4000.0, 8000.0, 12000.0, 5000.0, 20000.0]
        .iter()
        .chain(&hour)
        .copied()
        .collect();
    assert_estimate(
        d.flow.handling_p50_ms.hour,
        &hour,
        50.0,
        6000.0,
        "handling p50 hour",
    );
    assert_estimate(
        d.flow.handling_p90_ms.hour,
        &hour,
        90.0,
        8200.0,
        "handling p90 hour",
    );
    assert_estimate(
        d.flow.handling_p50_ms.day,
        &day,
        50.0,
        6000.0,
        "handling p50 day",
    );
    assert_estimate(
        d.flow.handling_p90_ms.day,
        &day,
        90.0,
        12000.0,
        "handling p90 day",
    );
    // Events of the last day: 7 at 10:00 (4 reviewed), 5 since 12:00 (4
    // reviewed); audit samples are accepted (people check them, nothing
    // waits for them) and the gold copy is not an event.
    assert_rate(&d.flow.event_review_rate, 8, 12, "event review rate");
    // Receipts of the last day: s8 (auto only), s2, s3, s4.
    assert_rate(&d.flow.session_review_rate, 3, 4, "session review rate");
    // Audit samples over 7 days: p1-audit (model wrong), a-audit1 and
    // a-audit2 (right).
    assert_rate(&d.flow.auto_accept_error, 1, 3, "auto-accept error");

    // Receipt latency: s8 1 s, s2 5 s, s3 3 s at 10:00; s4 9 s at 12:01
    // (its open audit sample does not hold it).
    let r = &d.receipts;
    assert_eq!((r.finalized_last_hour, r.finalized_last_day), (1, 4));
    let day = [1000.0, 5000.0, 3000.0, 9000.0];
    assert_estimate(r.p50_ms.day, &day, 50.0, 4000.0, "receipt p50 day");
    assert_estimate(r.p95_ms.day, &day, 95.0, 8400.0, "receipt p95 day");
    assert_estimate(r.p99_ms.day, &day, 99.0, 8880.0, "receipt p99 day");
    for (w, what) in [(&r.p50_ms, "p50"), (&r.p95_ms, "p95"), (&r.p99_ms, "p99")] {
        assert_estimate(w.hour, &[9000.0], 50.0, 9000.0, what);
    }
    assert_eq!(
        (r.pending, r.pending_past_deadline),
        (1, 1),
        "s5 exited 12:05, SLA 10 min"
    );
    assert_eq!(r.finalized_per_hour.values, hours(&[(21, 3.0), (23, 1.0)]));
    let p95 = &r.p95_per_hour.values;
    assert_estimate(
        Some(p95[21]),
        &[1000.0, 3000.0, 5000.0],
        95.0,
        4800.0,
        "p95 of 10:00",
    );
    assert_estimate(Some(p95[23]), &[9000.0], 95.0, 9000.0, "p95 of 12:00");
    assert_eq!(p95.iter().filter(|v| **v == 0.0).count(), 22);

    // Labelers: bob first (flagged: 7 of 10 gold), then ann, then cat.
    let names: Vec<&str> = d.labelers.iter().map(|l| l.username.as_str()).collect();
    assert_eq!(names, ["bob", "ann", "cat"]);
    let (bob, ann, cat) = (&d.labelers[0], &d.labelers[1], &d.labelers[2]);
    // ann: a-audit1 5 s, a-low1 8 s, b-none 20 s at 10:00; a-esc 7 s and the
    // gold answer 4 s at 12:00. Tasks resolved in the day: a-audit1, a-low1,
    // b-none (a-esc is still open, gold tasks do not count); only a-audit1
    // has two verdicts, and ann agrees there.
    assert_eq!((ann.verdicts, ann.tasks_per_hour), (5, 2.5));
    assert_estimate(
        ann.median_handling_ms,
        &[5000.0, 8000.0, 20000.0, 7000.0, 4000.0],
        50.0,
        7000.0,
        "ann median",
    );
    assert_rate(&ann.agreement, 1, 1, "ann agreement");
    assert_rate(&ann.gold_accuracy, 3, 3, "ann gold");
    assert!(!ann.flagged);
    // bob: a-audit1 4 s, a-low2 12 s, a-audit2 6 s; all agree with the final
    // label, and the two audits have two verdicts each.
    assert_eq!((bob.verdicts, bob.tasks_per_hour), (3, 1.5));
    assert_estimate(
        bob.median_handling_ms,
        &[4000.0, 12000.0, 6000.0],
        50.0,
        6000.0,
        "bob median",
    );
    assert_rate(&bob.agreement, 2, 2, "bob agreement");
    assert_rate(&bob.gold_accuracy, 7, 10, "bob gold");
    assert!(bob.flagged);
    // cat: can't tell on a-margin, bread × 2 on a-audit2 (the supervisor
    // decided one), milk on a-low3: only a-audit2 has a second verdict, and
    // cat disagrees there.
    assert_eq!((cat.verdicts, cat.tasks_per_hour), (3, 1.5));
    assert_estimate(
        cat.median_handling_ms,
        &[5000.0, 9000.0, 3000.0],
        50.0,
        5000.0,
        "cat median",
    );
    assert_rate(&cat.agreement, 0, 1, "cat agreement");
    assert_eq!(
        (cat.gold_accuracy.total, cat.gold_accuracy.value),
        (0, None)
    );
    assert!(!cat.flagged);

    // Alpha over tasks resolved in the day with two or more answers:
    // a-audit1 {cola, cola}, a-audit2 {bread × 1, bread × 2}. n = 4,
    // n_c = 2, 1, 1; disagreeing pairs 2 → α = 1 − 3 · 2 / (16 − 6) = 0.4.
    assert_eq!((d.agreement.tasks, d.agreement.values), (2, 4));
    assert!(
        close(d.agreement.alpha.unwrap(), 0.4, 1e-12),
        "{:?}",
        d.agreement.alpha
    );

    // Calibration over 7 days of human-labelled events with a confidence.
    let m0 = calibration(&[(0.972, false)], 10);
    let m1 = calibration(
        &[
            (0.975, true),
            (0.555, true),
            (0.605, false),
            (0.935, false),
            (0.965, true),
            (0.405, true),
        ],
        10,
    );
    let versions: Vec<&str> = d.models.iter().map(|m| m.model_version.as_str()).collect();
    assert_eq!(
        versions,
        ["m0", "m1"],
        "m2 has no human label with a confidence"
    );
    for (got, want) in d.models.iter().zip([m0, m1]) {
        assert_eq!(got.total as u64, want.total);
        assert!(close(got.ece, want.ece, 1e-6), "{} {}", got.ece, want.ece);
        assert_eq!(got.bins.len(), want.bins.len());
        for (g, w) in got.bins.iter().zip(&want.bins) {
            assert_eq!((g.count as u64, g.from, g.to), (w.count, w.from, w.to));
            assert!(close(g.mean_confidence, w.mean_confidence, 1e-6));
            assert!(close(g.accuracy, w.accuracy, 1e-12));
        }
    }
    assert!(close(
        d.models[1].ece,
        (0.595 + 0.445 + 0.605 + 3.0 * (0.958_333_333 - 2.0 / 3.0)) / 6.0,
        1e-6
    ));
}

async fn every_figure_matches_the_timeline_whatever_the_rollups_did(backend: Backend) {
    let f = fixture(backend, false).await;
    let never = f.snapshot().await;
    assert_eq!(never.rollup_watermark, "1970-01-01T00:00:00.000Z");
    check(&never, &f);
    let db = &f.app.state.db;
    let same = |d: &Dashboard| Dashboard {
        rollup_watermark: String::new(),
        ..d.clone()
    };
    // Rolled up to 12:10 (the supervisor's settling of a-audit2 at 12:10:00
    // is just after the watermark, in the live tail), then to now, twice.
    let run = recount::review::rollup::roll_up(db, P3 + 10 * MIN)
        .await
        .unwrap();
    assert_eq!((run.from, run.to), (0, P3 + 10 * MIN - 5 * SEC));
    let partly = f.snapshot().await;
    assert_eq!(partly.rollup_watermark, "2026-11-26T12:09:55.000Z");
    assert_eq!(same(&partly), same(&never));
    recount::review::rollup::roll_up(db, NOW).await.unwrap();
    let again = recount::review::rollup::roll_up(db, NOW).await.unwrap();
    assert_eq!(
        (again.steps, again.to),
        (0, NOW - 5 * SEC),
        "nothing left to add"
    );
    let twice = f.snapshot().await;
    assert_eq!(same(&twice), same(&never));
    check(&twice, &f);
}
dual!(every_figure_matches_the_timeline_whatever_the_rollups_did);

async fn the_rollup_job_running_midway_changes_no_figure(backend: Backend) {
    let f = fixture(backend, true).await;
    let d = f.snapshot().await;
    assert_eq!(d.rollup_watermark, "2026-11-26T10:02:25.000Z");
    check(&d, &f);
}
dual!(the_rollup_job_running_midway_changes_no_figure);

async fn concurrent_rollups_never_count_a_fact_twice(backend: Backend) {
    let f = fixture(backend, false).await;
    let before = f.snapshot().await;
    // Two instances: their own pools on the same database, catching up on
    // the whole timeline (dozens of hourly steps) at the same moment.
    let (one, two) = (
        f.app.db_handle.connect().await,
        f.app.db_handle.connect().await,
    );
    let (r1, r2) = tokio::join!(
        recount::review::rollup::roll_up(&one, NOW),
        recount::review::rollup::roll_up(&two, NOW)
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!((r1.to, r2.to), (NOW - 5 * SEC, NOW - 5 * SEC));
    assert!(r1.steps + r2.steps > 2, "{r1:?} {r2:?}");
    // 14 events (2 + 7 + 5; not the gold copies), 13 verdicts (2 + 6 + 5,
    // the gold answer's included), 13 gold answers (bob 10, ann 3): each
    // counted once.
    assert_eq!(
        f.app
            .count("SELECT CAST(SUM(events) AS BIGINT) FROM rollup_store WHERE grain_ms = 3600000")
            .await,
        14
    );
    assert_eq!(
        f.app
            .count(
                "SELECT CAST(SUM(verdicts) AS BIGINT) FROM rollup_store WHERE grain_ms = 3600000"
            )
            .await,
        13
    );
    assert_eq!(
        f.app
            .count("SELECT CAST(SUM(verdicts) AS BIGINT) FROM rollup_labeler WHERE grain_ms = 86400000")
            .await,
        13
    );
    assert_eq!(
        f.app
            .count("SELECT CAST(SUM(gold_answers) AS BIGINT) FROM rollup_labeler WHERE grain_ms = 86400000")
            .await,
        13
    );
    let after = f.snapshot().await;
    assert_eq!(after.rollup_watermark, "2026-11-26T12:29:55.000Z");
    assert_eq!(
        Dashboard {
            rollup_watermark: String::new(),
            ..after.clone()
        },
        Dashboard {
            rollup_watermark: String::new(),
            ..before
        }
    );
    check(&after, &f);
    one.close().await;
    two.close().await;
}
dual!(concurrent_rollups_never_count_a_fact_twice);

async fn confidence_bins_count_each_resolved_event_by_what_happened(backend: Backend) {
    let f = fixture(backend, true).await;
    let bins = |store: &str, days: &str| {
        let path = format!("/api/v1/stores/{store}/confidence-bins{days}");
        let sue = f.sue.clone();
        let app = &f.app;
        async move { app.call(Method::GET, &path, &sue, None).await }
    };
    let bin = |bin, events, forced, low, low_wrong, audited, audited_wrong, auto| ConfidenceBin {
        bin,
        events,
        forced,
        low_confidence: low,
        low_confidence_wrong: low_wrong,
        audited,
        audited_wrong,
        auto_accepted: auto,
    };
    let (s, body) = bins(&f.store_a, "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["from"], "2026-10-28T00:00:00.000Z",
        "30 days, today included"
    );
    assert_eq!(body["to"], "2026-11-26T12:30:00.000Z");
    let got: Vec<ConfidenceBin> = serde_json::from_value(body["bins"].clone()).unwrap();
    // Alpha: a-low3 .405, a-low1 .555, a-low2 .605 (model wrong), a-margin
    // .935 (forced), p1-auto .955, a-audit2 .965, p1-audit .972 (wrong) and
    // a-audit1 .975, a-auto1 .985. Not a-esc (open), not the gold copy (.5).
    assert_eq!(
        got,
        [
            bin(40, 1, 0, 1, 0, 0, 0, 0),
            bin(55, 1, 0, 1, 0, 0, 0, 0),
            bin(60, 1, 0, 1, 1, 0, 0, 0),
            bin(93, 1, 1, 0, 0, 0, 0, 0),
            bin(95, 1, 0, 0, 0, 0, 0, 1),
            bin(96, 1, 0, 0, 0, 1, 0, 0),
            bin(97, 2, 0, 0, 0, 2, 1, 0),
            bin(98, 1, 0, 0, 0, 0, 0, 1),
        ]
    );
    // Beta: b-none without candidates (forced, bin 0) and b-auto1 .995; its
    // open tasks are not resolved.
    let (_, body) = bins(&f.store_b, "?days=7").await;
    let got: Vec<ConfidenceBin> = serde_json::from_value(body["bins"].clone()).unwrap();
    assert_eq!(
        got,
        [bin(0, 1, 1, 0, 0, 0, 0, 0), bin(99, 1, 0, 0, 0, 0, 0, 1)]
    );
    // Today only: phase 1 (yesterday) drops out of Alpha.
    let (_, body) = bins(&f.store_a, "?days=1").await;
    let got: Vec<ConfidenceBin> = serde_json::from_value(body["bins"].clone()).unwrap();
    assert_eq!(got.iter().map(|b| b.events).sum::<i64>(), 7);
    assert!(got.iter().all(|b| b.bin != 95));

    for days in ["?days=0", "?days=366", "?days=ten", "?days=1.5"] {
        let (s, b) = bins(&f.store_a, days).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-days"),
            "{days}"
        );
    }
    let (s, b) = bins("no-such-store", "").await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "unknown-store"));
}
dual!(confidence_bins_count_each_resolved_event_by_what_happened);

/// An unsure event the margin rule would also send to people is forced, not
/// one a lower threshold would auto-accept; an unsure event with a clear
/// margin is the threshold's alone.
async fn an_unsure_close_call_counts_as_forced(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let (_, close) = app
        .events(
            &key,
            common::event("close", "s", "pick", 1, &[("milk", 0.55), ("cola", 0.50)]),
        )
        .await;
    let (_, unsure) = app
        .events(
            &key,
            common::event("unsure", "s", "pick", 1, &[("milk", 0.555), ("cola", 0.30)]),
        )
        .await;
    assert_eq!(
        (close["reason"].as_str(), unsure["reason"].as_str()),
        (Some("small-margin"), Some("low-confidence"))
    );
    for _ in 0..2 {
        let (s, c) = app.claim(&ann).await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let task = c["task"]["task_id"].as_str().unwrap();
        app.clock.advance(1_000);
        let (s, v) = app
            .verdict(
                &ann,
                task,
                json!({"action": "pick", "sku": "milk", "quantity": 1}),
            )
            .await;
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("resolved"))
        );
    }
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/stores/{store}/confidence-bins"),
            &sue,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let got: Vec<ConfidenceBin> = serde_json::from_value(body["bins"].clone()).unwrap();
    assert_eq!(
        got,
        [ConfidenceBin {
            bin: 55,
            events: 2,
            forced: 1,
            low_confidence: 1,
            low_confidence_wrong: 0,
            audited: 0,
            audited_wrong: 0,
            auto_accepted: 0,
        }]
    );
}
dual!(an_unsure_close_call_counts_as_forced);

/// A task whose clips are still being processed is in the queue as
/// waiting (a stalled media worker shows), and late like any open task.
async fn tasks_waiting_for_their_clips_are_in_the_queue(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store, key) = app.store_with_catalog().await;
    let sue = app.user("sue", Role::Supervisor).await;
    let clip = app
        .upload_clip(&key, "h264.mp4", "shelf-1", "2026-11-25T09:59:58Z")
        .await;
    let mut ev = common::event("filmed", "s", "pick", 1, &[("milk", 0.5)]);
    ev["clips"] = json!([clip]);
    let (s, out) = app.events(&key, ev).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let queue = || {
        let (app, sue, store) = (&app, sue.clone(), store.clone());
        async move {
            let (s, body) = app.call(Method::GET, "/api/v1/dashboard", &sue, None).await;
            assert_eq!(s, StatusCode::OK, "{body}");
            let d: Dashboard = serde_json::from_value(body).unwrap();
            let q = d.queue.into_iter().find(|q| q.store_id == store).unwrap();
            (q.waiting, q.ready, q.past_deadline)
        }
    };
    assert_eq!(queue().await, (1, 0, 0));
    // Past its receipt deadline while the clip is still not processed.
    app.clock.advance(2 * 3_600_000);
    assert_eq!(queue().await, (1, 0, 1));
    common::run_media_jobs(&app).await;
    assert_eq!(queue().await, (0, 1, 1));
}
dual!(tasks_waiting_for_their_clips_are_in_the_queue);

async fn only_supervisors_read_the_dashboard(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (store_id, key) = app.store_with_catalog().await;
    let ann = app.user("ann", Role::Labeler).await;
    let sue = app.user("sue", Role::Supervisor).await;
    let boss = app.user("boss", Role::Admin).await;
    for path in [
        "/api/v1/dashboard".to_string(),
        format!("/api/v1/stores/{store_id}/confidence-bins"),
    ] {
        let (s, b) = app.call_anon(Method::GET, &path, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        let (s, b) = app.call(Method::GET, &path, "rcu_not-a-token", None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{path}"
        );
        let (s, b) = app.call(Method::GET, &path, &ann, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::FORBIDDEN, "role-forbidden"),
            "{path}"
        );
        let (s, b) = app.call(Method::GET, &path, &key, None).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::FORBIDDEN, "user-token-required"),
            "{path}"
        );
        for token in [&sue, &boss] {
            let (s, b) = app.call(Method::GET, &path, token, None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
        }
    }
    // An empty install: every store listed, no figure invented.
    let (_, d) = app.call(Method::GET, "/api/v1/dashboard", &sue, None).await;
    let d: Dashboard = serde_json::from_value(d).unwrap();
    assert_eq!(d.queue.len(), 1);
    assert_eq!((d.queue[0].ready, d.queue[0].oldest_ready_ms), (0, None));
    assert_eq!(
        (
            d.flow.event_review_rate.total,
            d.flow.event_review_rate.value
        ),
        (0, None)
    );
    assert_eq!(
        (d.flow.handling_p50_ms.hour, d.receipts.p95_ms.day),
        (None, None)
    );
    assert_eq!(
        (d.agreement.alpha, d.labelers.len(), d.models.len()),
        (None, 0, 0)
    );
    // Both endpoints are in the OpenAPI document.
    let (_, doc) = app.call_anon(Method::GET, "/api/openapi.json", None).await;
    assert!(doc["paths"]["/api/v1/dashboard"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/stores/{store_id}/confidence-bins"]["get"].is_object());
}
dual!(only_supervisors_read_the_dashboard);
