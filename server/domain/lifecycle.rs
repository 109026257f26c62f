//! The review lifecycle as types: the states of review tasks, sessions,
//! events, clips and leases, and every transition between them as a pure
//! function that takes values and returns the decided change (or why it is
//! refused), as [`super::routing`] and [`super::consensus`] do.
//!
//! ```text
//! task:     waiting ──clips settled──▶ ready ──claim──▶ leased ──verdict: agreed──▶ resolved
//!                                        ▲                │ │
//!                                        └─release/expire─┘ └─verdict: can't tell / disagree──▶ escalated
//!                                        └──verdict: need more (another labeler)   escalated ──supervisor──▶ resolved
//! gold copy:                    (made leased) ──verdict──▶ gold-answered
//!                                             ──release/expire──▶ gold-dropped
//! session:  open ──exit──▶ exited ──nothing in review──▶ finalized
//! clip:     uploading ──stored──▶ processing ──▶ ready | failed
//! ```
//!
//! The storage layer keeps these states in text columns; the one mapping
//! between a state and its column value is the `as_str`/`parse` pair of each
//! enum here, so no status literal appears anywhere else.

use std::fmt;

use super::consensus::{self, Answer, EscalationReason, Outcome};
use super::routing::{ReviewReason, Route, RoutingPolicy};
use super::Label;

/// Defines a state enum with its column values, `as_str`, `parse`, `ALL` and
/// `Display` (which writes the column value, for SQL text built from
/// constants).
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:literal, )* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The column value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The state a column value stands for.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

states! {
    /// Where a review task is.
    TaskStatus {
        /// Its clips are still being processed; nobody can claim it yet.
        Waiting = "waiting",
        /// In the queue: any eligible labeler may claim it.
        Ready = "ready",
        /// One labeler holds a live or lapsed lease on it.
        Leased = "leased",
        /// Verdicts disagreed or said "can't tell": a supervisor decides.
        Escalated = "escalated",
        /// Settled: its event has a final label.
        Resolved = "resolved",
        /// A gold copy that was answered (scored, never applied).
        GoldAnswered = "gold-answered",
        /// A gold copy given back or let expire: dropped, never re-queued.
        GoldDropped = "gold-dropped",
    }
}

impl TaskStatus {
    /// States of a real task still waiting for a decision: they hold the
    /// session's receipt and count in the queue.
    pub const OPEN: [TaskStatus; 4] = [
        TaskStatus::Waiting,
        TaskStatus::Ready,
        TaskStatus::Leased,
        TaskStatus::Escalated,
    ];
}

states! {
    /// What a review task is for. One place decides what each purpose
    /// implies: whether it holds its shopper's receipt, whether it has a
    /// deadline, where it stands in the queue and whether it is shown blind.
    TaskPurpose {
        /// Settles its event: the shopper's receipt waits for it.
        Review = "review",
        /// Checks an event already settled with the model's answer, to
        /// measure the error of auto-accepted events; holds nothing. A
        /// disagreeing answer corrects the event (and adjusts a final
        /// receipt).
        Audit = "audit",
        /// Re-checks a receipt line a shopper contested.
        Dispute = "dispute",
        /// A gold copy: scored, never applied.
        Gold = "gold",
    }
}

impl TaskPurpose {
    /// The purposes [`TaskPurpose::has_deadline`] holds for.
    pub const WITH_DEADLINE: [TaskPurpose; 2] = [TaskPurpose::Review, TaskPurpose::Dispute];

    /// Whether the session's receipt waits for the task.
    pub fn holds_receipt(self) -> bool {
        self == TaskPurpose::Review
    }

    /// Whether a labeler holding it gives it back as soon as receipt work
    /// they may take is waiting (see [`heartbeat`]): only an audit, which
    /// nothing waits for, so audits use idle time and never a labeler a
    /// receipt needs. A gold copy stays: it is served as a share of real
    /// work on purpose, and a dispute is more urgent than receipt work.
    pub fn yields_to_receipt_work(self) -> bool {
        self == TaskPurpose::Audit
    }

    /// Whether its deadline is one somebody waits for (a receipt, a store
    /// waiting on a dispute): only such tasks are escalated near it and
    /// counted late. An audit measures; nothing waits for it.
    pub fn has_deadline(self) -> bool {
        Self::WITH_DEADLINE.contains(&self)
    }

    /// Queue rank, lowest first: a contested charge before receipt work,
    /// receipt work before measurement, so audits never take a labeler a
    /// receipt is waiting for.
    pub fn priority(self) -> i64 {
        match self {
            TaskPurpose::Dispute => 0,
            TaskPurpose::Review | TaskPurpose::Gold => 1,
            TaskPurpose::Audit => 2,
        }
    }

    /// Whether labelers see the task without the model's answer, its
    /// confidences, the event's quantity and the reason it was routed, with
    /// candidates in a neutral order: always where the answers measure
    /// something (audits, gold copies, disputes), and every task of a store
    /// that switched blind review on.
    pub fn blind(self, store_blind: bool) -> bool {
        store_blind || self != TaskPurpose::Review
    }
}

states! {
    /// Where a shopper's dispute of a receipt line is.
    DisputeStatus {
        /// Its review task is not settled yet.
        Open = "open",
        /// The reviewers saw something else: the receipt was adjusted.
        Upheld = "upheld",
        /// The reviewers saw what the receipt charges.
        Confirmed = "confirmed",
    }
}

states! {
    /// Where a shopper's session is.
    SessionStatus {
        /// The shopper is in the store.
        Open = "open",
        /// The shopper left; events may still be in review.
        Exited = "exited",
        /// The receipt is final; no event is accepted any more.
        Finalized = "finalized",
    }
}

states! {
    /// Where an event is.
    EventStatus {
        /// Waiting for a human verdict.
        Review = "review",
        /// Has its final label.
        Resolved = "resolved",
        /// The copied event of a gold task: never settles anything.
        Gold = "gold",
        /// The event a dispute's task shows: never settles anything itself
        /// (an upheld dispute adds correcting events instead).
        Dispute = "dispute",
    }
}

