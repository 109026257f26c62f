//! The simulator against the real server: a short store day run through
//! `recount simulate`'s engine and through the server (in-process, manual
//! clock, its own database; shoppers posting events and exits, labelers
//! claiming, heartbeating and answering, a supervisor settling escalations,
//! all over HTTP) with the same draws, on SQLite and on PostgreSQL. They must
//! route every event alike, end with the same receipts, and have receipt
//! latency percentiles within 10 %.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{Backend, TestApp, T0};
use recount::auth::Role;
use recount::clock::Clock;
use recount::domain::stats::percentile;
use recount::domain::time::{format_rfc3339_ms, parse_rfc3339_ms};
use recount::domain::Action;
use recount::sim::day::{CatalogSpec, Day};
use recount::sim::draw::{Drawn, Reviewer, HOUR};
use recount::sim::engine::{self, Run, Staffing};
use recount::sim::policy::SimPolicy;

/// Two labelers, busy enough that both claim often: the server counts as
/// "at work" those who claimed within the activity window, the simulator
/// those on shift, and a crew that works all day is both.
const LABELERS: u32 = 2;
const SEED: u64 = 11;
const HEARTBEAT_MS: i64 = engine::HEARTBEAT_MS;
/// How often the driver runs the deadline guarantee, as the server's
/// default `deadline_sweep_interval_ms`.
const SWEEP_MS: i64 = 5_000;

/// 200 shoppers in an hour, four events each on average, in short trips
/// (median 3 minutes) so that many receipts wait for a review at exit.
fn short_day() -> Day {
    Day {
        shoppers: 200,
        arrivals_by_hour: vec![1.0],
        events_per_shopper: 4.0,
        trip_median_minutes: 3.0,
        catalog: CatalogSpec {
            products: 60,
            ..CatalogSpec::default()
        },
        ..Day::default()
    }
}

/// What Recount runs: charge-aware routing at the day's review cost, with
/// audit samples (two verdicts each) off the receipt's path.
const POLICY: &str = "charge-aware,review-cost-cents=5,audit-rate=0.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Occur(usize),
    Exit(usize),
    /// A labeler's console renews the lease of their claim number `.1`.
    Beat(usize, u64),
    /// A labeler answers their claim number `.1`.
    Verdict(usize, u64),
    Settle,
    Sweep,
}

struct Labeler {
    token: String,
    /// Task id, its event, when the verdict is due, the product named.
    busy: Option<(String, usize, i64, u32)>,
    /// Claims made so far: a step for an earlier claim (an audit given
    /// back) is stale.
    claims: u64,
    /// How often the console heartbeats the task in hand, as its claim said.
    heartbeat_ms: i64,
}

struct Server<'a> {
    app: &'a TestApp,
    day: &'a Day,
    drawn: &'a Drawn,
    key: String,
    supervisor: String,
    labelers: Vec<Labeler>,
    /// Verdicts given so far per task.
    turns: HashMap<String, u32>,
    /// Escalated tasks not yet taken, and the one the supervisor settles.
    escalated: VecDeque<String>,
    seen_escalated: std::collections::HashSet<String>,
    settling: Option<(String, usize, u32)>,
    heap: BinaryHeap<Reverse<(i64, u64, Step)>>,
    seq: u64,
    now: i64,
    routes: Vec<Option<String>>,
    event_ids: HashMap<String, usize>,
}

