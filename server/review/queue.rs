//! The review queue as labelers and supervisors use it: claim with a lease,
//! heartbeat, release, verdicts and consensus, escalation and supervisor
//! resolution, and what they read of a task.
//!
//! Every change is decided by a transition of [`crate::domain::lifecycle`];
//! this module reads the rows it needs, in the lock order of [`locks`],
//! stores the decision through [`crate::db::tasks`], answers refusals with
//! their codes and records metrics once the change is committed.

use std::time::{Duration, Instant};

use crate::db::batch::Batch;
use crate::db::catalog_cache::Catalogs;
use crate::db::tasks::{self, NewLease, NewVerdict, Resolution, TaskCard, TaskRow, VerdictRow};
use crate::db::users::User;
use crate::db::{audit, disputes, events, gold, new_id, receipts, stores, Db, Tx};
use crate::domain::audit::Action as AuditAction;
use crate::domain::consensus::{Answer, EscalationReason};
use crate::domain::event::MAX_QUANTITY;
use crate::domain::lifecycle::{
    self, may_finalize, AfterVerdict, Lease, LeaseEnd, Refused, TaskPurpose, TaskStatus,
};
use crate::domain::receipt::{Cause, ReceiptLine};
use crate::domain::scope::Scope;
use crate::domain::{Action, Label};
use crate::error::{Code, Error, Result};
use crate::review::locks::{self, unknown_task};
use crate::review::receipts::{self as receipt_flow, Adjusted, Finalized};

/// Longest note a labeler may attach.
pub const MAX_NOTE_LEN: usize = 2000;

/// A labeler's or supervisor's answer, as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// What the shopper did; not needed with `cant_tell`.
    pub action: Option<Action>,
    /// The product; needed for pick and return.
    pub sku: Option<String>,
    /// Units; defaults to the event's quantity.
    pub quantity: Option<i64>,
    /// The video does not show what happened.
    pub cant_tell: bool,
    /// Free text for supervisors.
    pub note: Option<String>,
}

/// The settings a claim follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRules {
    /// How long a lease lasts unless renewed (`lease_ttl_ms`).
    pub ttl_ms: i64,
    /// Live leases a labeler may hold (`max_leases_per_labeler`).
    pub max_leases: i64,
    /// Who counts as at work: claimed within this (`labeler_active_window_ms`).
    pub active_window_ms: i64,
    /// How often a console holding an audit checks for receipt work
    /// (`audit_yield_check_ms`).
    pub yield_check_ms: i64,
}

impl ClaimRules {
    /// The rules of `config`.
    pub fn of(config: &crate::config::Config) -> ClaimRules {
        ClaimRules {
            ttl_ms: config.lease_ttl_ms,
            max_leases: config.max_leases_per_labeler,
            active_window_ms: config.labeler_active_window_ms,
            yield_check_ms: config.audit_yield_check_ms,
        }
    }

    /// How often a console renews a lease on a task of `purpose`
    /// ([`lifecycle::heartbeat_every_ms`]).
    pub fn heartbeat_ms(&self, purpose: TaskPurpose) -> i64 {
        lifecycle::heartbeat_every_ms(purpose, self.ttl_ms, self.yield_check_ms)
    }
}

/// A task leased to the claimant.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The task as the labeler sees it.
    pub card: TaskCard,
    /// When the lease ends unless renewed, epoch ms.
    pub lease_expires_at: i64,
    /// How often the console should renew it (see
    /// [`lifecycle::heartbeat_every_ms`]).
    pub heartbeat_ms: i64,
}

