-- Gold tasks: resolved tasks whose final label is known to be right, served
-- to labelers as copies (review_tasks rows with gold_id set, each backed by
-- an events row with route = 'gold') to score them. A copy never touches the
-- source event, its session or its receipt.

CREATE TABLE gold_tasks (
    id TEXT PRIMARY KEY,
    source_task_id TEXT NOT NULL UNIQUE REFERENCES review_tasks(id),
    store_id TEXT NOT NULL,
    action TEXT NOT NULL,
    sku TEXT,
    quantity BIGINT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
-- The claim's gold pick walks the active gold tasks, newest first.
CREATE INDEX gold_tasks_active ON gold_tasks (created_at) WHERE active = 1;

ALTER TABLE review_tasks ADD COLUMN gold_id TEXT REFERENCES gold_tasks(id);
-- The gold pick asks "was a copy of this gold task served to this labeler?"
-- per gold task: its copies, then their leases (task_leases_task).
CREATE INDEX review_tasks_gold ON review_tasks (gold_id) WHERE gold_id IS NOT NULL;

CREATE TABLE gold_answers (
    task_id TEXT PRIMARY KEY REFERENCES review_tasks(id),
    gold_id TEXT NOT NULL REFERENCES gold_tasks(id),
    labeler_id TEXT NOT NULL,
    correct BIGINT NOT NULL,
    answered_at BIGINT NOT NULL
);
CREATE INDEX gold_answers_time ON gold_answers (answered_at);
CREATE INDEX gold_answers_labeler ON gold_answers (labeler_id, answered_at);
CREATE INDEX gold_answers_gold ON gold_answers (gold_id);