states! {
    /// How an event was routed.
    RouteName {
        /// The model's answer was taken.
        AutoAccepted = "auto_accepted",
        /// A person decides.
        Review = "review",
        /// A gold copy's event.
        Gold = "gold",
        /// A dispute's event, or the correcting event of an upheld one.
        Dispute = "dispute",
    }
}

impl RouteName {
    /// Routes of events Recount made itself (gold copies, disputes): never
    /// counted as the model's events or exported as training samples.
    pub const MADE: [RouteName; 2] = [RouteName::Gold, RouteName::Dispute];
}

states! {
    /// Where an uploaded or cut clip is.
    ClipStatus {
        /// Its bytes are still arriving; invisible to everyone.
        Uploading = "uploading",
        /// Stored; the media job is making it playable.
        Processing = "processing",
        /// Playable in a browser.
        Ready = "ready",
        /// Could not be made playable; the error is kept on the clip.
        Failed = "failed",
        /// Its video was deleted (past its store's retention, or on the
        /// shopper's request); what it showed stays described.
        Erased = "erased",
    }
}

states! {
    /// Where a footage recording is.
    FootageStatus {
        /// Its bytes are still arriving.
        Uploading = "uploading",
        /// Stored; windows may be cut from it.
        Ready = "ready",
        /// Deleted (retention or a shopper's request); nothing is cut from
        /// it any more.
        Erased = "erased",
    }
}

states! {
    /// Where the poster of one of a task's clips is.
    PosterStatus {
        /// Not made yet: the task waits for it.
        Pending = "pending",
        /// Made.
        Ready = "ready",
        /// Cannot be made (the clip failed): the task does not wait for it.
        Failed = "failed",
        /// Deleted with its clip's video.
        Erased = "erased",
    }
}

states! {
    /// Why a lease ended.
    LeaseEnd {
        /// The labeler gave the task back.
        Released = "released",
        /// Nobody renewed it in time.
        Expired = "expired",
        /// The labeler answered.
        Verdict = "verdict",
        /// Taken back from an audit for receipt work (see
        /// [`TaskPurpose::yields_to_receipt_work`]); unlike the others it
        /// does not count as having held the task, so the labeler may take
        /// the audit again later.
        Yielded = "yielded",
    }
}

states! {
    /// Where a training-data export is.
    ExportStatus {
        /// Waiting for a worker.
        Queued = "queued",
        /// Being written.
        Running = "running",
        /// Written; its files can be downloaded.
        Done = "done",
        /// Gave up; the error is kept.
        Failed = "failed",
        /// Removed by a supervisor; the row stays as a record.
        Deleted = "deleted",
    }
}

/// A labeler's hold on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The labeler holding it.
    pub holder: String,
    /// When it ends unless renewed (epoch ms).
    pub expires_at: i64,
}

impl Lease {
    /// A lease for `holder` from `now`, lasting `ttl_ms`.
    pub fn new(holder: &str, now: i64, ttl_ms: i64) -> Lease {
        Lease {
            holder: holder.to_string(),
            expires_at: now + ttl_ms,
        }
    }

    /// Whether it still runs at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    /// Whether `labeler` holds it and it still runs at `now`.
    pub fn is_held_by(&self, labeler: &str, now: i64) -> bool {
        self.holder == labeler && self.is_live(now)
    }
}

/// What the rules need to know of a review task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Where it is.
    pub status: TaskStatus,
    /// The current lease, while `leased`.
    pub lease: Option<Lease>,
    /// Whether it is a gold copy.
    pub gold: bool,
    /// Agreeing verdicts it needs.
    pub required_verdicts: i64,
}

impl Task {
    /// Whether `labeler` holds a live lease on it at `now`.
    pub fn is_leased_to(&self, labeler: &str, now: i64) -> bool {
        self.status == TaskStatus::Leased
            && self
                .lease
                .as_ref()
                .is_some_and(|l| l.is_held_by(labeler, now))
    }
}

/// Why a transition is refused. Each has one stable error code at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The labeler already holds as many live leases as allowed.
    TooManyLeases {
        /// Live leases held.
        held: i64,
    },
    /// The labeler's own lease on the task ran out.
    LeaseExpired,
    /// The labeler's lease on an audit was taken back because receipt work
    /// they may take is waiting.
    LeaseYielded,
    /// The labeler holds no lease on the task (never had, released, or
    /// someone else's).
    LeaseNotHeld,
    /// The labeler already answered the task differently.
    VerdictConflict,
    /// Only an escalated task takes a supervisor's decision.
    NotEscalated {
        /// Where the task is.
        status: TaskStatus,
    },
    /// A supervisor's decision must name an action.
    CantTellNotAllowed,
}

/// Why a change to a session is refused: a type apart from [`Refused`], so
/// the queue's refusals and the session's are each matched exhaustively
/// where they can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    /// The session already exited at another time.
    AlreadyExited,
    /// The session's receipt is final; it takes no more events.
    SessionFinalized,
}

/// Whether a labeler holding `held` live leases may claim another.
pub fn may_claim(held: i64, max_leases: i64) -> Result<(), Refused> {
    if held >= max_leases {
        Err(Refused::TooManyLeases { held })
    } else {
        Ok(())
    }
}

/// Claiming a ready task: it becomes leased to `labeler` for `ttl_ms`.
/// A task in any other state cannot be claimed (the queue only offers ready
/// tasks; this is the rule the claim query follows).
pub fn claim(task: &Task, labeler: &str, now: i64, ttl_ms: i64) -> Option<Task> {
    (task.status == TaskStatus::Ready).then(|| Task {
        status: TaskStatus::Leased,
        lease: Some(Lease::new(labeler, now, ttl_ms)),
        ..task.clone()
    })
}

