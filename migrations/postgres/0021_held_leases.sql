-- Each labeler's live leases, found by who holds them: a claim counts the
-- claimant's (the lease limit) without visiting every recent lease. The
-- older index on lease_expires_at found them only by time, so the count
-- visited every lease still unexpired, dead row versions included until
-- vacuum (docs/architecture.md, "Statements per request").
CREATE INDEX review_tasks_held ON review_tasks (leased_by, lease_expires_at) WHERE status = 'leased';
