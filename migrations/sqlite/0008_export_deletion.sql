-- Deleting an export (DELETE /api/v1/exports/{id}) removes its files and
-- keeps its row, status 'deleted', saying who removed it and when. A failed
-- export says why with a stable code beside its message.
ALTER TABLE exports ADD COLUMN deleted_by TEXT REFERENCES users(id);
ALTER TABLE exports ADD COLUMN deleted_at INTEGER;
ALTER TABLE exports ADD COLUMN error_code TEXT;
-- Exports that failed before the column existed.
UPDATE exports SET error_code = CASE
    WHEN error LIKE '%no longer allow%' THEN 'training-not-allowed'
    ELSE 'export-failed' END
WHERE status = 'failed';
