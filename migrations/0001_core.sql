-- Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT); binary secrets are stored as text envelopes.

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE user_keys (
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    PRIMARY KEY (user_name, fingerprint)
);

CREATE TABLE user_groups (
    name TEXT PRIMARY KEY
);

CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES user_groups(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_name)
);

CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    host_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE credentials (
    target_name TEXT NOT NULL REFERENCES targets(name) ON DELETE CASCADE,
    login TEXT NOT NULL,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (target_name, login)
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    target_name TEXT NOT NULL REFERENCES targets(name) ON DELETE CASCADE,
    logins TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX grants_subject ON grants (subject_kind, subject);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    source TEXT NOT NULL,
    target_name TEXT NOT NULL,
    login TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NULL,
    end_reason TEXT NULL,
    bytes_up BIGINT NOT NULL DEFAULT 0,
    bytes_down BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_started ON sessions (started_at);