/// Takes the next ready task for `user`: earliest receipt deadline first, then
/// oldest; never a task the user held before (answered, released or let
/// expire), so a second opinion is always someone else's.
///
/// With `try_gold` (the caller's draw against `gold_rate`, see
/// [`crate::domain::gold::serves_gold`]) and real work waiting for the user,
/// a new copy of a gold task they have not seen is served instead, if there
/// is one: gold is a share of real work, never what an idle labeler polls.
pub async fn claim(
    db: &Db,
    user: &User,
    now: i64,
    rules: ClaimRules,
    try_gold: bool,
) -> Result<Option<Claimed>> {
    let ClaimRules {
        ttl_ms, max_leases, ..
    } = rules;
    if user.paused {
        return Err(Error::new(
            Code::LabelerPaused,
            "a supervisor paused you from the queue; ask them to let you back in",
        ));
    }
    // Serializes one user's concurrent claims so the lease limit holds.
    // Without a gold draw the lease is the claim's first write, and opens
    // the transaction's savepoint on SQLite (`begin_deferred`).
    let mut tx = db.begin_as(&user.id, !try_gold).await?;
    let lease_id = new_id();
    let lease = NewLease {
        id: &lease_id,
        user_id: &user.id,
        claimed_at: now,
        expires_at: Lease::new(&user.id, now, ttl_ms).expires_at,
    };
    let gold_copy = if try_gold {
        let held = tasks::live_leases(&mut tx, &user.id, now).await?;
        lifecycle::may_claim(held, max_leases).map_err(|r| refused(r, ""))?;
        serve_gold(&mut tx, user, &lease, now).await?
    } else {
        None
    };
    let (task_id, card) = match gold_copy {
        Some(copy_id) => (copy_id, None),
        // Leases the task and writes its lease row.
        None => match next_task(&mut tx, &db.catalogs, user, &lease, now, rules).await? {
            Some(leased) => leased,
            None => {
                tx.commit().await?;
                return Ok(None);
            }
        },
    };
    tx.commit().await?;
    let card = match card {
        Some(card) => card,
        None => {
            let mut conn = db.reader().acquire().await?;
            tasks::card(&mut conn, &db.catalogs, &task_id)
                .await?
                .ok_or_else(|| unknown_task(&task_id))?
        }
    };
    Ok(Some(Claimed {
        heartbeat_ms: rules.heartbeat_ms(card.purpose),
        card,
        lease_expires_at: lease.expires_at,
    }))
}

/// How long a waiting claim goes without looking at the queue at most:
/// whether an audit sample may be taken depends on what the others are
/// doing, which no ready announcement tells.
const RECHECK: Duration = Duration::from_secs(5);

