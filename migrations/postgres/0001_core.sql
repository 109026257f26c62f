-- Core loop: stores, catalog, sessions, events, review tasks, verdicts, receipts, users, jobs.
-- Times are epoch milliseconds; ids are UUIDv7 text; flags are 0/1 integers.

CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    webhook_secret TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    margin DOUBLE PRECISION NOT NULL,
    audit_rate DOUBLE PRECISION NOT NULL,
    audit_verdicts BIGINT NOT NULL,
    high_value_cents BIGINT,
    receipt_sla_ms BIGINT NOT NULL,
    expected_exit_ms BIGINT NOT NULL,
    training_allowed BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE products (
    store_id TEXT NOT NULL REFERENCES stores(id),
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    image_url TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, sku)
);

CREATE TABLE product_prices (
    store_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (store_id, sku, valid_from)
);

CREATE TABLE sessions (
    store_id TEXT NOT NULL REFERENCES stores(id),
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    open_reviews BIGINT NOT NULL DEFAULT 0,
    exited_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (store_id, session_id)
);
CREATE INDEX sessions_pending ON sessions (store_id, exited_at) WHERE status = 'exited';

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    event_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
    candidates TEXT NOT NULL,
    clips TEXT NOT NULL,
    model_version TEXT,
    top_sku TEXT,
    top_confidence DOUBLE PRECISION,
    route TEXT NOT NULL,
    route_reason TEXT,
    status TEXT NOT NULL,
    final_action TEXT,
    final_sku TEXT,
    final_quantity BIGINT,
    resolution TEXT,
    request_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    UNIQUE (store_id, event_id)
);
CREATE INDEX events_session ON events (store_id, session_id);

CREATE TABLE review_tasks (
    id TEXT PRIMARY KEY,
    event_pk TEXT NOT NULL UNIQUE REFERENCES events(id),
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    required_verdicts BIGINT NOT NULL,
    status TEXT NOT NULL,
    deadline_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    leased_by TEXT,
    lease_id TEXT,
    lease_expires_at BIGINT,
    verdict_count BIGINT NOT NULL DEFAULT 0,
    escalation_reason TEXT,
    resolved_by TEXT,
    resolution_note TEXT,
    resolved_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX review_tasks_ready ON review_tasks (deadline_at, created_at) WHERE status = 'ready';
CREATE INDEX review_tasks_leased ON review_tasks (lease_expires_at) WHERE status = 'leased';
CREATE INDEX review_tasks_session ON review_tasks (store_id, session_id);
CREATE INDEX review_tasks_status ON review_tasks (status, store_id);

CREATE TABLE task_leases (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    labeler_id TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX task_leases_task ON task_leases (task_id, labeler_id);
CREATE INDEX task_leases_open ON task_leases (labeler_id) WHERE ended_at IS NULL;

CREATE TABLE verdicts (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES review_tasks(id),
    labeler_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    action TEXT,
    sku TEXT,
    quantity BIGINT,
    cant_tell BIGINT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    handling_ms BIGINT NOT NULL,
    UNIQUE (task_id, labeler_id)
);
CREATE INDEX verdicts_labeler ON verdicts (labeler_id, created_at);

CREATE TABLE receipts (
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    lines TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    exited_at BIGINT NOT NULL,
    finalized_at BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (store_id, session_id)
);
CREATE INDEX receipts_finalized ON receipts (finalized_at);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_expires_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';

-- The queue's hot rows change state on every claim and verdict. Vacuum them
-- early so dead index entries do not pile up at the head of the ready index,
-- and leave room on each page for updated row versions.
ALTER TABLE review_tasks SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000
);