/// A gold copy is made for one labeler, already leased to them.
pub fn gold_copy(required_verdicts: i64, labeler: &str, now: i64, ttl_ms: i64) -> Task {
    Task {
        status: TaskStatus::Leased,
        lease: Some(Lease::new(labeler, now, ttl_ms)),
        gold: true,
        required_verdicts,
    }
}

/// Renewing a lease: the holder's lease runs `ttl_ms` from now.
pub fn heartbeat(task: &Task, labeler: &str, now: i64, ttl_ms: i64) -> Result<Lease, NotHolding> {
    if task.is_leased_to(labeler, now) {
        Ok(Lease::new(labeler, now, ttl_ms))
    } else {
        Err(NotHolding)
    }
}

/// What a heartbeat on a held task does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// The lease runs on.
    Renewed(Lease),
    /// The task goes back to the queue (`ready`), its lease ended
    /// [`LeaseEnd::Yielded`], so the labeler takes the receipt work.
    Yield,
}

/// A heartbeat on a task of `purpose`, knowing whether receipt work the
/// labeler may take is waiting: an audit yields to it at once, anything
/// else is renewed. This is what keeps audits from adding to receipt
/// latency: an audit only ever fills time no receipt needs.
pub fn beat(
    task: &Task,
    purpose: TaskPurpose,
    labeler: &str,
    now: i64,
    ttl_ms: i64,
    receipt_work_waiting: bool,
) -> Result<Beat, NotHolding> {
    let lease = heartbeat(task, labeler, now, ttl_ms)?;
    if purpose.yields_to_receipt_work() && receipt_work_waiting {
        Ok(Beat::Yield)
    } else {
        Ok(Beat::Renewed(lease))
    }
}

/// How often the console renews a lease on a task of `purpose`: a third of
/// the lease (two beats may fail before it ends), but every
/// `yield_check_ms` on a task that yields, since the heartbeat is how it
/// learns that receipt work waits.
pub fn heartbeat_every_ms(purpose: TaskPurpose, ttl_ms: i64, yield_check_ms: i64) -> i64 {
    let renew = (ttl_ms / 3).max(1_000);
    if purpose.yields_to_receipt_work() {
        yield_check_ms.min(renew)
    } else {
        renew
    }
}

/// Giving a task back: a real task returns to the queue, a gold copy is
/// dropped.
pub fn release(task: &Task, labeler: &str, now: i64) -> Result<TaskStatus, NotHolding> {
    if task.is_leased_to(labeler, now) {
        Ok(after_lease_lost(task))
    } else {
        Err(NotHolding)
    }
}

/// A lease nobody renewed: at `now`, a leased task whose lease ran out
/// returns to the queue (a gold copy is dropped); `None` while it runs.
pub fn expire(task: &Task, now: i64) -> Option<TaskStatus> {
    let lapsed =
        task.status == TaskStatus::Leased && task.lease.as_ref().is_some_and(|l| !l.is_live(now));
    lapsed.then(|| after_lease_lost(task))
}

fn after_lease_lost(task: &Task) -> TaskStatus {
    if task.gold {
        TaskStatus::GoldDropped
    } else {
        TaskStatus::Ready
    }
}

/// The acting labeler does not hold a live lease on the task; which error
/// they get is [`lease_refusal`]'s choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHolding;

/// The labeler's most recent lease on a task, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastLease {
    /// When it was due to end.
    pub expires_at: i64,
    /// When it ended, if it did.
    pub ended_at: Option<i64>,
    /// Why it ended.
    pub end: Option<LeaseEnd>,
}

/// Which error a labeler acting without a live lease gets: `LeaseExpired`
/// when their own latest lease on the task ran out (so the console can say
/// "too slow, take the next one"), `LeaseYielded` when it was an audit
/// taken back for receipt work, `LeaseNotHeld` otherwise.
pub fn lease_refusal(latest: Option<&PastLease>, now: i64) -> Refused {
    if latest.is_some_and(|l| l.end == Some(LeaseEnd::Yielded)) {
        return Refused::LeaseYielded;
    }
    let expired = latest.is_some_and(|l| {
        l.end == Some(LeaseEnd::Expired) || (l.ended_at.is_none() && l.expires_at <= now)
    });
    if expired {
        Refused::LeaseExpired
    } else {
        Refused::LeaseNotHeld
    }
}

/// A labeler sending a verdict for a task they already answered: the same
/// answer is a harmless retry, answered with where the task is now (for a
/// gold copy, what a real task would say); another answer is refused.
pub fn repeat_verdict(
    task: &Task,
    previous: &Answer,
    answer: &Answer,
) -> Result<TaskStatus, Refused> {
    if previous != answer {
        return Err(Refused::VerdictConflict);
    }
    Ok(if task.gold {
        gold_answer_status(task.required_verdicts, answer)
    } else {
        task.status
    })
}

/// What a verdict does to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterVerdict {
    /// A gold copy was answered: scored, never applied. `reported` is what
    /// the labeler is told (see [`gold_answer_status`]).
    GoldAnswered {
        /// The status the labeler sees.
        reported: TaskStatus,
    },
    /// More agreeing verdicts are needed: back to the queue for another
    /// labeler.
    NeedMore,
    /// A supervisor must decide.
    Escalate(EscalationReason),
    /// The verdicts agree: the event's final label.
    Resolve(Label),
}

impl AfterVerdict {
    /// The task's status afterwards, as the labeler is told.
    pub fn reported(&self) -> TaskStatus {
        match self {
            AfterVerdict::GoldAnswered { reported } => *reported,
            AfterVerdict::NeedMore => TaskStatus::Ready,
            AfterVerdict::Escalate(_) => TaskStatus::Escalated,
            AfterVerdict::Resolve(_) => TaskStatus::Resolved,
        }
    }

    /// The task's stored status afterwards.
    pub fn stored(&self) -> TaskStatus {
        match self {
            AfterVerdict::GoldAnswered { .. } => TaskStatus::GoldAnswered,
            other => other.reported(),
        }
    }
}