impl Server<'_> {
    fn at(&mut self, when: i64, step: Step) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq, step)));
    }

    fn set_clock(&mut self, now: i64) {
        let target = T0 + now;
        let current = self.app.clock.now_ms();
        assert!(target >= current, "the clock only moves forward");
        self.app.clock.advance(target - current);
        self.now = now;
    }

    fn sku(&self, product: u32) -> &str {
        &self.drawn.products[product as usize].sku
    }

    fn answer(&self, event: usize, product: u32) -> Value {
        let action = match self.drawn.events[event].action {
            Action::Return => "return",
            _ => "pick",
        };
        json!({"action": action, "sku": self.sku(product), "quantity": 1})
    }

    async fn occur(&mut self, e: usize) {
        let ev = &self.drawn.events[e];
        let candidates: Vec<Value> = ev
            .candidates
            .iter()
            .map(|(p, c)| json!({"sku": self.sku(*p), "confidence": c}))
            .collect();
        let body = json!({
            "event_id": format!("e{e}"),
            "session_id": format!("s{}", ev.shopper),
            "kind": if ev.action == Action::Return { "return" } else { "pick" },
            "quantity": 1,
            "occurred_at": format_rfc3339_ms(T0 + ev.at),
            "candidates": candidates,
            "model_version": "m1",
        });
        let (s, out) = self.app.events(&self.key, body).await;
        assert_eq!(s, StatusCode::OK, "{out}");
        self.routes[e] = out["reason"].as_str().map(str::to_string);
    }

    async fn exit(&mut self, s: usize) {
        let at = format_rfc3339_ms(T0 + self.drawn.shoppers[s].exit);
        let (status, out) = self.app.exit(&self.key, &format!("s{s}"), &at).await;
        assert_eq!(status, StatusCode::OK, "{out}");
    }

    async fn verdict(&mut self, l: usize, claim: u64) {
        if claim != self.labelers[l].claims || self.labelers[l].busy.is_none() {
            return;
        }
        let (task, event, _, product) = self.labelers[l].busy.take().expect("busy");
        let body = self.answer(event, product);
        let (s, out) = self.app.verdict(&self.labelers[l].token, &task, body).await;
        assert_eq!(s, StatusCode::OK, "{out}");
        *self.turns.entry(task.clone()).or_default() += 1;
        if out["status"] == "escalated" && self.seen_escalated.insert(task.clone()) {
            self.escalated.push_back(task);
        }
    }

    /// The console's heartbeat; true when it handed an audit back for
    /// receipt work, so the labeler is free.
    async fn beat(&mut self, l: usize, claim: u64) -> bool {
        let Some((task, _, due, _)) = self.labelers[l].busy.clone() else {
            return false;
        };
        if claim != self.labelers[l].claims {
            return false;
        }
        let (s, out) = self
            .app
            .call(
                Method::POST,
                &format!("/api/v1/tasks/{task}/heartbeat"),
                &self.labelers[l].token,
                None,
            )
            .await;
        if s == StatusCode::CONFLICT && out["error"]["code"] == "lease-yielded" {
            self.labelers[l].busy = None;
            return true;
        }
        assert_eq!(s, StatusCode::OK, "{out}");
        let every = self.labelers[l].heartbeat_ms;
        if due - self.now > every {
            self.at(self.now + every, Step::Beat(l, claim));
        }
        false
    }

    async fn sweep(&mut self) {
        let escalated = recount::jobs::escalate_at_risk(&self.app.state)
            .await
            .unwrap();
        if escalated == 0 {
            return;
        }
        let (s, list) = self
            .app
            .call(Method::GET, "/api/v1/escalations", &self.supervisor, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        for d in list.as_array().unwrap() {
            let id = d["task"]["task_id"].as_str().unwrap().to_string();
            if self.seen_escalated.insert(id.clone()) {
                self.escalated.push_back(id);
            }
        }
    }

    async fn settle(&mut self) {
        let (task, event, product) = self.settling.take().expect("settling");
        let body = self.answer(event, product);
        let (s, out) = self
            .app
            .call(
                Method::POST,
                &format!("/api/v1/tasks/{task}/resolve"),
                &self.supervisor,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{out}");
    }

    /// Idle labelers claim, in order, until nobody gets anything.
    async fn dispatch(&mut self) {
        loop {
            let mut claimed = false;
            for l in 0..self.labelers.len() {
                if self.labelers[l].busy.is_some() {
                    continue;
                }
                let (s, claim) = self.app.claim(&self.labelers[l].token).await;
                if s == StatusCode::NO_CONTENT {
                    continue;
                }
                assert_eq!(s, StatusCode::OK, "{claim}");
                let task = claim["task"]["task_id"].as_str().unwrap().to_string();
                let event = self.event_ids[claim["task"]["event_id"].as_str().unwrap()];
                let turn = self.turns.get(&task).copied().unwrap_or(0);
                let t = engine::turn(self.day, self.drawn, event, turn, Reviewer::Labeler);
                let every = claim["heartbeat_ms"].as_i64().unwrap();
                let lab = &mut self.labelers[l];
                lab.busy = Some((task, event, self.now + t.took_ms, t.product));
                lab.claims += 1;
                lab.heartbeat_ms = every;
                let n = lab.claims;
                self.at(self.now + t.took_ms, Step::Verdict(l, n));
                if t.took_ms > every {
                    self.at(self.now + every, Step::Beat(l, n));
                }
                claimed = true;
            }
            if !claimed {
                break;
            }
        }
    }

    /// An idle supervisor takes the next escalated task.
    async fn supervise(&mut self) {
        if self.settling.is_none() {
            if let Some(task) = self.escalated.pop_front() {
                let (s, detail) = self
                    .app
                    .call(
                        Method::GET,
                        &format!("/api/v1/tasks/{task}"),
                        &self.supervisor,
                        None,
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{detail}");
                let event = self.event_ids[detail["task"]["event_id"].as_str().unwrap()];
                let t = engine::turn(self.day, self.drawn, event, 0, Reviewer::Supervisor);
                self.settling = Some((task, event, t.product));
                self.at(self.now + t.took_ms, Step::Settle);
            }
        }
    }
}

async fn simulator_and_server_agree(backend: Backend) {
    let day = short_day();
    let drawn = Drawn::new(&day, SEED);
    let policy = recount::sim::prepare(&day, &drawn, &SimPolicy::parse(POLICY).unwrap());
    let span = engine::span_hours(&day, &drawn);
    let staffing = Staffing {
        per_hour: vec![LABELERS; span + 1],
    };
    let (figures, trace) = Run::traced(&day, &drawn, &policy, &staffing);

    // The server takes its audit draws in the order events are stored,
    // which is the order the driver posts them: the simulator's order.
    let mut order: Vec<(i64, u64, Step)> = Vec::new();
    let mut seq = 0;
    for (s, shopper) in drawn.shoppers.iter().enumerate() {
        for e in shopper.events.clone() {
            seq += 1;
            order.push((drawn.events[e].at, seq, Step::Occur(e)));
        }
        seq += 1;
        order.push((shopper.exit, seq, Step::Exit(s)));
    }
    order.sort();
    let draws: VecDeque<f64> = order
        .iter()
        .filter_map(|(_, _, s)| match s {
            Step::Occur(e) => Some(drawn.events[*e].audit_draw),
            _ => None,
        })
        .collect();
    let app = TestApp::start_with_draws(backend, draws).await;

    let (store_id, key) = app.store("Agreement", None).await;
    let products: Vec<Value> = drawn
        .products
        .iter()
        .map(|p| json!({"sku": p.sku, "name": p.sku, "price_cents": p.price_cents}))
        .collect();
    let (s, b) = app
        .call(Method::PUT, "/api/v1/products", &key, Some(json!(products)))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let admin = app.user("boss", Role::Admin).await;
    let r = &policy.routing;
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/stores/{store_id}/policy"),
            &admin,
            Some(json!({
                "mode": "charge-aware",
                "review_cost_cents": r.review_cost_cents,
                "threshold": r.threshold,
                "margin": r.margin,
                "audit_rate": r.audit_rate,
                "audit_verdicts": r.audit_verdicts,
                "receipt_sla_ms": r.receipt_sla_ms,
                "expected_exit_ms": r.expected_exit_ms,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut labelers = Vec::new();
    for i in 0..LABELERS {
        labelers.push(Labeler {
            token: app.user(&format!("labeler-{i}"), Role::Labeler).await,
            busy: None,
            claims: 0,
            heartbeat_ms: HEARTBEAT_MS,
        });
    }
    let supervisor = app.user("sue", Role::Supervisor).await;

    let mut server = Server {
        app: &app,
        day: &day,
        drawn: &drawn,
        key: key.clone(),
        supervisor,
        labelers,
        turns: HashMap::new(),
        escalated: VecDeque::new(),
        seen_escalated: Default::default(),
        settling: None,
        heap: BinaryHeap::new(),
        seq: 0,
        now: 0,
        routes: vec![None; drawn.events.len()],
        event_ids: (0..drawn.events.len())
            .map(|e| (format!("e{e}"), e))
            .collect(),
    };
    for (at, _, step) in order {
        server.at(at, step);
    }
    let end = span as i64 * HOUR;
    let mut t = SWEEP_MS;
    while t <= end {
        server.at(t, Step::Sweep);
        t += SWEEP_MS;
    }
    while let Some(Reverse((now, _, step))) = server.heap.pop() {
        server.set_clock(now);
        // Work becomes claimable only when an event goes to people or a
        // verdict frees a labeler (or needs another): claims are tried then.
        let mut claims = matches!(step, Step::Occur(_) | Step::Verdict(..));
        match step {
            Step::Occur(e) => server.occur(e).await,
            Step::Exit(s) => server.exit(s).await,
            Step::Beat(l, claim) => claims = server.beat(l, claim).await,
            Step::Verdict(l, claim) => server.verdict(l, claim).await,
            Step::Settle => server.settle().await,
            Step::Sweep => server.sweep().await,
        }
        if claims {
            server.dispatch().await;
        }
        server.supervise().await;
    }

    // The same routing decisions, event by event.
    let sim_routes: Vec<Option<String>> = trace
        .reasons
        .iter()
        .map(|r| r.map(|r| r.as_str().to_string()))
        .collect();
    let differing: Vec<usize> = (0..drawn.events.len())
        .filter(|&e| sim_routes[e] != server.routes[e])
        .collect();
    let shown: Vec<String> = differing
        .iter()
        .take(6)
        .map(|&e| {
            let ev = &drawn.events[e];
            format!(
                "e{e}: simulator {:?}, server {:?}, candidates {:?}, true expected error {:.2}",
                sim_routes[e], server.routes[e], ev.candidates, ev.true_expected_error_cents
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "routes differ at events {differing:?}:\n{}",
        shown.join("\n")
    );
    assert!(
        sim_routes
            .iter()
            .any(|r| r.as_deref() == Some("audit-sample")),
        "the day has audit samples"
    );
    assert!(sim_routes
        .iter()
        .any(|r| r.as_deref() == Some("charge-risk")));
    assert!(sim_routes.iter().any(Option::is_none));

    // The same receipts, and latency percentiles within 10 %.
    let mut server_latency = Vec::new();
    let mut sim_latency = Vec::new();
    for (s, shopper) in drawn.shoppers.iter().enumerate() {
        let (status, receipt) = app.receipt(&key, &format!("s{s}")).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["status"], "final", "s{s}: {receipt}");
        assert_eq!(receipt["total_cents"], trace.totals[s], "s{s}: {receipt}");
        assert_eq!(receipt["version"], trace.versions[s], "s{s}: {receipt}");
        let finalized = parse_rfc3339_ms(receipt["finalized_at"].as_str().unwrap()).unwrap();
        server_latency.push((finalized - T0 - shopper.exit) as f64 / 1_000.0);
        let sim_final = trace.finalized_at[s].expect("final in the simulation");
        sim_latency.push((sim_final - shopper.exit) as f64 / 1_000.0);
    }
    for p in [50.0, 95.0, 99.0] {
        let server_p = percentile(&server_latency, p).unwrap();
        let sim_p = percentile(&sim_latency, p).unwrap();
        assert!(
            (server_p - sim_p).abs() <= 0.1 * server_p.max(sim_p) + 1.0,
            "p{p}: server {server_p} s, simulator {sim_p} s"
        );
    }
    assert_eq!(figures.unfinished, 0);
    assert!(
        figures.latency_p95_s > 0.0,
        "some receipts waited for people"
    );
}

dual!(simulator_and_server_agree);
