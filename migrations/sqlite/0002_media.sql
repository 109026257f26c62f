-- Media: uploaded clips, camera footage, the clips of each review task, and
-- who viewed which clip.

CREATE TABLE clips (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    camera_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER,
    source_key TEXT,
    footage_id TEXT,
    window_from INTEGER,
    window_to INTEGER,
    frame_accurate INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    width INTEGER,
    height INTEGER,
    video_key TEXT,
    filmstrip_key TEXT,
    filmstrip TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX clips_store ON clips (store_id, created_at);

CREATE TABLE footage (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    camera_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    source_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX footage_camera ON footage (store_id, camera_id, started_at);

CREATE TABLE task_clips (
    task_id TEXT NOT NULL REFERENCES review_tasks(id),
    clip_id TEXT NOT NULL REFERENCES clips(id),
    position INTEGER NOT NULL,
    event_offset_ms INTEGER,
    poster_key TEXT,
    poster_status TEXT NOT NULL,
    PRIMARY KEY (task_id, clip_id)
);
CREATE INDEX task_clips_clip ON task_clips (clip_id);

CREATE TABLE clip_views (
    id TEXT PRIMARY KEY,
    clip_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    viewer_kind TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    viewed_at INTEGER NOT NULL
);
CREATE INDEX clip_views_clip ON clip_views (clip_id, viewed_at);
