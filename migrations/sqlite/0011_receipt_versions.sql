-- On-time receipts: what a task is for, receipt versions with their
-- adjustments, shopper disputes, and the per-store blind review switch.

-- What a task is for (domain::lifecycle::TaskPurpose): `review` settles its
-- event and holds the receipt; `audit` checks an event already settled with
-- the model's answer; `dispute` re-checks a contested receipt line; `gold`
-- is a gold copy. Tasks made before this migration held their receipt,
-- audit samples included, so they stay `review`.
ALTER TABLE review_tasks ADD COLUMN purpose TEXT NOT NULL DEFAULT 'review';
UPDATE review_tasks SET purpose = 'gold' WHERE gold_id IS NOT NULL;
-- Claim order: disputes (0), then receipt work (1), then audits (2); within
-- each, earliest deadline first.
ALTER TABLE review_tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
DROP INDEX review_tasks_status;
CREATE INDEX review_tasks_status ON review_tasks (status, priority, deadline_at, created_at);

-- Who is at work (claimed within labeler_active_window_ms): read by the
-- claim of an audit sample and by the deadline guarantee.
CREATE INDEX task_leases_claimed ON task_leases (claimed_at);

ALTER TABLE stores ADD COLUMN blind_review INTEGER NOT NULL DEFAULT 0;

-- The current version of a final receipt stays in `receipts`; every version
-- (1 = final at exit) is kept here with what changed.
ALTER TABLE receipts ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE receipt_versions (
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    lines TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    -- NULL for version 1; `audit`, `correction` or `dispute` after.
    cause TEXT,
    -- The task (audit, correction) or dispute behind an adjustment.
    cause_id TEXT,
    -- JSON list of the lines that changed.
    changes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (store_id, session_id, version)
);
INSERT INTO receipt_versions (store_id, session_id, version, lines, total_cents, changes, created_at)
SELECT store_id, session_id, 1, lines, total_cents, '[]', finalized_at FROM receipts;

CREATE TABLE disputes (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    session_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    reason TEXT,
    -- open, upheld (the receipt was adjusted) or confirmed.
    status TEXT NOT NULL,
    task_id TEXT NOT NULL,
    -- Net units of the line when the dispute was opened.
    quantity INTEGER NOT NULL,
    -- The receipt version the dispute made, when upheld.
    adjusted_version INTEGER,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
);
-- One open dispute per receipt line.
CREATE UNIQUE INDEX disputes_open ON disputes (store_id, session_id, sku) WHERE status = 'open';
CREATE INDEX disputes_opened ON disputes (opened_at);
CREATE INDEX disputes_task ON disputes (task_id);
