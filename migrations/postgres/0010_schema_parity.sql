-- review_tasks_status serves the claim's "status = 'ready' ORDER BY
-- deadline_at, created_at" in index order (docs/benchmarks.md). SQLite's
-- 0001 builds it on those columns; PostgreSQL's still had the
-- (status, store_id) it had before that tuning. Found by
-- tests/schema_parity.rs. On a large queue the rebuild holds writes to
-- review_tasks while it runs, once, at upgrade.
DROP INDEX review_tasks_status;
CREATE INDEX review_tasks_status ON review_tasks (status, deadline_at, created_at);
