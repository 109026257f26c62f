-- Video retention and erasure (docs/operations.md, "Retention and
-- erasure"). A store keeps shopper video media_retention_days after the
-- receipt is final; an erased clip or recording keeps its row (labels,
-- receipts and exports refer to it) with status 'erased', erased_at set
-- and, once its blobs are gone, no keys.
ALTER TABLE stores ADD COLUMN media_retention_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE clips ADD COLUMN erased_at BIGINT;
ALTER TABLE footage ADD COLUMN erased_at BIGINT;

-- Which shoppers' sessions each clip shows: a clip is kept until every
-- one of their receipts is past retention, and a shopper's erasure finds
-- their clips. Gold copies show clips of sessions that are not theirs and
-- are left out.
CREATE TABLE clip_sessions (
    clip_id TEXT NOT NULL,
    store_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (clip_id, session_id)
);
CREATE INDEX clip_sessions_session ON clip_sessions (store_id, session_id);

INSERT INTO clip_sessions (clip_id, store_id, session_id)
SELECT DISTINCT j.value, e.store_id, e.session_id
FROM events e, json_array_elements_text(e.clips::json) AS j(value)
WHERE e.route <> 'gold';

-- Erasure in progress: rows marked erased whose blobs may still exist.
CREATE INDEX clips_erasing ON clips (erased_at) WHERE erased_at IS NOT NULL AND (source_key IS NOT NULL OR video_key IS NOT NULL OR filmstrip_key IS NOT NULL);
CREATE INDEX footage_erasing ON footage (erased_at) WHERE erased_at IS NOT NULL AND source_key <> '';