/// A verdict from the lease holder: `answers` are every verdict on the task
/// so far, this one last. A gold copy is scored on `answers`' last alone.
pub fn verdict(
    task: &Task,
    labeler: &str,
    now: i64,
    answers: &[Answer],
) -> Result<AfterVerdict, NotHolding> {
    if !task.is_leased_to(labeler, now) {
        return Err(NotHolding);
    }
    if task.gold {
        let own = answers.last().unwrap_or(&Answer::CantTell);
        return Ok(AfterVerdict::GoldAnswered {
            reported: gold_answer_status(task.required_verdicts, own),
        });
    }
    Ok(match consensus::decide(task.required_verdicts, answers) {
        Outcome::NeedMore => AfterVerdict::NeedMore,
        Outcome::Escalate(reason) => AfterVerdict::Escalate(reason),
        Outcome::Agreed(label) => AfterVerdict::Resolve(label),
    })
}

/// What a labeler is told after answering a gold copy: what the same first
/// answer does to a real task needing as many verdicts as the copy shows
/// (its source's): resolved, ready while more verdicts are needed, or
/// escalated for "can't tell"; so the answer gives nothing away.
pub fn gold_answer_status(required_verdicts: i64, answer: &Answer) -> TaskStatus {
    match consensus::decide(required_verdicts, std::slice::from_ref(answer)) {
        Outcome::NeedMore => TaskStatus::Ready,
        Outcome::Agreed(_) => TaskStatus::Resolved,
        Outcome::Escalate(_) => TaskStatus::Escalated,
    }
}

/// A supervisor settling a task: only an escalated task, only with a label.
pub fn supervisor_resolve(task: &Task, answer: Answer) -> Result<Label, Refused> {
    if task.status != TaskStatus::Escalated {
        return Err(Refused::NotEscalated {
            status: task.status,
        });
    }
    match answer {
        Answer::Label(label) => Ok(label),
        Answer::CantTell => Err(Refused::CantTellNotAllowed),
    }
}

/// A review task's clips: it is claimable once no poster is pending.
pub fn clips_settled(posters: &[PosterStatus]) -> bool {
    !posters.contains(&PosterStatus::Pending)
}

/// The state a new task starts in: waiting while a clip is still being
/// processed (its poster pending), ready otherwise.
pub fn new_task_status(posters: &[PosterStatus]) -> TaskStatus {
    if clips_settled(posters) {
        TaskStatus::Ready
    } else {
        TaskStatus::Waiting
    }
}

/// A clip attached to a task needs a poster unless it failed: a failed clip
/// is shown as missing, and the task does not wait for it.
pub fn poster_for(clip: ClipStatus) -> PosterStatus {
    if clip == ClipStatus::Failed {
        PosterStatus::Failed
    } else {
        PosterStatus::Pending
    }
}

/// What the media job's outcome makes of a clip.
pub fn clip_processed(succeeded: bool) -> ClipStatus {
    if succeeded {
        ClipStatus::Ready
    } else {
        ClipStatus::Failed
    }
}

/// Whether a session takes a new event: not once its receipt is final.
pub fn accepts_events(session: SessionStatus) -> Result<(), SessionRefused> {
    if session == SessionStatus::Finalized {
        Err(SessionRefused::SessionFinalized)
    } else {
        Ok(())
    }
}

/// What an exit report does to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The shopper leaves now: the session is exited, its tasks' deadlines
    /// become exact, and the receipt may finalize.
    Leaves,
    /// The same exit again: nothing changes.
    AlreadyRecorded,
}

/// An exit at `exited_at` for a session that exited at `recorded` (if it
/// did): the first exit is taken, the same one again is a retry, another
/// time is refused.
pub fn exit(recorded: Option<i64>, exited_at: i64) -> Result<Exit, SessionRefused> {
    match recorded {
        None => Ok(Exit::Leaves),
        Some(t) if t == exited_at => Ok(Exit::AlreadyRecorded),
        Some(_) => Err(SessionRefused::AlreadyExited),
    }
}

/// The receipt deadline of a task: the SLA after the shopper's exit, or,
/// while the shopper is still in the store, after the exit the policy
/// expects following the event.
pub fn receipt_deadline(policy: &RoutingPolicy, exited_at: Option<i64>, occurred_at: i64) -> i64 {
    deadline_after_exit(
        policy,
        exited_at.unwrap_or(occurred_at + policy.expected_exit_ms),
    )
}

/// The receipt deadline once the shopper's exit is known: the SLA after it.
pub fn deadline_after_exit(policy: &RoutingPolicy, exited_at: i64) -> i64 {
    exited_at + policy.receipt_sla_ms
}

/// Whether a session's receipt becomes final: once the shopper has exited
/// and none of its events is in review. Finalizing happens exactly once: a
/// finalized session is never finalized again.
pub fn may_finalize(session: SessionStatus, open_reviews: i64) -> bool {
    session == SessionStatus::Exited && open_reviews == 0
}

/// What a routed event's task is for: an audit sample is settled with the
/// model's answer at once, as it would have been without the draw (its task
/// measures, it holds nothing); any other review holds the receipt; an
/// auto-accepted event has no task.
pub fn purpose_of(route: Route) -> Option<TaskPurpose> {
    match route {
        Route::Review {
            reason: ReviewReason::AuditSample,
            ..
        } => Some(TaskPurpose::Audit),
        Route::Review { .. } => Some(TaskPurpose::Review),
        Route::AutoAccepted => None,
    }
}

/// Where a ready task stands in the queue, lowest first: by purpose
/// ([`TaskPurpose::priority`]), then the earliest receipt deadline, then
/// the oldest. The claim query orders by the same three columns
/// (`priority, deadline_at, created_at`); the store-day simulator sorts by
/// this key.
pub fn queue_rank(purpose: TaskPurpose, deadline_at: i64, created_at: i64) -> (i64, i64, i64) {
    (purpose.priority(), deadline_at, created_at)
}

