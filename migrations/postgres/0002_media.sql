-- Media: uploaded clips, camera footage, the clips of each review task, and
-- who viewed which clip.

CREATE TABLE clips (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    camera_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT,
    source_key TEXT,
    footage_id TEXT,
    window_from BIGINT,
    window_to BIGINT,
    frame_accurate BIGINT NOT NULL DEFAULT 0,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT,
    width BIGINT,
    height BIGINT,
    video_key TEXT,
    filmstrip_key TEXT,
    filmstrip TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX clips_store ON clips (store_id, created_at);

CREATE TABLE footage (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id),
    camera_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    source_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX footage_camera ON footage (store_id, camera_id, started_at);

CREATE TABLE task_clips (
    task_id TEXT NOT NULL REFERENCES review_tasks(id),
    clip_id TEXT NOT NULL REFERENCES clips(id),
    position BIGINT NOT NULL,
    event_offset_ms BIGINT,
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
    viewed_at BIGINT NOT NULL
);
CREATE INDEX clip_views_clip ON clip_views (clip_id, viewed_at);
