-- Jobs are taken fairly across the stores whose work they are: the store
-- served longest ago goes first, so one store's backlog delays another
-- store's next job by at most one job per worker. Jobs of no store
-- (exports) rank as a store never served.
ALTER TABLE jobs ADD COLUMN store_id TEXT;
CREATE TABLE job_turns (
    store_id TEXT PRIMARY KEY,
    last_taken_at INTEGER NOT NULL
);