/// Whether a labeler may take an audit sample now (no receipt work being
/// ready for them): only while another labeler at work is free to take
/// receipt work that arrives meanwhile; or when nobody else is at work, or
/// the audits would never be done. An audit gives way to receipt work
/// anyway ([`beat`]), so this does not protect receipts; it keeps audits
/// from being started and given back over and over on a busy crew, which
/// would waste the time spent on them. `others_active` are the other labelers at work, `others_idle` those
/// of them holding no lease.
pub fn may_take_audit(others_active: i64, others_idle: i64) -> bool {
    others_active == 0 || others_idle > 0
}

/// An open task as the deadline guarantee sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// What the task is for.
    pub purpose: TaskPurpose,
    /// `ready` or `waiting` (a leased task is being answered; if its lease
    /// lapses it is `ready` again and looked at then).
    pub status: TaskStatus,
    /// Its receipt deadline, epoch ms.
    pub deadline_at: i64,
    /// Agreeing verdicts it needs.
    pub required_verdicts: i64,
    /// Verdicts it has (all agreeing: a disagreement escalates at once).
    pub verdicts: i64,
}

/// Who could still answer a task: the labelers active lately (`crew`), and
/// of them those who never held this task (`eligible`; a second opinion is
/// always someone else's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crew {
    /// Labelers who claimed work within the activity window.
    pub active: i64,
    /// Of them, the ones who never held the task.
    pub eligible: i64,
}

/// Whether an open task must go to supervisors now so that its receipt is
/// not late for a reason inside Recount, and why:
/// * `Deadline` when its deadline is within `lead_ms` of `now` (or past);
/// * `NoEligibleLabeler` when a crew is at work but fewer of them may still
///   answer it than the verdicts it still needs: everyone active answered
///   or released it, or the crew is smaller than the verdicts it needs.
///
/// With nobody active at all, only the deadline rule applies: escalating
/// early would only move work from an absent crew to supervisors hours
/// before it is due. An audit has no deadline anyone waits for, but one
/// nobody left may answer is handed over too, or it would never end. Gold
/// copies are never at risk (they hold no receipt); the caller leaves them
/// out.
pub fn at_risk(task: &Pending, crew: Crew, now: i64, lead_ms: i64) -> Option<EscalationReason> {
    if !matches!(task.status, TaskStatus::Ready | TaskStatus::Waiting) {
        return None;
    }
    if task.purpose.has_deadline() && task.deadline_at - now <= lead_ms {
        return Some(EscalationReason::Deadline);
    }
    let still_needed = (task.required_verdicts - task.verdicts).max(1);
    (task.status == TaskStatus::Ready && crew.active > 0 && crew.eligible < still_needed)
        .then_some(EscalationReason::NoEligibleLabeler)
}

#[cfg(test)]
mod tests {
    use super::super::Action;
    use super::*;

    #[test]
    fn a_task_near_its_deadline_is_escalated_before_it_passes() {
        let t = Pending {
            purpose: TaskPurpose::Review,
            status: TaskStatus::Ready,
            deadline_at: 100_000,
            required_verdicts: 1,
            verdicts: 0,
        };
        let crew = Crew {
            active: 3,
            eligible: 3,
        };
        assert_eq!(at_risk(&t, crew, 39_999, 60_000), None);
        assert_eq!(
            at_risk(&t, crew, 40_000, 60_000),
            Some(EscalationReason::Deadline)
        );
        assert_eq!(
            at_risk(&t, crew, 200_000, 60_000),
            Some(EscalationReason::Deadline),
            "past its deadline"
        );
        let waiting = Pending {
            status: TaskStatus::Waiting,
            ..t
        };
        assert_eq!(
            at_risk(&waiting, crew, 40_000, 60_000),
            Some(EscalationReason::Deadline),
            "clips still processing near the deadline"
        );
        for status in [
            TaskStatus::Leased,
            TaskStatus::Escalated,
            TaskStatus::Resolved,
        ] {
            assert_eq!(
                at_risk(&Pending { status, ..t }, crew, 99_000, 60_000),
                None
            );
        }
    }

    #[test]
    fn a_task_nobody_active_may_answer_is_escalated() {
        let needs_two = Pending {
            purpose: TaskPurpose::Review,
            status: TaskStatus::Ready,
            deadline_at: i64::MAX,
            required_verdicts: 2,
            verdicts: 1,
        };
        let lone = Crew {
            active: 1,
            eligible: 0,
        };
        assert_eq!(
            at_risk(&needs_two, lone, 0, 60_000),
            Some(EscalationReason::NoEligibleLabeler),
            "the only labeler already answered"
        );
        let fresh_audit = Pending {
            verdicts: 0,
            ..needs_two
        };
        let one = Crew {
            active: 1,
            eligible: 1,
        };
        assert_eq!(
            at_risk(&fresh_audit, one, 0, 60_000),
            Some(EscalationReason::NoEligibleLabeler),
            "a crew of one cannot give two verdicts"
        );
        let two = Crew {
            active: 2,
            eligible: 2,
        };
        assert_eq!(at_risk(&fresh_audit, two, 0, 60_000), None);
        let nobody = Crew {
            active: 0,
            eligible: 0,
        };
        assert_eq!(
            at_risk(&fresh_audit, nobody, 0, 60_000),
            None,
            "no crew at all: only the deadline rule"
        );
        let waiting = Pending {
            status: TaskStatus::Waiting,
            ..needs_two
        };
        assert_eq!(
            at_risk(&waiting, lone, 0, 60_000),
            None,
            "a task waiting for its clips is not yet anyone's to answer"
        );
    }

