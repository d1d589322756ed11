-- Time windows, validity, session length and channel permissions per grant;
-- just-in-time access requests.

ALTER TABLE grants ADD COLUMN valid_from BIGINT NULL;
ALTER TABLE grants ADD COLUMN valid_until BIGINT NULL;
ALTER TABLE grants ADD COLUMN max_session_secs BIGINT NULL;
ALTER TABLE grants ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE grants ADD COLUMN windows TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN permissions TEXT NOT NULL DEFAULT 'pty,shell,exec,sftp';
ALTER TABLE grants ADD COLUMN exec_allow TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN exec_deny TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN origin TEXT NOT NULL DEFAULT 'admin';

CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    target_name TEXT NOT NULL,
    login TEXT NOT NULL,
    duration_secs BIGINT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_by TEXT NULL,
    decided_at BIGINT NULL,
    grant_id TEXT NULL
);
CREATE INDEX access_requests_state ON access_requests (state, requested_at);