/// [`claim`], waiting up to `wait` for a task when none is ready: it looks
/// again whenever this instance's [`crate::db::ready::Ready`] signal moves
/// (a task made ready here or, on PostgreSQL, on another instance), and at
/// least every [`RECHECK`]. `None` when no task was announced in time or the
/// server is stopping. `now` reads the clock at each look.
pub async fn claim_waiting(
    db: &Db,
    user: &User,
    now: impl Fn() -> i64,
    rules: ClaimRules,
    try_gold: bool,
    wait: Duration,
) -> Result<Option<Claimed>> {
    let deadline = Instant::now() + wait;
    // Subscribed before the first look, so a task made ready between that
    // look and the wait is not missed.
    let mut moved = db.ready.watch();
    loop {
        moved.borrow_and_update();
        if let Some(claimed) = claim(db, user, now(), rules, try_gold).await? {
            return Ok(Some(claimed));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || db.ready.stopping() {
            return Ok(None);
        }
        let step = left.min(RECHECK);
        // `Err` from `changed` (a closed channel) cannot happen: `db` holds
        // the sender.
        let woken = tokio::time::timeout(step, moved.changed()).await.is_ok();
        if db.ready.stopping() || (!woken && step == left) {
            // Stopping, or the wait ended with no task announced.
            return Ok(None);
        }
    }
}

/// A new copy of a gold task the user has not seen, leased to them, when
/// real work is waiting for them (gold is a share of real work, never what
/// an idle labeler polls); `None` otherwise.
async fn serve_gold(
    tx: &mut Tx,
    user: &User,
    lease: &NewLease<'_>,
    now: i64,
) -> Result<Option<String>> {
    if !tasks::claimable_exists(tx, &user.id, &user.scope).await? {
        return Ok(None);
    }
    let Some(gold_id) = gold::pick(tx, &user.id, &user.scope).await? else {
        return Ok(None);
    };
    let copy = gold::CopyLease {
        user_id: &user.id,
        lease_id: lease.id,
        expires: lease.expires_at,
    };
    let Some(copy_id) = gold::make_copy(tx, &gold_id, &copy, now).await? else {
        return Ok(None);
    };
    tasks::insert_lease(tx, &copy_id, lease).await?;
    Ok(Some(copy_id))
}

/// Leases the next real task for the user, within their lease limit
/// ([`lifecycle::may_claim`]): disputes and receipt work first; an audit
/// sample only when [`lifecycle::may_take_audit`] allows it, so an audit
/// never keeps the last free labeler from receipt work. The task's id, and
/// its card where the lease brought it back ([`tasks::lease_within`]).
async fn next_task(
    tx: &mut Tx,
    catalogs: &Catalogs,
    user: &User,
    lease: &NewLease<'_>,
    now: i64,
    rules: ClaimRules,
) -> Result<Option<(String, Option<TaskCard>)>> {
    let leased = tasks::lease_within(
        tx,
        catalogs,
        lease,
        &user.scope,
        TaskPurpose::Review.priority(),
        rules.max_leases,
    )
    .await?;
    lifecycle::may_claim(leased.held, rules.max_leases).map_err(|r| refused(r, ""))?;
    if let Some(task_id) = leased.task_id {
        return Ok(Some((task_id, leased.card)));
    }
    let active_since = now - rules.active_window_ms;
    let (active, idle) = tasks::others_at_work(tx, &user.id, active_since, now).await?;
    if !lifecycle::may_take_audit(active, idle) {
        return Ok(None);
    }
    let audit = tasks::lease_next(tx, lease, &user.scope, TaskPurpose::Audit.priority()).await?;
    Ok(audit.map(|id| (id, None)))
}

/// The precise error for a user acting on a task without a live lease
/// (the choice is [`lifecycle::lease_refusal`]'s).
async fn lease_error(tx: &mut Tx, task: &TaskRow, user: &User, now: i64) -> Result<Error> {
    let latest = tasks::latest_lease(tx, &task.id, &user.id).await?;
    Ok(refused(
        lifecycle::lease_refusal(latest.as_ref(), now),
        &task.id,
    ))
}

/// The error answer for a refused transition on task `task_id`.
fn refused(r: Refused, task_id: &str) -> Error {
    match r {
        Refused::TooManyLeases { held } => Error::new(
            Code::TooManyLeases,
            format!("you already hold {held} tasks; answer or release one first"),
        ),
        Refused::LeaseExpired => Error::new(
            Code::LeaseExpired,
            format!("your lease on task {task_id:?} expired; claim the next task"),
        ),
        Refused::LeaseYielded => Error::new(
            Code::LeaseYielded,
            format!(
                "task {task_id:?} went back to the queue for receipt work; claim the next task"
            ),
        ),
        Refused::LeaseNotHeld => Error::new(
            Code::LeaseNotHeld,
            format!("you do not hold the lease on task {task_id:?}"),
        ),
        Refused::VerdictConflict => Error::new(
            Code::VerdictConflict,
            format!("you already answered task {task_id:?} differently"),
        ),
        Refused::NotEscalated { status } => Error::new(
            Code::TaskNotEscalated,
            format!("task {task_id:?} is {status}, not escalated"),
        ),
        Refused::CantTellNotAllowed => Error::new(
            Code::CantTellNotAllowed,
            "a supervisor's resolution must give an action",
        ),
    }
}

/// A lease renewed by a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's new end, epoch ms.
    pub expires_at: i64,
    /// When to renew it next, ms from now.
    pub heartbeat_ms: i64,
}

/// Extends the user's lease by the lease TTL. A lease on an audit is
/// instead taken back when receipt work waits for the user
/// ([`tasks::receipt_work_waiting`], [`lifecycle::beat`]): the task is `ready` again, the lease ends
/// `yielded` and the answer is `lease-yielded`, so the console claims the
/// receipt work next.
pub async fn heartbeat(
    db: &Db,
    user: &User,
    task_id: &str,
    now: i64,
    rules: ClaimRules,
) -> Result<Renewed> {
    let mut tx = db.begin().await?;
    let task = locks::task(&mut tx, task_id).await?;
    let state = task.state();
    let waiting = task.purpose.yields_to_receipt_work()
        && state.is_leased_to(&user.id, now)
        && tasks::receipt_work_waiting(&mut tx, &task, &user.scope, now).await?;
    let Ok(beat) = lifecycle::beat(&state, task.purpose, &user.id, now, rules.ttl_ms, waiting)
    else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    match beat {
        lifecycle::Beat::Renewed(lease) => {
            tasks::renew_lease(&mut tx, &task, lease.expires_at, now).await?;
            tx.commit().await?;
            Ok(Renewed {
                expires_at: lease.expires_at,
                heartbeat_ms: rules.heartbeat_ms(task.purpose),
            })
        }
        lifecycle::Beat::Yield => {
            tasks::end_lease(&task, now, LeaseEnd::Yielded)
                .run(&mut tx)
                .await?;
            tasks::set_ready(&mut tx, &task.id, now).await?;
            tx.commit().await?;
            crate::metrics::audit_yielded();
            Err(refused(Refused::LeaseYielded, &task.id))
        }
    }
}