    #[test]
    fn an_audit_is_never_escalated_for_its_deadline_only_when_nobody_may_answer_it() {
        let audit = Pending {
            purpose: TaskPurpose::Audit,
            status: TaskStatus::Ready,
            deadline_at: 100_000,
            required_verdicts: 2,
            verdicts: 1,
        };
        let two = Crew {
            active: 2,
            eligible: 1,
        };
        assert_eq!(
            at_risk(&audit, two, 200_000, 60_000),
            None,
            "past its deadline"
        );
        let lone = Crew {
            active: 1,
            eligible: 0,
        };
        assert_eq!(
            at_risk(&audit, lone, 200_000, 60_000),
            Some(EscalationReason::NoEligibleLabeler)
        );
        let dispute = Pending {
            purpose: TaskPurpose::Dispute,
            ..audit
        };
        assert_eq!(
            at_risk(&dispute, two, 40_000, 60_000),
            Some(EscalationReason::Deadline),
            "a store waits for its dispute"
        );
    }

    #[test]
    fn an_audit_is_taken_only_with_someone_else_free_for_receipt_work() {
        assert!(may_take_audit(0, 0), "a lone labeler does the audits");
        assert!(may_take_audit(2, 1));
        assert!(!may_take_audit(2, 0), "the others are busy: stay free");
    }

    #[test]
    fn purposes_rank_and_blind_as_documented() {
        use TaskPurpose::*;
        assert!(Dispute.priority() < Review.priority());
        assert!(Review.priority() < Audit.priority());
        assert!(Review.holds_receipt() && !Audit.holds_receipt() && !Dispute.holds_receipt());
        assert!(!Review.blind(false) && Review.blind(true));
        for p in [Audit, Dispute, Gold] {
            assert!(p.blind(false), "{p} is always blind");
        }
    }

    const TTL: i64 = 60_000;

    fn ready(required: i64) -> Task {
        Task {
            status: TaskStatus::Ready,
            lease: None,
            gold: false,
            required_verdicts: required,
        }
    }

    fn leased(to: &str, expires_at: i64) -> Task {
        Task {
            status: TaskStatus::Leased,
            lease: Some(Lease {
                holder: to.into(),
                expires_at,
            }),
            gold: false,
            required_verdicts: 1,
        }
    }

    fn pick(sku: &str) -> Answer {
        Answer::Label(Label::new(Action::Pick, Some(sku.into()), 1))
    }

