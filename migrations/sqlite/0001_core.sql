-- Core loop: stores, catalog, sessions, events, review tasks, verdicts, receipts, users, jobs.
-- Times are epoch milliseconds; ids are UUIDv7 text; flags are 0/1 integers.

CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    webhook_secret TEXT NOT NULL,
    threshold REAL NOT NULL,
    margin REAL NOT NULL,
    audit_rate REAL NOT NULL,
    audit_verdicts INTEGER NOT NULL,
    high_value_cents INTEGER,
    receipt_sla_ms INTEGER NOT NULL,
    expected_exit_ms INTEGER NOT NULL,
    training_allowed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE products (
    store_id TEXT NOT NULL REFERENCES stores(id),
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    image_url TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (store_id, sku)
);

CREATE TABLE product_prices (
    store_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    PRIMARY KEY (store_id, sku, valid_from)
);

CREATE TABLE sessions (
    store_id TEXT NOT NULL REFERENCES stores(id),
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    open_reviews INTEGER NOT NULL DEFAULT 0,
    exited_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (store_id, session_id)
);
CREATE INDEX sessions_pending ON sessions (store_id, exited_at) WHERE status = 'exited';

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    event_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    candidates TEXT NOT NULL,
    clips TEXT NOT NULL,
    model_version TEXT,
    top_sku TEXT,
    top_confidence REAL,
    route TEXT NOT NULL,
    route_reason TEXT,
    status TEXT NOT NULL,
    final_action TEXT,
    final_sku TEXT,
    final_quantity INTEGER,
    resolution TEXT,
    request_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    UNIQUE (store_id, event_id)
);
CREATE INDEX events_session ON events (store_id, session_id);

CREATE TABLE review_tasks (
    id TEXT PRIMARY KEY,
    event_pk TEXT NOT NULL UNIQUE REFERENCES events(id),
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    required_verdicts INTEGER NOT NULL,
    status TEXT NOT NULL,
    deadline_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    leased_by TEXT,
    lease_id TEXT,
    lease_expires_at INTEGER,
    verdict_count INTEGER NOT NULL DEFAULT 0,
    escalation_reason TEXT,
    resolved_by TEXT,
    resolution_note TEXT,
    resolved_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX review_tasks_ready ON review_tasks (deadline_at, created_at) WHERE status = 'ready';
CREATE INDEX review_tasks_leased ON review_tasks (lease_expires_at) WHERE status = 'leased';
CREATE INDEX review_tasks_session ON review_tasks (store_id, session_id);
-- Serves the claim's "status = 'ready' ORDER BY deadline_at, created_at" in
-- index order: with (status, store_id) SQLite sorted every ready task per claim.
CREATE INDEX review_tasks_status ON review_tasks (status, deadline_at, created_at);

CREATE TABLE task_leases (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    labeler_id TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
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
    quantity INTEGER,
    cant_tell INTEGER NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL,
    handling_ms INTEGER NOT NULL,
    UNIQUE (task_id, labeler_id)
);
CREATE INDEX verdicts_labeler ON verdicts (labeler_id, created_at);

CREATE TABLE receipts (
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    lines TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    exited_at INTEGER NOT NULL,
    finalized_at INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    PRIMARY KEY (store_id, session_id)
);
CREATE INDEX receipts_finalized ON receipts (finalized_at);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    lease_expires_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';
