//! One policy through one drawn day, on a virtual clock, by the server's own
//! rules: [`routing::route`] decides each event, [`lifecycle::purpose_of`]
//! what its task is for, [`lifecycle::queue_rank`] the queue order,
//! [`lifecycle::claim`], [`lifecycle::heartbeat`] and [`lifecycle::verdict`]
//! (with [`crate::domain::consensus`]) the labelers' work,
//! [`lifecycle::may_take_audit`] when an audit may be taken and
//! [`lifecycle::beat`] when it gives way to receipt work,
//! [`lifecycle::at_risk`] the deadline guarantee,
//! [`lifecycle::supervisor_resolve`] the supervisors' settlements,
//! [`lifecycle::receipt_deadline`] / [`lifecycle::deadline_after_exit`] the
//! deadlines and [`lifecycle::may_finalize`] + [`receipt::compute`] the
//! receipts. What is simulated is only what people do: shoppers' trips,
//! the model's answers, labelers' shifts, speed and accuracy.
//!
//! It is a discrete-event simulation: the clock jumps from one thing that
//! happens to the next, so a day costs what happens in it, not its length.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::day::Day;
use super::draw::{Drawn, Reviewer, HOUR, MINUTE};
use super::figures::{Figures, Tally};
use super::policy::{Audits, Order, SimPolicy};
use crate::domain::calibration::{self, Calibration, Observation, Observed};
use crate::domain::charge::{self, Priced};
use crate::domain::consensus::{Answer, EscalationReason};
use crate::domain::lifecycle::{self, Crew, Pending, SessionStatus, Task, TaskPurpose, TaskStatus};
use crate::domain::receipt::{self, SettledEvent};
use crate::domain::routing::{ReviewReason, Route, RoutingPolicy};
use crate::domain::{Action, Label};

/// Lease length of a claim, as the server's default `lease_ttl_ms`.
pub const LEASE_TTL_MS: i64 = 60_000;
/// How often the console renews a lease while the labeler works.
pub const HEARTBEAT_MS: i64 = 20_000;
/// How often a console on an audit asks whether receipt work waits, as the
/// server's default `audit_yield_check_ms`.
pub const YIELD_CHECK_MS: i64 = 1_000;
/// How long before a deadline a task goes to supervisors, as the server's
/// default `deadline_lead_ms`.
pub const DEADLINE_LEAD_MS: i64 = 60_000;

/// Labelers at work in each hour from opening (none after the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staffing {
    /// Labelers per hour.
    pub per_hour: Vec<u32>,
}

impl Staffing {
    /// The day's shifts as labelers per hour.
    pub fn of_shifts(day: &Day) -> Staffing {
        let hours = day
            .labelers
            .shifts
            .iter()
            .map(|s| s.to_hour)
            .max()
            .unwrap_or(0);
        let mut per_hour = vec![0; hours as usize];
        for s in &day.labelers.shifts {
            for h in s.from_hour..s.to_hour {
                per_hour[h as usize] += s.labelers;
            }
        }
        Staffing { per_hour }
    }

    /// Labeler-hours on duty.
    pub fn hours(&self) -> u64 {
        self.per_hour.iter().map(|&n| n as u64).sum()
    }

    fn at(&self, hour: usize) -> u32 {
        self.per_hour.get(hour).copied().unwrap_or(0)
    }
}

/// How `policy` routes `event` of `drawn` with the store's `calibration`:
/// the server's rule ([`charge::route_event`]), fed what the server's ingest
/// would feed it.
pub fn route_event(
    policy: &SimPolicy,
    day: &Day,
    drawn: &Drawn,
    event: usize,
    calibration: &Calibration,
) -> Route {
    let e = &drawn.events[event];
    let r: &RoutingPolicy = &policy.routing;
    let review_cost = r
        .review_cost_cents
        .map_or(day.review_cost_cents, |c| c as f64);
    let priced = e.candidates.map(|(p, c)| Priced {
        confidence: c,
        unit_price_cents: drawn.products[p as usize].price_cents,
    });
    charge::route_event(r, &priced, 1, calibration, review_cost, e.audit_draw)
}

