-- review_tasks_status serves the claim's "status = 'ready' ORDER BY
-- deadline_at, created_at" in index order (docs/benchmarks.md). SQLite's
-- 0001 already builds it on those columns, so this changes nothing here;
-- PostgreSQL's 0010 rebuilds its (status, store_id) one to match. Found by
-- tests/schema_parity.rs.
CREATE INDEX IF NOT EXISTS review_tasks_status ON review_tasks (status, deadline_at, created_at);