/// Gives the task back to the queue.
pub async fn release(db: &Db, user: &User, task_id: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let task = locks::task(&mut tx, task_id).await?;
    let Ok(after) = lifecycle::release(&task.state(), &user.id, now) else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    tasks::end_lease(&task, now, LeaseEnd::Released)
        .run(&mut tx)
        .await?;
    match after {
        TaskStatus::GoldDropped => gold::drop_copy(&mut tx, &task.id, now).await?,
        _ => tasks::set_ready(&mut tx, &task.id, now).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// Returns every task whose lease ran out to the queue; the number returned.
/// Gold copies whose lease ran out end `gold-dropped` instead (not counted).
pub async fn expire_leases(db: &Db, now: i64) -> Result<u64> {
    let mut tx = db.begin().await?;
    // Gold copies first, so the bulk update finds only real tasks.
    gold::drop_expired(&mut tx, now).await?;
    let returned = tasks::expire_lapsed(&mut tx, now).await?;
    tx.commit().await?;
    Ok(returned)
}

/// Checks a verdict against the event and the catalog and turns it into an
/// answer. A labeler's pick or return on a blind task must give its
/// quantity; a supervisor, who sees everything, may leave it to the event's.
async fn answer_from_input(
    tx: &mut Tx,
    catalogs: &Catalogs,
    task: &TaskRow,
    input: &Verdict,
    by_labeler: bool,
) -> Result<Answer> {
    if let Some(note) = &input.note {
        if note.chars().count() > MAX_NOTE_LEN {
            return Err(Error::new(
                Code::NoteTooLong,
                format!("note must be at most {MAX_NOTE_LEN} characters"),
            ));
        }
    }
    // Every field sent is checked, whatever the answer: a value out of its
    // range is refused even where the answer would not use it.
    if let Some(sku) = &input.sku {
        crate::domain::event::check_id("sku", sku).map_err(Error::from)?;
    }
    if let Some(q) = input.quantity {
        check_quantity(q)?;
    }
    if input.cant_tell {
        return Ok(Answer::CantTell);
    }
    let Some(action) = input.action else {
        return Err(Error::new(
            Code::MissingAction,
            "action (pick, return or none) is required unless cant_tell is true",
        ));
    };
    if action == Action::None {
        return Ok(Answer::Label(Label::new(Action::None, None, 0)));
    }
    let Some(sku) = &input.sku else {
        return Err(Error::new(
            Code::MissingSku,
            "sku is required for pick and return",
        ));
    };
    let found = catalogs
        .find(tx, &task.store_id, &task.catalog_version, &[sku.as_str()])
        .await?;
    if found.is_empty() {
        return Err(Error::new(
            Code::UnknownSku,
            format!("sku {sku:?} is not in the store's catalog"),
        ));
    }
    let quantity = match input.quantity {
        Some(q) => q,
        // A blind task never showed the event's quantity: assuming it would
        // put the model's answer back into the measurement.
        None if by_labeler && task.blind => {
            return Err(Error::new(
                Code::MissingQuantity,
                "quantity is required for pick and return on this task",
            ))
        }
        None => task.event_quantity,
    };
    check_quantity(quantity)?;
    Ok(Answer::Label(Label::new(
        action,
        Some(sku.clone()),
        quantity,
    )))
}

fn check_quantity(quantity: i64) -> Result<()> {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(Error::new(
            Code::InvalidQuantity,
            format!("quantity must be between 1 and {MAX_QUANTITY}, not {quantity}"),
        ));
    }
    Ok(())
}

/// Records a labeler's verdict and applies consensus; the task's status as
/// the labeler is told it. Sending the same verdict again is accepted and
/// answers with the task's current state; a different one is refused.
pub async fn submit_verdict(
    db: &Db,
    user: &User,
    task_id: &str,
    input: &Verdict,
    now: i64,
) -> Result<TaskStatus> {
    // Every write of a verdict starts with its batch (`writes` below).
    let mut tx = db.begin_deferred().await?;
    let task = locks::session_then_task(&mut tx, task_id, now).await?;
    let answer = answer_from_input(&mut tx, &db.catalogs, &task, input, true).await?;

    let state = task.state();
    // The task row counts its verdicts: a task's first verdict, most of
    // them, need not look for others.
    let given = if task.verdict_count > 0 {
        tasks::answers_by(&mut tx, &task.id).await?
    } else {
        Vec::new()
    };
    if let Some((_, previous)) = given.iter().find(|(by, _)| *by == user.id) {
        return lifecycle::repeat_verdict(&state, previous, &answer)
            .map_err(|r| refused(r, task_id));
    }

    // Consensus weighs every verdict so far with this one last; a gold copy
    // is scored on this one alone.
    let mut answers: Vec<Answer> = if state.gold {
        Vec::new()
    } else {
        given.into_iter().map(|(_, a)| a).collect()
    };
    answers.push(answer);
    let Ok(after) = lifecycle::verdict(&state, &user.id, now, &answers) else {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    };
    let answer = answers.last().expect("this verdict was just added");

    let verdict_id = new_id();
    let verdict = NewVerdict {
        id: &verdict_id,
        labeler_id: &user.id,
        answer,
        note: input.note.as_deref(),
        created_at: now,
    };
    // The verdict's writes go out together ([`Batch`]), with the task's
    // change and what it settles.
    let mut writes = Batch::default();
    writes.push(tasks::insert_verdict(&task, &verdict));
    writes.push(tasks::end_lease(&task, now, LeaseEnd::Verdict));

    let verdict_count = answers.len() as i64;
    let mut settled = Settled::default();
    let mut gold_correct = None;
    match &after {
        AfterVerdict::GoldAnswered { .. } => {
            // Scored, never applied: no consensus, no event, no receipt.
            writes.run(&mut tx).await?;
            let gold_id = task
                .gold_id
                .as_deref()
                .expect("a gold copy has its gold task");
            gold_correct =
                Some(gold::record_answer(&mut tx, &task.id, gold_id, &user.id, answer, now).await?);
        }
        AfterVerdict::NeedMore => {
            writes.push(tasks::ready_for_more(&task.id, verdict_count, now));
            writes.run(&mut tx).await?;
        }
        AfterVerdict::Escalate(reason) => {
            writes.push(tasks::escalate(
                &task.id,
                reason.as_str(),
                verdict_count,
                now,
            ));
            writes.run(&mut tx).await?;
        }
        AfterVerdict::Resolve(label) => {
            let resolution = Resolution {
                label,
                by: "human",
                resolved_by: None,
                verdict_count,
            };
            settled = resolve(&mut tx, &task, &resolution, now, writes).await?;
        }
    }
    tx.commit().await?;
    let status = after.reported();
    match gold_correct {
        Some(correct) => crate::metrics::gold_answered(correct),
        None => {
            settled.record();
            crate::metrics::verdict_recorded(status.as_str());
        }
    }
    Ok(status)
}

/// A supervisor's decision on an escalated task.
pub async fn resolve_escalation(
    db: &Db,
    supervisor: &User,
    task_id: &str,
    input: &Verdict,
    now: i64,
) -> Result<TaskStatus> {
    let mut tx = db.begin().await?;
    let task = locks::session_then_task(&mut tx, task_id, now).await?;
    if !supervisor.scope.sees(&task.store_id) {
        return Err(unknown_task(task_id));
    }
    if task.status != TaskStatus::Escalated {
        return Err(refused(
            Refused::NotEscalated {
                status: task.status,
            },
            task_id,
        ));
    }
    let answer = answer_from_input(&mut tx, &db.catalogs, &task, input, false).await?;
    let label =
        lifecycle::supervisor_resolve(&task.state(), answer).map_err(|r| refused(r, task_id))?;
    let resolution = Resolution {
        label: &label,
        by: "supervisor",
        resolved_by: Some(&supervisor.id),
        verdict_count: tasks::verdict_count(&mut tx, &task.id).await?,
    };
    let settled = resolve(&mut tx, &task, &resolution, now, Batch::default()).await?;
    if let Some(note) = &input.note {
        tasks::set_resolution_note(&mut tx, &task.id, note).await?;
    }
    tx.commit().await?;
    settled.record();
    Ok(TaskStatus::Resolved)
}

/// What settling a task did to its receipt, recorded once it commits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use = "record() it after the transaction commits"]
pub struct Settled {
    /// The receipt became final.
    pub finalized: Finalized,
    /// A final receipt got a new version.
    pub adjusted: Adjusted,
}

impl Settled {
    /// Records both; call after commit.
    pub fn record(self) {
        self.finalized.record();
        self.adjusted.record();
    }
}

/// Applies the label a task settled on, as its purpose says
/// ([`TaskPurpose`]): a review settles its event and may finalize the
/// receipt; an audit replaces the model's answer it checked (adjusting a
/// final receipt it contradicts); a dispute ends as an adjustment or a
/// confirmation. Runs under the session's and the task's locks; `writes`
/// are the caller's writes so far, sent with the task's own.
async fn resolve(
    tx: &mut Tx,
    task: &TaskRow,
    resolution: &Resolution<'_>,
    now: i64,
    mut writes: Batch,
) -> Result<Settled> {
    if task.purpose == TaskPurpose::Gold {
        return Err(anyhow::anyhow!("gold copy {} cannot be resolved", task.id).into());
    }
    writes.push(tasks::resolve(task, resolution, now));
    let label = resolution.label;
    match task.purpose {
        TaskPurpose::Review => {
            writes.push(events::settle(&task.event_pk, label, resolution.by, now));
            // The session was read under its lock with the task: whether
            // this review was the last its exited shopper waited for is
            // known before the write.
            let finalizes = task.session.and_then(|s| {
                s.exited_at
                    .filter(|_| may_finalize(s.status, s.open_reviews - 1))
            });
            writes.push(events::release_open_review(
                &task.store_id,
                &task.session_id,
                finalizes.is_some(),
            ));
            writes.run(tx).await?;
            let finalized = match finalizes {
                Some(exited_at) => {
                    let store = store_of(tx, task).await?;
                    receipt_flow::write_final(tx, &store, &task.session_id, exited_at, now).await?
                }
                None => Finalized::default(),
            };
            Ok(Settled {
                finalized,
                adjusted: Adjusted::default(),
            })
        }
        TaskPurpose::Audit => {
            writes.push(events::settle(&task.event_pk, label, resolution.by, now));
            writes.run(tx).await?;
            let store = store_of(tx, task).await?;
            Ok(Settled {
                finalized: Finalized::default(),
                adjusted: receipt_flow::adjust(
                    tx,
                    &store,
                    &task.session_id,
                    Cause::Audit,
                    &task.id,
                    now,
                )
                .await?,
            })
        }
        TaskPurpose::Dispute => {
            writes.run(tx).await?;
            let store = store_of(tx, task).await?;
            Ok(Settled {
                finalized: Finalized::default(),
                adjusted: crate::review::disputes::decide(tx, &store, task, resolution, now)
                    .await?,
            })
        }
        TaskPurpose::Gold => unreachable!("refused above"),
    }
}

/// The store of `task`.
async fn store_of(tx: &mut Tx, task: &TaskRow) -> Result<stores::Store> {
    Ok(stores::get(tx, &task.store_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("store {} of task {} is gone", task.store_id, task.id))?)
}

/// A supervisor's correction of a settled task's label after the fact (a
/// review or an audit; a dispute is corrected by another dispute). The
/// event takes the new label; a final receipt it changes gets a new version
/// and its `receipt.adjusted` webhook. The receipt version afterwards, if
/// the receipt is final.
pub async fn correct(
    db: &Db,
    supervisor: &User,
    task_id: &str,
    input: &Verdict,
    now: i64,
) -> Result<Option<i64>> {
    let mut tx = db.begin().await?;
    let task = locks::session_then_task(&mut tx, task_id, now).await?;
    if !supervisor.scope.sees(&task.store_id) {
        return Err(unknown_task(task_id));
    }
    let correctable = matches!(task.purpose, TaskPurpose::Review | TaskPurpose::Audit);
    if !correctable || task.status != TaskStatus::Resolved {
        return Err(Error::new(
            Code::NotCorrectable,
            format!(
                "task {task_id:?} is a {} task that is {}: only a resolved review or audit can be corrected",
                task.purpose, task.status
            ),
        ));
    }
    let answer = answer_from_input(&mut tx, &db.catalogs, &task, input, false).await?;
    let Answer::Label(label) = answer else {
        return Err(refused(Refused::CantTellNotAllowed, task_id));
    };
    events::relabel(&mut tx, &task.event_pk, &label, "correction").await?;
    let note = input
        .note
        .clone()
        .unwrap_or_else(|| format!("corrected by {}", supervisor.username));
    tasks::set_resolution_note(&mut tx, &task.id, &note).await?;
    let store = store_of(&mut tx, &task).await?;
    let adjusted = receipt_flow::adjust(
        &mut tx,
        &store,
        &task.session_id,
        Cause::Correction,
        &task.id,
        now,
    )
    .await?;
    let version = match adjusted.version() {
        Some(v) => Some(v),
        None => receipts::current(&mut tx, &task.store_id, &task.session_id)
            .await?
            .map(|(v, _)| v),
    };
    let entry = audit::Entry {
        actor: &supervisor.actor(),
        action: AuditAction::LabelCorrected,
        store_id: Some(&task.store_id),
        subject: Some(&task.id),
        detail: serde_json::json!({
            "session_id": task.session_id,
            "label": label,
            "receipt_version": version,
        }),
    };
    audit::record(&mut tx, now, &entry).await?;
    tx.commit().await?;
    adjusted.record();
    Ok(version)
}

/// A task with its verdicts, for supervisors.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The task as labelers see it.
    pub card: TaskCard,
    /// Its status column.
    pub status: String,
    /// Why it was escalated.
    pub escalation_reason: Option<String>,
    /// Every verdict so far.
    pub verdicts: Vec<VerdictRow>,
}