/// What a routed event's task is for under `policy`: the server's rule,
/// except that a policy whose audits hold receipts reviews them as any
/// other event (how review queues commonly run).
pub fn purpose(policy: &SimPolicy, route: Route) -> Option<TaskPurpose> {
    match (lifecycle::purpose_of(route), policy.audits) {
        (Some(TaskPurpose::Audit), Audits::Hold) => Some(TaskPurpose::Review),
        (p, _) => p,
    }
}

/// One person's turn on an event's task: how long it takes and the product
/// their answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Handling time, ms.
    pub took_ms: i64,
    /// The product named (the truth when they are right, else one of the
    /// other candidates).
    pub product: u32,
}

/// The `turn`-th turn (0 for the first verdict) of `who` on event `event`:
/// a pure function of the day's seed, so a simulation and a run through the
/// real server (the agreement test) see the same people.
pub fn turn(day: &Day, drawn: &Drawn, event: usize, turn: u32, who: Reviewer) -> Turn {
    let e = &drawn.events[event];
    let draw = drawn.review(event, turn, who);
    let (median_s, accuracy) = match who {
        Reviewer::Labeler => (day.labelers.handling_median_seconds, day.labelers.accuracy),
        Reviewer::Supervisor => (
            day.supervisors.handling_median_seconds,
            day.supervisors.accuracy,
        ),
    };
    let product = if draw.is_right(accuracy) {
        e.truth
    } else {
        let wrong: Vec<u32> = e
            .candidates
            .iter()
            .map(|c| c.0)
            .filter(|&p| p != e.truth)
            .collect();
        wrong[draw.wrong_choice(wrong.len())]
    };
    Turn {
        took_ms: draw.time_ms(median_s * 1_000.0, day.labelers.handling_sigma),
        product,
    }
}

/// What happened to each event and receipt in a run, for comparing it with
/// the real server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// Per event: `None` when auto-accepted, else why it went to people.
    pub reasons: Vec<Option<ReviewReason>>,
    /// Per shopper: when the receipt became final (ms from opening).
    pub finalized_at: Vec<Option<i64>>,
    /// Per shopper: the receipt total at the end of the day, adjustments
    /// included, in cents.
    pub totals: Vec<i64>,
    /// Per shopper: the receipt's version at the end of the day.
    pub versions: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Staff(u32),
    Occur(u32),
    Exit(u32),
    Beat(u32, u32),
    Verdict(u32, u32),
    Yield(u32, u32),
    Check(u32, u32),
    Settle(u32, u32),
}

struct SimTask {
    event: u32,
    purpose: TaskPurpose,
    state: Task,
    answers: Vec<Answer>,
    answered_by: Vec<u32>,
    created: i64,
    deadline: i64,
    generation: u32,
    key: Option<QueueKey>,
}

type QueueKey = (i64, i64, i64, u32);

#[derive(Default)]
struct Session {
    status: Option<SessionStatus>,
    open_reviews: i64,
    tasks: Vec<u32>,
    finalized_at: Option<i64>,
    needed_a_person: bool,
}

#[derive(Clone, Copy, Default)]
struct Worker {
    on: bool,
    busy: Option<Busy>,
}

#[derive(Clone, Copy)]
struct Busy {
    task: u32,
    started: i64,
    due: i64,
    product: u32,
    /// An audit whose next heartbeat will find receipt work waiting.
    yielding: bool,
}

/// A run of one policy over one drawn day with one staffing.
pub struct Run<'a> {
    day: &'a Day,
    drawn: &'a Drawn,
    policy: &'a SimPolicy,
    staffing: &'a Staffing,
    heap: BinaryHeap<Reverse<(i64, u64, Happening)>>,
    seq: u64,
    tasks: Vec<SimTask>,
    ready: BTreeSet<QueueKey>,
    escalated: BTreeSet<QueueKey>,
    sessions: Vec<Session>,
    labels: Vec<u32>,
    labelers: Vec<Worker>,
    names: Vec<String>,
    supervisors: Vec<Worker>,
    on_count: i64,
    idle_on: i64,
    tally: Tally,
    reasons: Vec<Option<ReviewReason>>,
    versions: Vec<u32>,
    /// What people labelled so far, and the calibration fitted on it: the
    /// server refits at every ingest, so routing learns during the day.
    observed: Observed,
    calibration: Option<Calibration>,
}

