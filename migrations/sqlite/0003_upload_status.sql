-- Uploads are recorded before their blob is stored: a clip row starts as
-- 'uploading' and a recording as 'uploading' too, and becomes usable only
-- once its blob is written. Rows left 'uploading' by a crash are found by
-- the partial indexes below and removed at startup.

ALTER TABLE footage ADD COLUMN status TEXT NOT NULL DEFAULT 'ready';
CREATE INDEX clips_uploading ON clips (created_at) WHERE status = 'uploading';
CREATE INDEX footage_uploading ON footage (created_at) WHERE status = 'uploading';
