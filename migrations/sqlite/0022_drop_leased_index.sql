-- The index of leased tasks by expiry served only the lease sweep, which
-- finds the same few rows (at most every labeler's lease limit) through
-- review_tasks_held or review_tasks_status. Every claim and every verdict
-- wrote an entry to it (docs/architecture.md, "Statements per request").
DROP INDEX review_tasks_leased;