impl<'a> Run<'a> {
    /// Runs `policy` over `drawn` with `staffing` and returns its figures.
    pub fn figures(
        day: &'a Day,
        drawn: &'a Drawn,
        policy: &'a SimPolicy,
        staffing: &'a Staffing,
    ) -> Figures {
        Run::traced(day, drawn, policy, staffing).0
    }

    /// The same run, with what happened to each event and receipt.
    pub fn traced(
        day: &'a Day,
        drawn: &'a Drawn,
        policy: &'a SimPolicy,
        staffing: &'a Staffing,
    ) -> (Figures, Trace) {
        let crew = staffing.per_hour.iter().copied().max().unwrap_or(0) as usize;
        let mut run = Run {
            day,
            drawn,
            policy,
            staffing,
            heap: BinaryHeap::with_capacity(drawn.events.len() + drawn.shoppers.len()),
            seq: 0,
            tasks: Vec::new(),
            ready: BTreeSet::new(),
            escalated: BTreeSet::new(),
            sessions: (0..drawn.shoppers.len())
                .map(|_| Session::default())
                .collect(),
            labels: drawn.events.iter().map(|e| e.top()).collect(),
            labelers: vec![Worker::default(); crew],
            names: (0..crew).map(|i| format!("labeler-{i}")).collect(),
            supervisors: vec![Worker::default(); day.supervisors.count as usize],
            on_count: 0,
            idle_on: 0,
            tally: Tally::default(),
            reasons: vec![None; drawn.events.len()],
            versions: vec![0; drawn.shoppers.len()],
            observed: Observed::default(),
            calibration: None,
        };
        for h in 0..=staffing.per_hour.len() {
            run.at(h as i64 * HOUR, Happening::Staff(h as u32));
        }
        for (i, s) in drawn.shoppers.iter().enumerate() {
            run.sessions[i].status = Some(SessionStatus::Open);
            for e in s.events.clone() {
                run.at(drawn.events[e].at, Happening::Occur(e as u32));
            }
            run.at(s.exit, Happening::Exit(i as u32));
        }
        while let Some(Reverse((now, _, what))) = run.heap.pop() {
            run.happen(now, what);
        }
        run.finish()
    }