/// A task with its verdicts, when it is of a store of `scope`.
pub async fn detail(db: &Db, scope: &Scope, task_id: &str) -> Result<Detail> {
    let mut conn = db.reader().acquire().await?;
    let card = tasks::card(&mut conn, &db.catalogs, task_id)
        .await?
        .filter(|c| scope.sees(&c.store_id))
        .ok_or_else(|| unknown_task(task_id))?;
    let (status, escalation_reason) = tasks::status(&mut conn, task_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    let verdicts = tasks::verdicts(&mut conn, task_id).await?;
    Ok(Detail {
        card,
        status,
        escalation_reason,
        verdicts,
    })
}

/// Escalated tasks of the stores of `scope`, most urgent first.
pub async fn escalated(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<Detail>> {
    let ids = tasks::escalated_ids(db, scope, limit).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(detail(db, scope, &id).await?);
    }
    Ok(out)
}

/// The store and session of a task the user may look at: a supervisor any
/// task of their stores (`unknown-task` for another store's), a labeler
/// only one whose lease they hold (`lease-expired` or `lease-not-held`
/// otherwise, as for a verdict).
pub async fn viewable(db: &Db, user: &User, task_id: &str, now: i64) -> Result<(String, String)> {
    let mut tx = db.begin().await?;
    let task = tasks::get(&mut tx, task_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    if user.role.is_supervisor() && !user.scope.sees(&task.store_id) {
        return Err(unknown_task(task_id));
    }
    if !user.role.is_supervisor() && !task.state().is_leased_to(&user.id, now) {
        return Err(lease_error(&mut tx, &task, user, now).await?);
    }
    tx.commit().await?;
    Ok((task.store_id, task.session_id))
}

/// What else the shopper of a task has done.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The task.
    pub task_id: String,
    /// The store's session id.
    pub session_id: String,
    /// Net products of the session's settled events, priced as the receipt
    /// will price them.
    pub cart: Vec<ReceiptLine>,
    /// Sum of the cart lines.
    pub cart_total_cents: i64,
    /// Other events of the session still in review.
    pub other_events_in_review: i64,
    /// Whether the shopper has left the store.
    pub exited: bool,
}

/// The shopper context of a task: the cart as settled so far and how many
/// other events still wait for review.
pub async fn context(db: &Db, task_id: &str, store_id: &str, session_id: &str) -> Result<Context> {
    let mut conn = db.reader().acquire().await?;
    let receipt = receipts::read(&mut conn, store_id, session_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    let exited = receipt.exited_at.is_some();
    let task = tasks::get(&mut conn, task_id)
        .await?
        .ok_or_else(|| unknown_task(task_id))?;
    let (cart, cart_total_cents, other_events_in_review) = match task.purpose {
        // An audit's event is settled with the model's answer, which the
        // labeler must not see: the cart as if it were still in review.
        TaskPurpose::Audit => {
            let (cart, total) =
                receipts::cart_without(&mut conn, store_id, session_id, &task.event_pk).await?;
            (cart, total, receipt.events_in_review)
        }
        // A dispute's line is what is contested: the cart without it.
        TaskPurpose::Dispute => {
            let sku = disputes::of_task(&mut conn, task_id)
                .await?
                .map(|d| d.sku)
                .unwrap_or_default();
            let cart: Vec<ReceiptLine> =
                receipt.lines.into_iter().filter(|l| l.sku != sku).collect();
            let total = cart.iter().map(|l| l.total_cents).sum();
            (cart, total, receipt.events_in_review)
        }
        TaskPurpose::Review | TaskPurpose::Gold => match gold::source_event(&mut conn, task_id)
            .await?
        {
            None => {
                // The task's own event is one of the session's open reviews
                // until the task is resolved.
                let own = i64::from(task.status != TaskStatus::Resolved);
                (
                    receipt.lines,
                    receipt.total_cents,
                    (receipt.events_in_review - own).max(0),
                )
            }
            Some(source_event) => {
                // A gold copy: the cart as if its source were still in review.
                // The source's settled label is the answer being tested, and a
                // final receipt includes it, so the cart is always recomputed
                // without it. The copy itself is not an open review.
                let (cart, total) =
                    receipts::cart_without(&mut conn, store_id, session_id, &source_event).await?;
                (cart, total, receipt.events_in_review)
            }
        },
    };
    Ok(Context {
        task_id: task_id.to_string(),
        session_id: session_id.to_string(),
        cart,
        cart_total_cents,
        other_events_in_review,
        exited,
    })
}

/// The tasks whose live leases the user holds, oldest claim first: a console
/// that reloads picks up where it was instead of waiting for them to expire.
pub async fn held(db: &Db, user: &User, now: i64, rules: ClaimRules) -> Result<Vec<Claimed>> {
    let mut conn = db.reader().acquire().await?;
    let leases = tasks::held(&mut conn, &user.id, now).await?;
    let mut claims = Vec::with_capacity(leases.len());
    for (id, lease_expires_at) in leases {
        let card = tasks::card(&mut conn, &db.catalogs, &id)
            .await?
            .ok_or_else(|| unknown_task(&id))?;
        claims.push(Claimed {
            heartbeat_ms: rules.heartbeat_ms(card.purpose),
            card,
            lease_expires_at,
        });
    }
    Ok(claims)
}

/// Hands to supervisors every open task that would otherwise make its
/// receipt late for a reason inside Recount ([`lifecycle::at_risk`]): near
/// its deadline, or with no active labeler left who may answer it. Returns
/// what was escalated and why. The candidates are read without a lock; each
/// escalation is a conditional update, so a task claimed meanwhile is left
/// to its labeler.
pub async fn escalate_at_risk(
    db: &Db,
    now: i64,
    lead_ms: i64,
    active_window_ms: i64,
) -> Result<Vec<(String, EscalationReason)>> {
    let candidates = {
        let mut conn = db.reader().acquire().await?;
        tasks::at_risk_candidates(&mut conn, now + lead_ms + 1, now - active_window_ms).await?
    };
    let decided: Vec<(String, EscalationReason)> = candidates
        .into_iter()
        .filter_map(|c| lifecycle::at_risk(&c.pending, c.crew, now, lead_ms).map(|r| (c.id, r)))
        .collect();
    if decided.is_empty() {
        return Ok(decided);
    }
    let mut tx = db.begin().await?;
    let mut escalated = Vec::with_capacity(decided.len());
    for (id, reason) in decided {
        if tasks::escalate_open(&mut tx, &id, reason.as_str(), now).await? {
            escalated.push((id, reason));
        }
    }
    tx.commit().await?;
    for (_, reason) in &escalated {
        crate::metrics::task_escalated(reason.as_str());
    }
    Ok(escalated)
}
