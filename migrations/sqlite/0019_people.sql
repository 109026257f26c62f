-- People (docs/operations.md, "People"): a labeler a supervisor paused
-- (or the gold-accuracy floor did) claims nothing until resumed; why is
-- kept for the people page. The floor judges only gold answers given
-- after the last resume.
ALTER TABLE users ADD COLUMN paused_at INTEGER;
ALTER TABLE users ADD COLUMN paused_reason TEXT;
ALTER TABLE users ADD COLUMN resumed_at INTEGER;