    fn at(&mut self, when: i64, what: Happening) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq, what)));
    }

    fn happen(&mut self, now: i64, what: Happening) {
        match what {
            Happening::Staff(hour) => self.staff(now, hour as usize),
            Happening::Occur(e) => self.occur(now, e),
            Happening::Exit(s) => self.exit(now, s),
            Happening::Beat(l, t) => self.beat(now, l, t),
            Happening::Verdict(l, t) => self.verdict(now, l, t),
            Happening::Yield(l, t) => self.give_way(now, l, t),
            Happening::Check(t, generation) => {
                if self.tasks[t as usize].generation == generation {
                    self.check(now, t);
                }
            }
            Happening::Settle(s, t) => self.settle_escalated(now, s, t),
        }
        self.dispatch(now);
    }

    fn staff(&mut self, now: i64, hour: usize) {
        let wanted = self.staffing.at(hour) as usize;
        for (i, w) in self.labelers.iter_mut().enumerate() {
            let on = i < wanted;
            if on != w.on {
                w.on = on;
                self.on_count += if on { 1 } else { -1 };
                if w.busy.is_none() {
                    self.idle_on += if on { 1 } else { -1 };
                }
            }
        }
        // Who is at work changed: a task may have nobody left to answer it.
        let waiting: Vec<u32> = self.ready.iter().map(|k| k.3).collect();
        for t in waiting {
            self.check(now, t);
        }
    }

    fn occur(&mut self, now: i64, e: u32) {
        let event = &self.drawn.events[e as usize];
        let shopper = event.shopper as usize;
        let calibration = self.calibration.get_or_insert_with(|| self.observed.fit());
        let route = route_event(self.policy, self.day, self.drawn, e as usize, calibration);
        self.tally.events += 1;
        let Route::Review {
            required_verdicts,
            reason,
        } = route
        else {
            self.tally.auto_accepted(event);
            return;
        };
        self.reasons[e as usize] = Some(reason);
        let purpose = purpose(self.policy, route).expect("a review has a purpose");
        if !purpose.holds_receipt() {
            // Settled with the model's answer now; the audit measures.
            self.tally.auto_accepted(event);
            self.tally.audits += 1;
        } else {
            self.tally.events_to_people += 1;
            self.sessions[shopper].needed_a_person = true;
            self.sessions[shopper].open_reviews += 1;
        }
        let exited = match self.sessions[shopper].status {
            Some(SessionStatus::Open) | None => None,
            _ => Some(self.drawn.shoppers[shopper].exit),
        };
        let deadline = lifecycle::receipt_deadline(&self.policy.routing, exited, event.at);
        let t = self.tasks.len() as u32;
        self.tasks.push(SimTask {
            event: e,
            purpose,
            state: Task {
                status: lifecycle::new_task_status(&[]),
                lease: None,
                gold: false,
                required_verdicts,
            },
            answers: Vec::new(),
            answered_by: Vec::new(),
            created: now,
            deadline,
            generation: 0,
            key: None,
        });
        self.sessions[shopper].tasks.push(t);
        self.enqueue(t);
        self.schedule_check(now, t);
    }

    fn exit(&mut self, now: i64, s: u32) {
        let session = &mut self.sessions[s as usize];
        session.status = Some(SessionStatus::Exited);
        let deadline = lifecycle::deadline_after_exit(&self.policy.routing, now);
        for t in session.tasks.clone() {
            let task = &mut self.tasks[t as usize];
            if TaskStatus::OPEN.contains(&task.state.status) && task.deadline != deadline {
                task.deadline = deadline;
                task.generation += 1;
                if let Some(key) = task.key.take() {
                    self.ready.remove(&key);
                    self.enqueue(t);
                }
                self.schedule_check(now, t);
            }
        }
        self.maybe_finalize(now, s as usize);
    }

    fn key_of(&self, t: u32) -> QueueKey {
        let task = &self.tasks[t as usize];
        match self.policy.order {
            Order::Deadline => {
                let (a, b, c) = lifecycle::queue_rank(task.purpose, task.deadline, task.created);
                (a, b, c, t)
            }
            Order::Fifo => (0, task.created, 0, t),
        }
    }

    fn enqueue(&mut self, t: u32) {
        let key = self.key_of(t);
        self.ready.insert(key);
        self.tasks[t as usize].key = Some(key);
    }

    fn schedule_check(&mut self, now: i64, t: u32) {
        let task = &self.tasks[t as usize];
        if task.purpose.has_deadline() {
            let when = (task.deadline - DEADLINE_LEAD_MS).max(now);
            let generation = task.generation;
            self.at(when, Happening::Check(t, generation));
        }
    }

    /// The deadline guarantee on one task, as the server's sweep runs it.
    fn check(&mut self, now: i64, t: u32) {
        let task = &self.tasks[t as usize];
        let pending = Pending {
            purpose: task.purpose,
            status: task.state.status,
            deadline_at: task.deadline,
            required_verdicts: task.state.required_verdicts,
            verdicts: task.answers.len() as i64,
        };
        let eligible = self
            .labelers
            .iter()
            .enumerate()
            .filter(|(i, w)| w.on && !task.answered_by.contains(&(*i as u32)))
            .count() as i64;
        let crew = Crew {
            active: self.on_count,
            eligible,
        };
        if let Some(reason) = lifecycle::at_risk(&pending, crew, now, DEADLINE_LEAD_MS) {
            self.escalate(now, t, reason);
        }
    }

    fn escalate(&mut self, now: i64, t: u32, reason: EscalationReason) {
        let task = &mut self.tasks[t as usize];
        if let Some(key) = task.key.take() {
            self.ready.remove(&key);
        }
        task.state = Task {
            status: TaskStatus::Escalated,
            lease: None,
            ..task.state.clone()
        };
        self.tally.escalated(reason);
        // Supervisors take escalations in queue order too, as the
        // escalation list does: a receipt's before an audit's.
        let (rank, deadline, created) =
            lifecycle::queue_rank(task.purpose, task.deadline, task.created);
        self.escalated.insert((rank, deadline, created, t));
        self.dispatch_supervisors(now);
    }

    /// Idle labelers at work claim the next task they may take, as the
    /// claim use case decides it.
    fn dispatch(&mut self, now: i64) {
        loop {
            let mut claimed = false;
            for l in 0..self.labelers.len() {
                let w = self.labelers[l];
                if !w.on || w.busy.is_some() {
                    continue;
                }
                if let Some(t) = self.next_for(l as u32) {
                    self.claim(now, l as u32, t);
                    claimed = true;
                }
            }
            if !claimed || self.ready.is_empty() {
                break;
            }
        }
        self.audits_give_way(now);
    }

    /// Labelers on an audit for whom receipt work is now waiting learn it
    /// at their console's next heartbeat, where the audit is taken back.
    fn audits_give_way(&mut self, now: i64) {
        if self.policy.order != Order::Deadline {
            return;
        }
        for l in 0..self.labelers.len() {
            let Some(busy) = self.labelers[l].busy else {
                continue;
            };
            let purpose = self.tasks[busy.task as usize].purpose;
            if busy.yielding
                || !purpose.yields_to_receipt_work()
                || !self.receipt_work_for(l as u32)
            {
                continue;
            }
            let checks = (now - busy.started + YIELD_CHECK_MS - 1) / YIELD_CHECK_MS;
            let when = busy.started + checks.max(1) * YIELD_CHECK_MS;
            if when < busy.due {
                self.labelers[l].busy = Some(Busy {
                    yielding: true,
                    ..busy
                });
                self.at(when, Happening::Yield(l as u32, busy.task));
            }
        }
    }

    /// Whether receipt work (ranked before audits) that `l` may take is ready.
    fn receipt_work_for(&self, l: u32) -> bool {
        let rank = TaskPurpose::Review.priority();
        self.ready
            .iter()
            .take_while(|key| key.0 <= rank)
            .any(|key| !self.tasks[key.3 as usize].answered_by.contains(&l))
    }

    /// The heartbeat of labeler `l` on audit `t`, with receipt work for them
    /// waiting: the audit goes back to the queue and they are free for it.
    fn give_way(&mut self, now: i64, l: u32, t: u32) {
        let Some(busy) = self.labelers[l as usize].busy else {
            return;
        };
        if busy.task != t || !busy.yielding {
            return;
        }
        let waiting = self.receipt_work_for(l);
        let name = &self.names[l as usize];
        let task = &mut self.tasks[t as usize];
        let beat = lifecycle::beat(&task.state, task.purpose, name, now, LEASE_TTL_MS, waiting)
            .expect("the console renews the lease before it runs out");
        match beat {
            lifecycle::Beat::Renewed(lease) => {
                // Someone else took the receipt work first: go on.
                task.state.lease = Some(lease);
                self.labelers[l as usize].busy = Some(Busy {
                    yielding: false,
                    ..busy
                });
            }
            lifecycle::Beat::Yield => {
                task.state = Task {
                    status: TaskStatus::Ready,
                    lease: None,
                    ..task.state.clone()
                };
                self.enqueue(t);
                self.free(l);
                self.tally.yielded(now - busy.started);
            }
        }
    }

    fn next_for(&self, l: u32) -> Option<u32> {
        for key in &self.ready {
            let task = &self.tasks[key.3 as usize];
            if task.answered_by.contains(&l) {
                continue;
            }
            if task.purpose == TaskPurpose::Audit && self.policy.order == Order::Deadline {
                let others_active = self.on_count - 1;
                let others_idle = self.idle_on - 1;
                if !lifecycle::may_take_audit(others_active, others_idle) {
                    // Audits come last in this order: nothing after it.
                    return None;
                }
            }
            return Some(key.3);
        }
        None
    }

    fn claim(&mut self, now: i64, l: u32, t: u32) {
        let name = &self.names[l as usize];
        let task = &mut self.tasks[t as usize];
        task.state = lifecycle::claim(&task.state, name, now, LEASE_TTL_MS)
            .expect("the queue offers ready tasks only");
        if let Some(key) = task.key.take() {
            self.ready.remove(&key);
        }
        let n = task.answers.len() as u32;
        let Turn {
            took_ms: took,
            product,
        } = turn(
            self.day,
            self.drawn,
            task.event as usize,
            n,
            Reviewer::Labeler,
        );
        self.labelers[l as usize].busy = Some(Busy {
            task: t,
            started: now,
            due: now + took,
            product,
            yielding: false,
        });
        self.idle_on -= 1;
        self.at(now + took, Happening::Verdict(l, t));
        if took > HEARTBEAT_MS {
            self.at(now + HEARTBEAT_MS, Happening::Beat(l, t));
        }
    }

    fn beat(&mut self, now: i64, l: u32, t: u32) {
        let Some(Busy {
            task: held,
            due,
            started,
            ..
        }) = self.labelers[l as usize].busy
        else {
            return;
        };
        // A beat of an earlier lease on the same task (an audit given back
        // and taken again) is not this lease's.
        if held != t || (now - started) % HEARTBEAT_MS != 0 {
            return;
        }
        let name = &self.names[l as usize];
        let task = &mut self.tasks[t as usize];
        let lease = lifecycle::heartbeat(&task.state, name, now, LEASE_TTL_MS)
            .expect("the console renews the lease before it runs out");
        task.state.lease = Some(lease);
        if due - now > HEARTBEAT_MS {
            self.at(now + HEARTBEAT_MS, Happening::Beat(l, t));
        }
    }

    fn label(&self, action: Action, product: u32) -> Label {
        Label::new(
            action,
            Some(self.drawn.products[product as usize].sku.clone()),
            1,
        )
    }

    /// Labeler `l` puts down the task in hand (answered or given back);
    /// what they held.
    fn free(&mut self, l: u32) -> Option<Busy> {
        let w = &mut self.labelers[l as usize];
        let busy = w.busy.take();
        if busy.is_some() && w.on {
            self.idle_on += 1;
        }
        busy
    }

    fn verdict(&mut self, now: i64, l: u32, t: u32) {
        match self.labelers[l as usize].busy {
            Some(b) if b.task == t && b.due == now => {}
            // The audit was given back before its answer was ready.
            _ => return,
        }
        let busy = self.free(l).expect("busy with it");
        self.tally.verdict(now - busy.started);
        let product = busy.product;
        let event = &self.drawn.events[self.tasks[t as usize].event as usize];
        let answer = Answer::Label(self.label(event.action, product));
        let name = &self.names[l as usize];
        let task = &mut self.tasks[t as usize];
        task.answers.push(answer);
        task.answered_by.push(l);
        let after = lifecycle::verdict(&task.state, name, now, &task.answers)
            .expect("the lease is renewed while the labeler works");
        match after {
            lifecycle::AfterVerdict::NeedMore => {
                task.state = Task {
                    status: TaskStatus::Ready,
                    lease: None,
                    ..task.state.clone()
                };
                self.enqueue(t);
                self.check(now, t);
            }
            lifecycle::AfterVerdict::Escalate(reason) => self.escalate(now, t, reason),
            lifecycle::AfterVerdict::Resolve(_) => self.settle(now, t, product),
            lifecycle::AfterVerdict::GoldAnswered { .. } => unreachable!("no gold copies here"),
        }
    }

    fn dispatch_supervisors(&mut self, now: i64) {
        for s in 0..self.supervisors.len() {
            if self.supervisors[s].busy.is_some() {
                continue;
            }
            let Some(key) = self.escalated.pop_first() else {
                return;
            };
            let t = key.3;
            let e = self.tasks[t as usize].event as usize;
            let Turn { took_ms, product } = turn(self.day, self.drawn, e, 0, Reviewer::Supervisor);
            self.supervisors[s].busy = Some(Busy {
                task: t,
                started: now,
                due: now + took_ms,
                product,
                yielding: false,
            });
            self.at(now + took_ms, Happening::Settle(s as u32, t));
        }
    }

    fn settle_escalated(&mut self, now: i64, s: u32, t: u32) {
        let busy = self.supervisors[s as usize]
            .busy
            .take()
            .expect("busy with it");
        self.tally.settlement(now - busy.started);
        let product = busy.product;
        let event = &self.drawn.events[self.tasks[t as usize].event as usize];
        let answer = Answer::Label(self.label(event.action, product));
        lifecycle::supervisor_resolve(&self.tasks[t as usize].state, answer)
            .expect("supervisors settle escalated tasks with a label");
        self.settle(now, t, product);
        self.dispatch_supervisors(now);
    }

    /// A task's agreed label becomes its event's.
    fn settle(&mut self, now: i64, t: u32, product: u32) {
        let task = &mut self.tasks[t as usize];
        task.state = Task {
            status: TaskStatus::Resolved,
            lease: None,
            ..task.state.clone()
        };
        let e = task.event as usize;
        let purpose = task.purpose;
        let shopper = self.drawn.events[e].shopper as usize;
        let changed = self.labels[e] != product;
        self.labels[e] = product;
        self.learn(e, product);
        if purpose.holds_receipt() {
            self.sessions[shopper].open_reviews -= 1;
            self.maybe_finalize(now, shopper);
        } else {
            self.tally.audits_answered += 1;
            if changed && self.sessions[shopper].finalized_at.is_some() {
                self.tally.adjustments += 1;
                self.versions[shopper] += 1;
            }
        }
    }

    /// An event people labelled becomes a calibration observation, as the
    /// server's `db::calibration::observations` reads it
    /// ([`calibration::weight`]).
    fn learn(&mut self, e: usize, product: u32) {
        let event = &self.drawn.events[e];
        let audited = self.reasons[e] == Some(ReviewReason::AuditSample);
        self.observed.add(&Observation {
            confidence: event.candidates[0].1,
            right: product == event.top(),
            weight: calibration::weight(audited, self.policy.routing.audit_rate),
        });
        self.calibration = None;
    }

    fn maybe_finalize(&mut self, now: i64, s: usize) {
        let session = &mut self.sessions[s];
        let status = session.status.unwrap_or(SessionStatus::Open);
        if !lifecycle::may_finalize(status, session.open_reviews) {
            return;
        }
        session.status = Some(SessionStatus::Finalized);
        session.finalized_at = Some(now);
        self.versions[s] = 1;
        let needed_a_person = session.needed_a_person;
        let shopper = &self.drawn.shoppers[s];
        let charged = self.receipt_total(shopper.events.clone(), |e| self.labels[e]);
        let truth = self.receipt_total(shopper.events.clone(), |e| self.drawn.events[e].truth);
        let error: i64 = shopper
            .events
            .clone()
            .map(|e| self.charge_error(e, self.labels[e]))
            .sum();
        self.tally
            .receipt(now - shopper.exit, needed_a_person, charged - truth, error);
    }

    /// The receipt total of `events` labelled by `label`, by the receipt rule.
    fn receipt_total(&self, events: std::ops::Range<usize>, label: impl Fn(usize) -> u32) -> i64 {
        let settled: Vec<SettledEvent> = events
            .map(|e| {
                let event = &self.drawn.events[e];
                let product = &self.drawn.products[label(e) as usize];
                SettledEvent {
                    label: self.label(event.action, label(e)),
                    occurred_at: event.at,
                    unit_price_cents: product.price_cents,
                    name: product.sku.clone(),
                }
            })
            .collect();
        receipt::compute(&settled).1
    }

    /// What charging `product` for event `e` is off by, in cents.
    fn charge_error(&self, e: usize, product: u32) -> i64 {
        let truth = self.drawn.products[self.drawn.events[e].truth as usize].price_cents;
        (self.drawn.products[product as usize].price_cents - truth).abs()
    }

    fn finish(self) -> (Figures, Trace) {
        let after_adjustments: i64 = (0..self.drawn.events.len())
            .map(|e| self.charge_error(e, self.labels[e]))
            .sum();
        let unfinished = self
            .sessions
            .iter()
            .filter(|s| s.finalized_at.is_none())
            .count() as u64;
        let trace = Trace {
            reasons: self.reasons.clone(),
            finalized_at: self.sessions.iter().map(|s| s.finalized_at).collect(),
            totals: self
                .drawn
                .shoppers
                .iter()
                .map(|s| self.receipt_total(s.events.clone(), |e| self.labels[e]))
                .collect(),
            versions: self.versions.clone(),
        };
        let figures = self.tally.figures(
            self.day,
            self.policy,
            self.staffing,
            self.drawn.shoppers.len() as u64,
            after_adjustments,
            unfinished,
        );
        (figures, trace)
    }
}

/// Hours from opening until the last shopper's deadline: the span a
/// staffing plan covers.
pub fn span_hours(day: &Day, drawn: &Drawn) -> usize {
    let last = drawn.shoppers.iter().map(|s| s.exit).max().unwrap_or(0);
    let sla = (day.sla_minutes * MINUTE as f64) as i64;
    ((last + sla) as f64 / HOUR as f64).ceil() as usize
}
