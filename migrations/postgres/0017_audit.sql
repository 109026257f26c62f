-- The audit trail (docs/operations.md, "Audit trail"): who did what, when,
-- to what. Rows are written in the transaction of the change they record
-- and never updated; only the retention job deletes them, once older than
-- `audit_retention_days`. Clip views, kept in clip_views until now, move
-- here as `clip.viewed`.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    store_id TEXT,
    subject TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_store ON audit_log (store_id, at);
CREATE INDEX audit_log_subject ON audit_log (subject, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

INSERT INTO audit_log (id, at, actor_kind, actor_id, actor_name, action, store_id, subject, detail)
SELECT v.id, v.viewed_at, v.viewer_kind, v.viewer_id,
       COALESCE(u.username, s.name, v.viewer_id), 'clip.viewed', c.store_id, v.clip_id,
       json_build_object('artifact', v.artifact, 'task_id', NULL)::text
FROM clip_views v
LEFT JOIN clips c ON c.id = v.clip_id
LEFT JOIN users u ON v.viewer_kind = 'user' AND u.id = v.viewer_id
LEFT JOIN stores s ON v.viewer_kind = 'store' AND s.id = v.viewer_id;

DROP TABLE clip_views;
