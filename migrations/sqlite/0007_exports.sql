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
    created_at INTEGER NOT NULL,
    as_of INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    progress INTEGER NOT NULL,
    total INTEGER,
    samples INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX exports_created ON exports (created_at);

CREATE TABLE export_files (
    export_id TEXT NOT NULL REFERENCES exports(id),
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (export_id, name)
);