    #[test]
    fn every_state_maps_to_its_column_value_and_back() {
        fn round_trip<T: Copy + PartialEq + fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            let mut seen = std::collections::HashSet::new();
            for &s in all {
                assert_eq!(parse(as_str(s)), Some(s));
                assert!(seen.insert(as_str(s)), "{s:?} shares its column value");
            }
            assert_eq!(parse("no-such-state"), None);
        }
        round_trip(TaskStatus::ALL, TaskStatus::as_str, TaskStatus::parse);
        round_trip(
            SessionStatus::ALL,
            SessionStatus::as_str,
            SessionStatus::parse,
        );
        round_trip(EventStatus::ALL, EventStatus::as_str, EventStatus::parse);
        round_trip(RouteName::ALL, RouteName::as_str, RouteName::parse);
        round_trip(ClipStatus::ALL, ClipStatus::as_str, ClipStatus::parse);
        round_trip(
            FootageStatus::ALL,
            FootageStatus::as_str,
            FootageStatus::parse,
        );
        round_trip(PosterStatus::ALL, PosterStatus::as_str, PosterStatus::parse);
        round_trip(LeaseEnd::ALL, LeaseEnd::as_str, LeaseEnd::parse);
        round_trip(ExportStatus::ALL, ExportStatus::as_str, ExportStatus::parse);
        assert_eq!(TaskStatus::Ready.to_string(), "ready");
        assert_eq!(TaskStatus::GoldDropped.as_str(), "gold-dropped");
    }

    #[test]
    fn open_task_states_are_those_that_still_hold_a_receipt() {
        for s in TaskStatus::ALL {
            let holds = matches!(
                s,
                TaskStatus::Waiting
                    | TaskStatus::Ready
                    | TaskStatus::Leased
                    | TaskStatus::Escalated
            );
            assert_eq!(TaskStatus::OPEN.contains(s), holds, "{s:?}");
        }
    }

    #[test]
    fn lease_is_live_until_its_expiry_and_held_only_by_its_holder() {
        let lease = Lease::new("ana", 1_000, TTL);
        assert_eq!(lease.expires_at, 61_000);
        assert!(lease.is_live(60_999));
        assert!(!lease.is_live(61_000));
        assert!(lease.is_held_by("ana", 60_999));
        assert!(!lease.is_held_by("ben", 60_999));
        assert!(!lease.is_held_by("ana", 61_000));
    }

    #[test]
    fn claim_limit_refuses_at_the_maximum() {
        assert_eq!(may_claim(0, 1), Ok(()));
        assert_eq!(may_claim(1, 2), Ok(()));
        assert_eq!(may_claim(2, 2), Err(Refused::TooManyLeases { held: 2 }));
    }

    #[test]
    fn only_a_ready_task_can_be_claimed() {
        let claimed = claim(&ready(2), "ana", 1_000, TTL).expect("ready is claimable");
        assert_eq!(claimed.status, TaskStatus::Leased);
        assert_eq!(claimed.lease, Some(Lease::new("ana", 1_000, TTL)));
        assert_eq!(claimed.required_verdicts, 2);
        for s in TaskStatus::ALL.iter().filter(|s| **s != TaskStatus::Ready) {
            let task = Task {
                status: *s,
                ..ready(1)
            };
            assert_eq!(claim(&task, "ana", 1_000, TTL), None, "{s:?}");
        }
    }

    #[test]
    fn a_gold_copy_starts_leased_to_its_labeler() {
        let copy = gold_copy(2, "ana", 5, TTL);
        assert!(copy.gold);
        assert_eq!(copy.status, TaskStatus::Leased);
        assert!(copy.is_leased_to("ana", 5 + TTL - 1));
        assert_eq!(copy.required_verdicts, 2);
    }

    #[test]
    fn heartbeat_extends_only_the_holders_live_lease() {
        let task = leased("ana", 10_000);
        assert_eq!(
            heartbeat(&task, "ana", 9_000, TTL),
            Ok(Lease::new("ana", 9_000, TTL))
        );
        assert_eq!(heartbeat(&task, "ben", 9_000, TTL), Err(NotHolding));
        assert_eq!(heartbeat(&task, "ana", 10_000, TTL), Err(NotHolding));
        assert_eq!(heartbeat(&ready(1), "ana", 0, TTL), Err(NotHolding));
    }

    #[test]
    fn only_an_audit_gives_way_to_waiting_receipt_work() {
        let task = leased("ana", 10_000);
        let renewed = Ok(Beat::Renewed(Lease::new("ana", 9_000, TTL)));
        assert_eq!(
            beat(&task, TaskPurpose::Audit, "ana", 9_000, TTL, true),
            Ok(Beat::Yield)
        );
        assert_eq!(
            beat(&task, TaskPurpose::Audit, "ana", 9_000, TTL, false),
            renewed,
            "nothing waits: the audit goes on"
        );
        for purpose in [TaskPurpose::Review, TaskPurpose::Dispute, TaskPurpose::Gold] {
            assert_eq!(
                beat(&task, purpose, "ana", 9_000, TTL, true),
                renewed,
                "{purpose:?}"
            );
        }
        assert_eq!(
            beat(&task, TaskPurpose::Audit, "ben", 9_000, TTL, true),
            Err(NotHolding),
            "only the holder's heartbeat counts"
        );
        assert_eq!(
            beat(&task, TaskPurpose::Audit, "ana", 10_000, TTL, true),
            Err(NotHolding),
            "an expired lease is not yielded, it is lost"
        );
    }

    #[test]
    fn an_audit_beats_often_enough_to_give_way_in_time() {
        assert_eq!(
            heartbeat_every_ms(TaskPurpose::Review, 60_000, 1_000),
            20_000
        );
        assert_eq!(heartbeat_every_ms(TaskPurpose::Audit, 60_000, 1_000), 1_000);
        assert_eq!(
            heartbeat_every_ms(TaskPurpose::Audit, 60_000, 90_000),
            20_000,
            "never slower than the lease needs"
        );
        assert_eq!(heartbeat_every_ms(TaskPurpose::Gold, 1_500, 1_000), 1_000);
    }

    #[test]
    fn a_yielded_lease_is_refused_as_such() {
        let yielded = PastLease {
            expires_at: 100,
            ended_at: Some(50),
            end: Some(LeaseEnd::Yielded),
        };
        assert_eq!(lease_refusal(Some(&yielded), 200), Refused::LeaseYielded);
    }

    #[test]
    fn release_returns_a_real_task_to_the_queue_and_drops_a_gold_copy() {
        let task = leased("ana", 10_000);
        assert_eq!(release(&task, "ana", 5_000), Ok(TaskStatus::Ready));
        assert_eq!(release(&task, "ben", 5_000), Err(NotHolding));
        assert_eq!(release(&task, "ana", 10_000), Err(NotHolding));
        let copy = gold_copy(1, "ana", 0, TTL);
        assert_eq!(release(&copy, "ana", 1), Ok(TaskStatus::GoldDropped));
    }

    #[test]
    fn expiry_takes_back_only_lapsed_leases() {
        let task = leased("ana", 10_000);
        assert_eq!(expire(&task, 9_999), None);
        assert_eq!(expire(&task, 10_000), Some(TaskStatus::Ready));
        assert_eq!(expire(&ready(1), 10_000), None);
        let copy = gold_copy(1, "ana", 0, TTL);
        assert_eq!(expire(&copy, TTL), Some(TaskStatus::GoldDropped));
        let escalated = Task {
            status: TaskStatus::Escalated,
            ..leased("ana", 0)
        };
        assert_eq!(expire(&escalated, 1), None);
    }

    #[test]
    fn lease_refusal_says_expired_only_for_the_labelers_own_lapsed_lease() {
        assert_eq!(lease_refusal(None, 0), Refused::LeaseNotHeld);
        let running = PastLease {
            expires_at: 100,
            ended_at: None,
            end: None,
        };
        assert_eq!(lease_refusal(Some(&running), 99), Refused::LeaseNotHeld);
        assert_eq!(lease_refusal(Some(&running), 100), Refused::LeaseExpired);
        let swept = PastLease {
            expires_at: 100,
            ended_at: Some(100),
            end: Some(LeaseEnd::Expired),
        };
        assert_eq!(lease_refusal(Some(&swept), 50), Refused::LeaseExpired);
        for end in [LeaseEnd::Released, LeaseEnd::Verdict] {
            let ended = PastLease {
                expires_at: 100,
                ended_at: Some(50),
                end: Some(end),
            };
            assert_eq!(
                lease_refusal(Some(&ended), 200),
                Refused::LeaseNotHeld,
                "{end:?}"
            );
        }
    }

    #[test]
    fn a_repeated_verdict_is_a_retry_and_a_different_one_a_conflict() {
        let task = Task {
            status: TaskStatus::Resolved,
            ..ready(1)
        };
        assert_eq!(
            repeat_verdict(&task, &pick("a"), &pick("a")),
            Ok(TaskStatus::Resolved)
        );
        assert_eq!(
            repeat_verdict(&task, &pick("a"), &pick("b")),
            Err(Refused::VerdictConflict)
        );
        let copy = Task {
            status: TaskStatus::GoldAnswered,
            ..gold_copy(2, "ana", 0, TTL)
        };
        assert_eq!(
            repeat_verdict(&copy, &pick("a"), &pick("a")),
            Ok(TaskStatus::Ready),
            "a gold copy reports what a real task would"
        );
    }

    #[test]
    fn a_verdict_needs_the_holders_live_lease() {
        let task = leased("ana", 100);
        assert_eq!(verdict(&task, "ben", 50, &[pick("a")]), Err(NotHolding));
        assert_eq!(verdict(&task, "ana", 100, &[pick("a")]), Err(NotHolding));
        assert_eq!(verdict(&ready(1), "ana", 0, &[pick("a")]), Err(NotHolding));
    }

    #[test]
    fn a_verdict_resolves_asks_for_more_or_escalates_by_consensus() {
        let one = leased("ana", 100);
        let after = verdict(&one, "ana", 50, &[pick("a")]).unwrap();
        assert_eq!(
            after,
            AfterVerdict::Resolve(Label::new(Action::Pick, Some("a".into()), 1))
        );
        assert_eq!(after.stored(), TaskStatus::Resolved);

        let two = Task {
            required_verdicts: 2,
            ..leased("ana", 100)
        };
        let after = verdict(&two, "ana", 50, &[pick("a")]).unwrap();
        assert_eq!(after, AfterVerdict::NeedMore);
        assert_eq!(after.stored(), TaskStatus::Ready);

        let after = verdict(&two, "ana", 50, &[pick("a"), pick("b")]).unwrap();
        assert!(matches!(after, AfterVerdict::Escalate(_)));
        assert_eq!(after.stored(), TaskStatus::Escalated);
        assert_eq!(after.reported(), TaskStatus::Escalated);

        let after = verdict(&one, "ana", 50, &[Answer::CantTell]).unwrap();
        assert!(matches!(after, AfterVerdict::Escalate(_)));
    }

    #[test]
    fn a_gold_verdict_is_stored_answered_and_reported_like_a_real_first_answer() {
        let copy = gold_copy(2, "ana", 0, TTL);
        let after = verdict(&copy, "ana", 1, &[pick("a")]).unwrap();
        assert_eq!(after.stored(), TaskStatus::GoldAnswered);
        assert_eq!(after.reported(), TaskStatus::Ready);
        let single = gold_copy(1, "ana", 0, TTL);
        assert_eq!(
            verdict(&single, "ana", 1, &[pick("a")]).unwrap().reported(),
            TaskStatus::Resolved
        );
        assert_eq!(
            verdict(&single, "ana", 1, &[Answer::CantTell])
                .unwrap()
                .reported(),
            TaskStatus::Escalated
        );
    }

    #[test]
    fn gold_answer_status_matches_a_real_tasks_first_verdict() {
        assert_eq!(gold_answer_status(1, &pick("a")), TaskStatus::Resolved);
        assert_eq!(gold_answer_status(3, &pick("a")), TaskStatus::Ready);
        assert_eq!(
            gold_answer_status(1, &Answer::CantTell),
            TaskStatus::Escalated
        );
        assert_eq!(
            gold_answer_status(2, &Answer::CantTell),
            TaskStatus::Escalated
        );
    }

    #[test]
    fn a_supervisor_resolves_only_escalated_tasks_and_only_with_a_label() {
        let escalated = Task {
            status: TaskStatus::Escalated,
            ..ready(2)
        };
        let label = Label::new(Action::Return, Some("a".into()), 2);
        assert_eq!(
            supervisor_resolve(&escalated, Answer::Label(label.clone())),
            Ok(label.clone())
        );
        assert_eq!(
            supervisor_resolve(&escalated, Answer::CantTell),
            Err(Refused::CantTellNotAllowed)
        );
        for s in TaskStatus::ALL
            .iter()
            .filter(|s| **s != TaskStatus::Escalated)
        {
            let task = Task {
                status: *s,
                ..ready(1)
            };
            assert_eq!(
                supervisor_resolve(&task, Answer::Label(label.clone())),
                Err(Refused::NotEscalated { status: *s })
            );
        }
    }

    #[test]
    fn a_task_waits_for_pending_posters_only() {
        use PosterStatus::*;
        assert_eq!(new_task_status(&[]), TaskStatus::Ready);
        assert_eq!(new_task_status(&[Ready, Failed]), TaskStatus::Ready);
        assert_eq!(new_task_status(&[Ready, Pending]), TaskStatus::Waiting);
        assert!(clips_settled(&[Failed]));
        assert!(!clips_settled(&[Pending]));
        assert_eq!(poster_for(ClipStatus::Failed), Failed);
        assert_eq!(poster_for(ClipStatus::Processing), Pending);
        assert_eq!(poster_for(ClipStatus::Ready), Pending);
        assert_eq!(clip_processed(true), ClipStatus::Ready);
        assert_eq!(clip_processed(false), ClipStatus::Failed);
    }

    #[test]
    fn only_a_finalized_session_refuses_events() {
        assert_eq!(accepts_events(SessionStatus::Open), Ok(()));
        assert_eq!(accepts_events(SessionStatus::Exited), Ok(()));
        assert_eq!(
            accepts_events(SessionStatus::Finalized),
            Err(SessionRefused::SessionFinalized)
        );
    }

    #[test]
    fn the_first_exit_counts_a_repeat_is_a_retry_another_time_is_refused() {
        assert_eq!(exit(None, 5), Ok(Exit::Leaves));
        assert_eq!(exit(Some(5), 5), Ok(Exit::AlreadyRecorded));
        assert_eq!(exit(Some(5), 6), Err(SessionRefused::AlreadyExited));
    }

    #[test]
    fn receipt_deadline_follows_the_exit_or_the_expected_exit() {
        let policy = RoutingPolicy {
            receipt_sla_ms: 600_000,
            expected_exit_ms: 300_000,
            ..RoutingPolicy::default()
        };
        assert_eq!(receipt_deadline(&policy, Some(1_000), 0), 601_000);
        assert_eq!(receipt_deadline(&policy, None, 1_000), 901_000);
        assert_eq!(deadline_after_exit(&policy, 1_000), 601_000);
    }

    #[test]
    fn a_receipt_finalizes_once_the_shopper_left_and_nothing_is_in_review() {
        assert!(may_finalize(SessionStatus::Exited, 0));
        assert!(!may_finalize(SessionStatus::Exited, 1));
        assert!(!may_finalize(SessionStatus::Open, 0));
        assert!(!may_finalize(SessionStatus::Finalized, 0), "exactly once");
    }
}
