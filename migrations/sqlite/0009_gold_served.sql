-- Which gold task each labeler was served, once each: the claim's gold pick
-- probes this by primary key instead of walking every copy of every gold
-- task and its leases (a cost that grew with gold tasks × labelers), and
-- the primary key keeps two concurrent claims from serving one labeler the
-- same gold task twice.
CREATE TABLE gold_served (
    gold_id TEXT NOT NULL REFERENCES gold_tasks(id),
    labeler_id TEXT NOT NULL REFERENCES users(id),
    -- The copy served.
    task_id TEXT NOT NULL,
    served_at INTEGER NOT NULL,
    PRIMARY KEY (gold_id, labeler_id)
);
INSERT INTO gold_served (gold_id, labeler_id, task_id, served_at)
SELECT c.gold_id, l.labeler_id, MIN(c.id), MIN(l.claimed_at)
FROM review_tasks c JOIN task_leases l ON l.task_id = c.id
WHERE c.gold_id IS NOT NULL
GROUP BY c.gold_id, l.labeler_id;
