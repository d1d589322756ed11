-- One row per recorded channel; the last checkpoint of its integrity chain
-- is copied here every second so a lost or edited file is noticed.

CREATE TABLE recordings (
    name TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    channel BIGINT NOT NULL,
    kind TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    events BIGINT NOT NULL DEFAULT 0,
    cast_bytes BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    checkpoint_at BIGINT NULL,
    state TEXT NOT NULL DEFAULT 'open'
);
CREATE INDEX recordings_session ON recordings (session_id);
CREATE INDEX recordings_state ON recordings (state);
