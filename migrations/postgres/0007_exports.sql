-- Training-data exports (docs/export.md): one row per export asked through
-- the API, run by an `export` job; its finished files live in blob storage
-- under exports/<id>/ and are listed in export_files.
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    -- The run that may report progress and finish (a taken-over run stops).
    run_id TEXT,
    spec TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    as_of BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    progress BIGINT NOT NULL,
    total BIGINT,
    samples BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX exports_created ON exports (created_at);

CREATE TABLE export_files (
    export_id TEXT NOT NULL REFERENCES exports(id),
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    samples BIGINT NOT NULL,
    PRIMARY KEY (export_id, name)
);

