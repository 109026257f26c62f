-- Dashboard rollups (docs/dashboard.md): additive summaries of raw rows per
-- time bucket. Every fact is counted by a timestamp that never changes once
-- written (events by created_at and by resolved_at, verdicts by created_at,
-- tasks by resolved_at, receipts by finalized_at, gold answers by
-- answered_at), up to the watermark; the dashboard counts the rest live.
-- Histograms are "bucket:count,…" text (domain::histogram); alpha sums are
-- JSON maps (domain::stats::AlphaSums).

-- How far the rollups reach: every fact before `watermark` is counted. The
-- rollup job locks this one row, so two instances never count twice.
CREATE TABLE rollup_state (
    id INTEGER PRIMARY KEY,
    watermark INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO rollup_state (id, watermark, updated_at) VALUES (1, 0, 0);

-- Per store and minute (grain_ms 60000) or hour (3600000).
CREATE TABLE rollup_store (
    grain_ms INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    store_id TEXT NOT NULL,
    events INTEGER NOT NULL,
    events_reviewed INTEGER NOT NULL,
    verdicts INTEGER NOT NULL,
    handling_hist TEXT NOT NULL,
    receipts INTEGER NOT NULL,
    receipts_reviewed INTEGER NOT NULL,
    latency_hist TEXT NOT NULL,
    alpha_units INTEGER NOT NULL,
    alpha_marginals TEXT NOT NULL,
    alpha_pairs TEXT NOT NULL,
    PRIMARY KEY (grain_ms, bucket_start, store_id)
);

-- Per labeler and hour (grain_ms 3600000) or UTC day (86400000).
CREATE TABLE rollup_labeler (
    grain_ms INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    labeler_id TEXT NOT NULL,
    verdicts INTEGER NOT NULL,
    handling_hist TEXT NOT NULL,
    judged INTEGER NOT NULL,
    agreed INTEGER NOT NULL,
    gold_answers INTEGER NOT NULL,
    gold_correct INTEGER NOT NULL,
    PRIMARY KEY (grain_ms, bucket_start, labeler_id)
);

-- Calibration per UTC day, model version ('' when none was sent) and one of
-- ten confidence bins, over human-labelled events.
CREATE TABLE rollup_model (
    day INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    bin INTEGER NOT NULL,
    labelled INTEGER NOT NULL,
    correct INTEGER NOT NULL,
    confidence_micros INTEGER NOT NULL,
    audited INTEGER NOT NULL,
    audited_wrong INTEGER NOT NULL,
    PRIMARY KEY (day, model_version, bin)
);

-- Resolved events per store, UTC day and one of a hundred top-confidence
-- bins, by what happened to them (threshold recommendation).
CREATE TABLE rollup_confidence (
    store_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    bin INTEGER NOT NULL,
    events INTEGER NOT NULL,
    forced INTEGER NOT NULL,
    low_confidence INTEGER NOT NULL,
    low_confidence_wrong INTEGER NOT NULL,
    audited INTEGER NOT NULL,
    audited_wrong INTEGER NOT NULL,
    auto_accepted INTEGER NOT NULL,
    PRIMARY KEY (store_id, day, bin)
);

-- The range scans of the rollup job and of the dashboard's live tail.
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_resolved ON events (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX verdicts_created ON verdicts (created_at);
CREATE INDEX review_tasks_resolved ON review_tasks (resolved_at) WHERE resolved_at IS NOT NULL;
